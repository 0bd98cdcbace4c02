//! `job stop ID…`: ask the watcher to stop its job (TERM, the grace, then
//! KILL); with the watcher gone, stop the job's processes here, but only
//! those proven to be the job's. An ended job whose watcher stays for
//! processes it left (`state::lingering`) has those ended the same way.

use crate::cli;
use crate::cmd::follow::wait_all;
use crate::cmd::out::{warn, Out};
use crate::cmd::resolve::resolve;
use crate::exit::{Exit, Res};
use crate::state;
use crate::store::{self, Job, State, Store};
use crate::{proc, queue, watch};
use std::time::Duration;

pub(super) fn stop(store: &Store, a: cli::JobStop) -> Res<Exit> {
    let boot = proc::boot_id();
    let mut jobs = Vec::new();
    for q in &a.ids {
        jobs.push(resolve(store, q)?);
    }
    let mut out = Out::new();
    let mut code = Exit::Ok;
    for mut job in jobs {
        let mut st = state::of(&mut job, &boot);
        if st == State::Queued && !job.is_slurm() {
            match queue::stop_queued(store, &mut job)? {
                Some(end) => {
                    out.line(&format!("{}: {}", job.id, store::describe_end(&end)))?;
                    continue;
                }
                None => st = state::of(&mut job, &boot), // it started meanwhile
            }
        }
        let st = state::of(&mut job, &boot);
        if st == State::Elsewhere {
            warn(&format!("job: {}: {}; stop it there", job.id, crate::cmd::view::elsewhere(&job)));
            code = Exit::Error;
            continue;
        }
        // With no end recorded and no watcher to ask, the stop would rest on
        // the entry: an altered one is refused, not guessed at (even when it
        // makes the job look lost).
        if !job.is_slurm() && job.end.is_none() && state::watcher_gone(&job, &boot) {
            if let Err(e) = pid_file_agrees(&job) {
                warn(&format!("job: {}: not stopping it: {e}", job.id));
                code = Exit::Error;
                continue;
            }
        }
        if st.ended() && state::lingering(&job, &boot) {
            let how = job.end.as_ref().map_or(st.as_str().to_string(), store::describe_end);
            match stop_leftovers(&job, a.force) {
                Ok(()) => out.line(&format!("{}: ended: {how}; stopped its remaining processes", job.id))?,
                Err(e) => {
                    warn(&format!("job: {}: ended: {how}; {e}", job.id));
                    code = Exit::Error;
                }
            }
            continue;
        }
        if st.ended() {
            let how = job.end.as_ref().map_or(st.as_str().to_string(), store::describe_end);
            out.line(&format!("{}: already ended: {how}", job.id))?;
            continue;
        }
        if job.is_slurm() {
            match crate::cmd::slurm::stop(&mut job, a.force, &boot) {
                Ok(how) => out.line(&format!("{}: {how}", job.id))?,
                Err(e) => {
                    warn(&format!("job: {}: {e}", job.id));
                    code = Exit::Error;
                }
            }
            continue;
        }
        store::request_stop(&job.dir, a.force)?;
        let m = &job.meta;
        let asked = matches!((m.watcher_pid, m.watcher_start),
            (Some(pid), Some(start)) if proc::signal_leader(proc::Proc { pid, start }, proc::SIGUSR1));
        if !asked {
            // The watcher is gone (killed): end the job's tree ourselves.
            // Its end cannot be recorded, so it will show as lost.
            let sig = if a.force { proc::SIGKILL } else { proc::SIGTERM };
            match stop_orphan(&job, sig) {
                Ok(()) => {
                    out.line(&format!("{}: stopped (its watcher was gone, so no end was recorded: lost)", job.id))?;
                }
                Err(e) => {
                    warn(&format!("job: {}: not stopping it: {e}", job.id));
                    code = Exit::Error;
                }
            }
            continue;
        }
        let mut one = [job];
        if wait_all(&mut one, Some(watch::GRACE + Duration::from_secs(10))) {
            let [mut job] = one;
            let st = state::of(&mut job, &boot);
            let how = job.end.as_ref().map_or(st.as_str().to_string(), store::describe_end);
            out.line(&format!("{}: {how}", job.id))?;
        } else {
            warn(&format!("job: {}: still running after the stop request", one[0].id));
            code = Exit::Error;
        }
    }
    out.flush()?;
    Ok(code)
}

/// Ends the processes an ended job left, for which its watcher stays
/// (`state::lingering`): asks the watcher, as for a running job (the stop
/// request, then SIGUSR1 to the watcher proven by its start time), and
/// waits for it to leave (it does once none is left: SIGTERM, the grace,
/// SIGKILL). The recorded end stays as it was.
fn stop_leftovers(job: &Job, force: bool) -> Result<(), String> {
    let m = &job.meta;
    let (Some(pid), Some(start)) = (m.watcher_pid, m.watcher_start) else {
        return Err("meta.json records no watcher".into());
    };
    store::request_stop(&job.dir, force)?;
    if !proc::signal_leader(proc::Proc { pid, start }, proc::SIGUSR1) && proc::leader_lives(pid, start) {
        return Err(format!("could not signal its watcher (pid {pid})"));
    }
    let until = std::time::Instant::now() + watch::GRACE + Duration::from_secs(10);
    while proc::leader_lives(pid, start) {
        if std::time::Instant::now() > until {
            return Err("its remaining processes still run after the stop request".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// Stops a job whose watcher is gone, once its own process is proven to be
/// the one meta.json records (pid, start time, this user's, leading its own
/// session; the boot id was checked when it was judged running): `sig` to
/// it, its session and every process below them, listed before the first
/// signal; what is left after the grace gets SIGKILL. Nothing is guessed:
/// an entry whose `pid` file disagrees with meta.json, or a process that is
/// not proven, is refused.
fn stop_orphan(job: &Job, sig: i32) -> Result<(), String> {
    let m = &job.meta;
    let (Some(pid), Some(start)) = (m.pid, m.pid_start) else {
        return Err("meta.json records no pid and start time".into());
    };
    pid_file_agrees(job)?;
    let tree = proc::job_tree(proc::Proc { pid, start })?;
    for &p in &tree {
        proc::signal_proven(p, sig, |_| true);
    }
    let gone = |d: Duration| {
        let until = std::time::Instant::now() + d;
        loop {
            let left = proc::tree_left(&tree, start);
            if left.is_empty() || std::time::Instant::now() > until {
                return left;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    let left = if sig == proc::SIGKILL { proc::tree_left(&tree, start) } else { gone(watch::GRACE) };
    for &p in &left {
        proc::signal_proven(p, proc::SIGKILL, |_| true);
    }
    gone(Duration::from_secs(2));
    Ok(())
}

/// The `pid` file, if there is one, names the pid meta.json records.
fn pid_file_agrees(job: &Job) -> Result<(), String> {
    let recorded = job.meta.pid.map(|p| p.to_string()).unwrap_or_else(|| "none".into());
    match job.pid_file_text() {
        Some(f) if f != recorded => {
            Err(format!("its pid file says {f} but meta.json says {recorded}: the entry was altered"))
        }
        _ => Ok(()),
    }
}
