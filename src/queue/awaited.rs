//! What the waiting jobs await (`--after`), read from the queues' indexes
//! (every place's: a job queued on another host awaits too). A removal of
//! many jobs asks it at the moment it removes each one, and re-reads only
//! the indexes that changed since: a `run --after X` queued while the
//! removal runs keeps X.

use crate::store::{QueueDir, Store};
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::SystemTime;

pub struct Awaited {
    /// Each queue's index as last read: when it changed then, and the ids
    /// its jobs await.
    queues: Vec<(PathBuf, Option<SystemTime>, HashSet<String>)>,
}

impl Awaited {
    pub fn read(store: &Store) -> Awaited {
        let mut a = Awaited { queues: Vec::new() };
        a.refresh(store);
        a
    }

    /// Does a waiting job await `id` now (a queue's index re-read if it
    /// changed since it was last read)?
    pub fn contains(&mut self, store: &Store, id: &str) -> bool {
        self.refresh(store);
        self.queues.iter().any(|(_, _, ids)| ids.contains(id))
    }

    fn refresh(&mut self, store: &Store) {
        for q in store.queues() {
            let changed = q.waiting_changed();
            let known = self.queues.iter().position(|(p, _, _)| p == q.path());
            if known.is_some_and(|i| changed.is_some() && self.queues[i].1 == changed) {
                continue;
            }
            let (ids, whole) = awaited_in(store, &q);
            // An entry whose job is not published yet (a launch under way)
            // is read again next time, however the index changes.
            let stamp = if whole { changed } else { None };
            match known {
                Some(i) => self.queues[i] = (q.path().to_path_buf(), stamp, ids),
                None => self.queues.push((q.path().to_path_buf(), stamp, ids)),
            }
        }
    }
}

/// The ids the jobs waiting in one queue await; and whether every entry
/// named a job.
fn awaited_in(store: &Store, q: &QueueDir) -> (HashSet<String>, bool) {
    let mut whole = true;
    let mut ids = HashSet::new();
    for (_, id) in q.waiting() {
        match store.get(&id) {
            Ok(Some(j)) if j.end.is_none() && j.meta.is_queued() => ids.extend(j.meta.after),
            Ok(Some(_)) => {}
            _ => whole = false,
        }
    }
    (ids, whole)
}
