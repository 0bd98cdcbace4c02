//! The small files that others than the job's maker record in a job
//! directory, each by write-temp-then-rename, and the paths a job's
//! watcher or step opens: a stop request (`stop`, by `job stop`), the
//! notification's outcome (`notified`, by the watcher), where a Slurm
//! job's step runs (`node`, by the step) and its id in Slurm (`slurm_id`,
//! by the launcher); the log, the reserved `status`, and a damaged job's
//! `pid` as `runrm` judges it.

use crate::files::{io_err, read_bounded, write_atomic};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The job's log.
pub fn log_path(dir: &Path) -> PathBuf {
    dir.join("log")
}

/// Asks the job's watcher (or Slurm step) to stop it: `kill` with `force`
/// (SIGKILL at once), else `term` (SIGTERM, a grace period, SIGKILL).
pub fn request_stop(dir: &Path, force: bool) -> Result<(), String> {
    let word = if force { "kill" } else { "term" };
    write_atomic(dir, "stop", format!("{word}\n").as_bytes())
}

/// The stop request in a job directory, if any: "term" or "kill".
pub fn stop_request(dir: &Path) -> Option<String> {
    let bytes = read_bounded(&dir.join("stop"), 64).ok()?;
    Some(String::from_utf8_lossy(&bytes).trim().to_string())
}

/// Records what came of the job's notification (`outcome` ends with a
/// newline): "sent", "skipped: …" or "failed: …".
pub fn record_notified(dir: &Path, outcome: &str) -> Result<(), String> {
    write_atomic(dir, "notified", outcome.as_bytes())
}

/// Records the host a Slurm job's step runs on.
pub fn record_node(dir: &Path, node: &str) -> Result<(), String> {
    write_atomic(dir, "node", format!("{node}\n").as_bytes())
}

/// Records the id Slurm gave the job.
pub fn record_slurm_id(dir: &Path, slurm_id: u64) -> Result<(), String> {
    write_atomic(dir, "slurm_id", format!("{slurm_id}\n").as_bytes())
}

/// Opens the status file reserved at the job's creation (`.status`, never
/// through a link), for the one process that will record the job's end.
pub fn open_reserved_status(dir: &Path) -> Result<File, String> {
    let path = dir.join(".status");
    let opened = OpenOptions::new().read(true).write(true).custom_flags(libc::O_NOFOLLOW).open(&path);
    opened.map_err(|e| io_err("opening", &path, e))
}

/// Opens the job's log for appending (and reading back its tail), never
/// through a link.
pub fn open_log(dir: &Path) -> Result<File, String> {
    let path = log_path(dir);
    let opened = OpenOptions::new().append(true).read(true).custom_flags(libc::O_NOFOLLOW).open(&path);
    opened.map_err(|e| io_err("opening", &path, e))
}

/// What says whether a damaged job directory may hold a running job:
/// its watcher holds the reserved status's lock (`locked`), or, with no
/// end recorded that can be read (a damaged `status` proves nothing: it
/// may be planted over a running job's), the pid its `pid` file names,
/// whose life is for the caller to judge.
pub struct DamagedLife {
    pub locked: bool,
    pub pid: Option<i32>,
}

pub fn damaged_life(dir: &Path) -> DamagedLife {
    let locked = crate::files::open_nofollow(&dir.join(".status"))
        .is_ok_and(|f| matches!(f.try_lock_shared(), Err(std::fs::TryLockError::WouldBlock)));
    let ended = read_bounded(&dir.join("status"), 4096)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .is_some_and(|t| super::End::parse(&t).is_some());
    let pid = read_bounded(&dir.join("pid"), 64).ok();
    let pid: Option<i32> = pid.and_then(|b| String::from_utf8(b).ok()).and_then(|s| s.trim().parse().ok());
    DamagedLife { locked, pid: pid.filter(|_| !ended) }
}
