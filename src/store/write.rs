//! The changes the store makes to jobs: a job staged under a hidden name
//! and published by one rename (its end is recorded in `record`, its
//! removal is `remove`'s). Each file has one writer; nothing is rewritten
//! in place once it is visible (the log is only appended to).

use super::job::{meta_bytes, Meta, META_MAX};
use super::Store;
use crate::files::{io_err, write_atomic};
use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// A job directory being made, not yet visible.
pub struct Staged {
    pub dir: PathBuf,
    /// Open for appending: becomes the job's stdout and stderr.
    pub log: File,
    /// The reserved `status`, written in place and renamed at the end.
    pub status: File,
    /// A queued job being started: its directory is already published, so
    /// `publish` writes `pid` and `meta.json` in it by rename instead.
    pub in_place: bool,
}

impl Store {
    /// Builds a job directory under a hidden name: `cmd`, the empty log
    /// (its header is not written: readers render it from meta.json, so
    /// the job's output starts at offset 0, page-aligned) and the reserved
    /// status (`meta.json` comes with `publish`, once the job's pid is
    /// known). Nothing is visible yet.
    pub fn stage(&self, meta: &Meta) -> Result<Staged, String> {
        self.stage_with(meta, true)
    }

    /// As `stage`, without `cmd`: for a job started at once, whose watcher
    /// writes `cmd` and `pid` after the launcher has returned (`write_after_launch`).
    /// Each file made before the launcher prints the id costs it time (on
    /// ext4, making an inode is most of a launch's system time), so only
    /// what a reader needs to see a whole job is made here: the log, the
    /// reserved status, then `meta.json`.
    pub fn stage_lean(&self, meta: &Meta) -> Result<Staged, String> {
        self.stage_with(meta, false)
    }

    fn stage_with(&self, meta: &Meta, with_cmd: bool) -> Result<Staged, String> {
        // Room for what `publish` adds (pids, a suffix) and `ended_at`.
        let size = meta_bytes(meta).len() as u64 + 4096;
        if size > META_MAX {
            return Err(format!(
                "the command line is too long to record: {} MiB in meta.json, at most {} MiB",
                size >> 20,
                META_MAX >> 20
            ));
        }
        let dir = self.root.join(format!(".new-{}-{}", meta.id, std::process::id()));
        crate::files::make_private_dir(&dir).map_err(|e| io_err("creating", &dir, e))?;
        let made = (|| {
            if with_cmd {
                write_new(&dir.join("cmd"), format!("{}\n", meta.command).as_bytes())?;
            }
            let log_path = dir.join("log");
            let log = open_new(&log_path, true)?;
            if let Some(max) = meta.log_max {
                super::cap::probe(&log).map_err(|e| {
                    let why = io_err("", &self.root, e);
                    let why = why.rsplit(": ").next().unwrap_or("unsupported");
                    format!(
                        "cannot cap the log at {} (--log-max, RUN_LOG_MAX): the filesystem of {} cannot punch holes in a file ({why})",
                        super::human_bytes(max),
                        self.root.display()
                    )
                })?;
            }
            // A filesystem without fallocate (some NFS) goes without; a
            // full one refuses the job, as it refuses its other files.
            match super::cap::reserve(&log, LOG_RESERVE) {
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => return Err(io_err("reserving", &log_path, e)),
                _ => {}
            }
            let status_path = dir.join(".status");
            let mut status = open_new(&status_path, false)?;
            // Writing the bytes reserves the space (also under delayed
            // allocation), so the end can be written in place later.
            status.write_all(&[b' '; 128]).map_err(|e| io_err("reserving", &status_path, e))?;
            // Held (by the watcher, which inherits it) until the end is
            // recorded or the watcher dies: what `job wait` blocks on.
            status.lock().map_err(|e| io_err("locking", &status_path, e))?;
            Ok(Staged { dir: dir.clone(), log, status, in_place: false })
        })();
        if made.is_err() {
            let _ = fs::remove_dir_all(&dir);
        }
        made
    }

    /// Writes `meta.json` (which holds the job's pid) into the staged
    /// directory and renames it into place. When the id is taken, a short
    /// suffix is added (and `meta.id` updated). Returns the job's directory.
    pub fn publish(&self, staged: &Staged, meta: &mut Meta) -> Result<PathBuf, String> {
        self.publish_with(staged, meta, |_| Ok(()))
    }

    /// As `publish`, calling `before(id)` before each try to rename the
    /// job into place under `id` (a queue slot's link made to name it
    /// first: see `SlotHold`).
    pub fn publish_with(
        &self,
        staged: &Staged,
        meta: &mut Meta,
        before: impl Fn(&str) -> Result<(), String>,
    ) -> Result<PathBuf, String> {
        if staged.in_place {
            return start_in_place(staged, meta);
        }
        // The directory is still hidden: its files are written in place, and
        // the rename of the directory publishes them all at once.
        let meta_path = staged.dir.join("meta.json");
        let meta_file = open_new(&meta_path, false)?;
        let base = meta.id.clone();
        let _lock = self.lock(false)?;
        // An id is taken only within the second it names; a launch slower
        // than that takes a suffix at once. Which id: see ids.rs. The one
        // found free is written into meta.json, then the rename settles a
        // race for it.
        let late = chrono::Local::now().timestamp() > meta.started().timestamp();
        let mut next = if late { 2 } else { 1 };
        let mut written_len = None;
        for _ in 0..1000 {
            let n = super::ids::first_free(next, |n| self.id_taken(&super::ids::nth(&base, n)));
            meta.id = super::ids::nth(&base, n);
            next = n + 1;
            let bytes = meta_bytes(meta);
            let written = (|| {
                if written_len.is_some_and(|n| n > bytes.len()) {
                    meta_file.set_len(bytes.len() as u64)?;
                }
                meta_file.write_all_at(&bytes, 0)
            })();
            written.map_err(|e| io_err("writing", &meta_path, e))?;
            written_len = Some(bytes.len());
            let dest = self.root.join(&meta.id);
            before(&meta.id)?;
            // rename(2) onto an existing non-empty directory, a file or a
            // link fails, so an id taken since the check above is never
            // overwritten. (An empty directory made since would be
            // replaced: it held nothing.)
            match fs::rename(&staged.dir, &dest) {
                Ok(()) => return Ok(dest),
                Err(e) if is_taken(&e) => continue,
                Err(e) => return Err(io_err("publishing", &dest, e)),
            }
        }
        Err(format!("{}: no free id for {base}", self.root.display()))
    }

