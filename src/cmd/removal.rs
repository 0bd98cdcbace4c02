//! What `runrm` and `job clean` share: which jobs a removal of every
//! finished job keeps (those a queued job awaits, and those that ran
//! elsewhere), the one loop that removes, prints and counts, the sweep of
//! interrupted launches' and removals' leftovers, and the closing count.

use super::out::{clean, human_bytes, warn, Out};
use crate::exit::Res;
use crate::queue;
use crate::store::{self, Job, Legacy, State, Store};
use std::time::Duration;

/// The ids that a queued job waits for (`--after`): a removal of every
/// finished job keeps them, or the waiting job would be skipped.
pub fn awaited(jobs: &[(Job, State)]) -> Vec<String> {
    jobs.iter().filter(|(_, s)| *s == State::Queued).flat_map(|(j, _)| j.meta.after.iter().cloned()).collect()
}

/// The note for jobs left alone because they ran elsewhere.
pub fn keep_note(front: &str, kept: usize) {
    if kept > 0 {
        let s = if kept == 1 { "" } else { "s" };
        warn(&format!("{front}: kept {kept} job{s} that ran on another host or pid namespace (--force removes them)"));
    }
}

/// The note for jobs left alone because their watcher stays for processes
/// of theirs that still run (`state::lingering`).
pub fn linger_note(front: &str, kept: usize) {
    if kept > 0 {
        let s = if kept == 1 { "" } else { "s" };
        warn(&format!("{front}: kept {kept} ended job{s} whose processes still run (job stop ID ends them)"));
    }
}

/// What a removal did: jobs removed (or, in a dry run, that would be), the
/// bytes freed, and whether any could not be.
#[derive(Default)]
pub struct Tally {
    pub count: usize,
    pub freed: u64,
    pub failed: bool,
}

/// Removes each job (in batches, see `store::remove`), then each of the
/// old run scripts' jobs (or with `dry_run` only names them), one line
/// each; a failure is warned about, naming the front, and the others go
/// on. With `keep_awaited` (a removal of every finished job), each job is
/// judged again under the store's lock, just before it is removed: one
/// that a job queued since awaits (`--after`) is kept, and said so; the
/// store's removal itself checks under its lock that the job is still the
/// one listed.
pub fn remove_each(
    store: &Store,
    jobs: &[Job],
    old: &[Legacy],
    dry_run: bool,
    keep_awaited: bool,
    front: &str,
    out: &mut Out,
) -> Res<Tally> {
    let mut t = Tally::default();
    if dry_run {
        for job in jobs {
            out.line(&format!("would remove {}", clean(&job.id)))?;
            t.freed += store::disk_usage(&job.dir);
            t.count += 1;
        }
    } else {
        // Asked under the store's lock, just before each job would go.
        let mut awaited = keep_awaited.then(|| queue::Awaited::read(store));
        let keep = |job: &Job| awaited.as_mut().is_some_and(|a| a.contains(store, &job.id));
        let mut written = Ok(());
        store.remove_jobs(jobs, keep, |job, res| match res {
            // Removed meanwhile by another command: not this one's to count.
            Ok(store::Removed::Gone) => {}
            Ok(store::Removed::Freed(n)) => {
                if written.is_ok() {
                    written = out.line(&format!("removed {}", clean(&job.id)));
                }
                t.freed += n;
                t.count += 1;
            }
            Ok(store::Removed::Kept) => {
                warn(&format!("{front}: kept {}: a job queued since waits for it (--after)", clean(&job.id)))
            }
            Err(e) => {
                warn(&format!("{front}: {e}"));
                t.failed = true;
            }
        });
        written?;
    }
    for l in old {
        if dry_run {
            out.line(&format!("would remove {} (old run script)", clean(&l.id)))?;
            t.freed += l.files().map(|f| store::disk_usage(f)).sum::<u64>();
            t.count += 1;
            continue;
        }
        match store.remove_legacy(l) {
            Ok(n) => {
                out.line(&format!("removed {} (old run script)", clean(&l.id)))?;
                t.freed += n;
                t.count += 1;
            }
            Err(e) => {
                warn(&format!("{front}: {e}"));
                t.failed = true;
            }
        }
    }
    Ok(t)
}

/// The closing line: how many jobs went and what they freed (none after
/// a refusal with nothing removed: "removed 0 jobs" would only blur it).
pub fn report(t: &Tally, dry_run: bool, out: &mut Out) -> Res<()> {
    let verb = if dry_run { "would remove" } else { "removed" };
    let s = if t.count == 1 { "" } else { "s" };
    if t.count > 0 || !t.failed {
        out.line(&format!("{verb} {} job{s}, {} freed", t.count, human_bytes(t.freed)))?;
    }
    Ok(())
}

/// How long a hidden leftover (`.new-*`, `.rm-*`) is left alone: a launch
/// or a removal in progress takes milliseconds.
pub const LEFTOVER_AGE: Duration = Duration::from_secs(600);

/// Removes (or, with `dry_run`, names) the abandoned leftovers of
/// interrupted launches and removals; returns the bytes they held.
pub fn sweep_leftovers(store: &Store, dry_run: bool, out: &mut Out) -> Res<u64> {
    let (names, bytes) = store.sweep_leftovers(LEFTOVER_AGE, dry_run);
    for name in names {
        let verb = if dry_run { "would remove" } else { "removed" };
        out.line(&format!("{verb} {}: left by an interrupted launch or removal", clean(&name)))?;
    }
    Ok(bytes)
}
