//! The cap on a job's log (`--log-max`). The job writes straight into its
//! log; its watcher looks at the space the log takes every `TICK` and, past
//! the cap, frees the oldest output by punching a hole in the file
//! (`fallocate(PUNCH_HOLE | KEEP_SIZE)`).
//!
//! Why a hole and not `COLLAPSE_RANGE`: a hole keeps every offset where it
//! was, so the job's appends, a follower's position and `tail -f` are never
//! disturbed; and ext4, xfs, btrfs and tmpfs all punch holes, while tmpfs and
//! btrfs cannot collapse a range. The price: the file's apparent size (`ls
//! -l`) still counts what was dropped (its disk use, `du`, does not), and a
//! reader that does not know the hole reads zeros there.
//!
//! The hole is one range that only grows at its end: `[start, end)`, start
//! where the job's output starts (0, or after the header of a log that
//! holds one). The watcher records it in `dropped` ("START END",
//! write-temp-then-rename) *before* punching, so a reader that reads the
//! record after reading the bytes knows whether what it read is gone. A
//! filesystem that cannot punch holes (ramfs, vfat) is refused at launch.

use crate::files::{open_nofollow, read_small, write_atomic};
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

/// How often the watcher of a capped job looks at its log: the overshoot
/// of the cap is what the job writes in one tick.
pub const TICK: Duration = Duration::from_millis(50);

/// The range `[start, end)` of the log that was dropped, as the watcher
/// recorded it; none if nothing was.
pub fn read_dropped(dir: &Path) -> Option<(u64, u64)> {
    let f = open_nofollow(&dir.join("dropped")).ok()?;
    let mut buf = Vec::new();
    let text = std::str::from_utf8(read_small(f, 64, &mut buf).ok()?).ok()?;
    let mut w = text.split_ascii_whitespace().map(|n| n.parse::<u64>());
    match (w.next(), w.next(), w.next()) {
        (Some(Ok(s)), Some(Ok(e)), None) if s <= e => Some((s, e)),
        _ => None,
    }
}

/// The line a reader shows where `bytes` of output were dropped.
pub fn marker(bytes: u64, cap: Option<u64>) -> String {
    let cap = cap.map(|c| format!(" (--log-max {})", super::human_bytes(c))).unwrap_or_default();
    format!("=== bgrun: {} of output dropped here{cap}\n", super::human_bytes(bytes))
}

/// Can holes be punched in `log` (an empty file, at launch)?
pub fn probe(log: &File) -> io::Result<()> {
    punch(log, 0, 4096)
}

/// Reserves the log's first `bytes` (its size unchanged), made at launch:
/// room for the watcher's notes and the footer of a job that wrote little,
/// even once the disk is full, as the header at the top of the file gave
/// when it was there. The job's own output goes into it, from byte 0.
pub(super) fn reserve(log: &File, bytes: u64) -> io::Result<()> {
    use nix::fcntl::{fallocate, FallocateFlags};
    fallocate(log, FallocateFlags::FALLOC_FL_KEEP_SIZE, 0, bytes as i64).map_err(io::Error::from)
}

fn punch(log: &File, from: u64, to: u64) -> io::Result<()> {
    use nix::fcntl::{fallocate, FallocateFlags};
    let flags = FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE;
    fallocate(log, flags, from as i64, (to - from) as i64).map_err(io::Error::from)
}

/// The watcher's side of the cap.
pub struct Cap {
    max: u64,
    start: u64,
    end: u64,
}

impl Cap {
    /// A cap of `max` bytes on a log whose output starts at `output_from`.
    pub fn new(max: u64, output_from: u64) -> Cap {
        Cap { max, start: output_from, end: output_from }
    }

    /// Bytes dropped so far.
    pub fn dropped(&self) -> u64 {
        self.end - self.start
    }

    /// The dropped range, once something was.
    pub fn range(&self) -> Option<(u64, u64)> {
        (self.end > self.start).then_some((self.start, self.end))
    }

    /// If the log takes more than the cap, drops its oldest output so that
    /// the newest 7/8 of the cap remain: the record first, then the hole.
    /// Nothing is punched that is not recorded (a record that cannot be
    /// written, on a full disk, means no punch: a reader would show zeros);
    /// a failed punch is tried again next time.
    pub fn check(&mut self, log: &File, dir: &Path) -> Result<(), String> {
        let m = log.metadata().map_err(|e| format!("the log cap: {e}"))?;
        if m.blocks() * 512 <= self.max {
            return Ok(());
        }
        let block = m.blksize().clamp(512, 1 << 20);
        let keep = self.max - self.max / 8;
        let to = m.len().saturating_sub(keep) / block * block;
        if to <= self.end {
            return Ok(());
        }
        write_atomic(dir, "dropped", format!("{} {to}\n", self.start).as_bytes())?;
        punch(log, self.end, to).map_err(|e| format!("the log cap: punching a hole: {e}"))?;
        self.end = to;
        Ok(())
    }
}
