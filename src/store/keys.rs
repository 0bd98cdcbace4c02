//! Idempotency keys (`job run --key K`): `.keys/HEX` is a symbolic link to
//! the id of the job that holds the key, made with symlink(2), which either
//! makes it or finds it there: one claimant of any number wins.

use super::Store;
use crate::files::{self, io_err};
use std::fs::File;
use std::io::ErrorKind;
use std::path::PathBuf;

impl Store {
    fn key_name(key: &str) -> String {
        key.bytes().map(|b| format!("{b:02x}")).collect()
    }

    fn key_path(&self, key: &str) -> PathBuf {
        self.root.join(KEYS).join(Self::key_name(key))
    }

    /// `.keys`, opened from the root without following a link (made if
    /// `make`): a link planted there is an error, never followed.
    fn keys_dir(&self, make: bool) -> Result<File, String> {
        let root = files::open_dir(&self.root).map_err(|e| io_err("opening", &self.root, e))?;
        let dir = if make { files::make_dir_in(&root, KEYS) } else { files::open_dir_in(&root, KEYS) };
        dir.map_err(|e| io_err(if make { "creating" } else { "opening" }, &self.root.join(KEYS), e))
    }

    /// Claims `key` for a launch by this process, atomically: exactly one
    /// of any number of racing claimants gets `Claim::Mine`; the others get
    /// the id of the job that holds it (waiting, bounded, while the winner
    /// is still launching).
    pub fn claim_key(&self, key: &str, alive: &dyn Fn(i32) -> bool) -> Result<Claim, String> {
        let (path, name) = (self.key_path(key), Self::key_name(key));
        let dir = self.keys_dir(true)?;
        let pending = format!(".pending.{}", std::process::id());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut dead_since = None;
        loop {
            match files::symlink_in(&pending, &dir, &name) {
                Ok(()) => return Ok(Claim::Mine),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err("claiming key at", &path, e)),
            }
            let target = match files::read_link_in(&dir, &name) {
                Ok(t) => t.to_string_lossy().into_owned(),
                Err(e) if e.kind() == ErrorKind::NotFound => continue, // released: try again
                Err(e) => return Err(io_err("reading key", &path, e)),
            };
            if let Some(pid) = target.strip_prefix(".pending.") {
                let claimant_alive = pid.parse().map(alive).unwrap_or(false);
                // A claimant seen gone may have finished its launch (the key
                // then names its job) just before it exited, or been killed
                // once its watcher (a fork of it) was on its way to name
                // the job: only a claim that still names it a while after
                // it is proven gone is stranded.
                if !claimant_alive {
                    let gone_since = *dead_since.get_or_insert_with(std::time::Instant::now);
                    let still = files::read_link_in(&dir, &name).is_ok_and(|t| t.to_string_lossy() == target);
                    if !still {
                        continue;
                    }
                    if gone_since.elapsed() < STRANDED_AFTER {
                        std::thread::sleep(std::time::Duration::from_millis(10));
                        continue;
                    }
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
            // A key left naming a job that is gone (removed by hand, or
            // a removal killed before it released the key) names nothing:
            // it is released and claimed again.
            if target.is_empty() || target.starts_with('.') || target.contains('/') {
                return Err(format!("key '{key}': {} names {target:?}, not a job", path.display()));
            }
            let held = std::fs::symlink_metadata(self.root.join(&target));
            if held.as_ref().is_err_and(|e| e.kind() == ErrorKind::NotFound) {
                self.release_key(key, &target);
                continue;
            }
            return Ok(Claim::Taken(target));
        }
    }

    /// Points a claimed key at the job that now holds it (atomic replace).
    pub fn set_key(&self, key: &str, id: &str) -> Result<(), String> {
        let (path, name) = (self.key_path(key), Self::key_name(key));
        let dir = self.keys_dir(false)?;
        let tmp = format!(".tmp.{}", std::process::id());
        let _ = files::unlink_in(&dir, &tmp);
        files::symlink_in(id, &dir, &tmp).map_err(|e| io_err("writing", &path.with_file_name(&tmp), e))?;
        files::rename_in(&dir, &tmp, &name).map_err(|e| io_err("writing", &path, e))
    }

    /// Names the job `id` in `key` if the key is still claimed by a launch
    /// in progress (`.pending.PID`): for a Slurm job's step, whose launcher
    /// may have been killed once sbatch accepted the job.
    pub fn adopt_pending_key(&self, key: &str, id: &str) {
        let Ok(dir) = self.keys_dir(false) else { return };
        let name = Self::key_name(key);
        if files::read_link_in(&dir, &name).is_ok_and(|t| t.to_string_lossy().starts_with(".pending.")) {
            let _ = self.set_key(key, id);
        }
    }

    /// Releases a key: after a failed launch, or when its job is removed.
    /// Only removes the entry if it still names `target`.
    pub fn release_key(&self, key: &str, target: &str) {
        let Ok(dir) = self.keys_dir(false) else { return };
        let name = Self::key_name(key);
        if files::read_link_in(&dir, &name).is_ok_and(|t| t.as_os_str() == target) {
            let _ = files::unlink_in(&dir, &name);
        }
    }

    /// Releases every key that names the job `id` (for a job whose
    /// meta.json, and so its key, cannot be read).
    pub fn release_keys_naming(&self, id: &str) {
        let Ok(dir) = self.keys_dir(false) else { return };
        for (name, _) in files::entries(&dir).unwrap_or_default() {
            let Some(name) = name.to_str() else { continue };
            if files::read_link_in(&dir, name).is_ok_and(|t| t.as_os_str() == id) {
                let _ = files::unlink_in(&dir, name);
            }
        }
    }

    pub fn pending_target() -> String {
        format!(".pending.{}", std::process::id())
    }
}

/// How long a claim whose launcher is gone is given to name its job (the
/// launcher's watcher names it within milliseconds of its fork) before it
/// is taken for a launch that did not finish.
const STRANDED_AFTER: std::time::Duration = std::time::Duration::from_secs(2);

/// The keys' directory in the store's root.
const KEYS: &str = ".keys";

pub enum Claim {
    Mine,
    Taken(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn a_claimant_that_finished_its_launch_and_exited_while_looked_at_leaves_its_job_not_an_error() {
        let root = std::env::temp_dir().join(format!("bgrun-keys-done-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).unwrap();
        let store = Store::at(root.clone());
        fs::create_dir_all(root.join("job_1")).unwrap();
        // Another launch's claim, as its launcher leaves it.
        let dir = store.keys_dir(true).unwrap();
        files::symlink_in(".pending.1", &dir, &Store::key_name("k")).unwrap();
        // Between reading that claim and checking its launcher, the launch
        // finishes (the key names its job) and the launcher exits.
        let finished = |_| {
            store.set_key("k", "job_1").unwrap();
            false
        };
        let claim = store.claim_key("k", &finished).unwrap();
        assert!(matches!(claim, Claim::Taken(ref id) if id == "job_1"));
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn of_threads_released_at_once_on_one_key_exactly_one_claims_it_and_the_rest_get_its_job() {
        let root = std::env::temp_dir().join(format!("bgrun-keys-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).unwrap();
        let store = Arc::new(Store::at(root.clone()));
        fs::create_dir_all(root.join("job_1")).unwrap();
        let n = 3;
        for round in 0..200 {
            let key = format!("key-{round}");
            // A barrier that releases every thread at the same instant: each
            // is started and polling the flag when it goes up, so the claims
            // really overlap (a check-then-create claim fails within rounds).
            let (ready, go) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
            let threads: Vec<_> = (0..n)
                .map(|_| {
                    let (store, ready, go, key) = (store.clone(), ready.clone(), go.clone(), key.clone());
                    std::thread::spawn(move || {
                        ready.fetch_add(1, Ordering::SeqCst);
                        while !go.load(Ordering::SeqCst) {
                            std::thread::yield_now();
                        }
                        let claim = store.claim_key(&key, &|_| true).unwrap();
                        if matches!(claim, Claim::Mine) {
                            store.set_key(&key, "job_1").unwrap();
                        }
                        claim
                    })
                })
                .collect();
            while ready.load(Ordering::SeqCst) < n {
                std::thread::yield_now();
            }
            go.store(true, Ordering::SeqCst);
            let claims: Vec<Claim> = threads.into_iter().map(|t| t.join().unwrap()).collect();
            let mine = claims.iter().filter(|c| matches!(c, Claim::Mine)).count();
            assert_eq!(mine, 1, "round {round}: {mine} threads claimed the key");
            for c in &claims {
                assert!(matches!(c, Claim::Mine) || matches!(c, Claim::Taken(id) if id == "job_1"));
            }
        }
        let _ = fs::remove_dir_all(&root);
    }
}
