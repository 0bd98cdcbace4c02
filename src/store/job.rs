//! What a job directory holds (`meta.json`, `pid`, `status`, `notified`)
//! and how one is read: relative to the store's directory, never through a
//! link, and a bounded amount of each file.

use super::end::{End, Usage};
use crate::files::{io_err, open_in, open_nofollow, read_bounded, read_small};
use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, ErrorKind};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// Everything known about a job when it starts, kept in `meta.json`.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Meta {
    pub id: String,
    pub name: String,
    /// The command as the user typed it, for display.
    pub command: String,
    /// What was executed (`["sh", "-c", CMD]` for a shell string).
    pub argv: Vec<String>,
    pub cwd: String,
    #[serde(default)]
    pub project: String,
    pub host: String,
    pub user: String,
    pub started_at: String,
    #[serde(default)]
    pub ended_at: Option<String>,
    #[serde(default)]
    pub pid: Option<i32>,
    /// The job's start time in clock ticks since boot (/proc/PID/stat field
    /// 22): with `boot_id`, what tells the job's process from a later one
    /// that got the same pid.
    #[serde(default)]
    pub pid_start: Option<u64>,
    #[serde(default)]
    pub watcher_pid: Option<i32>,
    #[serde(default)]
    pub watcher_start: Option<u64>,
    #[serde(default)]
    pub boot_id: String,
    #[serde(default)]
    pub timeout_s: Option<u64>,
    #[serde(default)]
    pub notify_topic: Option<String>,
    /// Notify only if the job ran at least this many seconds
    /// (`--min-duration`, `NTFY_MIN_DURATION`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_min_s: Option<u64>,
    #[serde(default)]
    pub context: Option<Box<RawValue>>,
    #[serde(default)]
    pub key: Option<String>,
    /// The pid namespace the job ran in (its inode): with `host`, what says
    /// whether its pids can be checked from here.
    #[serde(default)]
    pub pid_ns: Option<u64>,
    /// The machine id (`/etc/machine-id`) of the machine it was launched
    /// on: with `boot_id`, what tells this machine after a reboot and a
    /// host rename from another host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    /// `--log-max` in bytes: the most disk space the log may take.
    #[serde(default)]
    pub log_max: Option<u64>,
    /// What the job used (see `Usage`), recorded with its end.
    #[serde(default)]
    pub max_rss_kib: Option<u64>,
    #[serde(default)]
    pub cpu_user_s: Option<f64>,
    #[serde(default)]
    pub cpu_sys_s: Option<f64>,
    /// Bytes the job wrote to its log, dropped ones included.
    #[serde(default)]
    pub log_bytes: Option<u64>,
    /// Processes of the job were left when its own process ended: its
    /// watcher stays for them (`watch::linger`, `state::lingering`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub left_processes: bool,
    /// `--queue`: the queue the job waits in (none with `--after` alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// The slot it was given when it started from a queue (`RUN_SLOT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<u32>,
    /// `--after`: the ids of the jobs it waits for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
    /// When it was queued; with no `pid` yet, the job is still queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued_at: Option<String>,
    /// Where a queued job may start: host and pid namespace (see `queue`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place: Option<String>,
    /// For a queued job: the executable found on PATH when it was queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program: Option<String>,
    /// What was executed, byte for byte, in hex: only when an argument is
    /// not UTF-8 (`argv` then holds it with U+FFFD in place of bad bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argv_hex: Option<Vec<String>>,
    /// The working directory, byte for byte, in hex: only when it is not
    /// UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd_hex: Option<String>,
    /// Where it runs: "local" (also when absent) or "slurm".
    #[serde(default)]
    pub backend: String,
    /// For a Slurm job: what it asked Slurm for, and the step's binary.
    #[serde(default)]
    pub slurm: Option<SlurmSpec>,
    /// Where the log's header lives: "meta" (`HEADER_IN_META`) for a job
    /// whose log holds only its output and footer, the header being
    /// rendered from this record by the readers (see `Meta::header`);
    /// absent for a job made by an older version, whose log starts with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_header: Option<String>,
}

/// The value of `log_header` of a job whose header is not in its log.
pub const HEADER_IN_META: &str = "meta";

