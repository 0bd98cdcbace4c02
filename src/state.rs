//! A job's state from its record and its processes: the one place that
//! says `running`, `lost`, `elsewhere`, `queued` or how it ended. `store`
//! knows files only and `proc` processes only; this joins them.
//!
//! A job's processes can be checked only on the machine, in the boot and
//! in the pid namespace it ran in. A job with no end recorded that ran on
//! another host (a store on NFS) or in another pid namespace (a container)
//! is `elsewhere`: never judged dead from here, so never removed without
//! `--force`. One from an earlier boot of this host is `lost`.
//!
//! A Slurm job's state is what its `status` says; else what Slurm says
//! (one squeue call for all the jobs of a listing; what each of Slurm's
//! states means is `slurm::states`'). A job Slurm ended or forgot without
//! its step recording the end gets an end recorded here from Slurm's
//! words, by whichever command notices first (link(2): never over the
//! step's own).

use crate::proc;
use crate::slurm::{self, Row};
use crate::store::{self, End, Job, Legacy, Outcome, SlurmRec, State};
use std::collections::HashMap;
use std::sync::OnceLock;

/// The job's state: what `status` says; else `queued` while it waits with
/// no process (whatever the host or boot: a queue outlives a reboot); else
/// `elsewhere` if its processes cannot be seen from here; else `running`
/// while the job's process or its watcher lives (checked by pid, start time
/// and boot id); else `lost`. A Slurm job asks Slurm.
pub fn of(job: &mut Job, boot: &str) -> State {
    if let Some(e) = job.end.as_ref().filter(|e| !(job.is_slurm() && e.provisional())) {
        return e.state;
    }
    if job.is_slurm() {
        job.reread_slurm();
        let ids: Vec<u64> = job.slurm.as_ref().and_then(|s| s.id).into_iter().collect();
        return of_slurm(job, boot, &slurm::query(&ids));
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

/// The states of many jobs, with one squeue call for all the Slurm jobs
/// among them; and, if squeue could not answer, why (their states are then
/// the last known: `running` once their step has started, else `queued`).
pub fn of_all(jobs: &mut [Job], boot: &str) -> (Vec<State>, Option<String>) {
    let ids: Vec<u64> = jobs
        .iter()
        .filter(|j| j.end.as_ref().is_none_or(End::provisional))
        .filter_map(|j| j.slurm.as_ref().and_then(|s| s.id))
        .collect();
    let asked = if ids.is_empty() { Ok(HashMap::new()) } else { slurm::query(&ids) };
    let states = jobs.iter_mut().map(|j| if j.is_slurm() { of_slurm(j, boot, &asked) } else { of(j, boot) }).collect();
    (states, asked.err())
}

fn of_slurm(job: &mut Job, boot: &str, asked: &Result<HashMap<u64, Row>, String>) -> State {
    if let Some(e) = job.end.as_ref().filter(|e| !e.provisional()) {
        return e.state;
    }
    let Some(id) = job.slurm.as_ref().and_then(|s| s.id) else {
        // Not accepted by sbatch yet: its launcher stands in `watcher_pid`
        // (seen from another host, which cannot check it, a submission is
        // given as long as an sbatch call may take).
        let young = (chrono::Local::now().fixed_offset() - job.started).num_seconds()
            < slurm::CALL_TIMEOUT.as_secs() as i64 + 10;
        let launcher = (job.meta.watcher_pid, job.meta.watcher_start);
        let submitting = match here(job, boot) {
            Some(true) => matches!(launcher, (Some(p), Some(s)) if proc::lives(p, s)),
            Some(false) => false,
            None => young,
        };
        job.reread_slurm();
        let _ = job.reread_end();
        return match (&job.end, job.slurm.as_ref().and_then(|s| s.id)) {
            (Some(e), _) => e.state,
            (None, Some(_)) => State::Queued,
            (None, None) if submitting => State::Queued,
            // Its launcher died once sbatch accepted it, and its step runs.
            (None, None) if step_recording(job) => State::Running,
            (None, None) => State::Lost,
        };
    };
    let rows = match asked {
        Ok(rows) => rows,
        Err(_) => {
            let _ = job.reread_end();
            return match &job.end {
                Some(e) => e.state,
                None if job.slurm.as_ref().is_some_and(|s| s.node.is_some()) => State::Running,
                None => State::Queued,
            };
        }
    };
    let row = rows.get(&id);
    let rec = job.slurm.get_or_insert_with(SlurmRec::default);
    if let Some(r) = row {
        // No reason (squeue's `None`) is kept as none.
        rec.said = Some((r.state.clone(), r.reason().unwrap_or_default().to_string()));
        if rec.node.is_none() && !r.nodes.is_empty() {
            rec.node = Some(r.nodes.clone());
        }
    }
    // Slurm's answer came after the step may have recorded the end.
    let _ = job.reread_end();
    // A provisional end (see `store::FORGOTTEN`) stands only while Slurm
    // still does not name the job.
    if let Some(e) = job.end.as_ref().filter(|e| !e.provisional() || row.is_none()) {
        return e.state;
    }
    let (state, words) = match row {
        Some(r) => match r.state() {
            s @ (State::Queued | State::Running) => {
                // What Slurm says now, not the provisional end.
                job.end = None;
                return s;
            }
            State::Lost => (State::Lost, format!("{}; the step recorded no end: {}", r.words(), unreachable(job))),
            s => (s, r.words()),
        },
        // Provisional: an empty answer may be the controller's hiccup.
        None => (State::Lost, format!("{} {id}; the step recorded no end", store::FORGOTTEN)),
    };
    // Slurm says the job ended as soon as it signals it: a step that still
    // holds the reserved status is about to record how; its record wins.
    // Until then it runs: a step alive here is never taken for an end
    // (an empty or wrong answer from squeue included).
    if step_recording(job) {
        return State::Running;
    }
    record(job, state, words)
}

/// Does the step hold the lock on the reserved status (it does from its
/// start until it has recorded the end, or dies)?
fn step_recording(job: &Job) -> bool {
    job.end_lock().is_some_and(|f| matches!(f.try_lock_shared(), Err(std::fs::TryLockError::WouldBlock)))
}

/// Why a step may not have run: what docs/slurm.md's set-up requires.
fn unreachable(job: &Job) -> String {
    let bin = job.meta.slurm.as_ref().map_or("bgrun", |s| s.bin.as_str());
    let node = job.slurm.as_ref().and_then(|s| s.node.as_deref()).unwrap_or("the node");
    format!("are the store and {bin} reachable from {node}? (see the log)")
}

/// Records an end learnt from Slurm, unless one is recorded already (then
/// that one is the state); a store that cannot be written to still gets
/// the state reported.
fn record(job: &mut Job, state: State, words: String) -> State {
    let end =
        End { state, outcome: Outcome::Unknown, ended_at: chrono::Local::now().fixed_offset(), reason: Some(words) };
    match store::record_first_end(&job.dir, &end) {
        Ok(true) => {
            let secs = (end.ended_at - job.started).num_milliseconds() as f64 / 1000.0;
            let _ = store::append_footer(&job.log(), &end, secs);
        }
        Ok(false) => {
            let _ = job.reread_end();
            if let Some(e) = &job.end {
                return e.state;
            }
        }
        Err(_) => {}
    }
    job.end = Some(end);
    state
}

/// Can the job's pids be checked from here: `Some(true)` yes, `Some(false)`
/// no because they are from an earlier boot of this host (all gone), `None`
/// no because they belong to another host or pid namespace.
/// The host name is only a label: the same boot id (random per boot of a
/// machine) is this machine, whatever it is called now; a renamed host
/// still checks and stops its jobs.
fn here(job: &Job, boot: &str) -> Option<bool> {
    let m = &job.meta;
    let (host, ns) = this_machine();
    let same_boot = !m.boot_id.is_empty() && m.boot_id == boot;
    // Another boot of this machine (its machine id; the host name may have
    // changed): its processes are gone with that boot.
    let same_machine = m.machine.is_some() && m.machine.as_deref() == proc::machine_id();
    if !same_boot && !same_machine && !m.host.is_empty() && m.host != *host {
        return None;
    }
    if !same_boot {
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
    let alive = |pid: Option<i32>| matches!((pid, m.pid_start), (Some(p), Some(s)) if proc::leader_lives(p, s));
    let job_alive = alive(m.pid) || (job.pid_file() != m.pid && alive(job.pid_file()));
    job_alive || matches!((m.watcher_pid, m.watcher_start), (Some(p), Some(s)) if proc::leader_lives(p, s))
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
        Some(true) => !matches!((m.watcher_pid, m.watcher_start), (Some(p), Some(s)) if proc::leader_lives(p, s)),
        Some(false) => true,
        None => false,
    }
}

/// Does the job's watcher stay for processes of the job left after its
/// end (`watch::linger`): an end recorded, seen from where it ran, the
/// watcher proven alive (pid and start time) with processes below it?
/// Such a job is not removed (its log is still written to) and `job stop`
/// ends those processes.
pub fn lingering(job: &Job, boot: &str) -> bool {
    let m = &job.meta;
    let stays = m.left_processes || m.log_max.is_some();
    if job.end.is_none() || !stays || job.is_slurm() || here(job, boot) != Some(true) {
        return false;
    }
    matches!((m.watcher_pid, m.watcher_start),
        (Some(p), Some(s)) if proc::leader_lives(p, s) && !proc::descendants(p, &|_| false).is_empty())
}

/// Does a job of the old scripts still run? Its pid must be alive and have
/// started when the pid file was written (within a few seconds), so that a
/// pid reused since is not taken for it.
pub fn legacy_running(l: &Legacy) -> bool {
    let (Some(pid), Some(written)) = (l.pid, l.pid_written) else { return false };
    let started = l.started.timestamp();
    proc::started_unix(pid).is_some_and(|t| (t - written).abs() <= 5 || (t - started).abs() <= 5)
}
