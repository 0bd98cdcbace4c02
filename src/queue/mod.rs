//! Queues, slots and `--after`, with no daemon and no process per waiting
//! job. The algorithm:
//!
//! 1. `run -q Q` (or `--after`) stages the job like any other, saves its
//!    environment in the 0600 file `env`, and publishes it whole, with
//!    `queued_at` and no `pid` in `meta.json`: that is what `queued` means.
//!    Then, under the queue's lock, it adds `wait/NS.ID` to the queue's
//!    index (NS: the nanosecond it was queued, so the index sorts in order).
//! 2. Deciding what starts (`decide`, for one queue) happens under the
//!    queue's lock (flock on `.queues/Q@PLACE/lock`), so at most one
//!    process decides for a queue at a time. It frees each slot (`run/K`)
//!    whose job no longer holds it, then walks the index in order: a job
//!    whose `--after` jobs are all `done` takes the lowest free slot K and
//!    is started; one whose `--after` job ended any other way ends
//!    `skipped`; one still waiting for its `--after` jobs is passed over.
//!    Never more than N: a slot is taken only under the lock, and held
//!    while its job runs and while it is being started (still `queued`,
//!    its reserved status locked by the decider or the watcher it forked:
//!    a lock the kernel drops when they die), so a decider killed between
//!    forking the watcher and the watcher publishing the job leaves the
//!    slot held, not given away twice.
//! 3. Starting is the launch hand-off: fork a watcher, which forks the job
//!    with the saved environment (plus `RUN_QUEUE`, `RUN_SLOT`) in its
//!    working directory, writes `pid` and `meta.json` by rename (the moment
//!    it stops being queued), removes `env`, and answers; only then is the
//!    lock released. A decider killed half-way leaves an index entry or a
//!    slot that the next decision mends. A start that fails ends the job
//!    `failed` with the reason; if even that cannot be recorded (a full
//!    disk), the job keeps its index entry and the next decision tries
//!    again: a queued job always has its entry.
//! 4. Who decides: the launcher after queueing; the watcher of every job
//!    after it has recorded the end (through `watch::Plan::on_end`, a
//!    function passed in: this module starts watchers, so it sits above
//!    `watch`, which cannot import it); `job stop` of a queued job; `job
//!    queue --slots/--resume`; and every front, which says so in one line
//!    after opening the store (`catch_up`, for all of this place's
//!    queues), which costs one failed open when no queue exists, and one
//!    directory read per queue when nothing waits. So a killed
//!    watcher or a reboot delays the next start until the next command.
//!    A front waits for a queue's lock at most `READER_WAIT` (a decider
//!    may be stopped or hung) and then answers without deciding, saying
//!    so; the others wait for it. A catch-up goes round this place's
//!    queues until a round ends no job, so a skipped chain is skipped to
//!    its end, across queues, in one catch-up.
//! 5. Places: a queue is `NAME@HOST~PIDNS`; a process decides only for its
//!    own place, so a job starts only on the host and in the pid namespace
//!    where it was queued, even in a store shared over NFS.
//!
//! A decision reads the index, the slots and the jobs they name: its cost
//! does not grow with the number of ended jobs in the store, and each
//! `--after` job's state is read once per catch-up (`Seen`), not once per
//! job that waits for it.

mod awaited;
mod settings;
mod start;

pub use awaited::Awaited;

pub use settings::{configure, summaries};

use crate::store::{self, Conf, End, Job, Meta, QueueDir, Staged, State, Store};
use crate::{proc, state};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

/// The queue a job's meta names (the unnamed one for `--after` alone).
pub fn queue_of(store: &Store, meta: &Meta) -> QueueDir {
    let place = meta.place.clone().unwrap_or_else(proc::place);
    store.queue(meta.queue.as_deref().unwrap_or(""), &place)
}

/// Publishes a staged job as queued, adds it to its queue's index, and
/// starts what can start (perhaps this job). On failure nothing is left.
pub fn enqueue(store: &Store, staged: Staged, meta: &mut Meta) -> Result<PathBuf, String> {
    let q = queue_of(store, meta);
    let published = (|| {
        let _lock = q.lock()?;
        // The entry first, under the id the job will most likely get: a
        // launcher killed before it publishes leaves an entry naming no
        // job (or another one), which the next decision drops; one killed
        // after leaves a job that is queued and indexed.
        let ns = chrono::Local::now().timestamp_nanos_opt().unwrap_or(0);
        let base = meta.id.clone();
        let entry = q.add_waiting(ns, &base)?;
        let dir = match store.publish(&staged, meta) {
            Ok(d) => d,
            Err(e) => {
                q.remove_waiting(&entry);
                return Err(e);
            }
        };
        if meta.id != base {
            // The id was taken: a suffixed one, indexed under the same time.
            let added = q.add_waiting(ns, &meta.id);
            q.remove_waiting(&entry);
            if let Err(e) = added {
                let _ = store.remove(&meta.id);
                return Err(e);
            }
        }
        Ok(dir)
    })();
    let dir = match published {
        Ok(d) => d,
        Err(e) => {
            store.discard(&staged);
            return Err(e);
        }
    };
    // Its status lock goes with the staged files: a starter takes it.
    drop(staged);
    after_end(store);
    Ok(dir)
}

