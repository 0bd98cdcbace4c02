//! The watcher's Slurm variant, the batch step of a Slurm job: what Slurm
//! runs on the node, as
//! `BIN __slurm-step STORE ID` (any of the five binaries; the launcher
//! passes its own path, so it must be reachable from the node). It is the
//! watcher's half of a local job, on the node:
//!
//! 1. Slurm opened the job's `log` for appending as the step's stdout and
//!    stderr (`--output`, `--open-mode=append`), so anything that goes
//!    wrong before the job starts (this binary not found, the store not
//!    reachable) is in the log, or, if even the log is not reachable, in
//!    what Slurm says of the job (`FAILED`), which readers record as `lost`.
//! 2. It blocks SIGTERM first of all, takes the reserved status file's
//!    lock (what `job wait` blocks on), writes `node` (this host), asks
//!    squeue for the time left (from a grandchild, so that squeue is not
//!    counted in what the job used), becomes a subreaper, and forks the
//!    command with the log as stdout and stderr; unless Slurm has already
//!    sent SIGTERM: then the job is recorded `stopped` (never started,
//!    "ended by Slurm before it started") and not run.
//! 3. It supervises it as a local watcher does (`--timeout` to the second;
//!    a stop request), and a SIGTERM from Slurm ends the job's tree: at the
//!    time limit the job is `timeout`, else (`scancel`, `job stop`) `stopped`.
//! 4. It records the end with link(2), never over an end a reader already
//!    recorded from Slurm's words; then notifies, from the node.

use super::pump::Pump;
use crate::store::{self, State, Store};
use crate::watch;
use crate::{ntfy, proc, slurm};
use std::ffi::OsString;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

