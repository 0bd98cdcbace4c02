//! The watcher: one small detached process per running job. It forks the
//! job, publishes the job directory, lets the launcher return, then waits.
//! When the job ends it records the end (`finish`, the one path of every
//! end: log footer, then `status`, then `ended_at` and what the job used
//! in meta.json) and only then, if asked, publishes to ntfy (`message`):
//! the record of a job's end never waits on the network.
//! With `--log-max` the job writes into a pipe that a thread of the
//! watcher copies into the log, dropping its oldest output past the cap
//! (`pump`, `store::cap`). Once the
//! job has run for `SHED_AFTER`, it gives back the memory of its launcher
//! that waiting does not use (`proc::shed`).
//!
//! It is a child subreaper, so every process the job leaves behind, even
//! one that escaped with `setsid`, is re-parented to it; that is how a stop
//! or a timeout reaches the whole tree: SIGTERM to the job's group (only
//! while the job itself is not reaped: after that its group id may be
//! anyone's) and to every process below the watcher, each proven by its
//! start time (see `proc`), a grace period, then SIGKILL. A SIGTERM to the
//! watcher itself (a shutdown, a user's `kill`) is passed on the same way
//! and the job recorded `stopped`, with a note in the log.
//!
//! A job started with `run` from inside the job is its own job: its
//! watcher is re-parented here too once its launcher exits, but it marks
//! itself (`proc::mark_watcher`) and its meta.json names it, so neither
//! it nor its tree is signalled by this job's stop or timeout
//! (`another_watcher`), and its usage is not counted in this job's
//! (`proc::wait`).
//!
//! After detaching there is no stderr: the watcher never panics and writes
//! its own troubles into the job's log.
//!
//! Its parts: this file (the watcher's life and its supervision of the
//! job), `finish` (recording an end: the watcher's, the Slurm step's, and a
//! queued job's that never ran), `message` (what a notification says),
//! `slurm_step` (the watcher's Slurm variant: the batch step on the node),
//! `linger` (staying, once the end is recorded, while processes of the
//! job are left: the cap, a stop, a SIGTERM), `pump` (a capped job's
//! output, copied).

mod finish;
mod linger;
mod message;
mod pump;
pub mod slurm_step;

pub use finish::{finish, record, Ending};

use crate::ntfy;
use crate::proc::{self, Handshake, Wake};
use crate::store::{self, Cap, Meta, Outcome, SlotHold, Staged, State, Store};
use pump::Pump;
use std::ffi::OsString;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The job's directory as its watcher names it once it works there.
const OWN_DIR: &str = "/proc/self/cwd";

/// How long a job has between SIGTERM and SIGKILL.
pub const GRACE: Duration = Duration::from_secs(3);

/// How long a job runs before its watcher gives back the memory it does not
/// use while waiting (`proc::shed`): a job that ends sooner never pays for
/// it (about 0.3–0.5 ms of CPU, the code faulted back in included).
const SHED_AFTER: Duration = Duration::from_millis(100);

/// Everything the watcher needs, prepared by the launcher before the fork.
pub struct Plan {
    pub staged: Staged,
    pub meta: Meta,
    pub program: PathBuf,
    pub argv: Vec<OsString>,
    pub ntfy: Option<ntfy::Config>,
    pub started: Instant,
    /// A queued job's saved environment and working directory (a job
    /// launched at once has the launcher's).
    pub env: Option<Vec<OsString>>,
    pub cwd: Option<PathBuf>,
    /// Called once the end is recorded: starts what the freed slot (or the
    /// end itself, for `--after`) lets start. A function passed in, so that
    /// the queue, which starts watchers, sits above this module.
    pub on_end: Option<fn(&Store)>,
    /// A queue's slot taken for a job launched at once (`run -q` into an
    /// idle queue): its link named before the job is published, its lock
    /// held until then.
    pub slot: Option<SlotHold>,
}

