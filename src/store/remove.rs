//! Removing jobs. A job's directory (or a link planted in its place, never
//! followed) is renamed out of sight first (`.rm-ID-PID`), so no reader
//! sees half of it, and only then deleted; its id is kept in `.ids`
//! before the rename, so that no launch is ever given it again (see
//! `ids`). Both steps happen under the store's lock held exclusively,
//! after checking that the entry is still the job that was judged
//! removable (a launch holds the lock shared while it takes an id).
//!
//! Many jobs (a removal of every finished job) are removed in batches:
//! one hold of the lock per batch, in which each job is checked, the
//! batch's ids are kept (one write per name and hour), and each job is
//! renamed away; the deletions come after the lock is released (by
//! `DELETERS` threads), so a launch waits at most one batch's checks and renames,
//! never a deletion.

use super::job::{read_job_at, Job};
use super::read::disk_usage;
use super::Store;
use crate::files::{self, io_err};
use std::fs::File;
use std::io::ErrorKind;
use std::path::Path;

/// How many jobs one hold of the lock renames away: a few milliseconds.
const BATCH: usize = 256;

/// How many threads delete a batch: the deletions wait on the disk more
/// than they compute, so more than the cores.
const DELETERS: usize = 8;

/// What became of one entry under the lock.
enum Hidden {
    /// Renamed out of sight (to this name), to be deleted.
    Moved(String),
    /// Gone, or no longer the job that was judged: nothing removed.
    Gone,
    /// Left alone, as the caller's rule said.
    Kept,
}

/// What became of one job of a removal in bulk.
pub enum Removed {
    /// Removed: the bytes it freed.
    Freed(u64),
    /// Kept, as the caller's rule said when asked under the lock.
    Kept,
    /// Gone already, or no longer the job judged (another command removed
    /// it meanwhile): nothing removed here.
    Gone,
}

impl Store {
    /// Removes the entry `id` whatever it holds (a damaged entry the user
    /// named): returns the bytes freed. An entry already gone (another
    /// `runrm` got there first) frees nothing and is no error. Any key
    /// that names it is released (its meta.json may be unreadable, so the
    /// keys are searched).
    pub fn remove(&self, id: &str) -> Result<u64, String> {
        let root = files::open_dir(&self.root).map_err(|e| io_err("reading", &self.root, e))?;
        let hidden = self.hide(&root, &[id], |_, _| Some(true)).pop().unwrap_or(Ok(Hidden::Gone))?;
        let freed = match hidden {
            Hidden::Moved(h) => delete(&root, &h, &self.root.join(id))?,
            Hidden::Gone | Hidden::Kept => 0,
        };
        self.release_keys_naming(id);
        Ok(freed)
    }

    /// Removes the job `job` was read from, and only it (checked under the
    /// store's lock); gone meanwhile, nothing is removed (Ok(0)). Its key,
    /// if it still names the job, is free again. The caller has made sure
    /// it is not running.
    pub fn remove_job(&self, job: &Job) -> Result<u64, String> {
        let mut res = Ok(0);
        self.remove_jobs(
            std::slice::from_ref(job),
            |_| false,
            |_, r| {
                res = r.map(|n| if let Removed::Freed(n) = n { n } else { 0 });
            },
        );
        res
    }

