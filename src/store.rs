//! The job store: the only code that knows the on-disk layout.
//!
//! ```text
//! $RUN_DIR (or $XDG_DATA_HOME/run, or ~/.local/share/run)   0700
//! ├── make_20251205_163539/        one directory per job: the name is the id
//! │   ├── cmd          the command line, as typed (shell-quoted)
//! │   ├── meta.json    id, name, argv, cwd, host, user, times, pids, options
//! │   ├── log          header, the job's stdout and stderr, footer
//! │   ├── pid          the job's pid (appears with the job)
//! │   ├── status       "STATE exit|signal N ENDED_AT" (appears when it ends)
//! │   ├── notified     ntfy outcome: "sent" or "failed: REASON"
//! │   └── stop         a stop request: "term" or "kill"
//! ├── .new-*           a job being made: hidden, renamed into place whole
//! ├── .rm-*            a job being removed: renamed out of sight first
//! └── .keys/HEX        idempotency keys: symlink to the job id
//! ```
//!
//! Rules: every file has one writer and is published by write-temp-then-
//! rename (the job's `log` is the only file appended to). A job directory is
//! built under a hidden name and renamed into place with its `pid` already
//! in it, so a reader never sees a half-made job. `status` is reserved at
//! creation as a hidden 128-byte file, so the end of a job can be recorded
//! even when the job has filled the disk. Readers skip dot-entries and
//! foreign files, and report a damaged job without failing the listing.
//!
//! This module knows nothing of processes: whether a job without `status`
//! is still running is for the caller to decide (see `cmd::state`).

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::ffi::OsString;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, ErrorKind, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
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
    #[serde(default)]
    pub context: Option<Box<RawValue>>,
    #[serde(default)]
    pub key: Option<String>,
}

impl Meta {
    /// When the job started, as recorded (now, if unreadable).
    pub fn started(&self) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(&self.started_at).unwrap_or_else(|_| chrono::Local::now().fixed_offset())
    }
}

/// How a job ended, as the watcher recorded it in `status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Running,
    Done,
    Failed,
    Killed,
    Stopped,
    Timeout,
    Lost,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Done => "done",
            State::Failed => "failed",
            State::Killed => "killed",
            State::Stopped => "stopped",
            State::Timeout => "timeout",
            State::Lost => "lost",
        }
    }
    fn parse(s: &str) -> Option<State> {
        Some(match s {
            "done" => State::Done,
            "failed" => State::Failed,
            "killed" => State::Killed,
            "stopped" => State::Stopped,
            "timeout" => State::Timeout,
            _ => return None,
        })
    }
}

/// How the job's process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Exited(i32),
    Signaled(i32),
}

#[derive(Clone, Debug)]
pub struct End {
    pub state: State,
    pub outcome: Outcome,
    pub ended_at: DateTime<FixedOffset>,
}

impl End {
    pub fn line(&self) -> String {
        let (kind, n) = match self.outcome {
            Outcome::Exited(c) => ("exit", c),
            Outcome::Signaled(s) => ("signal", s),
        };
        format!(
            "{} {kind} {n} {}\n",
            self.state.as_str(),
            self.ended_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, false)
        )
    }

    pub fn parse(text: &str) -> Option<End> {
        let mut w = text.split_ascii_whitespace();
        let state = State::parse(w.next()?)?;
        let kind = w.next()?;
        let n: i32 = w.next()?.parse().ok()?;
        let ended_at = DateTime::parse_from_rfc3339(w.next()?).ok()?;
        if w.next().is_some() {
            return None;
        }
        let outcome = match kind {
            "exit" => Outcome::Exited(n),
            "signal" => Outcome::Signaled(n),
            _ => return None,
        };
        Some(End { state, outcome, ended_at })
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
}

