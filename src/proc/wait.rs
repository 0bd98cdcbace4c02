//! The watcher's wait: how it is prepared (SIGCHLD and SIGUSR1 blocked
//! and taken with sigtimedwait, a child subreaper; a Slurm step takes
//! SIGTERM too), then reaping children and taking its signals until a
//! deadline (`next_wake`).

use std::time::Instant;

/// How a child ended, as wait(2) tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildEnd {
    Exited(i32),
    Signaled(i32),
}
/// Prepares the watcher: SIGCHLD and SIGUSR1 blocked (taken with
/// sigtimedwait), and made a child subreaper so that whatever the job
/// leaves behind, even after a `setsid`, is re-parented here.
pub fn become_watcher() {
    let mut set = nix::sys::signal::SigSet::empty();
    set.add(nix::sys::signal::Signal::SIGCHLD);
    set.add(nix::sys::signal::Signal::SIGUSR1);
    let _ = set.thread_block();
    // SAFETY: plain prctl call with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
}

/// Prepares a Slurm job's batch step as a watcher that also takes SIGTERM
/// (Slurm ending the job) with sigtimedwait, to end the job's tree and
/// record why.
pub fn become_step() {
    become_watcher();
    hold_term();
}

/// Blocks SIGTERM, so that one Slurm sends while the step is starting
/// waits (pending) instead of killing the step before it can record why
/// the job did not run.
pub fn hold_term() {
    let mut set = nix::sys::signal::SigSet::empty();
    set.add(nix::sys::signal::Signal::SIGTERM);
    let _ = set.thread_block();
}

/// Is a (blocked) SIGTERM pending? It stays pending.
pub fn term_waiting() -> bool {
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: sigpending fills the set on the stack; sigismember reads it.
    unsafe { libc::sigpending(&mut set) == 0 && libc::sigismember(&set, libc::SIGTERM) == 1 }
}

/// Takes a SIGTERM that is pending or arrives within `d` (the step only).
pub fn term_pending(d: std::time::Duration) -> bool {
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: building a signal set on the stack.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
    }
    let ts = libc::timespec { tv_sec: d.as_secs() as libc::time_t, tv_nsec: d.subsec_nanos() as libc::c_long };
    // SAFETY: valid set and timeout pointers.
    unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &ts) == libc::SIGTERM }
}

/// After the job is started: the watcher ignores hangups and leaves the
/// caller's directory (so it keeps no mount busy).
pub fn settle_watcher() {
    // SAFETY: setting a signal to be ignored.
    unsafe { libc::signal(libc::SIGHUP, libc::SIG_IGN) };
    let _ = std::env::set_current_dir("/");
}

/// What woke the watcher.
pub enum Wake {
    /// A child was reaped: the job, or an orphan re-parented to us.
    Reaped(i32, ChildEnd),
    /// `job stop` asked (SIGUSR1).
    StopRequest,
    /// SIGTERM, which only a Slurm step blocks and so takes here: Slurm
    /// is ending the job (elsewhere SIGTERM ends the watcher as before).
    Terminated,
    /// The deadline passed.
    Deadline,
    /// No child is left.
    NoChildren,
}

/// Reaps a child if one has ended, else sleeps until a signal or `until`.
pub fn next_wake(until: Option<Instant>) -> Wake {
    loop {
        let mut status = 0;
        // SAFETY: waitpid with a valid pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid > 0 {
            if libc::WIFEXITED(status) {
                return Wake::Reaped(pid, ChildEnd::Exited(libc::WEXITSTATUS(status)));
            }
            if libc::WIFSIGNALED(status) {
                return Wake::Reaped(pid, ChildEnd::Signaled(libc::WTERMSIG(status)));
            }
            continue;
        }
        if pid < 0 {
            match nix::errno::Errno::last() {
                nix::errno::Errno::EINTR => continue,
                _ => return Wake::NoChildren,
            }
        }
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: building a signal set on the stack.
        unsafe {
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGCHLD);
            libc::sigaddset(&mut set, libc::SIGUSR1);
            libc::sigaddset(&mut set, libc::SIGTERM);
        }
        let ts = until.map(|t| {
            let d = t.saturating_duration_since(Instant::now());
            libc::timespec { tv_sec: d.as_secs() as libc::time_t, tv_nsec: d.subsec_nanos() as libc::c_long }
        });
        let tsp = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: valid set and timeout pointers.
        let sig = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), tsp) };
        if sig == libc::SIGUSR1 {
            return Wake::StopRequest;
        }
        if sig == libc::SIGTERM {
            return Wake::Terminated;
        }
        if sig < 0 && nix::errno::Errno::last() == nix::errno::Errno::EAGAIN {
            return Wake::Deadline;
        }
    }
}
