//! The summary of ended jobs (`.cache/summary` in the store): a cache that makes
//! `runs --json` of a big store one read of the store's directory and one
//! of a file, instead of two files read per job. It is derived from the
//! job directories, which stay the truth, and is never needed: without
//! it (missing, damaged, of another store) every job is read.
//!
//! A line per settled job, sorted by start then id, after a first line
//! naming the format and the store: `ID TAB INODE TAB START_NS TAB STATE
//! TAB JSON`, JSON being the job's line of `runs --json`. Settled: ended
//! (not provisionally), local, with `ended_at` recorded, its notification's
//! outcome recorded if it asked for one, no log cap and no processes left
//! (its watcher may stay): nothing in its directory changes any more but
//! its removal.
//!
//! How it is checked: a line counts only if its id is a directory of the
//! store now, with the inode number the line holds (both from the one read
//! of the directory), and only the first line of an id counts; lines out
//! of order make the whole file unused. Every directory no line counts for
//! is read. So a summary truncated, stale, planted or damaged never hides
//! a job (each directory is shown, from its line or read) and never invents
//! one (a line shows only a directory that is there): at worst it costs
//! the reads it saves. The file is read twice (to check it, then to show
//! it, merged with the jobs read): if it changed in between so that a line
//! counted at first is missing, the listing ends with an error rather than
//! leave the job out. `runs --json` rewrites it whole
//! (write-temp-then-rename) when 1,000 or more settled jobs have no line,
//! or as many lines count for nothing.

use crate::store::{Job, State, Store};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};

/// The format's first word and version.
const FORMAT: &str = "bgrun-summary 1";

/// The most a job's JSON line may be to be kept (a bigger one, with a
/// huge context or command line, is read each time).
const LINE_MAX: usize = 64 * 1024;

/// How many missing or dead lines make `runs --json` rewrite it.
pub const REWRITE_AT: usize = 1000;

/// One line of the summary, as read (borrowed from the reader's buffer).
pub struct Line<'a> {
    pub id: &'a str,
    pub ino: u64,
    pub start: i64,
    pub state: &'a str,
    pub json: &'a [u8],
}

/// Where a listing sorts a job: its start (ns), then its id.
pub fn key_of(job: &Job) -> (i64, String) {
    (job.started.timestamp_nanos_opt().unwrap_or(i64::MIN), job.id.clone())
}

/// Does nothing in the job's directory change any more but its removal
/// (see the top), and does its line fit?
pub fn settled(job: &Job, st: State, json: &[u8]) -> bool {
    let m = &job.meta;
    job.end.as_ref().is_some_and(|e| !e.provisional() && e.state == st)
        && !job.is_slurm()
        && m.ended_at.is_some()
        && m.log_max.is_none()
        // Its watcher stays for processes it left: `lingering` changes.
        && !m.left_processes
        && (m.notify_topic.is_none() || job.notified().is_some())
        && !job.id.contains(['\t', '\n'])
        && json.len() <= LINE_MAX
}

/// The first line, for the store at `store`.
pub fn header(store: &Store) -> String {
    format!("{FORMAT} {}\n", store.root().display())
}

/// A job's line.
pub fn line(key: &(i64, &str), ino: u64, st: &str, json: &[u8]) -> Vec<u8> {
    let mut l = format!("{}\t{ino}\t{}\t{st}\t", key.1, key.0).into_bytes();
    l.extend_from_slice(json);
    l.push(b'\n');
    l
}

fn parse(bytes: &[u8]) -> Option<Line<'_>> {
    let text = bytes.strip_suffix(b"\n")?;
    let mut parts = text.splitn(5, |&b| b == b'\t');
    let mut word = || std::str::from_utf8(parts.next()?).ok();
    let (id, ino, start, state) = (word()?, word()?, word()?, word()?);
    let json = parts.next()?;
    let ok = !id.is_empty() && json.first() == Some(&b'{') && json.last() == Some(&b'}') && json.len() <= LINE_MAX;
    ok.then_some(Line { id, ino: ino.parse().ok()?, start: start.parse().ok()?, state, json })
}

/// A summary checked against the store's directories.
pub struct Summary {
    file: File,
    limit: u64,
    /// The ids its lines count for.
    pub covered: HashSet<String>,
    /// Lines that count for nothing (stale, repeated, damaged).
    pub dead: usize,
}

impl Summary {
    /// The store's summary checked against its directories (`dirs`: id →
    /// inode number); none if there is none, or it cannot be used.
    pub fn open(store: &Store, dirs: &HashMap<&str, u64>) -> Option<Summary> {
        let file = store.open_summary()?;
        // Each line at most LINE_MAX and its fields: a bigger file is not read.
        let limit = (dirs.len() as u64 + 1) * (LINE_MAX as u64 + 256);
        let (mut covered, mut dead, mut last, mut ordered) = (HashSet::new(), 0, (i64::MIN, String::new()), true);
        read_lines(&file, limit, store, |l| {
            let Some(l) = l else {
                dead += 1;
                return;
            };
            if (last.0, last.1.as_str()) > (l.start, l.id) {
                ordered = false;
            }
            if dirs.get(l.id) == Some(&l.ino) && !covered.contains(l.id) {
                covered.insert(l.id.to_string());
            } else {
                dead += 1;
            }
            last.0 = l.start;
            last.1.clear();
            last.1.push_str(l.id);
        })?;
        ordered.then_some(Summary { file, limit, covered, dead })
    }

    /// The lines that count, in order, each once; false if one that counted
    /// when checked is missing now (the file changed meanwhile).
    pub fn lines(&self, store: &Store, mut each: impl FnMut(Line<'_>)) -> bool {
        let mut shown = HashSet::new();
        let read = read_lines(&self.file, self.limit, store, |l| {
            if let Some(l) = l.filter(|l| self.covered.contains(l.id) && !shown.contains(l.id)) {
                shown.insert(l.id.to_string());
                each(l);
            }
        });
        read.is_some() && shown.len() == self.covered.len()
    }
}

/// Reads the lines of the summary `file` from its start (at most `limit`
/// bytes), each well made one to `each` (None for one that is not); none
/// if its first line is not this format's for this store.
fn read_lines(file: &File, limit: u64, store: &Store, mut each: impl FnMut(Option<Line<'_>>)) -> Option<()> {
    let mut f = file;
    f.seek(SeekFrom::Start(0)).ok()?;
    let mut r = BufReader::with_capacity(256 * 1024, f.take(limit));
    let mut buf = Vec::new();
    r.read_until(b'\n', &mut buf).ok()?;
    if buf != header(store).as_bytes() {
        return None;
    }
    loop {
        buf.clear();
        match r.read_until(b'\n', &mut buf) {
            Ok(0) => return Some(()),
            Ok(_) => each(parse(&buf)),
            Err(_) => return None,
        }
    }
}
