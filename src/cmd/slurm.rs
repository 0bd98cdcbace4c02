//! What the fronts share for Slurm jobs: where a new job goes (`--slurm`,
//! RUN_BACKEND and the resource flags) and stopping one (`job stop`).

use super::out::clean;
use super::{env, usage};
use crate::exit::Res;
use crate::store::{self, Job, SlurmSpec};
use crate::{cli, slurm, state, watch};
use std::time::{Duration, Instant};

/// Where a job goes: to Slurm with these resources (`--slurm`, or
/// RUN_BACKEND=slurm), or `None` to run here. A resource flag without
/// Slurm, or a RUN_BACKEND that names no backend, is a usage error.
pub fn spec(a: &cli::SlurmArgs) -> Res<Option<SlurmSpec>> {
    let by_env = match env("RUN_BACKEND").as_deref() {
        None | Some("local") => false,
        Some("slurm") => true,
        Some(other) => {
            return Err(usage(format!("RUN_BACKEND: '{}' is not a backend (local or slurm)", clean(other))));
        }
    };
    let flags = [
        ("--partition", a.partition.is_some()),
        ("--cpus", a.cpus.is_some()),
        ("--mem", a.mem.is_some()),
        ("--gpus", a.gpus.is_some()),
        ("--sbatch", a.sbatch.is_some()),
    ];
    if !(a.slurm || by_env) {
        if let Some((flag, _)) = flags.iter().find(|(_, set)| *set) {
            return Err(usage(format!("{flag} needs --slurm (or RUN_BACKEND=slurm)")));
        }
        return Ok(None);
    }
    let sbatch = match &a.sbatch {
        Some(raw) => cli::parse_words(raw).map_err(|e| usage(format!("--sbatch: {e}")))?,
        None => Vec::new(),
    };
    Ok(Some(SlurmSpec {
        partition: a.partition.clone(),
        cpus: a.cpus,
        mem: a.mem.clone(),
        gpus: a.gpus,
        sbatch,
        bin: String::new(),
    }))
}

/// Stops a Slurm job: the stop request for its step (which then ends the
/// job's tree as a local watcher does, at once with `--force`), then
/// `scancel`; returns once the end is recorded, by the step or from
/// Slurm's words (a job still pending is simply cancelled).
pub fn stop(job: &mut Job, force: bool, boot: &str) -> Result<String, String> {
    store::request_stop(&job.dir, force)?;
    let until = Instant::now() + Duration::from_secs(5);
    let id = loop {
        job.reread_slurm();
        match job.slurm.as_ref().and_then(|s| s.id) {
            Some(id) => break id,
            None if Instant::now() < until => std::thread::sleep(Duration::from_millis(20)),
            None => return Err("not accepted by Slurm yet (still being submitted); try again".into()),
        }
    };
    slurm::cancel(id)?;
    // Slurm's KillWait (30 s by default) bounds how long a job that
    // ignores SIGTERM lives on.
    let until = Instant::now() + watch::GRACE + Duration::from_secs(60);
    let mut pause = Duration::from_millis(20);
    loop {
        let st = state::of(job, boot);
        if !st.is_active() {
            return Ok(job.end.as_ref().map_or(st.as_str().to_string(), store::describe_end));
        }
        if Instant::now() > until {
            return Err(format!("still {} after scancel {id}", st.as_str()));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}
