//! `runlog [JOB]`: show a job's log, and follow it while the job runs.
//! With no JOB and several jobs, a picker (on a terminal) chooses.

use super::follow::{show_log, tail_offset};
use super::out::{clean, warn, Out};
use super::parse;
use super::resolve::{load_all, resolve};
use crate::store::{Job, State};
use crate::{cli, Exit, Fail, PickRow, Picker, Res};
use std::ffi::OsString;

pub fn main(args: Vec<OsString>, picker: Option<Picker>) -> Res<Exit> {
    let a: cli::Runlog = parse(args.clone())?;
    let store = super::store()?;
    let mut job = match &a.job {
        Some(q) => resolve(&store, q)?,
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
    let from = match a.tail {
        Some(n) => tail_offset(&job.log(), n)?,
        None => 0,
    };
    let mut out = Out::new();
    let state = show_log(&mut job, from, !a.no_follow, &mut out)?;
    if !a.no_follow && state == State::Lost {
        warn(&format!("runlog: {} is lost: its process and watcher are gone with no end recorded", job.id));
    }
    Ok(Exit::Ok)
}

fn choose(pick: Picker, jobs: Vec<(Job, State)>) -> Res<Job> {
    let mut jobs: Vec<(Job, State)> = jobs.into_iter().rev().collect();
    let rows = jobs
        .iter()
        .map(|(j, s)| PickRow {
            line: format!("{:<8} {}  {}", s.as_str(), j.id, clean(&j.meta.command)),
            preview: j.log(),
        })
        .collect();
    match pick(rows) {
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
