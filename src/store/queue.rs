//! A queue's files: `.queues/NAME@PLACE/` holds its lock, its settings
//! (`conf`), the index of its waiting jobs (`wait/`, one empty file per
//! job, named by the nanosecond it was queued, so that a directory listing
//! sorted by name is the queue in order) and its taken slots (`run/K`, a
//! symbolic link to the id of the job in slot K). The jobs themselves stay
//! ordinary job directories: the index only names them, so a decision
//! reads the waiting and the running jobs, never the ended ones.
//!
//! PLACE is the machine the queue belongs to (its machine id; the host
//! and pid namespace for a queue made by an earlier version): a store
//! shared by several hosts keeps one queue per host under each name. The
//! queue of the jobs that have `--after` and no `--queue` has an empty NAME.
//! What the entries mean and who changes them is `crate::queue`'s.

use super::Store;
use crate::files::{self, io_err, Kind};
use std::fs::{self, File};
use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};

/// One queue on one place.
#[derive(Clone, Debug)]
pub struct QueueDir {
    /// The queue's name; empty for the jobs with `--after` alone.
    pub name: String,
    pub place: String,
    path: PathBuf,
    /// The store's root, which every open of the queue's directories
    /// starts from.
    root: PathBuf,
    /// The queue's directory, once opened (see `open`).
    opened: std::sync::Arc<std::sync::Mutex<Option<File>>>,
}

/// A slot of a queue given to a job launched at once (`run -q` into an
/// idle queue): the queue's lock, held by the launcher and then by the
/// watcher it forks (the same open lock, inherited) until the job is
/// published with the slot's link naming it. The link is made to name
/// each id the job is about to be published under, before it is; so
/// whoever is killed at any moment, the slot names the running job, or a
/// job that never ran (its watcher died before publishing, so the job
/// never got its "go"), which the next decision frees.
#[derive(Debug)]
pub struct SlotHold {
    pub queue: QueueDir,
    pub slot: u32,
    pub lock: File,
}

impl SlotHold {
    /// Makes the slot's link name `id`.
    pub fn name(&self, id: &str) -> Result<(), String> {
        self.queue.take_slot(self.slot, id)
    }

    /// Closes what the queue keeps open: a forked watcher, which closes
    /// every descriptor it does not know, opens it again when it needs it.
    pub fn close_dirs(&self) {
        *self.queue.opened.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    /// Frees the slot: the job was not published.
    pub fn free(&self) {
        self.queue.free_slot(self.slot);
    }
}

/// A queue's settings, as `job queue` sets them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conf {
    pub slots: u32,
    pub paused: bool,
}

impl Default for Conf {
    fn default() -> Conf {
        Conf { slots: 1, paused: false }
    }
}

impl Store {
    fn queues_root(&self) -> PathBuf {
        self.root.join(QUEUES)
    }

    /// The queue `name` of `place` (its directory may not exist yet).
    pub fn queue(&self, name: &str, place: &str) -> QueueDir {
        let path = self.queues_root().join(format!("{name}@{place}"));
        let opened = Default::default();
        QueueDir { name: name.to_string(), place: place.to_string(), path, root: self.root.clone(), opened }
    }

    /// Every queue in the store, of every place, by name; none (and no
    /// error) when no queue was ever made: a single failed open. A link
    /// where `.queues` or a queue's directory should be is never followed:
    /// see `planted_queue_links`.
    pub fn queues(&self) -> Vec<QueueDir> {
        let Ok(dir) = files::open_dir(&self.root).and_then(|r| files::open_dir_in(&r, QUEUES)) else { return vec![] };
        let Ok(entries) = files::entries(&dir) else { return vec![] };
        let mut found: Vec<QueueDir> = entries
            .into_iter()
            .filter(|(_, kind)| *kind == Kind::Dir)
            .filter_map(|(n, _)| {
                let n = n.into_string().ok()?;
                let (name, place) = n.split_once('@')?;
                (!place.is_empty()).then(|| self.queue(name, place))
            })
            .collect();
        found.sort_by(|a, b| (&a.name, &a.place).cmp(&(&b.name, &b.place)));
        found
    }

