//! Waiting for jobs to end and following a log while its job runs: block
//! on the lock a watcher holds until the end is recorded, else watch the
//! job directories (inotify), and re-check liveness every second.
//!
//! A Slurm job's files are written on another node, which inotify does not
//! see on a network file system: its log and `status` are polled, every
//! 50 ms while output comes, backing off to once a second when none does;
//! Slurm itself is asked (squeue) at most every 2 seconds.

use super::out::{clean, warn, Out};
use crate::exit::{Fail, Res};
use crate::state;
use crate::store::{self, Job, State};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Watches job directories for changes (inotify, via the notify crate).
/// Only changes wake it: our own reads of the job's files (opening `pid`,
/// reading the log) raise access events too, and waking on those would
/// make waiting a busy loop.
struct DirWatch {
    _watcher: Option<notify::RecommendedWatcher>,
    rx: std::sync::mpsc::Receiver<()>,
    /// Keeps the channel open when no watcher could be made (inotify
    /// limits), so that waiting falls back to the one-second re-check
    /// instead of spinning.
    _tx: std::sync::mpsc::Sender<()>,
}

impl DirWatch {
    fn new(dirs: &[&Path]) -> DirWatch {
        use notify::event::{AccessKind, AccessMode, EventKind};
        use notify::Watcher;
        let (tx, rx) = std::sync::mpsc::channel();
        let keep = tx.clone();
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let read_only = res
                .as_ref()
                .is_ok_and(|e| matches!(e.kind, EventKind::Access(k) if k != AccessKind::Close(AccessMode::Write)));
            if !read_only {
                let _ = tx.send(());
            }
        })
        .ok()
        .map(|mut w| {
            for d in dirs {
                let _ = w.watch(d, notify::RecursiveMode::NonRecursive);
            }
            w
        });
        DirWatch { _watcher: watcher, rx, _tx: keep }
    }

    /// Sleeps until something changes or `d` passes. The jobs' state is
    /// also re-checked every second: a job lost with its watcher changes no
    /// file.
    fn wait(&self, d: Duration) {
        let _ = self.rx.recv_timeout(d.min(Duration::from_secs(1)));
        while self.rx.try_recv().is_ok() {}
    }
}

/// Waits until every job has ended; false if `timeout` ran out first.
///
/// For each job in turn it blocks on the lock its watcher holds until the
/// end is recorded (or the watcher dies), as `nq -w` does: no file watch to
/// set up and tear down. Where that cannot tell (a lock that is free while
/// the job still runs: its watcher was killed), it watches the directories
/// and re-checks every second.
pub fn wait_all(jobs: &mut [Job], timeout: Option<Duration>) -> bool {
    let dirs: Vec<PathBuf> = jobs.iter().map(|j| j.dir.clone()).collect();
    let refs: Vec<&Path> = dirs.iter().map(PathBuf::as_path).collect();
    let deadline = timeout.map(|t| Instant::now() + t);
    let boot = crate::proc::boot_id();
    let (tx, rx) = std::sync::mpsc::channel::<usize>();
    let mut locked = vec![false; jobs.len()];
    let mut pending = None;
    // The watch is made only when there is something to wait for (tearing
    // an inotify watch down costs a process some milliseconds at exit), and
    // the state is checked again once it is in place.
    let mut watch = None;
    loop {
        let mut queued = false;
        let Some(i) = jobs.iter_mut().position(|j| {
            let st = state::of(j, &boot);
            queued = st == State::Queued;
            !settled(j, st)
        }) else {
            return true;
        };
        let left = match deadline {
            Some(d) if Instant::now() >= d => return false,
            Some(d) => d - Instant::now(),
            None => Duration::from_secs(1),
        };
        // A queued job has no watcher yet: its lock says nothing.
        if pending.is_none() && !locked[i] && !queued {
            locked[i] = true;
            if let Some(f) = jobs[i].end_lock() {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    let _ = f.lock_shared();
                    let _ = tx.send(i);
                });
                pending = Some(i);
            }
        }
        if let Some(p) = pending {
            match rx.recv_timeout(left) {
                Ok(done) if done == p => pending = None,
                _ => {}
            }
            continue;
        }
        if jobs.iter().any(Job::is_slurm) {
            std::thread::sleep(left.min(Duration::from_secs(1)));
            continue;
        }
        match &watch {
            None => watch = Some(DirWatch::new(&refs)),
            Some(w) => w.wait(left),
        }
    }
}

