//! The job store: the only code that knows the on-disk layout.
//!
//! ```text
//! $RUN_DIR (or $XDG_DATA_HOME/run, or ~/.local/share/run)   0700
//! ├── make_20251205_163539/        one directory per job: the name is the id
//! │   ├── cmd          the command line, shell-quoted (may come just after)
//! │   ├── meta.json    id, name, argv, cwd, host, user, times, pids, options
//! │   ├── log          the job's stdout and stderr from its first byte,
//! │   │                then the footer; readers show a header before it,
//! │   │                rendered from meta.json ("log_header": "meta";
//! │   │                without it, an older job's log starts with one)
//! │   ├── pid          the job's pid (may come just after meta.json)
//! │   ├── status       "STATE exit|signal N ENDED_AT" (when it ends; an end
//! │   │                learnt from Slurm: "STATE unknown 0 ENDED_AT REASON")
//! │   ├── notified     ntfy outcome: "sent" or "failed: REASON"
//! │   ├── dropped      "START END": the log's range dropped by --log-max
//! │   ├── stop         a stop request: "term" or "kill"
//! │   ├── env          a queued job's environment (0600), until it starts
//! │   ├── slurm_id     a Slurm job's id in Slurm (written by the launcher)
//! │   └── node         where a Slurm job's step runs (written by the step)
//! ├── NAME_TS.log/.pid a job of the old run scripts: listed, shown, removed
//! ├── .new-*           a job being made: hidden, renamed into place whole
//! ├── .rm-*            a job being removed: renamed out of sight first
//! ├── .keys/HEX        idempotency keys: symlink to the job id
//! ├── .ids/NAME_YYYYmmdd_HH  the ids of NAME's removed jobs in that hour,
//! │                "MMSS N" a line: never given again (older: .ids/ID)
//! ├── .notify/K        flock: a slot to send a skipped job's notification
//! ├── .cache/       caches, never needed, rebuilt at will:
//! │   ├── summary      the ended jobs' `runs --json` lines (`cmd::summary`)
//! │   └── names        the root's job directories, while it has not changed
//! └── .queues/NAME@PLACE/   one queue on one host (see `queue`)
//!     ├── lock         flock: held by whoever decides what starts
//!     ├── conf         "slots N" and "paused" (absent: 1 slot, running)
//!     ├── wait/NS.ID   the waiting jobs, named by queueing time (ns)
//!     └── run/K        slot K taken: symlink to the job id
//! ```
//!
//! Rules: every file has one writer and is published by write-temp-then-
//! rename (the job's `log` is the only file appended to). A job directory is
//! built under a hidden name and renamed into place with `meta.json` (which
//! holds the job's pid) and `log` in it, so a reader never sees a half-made
//! job. `cmd` and `pid` repeat what meta.json says: for a job started
//! at once, its watcher writes them (by rename) just after the launcher has
//! returned, since every file made before the id is printed costs the
//! launch time; readers take meta.json's word while they are missing. A
//! queued or Slurm job has `cmd` from the start and `pid` once it starts. `status` is reserved at
//! creation as a hidden 128-byte file, so the end of a job can be recorded
//! even when the job has filled the disk. The log starts with the job's
//! first byte, so its writes are page-aligned as a plain redirect's are (a
//! header of a few dozen bytes before them made ext4 zero-fill a partial
//! page at every write); its first page is reserved at creation
//! (fallocate, size unchanged), room for the watcher's notes and footer on
//! a full disk. Readers skip dot-entries and foreign files, and report a
//! damaged job without failing the listing.
//!
//! This module knows nothing of processes: whether a job without `status`
//! is still running is for the caller to decide (see `state`).
//!
//! Its parts: `job` (what a job directory holds and how it is read),
//! `end` (the `status` line: states and outcomes), `write` (making and
//! publishing jobs), `remove` (removing them, one or many at once), `ids`
//! (which id a new job takes; the removed ones kept), `record` (recording
//! a job's end: status, footer, notes), `keys` (idempotency keys), `marks` (the small files others record
//! in a job directory: a stop request, the notification's outcome, a
//! Slurm job's node and id; the paths a watcher or step opens), `read`
//! (bounded readers of a log's tail), `cap` (`--log-max`: dropping a log's oldest output, and the
//! record readers skip it by), `queue` (the queues' files), `legacy` (the
//! old run scripts' files), `names` and `summary` (the caches). This file: the store's root, the listing, the
//! lock and the sweep of leftovers.

mod cap;
mod end;
mod ids;
mod job;
mod keys;
mod legacy;
mod listing;
mod marks;
pub mod names;
mod queue;
mod read;
mod record;
mod remove;
mod sends;
mod summary;
mod write;