impl Job {
    pub fn log(&self) -> PathBuf {
        self.dir.join("log")
    }
    /// The pid in the `pid` file (what a user or tool may have put there),
    /// else the one in meta.json.
    pub fn pid_file(&self) -> Option<i32> {
        fs::read_to_string(self.dir.join("pid")).ok().and_then(|s| s.trim().parse().ok()).or(self.meta.pid)
    }
    /// Reads `status` again (it may have appeared since the job was loaded).
    pub fn reread_end(&mut self) -> Result<(), String> {
        self.end = read_status(&self.dir)?;
        Ok(())
    }
    /// The reserved status file of a job that has not ended, which its
    /// watcher holds locked until it records the end or dies; none once
    /// `status` is there.
    pub fn end_lock(&self) -> Option<File> {
        open_nofollow(&self.dir.join(".status")).ok()
    }
    /// The ntfy outcome, if the watcher recorded one: `sent` or `failed: …`.
    pub fn notified(&self) -> Option<String> {
        self.meta.notify_topic.as_ref()?;
        let text = fs::read_to_string(self.dir.join("notified")).ok()?;
        Some(text.trim_end().to_string())
    }
}

/// An entry of the store that looks like a job but cannot be read as one.
#[derive(Debug)]
pub struct Damaged {
    pub id: String,
    pub path: PathBuf,
    pub reason: String,
}

/// A job directory being made, not yet visible.
pub struct Staged {
    pub dir: PathBuf,
    /// Open for appending: becomes the job's stdout and stderr.
    pub log: File,
    /// The reserved `status`, written in place and renamed at the end.
    pub status: File,
}

pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Works out the root from the environment: `RUN_DIR`, else
    /// `$XDG_DATA_HOME/run`, else `$HOME/.local/share/run`.
    pub fn from_env(run_dir: Option<OsString>, xdg: Option<OsString>, home: Option<OsString>) -> Result<Store, String> {
        let nonempty = |v: Option<OsString>| v.filter(|v| !v.is_empty());
        if let Some(d) = nonempty(run_dir) {
            return Ok(Store::at(d.into()));
        }
        if let Some(x) = nonempty(xdg).filter(|x| Path::new(x).is_absolute()) {
            return Ok(Store::at(Path::new(&x).join("run")));
        }
        match nonempty(home) {
            Some(h) => Ok(Store::at(Path::new(&h).join(".local/share/run"))),
            None => Err("cannot find the job store: set RUN_DIR or HOME".into()),
        }
    }

    pub fn at(root: PathBuf) -> Store {
        Store { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Checks that the store is a directory; makes it (0700) if missing.
    pub fn create(&self) -> Result<(), String> {
        match fs::metadata(&self.root) {
            Ok(m) if m.is_dir() => return Ok(()),
            Ok(_) => return Err(format!("{}: not a directory (the job store)", self.root.display())),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("reading", &self.root, e)),
        }
        if let Some(parent) = self.root.parent() {
            fs::create_dir_all(parent).map_err(|e| io_err("creating", parent, e))?;
        }
        match DirBuilder::new().mode(0o700).create(&self.root) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::AlreadyExists && self.root.is_dir() => Ok(()),
            Err(e) => Err(io_err("creating", &self.root, e)),
        }
    }

    /// Builds a job directory under a hidden name: `cmd`, the log header and
    /// the reserved status (`meta.json` and `pid` come with `publish`, once
    /// the job's pid is known). Nothing is visible yet.
    pub fn stage(&self, meta: &Meta) -> Result<Staged, String> {
        let dir = self.root.join(format!(".new-{}-{}", meta.id, std::process::id()));
        DirBuilder::new().mode(0o700).create(&dir).map_err(|e| io_err("creating", &dir, e))?;
        let made = (|| {
            write_new(&dir.join("cmd"), format!("{}\n", meta.command).as_bytes())?;
            let header = format!(
                "=== {}\n=== cwd: {}\n=== started: {} on {} as {}\n",
                meta.command, meta.cwd, meta.started_at, meta.host, meta.user
            );
            let log_path = dir.join("log");
            let mut log = open_new(&log_path, true)?;
            log.write_all(header.as_bytes()).map_err(|e| io_err("writing", &log_path, e))?;
            let status_path = dir.join(".status");
            let mut status = open_new(&status_path, false)?;
            // Writing the bytes reserves the space (also under delayed
            // allocation), so the end can be written in place later.
            status.write_all(&[b' '; 128]).map_err(|e| io_err("reserving", &status_path, e))?;
            // Held (by the watcher, which inherits it) until the end is
            // recorded or the watcher dies: what `job wait` blocks on.
            status.lock().map_err(|e| io_err("locking", &status_path, e))?;
            Ok(Staged { dir: dir.clone(), log, status })
        })();
        if made.is_err() {
            let _ = fs::remove_dir_all(&dir);
        }
        made
    }

    /// Writes `meta.json` and `pid` into the staged directory and renames it
    /// into place. When the id is taken, a short suffix is added
    /// (and `meta.id` updated). Returns the job's directory.
    pub fn publish(&self, staged: &Staged, meta: &mut Meta) -> Result<PathBuf, String> {
        // The directory is still hidden: its files are written in place, and
        // the rename of the directory publishes them all at once.
        if let Some(pid) = meta.pid {
            write_new(&staged.dir.join("pid"), format!("{pid}\n").as_bytes())?;
        }
        let meta_path = staged.dir.join("meta.json");
        let meta_file = open_new(&meta_path, false)?;
        let base = meta.id.clone();
        let _lock = self.lock(false);
        // An id is taken only within the second it names; a launch slower
        // than that takes a suffix at once. A removal waits for that second
        // to be over (see `remove_job`), so no id is ever used twice.
        let late = chrono::Local::now().timestamp() > meta.started().timestamp();
        for attempt in u32::from(late)..1000 {
            if attempt > 0 {
                meta.id = format!("{base}_{}", suffix(attempt));
            }
            let bytes = meta_bytes(meta);
            let written = (|| {
                meta_file.set_len(0)?;
                meta_file.write_all_at(&bytes, 0)
            })();
            written.map_err(|e| io_err("writing", &meta_path, e))?;
            let dest = self.root.join(&meta.id);
            // rename(2) onto an existing non-empty directory, a file or a
            // link fails, so a taken id is never overwritten. (An empty
            // directory of that name is replaced: it held nothing.)
            match fs::rename(&staged.dir, &dest) {
                Ok(()) => return Ok(dest),
                Err(e) if is_taken(&e) => continue,
                Err(e) => return Err(io_err("publishing", &dest, e)),
            }
        }
        Err(format!("{}: no free id for {base}", self.root.display()))
    }

    /// Removes a staged directory after a failed launch.
    pub fn discard(&self, staged: &Staged) {
        let _ = fs::remove_dir_all(&staged.dir);
    }

    /// Every job in the store, oldest first, and the entries that look like
    /// jobs but cannot be read. A big store is read by a few threads.
    pub fn list(&self) -> Result<(Vec<Job>, Vec<Damaged>), String> {
        let root = match File::open(&self.root) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok((vec![], vec![])),
            Err(e) => return Err(io_err("reading", &self.root, e)),
        };
        let rd = fs::read_dir(&self.root).map_err(|e| io_err("reading", &self.root, e))?;
        let (mut ids, mut damaged) = (Vec::new(), Vec::new());
        for entry in rd {
            let entry = entry.map_err(|e| io_err("reading", &self.root, e))?;
            let name = entry.file_name();
            if name.as_encoded_bytes().first() == Some(&b'.') {
                continue;
            }
            let Ok(ft) = entry.file_type() else { continue };
            let id = name.to_string_lossy().into_owned();
            if ft.is_symlink() {
                damaged.push(Damaged { id, path: entry.path(), reason: "a symbolic link, not a job directory".into() });
            } else if !ft.is_dir() {
                // a foreign file (say, an old run script's .log)
            } else if name.to_str().is_none() {
                damaged.push(Damaged { id, path: entry.path(), reason: "a name that is not UTF-8".into() });
            } else {
                ids.push(id);
            }
        }
        fn read<'a>(root: &File, root_path: &Path, ids: &'a [String]) -> Vec<(&'a String, Result<Job, String>)> {
            let mut buf = Vec::new();
            ids.iter().map(|id| (id, read_job_at(root, root_path, id, &mut buf))).collect()
        }
        let threads =
            if ids.len() < 512 { 1 } else { std::thread::available_parallelism().map_or(1, |n| n.get().min(4)) };
        let read: Vec<_> = if threads == 1 {
            read(&root, &self.root, &ids)
        } else {
            let chunk = ids.len().div_ceil(threads);
            std::thread::scope(|s| {
                let (root, root_path) = (&root, &self.root);
                let parts: Vec<_> =
                    ids.chunks(chunk).map(|part| s.spawn(move || read(root, root_path, part))).collect();
                parts.into_iter().flat_map(|p| p.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
            })
        };
        let mut jobs = Vec::with_capacity(read.len());
        for (id, r) in read {
            match r {
                Ok(job) => jobs.push(job),
                Err(reason) => {
                    let path = self.root.join(id);
                    // Removed while we listed: not damage.
                    if fs::symlink_metadata(&path).is_ok() {
                        damaged.push(Damaged { id: id.clone(), path, reason });
                    }
                }
            }
        }
        jobs.sort_by(|a, b| a.started.cmp(&b.started).then_with(|| a.id.cmp(&b.id)));
        Ok((jobs, damaged))
    }

    /// One job by exact id.
    pub fn get(&self, id: &str) -> Result<Option<Job>, Damaged> {
        if id.is_empty() || id.starts_with('.') || id.contains('/') {
            return Ok(None);
        }
        let path = self.root.join(id);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => {
                return Err(Damaged { id: id.into(), path, reason: "a symbolic link, not a job directory".into() })
            }
            _ => return Ok(None),
        }
        read_job(&path, id).map(Some).map_err(|reason| Damaged { id: id.into(), path, reason })
    }

    /// Removes a job's directory (or a link planted in its place, never
    /// following it): renamed out of sight first, so no reader sees half of
    /// it. Returns the bytes freed. The caller has made sure it is not
    /// running. An entry already gone (another `runrm` got there first)
    /// frees nothing and is no error.
    pub fn remove(&self, id: &str) -> Result<u64, String> {
        self.remove_if(id, |_| true)
    }

    /// Removes the job `job` was read from, and only it (checked under the
    /// store's lock); gone meanwhile, nothing is removed (Ok(0)). Not before
    /// the second its id names is over, so that no launch can take the id
    /// again: an id names one job, ever.
    pub fn remove_job(&self, job: &Job) -> Result<u64, String> {
        let left = (job.started.timestamp() + 1) * 1000 - chrono::Local::now().timestamp_millis();
        if (1..=1000).contains(&left) {
            std::thread::sleep(std::time::Duration::from_millis(left as u64));
        }
        let m = &job.meta;
        self.remove_if(&job.id, |dir| {
            read_job(dir, &job.id).is_ok_and(|now| {
                (&now.meta.started_at, now.meta.pid, now.meta.pid_start) == (&m.started_at, m.pid, m.pid_start)
            })
        })
    }

    fn remove_if(&self, id: &str, still: impl Fn(&Path) -> bool) -> Result<u64, String> {
        let path = self.root.join(id);
        let hidden = self.root.join(format!(".rm-{id}-{}", std::process::id()));
        {
            let _lock = self.lock(true);
            if !still(&path) {
                return Ok(0);
            }
            match fs::rename(&path, &hidden) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(0),
                Err(e) => return Err(io_err("removing", &path, e)),
            }
        }
        let size = disk_usage(&hidden);
        let meta = fs::symlink_metadata(&hidden).map_err(|e| io_err("removing", &path, e))?;
        if !meta.is_dir() {
            fs::remove_file(&hidden).map_err(|e| io_err("removing", &path, e))?;
            return Ok(size);
        }
        // A finished job's watcher may still be recording its notification:
        // a file appearing mid-removal is removed on the next pass.
        let mut res = fs::remove_dir_all(&hidden);
        for _ in 0..5 {
            match &res {
                Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => res = fs::remove_dir_all(&hidden),
                _ => break,
            }
        }
        res.map_err(|e| io_err("removing", &path, e))?;
        Ok(size)
    }

    /// The store's lock (flock on its directory): held shared while a job
    /// takes its id, exclusive while one is judged and renamed away. Best
    /// effort: where it cannot be had (a read-only store), the rename that
    /// follows fails anyway.
    fn lock(&self, exclusive: bool) -> Option<File> {
        let dir = File::open(&self.root).ok()?;
        let locked = if exclusive { dir.lock() } else { dir.lock_shared() };
        locked.ok().map(|()| dir)
    }

    /// The hidden leftovers of a launch or a removal that was interrupted
    /// (`.new-*`, `.rm-*`: no reader ever sees them) and untouched for
    /// `min_age`, by then surely abandoned: removed (never followed, if a
    /// link), or with `dry_run` only counted. Returns their names and the
    /// bytes they held.
    pub fn sweep_leftovers(&self, min_age: std::time::Duration, dry_run: bool) -> (Vec<String>, u64) {
        let (mut names, mut bytes) = (Vec::new(), 0);
        let Ok(rd) = fs::read_dir(&self.root) else { return (names, bytes) };
        for entry in rd.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with(".new-") && !name.starts_with(".rm-") {
                continue;
            }
            let path = entry.path();
            let Ok(m) = fs::symlink_metadata(&path) else { continue };
            if m.modified().ok().and_then(|t| t.elapsed().ok()).is_none_or(|age| age < min_age) {
                continue;
            }
            let size = disk_usage(&path);
            let gone = dry_run || if m.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) }.is_ok();
            if gone {
                names.push(name);
                bytes += size;
            }
        }
        (names, bytes)
    }

    /// Disk space the whole store takes, in bytes.
    pub fn disk_usage(&self) -> u64 {
        disk_usage(&self.root)
    }

    // --- idempotency keys --------------------------------------------------

    fn key_path(&self, key: &str) -> PathBuf {
        let hex: String = key.bytes().map(|b| format!("{b:02x}")).collect();
        self.root.join(".keys").join(hex)
    }

    /// Claims `key` for a launch by this process, atomically: exactly one
    /// of any number of racing claimants gets `Claim::Mine`; the others get
    /// the id of the job that holds it (waiting, bounded, while the winner
    /// is still launching).
    pub fn claim_key(&self, key: &str, alive: &dyn Fn(i32) -> bool) -> Result<Claim, String> {
        let path = self.key_path(key);
        if let Some(dir) = path.parent() {
            match DirBuilder::new().mode(0o700).create(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err("creating", dir, e)),
            }
        }
        let pending = format!(".pending.{}", std::process::id());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match std::os::unix::fs::symlink(&pending, &path) {
                Ok(()) => return Ok(Claim::Mine),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err("claiming key at", &path, e)),
            }
            let target = match fs::read_link(&path) {
                Ok(t) => t.to_string_lossy().into_owned(),
                Err(e) if e.kind() == ErrorKind::NotFound => continue, // released: try again
                Err(e) => return Err(io_err("reading key", &path, e)),
            };
            if let Some(pid) = target.strip_prefix(".pending.") {
                let claimant_alive = pid.parse().map(alive).unwrap_or(false);
                if !claimant_alive {
                    return Err(format!(
                        "key '{key}': claimed by a launch that did not finish; remove {} to reuse it",
                        path.display()
                    ));
                }
                if std::time::Instant::now() > deadline {
                    return Err(format!("key '{key}': still being launched after 10 s"));
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
                continue;
            }
            return Ok(Claim::Taken(target));
        }
    }

    /// Points a claimed key at the job that now holds it (atomic replace).
    pub fn set_key(&self, key: &str, id: &str) -> Result<(), String> {
        let path = self.key_path(key);
        let tmp = path.with_file_name(format!(".tmp.{}", std::process::id()));
        let _ = fs::remove_file(&tmp);
        std::os::unix::fs::symlink(id, &tmp).map_err(|e| io_err("writing", &tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| io_err("writing", &path, e))
    }

    /// Releases a key: after a failed launch, or when its job is removed.
    /// Only removes the entry if it still names `target`.
    pub fn release_key(&self, key: &str, target: &str) {
        let path = self.key_path(key);
        if fs::read_link(&path).map(|t| t.as_os_str() == target).unwrap_or(false) {
            let _ = fs::remove_file(&path);
        }
    }

    pub fn pending_target() -> String {
        format!(".pending.{}", std::process::id())
    }
}