/// Has the job ended for good? A Slurm job's provisional end (an empty
/// squeue answer, see `store::FORGOTTEN`) is waited past: the true one may
/// replace it.
pub fn settled(job: &Job, st: State) -> bool {
    st.ended() && !(job.is_slurm() && job.end.as_ref().is_some_and(store::End::provisional))
}

/// Reads the job's log on from `*pos` (where `f` is) into `buf`, and
/// appends what a reader shows of it to `shown`; false at its end.
///
/// A log under `--log-max` has a dropped range (a hole, see `store::cap`):
/// it is shown as one marker line, never as the zeros it reads as. Its
/// record is read after each read of the log, and the watcher writes it
/// before it punches, so bytes dropped while this reader read them are
/// never shown. Offsets never move, so a follower never loses its place; one
/// that falls behind the dropping sees a marker for what it missed.
/// `line_open`: what was shown before `shown` ends mid-line.
fn read_shown(
    job: &Job,
    f: &mut File,
    pos: &mut u64,
    buf: &mut [u8],
    shown: &mut Vec<u8>,
    line_open: bool,
) -> Res<bool> {
    let failed = |e| Fail::from(store::io_err("reading", &job.log(), e));
    let n = f.read(buf).map_err(failed)?;
    if n == 0 {
        return Ok(false);
    }
    let at = *pos;
    *pos += n as u64;
    let Some((s, e)) = job.dropped().filter(|&(s, e)| at < e && *pos > s) else {
        shown.extend_from_slice(&buf[..n]);
        return Ok(true);
    };
    let cut = at.max(s);
    shown.extend_from_slice(&buf[..(cut - at) as usize]);
    if shown.last().map_or(line_open, |&b| b != b'\n') {
        shown.push(b'\n');
    }
    shown.extend_from_slice(store::marker(e - cut, job.meta.log_max).as_bytes());
    if *pos < e {
        *pos = f.seek(SeekFrom::Start(e)).map_err(failed)?;
    } else {
        shown.extend_from_slice(&buf[(e - at) as usize..n]);
    }
    Ok(true)
}

/// The shortest and longest pause between two reads of a Slurm job's log.
const POLL_MIN: Duration = Duration::from_millis(50);
const POLL_MAX: Duration = Duration::from_secs(1);
/// How often a follower asks Slurm (squeue) for the state.
const ASK_EVERY: Duration = Duration::from_secs(2);

/// A Slurm job's state for a follower: `status` read each time, Slurm
/// asked at most every `ASK_EVERY`.
fn polled_state(job: &mut Job, boot: &str, asked: &mut Option<(Instant, State)>) -> State {
    let _ = job.reread_end();
    if let Some(e) = job.end.as_ref().filter(|e| !e.provisional()) {
        return e.state;
    }
    match asked {
        Some((at, st)) if at.elapsed() < ASK_EVERY => *st,
        _ => {
            let st = state::of(job, boot);
            *asked = Some((Instant::now(), st));
            st
        }
    }
}

/// Where a reader of the job's log starts (all of it, or its last `tail`
/// lines), and what it shows before the log's bytes: the header rendered
/// from meta.json (`Meta::header`), whole or the lines of it the tail
/// reaches; nothing for a log that holds its own header. And whether it
/// owes the header's started line (`insert_started_line`): the job is
/// still queued.
fn log_start(job: &Job, tail: Option<usize>) -> Res<(u64, Vec<u8>, bool)> {
    let path = job.log();
    let (from, short) = match tail {
        Some(n) => {
            store::tail_reach(&path, n, job.dropped()).map_err(|e| Fail::from(store::io_err("reading", &path, e)))?
        }
        None => (0, usize::MAX),
    };
    let header = job.meta.header(clean).map(|h| store::header_tail(&h, short).as_bytes().to_vec());
    let start_due = !job.meta.header_in_log() && job.meta.is_queued();
    Ok((from, header.unwrap_or_default(), start_due))
}