pub use crate::files::io_err;
pub use cap::{marker, prepare_spare, read_dropped, Cap};
pub use end::{
    describe_end, describe_outcome, human_bytes, human_cpu, human_duration, signal_name, End, Outcome, State, Usage,
    FORGOTTEN,
};
pub use ids::{has_id_shape, nth as nth_id};
pub use job::{watcher_of, Damaged, Job, Meta, SlurmRec, SlurmSpec, HEADER_IN_META};
pub use keys::Claim;
pub use legacy::Legacy;
pub use listing::{Key, Named, Scan};
pub use marks::{
    damaged_life, log_path, open_log, open_reserved_status, record_node, record_notified, record_slurm_id,
    request_stop, stop_request, DamagedLife,
};
pub use queue::{Conf, QueueDir, SlotHold};
pub use read::{disk_usage, header_tail, tail_lines, tail_lines_after, tail_lines_shown, tail_reach, tail_start};
pub use record::{append_footer, append_note, record_end, record_end_once, record_first_end, sync_end, write_footer};
pub use remove::Removed;
pub use write::{read_env, remove_env, write_after_launch, write_env, write_meta, Staged};

use crate::files;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

#[derive(Clone)]
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

    /// Refuses a store that exists and is not private to this user (see
    /// `files::untrusted`); a missing one is fine (it reads as empty).
    pub fn check(&self) -> Result<(), String> {
        match fs::metadata(&self.root) {
            Ok(m) if m.is_dir() => files::untrusted(&self.root, &m).map_or(Ok(()), Err),
            _ => Ok(()),
        }
    }

    /// Checks that the store is a directory and private; makes it (0700,
    /// whatever the umask) if missing.
    pub fn create(&self) -> Result<(), String> {
        match fs::metadata(&self.root) {
            Ok(m) if m.is_dir() => return self.check(),
            Ok(_) => return Err(format!("{}: not a directory (the job store)", self.root.display())),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("reading", &self.root, e)),
        }
        if let Some(parent) = self.root.parent() {
            fs::create_dir_all(parent).map_err(|e| io_err("creating", parent, e))?;
        }
        match files::make_private_dir(&self.root) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::AlreadyExists && self.root.is_dir() => self.check(),
            Err(e) => Err(io_err("creating", &self.root, e)),
        }
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
        job::read_job(&path, id).map(Some).map_err(|reason| Damaged { id: id.into(), path, reason })
    }

    /// The store's lock (flock on its directory): held shared while a job
    /// takes its id, exclusive while one is judged and renamed away. Best
    /// effort where it cannot be had at all (a read-only store: the rename
    /// that follows fails anyway); waited for `STORE_LOCK_WAIT` at most
    /// when another command holds it (one stopped with Ctrl-Z holds it for
    /// ever), then an error.
    /// The store's lock, shared, for a launch that must see the jobs it
    /// names (`--after`) stay until it is indexed: a removal judges and
    /// removes under the exclusive one.
    pub fn hold_shared(&self) -> Result<Option<File>, String> {
        self.lock(false)
    }

    fn lock(&self, exclusive: bool) -> Result<Option<File>, String> {
        let Ok(dir) = File::open(&self.root) else { return Ok(None) };
        let tried = if exclusive { dir.try_lock() } else { dir.try_lock_shared() };
        match tried {
            Ok(()) => return Ok(Some(dir)),
            Err(fs::TryLockError::Error(_)) => return Ok(None),
            Err(fs::TryLockError::WouldBlock) => {}
        }
        // Waited for in a thread of its own (blocked in flock, as a waiter
        // the kernel lists), given up after the wait. The lock is one of
        // the open file, which both descriptors share: taken after this
        // gave up, it goes with the thread's descriptor when the thread ends.
        let Ok(copy) = dir.try_clone() else { return Ok(None) };
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let got = if exclusive { copy.lock() } else { copy.lock_shared() };
            let _ = tx.send(got.is_ok());
        });
        match rx.recv_timeout(STORE_LOCK_WAIT) {
            // Joined before going on: a launch forks next, and a thread
            // still ending then could leave the child a lock of its own.
            Ok(got) => {
                let _ = waiter.join();
                Ok(got.then_some(dir))
            }
            Err(_) => Err(format!(
                "{}: another command has held the store's lock for {} s (one stopped with Ctrl-Z? `fg` or `kill -CONT` it)",
                self.root.display(),
                STORE_LOCK_WAIT.as_secs()
            )),
        }
    }

    /// The hidden leftovers of a launch, a removal or a cache's writing
    /// that was interrupted (`.new-*`, `.rm-*`, `.cache/.*`: no reader
    /// ever sees them) and untouched for
    /// `min_age`, by then surely abandoned: removed (never followed, if a
    /// link), or with `dry_run` only counted. Returns their names and the
    /// bytes they held.
    pub fn sweep_leftovers(&self, min_age: std::time::Duration, dry_run: bool) -> (Vec<String>, u64) {
        let (mut names, mut bytes) = (Vec::new(), 0);
        let Ok(rd) = fs::read_dir(&self.root) else { return (names, bytes) };
        let root = files::open_dir(&self.root);
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
            // Renamed there by a command still at work (a rename keeps the
            // directory's time: a job ended long ago looks old at once).
            let owner = name.rsplit_once('-').and_then(|(_, pid)| pid.parse::<i32>().ok()).filter(|&p| p > 0);
            if owner.is_some_and(|pid| {
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) != Err(nix::errno::Errno::ESRCH)
            }) {
                continue;
            }
            let (size, gone) = if dry_run {
                (disk_usage(&path), true)
            } else if m.is_dir() {
                // However deep a tree planted in it: never recursion.
                let mut freed = 0;
                let gone = root.as_ref().is_ok_and(|r| files::remove_tree_in(r, &name, &mut freed).is_ok());
                (freed, gone)
            } else {
                (disk_usage(&path), fs::remove_file(&path).is_ok())
            };
            if gone {
                names.push(name);
                bytes += size;
            }
        }
        // A cache's temporary file (`.cache/.NAME…`), left by a listing
        // killed while it wrote the cache: files only, never followed.
        let cache = root.as_ref().map_err(|e| e.kind().into()).and_then(|root| files::open_dir_in(root, names::CACHE));
        for (name, kind) in cache.as_ref().map_or(vec![], |dir| files::entries(dir).unwrap_or_default()) {
            let (Some(name), Ok(dir)) = (name.to_str().filter(|n| n.starts_with('.')), cache.as_ref()) else {
                continue;
            };
            let Ok(st) = nix::sys::stat::fstatat(dir, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) else { continue };
            let age = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(st.st_mtime.max(0) as u64);
            if kind != files::Kind::File || age.elapsed().is_ok_and(|a| a < min_age) || age.elapsed().is_err() {
                continue;
            }
            if dry_run || files::unlink_in(dir, name).is_ok() {
                names.push(format!("{}/{name}", names::CACHE));
                bytes += st.st_blocks.max(0) as u64 * 512;
            }
        }
        (names, bytes)
    }

    /// Disk space the whole store takes, in bytes.
    pub fn disk_usage(&self) -> u64 {
        disk_usage(&self.root)
    }
}

