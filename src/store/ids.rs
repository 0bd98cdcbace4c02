//! Which id a new job takes, and the ids never given again.
//!
//! An id is `NAME_YYYYMMDD_HHMMSS` (local time); the second launch of a
//! name in one second is `…_2`, the next `…_3`, in the order the launches
//! reach the store. An id is taken while its job's directory is there and
//! after that through `.ids/ID`, the empty file its removal leaves (made
//! under the store lock held exclusively, while every launch holds it
//! shared), so a removed `_2` is never given again and the ids taken
//! within a second are always `NAME_TS`, `_2`, … `_m` with no gap. An old
//! run script's job (`ID.log`, `ID.pid`) takes its id too. The
//! first free one is found by doubling then halving (a handful of `stat`s
//! however many launches share the second), and the rename that publishes
//! the job, which fails on a taken name, settles a race: the loser tries
//! the next.

use super::Store;
use crate::files::io_err;
use std::fs;
use std::io::{self, ErrorKind};
use std::path::PathBuf;

/// Where removed jobs' ids are kept: one empty file per id.
const IDS: &str = ".ids";

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
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let parts: Vec<&str> = word.rsplitn(4, '_').collect();
    let stamped = |p: &[&str]| p.len() >= 3 && digits(p[0], 6) && digits(p[1], 8) && !p[2].is_empty();
    stamped(&parts)
        || (parts.len() == 4 && digits(parts[0], parts[0].len()) && !parts[0].is_empty() && stamped(&parts[1..]))
}

impl Store {
    /// Was `id` a job's that has been removed (kept in `.ids`, its
    /// directory gone)?
    pub fn id_removed(&self, id: &str) -> bool {
        if id.is_empty() || id.starts_with('.') || id.contains('/') {
            return false;
        }
        fs::symlink_metadata(self.root.join(IDS).join(id)).is_ok() && fs::symlink_metadata(self.root.join(id)).is_err()
    }

    /// Is `id` a job's, a removed job's, or an old run script's job's
    /// (`ID.log`, `ID.pid`)? The last two looks are made only for an id
    /// otherwise free.
    pub(super) fn id_taken(&self, id: &str) -> bool {
        let seen = |p: PathBuf| fs::symlink_metadata(p).is_ok();
        seen(self.root.join(IDS).join(id))
            || seen(self.root.join(id))
            || seen(self.root.join(format!("{id}.log")))
            || seen(self.root.join(format!("{id}.pid")))
    }

    /// Keeps `id` in `.ids`; an error names the job that cannot be
    /// removed because of it.
    pub(super) fn retire_id(&self, id: &str) -> Result<(), String> {
        let dir = self.root.join(IDS);
        let job = self.root.join(id);
        let why = |e: io::Error| format!("{} (keeping its id in {})", io_err("removing", &job, e), dir.display());
        // Never through a link planted as `.ids`.
        let ids = crate::files::open_dir(&self.root).and_then(|r| crate::files::make_dir_in(&r, IDS)).map_err(why)?;
        match crate::files::create_new_in(&ids, id) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(why(e)),
        }
    }
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
