//! `runs`: one line per job, newest last; `--json` for programs.

use super::out::{json_line, warn, Out};
use super::parse;
use super::resolve::with_states;
use super::view::{legacy_summary, queue_notes, summary_noted, view};
use crate::cli;
use crate::exit::{Exit, Res};
use crate::state;
use crate::store::{Job, Legacy, Scan, State, Store};
use std::ffi::OsString;

pub fn main(args: Vec<OsString>) -> Res<Exit> {
    let a: cli::Runs = parse(args)?;
    if let Some(which) = a.complete_ids {
        return complete_ids(which);
    }
    let store = super::open_store()?;
    super::catch_up(&store, "runs");
    let project = match a.project {
        true => Some(crate::launch::project_of(&super::current_dir()?).to_string_lossy().into_owned()),
        false => None,
    };
    let scan = store.scan()?;
    // `-n N` alone reads only the newest jobs, where their ids can tell
    // which they are (see `Store::newest`).
    let newest = a.last.filter(|_| a.state.is_empty() && !a.project);
    if a.json && newest.is_none_or(|_| scan.queues) {
        return json_all(&store, &scan, &a, project);
    }
    let (all, old) = match newest.and_then(|n| Some((n, store.newest(&scan, n)?))) {
        Some((n, (jobs, damaged))) => {
            (with_states("runs", jobs, &damaged), store.legacy_in(&scan, Some(n), |_, _| true))
        }
        None => {
            let (jobs, damaged) = store.list_of(&scan);
            (with_states("runs", jobs, &damaged), store.legacy_in(&scan, None, |_, _| true))
        }
    };
    // A queued job's place counts every job of its queue, shown or not.
    let notes = queue_notes(&all);
    let jobs: Vec<_> = all
        .into_iter()
        .filter(|(_, s)| a.state.is_empty() || a.state.contains(s))
        .filter(|(j, _)| project.as_ref().is_none_or(|p| j.meta.project == *p || j.meta.cwd == *p))
        .collect();
    let jobs = super::last(jobs, a.last);
    let filtered = !a.state.is_empty() || a.project;
    let mut out = Out::new();
    if a.json {
        out.json_lines(jobs.iter().map(|(j, s)| view(j, *s)))?;
    } else if jobs.is_empty() && !filtered && old.is_empty() {
        warn(&format!("no jobs in {}", store.root().display()));
    } else {
        // The old run scripts' jobs, in time order among the others.
        let old: Vec<(Legacy, bool)> = old
            .into_iter()
            .map(|l| {
                let running = state::legacy_running(&l);
                (l, running)
            })
            .filter(|(_, running)| !filtered || (*running && a.state.contains(&State::Running) && !a.project))
            .collect();
        let note = |id: &String| notes.get(id).map_or("", String::as_str);
        let mut lines: Vec<(chrono::DateTime<chrono::FixedOffset>, String)> =
            jobs.iter().map(|(job, st)| (job.started, summary_noted(&out, job, *st, note(&job.id)))).collect();
        lines.extend(old.iter().map(|(l, running)| (l.started, legacy_summary(&out, l, *running))));
        lines.sort_by_key(|(t, _)| *t);
        let lines = super::last(lines, a.last);
        if lines.is_empty() {
            warn(&format!("no matching jobs in {}", store.root().display()));
        }
        for (_, line) in lines {
            out.painted(&line)?;
        }
    }
    out.flush()?;
    Ok(Exit::Ok)
}

/// `runs --json` of every job (or of those its filters keep): each job
/// made into its line as soon as it is read, by the threads that read
/// them, so that only the lines are held; a job whose state needs the
/// others' (a Slurm job's, one squeue call for all) is judged after.
fn json_all(store: &Store, scan: &Scan, a: &cli::Runs, project: Option<String>) -> Res<Exit> {
    enum Row {
        Made(Vec<u8>),
        Skipped,
        Later(Box<Job>),
    }
    let wanted = |job: &Job, st: State| {
        (a.state.is_empty() || a.state.contains(&st))
            && project.as_ref().is_none_or(|p| job.meta.project == *p || job.meta.cwd == *p)
            // Removed (by another runrm) while we looked: gone, not lost.
            && (st != State::Lost || job.dir.exists())
    };
    let boot = crate::proc::boot_id();
    let ids: Vec<&str> = scan.ids.iter().map(String::as_str).collect();
    let (mut rows, damaged) = store.read_map(scan, &ids, &|mut job| {
        if job.is_slurm() {
            return Row::Later(Box::new(job));
        }
        let st = state::of(&mut job, &boot);
        if wanted(&job, st) {
            Row::Made(json_line(&view(&job, st)))
        } else {
            Row::Skipped
        }
    });
    let damaged = store.all_damaged(scan, damaged);
    let later: Vec<Job> = rows
        .iter_mut()
        .filter_map(|(_, r)| match std::mem::replace(r, Row::Skipped) {
            Row::Later(job) => Some(*job),
            made => {
                *r = made;
                None
            }
        })
        .collect();
    for (job, st) in with_states("runs", later, &damaged) {
        if wanted(&job, st) {
            rows.push(((job.started, job.id.clone()), Row::Made(json_line(&view(&job, st)))));
        }
    }
    rows.sort_by(|x, y| x.0.cmp(&y.0));
    let made: Vec<&[u8]> = rows
        .iter()
        .filter_map(|(_, r)| match r {
            Row::Made(line) => Some(line.as_slice()),
            _ => None,
        })
        .collect();
    let made = super::last(made, a.last);
    let mut out = Out::new();
    out.json_made_lines(made)?;
    out.flush()?;
    Ok(Exit::Ok)
}

/// `runs --complete-ids[=WHICH]`, for the shell completions: the ids of
/// the jobs `which` selects, then their distinct names, one a line (a name
/// with a space is left out: the shells would split it). Quiet on any
/// trouble (it runs under a prompt) and fast: a job's liveness is checked
/// only when its end is not recorded and `which` is not `all`.
fn complete_ids(which: cli::CompleteIds) -> Res<Exit> {
    let Ok(store) = super::open_store() else { return Ok(Exit::Ok) };
    let Ok((mut jobs, _damaged)) = store.list() else { return Ok(Exit::Ok) };
    // A job elsewhere (another host or pid namespace) is neither: `job
    // stop` refuses it, `runrm` keeps it.
    let wanted = |s: State| match which {
        cli::CompleteIds::All => true,
        cli::CompleteIds::Active => matches!(s, State::Running | State::Queued),
        cli::CompleteIds::Ended => !matches!(s, State::Running | State::Queued | State::Elsewhere),
    };
    if which != cli::CompleteIds::All {
        let (states, _) = state::of_all(&mut jobs, &crate::proc::boot_id());
        let mut states = states.into_iter();
        jobs.retain(|_| states.next().is_some_and(wanted));
    }
    let mut out = Out::new();
    let mut names: Vec<&str> = jobs.iter().map(|j| j.meta.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let mut old = store.legacy();
    old.retain(|l| wanted(if state::legacy_running(l) { State::Running } else { State::Done }));
    let words = jobs.iter().map(|j| j.id.as_str()).chain(names).chain(old.iter().map(|l| l.id.as_str()));
    for word in words.filter(|w| !w.is_empty() && !w.chars().any(|c| c.is_control() || c.is_whitespace())) {
        out.line(word)?;
    }
    out.flush()?;
    Ok(Exit::Ok)
}
