//! The cap on a job's log (`--log-max`). The job's output reaches its log
//! through its watcher (`watch::pump`), which calls `Cap::check` after
//! every chunk it copies; past the cap, the oldest output is freed by
//! punching a hole in the file (`fallocate(PUNCH_HOLE | KEEP_SIZE)`). A
//! Slurm step, whose job writes straight into its log, calls it every
//! `Cap::tick` (2 to 50 ms, shorter while the log grows fast) instead.
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
//! record after reading the bytes knows whether what it read is gone. Its
//! end is where a line starts, so no reader shows the tail of a cut line.
//! If the job empties or rewrites its own log, the range no longer holds
//! what was dropped: the record is emptied and the range starts again. A
//! filesystem that cannot punch holes (ramfs, vfat) is refused at launch.

use crate::files::{open_nofollow, read_small, write_atomic};
use std::fs::File;
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::time::Duration;

/// The longest time between two looks at a capped log (while it grows
/// slowly): the overshoot is at most what the job writes in one look's
/// time, and what it writes while the watcher waits for a CPU.
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
#[derive(Clone)]
pub struct Cap {
    max: u64,
    /// The recorded range `[start, end)`: `end` is where a line starts.
    start: u64,
    end: u64,
    /// How far the hole is punched (a block boundary, at most `end`).
    punched: u64,
    /// The space the log took at the last look, and the time to the next.
    last_bytes: u64,
    tick: Duration,
    /// Does lseek(SEEK_DATA) see the punched hole (checked after a punch)?
    sees_holes: bool,
}

/// The shortest time between two looks, while the log grows fast.
pub const MIN_TICK: Duration = Duration::from_millis(2);

/// How far past the block boundary the cut looks for the end of a line.
const LINE_MAX: u64 = 64 << 10;

impl Cap {
    /// A cap of `max` bytes on a log whose output starts at `output_from`.
    pub fn new(max: u64, output_from: u64) -> Cap {
        let start = output_from;
        Cap { max, start, end: start, punched: start, last_bytes: 0, tick: MIN_TICK, sees_holes: true }
    }

    /// The cap, in bytes.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Bytes dropped so far.
    pub fn dropped(&self) -> u64 {
        self.end - self.start
    }

    /// The dropped range, once something was.
    pub fn range(&self) -> Option<(u64, u64)> {
        (self.end > self.start).then_some((self.start, self.end))
    }

    /// Takes up the range recorded since this copy was made (by the last
    /// check of the end), so that the range never moves back.
    pub fn resync(&mut self, dir: &Path) {
        if let Some((_, e)) = read_dropped(dir).filter(|&(s, _)| s == self.start) {
            self.end = self.end.max(e);
        }
    }

    /// When to look again: from `MIN_TICK` at the start, doubling up to
    /// `TICK` while the log grows by less than a 32nd of the cap between
    /// two looks; shorter in proportion, down to `MIN_TICK`, when it grew
    /// by more than an eighth, so that the overshoot stays near an eighth
    /// of the cap however fast the job writes (but for what it writes
    /// while the watcher waits for a CPU, and the first look after a quiet
    /// spell of `TICK`).
    pub fn tick(&self) -> Duration {
        self.tick
    }

