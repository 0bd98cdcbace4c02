//! Which id a new job takes, and the ids never given again.
//!
//! An id is `NAME_YYYYMMDD_HHMMSS` (local time); the second launch of a
//! name in one second is `…_2`, the next `…_3`, in the order the launches
//! reach the store. An id is taken while its job's directory is there and
//! after that through `.ids`, where its removal records it (under the
//! store lock held exclusively, while every launch holds it shared), so a
//! removed `_2` is never given again and the ids taken within a second are
//! always `NAME_TS`, `_2`, … `_m` with no gap. An old run script's job
//! (`ID.log`, `ID.pid`) takes its id too. The first free one is found by
//! doubling then halving (a handful of looks however many launches share
//! the second), and the rename that publishes the job, which fails on a
//! taken name, settles a race: the loser tries the next.
//!
//! The removed ids are kept compactly: one file per name and hour,
//! `.ids/NAME_YYYYMMDD_HH`, a line `MMSS N` for each second of that hour
//! in which a job of that name was removed, N the highest `_N` removed
//! (1 for `NAME_TS` itself). Since the ids of a second are given with no
//! gap, every id of that second up to `_N` has been given, and stays
//! taken: a removal of a whole store of 100,000 jobs leaves a few dozen
//! files, not 100,000. A launch looks at the one file of its name and hour
//! (one failed `open` when there is none). Older versions kept one empty
//! file per id, `.ids/ID`: still read, and folded into the hour files by
//! the next removal (the hour files published first, then the old files
//! removed, so an id is kept at every moment, whatever is interrupted). On
//! a full disk, where an hour file gets no block, an id is kept in that old
//! form (an empty file needs none) until a later removal folds it in.

use super::Store;
use crate::files::{self, io_err};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

/// Where removed jobs' ids are kept.
const IDS: &str = ".ids";

/// The most an hour file holds: 3,600 lines of a few bytes each, with
/// room for thousands of launches a second. A bigger one is damaged.
const HOUR_MAX: u64 = 4 << 20;

/// The `n`th id of `base` in its second: `base` itself, then `base_2`, …
pub fn nth(base: &str, n: u64) -> String {
    if n <= 1 {
        base.to_string()
    } else {
        format!("{base}_{n}")
    }
}

