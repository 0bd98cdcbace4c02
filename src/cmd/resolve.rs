//! What the user typed → a job (an exact id, else the newest job of that
//! name, else a unique id prefix), of bgrun's own or, where a front also
//! shows the old run scripts' jobs, of either kind; and every job with its
//! state.

use super::out::{clean, warn};
use crate::exit::{Fail, Res};
use crate::state;
use crate::store::{self, Job, State, Store};

/// Every job with its state, oldest first; damaged entries are named on
/// stderr and left out.
pub fn load_all(store: &Store, front: &str) -> Res<Vec<(Job, State)>> {
    let (jobs, damaged) = store.list()?;
    report_damaged(front, &damaged);
    let mut jobs = jobs;
    let (states, trouble) = state::of_all(&mut jobs, &crate::proc::boot_id());
    if let Some(e) = trouble {
        warn(&format!("{front}: {}; Slurm jobs show their last known state", clean(&e)));
    }
    Ok(jobs
        .into_iter()
        .zip(states)
        // Removed (by another runrm) while we looked: gone, not lost.
        .filter(|(j, s)| *s != State::Lost || j.dir.exists())
        .collect())
}

pub fn report_damaged(front: &str, damaged: &[store::Damaged]) {
    for d in damaged {
        warn(&format!(
            "{front}: skipping damaged entry {}: {}",
            clean(&d.path.display().to_string()),
            clean(&d.reason)
        ));
    }
}

/// What the user typed, to one job: an exact id, else a name (the newest
/// job of that name), else a unique id prefix.
pub fn resolve(store: &Store, query: &str) -> Res<Job> {
    if query.is_empty() {
        return Err(Fail::from("an empty job id".to_string()));
    }
    match store.get(query) {
        Ok(Some(job)) => return Ok(job),
        Ok(None) => {}
        Err(d) => return Err(Fail::from(format!("job {}: damaged: {}", clean(&d.id), clean(&d.reason)))),
    }
    let (mut jobs, _) = store.list()?;
    let keys: Vec<(&str, &str)> = jobs.iter().map(|j| (j.id.as_str(), j.meta.name.as_str())).collect();
    match store::match_job(&keys, query) {
        store::JobMatch::One(i) => Ok(jobs.swap_remove(i)),
        store::JobMatch::NoMatch => Err(Fail::from(format!("no job '{}' in {}", clean(query), store.root().display()))),
        store::JobMatch::Ambiguous(matches) => {
            let n = matches.len();
            let names: Vec<&str> = matches.iter().rev().take(10).map(|&i| jobs[i].id.as_str()).collect();
            Err(Fail::from(format!(
                "'{}' matches {n} jobs: {}{}",
                clean(query),
                names.join(", "),
                if n > 10 { ", …" } else { "" }
            )))
        }
    }
}

/// A job of either kind: bgrun's own, or the old run scripts'.
pub enum Found {
    Job(Box<Job>),
    Legacy(store::Legacy),
}

/// What the user typed, to a job of either kind, by the rules of
/// [`resolve`] over both: an exact id, else the newest job of that name
/// (by start time, whichever its kind), else a unique id prefix (one of
/// each kind is ambiguous). A damaged entry of that id is an error.
pub fn resolve_any(store: &Store, query: &str) -> Res<Found> {
    let job = resolve(store, query);
    if matches!(&job, Err(e) if e.msg.contains("damaged")) || matches!(&job, Ok(j) if j.id == query) {
        return job.map(|j| Found::Job(Box::new(j)));
    }
    let Some(old) = resolve_legacy(store, query) else { return job.map(|j| Found::Job(Box::new(j))) };
    let Ok(job) = job else { return Ok(Found::Legacy(old)) };
    let (job_named, old_named) = (job.meta.name == query, old.name == query);
    match (old.id == query, job_named, old_named) {
        (true, ..) | (false, false, true) => Ok(Found::Legacy(old)),
        (false, true, false) => Ok(Found::Job(Box::new(job))),
        (false, true, true) if old.started > job.started => Ok(Found::Legacy(old)),
        (false, true, true) => Ok(Found::Job(Box::new(job))),
        (false, false, false) => {
            Err(Fail::from(format!("'{}' matches 2 jobs: {}, {}", clean(query), clean(&job.id), clean(&old.id))))
        }
    }
}

/// A job of the old run scripts by what the user typed, by the same rules
/// as [`resolve`]: exact id, else the newest of that name, else a unique
/// prefix.
pub fn resolve_legacy(store: &Store, query: &str) -> Option<store::Legacy> {
    let mut old = store.legacy();
    let keys: Vec<(&str, &str)> = old.iter().map(|l| (l.id.as_str(), l.name.as_str())).collect();
    match store::match_job(&keys, query) {
        store::JobMatch::One(i) => Some(old.swap_remove(i)),
        _ => None,
    }
}

/// `--after` words, each resolved to one job's id (as `resolve` does); a
/// word that names no job, or several, is a usage error naming the flag.
pub fn after_ids(store: &Store, words: Vec<Vec<String>>) -> Res<Vec<String>> {
    let mut ids: Vec<String> = Vec::new();
    for w in words.into_iter().flatten() {
        let job = resolve(store, &w).map_err(|e| Fail::new(crate::exit::Exit::Usage, format!("--after: {}", e.msg)))?;
        if !ids.contains(&job.id) {
            ids.push(job.id);
        }
    }
    Ok(ids)
}
