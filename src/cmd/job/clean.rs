//! `job clean`: remove ended jobs older than a cutoff (all with `--all`),
//! keeping what a queued job awaits and, without `--force`, what ran
//! elsewhere, nor an ended job whose processes still run (the judgement
//! and the loop are `removal`'s, shared with `runrm`).

use crate::cli;
use crate::cmd::out::Out;
use crate::cmd::removal::{awaited, keep_note, linger_note, remove_each, report, sweep_leftovers};
use crate::cmd::resolve::load_all;
use crate::exit::{Exit, Res};
use crate::store::{Job, State, Store};
use std::time::Duration;

pub(super) fn clean(store: &Store, a: cli::JobClean) -> Res<Exit> {
    let cutoff = a.older_than.unwrap_or(Duration::from_secs(7 * 86_400));
    let now = chrono::Local::now().fixed_offset();
    let mut out = Out::new();
    let (mut kept, mut lingering) = (0, 0);
    let boot = crate::proc::boot_id();
    let all = load_all(store, "job")?;
    let awaited = awaited(&all);
    let mut doomed = Vec::new();
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
        if crate::state::lingering(&job, &boot) {
            lingering += 1;
            continue;
        }
        doomed.push(job);
    }
    let mut tally = remove_each(store, &doomed, &[], a.dry_run, true, "job", &mut out)?;
    tally.freed += sweep_leftovers(store, a.dry_run, &mut out)?;
    keep_note("job", kept);
    linger_note("job", lingering);
    report(&tally, a.dry_run, &mut out)?;
    out.flush()?;
    Ok(if tally.failed { Exit::Error } else { Exit::Ok })
}

/// For a lost job (no end recorded): when its log last changed.
fn last_sign_of_life(job: &Job) -> chrono::DateTime<chrono::FixedOffset> {
    std::fs::symlink_metadata(job.log())
        .and_then(|m| m.modified())
        .map(|t| chrono::DateTime::<chrono::Local>::from(t).fixed_offset())
        .unwrap_or(job.started)
}