/// The watcher's life; returns its exit status.
pub fn run(store: &Store, plan: Plan, hs: Handshake) -> i32 {
    let Plan { staged, mut meta, program, argv, ntfy, started, env, cwd, on_end, slot } = plan;
    proc::become_watcher();
    watching_in(store);
    let slot_fd = slot.as_ref().map_or(-1, |s| {
        s.close_dirs();
        s.lock.as_raw_fd()
    });
    proc::close_fds_except(&[hs.fd(), staged.log.as_raw_fd(), staged.status.as_raw_fd(), slot_fd]);
    // Where the job's own output will start: at 0, or after the header of
    // a log that holds one (queued by an older version).
    let output_from = staged.log.metadata().map_or(0, |m| m.len());
    // A capped job writes into a pipe that the watcher copies (`pump`).
    let pipe = match meta.log_max.map(|_| proc::output_pipe()).transpose() {
        Ok(p) => p,
        Err(e) => {
            store.discard(&staged);
            hs.send(&format!("err {e}"));
            return 1;
        }
    };
    let out = pipe.as_ref().map_or(staged.log.as_raw_fd(), |(_, w)| w.as_raw_fd());
    let mut job = match proc::fork_job(&program, &argv, out, env.as_deref(), cwd.as_deref()) {
        Ok(j) => j,
        Err(e) => {
            store.discard(&staged);
            hs.send(&format!("err {e}"));
            return 1;
        }
    };
    let pipe = pipe.map(|(r, _)| r);
    let started_pump = match (pipe, meta.log_max) {
        (Some(r), Some(max)) => Some(Pump::start(r, &staged.log, &staged.dir, Cap::new(max, output_from))),
        _ => None,
    };
    let (pump, mut held) = match started_pump.transpose() {
        Ok(p) => p.map_or((None, None), |(p, h)| (Some(p), Some(h))),
        Err(e) => {
            store.discard(&staged);
            drop(job); // the job sees no "go" and exits without running
            let _ = proc::next_wake(None);
            hs.send(&format!("err {e}"));
            return 1;
        }
    };
    // What only the job needed (a queued job's environment may be large).
    drop((program, argv, env, cwd));
    meta.pid = Some(job.pid);
    meta.pid_start = proc::stat(job.pid).map(|s| s.start);
    meta.watcher_pid = Some(proc::my_pid());
    meta.watcher_start = proc::stat(proc::my_pid()).map(|s| s.start);
    let named = |id: &str| slot.as_ref().map_or(Ok(()), |s| s.name(id));
    let dir = match store.publish_with(&staged, &mut meta, named) {
        Ok(d) => d,
        Err(e) => {
            if let Some(s) = &slot {
                s.free();
            }
            store.discard(&staged);
            drop(job); // the job sees no "go" and exits without running
            let _ = proc::next_wake(None);
            hs.send(&format!("err {e}"));
            return 1;
        }
    };
    // Published, its slot's link naming it: the queue's lock goes.
    drop(slot);
    // From here on the watcher names its job's directory through its own
    // working directory: were the directory moved and a link planted in
    // its place, its writes still go into it, never through the link.
    let dir = if proc::mark_watcher(&dir) { PathBuf::from(OWN_DIR) } else { dir };
    if let Some(h) = held.as_mut() {
        h.moved_to(&dir);
    }
    drop(held);
    if let Some(key) = &meta.key {
        if let Err(e) = store.set_key(key, &meta.id) {
            note(&staged, &dir, &format!("could not record key: {e}"));
        }
    }
    job.go();
    hs.send(&format!("ok {} {}", meta.id, job.pid));
    proc::settle_watcher();
    // What a reader can do without, made once the launcher has returned
    // (a queued job's were made when it was queued and started).
    if !staged.in_place {
        for e in store::write_after_launch(&dir, &meta) {
            note(&staged, &dir, &e);
        }
    }

    let deadline = meta.timeout_s.map(|s| started + Duration::from_secs(s));
    let bounds = Bounds { deadline, slurm: None };
    let (state, outcome) = supervise(&dir, job.pid, bounds, None, &staged.log);
    // Processes it left: the watcher stays for them (`linger`), and says
    // so in meta.json, so that a listing asks only such jobs' watchers.
    meta.left_processes = proc::has_children();
    // What the job wrote before it ended comes before the footer.
    let mut held = pump.as_ref().map(Pump::drained);
    let cap = held.as_ref().map(|h| h.cap.clone());
    let ending = Ending { state, outcome, output_from, once: false, cap, on_end, reason: None };
    let code = finish(store, &dir, &staged.log, &staged.status, &mut meta, ntfy.as_ref(), ending);
    if let Some(h) = held.as_mut() {
        h.cap.resync(&dir);
    }
    drop(held);
    linger::stay(&dir, &staged.log, pump.as_ref(), deadline);
    code
}

