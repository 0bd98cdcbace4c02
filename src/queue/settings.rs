//! What `job queue` does to a queue: set its width, pause or resume it
//! (then start what that lets start), and show its running and waiting
//! jobs.

use super::{decide_locked, lock_to_change, state_of, Seen};
use crate::proc;
use crate::store::{Conf, QueueDir, State, Store};

/// Sets a queue's width or pauses it (`job queue`), then starts what the
/// change lets start.
pub fn configure(store: &Store, name: &str, slots: Option<u32>, paused: Option<bool>) -> Result<Conf, String> {
    store.create()?;
    let q = store.queue(name, &proc::place());
    let lock = lock_to_change(&q)?;
    let mut conf = q.conf();
    if let Some(n) = slots {
        conf.slots = n;
    }
    if let Some(p) = paused {
        conf.paused = p;
    }
    q.set_conf(conf)?;
    let ended = decide_locked(store, &q, &mut Seen::default(), None);
    drop(lock);
    if matches!(ended, super::Decided::Ended) {
        super::after_end(store);
    }
    Ok(conf)
}

/// What `job queue` shows of one queue.
pub struct Summary {
    pub name: String,
    pub conf: Conf,
    /// The running jobs: (slot, id).
    pub running: Vec<(u32, String)>,
    /// The waiting jobs' ids, in order.
    pub waiting: Vec<String>,
}

/// This place's named queues, or the one named.
pub fn summaries(store: &Store, only: Option<&str>) -> Vec<Summary> {
    let (place, old) = (proc::place(), proc::old_place());
    let boot = proc::boot_id();
    let mut qs: Vec<QueueDir> =
        store.queues().into_iter().filter(|q| (q.place == place || q.place == old) && !q.name.is_empty()).collect();
    if let Some(name) = only {
        qs.retain(|q| q.name == name);
        if qs.is_empty() {
            qs.push(store.queue(name, &place));
        }
    }
    qs.iter()
        .map(|q| Summary {
            name: q.name.clone(),
            conf: q.conf(),
            running: q
                .slots()
                .into_iter()
                .filter_map(|(k, id)| Some((k, id?)))
                .filter(|(_, id)| state_of(store, id, &boot) == Some(State::Running))
                .collect(),
            waiting: q
                .waiting()
                .into_iter()
                .map(|(_, id)| id)
                .filter(|id| state_of(store, id, &boot) == Some(State::Queued))
                .collect(),
        })
        .collect()
}