/// Starts whatever should be running in this place's queues and is not:
/// there is no daemon, so every front catches the queues up after opening
/// the store (a killed watcher or a reboot leaves that to the next
/// command). Cheap when nothing waits. A front waits for a queue's lock
/// at most `READER_WAIT`: a decider that is stopped or hung never blocks
/// it; it answers without deciding for that queue. Returns the names of
/// the queues it could not decide for (the front says so on stderr).
pub fn catch_up(store: &Store) -> Vec<String> {
    catch_up_as(store, Who::Reader)
}

/// The hook every watcher calls once it has recorded its job's end: it
/// waits for each queue's lock (its end may let a job start).
pub fn after_end(store: &Store) {
    catch_up_as(store, Who::Decider);
}

/// How long a reader waits for a queue's lock before answering without
/// deciding: a decision takes milliseconds.
pub const READER_WAIT: Duration = Duration::from_millis(500);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Who {
    /// Waits for each queue's lock for as long as it takes.
    Decider,
    /// Waits at most `READER_WAIT`.
    Reader,
}

fn catch_up_as(store: &Store, who: Who) -> Vec<String> {
    let mut busy: Vec<String> = Vec::new();
    let queues = store.queues();
    if queues.is_empty() {
        return busy;
    }
    let place = proc::place();
    let mine: Vec<QueueDir> = queues.into_iter().filter(|q| q.place == place).collect();
    let mut seen = Seen::default();
    // A job that ends without running (skipped) may decide another's fate
    // in another queue: go round again while a round ends any, so a
    // chain is skipped to its end in one catch-up. Each productive round
    // ends at least one waiting job, so this ends.
    loop {
        let mut ended = false;
        for q in &mine {
            match decide(store, q, &mut seen, who) {
                Decided::Ended => ended = true,
                Decided::Busy if !busy.contains(&q.name) => busy.push(q.name.clone()),
                Decided::Busy => {}
                Decided::Nothing => {}
            }
        }
        if !ended {
            break;
        }
    }
    busy
}

/// What one catch-up has learnt of the jobs it read: their states, so
/// that a chain of `--after` jobs is read once per catch-up, not once per
/// waiting job. A state seen stale (a job ended since) only delays a
/// start: that job's end catches the queues up again.
#[derive(Default)]
struct Seen {
    states: HashMap<String, Deps>,
}

enum Decided {
    /// A job ended without running: others may now be decided.
    Ended,
    /// A reader found the lock held (see `READER_WAIT`).
    Busy,
    Nothing,
}

/// Does the job in a slot hold it: while it is seen running, and while it
/// is being started (still `queued`, its reserved status locked by the
/// process starting it: the decider, then the watcher it forked, until
/// the watcher publishes it running). The lock proves the starter alive:
/// the kernel releases it when the last process holding it dies.
fn holds_slot(store: &Store, id: &str, boot: &str) -> bool {
    let Ok(Some(mut job)) = store.get(id) else { return false };
    match state::of(&mut job, boot) {
        State::Running => true,
        State::Queued => job.being_started(),
        _ => false,
    }
}

/// One decision for one queue (see the module's header).
fn decide(store: &Store, q: &QueueDir, seen: &mut Seen, who: Who) -> Decided {
    if !q.has_waiting() {
        return Decided::Nothing;
    }
    let lock = match who {
        Who::Decider => q.lock().map(Some),
        Who::Reader => q.lock_within(READER_WAIT),
    };
    let _lock = match lock {
        Ok(Some(l)) => l,
        Ok(None) => return Decided::Busy,
        Err(_) => return Decided::Nothing,
    };
    let conf = if q.name.is_empty() { Conf { slots: u32::MAX, paused: false } } else { q.conf() };
    let boot = proc::boot_id();
    let mut taken: Vec<u32> = Vec::new();
    for (k, id) in q.slots() {
        if holds_slot(store, &id, &boot) {
            taken.push(k);
        } else {
            q.free_slot(k);
        }
    }
    if conf.paused {
        return Decided::Nothing;
    }
    let mut ended = false;
    for (entry, id) in q.waiting() {
        if taken.len() as u64 >= u64::from(conf.slots) {
            break;
        }
        let mut job = match store.get(&id) {
            Ok(Some(j)) => j,
            Ok(None) => {
                q.remove_waiting(&entry);
                continue;
            }
            Err(_) => continue,
        };
        if job.end.is_some() || !job.meta.is_queued() {
            q.remove_waiting(&entry);
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

/// The state of the job `id`; none if it is gone or damaged.
fn state_of(store: &Store, id: &str, boot: &str) -> Option<State> {
    let mut job = store.get(id).ok()??;
    Some(state::of(&mut job, boot))
}

/// `job stop` of a queued job: it ends `stopped` without ever starting.
/// None if it started (or ended) meanwhile: the caller goes on as for a
/// running job.
pub fn stop_queued(store: &Store, job: &mut Job) -> Result<Option<End>, String> {
    let q = queue_of(store, &job.meta);
    let end = {
        let _lock = q.lock()?;
        job.reread()?;
        if job.end.is_some() || !job.meta.is_queued() {
            return Ok(None);
        }
        start::end_unrun(store, job, State::Stopped, "stopped while queued")?
    };
    after_end(store);
    Ok(Some(end))
}
