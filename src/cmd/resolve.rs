//! What the user typed → a job (an exact id, else the newest job of that
//! name, else a unique id prefix; a removed job's id is an error, and a
//! word shaped as a whole id is never a prefix), of bgrun's own or, where a front also
//! shows the old run scripts' jobs, of either kind; and every job with its
//! state. A word is looked up among the jobs it may name, read from the
//! store's directory by their ids (`Store::named`, `newest_named`), never
//! by reading every job.

use super::out::{clean, warn};
use crate::exit::{Fail, Res};
use crate::launch::id_name;
use crate::state;
use crate::store::{self, Job, State, Store};

/// Every job with its state, oldest first; damaged entries are named on
/// stderr and left out.
pub fn load_all(store: &Store, front: &str) -> Res<Vec<(Job, State)>> {
    let (jobs, damaged) = store.list()?;
    Ok(with_states(store, front, jobs, &damaged))
}

/// The jobs listed, each with its state; the damaged entries named on
/// stderr; queued jobs their queue does not name indexed again (see
/// `queue::mend`).
pub fn with_states(store: &Store, front: &str, mut jobs: Vec<Job>, damaged: &[store::Damaged]) -> Vec<(Job, State)> {
    report_damaged(front, damaged);
    let (states, trouble) = state::of_all(&mut jobs, &crate::proc::boot_id());
    if let Some(e) = trouble {
        warn(&format!("{front}: {}; Slurm jobs show their last known state", clean(&e)));
    }
    let all: Vec<(Job, State)> = jobs
        .into_iter()
        .zip(states)
        // Removed (by another runrm) while we looked: gone, not lost.
        .filter(|(j, s)| *s != State::Lost || j.dir.exists())
        .collect();
    for line in crate::queue::mend(store, &all) {
        warn(&format!("{front}: {}", clean(&line)));
    }
    all
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
/// job of that name), else a unique id prefix. A removed job's id is an
/// error, never another job's.
pub fn resolve(store: &Store, query: &str) -> Res<Job> {
    if let Some(job) = exact(store, query)? {
        return Ok(job);
    }
    removed(store, query)?;
    let scan = store.scan()?;
    let mut jobs = match store.newest_named(&scan, query, &id_name(query)) {
        Some(store::Named::Newest(job)) => return Ok(*job),
        Some(store::Named::Nothing) => store.prefixed(&scan, query),
        None => store.named(&scan, query, &id_name(query)),
    };
    let keys: Vec<(&str, &str)> = jobs.iter().map(|j| (j.id.as_str(), j.meta.name.as_str())).collect();
    let i = one(store, query, store::match_job(&keys, query), |i| &jobs[i].id)?;
    Ok(jobs.swap_remove(i))
}

/// The job of exactly that id; a damaged entry of that id is an error.
fn exact(store: &Store, query: &str) -> Res<Option<Job>> {
    if query.is_empty() {
        return Err(Fail::from("an empty job id".to_string()));
    }
    store.get(query).map_err(|d| Fail::from(format!("job {}: damaged: {}", clean(&d.id), clean(&d.reason))))
}

/// A removed job's id names no other job: an error saying so.
fn removed(store: &Store, query: &str) -> Res<()> {
    if store.id_removed(query) {
        return Err(Fail::from(format!("job {} was removed", clean(query))));
    }
    Ok(())
}

/// The one job a match found, or the error: none, or several (listed,
/// newest first).
fn one<'a>(store: &Store, query: &str, m: store::JobMatch, id: impl Fn(usize) -> &'a String) -> Res<usize> {
    match m {
        store::JobMatch::One(i) => Ok(i),
        store::JobMatch::NoMatch => Err(Fail::from(format!("no job '{}' in {}", clean(query), store.root().display()))),
        store::JobMatch::Ambiguous(matches) => {
            let n = matches.len();
            let names: Vec<String> = matches.iter().rev().take(10).map(|&i| clean(id(i))).collect();
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
/// (by start time, whichever its kind), else a unique id prefix (a prefix
/// that fits several jobs of either kind is an error listing them).
pub fn resolve_any(store: &Store, query: &str) -> Res<Found> {
    if let Some(job) = exact(store, query)? {
        return Ok(Found::Job(Box::new(job)));
    }
    let scan = store.scan()?;
    // The old scripts' jobs this word may name: by id, name or prefix.
    let mut old = store.legacy_in(&scan, None, |id, name| name == query || id.starts_with(query));
    if let Some(i) = old.iter().position(|l| l.id == query) {
        return Ok(Found::Legacy(old.swap_remove(i)));
    }
    removed(store, query)?;
    let jobs = match store.newest_named(&scan, query, &id_name(query)) {
        Some(store::Named::Newest(job)) => {
            // The newer of the two kinds (an old script's, on a tie, as
            // the listing puts it after).
            return Ok(match old.iter().rposition(|l| l.name == query) {
                Some(i) if old[i].started >= job.started => Found::Legacy(old.swap_remove(i)),
                _ => Found::Job(job),
            });
        }
        Some(store::Named::Nothing) => store.prefixed(&scan, query),
        None => store.named(&scan, query, &id_name(query)),
    };
    let mut all: Vec<Found> = jobs.into_iter().map(|j| Found::Job(Box::new(j))).collect();
    all.extend(old.into_iter().map(Found::Legacy));
    // Oldest first, so that the newest of a name is the last.
    all.sort_by_key(|f| match f {
        Found::Job(j) => j.started,
        Found::Legacy(l) => l.started,
    });
    let keys: Vec<(&str, &str)> = all.iter().map(key).map(|(i, n)| (i.as_str(), n.as_str())).collect();
    let i = one(store, query, store::match_job(&keys, query), |i| key(&all[i]).0)?;
    Ok(all.swap_remove(i))
}

/// A job's id and name, whichever its kind.
fn key(f: &Found) -> (&String, &String) {
    match f {
        Found::Job(j) => (&j.id, &j.meta.name),
        Found::Legacy(l) => (&l.id, &l.name),
    }
}

/// `--after` words, each resolved to one job's id (as `resolve` does); a
/// word that names no job, or several, is a usage error naming the flag.
pub fn after_ids(store: &Store, words: Vec<Vec<String>>) -> Res<Vec<String>> {
    let mut ids: Vec<String> = Vec::new();
    for w in words.into_iter().flatten() {
        // `run --on DEST --after DEST:ID`: the job there.
        let w = crate::remote::unqualify(&w);
        let job = resolve(store, w).map_err(|e| Fail::new(crate::exit::Exit::Usage, format!("--after: {}", e.msg)))?;
        if !ids.contains(&job.id) {
            ids.push(job.id);
        }
    }
    Ok(ids)
}