/// What ends a job besides itself.
pub struct Bounds {
    /// `--timeout`: SIGTERM to the tree, grace, SIGKILL; state `timeout`.
    pub deadline: Option<Instant>,
    /// In a Slurm step: when Slurm's time limit runs out, if known. A
    /// SIGTERM to the step is Slurm ending the job: at the time limit,
    /// `timeout`, else (scancel, `job stop`, preemption) `stopped`.
    pub slurm: Option<Option<Instant>>,
}

/// Waits for the job; handles the timeout and stop requests, and the cap
/// on its log. Returns the state to record and how the job's own process
/// ended.
pub fn supervise(dir: &Path, job: i32, bounds: Bounds, mut cap: Option<&mut Cap>, log: &File) -> (State, Outcome) {
    let deadline = bounds.deadline;
    let me = proc::my_pid();
    let mut outcome: Option<Outcome> = None;
    // While ending: the state to record, when to send SIGKILL, and when the
    // SIGKILL went out.
    let mut ending: Option<(State, Instant, Option<Instant>)> = None;
    let (mut next_check, mut cap_failed) = (Instant::now(), false);
    let mut shed_at = Some(Instant::now() + SHED_AFTER);
    loop {
        if shed_at.is_some_and(|t| Instant::now() >= t) {
            proc::shed();
            shed_at = None;
        }
        if let Some(c) = cap.as_deref_mut().filter(|_| Instant::now() >= next_check) {
            // Tried again every tick (a full disk may clear); said once.
            if let Err(e) = c.check(log, dir) {
                if !cap_failed {
                    let _ = store::append_note(log, &store::log_path(dir), &format!("{e}; trying again"));
                }
                cap_failed = true;
            }
            next_check = Instant::now() + c.tick();
        }
        if let Some(o) = outcome {
            match ending {
                // Slurm signals every process of a job at once: the job may
                // be reaped (killed, or ended by its own handler with any
                // code) before the step takes its own SIGTERM. With a stop
                // requested, the end is `stopped` however the job ended.
                None if bounds.slurm.is_some() && store::stop_request(dir).is_some() => {
                    return (State::Stopped, o);
                }
                None if bounds.slurm.is_some() && matches!(o, Outcome::Signaled(_) | Outcome::Exited(129..)) => {
                    if proc::term_pending(Duration::from_millis(300)) {
                        return (slurm_ending(deadline, bounds.slurm.flatten()), o);
                    }
                    return (natural(o), o);
                }
                None => return (natural(o), o),
                Some((s, _, _)) if proc::descendants(me, &another_watcher).is_empty() => return (s, o),
                Some((s, _, Some(killed))) if killed.elapsed() > Duration::from_secs(5) => return (s, o),
                _ => {}
            }
        }
        let until = match ending {
            None => deadline,
            Some((_, kill_at, None)) => Some(kill_at),
            Some((_, _, Some(_))) => Some(Instant::now() + Duration::from_millis(20)),
        };
        let until = if cap.is_some() { Some(until.map_or(next_check, |u| u.min(next_check))) } else { until };
        let until = shed_at.map_or(until, |s| Some(until.map_or(s, |u| u.min(s))));
        // The job's group, while the job is unreaped: our child's pid, so
        // its group's id, is no one else's until then.
        let group = outcome.is_none().then_some(job);
        match proc::next_wake(until) {
            Wake::Reaped(pid, o) if pid == job => outcome = Some(outcome_of(o)),
            Wake::Reaped(..) => {}
            Wake::NoChildren => {
                let o = outcome.unwrap_or(Outcome::Exited(-1));
                return (ending.map_or(natural(o), |e| e.0), o);
            }
            Wake::StopRequest if ending.is_none() => match store::stop_request(dir).as_deref() {
                Some("kill") => {
                    proc::signal_tree(me, group, proc::SIGKILL, &another_watcher);
                    ending = Some((State::Stopped, Instant::now(), Some(Instant::now())));
                }
                Some(_) => {
                    proc::signal_tree(me, group, proc::SIGTERM, &another_watcher);
                    ending = Some((State::Stopped, Instant::now() + GRACE, None));
                }
                None => {}
            },
            // `job stop --force` while a graceful stop or a timeout waits
            // out its grace: kill now.
            Wake::StopRequest => {
                if let Some((s, kill_at, None)) = ending {
                    if store::stop_request(dir).as_deref() == Some("kill") {
                        proc::signal_tree(me, group, proc::SIGKILL, &another_watcher);
                        ending = Some((s, kill_at, Some(Instant::now())));
                    }
                }
            }
            Wake::Terminated => {
                let kill = store::stop_request(dir).as_deref() == Some("kill");
                if ending.is_none() && bounds.slurm.is_none() && store::stop_request(dir).is_none() {
                    let msg = "the watcher was sent SIGTERM (a shutdown, a kill): stopping the job";
                    let _ = store::append_note(log, &store::log_path(dir), msg);
                }
                match ending {
                    None => {
                        let state = if store::stop_request(dir).is_some() {
                            State::Stopped
                        } else {
                            slurm_ending(deadline, bounds.slurm.flatten())
                        };
                        if kill {
                            proc::signal_tree(me, group, proc::SIGKILL, &another_watcher);
                            ending = Some((state, Instant::now(), Some(Instant::now())));
                        } else {
                            proc::signal_tree(me, group, proc::SIGTERM, &another_watcher);
                            ending = Some((state, Instant::now() + GRACE, None));
                        }
                    }
                    Some((s, kill_at, None)) if kill => {
                        proc::signal_tree(me, group, proc::SIGKILL, &another_watcher);
                        ending = Some((s, kill_at, Some(Instant::now())));
                    }
                    Some(_) => {}
                }
            }
            Wake::Deadline => match ending {
                None if deadline.is_some_and(|d| Instant::now() >= d) => {
                    proc::signal_tree(me, group, proc::SIGTERM, &another_watcher);
                    ending = Some((State::Timeout, Instant::now() + GRACE, None));
                }
                None => {}
                Some((s, kill_at, None)) if Instant::now() >= kill_at => {
                    proc::signal_tree(me, group, proc::SIGKILL, &another_watcher);
                    ending = Some((s, kill_at, Some(Instant::now())));
                }
                Some((_, _, Some(_))) => {
                    proc::signal_tree(me, group, proc::SIGKILL, &another_watcher);
                }
                Some(_) => {}
            },
        }
    }
}

