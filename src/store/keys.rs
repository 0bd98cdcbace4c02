//! Idempotency keys (`job run --key K`): `.keys/HEX` is a symbolic link to
//! the id of the job that holds the key, made with symlink(2), which either
//! makes it or finds it there: one claimant of any number wins.

use super::Store;
use crate::files::io_err;
use std::fs;
use std::io::ErrorKind;
use std::path::PathBuf;

impl Store {
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
            match crate::files::make_private_dir(dir) {
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

    /// Releases every key that names the job `id` (for a job whose
    /// meta.json, and so its key, cannot be read).
    pub fn release_keys_naming(&self, id: &str) {
        let Ok(rd) = fs::read_dir(self.root.join(".keys")) else { return };
        for e in rd.flatten() {
            if fs::read_link(e.path()).is_ok_and(|t| t.as_os_str() == id) {
                let _ = fs::remove_file(e.path());
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn of_threads_released_at_once_on_one_key_exactly_one_claims_it_and_the_rest_get_its_job() {
        let root = std::env::temp_dir().join(format!("bgrun-keys-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).unwrap();
        let store = Arc::new(Store::at(root.clone()));
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
