//! Queued jobs that their queue's index does not name (its directory
//! deleted or replaced, its entries lost, a launcher killed at the wrong
//! moment) are never stranded: a listing, which reads every job anyway,
//! indexes each again under the time it was queued (so it keeps its place
//! in the queue), or says why it cannot.

use super::{catch_up, queue_of};
use crate::proc;
use crate::store::{Job, QueueDir, State, Store};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

/// Indexes again this machine's queued jobs that their queue does not
/// name, under the queue's lock (not waited for: a busy queue is left to
/// the next listing); then starts what that lets start. Returns
/// one line for each job indexed again or that cannot be.
pub fn mend(store: &Store, jobs: &[(Job, State)]) -> Vec<String> {
    let (place, old) = (proc::place(), proc::old_place());
    // Each queue of this machine with its queued and its running jobs.
    let mut queues: HashMap<PathBuf, (QueueDir, Vec<&Job>, Vec<&Job>)> = HashMap::new();
    for (j, s) in jobs.iter().filter(|(j, _)| !j.is_slurm() && j.meta.queued_at.is_some()) {
        let queued = *s == State::Queued && j.meta.is_queued();
        let holds_slot = *s == State::Running && j.meta.slot.is_some();
        if !queued && !holds_slot {
            continue;
        }
        let q = queue_of(store, &j.meta);
        if q.place == place || q.place == old {
            let e = queues.entry(q.path().to_path_buf()).or_insert_with(|| (q, Vec::new(), Vec::new()));
            if queued {
                e.1.push(j)
            } else {
                e.2.push(j)
            }
        }
    }
    let mut said = Vec::new();
    for (q, queued, running) in queues.into_values() {
        let named = |q: &QueueDir| q.waiting().into_iter().map(|(_, id)| id).collect::<HashSet<String>>();
        let held = |q: &QueueDir| q.slots().into_iter().map(|(k, _)| k).collect::<HashSet<u32>>();
        let (names, slots) = (named(&q), held(&q));
        let unheld = |j: &&Job| j.meta.slot.is_some_and(|k| !slots.contains(&k));
        if queued.iter().all(|j| names.contains(&j.id)) && !running.iter().any(unheld) {
            continue;
        }
        let which =
            if q.name.is_empty() { "the queue of --after jobs".to_string() } else { format!("queue {}", q.name) };
        let wait = q.path().join("wait");
        // Not waited for: the catch-up before has had the reader's wait;
        // a queue busy now is mended by the next listing.
        let _lock = match q.lock_within(std::time::Duration::ZERO) {
            Ok(Some(l)) => l,
            Ok(None) => continue,
            Err(e) => {
                for j in &queued {
                    said.push(format!("{} is queued in {which} but cannot be indexed: {e}", j.id));
                }
                continue;
            }
        };
        // Again under the lock: a launch, a start or an end may have been
        // under way. A running job's slot first (its link lost with the
        // queue's directory): never given to another job.
        let slots = held(&q);
        for j in running {
            let Some(k) = j.meta.slot.filter(|k| !slots.contains(k)) else { continue };
            if store.get(&j.id).is_ok_and(|j| j.is_some_and(|j| j.end.is_none())) {
                let _ = q.take_slot(k, &j.id);
            }
        }
        let names = named(&q);
        for j in queued.into_iter().filter(|j| !names.contains(&j.id)) {
            let Ok(Some(j)) = store.get(&j.id) else { continue };
            if j.end.is_some() || !j.meta.is_queued() || j.being_started() {
                continue;
            }
            let ns = j.meta.queued_at.as_deref().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
            let ns = ns.and_then(|t| t.timestamp_nanos_opt()).unwrap_or(0);
            match q.add_waiting(ns, &j.id) {
                Ok(_) => said.push(format!(
                    "{} was queued in {which} with no entry in {}: indexed again",
                    j.id,
                    wait.display()
                )),
                Err(e) => said.push(format!("{} is queued in {which} but cannot be indexed: {e}", j.id)),
            }
        }
    }
    if said.iter().any(|s| s.ends_with("indexed again")) {
        catch_up(store);
    }
    said
}
