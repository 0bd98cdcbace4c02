//! `runrm [JOB…]`: remove finished jobs. Never a running or queued one: a
//! job is removed only once `status` says it ended or it is known to be
//! lost, and neither can turn back into running. A job `elsewhere` (another
//! host or pid namespace: not known to have ended) only with `--force`.
//! Nor, even with `--force`, an ended job whose watcher stays for its
//! processes that still run (`state::lingering`): its log is still
//! written to; `job stop` ends them.

use super::out::{clean, warn, Out};
use super::parse;
use super::removal::{awaited, keep_note, linger_note, remove_each, report, sweep_leftovers};
use super::resolve::{load_all, resolve_any, Found};
use super::view::elsewhere;
use crate::cli;
use crate::exit::{Exit, Fail, Res};
use crate::state;
use crate::store::{Job, Legacy, State, Store};
use std::ffi::OsString;

pub fn main(args: Vec<OsString>) -> Res<Exit> {
    let a: cli::Runrm = parse(args.clone())?;
    if let Some(done) = super::remote::on_many("runrm", a.on.as_ref().map(|d| &d.0[..]), &args, false) {
        return done;
    }
    let store = super::open_store()?;
    super::catch_up(&store, "runrm");
    let mut out = Out::new();
    let boot = crate::proc::boot_id();
    let mut doomed: Vec<Job> = Vec::new();
    // The old run scripts' jobs: their .log and .pid files.
    let mut old: Vec<Legacy> = Vec::new();
    let (mut failed, mut kept, mut lingering) = (false, 0, 0);
    if a.jobs.is_empty() {
        let all = load_all(&store, "runrm")?;
        // What a queued job waits for (`--after`) stays, or it would be skipped.
        let awaited = awaited(&all);
        for (job, st) in all {
            match st {
                State::Running | State::Queued => {}
                _ if awaited.contains(&job.id) => {}
                State::Elsewhere if !a.force => kept += 1,
                _ if state::lingering(&job, &boot) => lingering += 1,
                _ => doomed.push(job),
            }
        }
        old = store.legacy().into_iter().filter(|l| !state::legacy_running(l)).collect();
    } else {
        for q in &a.jobs {
            match resolve_any(&store, q) {
                Ok(Found::Job(job)) => {
                    let mut job = *job;
                    let st = state::of(&mut job, &boot);
                    if matches!(st, State::Running | State::Queued) {
                        let what = st.as_str();
                        warn(&format!("runrm: {} is {what}; stop it first (job stop {})", job.id, job.id));
                        failed = true;
                    } else if st == State::Elsewhere && !a.force {
                        warn(&format!("runrm: {}: {}; --force removes it", job.id, elsewhere(&job)));
                        failed = true;
                    } else if state::lingering(&job, &boot) {
                        warn(&format!("runrm: {}: its processes still run; job stop {} ends them", job.id, job.id));
                        failed = true;
                    } else if !doomed.iter().any(|d| d.id == job.id) {
                        doomed.push(job);
                    }
                }
                Err(e) if e.msg.contains("damaged") => match remove_damaged(&store, q, a.dry_run) {
                    Ok(line) => out.line(&line)?,
                    Err(e) => {
                        warn(&format!("runrm: {}", e.msg));
                        failed = true;
                    }
                },
                Ok(Found::Legacy(l)) if state::legacy_running(&l) => {
                    warn(&format!("runrm: {} is running (pid {}); stop it first", clean(&l.id), l.pid.unwrap_or(0)));
                    failed = true;
                }
                Ok(Found::Legacy(l)) => {
                    if !old.iter().any(|o| o.id == l.id) {
                        old.push(l);
                    }
                }
                Err(e) => {
                    warn(&format!("runrm: {}", e.msg));
                    failed = true;
                }
            }
        }
    }
    let mut tally = remove_each(&store, &doomed, &old, a.dry_run, a.jobs.is_empty(), "runrm", &mut out)?;
    keep_note("runrm", kept);
    linger_note("runrm", lingering);
    if a.jobs.is_empty() {
        tally.freed += sweep_leftovers(&store, a.dry_run, &mut out)?;
    }
    tally.failed |= failed;
    report(&tally, a.dry_run, &mut out)?;
    out.flush()?;
    if tally.failed {
        Err(Fail::quiet(Exit::Error))
    } else {
        Ok(Exit::Ok)
    }
}

/// A damaged entry named by the user: a link is removed (never followed);
/// a directory only if no process holds the pid written in it.
fn remove_damaged(store: &Store, id: &str, dry_run: bool) -> Res<String> {
    let path = store.root().join(id);
    let meta = std::fs::symlink_metadata(&path).map_err(|e| crate::store::io_err("reading", &path, e))?;
    if meta.is_dir() {
        let life = crate::store::damaged_life(&path);
        if life.locked {
            return Err(Fail::from(format!("{}: damaged, and its watcher is running; not removing it", clean(id))));
        }
        if let Some(pid) = life.pid.filter(|&p| crate::proc::pid_taken(p)) {
            return Err(Fail::from(format!("{}: damaged, and its pid {pid} is alive; not removing it", clean(id))));
        }
    }
    if dry_run {
        return Ok(format!("would remove damaged entry {}", clean(id)));
    }
    store.remove(id)?;
    Ok(format!("removed damaged entry {}", clean(id)))
}
