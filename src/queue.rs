//! Queues, slots and `--after`, with no daemon and no process per waiting
//! job. The algorithm:
//!
//! 1. `run -q Q` (or `--after`) stages the job like any other, saves its
//!    environment in the 0600 file `env`, and publishes it whole, with
//!    `queued_at` and no `pid` in `meta.json`: that is what `queued` means.
//!    Then, under the queue's lock, it adds `wait/NS.ID` to the queue's
//!    index (NS: the nanosecond it was queued, so the index sorts in order).
//! 2. Deciding what starts (`decide`, for one queue) happens under the queue's lock (flock
//!    on `.queues/Q@PLACE/lock`), so at most one process decides for a
//!    queue at a time. It frees each slot (`run/K`) whose job is no longer
//!    running, then walks the index in order: a job whose `--after` jobs
//!    are all `done` takes the lowest free slot K and is started; one whose
//!    `--after` job ended any other way ends `skipped`; one still waiting
//!    for its `--after` jobs is passed over. Never more than N: a slot is
//!    freed only once its job is seen ended or lost, and taken only under
//!    the lock.
//! 3. Starting is the launch hand-off: fork a watcher, which forks the job
//!    with the saved environment (plus `RUN_QUEUE`, `RUN_SLOT`) in its
//!    working directory, writes `pid` and `meta.json` by rename (the moment
//!    it stops being queued), removes `env`, and answers; only then is the
//!    lock released. A decider killed half-way leaves an index entry or a
//!    slot that the next decision mends.
//! 4. Who decides: the launcher after queueing; the watcher of every job
//!    after it has recorded the end (through `watch::Plan::on_end`, a
//!    function passed in: this module starts watchers, so it sits above
//!    `watch`, which cannot import it); `job stop` of a queued job; `job
//!    queue --slots/--resume`; and every front, which says so in one line
//!    after opening the store (`catch_up`, for all of this place's
//!    queues), which costs one failed open when no queue exists, and one
//!    directory read per queue when nothing waits. So a killed
//!    watcher or a reboot delays the next start until the next command.
//! 5. Places: a queue is `NAME@HOST~PIDNS`; a process decides only for its
//!    own place, so a job starts only on the host and in the pid namespace
//!    where it was queued, even in a store shared over NFS.
//!
//! A decision reads the index, the slots and the jobs they name: its cost
//! does not grow with the number of ended jobs in the store.

use crate::store::{self, Conf, End, Job, Meta, Outcome, QueueDir, Staged, State, Store};
use crate::{ntfy, proc, state, watch};
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

/// The queue a job's meta names (the unnamed one for `--after` alone).
pub fn queue_of(store: &Store, meta: &Meta) -> QueueDir {
    let place = meta.place.clone().unwrap_or_else(proc::place);
    store.queue(meta.queue.as_deref().unwrap_or(""), &place)
}

/// Publishes a staged job as queued, adds it to its queue's index, and
/// starts what can start (perhaps this job). On failure nothing is left.
pub fn enqueue(store: &Store, staged: Staged, meta: &mut Meta) -> Result<PathBuf, String> {
    let q = queue_of(store, meta);
    let published = (|| {
        let _lock = q.lock()?;
        // The entry first, under the id the job will most likely get: a
        // launcher killed before it publishes leaves an entry naming no
        // job (or another one), which the next decision drops; one killed
        // after leaves a job that is queued and indexed.
        let ns = chrono::Local::now().timestamp_nanos_opt().unwrap_or(0);
        let base = meta.id.clone();
        let entry = q.add_waiting(ns, &base)?;
        let dir = match store.publish(&staged, meta) {
            Ok(d) => d,
            Err(e) => {
                q.remove_waiting(&entry);
                return Err(e);
            }
        };
        if meta.id != base {
            // The id was taken: a suffixed one, indexed under the same time.
            let added = q.add_waiting(ns, &meta.id);
            q.remove_waiting(&entry);
            if let Err(e) = added {
                let _ = store.remove(&meta.id);
                return Err(e);
            }
        }
        Ok(dir)
    })();
    let dir = match published {
        Ok(d) => d,
        Err(e) => {
            store.discard(&staged);
            return Err(e);
        }
    };
    // Its status lock goes with the staged files: a starter takes it.
    drop(staged);
    catch_up(store);
    Ok(dir)
}

/// Starts whatever should be running in this place's queues and is not:
/// there is no daemon, so every front catches the queues up after opening
/// the store (a killed watcher or a reboot leaves that to the next
/// command). Cheap when nothing waits.
pub fn catch_up(store: &Store) {
    let queues = store.queues();
    if queues.is_empty() {
        return;
    }
    let place = proc::place();
    let mine: Vec<QueueDir> = queues.into_iter().filter(|q| q.place == place).collect();
    // A job that ends without running (skipped) may decide another's fate
    // in another queue: go round again, a bounded number of times.
    for _ in 0..8 {
        let mut ended = false;
        for q in &mine {
            ended |= decide(store, q);
        }
        if !ended {
            break;
        }
    }
}

