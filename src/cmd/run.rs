//! `run CMD…`: start a detached job and return at once.

use super::launch_args::{self, Checked};
use super::out::Out;
use super::parse;
use crate::cli;
use crate::exit::{Exit, Res};
use crate::launch::{self, Launched};
use crate::remote::qualify;
use std::ffi::OsString;

pub fn main(args: Vec<OsString>) -> Res<Exit> {
    let a: cli::Run = parse(args.clone())?;
    if let Some(done) = super::remote::on_one("run", a.on.as_ref().map(|d| &d.0[..]), &args) {
        return done;
    }
    // Every flag, default and check but `--after`, which needs the store.
    let checked = launch_args::run(a)?;
    let store = super::open_store()?;
    let Checked { spec, ntfy } = checked.after(&store)?;
    // A queued launch catches the queues up once it has queued the job
    // (`queue::enqueue`): doing it before as well would read every waiting
    // job twice per launch.
    let queued = spec.slurm.is_none() && (spec.queue.is_some() || !spec.after.is_empty());
    if !queued {
        super::catch_up(&store, "run");
    }
    match launch::start(&store, spec, ntfy)? {
        Launched::Started { id, pid, log } => {
            let mut out = Out::new();
            out.line(&format!("{} {pid} {}", qualify(&id), log.display()))?;
            out.flush()?;
        }
        Launched::Queued { id, log } => {
            let mut out = Out::new();
            out.line(&format!("{} queued {}", qualify(&id), log.display()))?;
            out.flush()?;
        }
        Launched::Submitted { id, slurm_id, log } => {
            let mut out = Out::new();
            out.line(&format!("{} slurm:{slurm_id} {}", qualify(&id), log.display()))?;
            out.flush()?;
        }
        Launched::Existing(id) => Out::new().line(&qualify(&id))?,
    }
    Ok(Exit::Ok)
}