/// A reader that began while the job was queued owes the header's line
/// saying when it started (`Meta::started_line`), due before the job's
/// first output: called once, when the log first has bytes to show, which
/// the job writes only after its meta.json says it started (else they are
/// the footer of a job that never ran). The line goes in at `at`.
fn insert_started_line(job: &mut Job, shown: &mut Vec<u8>, at: usize) {
    if job.meta.is_queued() {
        let _ = job.reread();
    }
    if let Some(line) = job.meta.started_line(clean) {
        shown.splice(at..at, line.into_bytes());
    }
}

/// Copies the job's log to `out` (all of it, or its last `tail` lines),
/// with the header first, following it while the job runs. Returns the
/// job's final state (or `running` if not following).
pub fn show_log(job: &mut Job, tail: Option<usize>, follow: bool, out: &mut Out) -> Res<State> {
    let path = job.log();
    let (from, header, mut start_due) = log_start(job, tail)?;
    let mut f = crate::files::open_nofollow(&path).map_err(|e| Fail::from(store::io_err("reading", &path, e)))?;
    let mut pos = f.seek(SeekFrom::Start(from)).map_err(|e| Fail::from(store::io_err("reading", &path, e)))?;
    out.bytes(&header)?;
    let boot = crate::proc::boot_id();
    let mut watch = None;
    let mut buf = vec![0u8; 64 * 1024];
    let (mut shown, mut line_open) = (Vec::new(), false);
    let (mut asked, mut pause) = (None, POLL_MIN);
    loop {
        let st = if job.is_slurm() { polled_state(job, &boot, &mut asked) } else { state::of(job, &boot) };
        let before = pos;
        while read_shown(job, &mut f, &mut pos, &mut buf, &mut shown, line_open)? {
            if start_due {
                insert_started_line(job, &mut shown, 0);
                start_due = false;
            }
            out.bytes(&shown)?;
            line_open = shown.last().map_or(line_open, |&b| b != b'\n');
            shown.clear();
        }
        out.flush()?;
        if !follow || settled(job, st) {
            return Ok(st);
        }
        if job.is_slurm() {
            pause = if pos > before { POLL_MIN } else { (pause * 2).min(POLL_MAX) };
            std::thread::sleep(pause);
            continue;
        }
        // Made once there is something to follow, then the state and the
        // log are read again with it in place (as in `wait_all`).
        let Some(w) = &watch else {
            watch = Some(DirWatch::new(&[job.dir.as_path()]));
            continue;
        };
        w.wait(Duration::from_secs(1));
        if let Ok(m) = f.metadata() {
            if m.len() < pos {
                warn("(log truncated)");
                pos = f.seek(SeekFrom::Start(0)).unwrap_or(0);
            }
        }
    }
}

/// Where the log's last `n` lines start; `hole`, the range its cap
/// dropped (`Job::dropped`).
fn tail_offset(path: &Path, n: usize, hole: Option<(u64, u64)>) -> Res<u64> {
    store::tail_start(path, n, hole).map_err(|e| Fail::from(store::io_err("reading", path, e)))
}