/// Is `p`, found below this watcher, another job's watcher (a job started
/// with `run` from inside this one, whose watcher was re-parented here)?
/// Proven by its mark, then by the meta.json of the directory it works in
/// naming it with its start time. Neither it nor its tree is this job's:
/// never signalled by this job's stop, never counted in its usage.
/// A job of this store only: a process of this job dressed as another
/// job's watcher (the name, a session, a meta.json of its own making
/// outside the store) is still this job's.
pub(super) fn another_watcher(p: proc::Proc) -> bool {
    if !proc::marked_watcher(p.pid) {
        return false;
    }
    let Some(dir) = proc::cwd_of(p.pid) else { return false };
    let in_store = STORE_ROOT.get().is_none_or(|root| dir.parent() == Some(root.as_path()));
    in_store && store::watcher_of(&dir) == Some((p.pid, p.start))
}

/// The store this watcher's job is in (set once, as it starts).
static STORE_ROOT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Sets the store this watcher's job is in: another job's watcher found
/// below is one of its jobs.
pub fn watching_in(store: &Store) {
    let root = std::fs::canonicalize(store.root()).unwrap_or_else(|_| store.root().to_path_buf());
    let _ = STORE_ROOT.set(root);
}

/// Why Slurm sent SIGTERM: its time limit (or our `--timeout`) ran out, or
/// it was cancelled.
pub fn slurm_ending(deadline: Option<Instant>, limit: Option<Instant>) -> State {
    let soon = Instant::now() + Duration::from_secs(2);
    if deadline.is_some_and(|d| d <= soon) || limit.is_some_and(|l| l <= soon) {
        State::Timeout
    } else {
        State::Stopped
    }
}

/// What wait(2) said, as the store records it.
fn outcome_of(e: proc::ChildEnd) -> Outcome {
    match e {
        proc::ChildEnd::Exited(c) => Outcome::Exited(c),
        proc::ChildEnd::Signaled(s) => Outcome::Signaled(s),
    }
}

fn natural(o: Outcome) -> State {
    match o {
        Outcome::Exited(0) => State::Done,
        Outcome::Exited(_) => State::Failed,
        Outcome::Signaled(_) | Outcome::NotRun | Outcome::Unknown => State::Killed,
    }
}

/// The watcher's own troubles go into the job's log.
fn note(staged: &Staged, dir: &Path, msg: &str) {
    let _ = store::append_note(&staged.log, &store::log_path(dir), msg);
}