/// The longest a command waits for the store's lock.
const STORE_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// A link planted where a directory of the store should be (`.keys`,
/// `.ids`, a queue's): never followed, named as damaged by its path.
/// What a link where a directory of the store should be is reported as.
const LINK_PLANTED: &str = "a symbolic link where a directory should be; not followed";

fn planted((path, reason): (PathBuf, String)) -> Damaged {
    let id = path.to_string_lossy().into_owned();
    Damaged { id, path, reason }
}

/// Which job a word names, among `jobs` (id and name, oldest first).
#[derive(Debug, PartialEq, Eq)]
pub enum JobMatch {
    One(usize),
    NoMatch,
    /// Several ids start with the word: their indexes, oldest first.
    Ambiguous(Vec<usize>),
}

/// The rules every front resolves a job by: the job with that exact id,
/// else the newest job of that name, else the one job whose id starts with
/// the word, unless the word has the whole shape of an id
/// ([`ids::has_id_shape`]).
pub fn match_job(jobs: &[(&str, &str)], word: &str) -> JobMatch {
    if let Some(i) = jobs.iter().position(|(id, _)| *id == word) {
        return JobMatch::One(i);
    }
    if let Some(i) = jobs.iter().rposition(|(_, name)| *name == word) {
        return JobMatch::One(i);
    }
    if ids::has_id_shape(word) {
        return JobMatch::NoMatch;
    }
    let matches: Vec<usize> = (0..jobs.len()).filter(|&i| jobs[i].0.starts_with(word)).collect();
    match matches.len() {
        0 => JobMatch::NoMatch,
        1 => JobMatch::One(matches[0]),
        _ => JobMatch::Ambiguous(matches),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_word_picks_an_exact_id_then_the_newest_of_a_name_then_a_unique_prefix() {
        let jobs = [("build_1", "build"), ("test_1", "test"), ("build_2", "build"), ("build", "other")];
        assert_eq!(match_job(&jobs, "build"), JobMatch::One(3), "an exact id comes first");
        assert_eq!(match_job(&jobs, "test"), JobMatch::One(1));
        assert_eq!(match_job(&jobs[..3], "build"), JobMatch::One(2), "the newest of a name");
        assert_eq!(match_job(&jobs, "te"), JobMatch::One(1));
        assert_eq!(match_job(&jobs, "build_"), JobMatch::Ambiguous(vec![0, 2]));
        assert_eq!(match_job(&jobs, "x"), JobMatch::NoMatch);
        assert_eq!(match_job(&[], ""), JobMatch::NoMatch);
    }

    #[test]
    fn a_word_with_the_whole_shape_of_an_id_never_matches_by_prefix() {
        let jobs = [("w_20261206_143432_2", "w"), ("w_20261206_143432_20", "w")];
        assert_eq!(match_job(&jobs, "w_20261206_143432"), JobMatch::NoMatch);
        assert_eq!(match_job(&jobs[1..], "w_20261206_143432_2"), JobMatch::NoMatch);
        assert_eq!(match_job(&jobs, "w_20261206_1434"), JobMatch::Ambiguous(vec![0, 1]));
    }
}