/// The hook every watcher calls once it has recorded its job's end.
pub fn after_end(store: &Store) {
    catch_up(store);
}

/// One decision for one queue (see the module's header). Returns whether a
/// job ended without running (so that others may now be decided).
fn decide(store: &Store, q: &QueueDir) -> bool {
    if !q.has_waiting() {
        return false;
    }
    let Ok(_lock) = q.lock() else { return false };
    let conf = if q.name.is_empty() { Conf { slots: u32::MAX, paused: false } } else { q.conf() };
    let boot = proc::boot_id();
    let mut taken: Vec<u32> = Vec::new();
    for (k, id) in q.slots() {
        let running = state_of(store, &id, &boot) == Some(State::Running);
        if running {
            taken.push(k);
        } else {
            q.free_slot(k);
        }
    }
    if conf.paused {
        return false;
    }
    let mut ended = false;
    for (entry, id) in q.waiting() {
        if taken.len() as u64 >= u64::from(conf.slots) {
            break;
        }
        let mut job = match store.get(&id) {
            Ok(Some(j)) => j,
            Ok(None) => {
                q.remove_waiting(&entry);
                continue;
            }
            Err(_) => continue,
        };
        if job.end.is_some() || !job.meta.is_queued() {
            q.remove_waiting(&entry);
            continue;
        }
        match deps(store, &job.meta.after, &boot) {
            Deps::Wait => continue,
            Deps::Skip(reason) => {
                if end_unrun(store, &mut job, State::Skipped, &reason).is_ok() {
                    q.remove_waiting(&entry);
                    ended = true;
                }
                continue;
            }
            Deps::Ready => {}
        }
        let Ok(Some(staged)) = store.open_queued(&job.dir) else { continue };
        let slot = (!q.name.is_empty()).then(|| (0..).find(|k| !taken.contains(k)).unwrap_or(0));
        if let Some(k) = slot {
            if q.take_slot(k, &id).is_err() {
                continue;
            }
        }
        match start(store, &job, staged, slot) {
            Ok(()) => taken.extend(slot),
            Err(e) => {
                if let Some(k) = slot {
                    q.free_slot(k);
                }
                let _ = end_unrun(store, &mut job, State::Failed, &format!("could not start: {e}"));
                ended = true;
            }
        }
        q.remove_waiting(&entry);
    }
    ended
}

/// The state of the job `id`; none if it is gone or damaged.
fn state_of(store: &Store, id: &str, boot: &str) -> Option<State> {
    let mut job = store.get(id).ok()??;
    Some(state::of(&mut job, boot))
}

enum Deps {
    Ready,
    Wait,
    Skip(String),
}

/// Whether the jobs named by `--after` let a job start: all `done`.
fn deps(store: &Store, after: &[String], boot: &str) -> Deps {
    let mut wait = false;
    for id in after {
        match store.get(id) {
            Ok(Some(mut j)) => match state::of(&mut j, boot) {
                State::Done => {}
                // Not known to have ended (`elsewhere`: seen from another
                // host): wait, as for one that runs.
                State::Running | State::Queued | State::Elsewhere => wait = true,
                s => {
                    let how = j.end.as_ref().map_or(s.as_str().to_string(), store::describe_end);
                    return Deps::Skip(format!("after {id}: {how}"));
                }
            },
            Ok(None) => return Deps::Skip(format!("after {id}: removed")),
            Err(d) => return Deps::Skip(format!("after {id}: damaged: {}", d.reason)),
        }
    }
    if wait {
        Deps::Wait
    } else {
        Deps::Ready
    }
}

/// Starts a queued job (the caller holds its queue's lock and has taken
/// `slot`): the launch hand-off, with the saved environment.
fn start(store: &Store, job: &Job, staged: Staged, slot: Option<u32>) -> Result<(), String> {
    let m = &job.meta;
    let mut env = store::read_env(&job.dir)?.unwrap_or_else(proc::environ);
    env.retain(|e| !e.as_encoded_bytes().starts_with(b"RUN_SLOT=") && !e.as_encoded_bytes().starts_with(b"RUN_QUEUE="));
    if let (Some(q), Some(k)) = (&m.queue, slot) {
        env.push(format!("RUN_QUEUE={q}").into());
        env.push(format!("RUN_SLOT={k}").into());
    }
    let argv: Vec<OsString> = m.argv.iter().map(OsString::from).collect();
    let program = match &m.program {
        Some(p) => PathBuf::from(p),
        None => argv
            .first()
            .and_then(|a| proc::which(a, var(&env, "PATH").as_deref().map(std::ffi::OsStr::new)))
            .ok_or_else(|| format!("{}: command not found", m.argv.first().map(String::as_str).unwrap_or("")))?,
    };
    let ntfy = m.notify_topic.as_ref().map(|_| ntfy::Config::from_vars(|name| var(&env, name)));
    let mut meta = m.clone();
    meta.started_at = chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, false);
    meta.boot_id = proc::boot_id();
    meta.slot = slot;
    let cwd = PathBuf::from(&m.cwd);
    // A log that holds its own header (queued by an older version) says
    // when it was queued; now when it starts (before the watcher notes
    // where the job's own output begins). Otherwise readers render that
    // line from meta.json (`Meta::header`).
    if meta.header_in_log() {
        let slot_text = match (&meta.queue, slot) {
            (Some(q), Some(k)) => format!(" in {q}, slot {k}"),
            _ => String::new(),
        };
        let line = format!("=== started: {}{slot_text}\n", meta.started_at);
        (&staged.log)
            .write_all(line.as_bytes())
            .map_err(|e| store::io_err("writing", &store::log_path(&job.dir), e))?;
    }
    let plan = watch::Plan {
        staged,
        meta,
        program,
        argv,
        ntfy,
        started: Instant::now(),
        env: Some(env),
        cwd: Some(cwd),
        on_end: Some(after_end),
    };
    let line = proc::detach(|hs| watch::run(store, plan, hs))?;
    match line.split_once(' ') {
        Some(("ok", _)) => Ok(()),
        Some(("err", e)) => Err(e.to_string()),
        _ => Err("the watcher ended before the job started".into()),
    }
}

