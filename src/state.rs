//! A job's state from its record and its processes: the one place that
//! says `running`, `lost`, `elsewhere` or how it ended. `store` knows files
//! only and `proc` processes only; this joins them.
//!
//! A job's processes can be checked only on the machine, in the boot and
//! in the pid namespace it ran in. A job with no end recorded that ran on
//! another host (a store on NFS) or in another pid namespace (a container)
//! is `elsewhere`: never judged dead from here, so never removed without
//! `--force`. One from an earlier boot of this host is `lost`.

use crate::proc;
use crate::store::{Job, Legacy, State};
use std::sync::OnceLock;

/// The job's state: what `status` says; else `queued` while it waits with
/// no process (whatever the host or boot: a queue outlives a reboot); else
/// `elsewhere` if its processes cannot be seen from here; else `running`
/// while the job's process or its watcher lives (checked by pid, start time
/// and boot id); else `lost`.
pub fn of(job: &mut Job, boot: &str) -> State {
    if let Some(e) = &job.end {
        return e.state;
    }
    if job.meta.is_queued() {
        // It may have started (or ended) since it was read: meta.json is
        // replaced when it starts, `status` appears when it ends.
        let _ = job.reread();
        if let Some(e) = &job.end {
            return e.state;
        }
        if job.meta.is_queued() {
            return State::Queued;
        }
    }
    let live = match here(job, boot) {
        Some(true) => is_live(job),
        Some(false) => false,
        None => {
            let _ = job.reread_end();
            return job.end.as_ref().map_or(State::Elsewhere, |e| e.state);
        }
    };
    // Read `status` after the liveness check: the watcher records the end
    // before it exits, so a job seen dead with no `status` after that is
    // lost, and a live watcher may have recorded the end just now.
    let _ = job.reread_end();
    match &job.end {
        Some(e) => e.state,
        None if live => State::Running,
        None => State::Lost,
    }
}

/// Can the job's pids be checked from here: `Some(true)` yes, `Some(false)`
/// no because they are from an earlier boot of this host (all gone), `None`
/// no because they belong to another host or pid namespace.
fn here(job: &Job, boot: &str) -> Option<bool> {
    let m = &job.meta;
    let (host, ns) = this_machine();
    if !m.host.is_empty() && m.host != *host {
        return None;
    }
    if m.boot_id != boot {
        return Some(false);
    }
    match (m.pid_ns, ns) {
        (Some(theirs), Some(ours)) if theirs != *ours => None,
        _ => Some(true),
    }
}

fn is_live(job: &Job) -> bool {
    let m = &job.meta;
    // The pid meta.json recorded, and the `pid` file's if it differs: an
    // edited `pid` file can neither hide the job nor pass for it (the start
    // time must match too).
    let alive = |pid: Option<i32>| matches!((pid, m.pid_start), (Some(p), Some(s)) if proc::alive(p, s));
    let job_alive = alive(m.pid) || (job.pid_file() != m.pid && alive(job.pid_file()));
    job_alive || matches!((m.watcher_pid, m.watcher_start), (Some(p), Some(s)) if proc::alive(p, s))
}

/// This host's name and pid namespace, read once.
fn this_machine() -> &'static (String, Option<u64>) {
    static HERE: OnceLock<(String, Option<u64>)> = OnceLock::new();
    HERE.get_or_init(|| (proc::hostname(), proc::pid_ns()))
}

/// Is the job's watcher gone for good: seen from where it ran (this host
/// and pid namespace; or an earlier boot, when it is gone with the rest)
/// and not alive? Once it is, nothing more will be recorded for the job.
pub fn watcher_gone(job: &Job, boot: &str) -> bool {
    let m = &job.meta;
    match here(job, boot) {
        Some(true) => !matches!((m.watcher_pid, m.watcher_start), (Some(p), Some(s)) if proc::alive(p, s)),
        Some(false) => true,
        None => false,
    }
}

/// This boot's id, which `of` compares with the one a job recorded.
pub fn boot_id() -> String {
    proc::boot_id()
}

/// Does a job of the old scripts still run? Its pid must be alive and have
/// started when the pid file was written (within a few seconds), so that a
/// pid reused since is not taken for it.
pub fn legacy_running(l: &Legacy) -> bool {
    let (Some(pid), Some(written)) = (l.pid, l.pid_written) else { return false };
    let started = l.started.timestamp();
    proc::started_unix(pid).is_some_and(|t| (t - written).abs() <= 5 || (t - started).abs() <= 5)
}
