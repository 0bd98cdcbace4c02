//! `job clean`: remove ended jobs older than a cutoff, and what `runrm`
//! shares with it about jobs that ran elsewhere.

use crate::cli;
use crate::cmd::out::{clean, human_bytes, warn, Out};
use crate::cmd::resolve::load_all;
use crate::cmd::runrm::{awaited, sweep_leftovers};
use crate::exit::{Exit, Res};
use crate::store::{self, Job, State, Store};
use std::time::Duration;

pub(super) fn clean_jobs(store: &Store, a: cli::JobClean) -> Res<Exit> {
    let cutoff = a.older_than.unwrap_or(Duration::from_secs(7 * 86_400));
    let now = chrono::Local::now().fixed_offset();
    let mut out = Out::new();
    let (mut count, mut freed, mut failed, mut kept) = (0, 0u64, false, 0);
    let all = load_all(store, "job")?;
    let awaited = awaited(&all);
    for (job, st) in all {
        if matches!(st, State::Running | State::Queued) || awaited.contains(&job.id) {
            continue;
        }
        if st == State::Elsewhere && !a.force {
            kept += 1;
            continue;
        }
        if !a.all {
            let ended = match &job.end {
                Some(e) => e.ended_at,
                None => last_sign_of_life(&job),
            };
            let age = (now - ended).to_std().unwrap_or(Duration::ZERO);
            if age < cutoff {
                continue;
            }
        }
        if a.dry_run {
            out.line(&format!("would remove {}", job.id))?;
            freed += store::disk_usage(&job.dir);
            count += 1;
            continue;
        }
        match store.remove_job(&job) {
            Ok(n) => {
                out.line(&format!("removed {}", clean(&job.id)))?;
                freed += n;
                count += 1;
            }
            Err(e) => {
                warn(&format!("job: {e}"));
                failed = true;
            }
        }
    }
    freed += sweep_leftovers(store, a.dry_run, &mut out)?;
    keep_note("job", kept);
    let verb = if a.dry_run { "would remove" } else { "removed" };
    if count > 0 || !failed {
        out.line(&format!("{verb} {count} job{}, {} freed", if count == 1 { "" } else { "s" }, human_bytes(freed)))?;
    }
    out.flush()?;
    Ok(if failed { Exit::Error } else { Exit::Ok })
}

/// Why a job in state `elsewhere` cannot be judged from here.
pub fn elsewhere(job: &Job) -> String {
    format!("no end recorded, and it ran on {} (another host or pid namespace), where it may still run", job.meta.host)
}

/// The note for jobs left alone because they ran elsewhere.
pub fn keep_note(front: &str, kept: usize) {
    if kept > 0 {
        let s = if kept == 1 { "" } else { "s" };
        warn(&format!("{front}: kept {kept} job{s} that ran on another host or pid namespace (--force removes them)"));
    }
}

/// For a lost job (no end recorded): when its log last changed.
fn last_sign_of_life(job: &Job) -> chrono::DateTime<chrono::FixedOffset> {
    std::fs::symlink_metadata(job.log())
        .and_then(|m| m.modified())
        .map(|t| chrono::DateTime::<chrono::Local>::from(t).fixed_offset())
        .unwrap_or(job.started)
}