pub enum Claim {
    Mine,
    Taken(String),
}

/// Which job a word names, among `jobs` (id and name, oldest first).
#[derive(Debug, PartialEq, Eq)]
pub enum Pick {
    One(usize),
    NoMatch,
    /// Several ids start with the word: their indexes, oldest first.
    Ambiguous(Vec<usize>),
}

/// The rules every front resolves a job by: the job with that exact id,
/// else the newest job of that name, else the one job whose id starts with
/// the word.
pub fn pick(jobs: &[(&str, &str)], word: &str) -> Pick {
    if let Some(i) = jobs.iter().position(|(id, _)| *id == word) {
        return Pick::One(i);
    }
    if let Some(i) = jobs.iter().rposition(|(_, name)| *name == word) {
        return Pick::One(i);
    }
    let matches: Vec<usize> = (0..jobs.len()).filter(|&i| jobs[i].0.starts_with(word)).collect();
    match matches.len() {
        0 => Pick::NoMatch,
        1 => Pick::One(matches[0]),
        _ => Pick::Ambiguous(matches),
    }
}

fn read_job(dir: &Path, id: &str) -> Result<Job, String> {
    let parent = dir.parent().unwrap_or(Path::new("/"));
    let root = File::open(parent).map_err(|e| io_err("reading", parent, e))?;
    read_job_at(&root, parent, id, &mut Vec::new())
}

