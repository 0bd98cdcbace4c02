//! The listing: one read of the store's root (`Scan`), then the jobs read
//! from their directories (by a few threads in a big store): all of them
//! (`list`), or only those a command shows or may name (`newest`,
//! `named`).
//!
//! Reading only some jobs gives a full listing's answer because of what an
//! id is: `NAME_YYYYmmdd_HHMMSS[_N]`, the name of the job (made safe for
//! a file name: `id_name`) and the local second it started in. So the jobs
//! a name or an id prefix can name are known from the directory's entries
//! alone (`named`). And a job's start is its id's second, unless it waited
//! in a queue (it then starts later than its id says): in a store that has
//! never had a queue (no `.queues`), the newest jobs are those of the
//! newest ids, the ties within a second settled by reading that second's
//! jobs (`newest`). That holds while the jobs were launched under one
//! offset from UTC: the newest are read and compared, and jobs of
//! different offsets among them send the caller back to a full listing;
//! an older job launched under a far earlier offset (a move across time
//! zones) would go unseen by `newest`, as ids compare by their local time.

use super::ids::split_id;
use super::job::{self, Damaged, Job};
use super::{legacy, names, planted, Store, LINK_PLANTED};
use crate::files::{self, io_err, Kind};
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::ErrorKind;
use std::path::Path;

/// What a listing orders jobs by: their start, then their id.
pub type Key = (chrono::DateTime<chrono::FixedOffset>, String);

/// The newest job of a name, or that no job has it.
pub enum Named {
    Newest(Box<Job>),
    Nothing,
}

/// What one read of the store's root finds.
pub struct Scan {
    root: Option<File>,
    /// The job directories' names (UTF-8), in no order.
    pub ids: Vec<String>,
    /// Their inode numbers, in the same order (what `getdents` gives).
    pub inos: Vec<u64>,
    /// The entries that cannot be jobs, found by their type alone (links,
    /// old scripts' files that cannot be read, names that are not UTF-8).
    pub damaged: Vec<Damaged>,
    /// The old scripts' regular files (`NAME_TS.log`, `.pid`).
    pub(super) old: Vec<(String, std::path::PathBuf)>,
    /// Has the store queues (`.queues`)? Then a job may have started
    /// later than its id says.
    pub queues: bool,
    /// Are `ids` in `newest`'s order (`age_key`): the names that are not ids
    /// first, then the ids newest first? (So they are kept in the names'
    /// cache.)
    ordered: bool,
}

/// The size of the entry `name` of `dir` (0 if it cannot be asked).
fn size_in(dir: &File, name: &OsStr) -> u64 {
    nix::sys::stat::fstatat(dir, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW).map_or(0, |st| st.st_size as u64)
}

/// Where `newest` puts an id: the names that are not ids first, then the
/// ids newest first (by their second, then suffix, then whole).
fn age_key(id: &str) -> (bool, std::cmp::Reverse<(String, u64, String)>) {
    let (stamp, k) = split_id(id).map_or((None, 0), |(_, stamp, k)| (Some(stamp.to_string()), k));
    (stamp.is_some(), std::cmp::Reverse((stamp.unwrap_or_default(), k, id.to_string())))
}

