//! `.cache/summary`: a cache of the ended jobs' lines of `runs --json`, derived
//! from the job directories and never needed for correctness (what a line
//! holds and how it is checked is `cmd::summary`'s). This file only opens
//! it (never through a link, a regular file only) and replaces it whole
//! (write-temp-then-rename; not synced: a cache lost in a crash is
//! rebuilt).

use super::names::CACHE;
use super::Store;
use crate::files::{self, io_err};
use std::fs::File;
use std::io::{self, BufWriter, Write};

const SUMMARY: &str = "summary";

/// Where older versions kept it, in the root (removed when it is written).
const OLD: &str = ".summary";

impl Store {
    /// The summary, if there is one that can be read.
    pub fn open_summary(&self) -> Option<File> {
        let root = files::open_dir(&self.root).ok()?;
        files::open_in(&files::open_dir_in(&root, CACHE).ok()?, SUMMARY.as_ref()).ok()
    }

    /// The summary's path, for messages.
    pub fn summary_path(&self) -> std::path::PathBuf {
        self.root.join(CACHE).join(SUMMARY)
    }

    /// Replaces the summary by what `write` writes.
    pub fn write_summary(&self, write: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> Result<(), String> {
        let root = files::open_dir(&self.root).map_err(|e| io_err("opening", &self.root, e))?;
        let _ = files::unlink_in(&root, OLD);
        let dir = files::make_dir_in(&root, CACHE).map_err(|e| io_err("opening", &self.root.join(CACHE), e))?;
        let tmp = format!(".new-summary.{}", std::process::id());
        let _ = files::unlink_in(&dir, &tmp);
        let res = files::create_new_in(&dir, &tmp).and_then(|f| {
            let mut w = BufWriter::with_capacity(256 * 1024, f);
            write(&mut w)?;
            w.flush()?;
            files::rename_in(&dir, &tmp, SUMMARY)
        });
        res.map_err(|e| {
            let _ = files::unlink_in(&dir, &tmp);
            io_err("writing", &self.summary_path(), e)
        })
    }
}
