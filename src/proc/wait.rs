//! The watcher's wait: how it is prepared (SIGCHLD, SIGUSR1 and SIGTERM
//! blocked and taken with sigtimedwait, a child subreaper, marked as a
//! watcher once its job is published), then reaping children and taking
//! its signals until a deadline (`next_wake`).
//!
//! What the job used is added up here, child by child as each is reaped
//! (wait4's usage: the child's own and its reaped descendants'), not read
//! from getrusage(RUSAGE_CHILDREN) at the end: a watcher of another job
//! (a job started with `run` from inside this one) is re-parented here
//! when its launcher exits, and its usage, which holds its own job's, is
//! left out. Such a watcher is recognised by its mark (`mark_watcher`:
//! its name, and leading its own session), which a zombie still shows.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// The name (comm) a watcher takes once its job is published: what marks
/// it, in /proc, as another job's watcher to the watcher it is
/// re-parented to.
pub const WATCHER_NAME: &str = "bgrun-watcher";

/// How a child ended, as wait(2) tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildEnd {
    Exited(i32),
    Signaled(i32),
}
/// Prepares the watcher: SIGCHLD, SIGUSR1 and SIGTERM blocked (taken with
/// sigtimedwait: a SIGTERM to the watcher, a shutdown's or a user's, is
/// passed on to the job and its end recorded), and made a child subreaper
/// so that whatever the job leaves behind, even after a `setsid`, is
/// re-parented here.
pub fn become_watcher() {
    let mut set = nix::sys::signal::SigSet::empty();
    set.add(nix::sys::signal::Signal::SIGCHLD);
    set.add(nix::sys::signal::Signal::SIGUSR1);
    set.add(nix::sys::signal::Signal::SIGTERM);
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

/// Once its job is published in `dir`: the watcher takes its name
/// (`WATCHER_NAME`) and works in `dir` (so it keeps no other mount busy;
/// the log it holds open is there anyway). Another watcher it is
/// re-parented to knows it by both: the name, then the meta.json found
/// through /proc/PID/cwd, naming it with its start time.
/// Returns whether it works in `dir` (else in `/`).
pub fn mark_watcher(dir: &Path) -> bool {
    let name = std::ffi::CString::new(WATCHER_NAME).expect("no NUL in a literal");
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr(), 0, 0, 0) };
    // Entered by a descriptor opened without following a link.
    let (parent, name) = (dir.parent().unwrap_or(Path::new("/")), dir.file_name().and_then(|n| n.to_str()));
    let opened = crate::files::open_dir(parent).and_then(|p| crate::files::open_dir_in(&p, name.unwrap_or(".")));
    let entered = opened.is_ok_and(|d| nix::unistd::fchdir(&d).is_ok());
    if !entered {
        let _ = std::env::set_current_dir("/");
    }
    entered
}

/// After the job is started: the watcher ignores hangups.
pub fn settle_watcher() {
    // SAFETY: setting a signal to be ignored.
    unsafe { libc::signal(libc::SIGHUP, libc::SIG_IGN) };
}

/// Is the process `pid` (alive or a zombie) marked as a watcher: its name
/// and leading its own session?
pub fn marked_watcher(pid: i32) -> bool {
    let mut buf = [0u8; 64];
    let marked = super::read_proc(&format!("/proc/{pid}/comm"), &mut buf)
        .is_some_and(|n| buf[..n].strip_suffix(b"\n").unwrap_or(&buf[..n]) == WATCHER_NAME.as_bytes());
    marked && super::stat(pid).is_some_and(|s| s.session == pid)
}

/// The directory a live process works in (/proc/PID/cwd).
pub fn cwd_of(pid: i32) -> Option<std::path::PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/cwd")).ok()
}

/// What the reaped children used, but for other jobs' watchers: the
/// largest peak resident set (KiB), user and system time (µs).
static MAX_RSS_KIB: AtomicU64 = AtomicU64::new(0);
static USER_US: AtomicU64 = AtomicU64::new(0);
static SYS_US: AtomicU64 = AtomicU64::new(0);

/// What the reaped children used so far (see the header): peak KiB, user
/// and system seconds.
pub fn reaped_usage() -> (u64, f64, f64) {
    let s = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64 / 1e6;
    (MAX_RSS_KIB.load(Ordering::Relaxed), s(&USER_US), s(&SYS_US))
}

/// Reaps one ended child, if any, without waiting: its pid and wait(2)'s
/// status; its usage is added up unless it is another job's watcher. None
/// if no child has ended; Err(errno) if there is no child (or wait fails).
/// Has this process a child left (running, or ended and not reaped)?
pub fn has_children() -> bool {
    loop {
        // SAFETY: a zeroed siginfo_t is valid for waitid to fill; WNOWAIT
        // reaps nothing.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::waitid(libc::P_ALL, 0, &mut info, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT) };
        match (r, nix::errno::Errno::last()) {
            (0, _) => return true,
            (_, nix::errno::Errno::EINTR) => continue,
            _ => return false,
        }
    }
}

pub fn reap_one() -> Result<Option<(i32, i32)>, nix::errno::Errno> {
    loop {
        // SAFETY: a zeroed siginfo_t is valid for waitid to fill.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid with a valid pointer; WNOWAIT leaves the child
        // unreaped, so its /proc entry can still be read.
        let r = unsafe { libc::waitid(libc::P_ALL, 0, &mut info, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT) };
        if r < 0 {
            match nix::errno::Errno::last() {
                nix::errno::Errno::EINTR => continue,
                e => return Err(e),
            }
        }
        // SAFETY: waitid filled the siginfo of a child's end (or left it zeroed).
        let pid = unsafe { info.si_pid() };
        if pid <= 0 {
            return Ok(None);
        }
        let other = marked_watcher(pid);
        let mut status = 0;
        // SAFETY: a zeroed rusage is valid for wait4 to fill.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: wait4 with valid pointers, on the child just seen ended.
        if unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut ru) } != pid {
            continue;
        }
        if !other {
            let us = |t: libc::timeval| (t.tv_sec.max(0) as u64) * 1_000_000 + t.tv_usec.max(0) as u64;
            MAX_RSS_KIB.fetch_max(ru.ru_maxrss.max(0) as u64, Ordering::Relaxed);
            USER_US.fetch_add(us(ru.ru_utime), Ordering::Relaxed);
            SYS_US.fetch_add(us(ru.ru_stime), Ordering::Relaxed);
        }
        return Ok(Some((pid, status)));
    }
}

/// What woke the watcher.
pub enum Wake {
    /// A child was reaped: the job, or an orphan re-parented to us.
    Reaped(i32, ChildEnd),
    /// `job stop` asked (SIGUSR1).
    StopRequest,
    /// SIGTERM: Slurm ending the job (in a Slurm step), else a shutdown or
    /// a user ending the watcher: passed on to the job.
    Terminated,
    /// The deadline passed.
    Deadline,
    /// No child is left.
    NoChildren,
}

/// Reaps a child if one has ended, else sleeps until a signal or `until`.
pub fn next_wake(until: Option<Instant>) -> Wake {
    loop {
        match reap_one() {
            Ok(Some((pid, status))) => {
                if libc::WIFEXITED(status) {
                    return Wake::Reaped(pid, ChildEnd::Exited(libc::WEXITSTATUS(status)));
                }
                if libc::WIFSIGNALED(status) {
                    return Wake::Reaped(pid, ChildEnd::Signaled(libc::WTERMSIG(status)));
                }
                continue;
            }
            Ok(None) => {}
            Err(_) => return Wake::NoChildren,
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
