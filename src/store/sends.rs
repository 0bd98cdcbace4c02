//! Notifications sent from detached processes (the jobs of a skipped
//! chain): `.notify/K`, K < `SENDERS`, are flock'd slots; a sender holds
//! one while it publishes, so however many jobs a catch-up skips, at most
//! `SENDERS` notifications are in flight at once.

use super::Store;
use crate::files::{self, io_err};
use std::fs::{self, File};

/// How many notifications of skipped jobs are sent at once.
pub const SENDERS: u32 = 4;

/// The slots' directory in the store's root.
const SLOTS: &str = ".notify";

impl Store {
    /// A sending slot, held (exclusive) until the file is dropped: a free
    /// one if any, else waits for one.
    pub fn send_slot(&self) -> Result<File, String> {
        let root = files::open_dir(&self.root).map_err(|e| io_err("opening", &self.root, e))?;
        let path = self.root.join(SLOTS);
        let dir = files::make_dir_in(&root, SLOTS).map_err(|e| io_err("creating", &path, e))?;
        let open = |k: u32| files::open_rw_in(&dir, &k.to_string()).map_err(|e| io_err("opening", &path, e));
        for k in 0..SENDERS {
            let f = open(k)?;
            match f.try_lock() {
                Ok(()) => return Ok(f),
                Err(fs::TryLockError::WouldBlock) => {}
                Err(fs::TryLockError::Error(e)) => return Err(io_err("locking", &path, e)),
            }
        }
        let f = open(std::process::id() % SENDERS)?;
        f.lock().map_err(|e| io_err("locking", &path, e))?;
        Ok(f)
    }
}