/// A Slurm job's request, kept so that `job retry` asks for the same.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct SlurmSpec {
    #[serde(default)]
    pub partition: Option<String>,
    #[serde(default)]
    pub cpus: Option<u32>,
    #[serde(default)]
    pub mem: Option<String>,
    #[serde(default)]
    pub gpus: Option<u32>,
    /// `--sbatch 'RAW ARGS'`, split into words.
    #[serde(default)]
    pub sbatch: Vec<String>,
    /// The binary the batch step runs (`job __slurm-step`): this one.
    #[serde(default)]
    pub bin: String,
}

impl Meta {
    /// Records what is executed: `argv` for readers, and byte for byte
    /// (`argv_hex`) when it is not all UTF-8.
    pub fn set_argv(&mut self, argv: &[OsString]) {
        self.argv = argv.iter().map(|a| a.to_string_lossy().into_owned()).collect();
        let exact = argv.iter().all(|a| a.to_str().is_some());
        self.argv_hex = (!exact).then(|| argv.iter().map(|a| hex(a.as_bytes())).collect());
    }
    /// Records the working directory, likewise.
    pub fn set_cwd(&mut self, cwd: &Path) {
        self.cwd = cwd.to_string_lossy().into_owned();
        self.cwd_hex = cwd.to_str().is_none().then(|| hex(cwd.as_os_str().as_bytes()));
    }
    /// What was executed, byte for byte.
    pub fn exec_argv(&self) -> Vec<OsString> {
        let exact = self.argv_hex.as_ref().and_then(|h| h.iter().map(|a| unhex(a)).collect::<Option<Vec<_>>>());
        match exact {
            Some(v) => v.into_iter().map(OsString::from_vec).collect(),
            None => self.argv.iter().map(OsString::from).collect(),
        }
    }
    /// The working directory, byte for byte.
    pub fn exec_cwd(&self) -> PathBuf {
        match self.cwd_hex.as_deref().and_then(unhex) {
            Some(b) => PathBuf::from(OsString::from_vec(b)),
            None => PathBuf::from(&self.cwd),
        }
    }
    /// When the job started, as recorded (now, if unreadable).
    pub fn started(&self) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(&self.started_at).unwrap_or_else(|_| chrono::Local::now().fixed_offset())
    }
    /// What the job used, once its end is recorded.
    pub fn usage(&self) -> Option<Usage> {
        Some(Usage { max_rss_kib: self.max_rss_kib?, cpu_user_s: self.cpu_user_s?, cpu_sys_s: self.cpu_sys_s? })
    }
    /// Queued and not started: no process was ever made for it.
    pub fn is_queued(&self) -> bool {
        self.queued_at.is_some() && self.pid.is_none()
    }
    /// The log starts with its own header: a job made by an older version.
    pub fn header_in_log(&self) -> bool {
        self.log_header.as_deref() != Some(HEADER_IN_META)
    }
    /// The header lines a reader shows before the log's first byte, as
    /// older versions wrote them at the top of the file: the command, the
    /// directory, when it started (or was queued) on which host as whom,
    /// and for a queued job that has started, when it did; each field as
    /// `text` shows it (the caller escapes what a terminal must not get).
    /// None for a log that holds its own header (`log_header` absent).
    pub fn header(&self, text: fn(&str) -> String) -> Option<String> {
        if self.header_in_log() {
            return None;
        }
        let (when, at) = match (&self.queued_at, &self.queue) {
            (Some(at), Some(q)) => (format!("queued in {}", text(q)), at),
            (Some(at), None) => ("queued".to_string(), at),
            _ => ("started".to_string(), &self.started_at),
        };
        let (command, cwd, at, host, user) =
            (text(&self.command), text(&self.cwd), text(at), text(&self.host), text(&self.user));
        let mut lines = format!("=== {command}\n=== cwd: {cwd}\n=== {when}: {at} on {host} as {user}\n");
        lines.push_str(&self.started_line(text).unwrap_or_default());
        Some(lines)
    }
    /// The header's line that says when a queued job started (none before
    /// it has, and for a job that was never queued).
    pub fn started_line(&self, text: fn(&str) -> String) -> Option<String> {
        if self.queued_at.is_none() || self.pid.is_none() {
            return None;
        }
        let slot = match (&self.queue, self.slot) {
            (Some(q), Some(k)) => format!(" in {}, slot {k}", text(q)),
            _ => String::new(),
        };
        Some(format!("=== started: {}{slot}\n", text(&self.started_at)))
    }
}

/// A job as read from its directory.
#[derive(Debug)]
pub struct Job {
    pub id: String,
    pub dir: PathBuf,
    pub meta: Meta,
    pub started: DateTime<FixedOffset>,
    pub end: Option<End>,
    /// For a Slurm job: what its files and Slurm say.
    pub slurm: Option<SlurmRec>,
}