/// Shows several jobs' logs at once, each line prefixed with its job's name
/// (coloured on a terminal), from the last `tail` lines of each (else from
/// the start), following them while they run until every one has ended.
/// Returns each job's final state (`running` for one not followed to its
/// end).
pub fn follow_many(jobs: &mut [Job], tail: Option<usize>, follow: bool, out: &mut Out) -> Res<Vec<State>> {
    const COLOURS: [&str; 6] = ["36", "33", "35", "32", "34", "31"];
    let names: Vec<&str> = jobs.iter().map(|j| j.meta.name.as_str()).collect();
    // Names shared by two of the jobs would not tell them apart: use ids.
    let labels: Vec<String> = jobs
        .iter()
        .map(|j| {
            let shared = names.iter().filter(|n| **n == j.meta.name).count() > 1;
            super::out::clean(if shared || j.meta.name.is_empty() { &j.id } else { &j.meta.name })
        })
        .collect();
    let width = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    let prefixes: Vec<String> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| out.paint(COLOURS[i % COLOURS.len()], &format!("{l:<width$} |")))
        .collect();
    let mut files = Vec::new();
    for job in jobs.iter() {
        let path = job.log();
        let (from, header, start_due) = log_start(job, tail)?;
        let mut f = crate::files::open_nofollow(&path).map_err(|e| Fail::from(store::io_err("reading", &path, e)))?;
        let pos = f.seek(SeekFrom::Start(from)).map_err(|e| Fail::from(store::io_err("reading", &path, e)))?;
        files.push((f, pos, header, start_due));
    }
    let boot = crate::proc::boot_id();
    let mut ended: Vec<Option<State>> = vec![None; jobs.len()];
    let mut watch: Option<DirWatch> = None;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        for (i, job) in jobs.iter_mut().enumerate() {
            if ended[i].is_some() {
                continue;
            }
            // The state first, then the log: a job seen ended has all its
            // output in the log by then.
            let st = state::of(job, &boot);
            let (f, pos, partial, start_due) = &mut files[i];
            // What came before `partial` ended with a whole line.
            let held = partial.len();
            while read_shown(job, f, pos, &mut buf, partial, false)? {}
            if *start_due && partial.len() > held {
                insert_started_line(job, partial, held);
                *start_due = false;
            }
            let complete = partial.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
            let done = !follow || !st.is_active();
            let upto = if done { partial.len() } else { complete };
            for line in partial[..upto].split_inclusive(|&b| b == b'\n') {
                out.bytes(prefixes[i].as_bytes())?;
                out.bytes(b" ")?;
                out.bytes(line)?;
                if line.last() != Some(&b'\n') {
                    out.bytes(b"\n")?;
                }
            }
            partial.drain(..upto);
            if done {
                ended[i] = Some(st);
            }
        }
        out.flush()?;
        if ended.iter().all(Option::is_some) {
            return Ok(ended.into_iter().map(|s| s.unwrap_or(State::Running)).collect());
        }
        match &watch {
            None => {
                let dirs: Vec<&Path> = jobs.iter().map(|j| j.dir.as_path()).collect();
                watch = Some(DirWatch::new(&dirs));
            }
            Some(w) => w.wait(Duration::from_secs(1)),
        }
    }
}

/// Shows the log of a job of the old run scripts (from its last `tail`
/// lines, else whole), following it while the job's pid lives.
pub fn show_legacy_log(l: &store::Legacy, tail: Option<usize>, follow: bool, out: &mut Out) -> Res<()> {
    let Some(path) = &l.log else {
        return Err(Fail::from(format!("{}: the old run script left no log, only {}.pid", l.id, l.id)));
    };
    let from = match tail {
        Some(n) => tail_offset(path, n, None)?,
        None => 0,
    };
    let mut f = crate::files::open_nofollow(path).map_err(|e| Fail::from(store::io_err("reading", path, e)))?;
    f.seek(SeekFrom::Start(from)).map_err(|e| Fail::from(store::io_err("reading", path, e)))?;
    let mut watch = None;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let running = follow && state::legacy_running(l);
        loop {
            let n = f.read(&mut buf).map_err(|e| Fail::from(store::io_err("reading", path, e)))?;
            if n == 0 {
                break;
            }
            out.bytes(&buf[..n])?;
        }
        out.flush()?;
        if !running {
            return Ok(());
        }
        match &watch {
            None => watch = path.parent().map(|d| DirWatch::new(&[d])),
            Some(w) => w.wait(Duration::from_secs(1)),
        }
    }
}