/// The first `n` from `from` on that `taken` says is free, assuming the
/// taken ones come first (as they do, see above): doubling the step until
/// a free one, then halving back to the first.
pub fn first_free(from: u64, taken: impl Fn(u64) -> bool) -> u64 {
    if !taken(from) {
        return from;
    }
    let (mut lo, mut step) = (from, 1);
    let mut hi = loop {
        let hi = lo.saturating_add(step);
        if hi == lo || !taken(hi) {
            break hi;
        }
        lo = hi;
        step = step.saturating_mul(2);
    };
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if taken(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

/// Has `word` the whole shape of an id (`NAME_YYYYMMDD_HHMMSS`, or that
/// and `_N`)? Such a word names a job only exactly: every `…_N` id starts
/// with its `NAME_TS`, and `…_2` begins `…_20` to `…_29`.
pub fn has_id_shape(word: &str) -> bool {
    split_id(word).is_some()
}

/// An id's parts: its name, its time `YYYYMMDD_HHMMSS` and its `_N` (1
/// when it has none); none for a word without the whole shape of an id.
pub fn split_id(word: &str) -> Option<(&str, &str, u64)> {
    fn digits(s: &str, n: usize) -> bool {
        s.len() == n && s.bytes().all(|b| b.is_ascii_digit())
    }
    fn stamped(s: &str) -> Option<(&str, &str)> {
        let (rest, time) = s.rsplit_once('_')?;
        let (name, date) = rest.rsplit_once('_')?;
        (digits(date, 8) && digits(time, 6) && !name.is_empty()).then(|| (name, &s[name.len() + 1..]))
    }
    if let Some((name, stamp)) = stamped(word) {
        return Some((name, stamp, 1));
    }
    let (base, n) = word.rsplit_once('_')?;
    let n = (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())).then_some(n)?;
    let (name, stamp) = stamped(base)?;
    Some((name, stamp, n.parse().unwrap_or(u64::MAX)))
}

/// The hour file of an id's second, and the second's line key (`MMSS`).
fn hour_of(id: &str) -> Option<(String, &str, u64)> {
    let (name, stamp, n) = split_id(id)?;
    Some((format!("{name}_{}", &stamp[..11]), &stamp[11..], n))
}

/// Reads an hour file's lines (`MMSS N`), each second's highest N; a line
/// that is not one is skipped (it holds no id that can be kept).
fn parse_hour(text: &[u8], into: &mut BTreeMap<String, u64>) {
    for line in text.split(|&b| b == b'\n') {
        let Ok(line) = std::str::from_utf8(line) else { continue };
        let Some((mmss, n)) = line.split_once(' ') else { continue };
        let Ok(n) = n.parse::<u64>() else { continue };
        if mmss.len() == 4 && mmss.bytes().all(|b| b.is_ascii_digit()) {
            let e = into.entry(mmss.to_string()).or_insert(0);
            *e = (*e).max(n);
        }
    }
}

/// Reads the hour file `name` of the `.ids` directory `dir` (nothing if it
/// is missing), bounded and never through a link.
fn read_hour(dir: &File, name: &str) -> io::Result<Vec<u8>> {
    read_all(files::open_in(dir, Path::new(name))?)
}

/// An hour file's bytes, at most `HOUR_MAX` of them.
fn read_all(f: File) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    f.take(HOUR_MAX + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > HOUR_MAX {
        return Err(io::Error::new(ErrorKind::InvalidData, format!("larger than {} MiB", HOUR_MAX >> 20)));
    }
    Ok(bytes)
}

impl Store {
    /// Was `id` a job's that has been removed (kept in `.ids`, its
    /// directory gone)?
    pub fn id_removed(&self, id: &str) -> bool {
        if id.is_empty() || id.starts_with('.') || id.contains('/') {
            return false;
        }
        self.id_kept(id) && fs::symlink_metadata(self.root.join(id)).is_err()
    }

    /// Is `id` kept in `.ids`: in its hour file, or (an older version's
    /// record) as a file of its own?
    fn id_kept(&self, id: &str) -> bool {
        // One failed open when no job of that name was removed in that hour.
        let in_hour = || {
            let (hour, mmss, n) = hour_of(id)?;
            let f = files::open_nofollow(&self.root.join(IDS).join(hour)).ok()?;
            let mut seconds = BTreeMap::new();
            parse_hour(&read_all(f).ok()?, &mut seconds);
            Some(seconds.get(mmss).is_some_and(|&max| n <= max))
        };
        in_hour().unwrap_or(false) || fs::symlink_metadata(self.root.join(IDS).join(id)).is_ok()
    }

    /// Is `id` a job's, a removed job's, or an old run script's job's
    /// (`ID.log`, `ID.pid`)? The last two looks are made only for an id
    /// otherwise free.
    pub(super) fn id_taken(&self, id: &str) -> bool {
        let seen = |p: PathBuf| fs::symlink_metadata(p).is_ok();
        seen(self.root.join(id))
            || self.id_kept(id)
            || seen(self.root.join(format!("{id}.log")))
            || seen(self.root.join(format!("{id}.pid")))
    }

    /// Keeps `ids` in `.ids` (the caller holds the store's lock
    /// exclusively): each hour file they fall in written once, whole, by
    /// write-temp, fsync, rename; and the old one-file-per-id records
    /// folded in and then removed. On a full disk, the old form (an empty
    /// file takes no block). On an error (naming the file) nothing may be
    /// removed. An id without the shape of one (a damaged entry's
    /// name) was never given: nothing to keep.
    pub(super) fn retire_ids(&self, ids: &[&str]) -> Result<(), String> {
        let dir_path = self.root.join(IDS);
        let why = |e: String| format!("{e} (where the ids of removed jobs are kept)");
        // Never through a link planted as `.ids`.
        let dir = files::open_dir(&self.root)
            .and_then(|r| files::make_dir_in(&r, IDS))
            .map_err(|e| why(io_err("opening", &dir_path, e)))?;
        let old: Vec<String> = files::entries(&dir)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(name, _)| name.into_string().ok())
            .filter(|name| has_id_shape(name))
            .collect();
        // Each hour file: its seconds' highest N, and the old records folded in.
        let mut hours: BTreeMap<String, (BTreeMap<String, u64>, Vec<&str>)> = BTreeMap::new();
        for (id, is_old) in ids.iter().map(|id| (*id, false)).chain(old.iter().map(|id| (id.as_str(), true))) {
            if let Some((hour, mmss, n)) = hour_of(id) {
                let (seconds, olds) = hours.entry(hour).or_default();
                let e = seconds.entry(mmss.to_string()).or_insert(0);
                *e = (*e).max(n);
                if is_old {
                    olds.push(id);
                }
            }
        }
        for (hour, (mut seconds, olds)) in hours {
            match read_hour(&dir, &hour) {
                Ok(bytes) => parse_hour(&bytes, &mut seconds),
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(why(io_err("reading", &dir_path.join(&hour), e))),
            }
            let text: String = seconds.iter().map(|(mmss, n)| format!("{mmss} {n}\n")).collect();
            match write_synced_in(&dir, &hour, text.as_bytes()) {
                // Only now, with every id in its hour file, the old records go.
                Ok(()) => olds.iter().for_each(|name| drop(files::unlink_in(&dir, name))),
                // A full disk has no block for the file, but has inodes:
                // the old form, an empty file per id, folded in later.
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)) => {
                    for id in ids.iter().filter(|id| hour_of(id).is_some_and(|(h, _, _)| h == hour)) {
                        match files::create_new_in(&dir, id) {
                            Ok(_) => {}
                            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                            Err(e) => return Err(why(io_err("writing", &dir_path.join(id), e))),
                        }
                    }
                }
                Err(e) => return Err(why(io_err("writing", &dir_path.join(&hour), e))),
            }
        }
        Ok(())
    }
}