/// What is known of a Slurm job besides its meta.json: its Slurm id (file
/// `slurm_id`, written by the launcher once sbatch accepted it), the node
/// its step runs on (file `node`, written by the step), and, once asked,
/// Slurm's own words on it.
#[derive(Debug, Default, Clone)]
pub struct SlurmRec {
    pub id: Option<u64>,
    pub node: Option<String>,
    /// Slurm's JOB_STATE and reason, as squeue said them last.
    pub said: Option<(String, String)>,
}

impl Job {
    pub fn log(&self) -> PathBuf {
        self.dir.join("log")
    }
    /// The pid in the `pid` file (what a user or tool may have put there),
    /// else the one in meta.json.
    pub fn pid_file(&self) -> Option<i32> {
        let text = read_bounded(&self.dir.join("pid"), 64).ok();
        text.and_then(|b| String::from_utf8(b).ok()).and_then(|s| s.trim().parse().ok()).or(self.meta.pid)
    }
    /// What the `pid` file says, as written: none if there is no such
    /// file; one that cannot be read (not a regular file, too big) says so.
    pub fn pid_file_text(&self) -> Option<String> {
        match read_bounded(&self.dir.join("pid"), 64) {
            Ok(b) => Some(String::from_utf8_lossy(&b).trim().to_string()),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => Some(format!("nothing readable ({e})")),
        }
    }
    /// Reads `status` again (it may have appeared since the job was loaded).
    pub fn reread_end(&mut self) -> Result<(), String> {
        self.end = read_status(&self.dir)?;
        Ok(())
    }
    /// Reads `meta.json` and `status` again (a queued job's meta.json is
    /// replaced when it starts).
    pub fn reread(&mut self) -> Result<(), String> {
        let fresh = read_job(&self.dir, &self.id)?;
        self.meta = fresh.meta;
        self.started = fresh.started;
        self.end = fresh.end;
        self.slurm = fresh.slurm;
        Ok(())
    }
    pub fn is_slurm(&self) -> bool {
        self.meta.backend == "slurm"
    }
    /// Reads `slurm_id` and `node` again (they may have appeared since).
    pub fn reread_slurm(&mut self) {
        if let Ok(root) = File::open(self.dir.parent().unwrap_or(Path::new("/"))) {
            let said = self.slurm.as_mut().and_then(|s| s.said.take());
            self.slurm = Some(SlurmRec { said, ..read_slurm(&root, &self.id, &mut Vec::new()) });
        }
    }
    /// The reserved status file of a job that has not ended, which its
    /// watcher holds locked until it records the end or dies; none once
    /// `status` is there.
    pub fn end_lock(&self) -> Option<File> {
        open_nofollow(&self.dir.join(".status")).ok()
    }
    /// Is a queued job being started: its reserved status locked by the
    /// process starting it (the decider, then the watcher it forked, which
    /// holds it until it records the end)? The kernel drops the lock when
    /// the last process holding it dies, so a held lock proves a starter
    /// alive.
    pub fn being_started(&self) -> bool {
        self.end_lock().is_some_and(|f| matches!(f.try_lock_shared(), Err(std::fs::TryLockError::WouldBlock)))
    }
    /// Is the notification of a job that never ran still being sent: its
    /// log locked by the detached process sending it (see
    /// `watch::record`), which holds it until it has recorded the outcome
    /// (`notified`), waiting for a sending slot included? The kernel drops
    /// the lock when that process dies.
    pub fn notifying(&self) -> bool {
        open_nofollow(&self.dir.join("log"))
            .is_ok_and(|f| matches!(f.try_lock_shared(), Err(std::fs::TryLockError::WouldBlock)))
    }
    /// The range of the log dropped by its cap, if any (see `cap`).
    pub fn dropped(&self) -> Option<(u64, u64)> {
        self.meta.log_max?;
        super::cap::read_dropped(&self.dir)
    }
    /// The ntfy outcome, if the watcher recorded one: `sent` or `failed: …`.
    pub fn notified(&self) -> Option<String> {
        self.meta.notify_topic.as_ref()?;
        let bytes = read_bounded(&self.dir.join("notified"), 4096).ok()?;
        Some(String::from_utf8_lossy(&bytes).trim_end().to_string())
    }
}

/// An entry of the store that looks like a job but cannot be read as one.
#[derive(Debug, Clone)]
pub struct Damaged {
    pub id: String,
    pub path: PathBuf,
    pub reason: String,
}

