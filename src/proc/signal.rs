//! Signals, only ever to a process proven to be the job's at that instant.
//!
//! A process is named by its pid and its start time (`Proc`), both read
//! from /proc when it is listed. Just before the signal a pidfd is opened
//! and /proc read again: if the start time still matches, the descriptor
//! names exactly that process, and the signal goes through it
//! (pidfd_send_signal, Linux 5.3), so a pid given to another process a
//! moment later is never hit. Where the kernel has no pidfds the signal is
//! a kill(2) right after the same check. A pid ≤ 1 is never signalled.
//!
//! A process group is signalled as a whole only by the watcher, and only
//! while it has not reaped the job: the job leads the group, and the pid of
//! an unreaped child (so the group's id) cannot be given to anyone else.
//! Every other signal goes to one process at a time, from a list taken
//! before the first signal, so that a process that moves to a session of
//! its own meanwhile is still on it.

use super::{stat, Stat};
use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

pub const SIGTERM: i32 = libc::SIGTERM;
pub const SIGKILL: i32 = libc::SIGKILL;
pub const SIGUSR1: i32 = libc::SIGUSR1;

/// One process: its pid and its start time (clock ticks since boot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Proc {
    pub pid: i32,
    pub start: u64,
}

fn live(s: &Stat) -> bool {
    s.state != b'Z' && s.state != b'X'
}

/// The effective uid a process runs as (the owner of /proc/PID).
fn owner(pid: i32) -> Option<u32> {
    fs::metadata(format!("/proc/{pid}")).ok().map(|m| m.uid())
}

fn my_uid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

enum PidFd {
    Open(OwnedFd),
    /// The kernel has no pidfds: a checked kill(2) it is.
    Unsupported,
    Gone,
}

fn pidfd_open(pid: i32) -> PidFd {
    // SAFETY: pidfd_open with plain integers; a non-negative result is a
    // new descriptor (close-on-exec) that we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd >= 0 {
        // SAFETY: as above.
        return PidFd::Open(unsafe { OwnedFd::from_raw_fd(fd as i32) });
    }
    match nix::errno::Errno::last() {
        nix::errno::Errno::ENOSYS | nix::errno::Errno::EPERM => PidFd::Unsupported,
        _ => PidFd::Gone,
    }
}

/// Sends `sig` to `p` if it is still that process (same pid, same start
/// time, not ended) and `ok` holds for what /proc says of it. True if the
/// signal was delivered.
pub fn signal_proven(p: Proc, sig: i32, ok: impl Fn(&Stat) -> bool) -> bool {
    if p.pid <= 1 {
        return false;
    }
    // Opened before the check: if the check passes, the descriptor was
    // opened on the checked process (an earlier holder of the pid is gone
    // by then, and a pidfd of a process that is gone delivers nothing).
    let fd = pidfd_open(p.pid);
    let proven = matches!(stat(p.pid), Some(s) if s.start == p.start && live(&s) && ok(&s));
    if !proven {
        return false;
    }
    match fd {
        // SAFETY: a valid pidfd, no siginfo, no flags.
        PidFd::Open(fd) => unsafe {
            libc::syscall(libc::SYS_pidfd_send_signal, fd.as_raw_fd(), sig, std::ptr::null::<libc::siginfo_t>(), 0) == 0
        },
        // SAFETY: kill with plain integers, checked just before.
        PidFd::Unsupported => unsafe { libc::kill(p.pid, sig) == 0 },
        PidFd::Gone => false,
    }
}

/// Sends `sig` to a job's or a watcher's own process: proven by its start
/// time, its owner (this user) and leading its own session.
pub fn signal_leader(p: Proc, sig: i32) -> bool {
    owner(p.pid) == Some(my_uid()) && signal_proven(p, sig, |s| s.session == p.pid)
}

/// Every live process, with what /proc says of it.
fn snapshot() -> Vec<(i32, Stat)> {
    let Ok(rd) = fs::read_dir("/proc") else { return vec![] };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| stat(pid).filter(live).map(|s| (pid, s)))
        .collect()
}

/// The processes of `all` below the ones in `found` (following parent
/// links), appended to `found`; only those started no earlier than `since`
/// (a child never starts before its parent), and none for which `apart`
/// holds, nor anything below it.
fn add_below(all: &[(i32, Stat)], found: &mut Vec<Proc>, since: u64, apart: &dyn Fn(Proc) -> bool) {
    let mut i = 0;
    while i < found.len() {
        let parent = found[i].pid;
        for (pid, s) in all {
            let p = Proc { pid: *pid, start: s.start };
            if s.ppid == parent && s.start >= since && !found.iter().any(|f| f.pid == *pid) && !apart(p) {
                found.push(p);
            }
        }
        i += 1;
    }
}