impl Store {
    /// One read of the store's root (none of its jobs' files): an empty
    /// scan if the store does not exist.
    pub fn scan(&self) -> Result<Scan, String> {
        let mut scan =
            Scan { root: None, ids: vec![], inos: vec![], damaged: vec![], old: vec![], queues: false, ordered: false };
        let root = match File::open(&self.root) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(scan),
            Err(e) => return Err(io_err("reading", &self.root, e)),
        };
        // A big store unchanged since it was last read: its names' cache.
        let stamp = names::Stamp::of(&root);
        if let Some(names) = stamp.as_ref().and_then(|s| self.cached_names(&root, s)) {
            (scan.ids, scan.inos, scan.queues, scan.root) = (names.ids, names.inos, names.queues, Some(root));
            scan.ordered = true;
            return Ok(scan);
        }
        // Read through the descriptor the stamp is of (never the path
        // again: it may name another directory by now).
        for (name, kind, ino) in files::entries_ino(&root).map_err(|e| io_err("reading", &self.root, e))? {
            let path = || self.root.join(&name);
            if name.as_encoded_bytes().first() == Some(&b'.') {
                if kind == Kind::Link && (name == ".keys" || name == ".ids") {
                    scan.damaged.push(planted((path(), LINK_PLANTED.into())));
                }
                scan.queues |= name == ".queues";
                continue;
            }
            let id = name.to_string_lossy().into_owned();
            let damaged = |reason: &str| Damaged { id: id.clone(), path: path(), reason: reason.into() };
            if kind == Kind::Link && name.to_str().and_then(|n| legacy::trouble(n, kind, 0)).is_some() {
                scan.damaged.push(damaged("an old script's file that is a symbolic link; not followed"));
            } else if kind == Kind::Link {
                scan.damaged.push(damaged("a symbolic link, not a job directory"));
            } else if kind != Kind::Dir {
                // a foreign file, or an old run script's .log or .pid (only a
                // pid file's size matters)
                if let Some(n) = name.to_str().filter(|n| legacy::is_old(n)) {
                    let len = if n.ends_with(".pid") { size_in(&root, &name) } else { 0 };
                    match legacy::trouble(n, kind, len) {
                        Some(why) => scan.damaged.push(damaged(why)),
                        None => scan.old.push((id, path())),
                    }
                }
            } else if name.to_str().is_none() {
                scan.damaged.push(damaged("a name that is not UTF-8"));
            } else {
                scan.ids.push(id);
                scan.inos.push(ino);
            }
        }
        // Kept for the next listing if nothing moved while it was read.
        let keep = |s: &names::Stamp| {
            scan.damaged.is_empty()
                && scan.old.is_empty()
                && names::worth_keeping(s, &scan.ids)
                && Some(*s) == names::Stamp::of(&root)
        };
        if let Some(stamp) = stamp.filter(keep) {
            let mut both: Vec<(String, u64)> = scan.ids.drain(..).zip(scan.inos.drain(..)).collect();
            both.sort_by_cached_key(|(id, _)| age_key(id));
            (scan.ids, scan.inos) = both.into_iter().unzip();
            scan.ordered = true;
            self.save_names(&root, &stamp, &scan.ids, &scan.inos, scan.queues);
        }
        scan.root = Some(root);
        Ok(scan)
    }

    /// Every job in the store, oldest first, and the entries that look like
    /// jobs but cannot be read.
    pub fn list(&self) -> Result<(Vec<Job>, Vec<Damaged>), String> {
        Ok(self.list_of(&self.scan()?))
    }

    /// As `list`, from a scan.
    pub fn list_of(&self, scan: &Scan) -> (Vec<Job>, Vec<Damaged>) {
        let ids: Vec<&str> = scan.ids.iter().map(String::as_str).collect();
        let (jobs, damaged) = self.read_some(scan, &ids);
        (jobs, self.all_damaged(scan, damaged))
    }

    /// Every damaged entry of a listing: the scan's, those that could not
    /// be read (`read`), and the links planted in the queues.
    pub fn all_damaged(&self, scan: &Scan, mut read: Vec<Damaged>) -> Vec<Damaged> {
        read.splice(0..0, scan.damaged.iter().cloned());
        read.extend(self.planted_queue_links().into_iter().map(planted));
        read
    }

    /// The jobs `ids` of a scan, oldest first (by start, then id), and
    /// those that cannot be read. A big store is read by a few threads.
    pub fn read_some(&self, scan: &Scan, ids: &[&str]) -> (Vec<Job>, Vec<Damaged>) {
        let (jobs, damaged) = self.read_map(scan, ids, &|job| job);
        (jobs.into_iter().map(|(_, job)| job).collect(), damaged)
    }

    /// As `read_some`, each job made into what `keep` makes of it as soon
    /// as it is read (in the thread that read it), with its start: a
    /// listing of many jobs holds only what it shows of each.
    pub fn read_map<T: Send>(
        &self,
        scan: &Scan,
        ids: &[&str],
        keep: &(dyn Fn(Job) -> T + Sync),
    ) -> (Vec<(Key, T)>, Vec<Damaged>) {
        let Some(root) = &scan.root else { return (vec![], vec![]) };
        type Read<'a, T> = Vec<(&'a str, Result<(Key, T), String>)>;
        fn read<'a, T>(
            root: &File,
            root_path: &Path,
            ids: &[&'a str],
            keep: &(dyn Fn(Job) -> T + Sync),
        ) -> Read<'a, T> {
            let mut buf = Vec::new();
            let made = |job: Job| ((job.started, job.id.clone()), keep(job));
            ids.iter().map(|id| (*id, job::read_job_at(root, root_path, id, &mut buf).map(made))).collect()
        }
        let threads =
            if ids.len() < 512 { 1 } else { std::thread::available_parallelism().map_or(1, |n| n.get().min(4)) };
        let read: Vec<_> = if threads == 1 {
            read(root, &self.root, ids, keep)
        } else {
            let chunk = ids.len().div_ceil(threads);
            std::thread::scope(|s| {
                let root_path = &self.root;
                let parts: Vec<_> =
                    ids.chunks(chunk).map(|part| s.spawn(move || read(root, root_path, part, keep))).collect();
                parts.into_iter().flat_map(|p| p.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
            })
        };
        let (mut jobs, mut damaged) = (Vec::with_capacity(read.len()), Vec::new());
        for (id, r) in read {
            match r {
                Ok(job) => jobs.push(job),
                Err(reason) => {
                    let path = self.root.join(id);
                    // Removed while we listed: not damage.
                    if fs::symlink_metadata(&path).is_ok() {
                        damaged.push(Damaged { id: id.to_string(), path, reason });
                    }
                }
            }
        }
        jobs.sort_by(|a: &(Key, T), b| a.0.cmp(&b.0));
        (jobs, damaged)
    }

    /// The newest `n` jobs, oldest first: the last `n` of `list`'s, read
    /// from the newest ids back (see the top), and the damaged entries
    /// among those read or scanned. None where the ids cannot tell (a store
    /// with queues, jobs of different UTC offsets): the caller lists all.
    pub fn newest(&self, scan: &Scan, n: usize) -> Option<(Vec<Job>, Vec<Damaged>)> {
        if scan.queues {
            return None;
        }
        // Newest first; the names that are not ids are read whatever.
        let (unstamped, mut seconds) = by_second(scan, None, n.saturating_mul(4).saturating_add(64));
        let (mut jobs, mut damaged) = self.read_some(scan, &unstamped);
        let mut read = 0;
        // A whole second at a time, until `n` jobs with ids are read.
        while read < n {
            let Some(ids) = seconds.next() else { break };
            let (more, bad) = self.read_some(scan, &ids);
            read += more.len();
            jobs.extend(more);
            damaged.extend(bad);
        }
        let offset = |j: &Job| j.started.offset().local_minus_utc();
        if jobs.iter().any(|j| offset(j) != jobs.first().map_or(0, offset)) {
            return None;
        }
        jobs.sort_by(|a, b| a.started.cmp(&b.started).then_with(|| a.id.cmp(&b.id)));
        jobs.drain(..jobs.len().saturating_sub(n));
        damaged.splice(0..0, scan.damaged.iter().cloned());
        Some((jobs, damaged))
    }

    /// The newest job named `word` (`id_name`: as its ids begin), read
    /// from the newest of those ids back (see the top); whether there is
    /// none; or None where the ids cannot tell (a store with queues, jobs
    /// of different UTC offsets among those read).
    pub fn newest_named(&self, scan: &Scan, word: &str, id_name: &str) -> Option<Named> {
        if scan.queues {
            return None;
        }
        let (unstamped, seconds) = by_second(scan, Some(id_name), 64);
        let (mut read, _) = self.read_some(scan, &unstamped);
        // A whole second at a time, until one of the name is read.
        for ids in seconds {
            let (more, _) = self.read_some(scan, &ids);
            let found = more.iter().any(|j| j.meta.name == word);
            read.extend(more);
            if found {
                break;
            }
        }
        let offset = |j: &Job| j.started.offset().local_minus_utc();
        if read.iter().any(|j| offset(j) != read.first().map_or(0, offset)) {
            return None;
        }
        let newest = read
            .into_iter()
            .filter(|j| j.meta.name == word)
            .max_by(|a, b| a.started.cmp(&b.started).then_with(|| a.id.cmp(&b.id)));
        Some(newest.map_or(Named::Nothing, |j| Named::Newest(Box::new(j))))
    }

    /// The jobs whose id starts with `word`, oldest first.
    pub fn prefixed(&self, scan: &Scan, word: &str) -> Vec<Job> {
        let ids: Vec<&str> = scan.ids.iter().map(String::as_str).filter(|id| id.starts_with(word)).collect();
        self.read_some(scan, &ids).0
    }

    /// The jobs a word may name as a name or a prefix of their ids, oldest
    /// first: those whose id starts with the word or with the word's
    /// `id_name` (as a launch makes it) and a time, and those whose
    /// directory's name is not an id (read whatever). What `match_job`
    /// finds among them is what it finds among all the jobs.
    pub fn named(&self, scan: &Scan, word: &str, id_name: &str) -> Vec<Job> {
        let ids: Vec<&str> = scan
            .ids
            .iter()
            .map(String::as_str)
            .filter(|id| id.starts_with(word) || split_id(id).is_none_or(|(name, _, _)| name == id_name))
            .collect();
        self.read_some(scan, &ids).0
    }
}