    /// If the log takes more than the cap, drops its oldest output so that
    /// the newest 7/8 of the cap remain: the record first, then the hole.
    /// The recorded range ends where a line starts (the first one that
    /// starts at or after the block boundary the hole is punched to, within
    /// `LINE_MAX`), so that no reader shows the tail of a cut line; the
    /// bytes of that line's tail stay on disk until the next drop.
    /// Nothing is punched that is not recorded (a record that cannot be
    /// written, on a full disk, means no punch: a reader would show zeros);
    /// a failed punch is tried again next time.
    ///
    /// A log that the job cut short since (`: > …/log`, or a rewrite
    /// through a descriptor of its own that truncated it) no longer holds
    /// the dropped range: the record is emptied, so that readers show what
    /// the file holds now.
    pub fn check(&mut self, log: &File, dir: &Path) -> Result<(), String> {
        let m = log.metadata().map_err(|e| format!("the log cap: {e}"))?;
        let bytes = m.blocks() * 512;
        let grown = bytes.saturating_sub(self.last_bytes);
        self.last_bytes = bytes;
        let eighth = (self.max / 8).max(1);
        self.tick = if grown > eighth {
            // As much shorter as the log grew faster than an eighth of the cap.
            self.tick.mul_f64(eighth as f64 / grown as f64).max(MIN_TICK)
        } else if grown < self.max / 32 {
            (self.tick * 2).min(TICK)
        } else {
            self.tick
        };
        let block = m.blksize().clamp(512, 1 << 20);
        let refilled = || self.sees_holes && rewritten(dir, self.start, self.punched, block);
        if self.end > self.start && (m.len() < self.end || refilled()) {
            record(dir, b"")?;
            let from = self.start.min(m.len());
            (self.start, self.end, self.punched) = (from, from, from);
        }
        if bytes <= self.max {
            return Ok(());
        }
        let keep = self.max - self.max / 8;
        let to = m.len().saturating_sub(keep) / block * block;
        if to <= self.end {
            return Ok(());
        }
        let cut = line_start(log, to, m.len());
        record(dir, format!("{} {cut}\n", self.start).as_bytes())?;
        self.end = cut;
        punch(log, self.punched, to).map_err(|e| format!("the log cap: punching a hole: {e}"))?;
        self.punched = to;
        // A filesystem whose lseek does not see holes takes the whole file
        // for data: the rewrite check would then empty the record each time.
        self.sees_holes = self.sees_holes && !rewritten(dir, self.start, self.punched, block);
        Ok(())
    }
}

/// The spare record: made ahead, with its block reserved, so that
/// recording a drop on a disk the job has filled needs no new space (the
/// drop then frees some, and the next spare takes the old record's block).
const SPARE: &str = ".dropped.spare";

/// Makes the spare record (or makes it again): never through a link
/// planted at its name, which is unlinked first.
pub fn prepare_spare(dir: &Path) {
    use nix::fcntl::{fallocate, FallocateFlags};
    let path = dir.join(SPARE);
    let _ = std::fs::remove_file(&path);
    let made = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .mode(0o600)
        .open(&path);
    if let Ok(f) = made {
        let _ = fallocate(&f, FallocateFlags::FALLOC_FL_KEEP_SIZE, 0, 4096);
    }
}

/// Writes the `dropped` record by rename, into the spare when there is
/// one (then made again), else by write-temp-then-rename.
fn record(dir: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::os::unix::fs::FileExt;
    let spare = dir.join(SPARE);
    let opened = std::fs::OpenOptions::new().write(true).custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC).open(&spare);
    let Ok(f) = opened.and_then(|f| if f.metadata()?.len() == 0 { Ok(f) } else { Err(io::ErrorKind::Other.into()) })
    else {
        return write_atomic(dir, "dropped", bytes);
    };
    f.write_all_at(bytes, 0).map_err(|e| format!("writing {}: {e}", spare.display()))?;
    std::fs::rename(&spare, dir.join("dropped"))
        .map_err(|e| format!("writing {}: {e}", dir.join("dropped").display()))?;
    prepare_spare(dir);
    Ok(())
}

/// Where the first line that starts at or after `at` starts: `at` if the
/// byte before it ends a line, else just past the next newline, looked
/// for within `LINE_MAX` (a longer line is cut at `at`).
fn line_start(log: &File, at: u64, len: u64) -> u64 {
    use std::os::unix::fs::FileExt;
    let from = at.saturating_sub(1);
    let mut buf = vec![0u8; LINE_MAX.min(len.saturating_sub(from)) as usize];
    let n = log.read_at(&mut buf, from).unwrap_or(0);
    match buf[..n].iter().position(|&b| b == b'\n') {
        Some(i) => from + i as u64 + 1,
        None => at,
    }
}

/// Has anything been written into the punched range `[start, punched)`
/// since (data where the hole was: the log truncated and written again)?
/// The first block from `start` is left out: a hole punched from a `start`
/// that is not on a block boundary leaves that block's head as data. Asked
/// on a descriptor of its own (the watcher's shares its offset with the
/// job's stdout).
fn rewritten(dir: &Path, start: u64, punched: u64, block: u64) -> bool {
    use nix::unistd::{lseek, Whence};
    let from = start.next_multiple_of(block);
    if from >= punched {
        return false;
    }
    let Ok(f) = open_nofollow(&dir.join("log")) else { return false };
    lseek(&f, from as i64, Whence::SeekData).is_ok_and(|at| (at as u64) < punched)
}
