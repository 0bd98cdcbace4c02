//! The files the old `run` scripts left in the store's directory, one pair
//! per job: `NAME_YYYYmmdd_HHMMSS.log` (the command, the start, the output)
//! and `NAME_YYYYmmdd_HHMMSS.pid`. Listed, shown and removed beside the
//! jobs; never written. Whether one still runs is for `state` to say.

use super::Store;
use crate::files::{self, Kind};
use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone};
use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;

/// One job of the old scripts.
#[derive(Debug, Clone)]
pub struct Legacy {
    /// `NAME_YYYYmmdd_HHMMSS`, the files' common stem.
    pub id: String,
    pub name: String,
    pub log: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub pid: Option<i32>,
    /// From the id (local time).
    pub started: DateTime<FixedOffset>,
    /// When the pid file was written (the job's start), seconds since the epoch.
    pub pid_written: Option<i64>,
    /// The command, from the log's first lines, else the name.
    pub command: String,
}

impl Legacy {
    /// The files to remove: the log and the pid file.
    pub fn files(&self) -> impl Iterator<Item = &PathBuf> {
        self.log.iter().chain(self.pid_file.iter())
    }
}

/// `NAME_YYYYmmdd_HHMMSS` → its name and time (local), if it is one.
fn parse_id(stem: &str) -> Option<(String, DateTime<FixedOffset>)> {
    let (rest, time) = stem.rsplit_once('_')?;
    let (name, date) = rest.rsplit_once('_')?;
    let ok = |s: &str, n| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    if name.is_empty() || !ok(date, 8) || !ok(time, 6) {
        return None;
    }
    let naive = NaiveDateTime::parse_from_str(&format!("{date}{time}"), "%Y%m%d%H%M%S").ok()?;
    let local = chrono::Local.from_local_datetime(&naive).earliest()?;
    Some((name.to_string(), local.fixed_offset()))
}

/// The command in the first lines of an old script's log: after
/// `Command:`, `$ ` or `=== `, if there is such a line.
fn command_in(log: &std::path::Path) -> Option<String> {
    use std::io::Read;
    let mut head = Vec::new();
    // No link followed, no blocking on a FIFO, a regular file only.
    files::open_nofollow(log).ok()?.take(4096).read_to_end(&mut head).ok()?;
    let text = String::from_utf8_lossy(&head);
    text.lines().take(5).find_map(|l| {
        let l = l.trim();
        ["Command:", "command:", "$ ", "=== ", "CMD:"]
            .iter()
            .find_map(|p| l.strip_prefix(p))
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty())
    })
}

/// The most a pid file holds (a pid and a newline, with room to spare):
/// a bigger one is not read.
const PID_MAX: u64 = 64;

/// Why the entry `file` of the store's root (`ft`, `len`: what lstat
/// says), named as an old script's file, cannot be read, if it cannot: it
/// is then never read, and the listing names it.
pub(super) fn trouble(file: &str, kind: Kind, len: u64) -> Option<&'static str> {
    let (stem, ext) = file.rsplit_once('.')?;
    if (ext != "log" && ext != "pid") || parse_id(stem).is_none() {
        return None;
    }
    if kind == Kind::Link {
        Some("an old script's file that is a symbolic link; not followed")
    } else if kind != Kind::File {
        Some("an old script's file that is not a regular file; not read")
    } else if ext == "pid" && len > PID_MAX {
        Some("an old script's pid file larger than 64 bytes; not read")
    } else {
        None
    }
}

/// Is `file` named as an old script's file (`NAME_YYYYmmdd_HHMMSS.log`
/// or `.pid`)?
pub(super) fn is_old(file: &str) -> bool {
    file.rsplit_once('.').is_some_and(|(stem, ext)| (ext == "log" || ext == "pid") && parse_id(stem).is_some())
}

impl Store {
    /// The old scripts' jobs in the store's directory, oldest first.
    pub fn legacy(&self) -> Vec<Legacy> {
        self.scan().map(|scan| self.legacy_in(&scan, None, |_, _| true)).unwrap_or_default()
    }

    /// The old scripts' jobs a scan found whose id and name `want`, oldest
    /// first; with `newest`, only that many of the newest (the others'
    /// files are not read).
    pub fn legacy_in(
        &self,
        scan: &super::Scan,
        newest: Option<usize>,
        want: impl Fn(&str, &str) -> bool,
    ) -> Vec<Legacy> {
        let mut found: Vec<Legacy> = Vec::new();
        // Each stem's place in `found`: a pair's second file finds its
        // first in one look, however many pairs there are.
        let mut index: HashMap<&str, usize> = HashMap::new();
        for (file, path) in &scan.old {
            let Some((stem, ext)) = file.rsplit_once('.') else { continue };
            let Some((name, started)) = parse_id(stem).filter(|(name, _)| want(stem, name)) else { continue };
            let i = *index.entry(stem).or_insert_with(|| {
                found.push(Legacy {
                    id: stem.to_string(),
                    command: name.clone(),
                    name,
                    log: None,
                    pid_file: None,
                    pid: None,
                    started,
                    pid_written: None,
                });
                found.len() - 1
            });
            match ext {
                "log" => found[i].log = Some(path.clone()),
                _ => found[i].pid_file = Some(path.clone()),
            }
        }
        found.sort_by(|a, b| a.started.cmp(&b.started).then_with(|| a.id.cmp(&b.id)));
        if let Some(n) = newest {
            found.drain(..found.len().saturating_sub(n));
        }
        for l in &mut found {
            if let Some(path) = &l.pid_file {
                l.pid = files::read_bounded(path, PID_MAX)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .and_then(|s| s.trim().parse().ok());
                l.pid_written = fs::symlink_metadata(path).ok().and_then(|m| {
                    use std::os::unix::fs::MetadataExt;
                    Some(m.mtime()).filter(|t| *t > 0)
                });
            }
            if let Some(c) = l.log.as_deref().and_then(command_in) {
                l.command = c;
            }
        }
        found
    }

    /// Removes an old script's files (never a link's target: they are
    /// removed as names). Returns the bytes freed.
    pub fn remove_legacy(&self, l: &Legacy) -> Result<u64, String> {
        let mut freed = 0;
        for f in l.files() {
            freed += super::disk_usage(f);
            match fs::remove_file(f) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(super::io_err("removing", f, e)),
            }
        }
        Ok(freed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_script_ids_are_a_name_a_date_and_a_time() {
        assert_eq!(parse_id("build_20251205_163539").map(|(n, _)| n), Some("build".into()));
        assert_eq!(parse_id("my_job_20251205_163539").map(|(n, _)| n), Some("my_job".into()));
        for bad in ["build", "build_2025_163539", "_20251205_163539", "build_20251305_163539", "x_20251205_16353a"] {
            assert!(parse_id(bad).is_none(), "{bad}");
        }
    }
}
