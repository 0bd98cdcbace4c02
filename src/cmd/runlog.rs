//! `runlog [JOB]`: show a job's log, and follow it while the job runs.
//! With no JOB and several jobs, a picker (on a terminal) chooses.

use super::follow::{follow_many, show_legacy_log, show_log};
use super::out::{clean, warn, Out};
use super::parse;
use super::resolve::{load_all, resolve, resolve_any, Found};
use crate::cli;
use crate::exit::{Exit, Fail, Res};
use crate::picker::{PickRow, Picker};
use crate::store::{self, Job, State};
use std::ffi::OsString;

pub fn main(args: Vec<OsString>, picker: Option<Picker>) -> Res<Exit> {
    let a: cli::Runlog = parse(args.clone())?;
    if let Some(done) = super::remote::on_ids("runlog", &a.jobs, &args) {
        return done;
    }
    let store = super::open_store()?;
    super::catch_up(&store, "runlog");
    if a.jobs.len() > 1 || a.running {
        return several(&store, &a);
    }
    let mut job = match a.jobs.first() {
        Some(q) => match resolve_any(&store, q)? {
            Found::Job(job) => *job,
            Found::Legacy(old) => {
                show_legacy_log(&old, a.tail, !a.no_follow, &mut Out::new())?;
                return Ok(Exit::Ok);
            }
        },
        None => {
            let mut jobs = load_all(&store, "runlog")?;
            match jobs.len() {
                0 => return Err(Fail::from(format!("no jobs in {}", store.root().display()))),
                1 => jobs.remove(0).0,
                _ if super::interactive() => match picker {
                    Some(pick) => choose(pick, jobs)?,
                    None => return exec_picker_binary(&args),
                },
                _ => {
                    let (job, _) = jobs.pop().expect("more than one job");
                    warn(&format!("runlog: not on a terminal; showing the newest job, {}", clean(&job.id)));
                    job
                }
            }
        }
    };
    let mut out = Out::new();
    let state = show_log(&mut job, a.tail, !a.no_follow, &mut out)?;
    if !a.no_follow && state == State::Lost {
        warn(&format!("runlog: {} is lost: its process and watcher are gone with no end recorded", job.id));
    }
    Ok(Exit::Ok)
}

/// `runlog A B C`, `runlog --running`: every line prefixed with its job's
/// name, until all have ended; exit 0 only if every one succeeded.
fn several(store: &crate::store::Store, a: &cli::Runlog) -> Res<Exit> {
    let mut jobs: Vec<Job> = if a.running {
        load_all(store, "runlog")?.into_iter().filter(|(_, s)| *s == State::Running).map(|(j, _)| j).collect()
    } else {
        let mut jobs: Vec<Job> = Vec::new();
        for q in &a.jobs {
            let job = resolve(store, q)?;
            if !jobs.iter().any(|j| j.id == job.id) {
                jobs.push(job);
            }
        }
        jobs
    };
    if jobs.is_empty() {
        warn(&format!("runlog: no running jobs in {}", store.root().display()));
        return Ok(Exit::Ok);
    }
    let follow = !a.no_follow;
    let states = follow_many(&mut jobs, a.tail, follow, &mut Out::new())?;
    let ok = states.iter().all(|s| *s == State::Done);
    Ok(if follow && !ok { Exit::Error } else { Exit::Ok })
}

/// The picker's list leaves the preview beside it only where both get
/// about 100 columns; on a narrower terminal the preview goes below.
const SIDE_BY_SIDE: u16 = 200;

fn choose(pick: Picker, jobs: Vec<(Job, State)>) -> Res<Job> {
    let mut jobs: Vec<(Job, State)> = jobs.into_iter().rev().collect();
    // Aligned columns: state, id, age (how long ago it started), command.
    let now = chrono::Local::now().fixed_offset();
    let ages: Vec<String> =
        jobs.iter().map(|(j, _)| store::human_duration((now - j.started).num_seconds().max(0) as f64)).collect();
    let ids: Vec<String> = jobs.iter().map(|(j, _)| clean(&j.id)).collect();
    let width = |v: &mut dyn Iterator<Item = usize>| v.max().unwrap_or(0);
    let sw = width(&mut jobs.iter().map(|(_, s)| s.as_str().len()));
    let iw = width(&mut ids.iter().map(|i| i.chars().count()));
    let aw = width(&mut ages.iter().map(|a| a.chars().count()));
    let rows = jobs
        .iter()
        .zip(ids.iter().zip(&ages))
        .map(|((j, s), (id, age))| PickRow {
            line: format!("{:<sw$}  {id:<iw$}  {age:>aw$}  {}", s.as_str(), clean(&j.meta.command)),
            preview: j.log(),
            header: j.meta.header(clean),
        })
        .collect();
    let below = crate::proc::terminal_columns().is_none_or(|c| c < SIDE_BY_SIDE);
    match pick(rows, below) {
        Ok(Some(i)) if i < jobs.len() => Ok(jobs.swap_remove(i).0),
        Ok(_) => Err(Fail::quiet(Exit::Cancelled)),
        Err(e) => Err(Fail::from(format!("picker: {e}"))),
    }
}

/// This binary has no picker linked in (it is `run`, say, called through a
/// link named `runlog`): hand over to the `runlog` installed beside it.
fn exec_picker_binary(args: &[OsString]) -> Res<Exit> {
    use std::os::unix::process::CommandExt;
    let me = std::env::current_exe().map_err(|e| format!("finding the runlog binary: {e}"))?;
    let sibling = me.with_file_name("runlog");
    if sibling == me || !sibling.exists() {
        return Err(Fail::from(format!(
            "no picker in this binary and no runlog beside it ({}); name a job: runlog JOB",
            sibling.display()
        )));
    }
    let err = std::process::Command::new(&sibling).arg0("runlog").args(&args[1..]).exec();
    Err(Fail::from(format!("running {}: {err}", sibling.display())))
}
