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
//! 4. Who decides: the launcher, under the lock it queued the job with,
//!    for what its launch changed only (in the queue of `--after` jobs,
//!    its own job; in a named queue, the walk if a slot is free), or,
//!    into an idle queue (not paused, nothing waiting, a slot free), not
//!    queueing at all: the job is started at once as any job launched at
//!    once, its slot's link named before it is published (`slot_now`,
//!    `store::SlotHold`); the watcher of every job after it has recorded
//!    the end (through `watch::Plan::on_end`, a function passed in: this
//!    module starts watchers, so it sits above `watch`, which cannot
//!    import it); `job stop` of a queued job; `job queue
//!    --slots/--resume`; and every front, which says so in one line after
//!    opening the store (`catch_up`, for all of this machine's queues),
//!    which costs one failed open when no queue exists, and one directory
//!    read per queue when nothing waits. So a killed watcher or a reboot
//!    delays the next start until the next command. A front waits for the
//!    queues' locks `READER_WAIT` at most in all (a decider may be stopped
//!    or hung) and then answers without deciding, saying so; a command
//!    that changes a queue waits `WRITER_WAIT`, then fails naming the
//!    holder; watchers wait for it. A catch-up goes round this machine's
//!    queues until a round ends no job, so a skipped chain is skipped to
//!    its end, across queues, in one catch-up. A listing also indexes
//!    again the queued jobs their queue does not name (`mend`).
//! 5. Places: a queue is `NAME@MACHINE` (the machine id, which survives
//!    reboots and host renames); a process decides only for its own
//!    machine's queues, so a job starts only on the machine where it was
//!    queued, even in a store shared over NFS; and only in the pid
//!    namespace it was queued in while that boot lasts.
//!
//! A decision reads the index, the slots and the jobs they name: its cost
//! does not grow with the number of ended jobs in the store, and each
//! `--after` job's state is read once per catch-up (`Seen`), not once per
//! job that waits for it.

mod awaited;
mod decide;
mod mend;
mod settings;
mod start;

pub use awaited::Awaited;
pub use mend::mend;

pub use settings::{configure, summaries};

use decide::{decide, decide_locked, judge_slots, Decided, Seen};

use crate::store::{End, Job, Meta, QueueDir, SlotHold, Staged, State, Store};
use crate::{proc, state};
use std::path::PathBuf;
use std::time::Duration;

/// The queue a job's meta names (the unnamed one for `--after` alone).
pub fn queue_of(store: &Store, meta: &Meta) -> QueueDir {
    let place = meta.place.clone().unwrap_or_else(proc::place);
    store.queue(meta.queue.as_deref().unwrap_or(""), &place)
}

/// Publishes a staged job as queued, adds it to its queue's index, and
/// starts what this launch can start (perhaps this job), under one hold
/// of the queue's lock. On failure nothing is left.
pub fn enqueue(store: &Store, staged: Staged, meta: &mut Meta) -> Result<PathBuf, String> {
    let q = queue_of(store, meta);
    let lock = match lock_to_change(&q) {
        Ok(l) => l,
        Err(e) => {
            store.discard(&staged);
            return Err(format!("{e}; the job was not queued"));
        }
    };
    let published = (|| {
        // The entry first, under the id the job will most likely get: a
        // launcher killed before it publishes leaves an entry naming no
        // job (or another one), which the next decision drops; one killed
        // after leaves a job that is queued and indexed (under a suffixed
        // id, its base's entry: the next decision finds it, `suffixed`).
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
        if meta.id == base {
            return Ok((dir, entry));
        }
        // The id was taken: a suffixed one, indexed under the same time.
        let added = q.add_waiting(ns, &meta.id);
        q.remove_waiting(&entry);
        match added {
            Ok(entry) => Ok((dir, entry)),
            Err(e) => {
                let _ = store.remove(&meta.id);
                Err(e)
            }
        }
    })();
    let (dir, entry) = match published {
        Ok(d) => d,
        Err(e) => {
            store.discard(&staged);
            return Err(format!("{e}; the job was not queued"));
        }
    };
    // Its status lock goes with the staged files: a starter takes it.
    drop(staged);
    let ended = decide_locked(store, &q, &mut Seen::default(), Some((&entry, &meta.id)));
    drop(lock);
    if matches!(ended, Decided::Ended) {
        // A job ended without running: others, in any queue, may follow.
        after_end(store);
    }
    Ok(dir)
}