/// Never this big (the context is at most 1 MiB, argv what the kernel
/// takes): a bigger `meta.json` is damaged, not read whole into memory.
const META_MAX: u64 = 64 << 20;

/// Reads the job `id` of the store open as `root` (at `root_path`), with
/// `buf` as scratch space kept from one job to the next: a listing makes
/// two opens and two reads per job.
fn read_job_at(root: &File, root_path: &Path, id: &str, buf: &mut Vec<u8>) -> Result<Job, String> {
    let meta_path = || root_path.join(id).join("meta.json");
    let opened = crate::proc::open_in(root, &Path::new(id).join("meta.json"));
    let bytes = opened.and_then(|f| read_small(f, META_MAX, buf)).map_err(|e| io_err("reading", &meta_path(), e))?;
    if bytes.len() as u64 > META_MAX {
        return Err(format!("reading {}: larger than 64 MiB", meta_path().display()));
    }
    let meta: Meta = serde_json::from_slice(bytes).map_err(|e| format!("reading {}: {e}", meta_path().display()))?;
    let started = DateTime::parse_from_rfc3339(&meta.started_at)
        .map_err(|e| format!("reading {}: started_at: {e}", meta_path().display()))?;
    let dir = root_path.join(id);
    let end = status_from(crate::proc::open_in(root, &Path::new(id).join("status")), &dir, buf)?;
    Ok(Job { id: id.to_string(), dir, meta, started, end })
}