/// The names of a scan that are not ids, and its ids of the name `name`
/// (every id if none) a second at a time, newest first: from the order
/// they are in if they are ordered (the names' cache), else sorted as far
/// as they are taken (the newest `first` at once).
fn by_second<'a>(scan: &'a Scan, name: Option<&'a str>, first: usize) -> (Vec<&'a str>, Seconds<'a>) {
    if scan.ordered {
        let at = scan.ids.iter().position(|id| split_id(id).is_some()).unwrap_or(scan.ids.len());
        let unstamped = scan.ids[..at].iter().map(String::as_str).collect();
        return (unstamped, Seconds::Ordered { ids: &scan.ids, at, name });
    }
    let (mut stamped, mut unstamped) = (Vec::new(), Vec::new());
    for id in &scan.ids {
        match split_id(id) {
            Some((n, stamp, k)) if name.is_none_or(|name| name == n) => stamped.push((stamp, k, id.as_str())),
            Some(_) => {}
            None => unstamped.push(id.as_str()),
        }
    }
    (unstamped, Seconds::Sorted(BySecond::new(stamped, first)))
}

/// Ids a second at a time, newest first (see `by_second`).
enum Seconds<'a> {
    Sorted(BySecond<'a>),
    /// Ids in `age_key`'s order, the next at `at`: a second is taken
    /// whole, its ids of other names left out.
    Ordered {
        ids: &'a [String],
        at: usize,
        name: Option<&'a str>,
    },
}

