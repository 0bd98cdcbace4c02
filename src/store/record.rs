//! Recording a job's end: `status` filled in the space reserved at launch
//! and renamed into place (the one moment the end is visible), or, for an
//! end learnt from Slurm, linked into place only if none is there yet; and
//! the log's footer and the watcher's own notes.

use super::end::{describe_end, human_duration, End, Usage};
use crate::files::io_err;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// Records the end of a job: the reserved status file is filled in place
/// (no new space needed) and renamed to `status`, the one moment the job's
/// end becomes visible; then its lock is released, which wakes `job wait`.
/// The caller then syncs both (`sync_end`): a watcher first starts what
/// the end lets start (its queue's next job).
pub fn record_end(dir: &Path, status: &File, end: &End) -> Result<(), String> {
    let line = end.line();
    let tmp = dir.join(".status");
    status
        .write_all_at(line.as_bytes(), 0)
        .and_then(|_| status.set_len(line.len() as u64))
        .map_err(|e| io_err("writing", &tmp, e))?;
    let dest = dir.join("status");
    fs::rename(&tmp, &dest).map_err(|e| io_err("writing", &dest, e))?;
    let _ = status.unlock();
    Ok(())
}

/// Makes a recorded end durable: `status` and the directory that names it.
pub fn sync_end(dir: &Path, status: &File) {
    let _ = status.sync_all();
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Records the end of a job unless one is recorded already (a Slurm job's
/// end may be recorded by its step or by whichever reader first hears from
/// Slurm that it ended): as `record_end`, but published with link(2), which
/// never replaces an existing `status` (and works on NFS, where
/// renameat2's RENAME_NOREPLACE may not). Returns false, having changed
/// nothing visible, if `status` was there first.
pub fn record_end_once(dir: &Path, status: &File, end: &End) -> Result<bool, String> {
    let line = end.line();
    let tmp = dir.join(".status");
    status
        .write_all_at(line.as_bytes(), 0)
        .and_then(|_| status.set_len(line.len() as u64))
        .and_then(|_| status.sync_all())
        .map_err(|e| io_err("writing", &tmp, e))?;
    let dest = dir.join("status");
    let mut won = link_new(&tmp, &dest)?;
    // A reader's provisional record (an absence in squeue's answer) gives
    // way to the step's true end.
    if !won && recorded(&dest).is_some_and(|e| e.provisional()) {
        won = fs::rename(&tmp, &dest).is_ok();
    }
    let _ = fs::remove_file(&tmp);
    let _ = status.unlock();
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(won)
}

/// A reader's record of an end it learnt from Slurm: a temporary file
/// linked to `status` only if there is none (see `record_end_once`).
/// Returns whether this call recorded it.
pub fn record_first_end(dir: &Path, end: &End) -> Result<bool, String> {
    let tmp = dir.join(format!(".status.{}.tmp", std::process::id()));
    let res = (|| {
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        f.write_all(end.line().as_bytes())?;
        f.sync_all()
    })();
    let dest = dir.join("status");
    let res = res.map_err(|e| io_err("writing", &tmp, e)).and_then(|()| link_new(&tmp, &dest));
    let res = match res {
        Ok(false) if !end.provisional() && recorded(&dest).is_some_and(|e| e.provisional()) => {
            fs::rename(&tmp, &dest).map(|()| true).map_err(|e| io_err("writing", &dest, e))
        }
        r => r,
    };
    let _ = fs::remove_file(&tmp);
    res
}

/// The end recorded in `status`, if one can be read.
fn recorded(status: &Path) -> Option<End> {
    End::parse(&String::from_utf8_lossy(&crate::files::read_bounded(status, 4096).ok()?))
}

/// link(2) `from` to `to`; false if `to` exists.
fn link_new(from: &Path, to: &Path) -> Result<bool, String> {
    match fs::hard_link(from, to) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io_err("writing", to, e)),
    }
}

/// Appends the footer to the log: on a line of its own, the end state, how
/// long the job ran and what it used.
pub fn write_footer(log: &File, log_path: &Path, end: &End, secs: f64, usage: Option<&Usage>) -> Result<(), String> {
    let needs_newline = log
        .metadata()
        .ok()
        .filter(|m| m.len() > 0)
        .and_then(|m| {
            let mut b = [0u8; 1];
            log.read_at(&mut b, m.len() - 1).ok().map(|_| b[0] != b'\n')
        })
        .unwrap_or(false);
    let took = match end.outcome {
        super::end::Outcome::NotRun => String::new(),
        _ => format!(" after {}", human_duration(secs)),
    };
    let footer = format!(
        "{}=== {}{took}, {}at {}\n",
        if needs_newline { "\n" } else { "" },
        describe_end(end),
        usage.map(|u| format!("{}, ", u.describe())).unwrap_or_default(),
        end.ended_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, false)
    );
    let mut log = log;
    log.write_all(footer.as_bytes()).map_err(|e| io_err("writing", log_path, e))
}

/// Appends the footer to the log at `log_path`, opened for this (by a
/// reader that recorded a Slurm job's end; the step is gone).
pub fn append_footer(log_path: &Path, end: &End, secs: f64) -> Result<(), String> {
    let log = OpenOptions::new()
        .append(true)
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(log_path)
        .map_err(|e| io_err("writing", log_path, e))?;
    write_footer(&log, log_path, end, secs, None)
}

/// A line of the watcher's own in the log (it has no stderr).
pub fn append_note(log: &File, log_path: &Path, msg: &str) -> Result<(), String> {
    let mut log = log;
    log.write_all(format!("\n=== bgrun: {msg}\n").as_bytes()).map_err(|e| io_err("writing", log_path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Outcome, State};
    use std::path::PathBuf;

    fn end(state: State, outcome: Outcome, reason: Option<&str>) -> End {
        let ended_at = chrono::DateTime::parse_from_rfc3339("2026-12-01T09:00:00.000+00:00").unwrap();
        End { state, outcome, ended_at, reason: reason.map(String::from) }
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("bgrun-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn an_end_learnt_from_slurm_never_replaces_the_steps_and_the_step_never_replaces_it() {
        let dir = scratch("once");
        let reserved = || {
            let f = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(dir.join(".status"));
            f.unwrap()
        };
        let steps = end(State::Failed, Outcome::Exited(3), None);
        let slurms = end(State::Stopped, Outcome::Unknown, Some("Slurm: CANCELLED"));
        assert!(record_end_once(&dir, &reserved(), &steps).unwrap());
        assert!(!record_first_end(&dir, &slurms).unwrap());
        assert_eq!(fs::read_to_string(dir.join("status")).unwrap(), steps.line());

        fs::remove_file(dir.join("status")).unwrap();
        assert!(record_first_end(&dir, &slurms).unwrap());
        assert!(!record_end_once(&dir, &reserved(), &steps).unwrap());
        assert_eq!(fs::read_to_string(dir.join("status")).unwrap(), slurms.line());
        let left: Vec<_> = fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(left, ["status"], "no temporary file is left");
        let _ = fs::remove_dir_all(&dir);
    }
}
