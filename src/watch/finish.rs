//! Recording a job's end: the one path every end takes, whoever saw it:
//! the watcher of a local job, the batch step of a Slurm job, and the
//! queue for a job that never ran (skipped, stopped while queued, or it
//! could not start). In order: the log's footer; `status`, whose rename is
//! the moment the end is visible and all a reader needs; what the end lets
//! start (the queue's next job); the syncs; `ended_at` and what the job
//! used in meta.json (a copy of what `status` says, written after it so
//! that it costs the end's visibility nothing); the cap's last check; and
//! only then the notification, whose outcome goes in `notified`: the
//! record of a job's end never waits on the network. A job seen ended may
//! be removed meanwhile, and removal copes with files that appear in a
//! directory it is removing.

use super::message::message;
use crate::store::{self, Cap, End, Meta, Outcome, State, Store, Usage};
use crate::{ntfy, proc};
use std::fs::File;
use std::path::Path;

/// How a job ended, as its watcher, its Slurm step or its queue saw it,
/// and what is left to do once the end is recorded.
pub struct Ending {
    pub state: State,
    pub outcome: Outcome,
    /// Where the job's own output starts in the log: 0, unless the log
    /// holds its own header (made by an older version).
    pub output_from: u64,
    /// Publish `status` only if none is there yet (a Slurm job's end may
    /// have been recorded from Slurm's words).
    pub once: bool,
    pub cap: Option<Cap>,
    /// Called once the end is recorded: starts what the freed slot (or the
    /// end itself, for `--after`) lets start. A function passed in, so that
    /// the queue, which starts watchers, sits above this module.
    pub on_end: Option<fn(&Store)>,
    /// Why a job that never ran ended so.
    pub reason: Option<String>,
}

/// Records how the job ended and what it used, then notifies: the last
/// act of the watcher and of the Slurm step. Returns the process's exit
/// status; the troubles go into the job's log.
pub fn finish(
    store: &Store,
    dir: &Path,
    log: &File,
    status: &File,
    meta: &mut Meta,
    ntfy: Option<&ntfy::Config>,
    ending: Ending,
) -> i32 {
    let note = |msg: &str| {
        let _ = store::append_note(log, &store::log_path(dir), msg);
    };
    match record(store, dir, log, status, meta, ntfy, ending) {
        Ok(Some(_)) => 0,
        Ok(None) => {
            note("an end was recorded already (from Slurm's words): kept");
            0
        }
        Err(e) => {
            note(&format!("could not record the end: {e}"));
            1
        }
    }
}

/// Records a job's end, every step of it (see the module's header).
/// Returns the end recorded; none if one was recorded already and kept
/// (`once`); an error if it could not be recorded (then nothing follows).
///
/// A job that never left its queue (`Meta::is_queued`) has no time of its
/// own (its footer says it ran 0 s), keeps its meta.json as it was queued,
/// and is notified from a detached process of its own: whoever ends it
/// holds its queue's lock and may be any front. A few such processes send
/// at once, the others wait their turn (a chain skipped whole).
pub fn record(
    store: &Store,
    dir: &Path,
    log: &File,
    status: &File,
    meta: &mut Meta,
    ntfy: Option<&ntfy::Config>,
    ending: Ending,
) -> Result<Option<End>, String> {
    let Ending { state, outcome, output_from, once, mut cap, on_end, reason } = ending;
    let queued = meta.is_queued();
    let end = End { state, outcome, ended_at: chrono::Local::now().fixed_offset(), reason };
    let secs = if queued { 0.0 } else { (end.ended_at - meta.started()).num_milliseconds() as f64 / 1000.0 };
    // Every process of the job that has ended is reaped by now: wait4
    // costs microseconds, so the footer can carry what they used.
    // A job that never ran used nothing (a Slurm step's own helpers are
    // not the job).
    let usage = (outcome != Outcome::NotRun).then(proc::children_usage).flatten().map(|u| Usage {
        max_rss_kib: u.max_rss_kib,
        cpu_user_s: u.user_s,
        cpu_sys_s: u.sys_s,
    });
    let log_bytes = log.metadata().ok().map(|m| m.len().saturating_sub(output_from));
    let _ = store::write_footer(log, &store::log_path(dir), &end, secs, usage.as_ref());
    let recorded = if once {
        store::record_end_once(dir, status, &end)?
    } else {
        store::record_end(dir, status, &end).map(|()| true)?
    };
    if !recorded {
        return Ok(None);
    }
    // What the end lets start (the queue's next job) before the syncs and
    // meta.json, which a start does not need.
    if let Some(on_end) = on_end {
        on_end(store);
    }
    if !once {
        store::sync_end(dir, status);
    }
    if !queued {
        meta.ended_at = Some(end.ended_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, false));
        meta.max_rss_kib = usage.map(|u| u.max_rss_kib);
        meta.cpu_user_s = usage.map(|u| u.cpu_user_s);
        meta.cpu_sys_s = usage.map(|u| u.cpu_sys_s);
        meta.log_bytes = log_bytes;
        let _ = store::write_meta(dir, meta);
    }
    // What the job wrote in its last tick.
    if let Some(c) = cap.as_mut() {
        let _ = c.check(log, dir);
    }
    let (Some(topic), Some(cfg)) = (&meta.notify_topic, ntfy) else { return Ok(Some(end)) };
    if queued {
        let (m, d, e, c, t) = (meta.clone(), dir.to_path_buf(), end.clone(), cfg.clone(), topic.clone());
        let s = store.clone();
        // The sender keeps the log open and locked until it has recorded
        // the outcome: what tells a reader that the notification is still
        // on its way (`Job::notifying`), waiting for a slot included.
        let _ = log.lock();
        let keep = std::os::fd::AsRawFd::as_raw_fd(log);
        let _ = proc::detach(move |hs| {
            proc::close_fds_except(&[hs.fd(), keep]);
            hs.send("ok");
            // A skipped chain's many senders take turns (`store::sends`).
            let _slot = s.send_slot();
            let _ = store::record_notified(&d, &publish(&c, &message(&m, &t, &e, 0.0, &[])));
            0
        });
        return Ok(Some(end));
    }
    // Only now, with the end recorded: whatever the log is, reading its
    // tail (bounded, from the end) delays nothing that matters.
    let tail = if state != State::Done {
        let hole = cap.as_ref().and_then(Cap::range);
        let output = (output_from, output_from + log_bytes.unwrap_or(u64::MAX - output_from));
        store::tail_lines_after(&store::log_path(dir), 10, 64 * 1024, output, hole).unwrap_or_default()
    } else {
        Vec::new()
    };
    let short = meta.notify_min_s.filter(|&min| secs < min as f64);
    let outcome = match short {
        Some(min) => {
            format!("skipped: ran {}, under {}\n", store::human_duration(secs), store::human_duration(min as f64))
        }
        None => publish(cfg, &message(meta, topic, &end, secs, &tail)),
    };
    if let Err(e) = store::record_notified(dir, &outcome) {
        let _ = store::append_note(log, &store::log_path(dir), &format!("could not record the notification: {e}"));
    }
    Ok(Some(end))
}

/// Publishes the message; returns the outcome as `notified` keeps it.
fn publish(cfg: &ntfy::Config, msg: &ntfy::Message) -> String {
    match ntfy::publish(cfg, msg) {
        Ok(()) => "sent\n".to_string(),
        Err(e) => format!("failed: {e}\n"),
    }
}