    /// What is planted or damaged in the queues: a link (or any
    /// non-directory) where a directory should be (`.queues`,
    /// `NAME@PLACE`, its `wait` and `run`: never followed), and an entry
    /// of `run/` that is not a slot's link (never used as a slot, never
    /// removed); each with what it means, for the listing to report.
    pub fn planted_queue_links(&self) -> Vec<(PathBuf, String)> {
        let mut bad = Vec::new();
        let not_dir = "not a directory (a link is never followed): the queue's jobs wait until it is removed";
        let Ok(root) = files::open_dir(&self.root) else { return bad };
        let qs = match files::open_dir_in(&root, QUEUES) {
            Ok(d) => d,
            Err(e) if misplaced(&e) => return vec![(self.queues_root(), not_dir.to_string())],
            Err(_) => return bad,
        };
        for (n, kind) in files::entries(&qs).unwrap_or_default() {
            let path = self.queues_root().join(&n);
            if kind != Kind::Dir {
                if n.to_str().is_some_and(|n| n.contains('@')) {
                    bad.push((path, not_dir.to_string()));
                }
                continue;
            }
            let Some(n) = n.to_str() else { continue };
            let Ok(q) = files::open_dir_in(&qs, n) else { continue };
            for sub in ["wait", "run"] {
                match files::open_dir_in(&q, sub) {
                    Err(e) if misplaced(&e) => bad.push((path.join(sub), not_dir.to_string())),
                    Ok(run) if sub == "run" => {
                        for (k, kind) in files::entries(&run).unwrap_or_default() {
                            if kind != Kind::Link {
                                let why = "not a slot's link: that slot is not used until it is removed";
                                bad.push((path.join("run").join(&k), why.to_string()));
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        bad
    }
}

/// Is this error of opening a directory a non-directory in its place?
fn misplaced(e: &io::Error) -> bool {
    e.kind() == ErrorKind::InvalidData || e.raw_os_error() == Some(libc::ENOTDIR)
}

/// The queues' directory in the store's root.
const QUEUES: &str = ".queues";

impl QueueDir {
    /// `NAME@PLACE`, or an error if either could name anything but one
    /// directory in `.queues` (a `meta.json` planted with a queue of
    /// `../../x` is never followed out of the store).
    fn dir_name(&self) -> io::Result<String> {
        let safe =
            |s: &str| !s.starts_with('.') && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b));
        if safe(&self.name) && safe(&self.place) && !self.place.is_empty() {
            Ok(format!("{}@{}", self.name, self.place))
        } else {
            Err(io::Error::new(ErrorKind::InvalidInput, "not a queue's name"))
        }
    }

    /// `sub` (`wait` or `run`), made again if it is missing (its queue's
    /// directory exists: the lock is held), for a change to it.
    fn open_to_change(&self, sub: &str) -> io::Result<File> {
        match self.open(Some(sub)) {
            Err(e) if e.kind() == ErrorKind::NotFound => {
                self.made().map_err(io::Error::other)?;
                self.open(Some(sub))
            }
            r => r,
        }
    }

    /// The queue's directory, or `sub` in it, opened from the store's root
    /// without following a link at any level (a link planted at any level
    /// is an error, never followed). The queue's directory, once opened,
    /// is kept open for the next calls (a command's few looks at one
    /// queue): `sub` is then one open.
    fn open(&self, sub: Option<&str>) -> io::Result<File> {
        let mut opened = self.opened.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if opened.is_none() {
            let root = files::open_dir(&self.root)?;
            *opened = Some(files::open_dir_in(&files::open_dir_in(&root, QUEUES)?, &self.dir_name()?)?);
        }
        let q = opened.as_ref().expect("opened just above");
        match sub {
            Some(s) => files::open_dir_in(q, s),
            None => q.try_clone(),
        }
    }

    pub fn exists(&self) -> bool {
        self.open(None).is_ok()
    }

    /// Makes the queue's directories (0700) if missing, each in its parent
    /// and never through a link; returns the queue's directory.
    fn made(&self) -> Result<File, String> {
        let root = files::open_dir(&self.root).map_err(|e| io_err("opening", &self.root, e))?;
        let qs = files::make_dir_in(&root, QUEUES).map_err(|e| io_err("creating", &self.root.join(QUEUES), e))?;
        let q =
            self.dir_name().and_then(|n| files::make_dir_in(&qs, &n)).map_err(|e| io_err("creating", &self.path, e))?;
        for sub in ["wait", "run"] {
            files::make_dir_in(&q, sub).map_err(|e| io_err("creating", &self.path.join(sub), e))?;
        }
        // The directory made (perhaps again: deleted under a command that
        // had it open) is the one the next calls open from.
        if let Ok(copy) = q.try_clone() {
            *self.opened.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(copy);
        }
        Ok(q)
    }

    /// Makes the queue's directories (0700) if missing.
    pub fn create(&self) -> Result<(), String> {
        self.made().map(drop)
    }

    /// The queue's lock, held (exclusive) until the file is dropped: no
    /// two processes decide what starts in one queue at once.
    pub fn lock(&self) -> Result<File, String> {
        let f = self.lock_file()?;
        f.lock().map_err(|e| io_err("locking", &self.path.join("lock"), e))?;
        Ok(f)
    }

    /// The queue's lock if it can be had within `within` (tried every few
    /// milliseconds); none if another process holds it all that time.
    pub fn lock_within(&self, within: std::time::Duration) -> Result<Option<File>, String> {
        let f = self.lock_file()?;
        let until = std::time::Instant::now() + within;
        loop {
            match f.try_lock() {
                Ok(()) => return Ok(Some(f)),
                Err(fs::TryLockError::WouldBlock) if std::time::Instant::now() < until => {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(fs::TryLockError::WouldBlock) => return Ok(None),
                Err(fs::TryLockError::Error(e)) => return Err(io_err("locking", &self.path.join("lock"), e)),
            }
        }
    }

    /// The lock file, opened through the queue's directory (never through
    /// a planted link), made if missing.
    fn lock_file(&self) -> Result<File, String> {
        // Made only the first time (or when gone): most locks find it all.
        let q = match self.open(None) {
            Ok(q) => q,
            Err(_) => self.made()?,
        };
        let path = self.path.join("lock");
        let f = files::open_rw_in(&q, "lock").map_err(|e| io_err("opening", &path, e))?;
        Ok(f)
    }

    pub fn conf(&self) -> Conf {
        let mut c = Conf::default();
        // A few bytes are all it ever holds: read no more than that.
        let mut text = String::new();
        let read = self
            .open(None)
            .and_then(|q| files::open_in(&q, Path::new("conf")))
            .and_then(|f| std::io::Read::read_to_string(&mut std::io::Read::take(f, 4096), &mut text));
        if read.is_err() {
            return c;
        }
        for line in text.lines() {
            match line.split_once(' ') {
                Some(("slots", n)) => c.slots = n.trim().parse().unwrap_or(1).max(1),
                _ if line.trim() == "paused" => c.paused = true,
                _ => {}
            }
        }
        c
    }

    pub fn set_conf(&self, c: Conf) -> Result<(), String> {
        let q = self.made()?;
        let text = format!("slots {}\n{}", c.slots, if c.paused { "paused\n" } else { "" });
        files::write_atomic_in(&q, &self.path, "conf", text.as_bytes())
    }

    /// The entries of `sub` (`wait` or `run`) by name; none if it cannot
    /// be opened (missing, or a link: never followed).
    fn names(&self, sub: &str) -> (Option<File>, Vec<String>) {
        let Ok(d) = self.open(Some(sub)) else { return (None, vec![]) };
        let names = files::entries(&d).unwrap_or_default().into_iter().filter_map(|(n, _)| n.into_string().ok());
        let names = names.collect();
        (Some(d), names)
    }

    /// Is any job waiting? One open and the first entry read.
    pub fn has_waiting(&self) -> bool {
        self.open(Some("wait")).is_ok_and(|d| files::has_entries(&d).unwrap_or(false))
    }

    /// The device and inode of the queue's lock file: what names it in
    /// /proc/locks.
    pub fn lock_inode(&self) -> Option<(u64, u64)> {
        use std::os::unix::fs::MetadataExt;
        let m = self.open(None).and_then(|q| files::open_in(&q, Path::new("lock"))).ok()?.metadata().ok()?;
        Some((m.dev(), m.ino()))
    }

    /// When the index last changed (an entry added or removed), if it
    /// exists: what tells a reader that its copy is stale.
    pub fn waiting_changed(&self) -> Option<std::time::SystemTime> {
        fs::symlink_metadata(self.path.join("wait")).and_then(|m| m.modified()).ok()
    }

    /// The waiting jobs, first queued first: (entry, id).
    pub fn waiting(&self) -> Vec<(String, String)> {
        let mut w: Vec<(String, String)> = self
            .names("wait")
            .1
            .into_iter()
            .filter_map(|n| {
                let id = n.split_once('.')?.1.to_string();
                Some((n, id))
            })
            .collect();
        w.sort();
        w
    }

    /// Adds a job to the index (`ns`: when it was queued); returns the
    /// entry's name.
    pub fn add_waiting(&self, ns: i64, id: &str) -> Result<String, String> {
        let name = format!("{:020}.{id}", ns.max(0));
        let path = self.path.join("wait").join(&name);
        let wait = self.open_to_change("wait").map_err(|e| io_err("queueing", &path, e))?;
        files::create_new_in(&wait, &name).map_err(|e| io_err("queueing", &path, e))?;
        Ok(name)
    }

    pub fn remove_waiting(&self, entry: &str) {
        if let Ok(wait) = self.open(Some("wait")) {
            let _ = files::unlink_in(&wait, entry);
        }
    }

    /// The taken slots: (slot, id of the job in it); none for an entry
    /// that is not a link (planted: that slot is never used, never freed).
    pub fn slots(&self) -> Vec<(u32, Option<String>)> {
        let (Some(run), names) = self.names("run") else { return vec![] };
        let mut s: Vec<(u32, Option<String>)> = names
            .into_iter()
            .filter_map(|n| {
                let k = n.parse().ok()?;
                let id = match files::read_link_in(&run, &n) {
                    Ok(id) => Some(id.into_string().ok()?),
                    Err(e) if e.raw_os_error() == Some(libc::EINVAL) => None,
                    Err(_) => return None,
                };
                Some((k, id))
            })
            .collect();
        s.sort();
        s
    }

    pub fn take_slot(&self, k: u32, id: &str) -> Result<(), String> {
        let path = self.path.join("run").join(k.to_string());
        let run = self.open_to_change("run").map_err(|e| io_err("writing", &path, e))?;
        let _ = files::unlink_in(&run, &k.to_string());
        files::symlink_in(id, &run, &k.to_string()).map_err(|e| io_err("writing", &path, e))
    }

    pub fn free_slot(&self, k: u32) {
        if let Ok(run) = self.open(Some("run")) {
            let _ = files::unlink_in(&run, &k.to_string());
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}
