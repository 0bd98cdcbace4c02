//! Stopping a Slurm job (`job stop`): the stop request for its step, then
//! `scancel`. (Where a new job goes, `--slurm` and RUN_BACKEND, is read
//! with the other launch arguments: `launch_args`.)

use crate::store::{self, Job};
use crate::{slurm, state, watch};
use std::time::{Duration, Instant};

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
