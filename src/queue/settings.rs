//! What `job queue` does to a queue: set its width, pause or resume it
//! (then start what that lets start), and show its running and waiting
//! jobs.

use super::{decide, state_of, Seen, Who};
use crate::proc;
use crate::store::{Conf, QueueDir, State, Store};

/// Sets a queue's width or pauses it (`job queue`), then starts what the
/// change lets start.
pub fn configure(store: &Store, name: &str, slots: Option<u32>, paused: Option<bool>) -> Result<Conf, String> {
    store.create()?;
    let q = store.queue(name, &proc::place());
    let conf = {
        let _lock = q.lock()?;
        let mut c = q.conf();
        if let Some(n) = slots {
            c.slots = n;
        }
        if let Some(p) = paused {
            c.paused = p;
        }
        q.set_conf(c)?;
        c
    };
    decide(store, &q, &mut Seen::default(), Who::Decider);
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
    let place = proc::place();
    let boot = proc::boot_id();
    let mut qs: Vec<QueueDir> = store.queues().into_iter().filter(|q| q.place == place && !q.name.is_empty()).collect();
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
