//! A queue's files: `.queues/NAME@PLACE/` holds its lock, its settings
//! (`conf`), the index of its waiting jobs (`wait/`, one empty file per
//! job, named by the nanosecond it was queued, so that a directory listing
//! sorted by name is the queue in order) and its taken slots (`run/K`, a
//! symbolic link to the id of the job in slot K). The jobs themselves stay
//! ordinary job directories: the index only names them, so a decision
//! reads the waiting and the running jobs, never the ended ones.
//!
//! PLACE is the host and pid namespace the queue belongs to: a store
//! shared by several hosts keeps one queue per host under each name. The
//! queue of the jobs that have `--after` and no `--queue` has an empty NAME.
//! What the entries mean and who changes them is `crate::queue`'s.

use super::Store;
use crate::files::io_err;
use std::fs::{self, File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// One queue on one place.
#[derive(Clone, Debug)]
pub struct QueueDir {
    /// The queue's name; empty for the jobs with `--after` alone.
    pub name: String,
    pub place: String,
    path: PathBuf,
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
        self.root.join(".queues")
    }

    /// The queue `name` of `place` (its directory may not exist yet).
    pub fn queue(&self, name: &str, place: &str) -> QueueDir {
        let path = self.queues_root().join(format!("{name}@{place}"));
        QueueDir { name: name.to_string(), place: place.to_string(), path }
    }

    /// Every queue in the store, of every place, by name; none (and no
    /// error) when no queue was ever made: a single failed open.
    pub fn queues(&self) -> Vec<QueueDir> {
        let Ok(rd) = fs::read_dir(self.queues_root()) else { return vec![] };
        let mut found: Vec<QueueDir> = rd
            .flatten()
            .filter_map(|e| {
                let n = e.file_name().into_string().ok()?;
                let (name, place) = n.split_once('@')?;
                (!place.is_empty()).then(|| QueueDir { name: name.into(), place: place.into(), path: e.path() })
            })
            .collect();
        found.sort_by(|a, b| (&a.name, &a.place).cmp(&(&b.name, &b.place)));
        found
    }
}

impl QueueDir {
    pub fn exists(&self) -> bool {
        self.path.is_dir()
    }

    /// Makes the queue's directories (0700) if missing.
    pub fn create(&self) -> Result<(), String> {
        for d in [self.path.parent().unwrap_or(&self.path), &self.path, &self.path.join("wait"), &self.path.join("run")]
        {
            match crate::files::make_private_dir(d) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::AlreadyExists && d.is_dir() => {}
                Err(e) => return Err(io_err("creating", d, e)),
            }
        }
        Ok(())
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

    fn lock_file(&self) -> Result<File, String> {
        self.create()?;
        let path = self.path.join("lock");
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| io_err("opening", &path, e))?;
        // 0600 whatever the umask, as every file of the store.
        let _ = f.set_permissions(fs::Permissions::from_mode(0o600));
        Ok(f)
    }

    pub fn conf(&self) -> Conf {
        let mut c = Conf::default();
        // A few bytes are all it ever holds: read no more than that.
        let mut text = String::new();
        let read = crate::files::open_nofollow(&self.path.join("conf"))
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
        self.create()?;
        let text = format!("slots {}\n{}", c.slots, if c.paused { "paused\n" } else { "" });
        crate::files::write_atomic(&self.path, "conf", text.as_bytes())
    }

    /// Is any job waiting? One open and a few entries read.
    pub fn has_waiting(&self) -> bool {
        fs::read_dir(self.path.join("wait")).is_ok_and(|mut rd| rd.any(|e| e.is_ok()))
    }

    /// When the index last changed (an entry added or removed), if it
    /// exists: what tells a reader that its copy is stale.
    pub fn waiting_changed(&self) -> Option<std::time::SystemTime> {
        fs::symlink_metadata(self.path.join("wait")).and_then(|m| m.modified()).ok()
    }

    /// The waiting jobs, first queued first: (entry, id).
    pub fn waiting(&self) -> Vec<(String, String)> {
        let Ok(rd) = fs::read_dir(self.path.join("wait")) else { return vec![] };
        let mut w: Vec<(String, String)> = rd
            .flatten()
            .filter_map(|e| {
                let n = e.file_name().into_string().ok()?;
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
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .and_then(|f| f.set_permissions(fs::Permissions::from_mode(0o600)))
            .map_err(|e| io_err("queueing", &path, e))?;
        Ok(name)
    }

    pub fn remove_waiting(&self, entry: &str) {
        let _ = fs::remove_file(self.path.join("wait").join(entry));
    }

    /// The taken slots: (slot, id of the job in it).
    pub fn slots(&self) -> Vec<(u32, String)> {
        let Ok(rd) = fs::read_dir(self.path.join("run")) else { return vec![] };
        let mut s: Vec<(u32, String)> = rd
            .flatten()
            .filter_map(|e| {
                let k = e.file_name().to_str()?.parse().ok()?;
                let id = fs::read_link(e.path()).ok()?.into_os_string().into_string().ok()?;
                Some((k, id))
            })
            .collect();
        s.sort();
        s
    }

    pub fn take_slot(&self, k: u32, id: &str) -> Result<(), String> {
        let path = self.path.join("run").join(k.to_string());
        let _ = fs::remove_file(&path);
        std::os::unix::fs::symlink(id, &path).map_err(|e| io_err("writing", &path, e))
    }

    pub fn free_slot(&self, k: u32) {
        let _ = fs::remove_file(self.path.join("run").join(k.to_string()));
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}
