//! `runs`: one line per job, newest last; `--json` for programs.

use super::out::{json_line, warn, Out};
use super::parse;
use super::resolve::with_states;
use super::summary::{self, Summary};
use super::view::{legacy_summary, queue_notes, summary_noted, view};
use crate::cli;
use crate::exit::{Exit, Fail, Res};
use crate::state;
use crate::store::{Job, Legacy, Scan, State, Store};
use std::collections::HashMap;
use std::ffi::OsString;

pub fn main(args: Vec<OsString>) -> Res<Exit> {
    let a: cli::Runs = parse(args.clone())?;
    if let Some(done) = super::remote::on_many("runs", a.on.as_ref().map(|d| &d.0[..]), &args, a.json) {
        return done;
    }
    if a.complete_hosts {
        return super::remote::complete_hosts();
    }
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
            (with_states(&store, "runs", jobs, &damaged), store.legacy_in(&scan, Some(n), |_, _| true))
        }
        None => {
            let (jobs, damaged) = store.list_of(&scan);
            (with_states(&store, "runs", jobs, &damaged), store.legacy_in(&scan, None, |_, _| true))
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

/// `runs --json` of every job (or of those its filters keep): the settled
/// jobs' lines from the summary where it counts for them (`summary`), the
/// others made as soon as each job is read, by the threads that read them
/// (only the lines are held); a job whose state needs the others' (a Slurm
/// job's: one squeue call for all) judged after. The summary is rewritten
/// when it lacks many lines or holds many dead ones.
fn json_all(store: &Store, scan: &Scan, a: &cli::Runs, project: Option<String>) -> Res<Exit> {
    struct Made {
        json: Vec<u8>,
        state: State,
        shown: bool,
        settled: bool,
        ino: u64,
    }
    enum Row {
        Made(Made),
        Later(Box<Job>),
    }
    let shown = |st: &str| a.state.is_empty() || a.state.iter().any(|s| s.as_str() == st);
    let wanted = |job: &Job, st: State| {
        shown(st.as_str())
            && project.as_ref().is_none_or(|p| job.meta.project == *p || job.meta.cwd == *p)
            // Removed (by another runrm) while we looked: gone, not lost.
            && (st != State::Lost || job.dir.exists())
    };
    let boot = crate::proc::boot_id();
    let dirs: HashMap<&str, u64> = scan.ids.iter().map(String::as_str).zip(scan.inos.iter().copied()).collect();
    // `--project` needs each job's project, which the summary does not hold.
    let old = if project.is_none() { Summary::open(store, &dirs) } else { None };
    let ids: Vec<&str> = scan
        .ids
        .iter()
        .map(String::as_str)
        .filter(|id| old.as_ref().is_none_or(|s| !s.covered.contains(*id)))
        .collect();
    let (rows, damaged) = store.read_map(scan, &ids, &|mut job| {
        // A Slurm job's state is asked of Slurm once for all; a queued job
        // (or one started from a queue) is what `queue::mend` looks at.
        if job.is_slurm() || (job.meta.queued_at.is_some() && job.end.is_none()) {
            return Row::Later(Box::new(job));
        }
        let st = state::of(&mut job, &boot);
        let json = json_line(&view(&job, st));
        let (settled, shown) = (summary::settled(&job, st, &json), wanted(&job, st));
        let ino = dirs.get(job.id.as_str()).copied().unwrap_or(0);
        Row::Made(Made { json: if shown || settled { json } else { Vec::new() }, state: st, shown, settled, ino })
    });
    let damaged = store.all_damaged(scan, damaged);
    let (mut made, mut later) = (Vec::new(), Vec::new());
    for ((started, id), row) in rows {
        match row {
            Row::Made(m) => made.push(((started.timestamp_nanos_opt().unwrap_or(i64::MIN), id), m)),
            Row::Later(job) => later.push(*job),
        }
    }
    for (job, st) in with_states(store, "runs", later, &damaged) {
        let m = Made { json: json_line(&view(&job, st)), state: st, shown: wanted(&job, st), settled: false, ino: 0 };
        made.push((summary::key_of(&job), m));
    }
    made.sort_by(|x, y| x.0.cmp(&y.0));
    let fresh = made.iter().filter(|(_, m)| m.settled).count();
    let rewrite = fresh >= summary::REWRITE_AT || old.as_ref().is_some_and(|s| s.dead >= summary::REWRITE_AT);

    // The summary's lines and the jobs read, merged in order: each shown
    // (or kept for `-n`) and, when rewriting, each settled one written.
    let mut out = Out::new();
    let (mut first, mut kept, mut failed) = (true, std::collections::VecDeque::new(), Ok(()));
    let mut show = |json: &[u8], out: &mut Out| {
        if a.last.is_some() {
            kept.push_back(json.to_vec());
            if kept.len() > a.last.unwrap_or(0) {
                kept.pop_front();
            }
        } else if failed.is_ok() {
            failed = out.bytes(if first { b"[\n" } else { b",\n" }).and_then(|()| out.bytes(json));
            first = false;
        }
    };
    let mut merge = |new: &mut dyn FnMut(&[u8])| -> bool {
        let mut made = made.iter().peekable();
        let mut one = |visible: bool, json: &[u8], line: Option<Vec<u8>>, new: &mut dyn FnMut(&[u8])| {
            if visible {
                show(json, &mut out);
            }
            if let Some(l) = line {
                new(&l);
            }
        };
        let mut whole = true;
        if let Some(old) = &old {
            whole = old.lines(store, |l| {
                while let Some((k, m)) = made.next_if(|(k, _)| (k.0, k.1.as_str()) < (l.start, l.id)) {
                    let line = (rewrite && m.settled)
                        .then(|| summary::line(&(k.0, k.1.as_str()), m.ino, m.state.as_str(), &m.json));
                    one(m.shown, &m.json, line, new);
                }
                let line = rewrite.then(|| summary::line(&(l.start, l.id), l.ino, l.state, l.json));
                one(shown(l.state), l.json, line, new);
            });
        }
        for (k, m) in made {
            let line =
                (rewrite && m.settled).then(|| summary::line(&(k.0, k.1.as_str()), m.ino, m.state.as_str(), &m.json));
            one(m.shown, &m.json, line, new);
        }
        whole
    };
    let whole = if rewrite {
        let mut whole = true;
        let written = store.write_summary(|w| {
            w.write_all(summary::header(store).as_bytes())?;
            let mut res = Ok(());
            whole = merge(&mut |line| {
                if res.is_ok() {
                    res = w.write_all(line);
                }
            });
            res
        });
        if let Err(e) = written {
            warn(&format!("runs: {e} (a cache: the listing is whole without it)"));
        }
        whole
    } else {
        merge(&mut |_| {})
    };
    failed?;
    if a.last.is_some() {
        for json in &kept {
            out.bytes(if first { b"[\n" } else { b",\n" })?;
            out.bytes(json)?;
            first = false;
        }
    }
    out.bytes(if first { b"[]\n" } else { b"\n]\n" })?;
    out.flush()?;
    if !whole {
        return Err(Fail::from(format!(
            "runs: {} changed while it was read: jobs may be missing above; run it again",
            store.summary_path().display()
        )));
    }
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