/// The open file `f`, whole up to `max` bytes (one byte more shows that it
/// is bigger). Usually one read(2): `buf` (kept from one call to the next)
/// is made big enough for a job's small files, and a short read of a
/// regular file is its end.
fn read_small(mut f: File, max: u64, buf: &mut Vec<u8>) -> io::Result<&[u8]> {
    let first = (max + 1).min(64 * 1024) as usize;
    if buf.len() < first {
        buf.resize(first, 0);
    }
    let n = loop {
        match f.read(&mut buf[..first]) {
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            r => break r?,
        }
    };
    if n < first {
        return Ok(&buf[..n]);
    }
    buf.truncate(first);
    f.take(max + 1 - first as u64).read_to_end(buf)?;
    Ok(&buf[..])
}

/// Opens `path` for reading, never through a symbolic link in its last
/// component (a link planted in the store is not followed).
fn open_nofollow(path: &Path) -> io::Result<File> {
    OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(path)
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

/// Records the end of a job: the reserved status file is filled in place
/// (no new space needed) and renamed to `status`, the one moment the job's
/// end becomes visible; then its lock is released, which wakes `job wait`,
/// and both are synced.
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
    let _ = status.sync_all();
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Appends the footer to the log: on a line of its own, the end state and
/// how long the job ran.
pub fn write_footer(log: &File, log_path: &Path, end: &End, secs: f64) -> Result<(), String> {
    let needs_newline = log
        .metadata()
        .ok()
        .filter(|m| m.len() > 0)
        .and_then(|m| {
            let mut b = [0u8; 1];
            log.read_at(&mut b, m.len() - 1).ok().map(|_| b[0] != b'\n')
        })
        .unwrap_or(false);
    let footer = format!(
        "{}=== {} after {}, at {}\n",
        if needs_newline { "\n" } else { "" },
        describe_end(end),
        human_duration(secs),
        end.ended_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, false)
    );
    let mut log = log;
    log.write_all(footer.as_bytes()).map_err(|e| io_err("writing", log_path, e))
}