    /// Removes a staged directory after a failed launch (never a queued
    /// job's, which is published: its starter records the failure).
    pub fn discard(&self, staged: &Staged) {
        if !staged.in_place {
            let _ = fs::remove_dir_all(&staged.dir);
        }
    }

    /// Opens a queued job's log and reserved status to start it: the
    /// status locked, as `stage` leaves it. None while another process
    /// holds that lock (the launcher that queued it has not exited yet).
    pub fn open_queued(&self, dir: &Path) -> Result<Option<Staged>, String> {
        let status_path = dir.join(".status");
        let status = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&status_path)
            .map_err(|e| io_err("opening", &status_path, e))?;
        match status.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Ok(None),
            Err(fs::TryLockError::Error(e)) => return Err(io_err("locking", &status_path, e)),
        }
        let log_path = dir.join("log");
        let log = OpenOptions::new()
            .append(true)
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&log_path)
            .map_err(|e| io_err("opening", &log_path, e))?;
        Ok(Some(Staged { dir: dir.to_path_buf(), log, status, in_place: true }))
    }
}

/// Writes what a job started at once gets after its launcher returned
/// (see `Store::stage_lean`): `cmd` and `pid`, each by rename. Both repeat
/// what meta.json says, and readers fall back on it. Each is tried; returns
/// the errors, if any.
pub fn write_after_launch(dir: &Path, meta: &Meta) -> Vec<String> {
    let cmd = write_atomic(dir, "cmd", format!("{}\n", meta.command).as_bytes());
    let pid = meta.pid.map_or(Ok(()), |pid| write_pid(dir, pid));
    [cmd, pid].into_iter().filter_map(Result::err).collect()
}

/// The `pid` file, by rename.
fn write_pid(dir: &Path, pid: i32) -> Result<(), String> {
    write_atomic(dir, "pid", format!("{pid}\n").as_bytes())
}

/// Starts a queued job's record in place: `pid`, then `meta.json` by
/// rename (the moment it stops being queued), and its saved environment
/// removed.
fn start_in_place(staged: &Staged, meta: &Meta) -> Result<PathBuf, String> {
    let dir = staged.dir.clone();
    if let Some(pid) = meta.pid {
        write_pid(&dir, pid)?;
    }
    write_meta(&dir, meta)?;
    let _ = fs::remove_file(dir.join(ENV_FILE));
    Ok(dir)
}

/// The file that keeps a queued job's environment until it starts.
pub const ENV_FILE: &str = "env";

/// Saves the environment a queued job will run with (0600, NUL-separated
/// `NAME=VALUE` entries) in its staged directory.
pub fn write_env(staged: &Staged, env: &[std::ffi::OsString]) -> Result<(), String> {
    let mut bytes = Vec::new();
    for e in env {
        bytes.extend_from_slice(e.as_encoded_bytes());
        bytes.push(0);
    }
    write_new(&staged.dir.join(ENV_FILE), &bytes)
}

/// A queued job's saved environment (none if it has none: it started,
/// or was made by an older version). At most 64 MiB is read.
pub fn read_env(dir: &Path) -> Result<Option<Vec<std::ffi::OsString>>, String> {
    use std::io::Read;
    use std::os::unix::ffi::OsStringExt;
    let path = dir.join(ENV_FILE);
    let f = match crate::files::open_nofollow(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("reading", &path, e)),
    };
    let mut bytes = Vec::new();
    f.take(64 << 20).read_to_end(&mut bytes).map_err(|e| io_err("reading", &path, e))?;
    let env = bytes.split(|&b| b == 0).filter(|e| !e.is_empty()).map(|e| std::ffi::OsString::from_vec(e.to_vec()));
    Ok(Some(env.collect()))
}

/// Removes a queued job's saved environment (it never started).
pub fn remove_env(dir: &Path) {
    let _ = fs::remove_file(dir.join(ENV_FILE));
}

/// What the log has reserved at launch (`cap::reserve`): one page.
const LOG_RESERVE: u64 = 4096;

/// Rewrites `meta.json` whole (write-temp-then-rename).
pub fn write_meta(dir: &Path, meta: &Meta) -> Result<(), String> {
    write_atomic(dir, "meta.json", &meta_bytes(meta))
}

/// A new file, mode 0600 set explicitly (whatever the umask).
fn open_new(path: &Path, append: bool) -> Result<File, String> {
    let f = OpenOptions::new()
        .write(true)
        .read(true)
        .append(append)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io_err("creating", path, e))?;
    private(&f).map_err(|e| io_err("creating", path, e))?;
    Ok(f)
}

fn private(f: &File) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    f.set_permissions(fs::Permissions::from_mode(0o600))
}

fn write_new(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let mut f = open_new(path, false)?;
    f.write_all(bytes).map_err(|e| io_err("writing", path, e))
}

fn is_taken(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EEXIST) | Some(libc::ENOTEMPTY) | Some(libc::ENOTDIR) | Some(libc::EISDIR))
}