/// Runs the step; returns the exit status of the batch script (the job's:
/// see `exit_status`). Its troubles go to stderr, which is the job's log.
pub fn main(args: &[OsString], ntfy: ntfy::Config) -> i32 {
    let (Some(root), Some(id)) = (args.first(), args.get(1).and_then(|a| a.to_str())) else {
        eprintln!("bgrun: __slurm-step needs STORE ID");
        return 2;
    };
    let started = Instant::now();
    // Before anything else: a SIGTERM (scancel, `job stop`) that comes
    // while the step starts is taken at the fork below, never its death.
    proc::hold_term();
    let store = Store::at(root.into());
    watch::watching_in(&store);
    let job = match store.get(id) {
        Ok(Some(j)) => j,
        Ok(None) => {
            eprintln!("bgrun: job {id} is not in {} (is the store reachable from this node?)", store.root().display());
            return 1;
        }
        Err(d) => {
            eprintln!("bgrun: job {id}: damaged: {}", d.reason);
            return 1;
        }
    };
    // A provisional end (an absence in squeue's answer) is no end: this
    // step is the proof that Slurm knows the job.
    if let Some(end) = job.end.as_ref().filter(|e| !e.provisional()) {
        eprintln!("bgrun: job {id} has ended already ({}): not run again", store::describe_end(end));
        return 0;
    }
    let dir = job.dir.clone();
    let had_slurm_id = job.slurm.as_ref().is_some_and(|s| s.id.is_some());
    let mut meta = job.meta;
    let status = match store::open_reserved_status(&dir) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("bgrun: {e}");
            return 1;
        }
    };
    // The launcher holds the lock for a moment after sbatch returns.
    // Another step holding it past that (a second batch step of the same
    // job) runs the command already: a job's command runs at most once.
    let until = Instant::now() + Duration::from_secs(10);
    let mut locked = false;
    while !locked && Instant::now() < until && !proc::term_waiting() {
        locked = status.try_lock().is_ok();
        if !locked {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    if !locked && !proc::term_waiting() {
        eprintln!("bgrun: job {id} is held by another step of it: not run again");
        return 1;
    }
    // An earlier step (Slurm started the batch script again) that began
    // the job: its end, or its `node`, says so; not run again.
    match store.get(id) {
        Ok(Some(j)) if j.end.as_ref().is_some_and(|e| !e.provisional()) => {
            eprintln!("bgrun: job {id} has ended already: not run again");
            return 0;
        }
        Ok(Some(j)) if j.slurm.as_ref().is_some_and(|s| s.node.is_some()) => {
            eprintln!("bgrun: job {id} was started by an earlier step: not run again");
            return 1;
        }
        _ => {}
    }
    let log = match store::open_log(&dir) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("bgrun: {e}");
            return 1;
        }
    };
    let node = proc::hostname();
    if let Err(e) = store::record_node(&dir, &node) {
        eprintln!("bgrun: {e}");
    }
    // A launcher killed once sbatch accepted the job, before it recorded
    // the Slurm id or named the job in its key: this step, which proves
    // Slurm has the job, records both.
    let sid = std::env::var("SLURM_JOB_ID").ok().and_then(|s| s.parse::<u64>().ok());
    if let Some(sid) = sid.filter(|_| !had_slurm_id) {
        if let Err(e) = store::record_slurm_id(&dir, sid) {
            eprintln!("bgrun: {e}");
        }
    }
    if let Some(key) = &meta.key {
        store.adopt_pending_key(key, id);
    }
    // Asked from a grandchild: squeue's own memory and CPU time must not be
    // counted as the job's (the step's children are the job's processes).
    let slurm_id = std::env::var("SLURM_JOB_ID").ok().filter(|_| !proc::term_waiting());
    let limit = slurm_id
        .and_then(|s| s.parse::<u64>().ok())
        .and_then(|id| {
            proc::in_grandchild(Duration::from_secs(6), move || {
                slurm::time_left(id).map_or(String::new(), |d| d.as_millis().to_string())
            })
        })
        .and_then(|ms| ms.parse().ok())
        .map(|ms| Instant::now() + Duration::from_millis(ms));

    // Where the job's own output will start: after what Slurm may have
    // written (and the header, in a log made by an older version).
    let output_from = log.metadata().map_or(0, |m| m.len());
    proc::become_step();
    let program = meta
        .argv
        .first()
        .and_then(|a| proc::which(a.as_ref(), std::env::var_os("PATH").as_deref()))
        .unwrap_or_else(|| meta.argv.first().map(Into::into).unwrap_or_default());
    let argv: Vec<OsString> = meta.argv.iter().map(OsString::from).collect();
    let deadline = meta.timeout_s.map(|s| started + Duration::from_secs(s));
    // Slurm ended the job (scancel, `job stop`, its time limit) before it
    // could start: recorded so, and not started.
    let (state, outcome, cap, reason, pump) = if proc::term_waiting() {
        let state = watch::slurm_ending(deadline, limit);
        (state, store::Outcome::NotRun, None, Some("ended by Slurm before it started".to_string()), None)
    } else {
        // A capped job writes into a pipe the step copies (`pump`).
        let pipe = meta.log_max.and_then(|_| proc::output_pipe().ok());
        let out = pipe.as_ref().map_or(log.as_raw_fd(), |(_, w)| w.as_raw_fd());
        let forked = proc::fork_job(Path::new(&program), &argv, out, None, None);
        let pumped = match (forked, pipe, meta.log_max) {
            (Ok(j), Some((r, w)), Some(max)) => {
                drop(w);
                match Pump::start(r, &log, &dir, store::Cap::new(max, output_from)) {
                    Ok((p, mut held)) => {
                        held.moved_to(&dir);
                        Ok((j, Some(p)))
                    }
                    // The job sees no "go" and exits without running.
                    Err(e) => Err(e),
                }
            }
            (Ok(j), _, _) => Ok((j, None)),
            (Err(e), _, _) => Err(e),
        };
        let (mut job, pump) = match pumped {
            Ok(j) => j,
            Err(e) => {
                let _ = store::append_note(&log, &store::log_path(&dir), &format!("could not start the job: {e}"));
                let outcome = store::Outcome::Exited(126);
                let ending = watch::Ending {
                    state: State::Failed,
                    outcome,
                    output_from,
                    once: true,
                    cap: None,
                    on_end: None,
                    reason: None,
                };
                watch::finish(&store, &dir, &log, &status, &mut meta, None, ending);
                return 126;
            }
        };
        job.go();
        drop((program, argv));
        let mut cap = meta.log_max.filter(|_| pump.is_none()).map(|max| store::Cap::new(max, output_from));
        let bounds = watch::Bounds { deadline, slurm: Some(limit) };
        let (state, outcome) = watch::supervise(&dir, job.pid, bounds, cap.as_mut(), &log);
        (state, outcome, cap, None, pump)
    };
    // What the job wrote before it ended comes before the footer.
    let held = pump.as_ref().map(Pump::drained);
    let cap = cap.or_else(|| held.as_ref().map(|h| h.cap.clone()));
    let ntfy = meta.notify_topic.as_ref().map(|_| ntfy);
    let ending = watch::Ending { state, outcome, output_from, once: true, cap, on_end: None, reason };
    match watch::finish(&store, &dir, &log, &status, &mut meta, ntfy.as_ref(), ending) {
        0 => exit_status(state, outcome),
        trouble => trouble,
    }
}

/// The batch script's exit status: the job's own, so that Slurm too knows
/// whether it succeeded (`--dependency=afterok`, and sacct where there is
/// accounting): 0 only for `done`, 128+N for a signal, as shells say it.
fn exit_status(state: State, outcome: store::Outcome) -> i32 {
    let code = match outcome {
        store::Outcome::Exited(c) => c,
        store::Outcome::Signaled(s) => 128 + s,
        _ => 1,
    };
    match (state, code) {
        (State::Done, _) => 0,
        (_, 1..=255) => code,
        _ => 1,
    }
}