impl<'a> Iterator for Seconds<'a> {
    type Item = Vec<&'a str>;

    fn next(&mut self) -> Option<Vec<&'a str>> {
        let (ids, at, name) = match self {
            Seconds::Sorted(s) => return s.next(),
            Seconds::Ordered { ids, at, name } => (ids, at, name),
        };
        let ours = |n: &str| name.is_none_or(|name| name == n);
        while let Some(id) = ids.get(*at) {
            *at += 1;
            // An id of another name is passed over without splitting it.
            if name.is_some_and(|n| !id.starts_with(n)) {
                continue;
            }
            let Some((_, second, _)) = split_id(id).filter(|(n, _, _)| ours(n)) else { continue };
            let mut group = vec![id.as_str()];
            while let Some((id, (n, _, _))) =
                ids.get(*at).and_then(|id| Some((id, split_id(id)?))).filter(|(_, (_, s, _))| *s == second)
            {
                if ours(n) {
                    group.push(id);
                }
                *at += 1;
            }
            return Some(group);
        }
        None
    }
}

/// Ids (with their time and suffix) a second at a time, newest first:
/// sorted only as far as they are taken (the newest `first` at once, the
/// rest if they are reached).
struct BySecond<'a> {
    ids: Vec<(&'a str, u64, &'a str)>,
    sorted: usize,
    at: usize,
}

impl<'a> BySecond<'a> {
    fn new(mut ids: Vec<(&'a str, u64, &'a str)>, first: usize) -> Self {
        let sorted = ids.len().min(first);
        if sorted < ids.len() {
            ids.select_nth_unstable_by(sorted, |a, b| b.cmp(a));
        }
        ids[..sorted].sort_unstable_by(|a, b| b.cmp(a));
        BySecond { ids, sorted, at: 0 }
    }
}

impl<'a> Iterator for BySecond<'a> {
    type Item = Vec<&'a str>;

    /// The ids of the next second back.
    fn next(&mut self) -> Option<Vec<&'a str>> {
        let (i, second) = (self.at, self.ids.get(self.at)?.0);
        let end = |v: &[(&str, u64, &str)], upto: usize| {
            v[i..upto].iter().position(|s| s.0 != second).map_or(upto, |k| i + k)
        };
        let mut stop = end(&self.ids, self.sorted);
        if stop == self.sorted && self.sorted < self.ids.len() {
            self.ids[self.sorted..].sort_unstable_by(|a, b| b.cmp(a));
            self.sorted = self.ids.len();
            stop = end(&self.ids, self.sorted);
        }
        self.at = stop;
        Some(self.ids[i..stop].iter().map(|s| s.2).collect())
    }
}