/// A slot for a job launched into an idle queue, which then starts at
/// once as any job launched at once (`launch`), its slot's link named
/// before it is published (`store::SlotHold`): when the queue is not
/// paused, no job waits in it (first in, first out) and a slot is free.
/// None otherwise: the job is queued (`enqueue`). The queue's lock is
/// held by what this returns.
pub fn slot_now(store: &Store, meta: &Meta) -> Result<Option<SlotHold>, String> {
    if meta.queue.is_none() || !meta.after.is_empty() {
        return Ok(None);
    }
    let queue = queue_of(store, meta);
    let lock = lock_to_change(&queue)?;
    let conf = queue.conf();
    if conf.paused || queue.has_waiting() {
        return Ok(None);
    }
    let taken = judge_slots(store, &queue, &proc::boot_id());
    if taken.len() as u64 >= u64::from(conf.slots) {
        return Ok(None);
    }
    let slot = (0..).find(|k| !taken.contains(k)).unwrap_or(0);
    Ok(Some(SlotHold { queue, slot, lock }))
}

/// Starts whatever should be running in this place's queues and is not:
/// there is no daemon, so every front catches the queues up after opening
/// the store (a killed watcher or a reboot leaves that to the next
/// command). Cheap when nothing waits. A front waits for the queues' locks
/// at most `READER_WAIT` in all: a decider that is stopped or hung never
/// blocks it; it answers without deciding for that queue. Returns the
/// names of the queues it could not decide for (the front says so on
/// stderr).
pub fn catch_up(store: &Store) -> Vec<String> {
    catch_up_as(store, Who::Reader)
}

/// The hook every watcher calls once it has recorded its job's end: it
/// waits for each queue's lock (its end may let a job start).
pub fn after_end(store: &Store) {
    catch_up_as(store, Who::Decider);
}

/// How long a reader waits for the queues' locks before answering without
/// deciding, in all (one held lock or many): a decision takes
/// milliseconds.
pub const READER_WAIT: Duration = Duration::from_millis(500);

/// How long a command that changes a queue (`run -q`, `job queue
/// --slots/--pause/--resume`, `job stop` of a queued job) waits for its
/// lock before giving up with an error naming the queue and the holder.
pub const WRITER_WAIT: Duration = Duration::from_secs(5);

/// The queue's lock for a command that changes the queue: within
/// `WRITER_WAIT`, else an error naming the queue and, where /proc/locks
/// tells, the process holding it.
fn lock_to_change(q: &QueueDir) -> Result<std::fs::File, String> {
    if let Some(l) = q.lock_within(WRITER_WAIT)? {
        return Ok(l);
    }
    let which = if q.name.is_empty() { "the queue of --after jobs".to_string() } else { format!("queue {}", q.name) };
    let holder = q
        .lock_inode()
        .and_then(|(dev, ino)| proc::flock_holder(dev, ino))
        .map(|(pid, comm)| format!(" (process {pid}, {comm}; a stopped one goes on with `kill -CONT {pid}`)"))
        .unwrap_or_default();
    Err(format!(
        "{which}: another command has held its lock for {} s{holder}, {}",
        WRITER_WAIT.as_secs(),
        q.path().join("lock").display()
    ))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Who {
    /// Waits for each queue's lock for as long as it takes.
    Decider,
    /// Waits `READER_WAIT` at most, for all the queues.
    Reader,
}

fn catch_up_as(store: &Store, who: Who) -> Vec<String> {
    let mut busy: Vec<String> = Vec::new();
    let queues = store.queues();
    if queues.is_empty() {
        return busy;
    }
    let (place, old) = (proc::place(), proc::old_place());
    let mine: Vec<QueueDir> = queues.into_iter().filter(|q| q.place == place || q.place == old).collect();
    let mut seen = Seen::default();
    let until = std::time::Instant::now() + READER_WAIT;
    // A job that ends without running (skipped) may decide another's fate
    // in another queue: go round again while a round ends any, so a
    // chain is skipped to its end in one catch-up. Each productive round
    // ends at least one waiting job, so this ends.
    loop {
        let mut ended = false;
        for q in &mine {
            let wait = match who {
                Who::Decider => None,
                Who::Reader => Some(until.saturating_duration_since(std::time::Instant::now())),
            };
            match decide(store, q, &mut seen, wait) {
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
        let _lock = lock_to_change(&q)?;
        job.reread()?;
        if job.end.is_some() || !job.meta.is_queued() {
            return Ok(None);
        }
        start::end_unrun(store, job, State::Stopped, "stopped while queued")?
    };
    // What the end lets start or skip; a queue busy past `READER_WAIT` is
    // left to the next command, as a reader leaves it.
    catch_up(store);
    Ok(Some(end))
}