/// The value of `name` in a saved environment.
fn var(env: &[OsString], name: &str) -> Option<String> {
    let prefix = format!("{name}=");
    env.iter().find_map(|e| e.to_str()?.strip_prefix(&prefix).map(str::to_string)).filter(|v| !v.is_empty())
}

/// Ends a queued job that never ran (skipped, stopped, or it could not
/// start) as every end is recorded (`watch::record`: footer, `status`
/// with the reason, the notification from a detached process of its own),
/// then removes its saved environment. The caller holds the queue's lock.
fn end_unrun(store: &Store, job: &mut Job, st: State, reason: &str) -> Result<End, String> {
    let staged = store.open_queued(&job.dir)?.ok_or_else(|| format!("{}: being started", job.id))?;
    let ntfy = job.meta.notify_topic.as_ref().map(|_| {
        let env = store::read_env(&job.dir).ok().flatten().unwrap_or_default();
        ntfy::Config::from_vars(|name| var(&env, name))
    });
    let ending = watch::Ending {
        state: st,
        outcome: Outcome::NotRun,
        output_from: 0,
        once: false,
        cap: None,
        on_end: None,
        reason: Some(reason.into()),
    };
    let recorded = watch::record(store, &job.dir, &staged.log, &staged.status, &mut job.meta, ntfy.as_ref(), ending)?;
    let end = recorded.ok_or_else(|| format!("{}: ended already", job.id))?;
    store::remove_env(&job.dir);
    job.end = Some(end.clone());
    Ok(end)
}

/// `job stop` of a queued job: it ends `stopped` without ever starting.
/// None if it started (or ended) meanwhile: the caller goes on as for a
/// running job.
pub fn stop_queued(store: &Store, job: &mut Job) -> Result<Option<End>, String> {
    let q = queue_of(store, &job.meta);
    let end = {
        let _lock = q.lock()?;
        job.reread()?;
        if job.end.is_some() || !job.meta.is_queued() {
            return Ok(None);
        }
        end_unrun(store, job, State::Stopped, "stopped while queued")?
    };
    catch_up(store);
    Ok(Some(end))
}

/// Sets a queue's width or pauses it (`job queue`), then starts what the
/// change lets start.
pub fn configure(store: &Store, name: &str, slots: Option<u32>, paused: Option<bool>) -> Result<Conf, String> {
    store.create()?;
    let q = store.queue(name, &proc::place());
    let conf = {
        let _lock = q.lock()?;
        let mut c = q.conf();
        if let Some(n) = slots {
            c.slots = n;
        }
        if let Some(p) = paused {
            c.paused = p;
        }
        q.set_conf(c)?;
        c
    };
    decide(store, &q);
    Ok(conf)
}

/// What `job queue` shows of one queue.
pub struct Summary {
    pub name: String,
    pub conf: Conf,
    /// The running jobs: (slot, id).
    pub running: Vec<(u32, String)>,
    /// The waiting jobs' ids, in order.
    pub waiting: Vec<String>,
}

/// This place's named queues, or the one named.
pub fn summaries(store: &Store, only: Option<&str>) -> Vec<Summary> {
    let place = proc::place();
    let boot = proc::boot_id();
    let mut qs: Vec<QueueDir> = store.queues().into_iter().filter(|q| q.place == place && !q.name.is_empty()).collect();
    if let Some(name) = only {
        qs.retain(|q| q.name == name);
        if qs.is_empty() {
            qs.push(store.queue(name, &place));
        }
    }
    qs.iter()
        .map(|q| Summary {
            name: q.name.clone(),
            conf: q.conf(),
            running: q
                .slots()
                .into_iter()
                .filter(|(_, id)| state_of(store, id, &boot) == Some(State::Running))
                .collect(),
            waiting: q
                .waiting()
                .into_iter()
                .map(|(_, id)| id)
                .filter(|id| state_of(store, id, &boot) == Some(State::Queued))
                .collect(),
        })
        .collect()
}