/// The watcher that the meta.json of the job directory `dir` names: its
/// pid and start time (none if it names none or cannot be read).
pub fn watcher_of(dir: &Path) -> Option<(i32, u64)> {
    let id = dir.file_name()?.to_str()?;
    let m = read_job(dir, id).ok()?.meta;
    Some((m.watcher_pid?, m.watcher_start?))
}

pub(super) fn read_job(dir: &Path, id: &str) -> Result<Job, String> {
    let parent = dir.parent().unwrap_or(Path::new("/"));
    let root = File::open(parent).map_err(|e| io_err("reading", parent, e))?;
    read_job_at(&root, parent, id, &mut Vec::new())
}

/// The largest `meta.json` read, and written (`Store::stage` refuses a
/// job whose record would be bigger, so what is written can be read). The
/// kernel takes at most 6 MiB of arguments and environment (Linux ≥ 4.13:
/// 3/4 of the 8 MiB stack limit, whatever `ulimit -s` says); JSON writes a
/// byte as at most 6 (`\u0001`), and argv is kept twice (`argv`, and
/// quoted in `command`): at most 72 MiB, with the 1 MiB context and the
/// rest well within this. A bigger file is damaged, not read into memory.
pub(super) const META_MAX: u64 = 128 << 20;

/// Reads the job `id` of the store open as `root` (at `root_path`), with
/// `buf` as scratch space kept from one job to the next: a listing makes
/// two opens and two reads per job.
pub(super) fn read_job_at(root: &File, root_path: &Path, id: &str, buf: &mut Vec<u8>) -> Result<Job, String> {
    let meta_path = || root_path.join(id).join("meta.json");
    let opened = open_in(root, &Path::new(id).join("meta.json"));
    let bytes = opened.and_then(|f| read_small(f, META_MAX, buf)).map_err(|e| io_err("reading", &meta_path(), e))?;
    if bytes.len() as u64 > META_MAX {
        return Err(format!("reading {}: larger than {} MiB", meta_path().display(), META_MAX >> 20));
    }
    let meta: Meta = serde_json::from_slice(bytes).map_err(|e| format!("reading {}: {e}", meta_path().display()))?;
    let started = DateTime::parse_from_rfc3339(&meta.started_at)
        .map_err(|e| format!("reading {}: started_at: {e}", meta_path().display()))?;
    let dir = root_path.join(id);
    let end = status_from(open_in(root, &Path::new(id).join("status")), &dir, buf)?;
    let slurm = (meta.backend == "slurm").then(|| read_slurm(root, id, buf));
    Ok(Job { id: id.to_string(), dir, meta, started, end, slurm })
}

/// A Slurm job's `slurm_id` and `node` (small files; absent until written).
fn read_slurm(root: &File, id: &str, buf: &mut Vec<u8>) -> SlurmRec {
    let mut small = |name: &str| {
        let f = open_in(root, &Path::new(id).join(name)).ok()?;
        let bytes = read_small(f, 256, buf).ok()?;
        let text = std::str::from_utf8(bytes).ok()?.trim();
        (!text.is_empty() && text.len() <= 255).then(|| text.to_string())
    };
    let id = small("slurm_id").and_then(|s| s.parse().ok());
    let node = small("node");
    SlurmRec { id, node, said: None }
}

fn read_status(dir: &Path) -> Result<Option<End>, String> {
    status_from(open_nofollow(&dir.join("status")), dir, &mut Vec::new())
}

/// The end recorded in the job directory `dir`'s `status`, opened as
/// `opened`; none if there is no `status` yet.
fn status_from(opened: io::Result<File>, dir: &Path, buf: &mut Vec<u8>) -> Result<Option<End>, String> {
    let path = || dir.join("status");
    let bytes = match opened.and_then(|f| read_small(f, 4096, buf)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("reading", &path(), e)),
    };
    let end = std::str::from_utf8(bytes).ok().and_then(End::parse);
    end.map(Some).ok_or_else(|| format!("reading {}: not a job status", path().display()))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    let s = s.as_bytes();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    s.chunks(2).map(|p| Some(digit(p[0])? << 4 | digit(p[1])?)).collect()
}

pub(super) fn meta_bytes(meta: &Meta) -> Vec<u8> {
    let mut v = serde_json::to_vec_pretty(meta).expect("a Meta always serializes");
    v.push(b'\n');
    v
}
