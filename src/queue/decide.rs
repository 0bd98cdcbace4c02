//! One decision for one queue, under its lock (see the header of
//! `queue`): the slots judged, then the index walked in order; what each
//! `--after` job's state lets a waiting job do, read once per catch-up.

use super::{queue_of, start};
use crate::store::{self, Conf, End, QueueDir, State, Store};
use crate::{proc, state};
use std::collections::HashMap;
use std::time::Duration;

/// The queue's taken slots, each judged: one whose job no longer holds it
/// is freed (the lock held).
pub(super) fn judge_slots(store: &Store, q: &QueueDir, boot: &str) -> Vec<u32> {
    let mut taken: Vec<u32> = Vec::new();
    for (k, id) in q.slots() {
        match id {
            // Planted (not a link): never used, never removed.
            None => taken.push(k),
            Some(id) if holds_slot(store, &id, boot) => taken.push(k),
            Some(_) => q.free_slot(k),
        }
    }
    taken
}

/// What one catch-up has learnt of the jobs it read: their states, so
/// that a chain of `--after` jobs is read once per catch-up, not once per
/// waiting job. A state seen stale (a job ended since) only delays a
/// start: that job's end catches the queues up again.
#[derive(Default)]
pub(super) struct Seen {
    states: HashMap<String, Deps>,
}

pub(super) enum Decided {
    /// A job ended without running (others may now be decided), or one
    /// was found to decide (`suffixed`): another round.
    Ended,
    /// A reader found the lock held (see `READER_WAIT`).
    Busy,
    Nothing,
}

/// Does the job in a slot hold it: while it is seen running (or may be
/// running where it cannot be checked from here: another pid namespace
/// of this machine), and while it is being started (still `queued`, its
/// reserved status locked by the process starting it: the decider, then
/// the watcher it forked, until the watcher publishes it running). The
/// lock proves the starter alive: the kernel releases it when the last
/// process holding it dies.
fn holds_slot(store: &Store, id: &str, boot: &str) -> bool {
    let Ok(Some(mut job)) = store.get(id) else { return false };
    match state::of(&mut job, boot) {
        State::Running | State::Elsewhere => true,
        State::Queued => job.being_started(),
        _ => false,
    }
}

/// One decision for one queue (see the module's header), with its lock
/// (waited for at most `wait`; for ever without).
pub(super) fn decide(store: &Store, q: &QueueDir, seen: &mut Seen, wait: Option<Duration>) -> Decided {
    if !q.has_waiting() {
        return Decided::Nothing;
    }
    let lock = match wait {
        None => q.lock().map(Some),
        Some(w) => q.lock_within(w),
    };
    let _lock = match lock {
        Ok(Some(l)) => l,
        Ok(None) => return Decided::Busy,
        Err(_) => return Decided::Nothing,
    };
    decide_locked(store, q, seen, None)
}

/// One decision, the queue's lock held. `launched`: the entry and id of
/// a job just queued, when that launch is all that changed for this
/// decider: in the queue of `--after` jobs (no slots) only that job is
/// judged; in a named queue the index is walked only if a slot is free.
/// Whatever else is owed (a killed watcher's slot) is any other
/// command's catch-up.
pub(super) fn decide_locked(store: &Store, q: &QueueDir, seen: &mut Seen, launched: Option<(&str, &str)>) -> Decided {
    let conf = if q.name.is_empty() { Conf { slots: u32::MAX, paused: false } } else { q.conf() };
    let boot = proc::boot_id();
    let mut taken = judge_slots(store, q, &boot);
    if conf.paused || taken.len() as u64 >= u64::from(conf.slots) {
        return Decided::Nothing;
    }
    let waiting = match launched {
        Some((entry, id)) if q.name.is_empty() => vec![(entry.to_string(), id.to_string())],
        _ => q.waiting(),
    };
    let ns = proc::pid_ns();
    let mut ended = false;
    let mut indexed: Option<std::collections::HashSet<String>> = None;
    for (entry, id) in waiting {
        if taken.len() as u64 >= u64::from(conf.slots) {
            break;
        }
        let mut job = match store.get(&id) {
            Ok(Some(j)) if j.end.is_none() && j.meta.is_queued() => j,
            Ok(_) => {
                // Naming no job, or one that is not queued: a launcher
                // killed before it indexed the suffixed id it got.
                let ids = indexed.get_or_insert_with(|| q.waiting().into_iter().map(|(_, id)| id).collect());
                // Found: decided in the next round of this catch-up.
                ended |= suffixed(store, q, &entry, &id, ids);
                q.remove_waiting(&entry);
                continue;
            }
            Err(_) => continue,
        };
        // Queued in this boot from another pid namespace of this machine
        // (a container): its environment and working directory are
        // there; a command there starts it.
        if job.meta.boot_id == boot && job.meta.pid_ns.is_some() && job.meta.pid_ns != ns {
            continue;
        }
        seen.states.insert(id.clone(), Deps::Wait);
        match deps(store, &job.meta.after, &boot, seen) {
            Deps::Wait => continue,
            Deps::Skip(reason) => {
                if let Ok(end) = start::end_unrun(store, &mut job, State::Skipped, &reason) {
                    q.remove_waiting(&entry);
                    seen.states.insert(id.clone(), Deps::Skip(skip_reason(&id, &end)));
                    ended = true;
                }
                continue;
            }
            Deps::Ready => {}
        }
        let Ok(Some(staged)) = store.open_queued(&job.dir) else { continue };
        let slot = (!q.name.is_empty()).then(|| (0..).find(|k| !taken.contains(k)).unwrap_or(0));
        if let Some(k) = slot {
            if q.take_slot(k, &id).is_err() {
                continue;
            }
        }
        match start::start(store, &job, staged, slot) {
            Ok(()) => taken.extend(slot),
            // The watcher may have published the job running and died
            // before answering: then it holds its slot like any other.
            Err(_) if job.reread().is_ok() && (job.end.is_some() || !job.meta.is_queued()) => taken.extend(slot),
            Err(e) => {
                if let Some(k) = slot {
                    q.free_slot(k);
                }
                // It ends failed with the reason; if even that cannot be
                // recorded (a full disk), it stays waiting with its entry
                // and the next decision tries again: never queued without
                // an entry.
                match start::end_unrun(store, &mut job, State::Failed, &format!("could not start: {e}")) {
                    Ok(end) => {
                        seen.states.insert(id.clone(), Deps::Skip(skip_reason(&id, &end)));
                        ended = true;
                    }
                    Err(_) => continue,
                }
            }
        }
        q.remove_waiting(&entry);
    }
    if ended {
        Decided::Ended
    } else {
        Decided::Nothing
    }
}