    /// Removes each of `jobs` as `remove_job` does, in batches (see the
    /// top), except those `keep` says to keep when asked under the lock,
    /// just before the job would go. `done` hears of each job, in order,
    /// outside the lock: the bytes freed, none if kept, or why it could
    /// not be removed.
    pub fn remove_jobs<'a>(
        &self,
        jobs: &'a [Job],
        mut keep: impl FnMut(&Job) -> bool,
        mut done: impl FnMut(&'a Job, Result<Removed, String>),
    ) {
        let root = match files::open_dir(&self.root) {
            Ok(root) => root,
            Err(e) => return jobs.iter().for_each(|job| done(job, Err(io_err("removing", &job.dir, e.kind().into())))),
        };
        let mut buf = Vec::new();
        for batch in jobs.chunks(BATCH) {
            let ids: Vec<&str> = batch.iter().map(|j| j.id.as_str()).collect();
            let hidden = self.hide(&root, &ids, |i, _| {
                let job = &batch[i];
                if keep(job) {
                    return None;
                }
                let m = &job.meta;
                Some(read_job_at(&root, &self.root, &job.id, &mut buf).is_ok_and(|now| {
                    (&now.meta.started_at, now.meta.pid, now.meta.pid_start) == (&m.started_at, m.pid, m.pid_start)
                }))
            });
            // The deletions (most of a removal's time: a few unlinks per
            // job, each waiting on the disk) by `DELETERS` threads.
            let delete_all = |part: &[(&Job, Result<Hidden, String>)]| -> Vec<Result<Removed, String>> {
                part.iter()
                    .map(|(job, h)| match h {
                        Ok(Hidden::Moved(hidden)) => delete(&root, hidden, &job.dir).map(Removed::Freed),
                        Ok(Hidden::Gone) => Ok(Removed::Gone),
                        Ok(Hidden::Kept) => Ok(Removed::Kept),
                        Err(e) => Err(e.clone()),
                    })
                    .collect()
            };
            let hidden: Vec<(&Job, Result<Hidden, String>)> = batch.iter().zip(hidden).collect();
            let results: Vec<Result<Removed, String>> = if hidden.len() < 16 {
                delete_all(&hidden)
            } else {
                let part = hidden.len().div_ceil(DELETERS);
                std::thread::scope(|s| {
                    let parts: Vec<_> = hidden.chunks(part).map(|p| s.spawn(|| delete_all(p))).collect();
                    parts.into_iter().flat_map(|p| p.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
                })
            };
            for ((job, _), res) in hidden.iter().zip(results) {
                if matches!(res, Ok(Removed::Freed(_))) {
                    // Its key is free again (only if the key still names this job).
                    if let Some(key) = &job.meta.key {
                        self.release_key(key, &job.id);
                    }
                }
                done(job, res);
            }
        }
    }

    /// Under one hold of the store's exclusive lock: asks `check` of each
    /// entry (Some(true): remove it, Some(false): it is no longer the job
    /// judged, None: keep it), keeps the ids of those to remove in `.ids`,
    /// then renames each out of sight.
    fn hide(
        &self,
        root: &File,
        ids: &[&str],
        mut check: impl FnMut(usize, &Path) -> Option<bool>,
    ) -> Vec<Result<Hidden, String>> {
        let _lock = match self.lock(true) {
            Ok(l) => l,
            // Held past the wait by another command: nothing is judged.
            Err(e) => return ids.iter().map(|_| Err(e.clone())).collect(),
        };
        let pid = std::process::id();
        let mut out: Vec<Result<Hidden, String>> = Vec::with_capacity(ids.len());
        let mut doomed = vec![false; ids.len()];
        for (i, id) in ids.iter().enumerate() {
            out.push(Ok(match check(i, &self.root.join(id)) {
                None => Hidden::Kept,
                Some(false) => Hidden::Gone,
                Some(true) => {
                    doomed[i] = true;
                    Hidden::Gone
                }
            }));
        }
        let retired: Vec<&str> = ids.iter().zip(&doomed).filter(|(_, d)| **d).map(|(id, _)| *id).collect();
        if retired.is_empty() {
            return out;
        }
        // The ids stay taken: remembered before the entries go, so that no
        // launch can ever be given one again (an id names one job).
        if let Err(e) = self.retire_ids(&retired) {
            for (i, id) in ids.iter().enumerate().filter(|(i, _)| doomed[*i]) {
                out[i] = Err(format!("removing {}: {e}", self.root.join(id).display()));
            }
            return out;
        }
        for (i, id) in ids.iter().enumerate() {
            if !doomed[i] {
                continue;
            }
            let hidden = format!(".rm-{id}-{pid}");
            out[i] = match files::rename_in(root, id, &hidden) {
                Ok(()) => Ok(Hidden::Moved(hidden)),
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(Hidden::Gone),
                Err(e) => Err(io_err("removing", &self.root.join(id), e)),
            };
        }
        out
    }
}

/// Deletes the entry `hidden` of the store's root (renamed out of sight;
/// `path`: its name before, for errors), never following a link, however
/// deep a tree planted in it (`files::remove_tree_in`); returns the bytes
/// it held.
fn delete(root: &File, hidden: &str, path: &Path) -> Result<u64, String> {
    // A finished job's watcher may still be recording its notification:
    // a file appearing mid-removal is removed on the next pass.
    let mut freed = 0;
    for _ in 0..6 {
        match files::remove_tree_in(root, hidden, &mut freed) {
            Ok(()) => return Ok(freed),
            Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => {}
            // A link planted in its place, or a file: removed as it is.
            Err(e) if e.kind() == ErrorKind::InvalidData => {
                let size = disk_usage(&path.with_file_name(hidden));
                files::unlink_in(root, hidden).map_err(|e| io_err("removing", path, e))?;
                return Ok(size);
            }
            Err(e) => return Err(put_back(root, hidden, path, e)),
        }
    }
    Err(put_back(root, hidden, path, std::io::Error::from_raw_os_error(libc::ENOTEMPTY)))
}

/// A job that could not be deleted whole (something in it that cannot be
/// removed: a mount, an immutable file, a directory without write
/// permission) is put back under its id, what is left of it, so that
/// listings show it (damaged, if its files are gone) and a later `runrm`
/// can be asked again, rather than left hidden for ever. Its id stays
/// taken. The error, naming it.
fn put_back(root: &File, hidden: &str, path: &Path, e: std::io::Error) -> String {
    let id = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let back = !id.is_empty()
        && nix::fcntl::renameat2(root, hidden, root, id, nix::fcntl::RenameFlags::RENAME_NOREPLACE).is_ok();
    let left = if back { "; what is left of it stays" } else { "" };
    format!("{}{left}", io_err("removing", path, e))
}