/// `done (exit 0)`, `failed (exit 2)`, `killed (SIGKILL)`, `timeout (SIGTERM)`…
pub fn describe_end(end: &End) -> String {
    format!("{} ({})", end.state.as_str(), describe_outcome(end.outcome))
}

pub fn describe_outcome(o: Outcome) -> String {
    match o {
        Outcome::Exited(c) => format!("exit {c}"),
        Outcome::Signaled(s) => signal_name(s),
    }
}

pub fn signal_name(sig: i32) -> String {
    let name = match sig {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        10 => "SIGUSR1",
        11 => "SIGSEGV",
        12 => "SIGUSR2",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        24 => "SIGXCPU",
        25 => "SIGXFSZ",
        _ => return format!("signal {sig}"),
    };
    name.to_string()
}

/// A line of the watcher's own in the log (it has no stderr).
pub fn append_note(log: &File, log_path: &Path, msg: &str) -> Result<(), String> {
    let mut log = log;
    log.write_all(format!("\n=== bgrun: {msg}\n").as_bytes()).map_err(|e| io_err("writing", log_path, e))
}

/// The stop request in a job directory, if any: "term" or "kill".
pub fn stop_request(dir: &Path) -> Option<String> {
    fs::read_to_string(dir.join("stop")).ok().map(|s| s.trim().to_string())
}

/// Rewrites `meta.json` whole (write-temp-then-rename).
pub fn write_meta(dir: &Path, meta: &Meta) -> Result<(), String> {
    write_atomic(dir, "meta.json", &meta_bytes(meta))
}

/// The scripts' duration form: `45s`, `3m 05s`, `2h 15m`, `1d 3h`.
pub fn human_duration(secs: f64) -> String {
    let s = if secs.is_finite() && secs > 0.0 { secs as u64 } else { 0 };
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// Where the last `n` lines of a file start (a final newline does not
/// start an empty line). Scans back from the end in blocks, so it costs
/// what the tail is, not what the file is, in time and memory.
pub fn tail_start(path: &Path, n: usize) -> io::Result<u64> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    if n == 0 {
        return Ok(len);
    }
    let mut pos = len;
    let mut seen = 0;
    let mut chunk = vec![0u8; 64 * 1024];
    while pos > 0 {
        let step = pos.min(chunk.len() as u64) as usize;
        pos -= step as u64;
        f.seek(SeekFrom::Start(pos))?;
        f.read_exact(&mut chunk[..step])?;
        for i in (0..step).rev() {
            let at = pos + i as u64;
            if chunk[i] == b'\n' && at + 1 < len {
                seen += 1;
                if seen == n {
                    return Ok(at + 1);
                }
            }
        }
    }
    Ok(0)
}

/// The last `n` lines of a file, at most `max_bytes` of them (the end).
pub fn tail_lines(path: &Path, n: usize, max_bytes: u64) -> io::Result<Vec<u8>> {
    let start = tail_start(path, n)?;
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    let start = start.max(len.saturating_sub(max_bytes));
    f.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::new();
    f.take(len - start).read_to_end(&mut buf)?;
    Ok(buf)
}

pub fn disk_usage(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = fs::symlink_metadata(path) else { return 0 };
    let own = m.blocks() * 512;
    if !m.is_dir() {
        return own;
    }
    let Ok(rd) = fs::read_dir(path) else { return own };
    own + rd.flatten().map(|e| disk_usage(&e.path())).sum::<u64>()
}

fn meta_bytes(meta: &Meta) -> Vec<u8> {
    let mut v = serde_json::to_vec_pretty(meta).expect("a Meta always serializes");
    v.push(b'\n');
    v
}

fn open_new(path: &Path, append: bool) -> Result<File, String> {
    OpenOptions::new()
        .write(true)
        .read(true)
        .append(append)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io_err("creating", path, e))
}

