//! A job's state from its record and its processes: the one place that
//! says `running`, `lost` or how it ended. `store` knows files only and
//! `proc` processes only; this joins them.

use crate::proc;
use crate::store::{Job, Legacy, State};

/// The job's state: what `status` says; else `running` while the job's
/// process or its watcher lives (checked by pid, start time and boot id);
/// else `lost`.
pub fn of(job: &mut Job, boot: &str) -> State {
    if let Some(e) = &job.end {
        return e.state;
    }
    let live = is_live(job, boot);
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

fn is_live(job: &Job, boot: &str) -> bool {
    let m = &job.meta;
    if m.boot_id != boot {
        return false;
    }
    let job_alive = matches!((job.pid_file(), m.pid_start), (Some(p), Some(s)) if proc::alive(p, s));
    job_alive || matches!((m.watcher_pid, m.watcher_start), (Some(p), Some(s)) if proc::alive(p, s))
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