/// An entry whose id names no queued job may stand for a job published
/// under a suffixed id (`ID_2`, …) by a launcher killed before it indexed
/// that id: each such job of this queue, queued and indexed under no
/// entry, is indexed under the entry's time (its place in the queue).
fn suffixed(
    store: &Store,
    q: &QueueDir,
    entry: &str,
    base: &str,
    indexed: &mut std::collections::HashSet<String>,
) -> bool {
    let mut found = false;
    let Some(ns) = entry.split_once('.').and_then(|(ns, _)| ns.parse::<i64>().ok()) else { return false };
    // `ID_2`, `ID_3`, … up to the first that names no job (a removed
    // job's id between is passed by: any queued job left without an entry
    // is indexed again by the next listing, `mend`).
    for n in 2..=100 {
        let job = match store.get(&store::nth_id(base, n)) {
            Ok(Some(job)) => job,
            Ok(None) => break,
            Err(_) => continue,
        };
        let id = job.id.clone();
        let here = queue_of(store, &job.meta);
        let stranded = job.end.is_none() && job.meta.is_queued() && here.path() == q.path();
        if stranded && !indexed.contains(&id) && q.add_waiting(ns, &id).is_ok() {
            indexed.insert(id);
            found = true;
        }
    }
    found
}

fn skip_reason(id: &str, end: &End) -> String {
    format!("after {id}: {}", store::describe_end(end))
}

#[derive(Clone)]
enum Deps {
    Ready,
    Wait,
    Skip(String),
}

/// Whether the jobs named by `--after` let a job start: all `done`. Each
/// job's state is read once per catch-up (`seen`).
fn deps(store: &Store, after: &[String], boot: &str, seen: &mut Seen) -> Deps {
    let mut wait = false;
    for id in after {
        let verdict = match seen.states.get(id) {
            Some(v) => v.clone(),
            None => {
                let v = dep(store, id, boot);
                seen.states.insert(id.clone(), v.clone());
                v
            }
        };
        match verdict {
            Deps::Ready => {}
            Deps::Wait => wait = true,
            skip => return skip,
        }
    }
    if wait {
        Deps::Wait
    } else {
        Deps::Ready
    }
}

/// What one `--after` job says: ready once `done`, wait while it may
/// still end `done`, skip otherwise.
fn dep(store: &Store, id: &str, boot: &str) -> Deps {
    match store.get(id) {
        Ok(Some(mut j)) => match state::of(&mut j, boot) {
            State::Done => Deps::Ready,
            // Not known to have ended (`elsewhere`: seen from another
            // host): wait, as for one that runs.
            State::Running | State::Queued | State::Elsewhere => Deps::Wait,
            s => {
                let how = j.end.as_ref().map_or(s.as_str().to_string(), store::describe_end);
                Deps::Skip(format!("after {id}: {how}"))
            }
        },
        Ok(None) => Deps::Skip(format!("after {id}: removed")),
        Err(d) => Deps::Skip(format!("after {id}: damaged: {}", d.reason)),
    }
}