fn write_new(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let mut f = open_new(path, false)?;
    f.write_all(bytes).map_err(|e| io_err("writing", path, e))
}

/// Write-temp-then-rename within `dir`; the temp file is removed on failure.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), String> {
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let dest = dir.join(name);
    let res = (|| {
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        f.write_all(bytes)?;
        fs::rename(&tmp, &dest)
    })();
    res.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_err("writing", &dest, e)
    })
}

fn is_taken(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EEXIST) | Some(libc::ENOTEMPTY) | Some(libc::ENOTDIR) | Some(libc::EISDIR))
}

/// A short suffix for a taken id: base-36 of the pid and the attempt, so
/// racing launchers pick different names on their first retry.
fn suffix(attempt: u32) -> String {
    let mut n = (std::process::id() as u64) * 1000 + attempt as u64;
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut s = Vec::new();
    while n > 0 {
        s.push(digits[(n % 36) as usize]);
        n /= 36;
    }
    s.reverse();
    String::from_utf8(s).expect("base-36 digits are ASCII")
}

pub fn io_err(action: &str, path: &Path, e: io::Error) -> String {
    let msg = e.to_string();
    let msg = msg.split(" (os error").next().unwrap_or(&msg).to_lowercase();
    format!("{action} {}: {msg}", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_the_scripts() {
        assert_eq!(human_duration(45.0), "45s");
        assert_eq!(human_duration(185.0), "3m 05s");
        assert_eq!(human_duration(8100.0), "2h 15m");
        assert_eq!(human_duration(97_200.0), "1d 3h");
    }

    #[test]
    fn a_status_line_reads_back_as_written() {
        let end = End {
            state: State::Killed,
            outcome: Outcome::Signaled(9),
            ended_at: DateTime::parse_from_rfc3339("2026-11-23T18:39:33.123+01:00").unwrap(),
        };
        let back = End::parse(&end.line()).unwrap();
        assert_eq!(back.state, State::Killed);
        assert_eq!(back.outcome, Outcome::Signaled(9));
        assert_eq!(back.ended_at, end.ended_at);
    }

    #[test]
    fn tails_count_whole_lines_and_respect_the_byte_cap() {
        let dir = std::env::temp_dir().join(format!("bgrun-tail-{}", std::process::id()));
        let _ = fs::create_dir_all(&dir);
        let p = dir.join("log");
        fs::write(&p, "a\nb\nc\n").unwrap();
        assert_eq!(tail_lines(&p, 2, u64::MAX).unwrap(), b"b\nc\n");
        assert_eq!(tail_lines(&p, 9, u64::MAX).unwrap(), b"a\nb\nc\n");
        assert_eq!(tail_lines(&p, 0, u64::MAX).unwrap(), b"");
        fs::write(&p, "a\nno newline at the end").unwrap();
        assert_eq!(tail_lines(&p, 1, u64::MAX).unwrap(), b"no newline at the end");
        assert_eq!(tail_lines(&p, 1, 3).unwrap(), b"end");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_word_picks_an_exact_id_then_the_newest_of_a_name_then_a_unique_prefix() {
        let jobs = [("build_1", "build"), ("test_1", "test"), ("build_2", "build"), ("build", "other")];
        assert_eq!(pick(&jobs, "build"), Pick::One(3), "an exact id comes first");
        assert_eq!(pick(&jobs, "test"), Pick::One(1));
        assert_eq!(pick(&jobs[..3], "build"), Pick::One(2), "the newest of a name");
        assert_eq!(pick(&jobs, "te"), Pick::One(1));
        assert_eq!(pick(&jobs, "build_"), Pick::Ambiguous(vec![0, 2]));
        assert_eq!(pick(&jobs, "x"), Pick::NoMatch);
        assert_eq!(pick(&[], ""), Pick::NoMatch);
    }

    #[test]
    fn garbage_status_is_not_a_status() {
        for s in ["", "done", "done exit x 2026", "weird exit 0 2026-11-23T18:39:33Z", "\u{0}\u{1}"] {
            assert!(End::parse(s).is_none(), "{s:?}");
        }
    }
}