/// Publishes `bytes` as `name` in `dir`: a temp file written and synced,
/// then renamed over it (readers see the old file or the new, whole).
fn write_synced_in(dir: &File, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = format!(".{name}.{}.tmp", std::process::id());
    let _ = files::unlink_in(dir, &tmp);
    let res = files::create_new_in(dir, &tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .and_then(|()| files::rename_in(dir, &tmp, name));
    if res.is_err() {
        let _ = files::unlink_in(dir, &tmp);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn the_second_launch_in_a_second_is_underscore_two() {
        assert_eq!(nth("true_20261206_143432", 1), "true_20261206_143432");
        assert_eq!(nth("true_20261206_143432", 2), "true_20261206_143432_2");
        assert_eq!(nth("true_20261206_143432", 13), "true_20261206_143432_13");
    }

    #[test]
    fn only_a_word_with_the_whole_shape_of_an_id_has_it() {
        for w in ["w_20261206_143432", "w_20261206_143432_2", "a_b_20261206_143432_13", "--_20261206_143432"] {
            assert!(has_id_shape(w), "{w}");
        }
        for w in [
            "w_20261206",
            "w_2026",
            "_20261206_143432",
            "w_20261206_14343",
            "w_20261206_143432_",
            "w_20261206_143432_x",
            "w",
        ] {
            assert!(!has_id_shape(w), "{w}");
        }
    }

    #[test]
    fn an_ids_hour_file_and_line_are_its_name_and_hour_then_its_minute_and_second() {
        assert_eq!(hour_of("w_20261206_143432"), Some(("w_20261206_14".into(), "3432", 1)));
        assert_eq!(hour_of("a_b_20261206_143432_13"), Some(("a_b_20261206_14".into(), "3432", 13)));
        assert_eq!(
            hour_of("x_20260101_120000_20261206_143432"),
            Some(("x_20260101_120000_20261206_14".into(), "3432", 1))
        );
        assert_eq!(hour_of("w_20261206_14"), None, "an hour file's name is no id");
        assert_eq!(hour_of("x_20261206_14_20261206_14"), None);
        assert_eq!(hour_of("damaged"), None);
        let mut seconds = BTreeMap::new();
        parse_hour(b"3432 2\n3432 5\n0001 1\nnonsense\n99 3\n3433 x\n3434 7", &mut seconds);
        let want: Vec<(&str, u64)> = vec![("0001", 1), ("3432", 5), ("3434", 7)];
        assert_eq!(seconds.iter().map(|(k, v)| (k.as_str(), *v)).collect::<Vec<_>>(), want);
    }

    #[test]
    fn the_first_free_id_is_found_in_a_few_looks_however_many_are_taken() {
        for m in [0u64, 1, 2, 3, 4, 5, 7, 8, 9, 49, 50, 1000, 123_456] {
            let looks = Cell::new(0);
            let free = first_free(1, |n| {
                looks.set(looks.get() + 1);
                n <= m
            });
            assert_eq!(free, m + 1, "with {m} taken");
            assert!(looks.get() <= 2 * (64 - m.leading_zeros()) + 1, "{} looks with {m} taken", looks.get());
        }
        assert_eq!(first_free(7, |n| n < 10), 10);
        assert_eq!(first_free(12, |n| n < 10), 12);
    }
}