/// Every live process below `root`, but for those for which `apart` holds
/// and what is below them (a watcher: another job's watcher re-parented
/// to it, proven so, and that job's tree).
pub fn descendants(root: i32, apart: &dyn Fn(Proc) -> bool) -> Vec<Proc> {
    let mut found = vec![Proc { pid: root, start: 0 }];
    add_below(&snapshot(), &mut found, 0, apart);
    found.remove(0);
    found
}

/// The watcher's signal to the job's tree: lists every process below
/// `root` (the watcher, a child subreaper, so the job's whole tree) but
/// for another job's watcher and its tree (`apart`), then signals the
/// group `group` (the job's, only while the job is unreaped), then each
/// listed process, proven. Returns how many were listed.
pub fn signal_tree(root: i32, group: Option<i32>, sig: i32, apart: &dyn Fn(Proc) -> bool) -> usize {
    let below = descendants(root, apart);
    if let Some(g) = group.filter(|&g| g > 1) {
        // SAFETY: kill with plain integers; the group is the job's (above).
        unsafe { libc::kill(-g, sig) };
    }
    for &p in &below {
        signal_proven(p, sig, |_| true);
    }
    below.len()
}

/// A job's processes, for a stop without its watcher: once `leader` is
/// proven the job's own process (its start time, this user's, leading its
/// own session), the leader, every process of its session (which cannot
/// be anyone else's while the leader lives) and every process below them.
/// Listed in one pass before any signal. An error says why the leader is
/// not proven.
pub fn job_tree(leader: Proc) -> Result<Vec<Proc>, String> {
    if leader.pid <= 1 {
        return Err(format!("pid {} cannot be a job's", leader.pid));
    }
    let Some(s) = stat(leader.pid).filter(live) else { return Err(format!("pid {} is gone", leader.pid)) };
    if s.start != leader.start {
        return Err(format!("pid {} is another process (it started at another time)", leader.pid));
    }
    if s.session != leader.pid {
        return Err(format!("pid {} is another process (it does not lead its own session)", leader.pid));
    }
    if owner(leader.pid) != Some(my_uid()) {
        return Err(format!("pid {} belongs to another user", leader.pid));
    }
    let all = snapshot();
    let mut found = vec![leader];
    for (pid, s) in &all {
        if s.session == leader.pid && *pid != leader.pid && s.start >= leader.start {
            found.push(Proc { pid: *pid, start: s.start });
        }
    }
    add_below(&all, &mut found, leader.start, &|_| false);
    let me = my_uid();
    found.retain(|p| owner(p.pid) == Some(me));
    Ok(found)
}

/// Which of `procs` are still themselves, and every process started since
/// `since` below them: what is left of a tree after a signal.
pub fn tree_left(procs: &[Proc], since: u64) -> Vec<Proc> {
    let all = snapshot();
    let mut found: Vec<Proc> =
        procs.iter().copied().filter(|p| all.iter().any(|(pid, s)| *pid == p.pid && s.start == p.start)).collect();
    add_below(&all, &mut found, since, &|_| false);
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn a_job_tree_is_refused_for_a_session_leader_that_started_at_another_time() {
        // A stranger of this user leading its own session, as a job does:
        // only its start time tells it from the job whose pid it took.
        let mut child = std::process::Command::new("setsid").args(["sleep", "30"]).spawn().unwrap();
        let pid = child.id() as i32;
        let deadline = Instant::now() + Duration::from_secs(20);
        while stat(pid).is_none_or(|s| s.session != pid) {
            assert!(Instant::now() < deadline, "setsid never made its session");
            std::thread::yield_now();
        }
        let start = stat(pid).unwrap().start;
        let refused = job_tree(Proc { pid, start: start.saturating_sub(1) });
        assert!(refused.as_ref().is_err_and(|e| e.contains("another process")), "{refused:?}");
        assert!(!signal_proven(Proc { pid, start: start + 1 }, 0, |_| true), "a signal to a stranger");
        assert!(job_tree(Proc { pid, start }).is_ok_and(|t| t.iter().any(|p| p.pid == pid)));
        let _ = child.kill();
        let _ = child.wait();
    }
}
