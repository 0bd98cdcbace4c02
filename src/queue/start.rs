//! Starting a queued job (the launch hand-off, with its saved
//! environment) and ending one that never ran (skipped, stopped, or it
//! could not start). The caller holds the queue's lock in both.

use super::after_end;
use crate::store::{self, End, Job, Outcome, Staged, State, Store};
use crate::{ntfy, proc, watch};
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

/// Starts a queued job (the caller holds its queue's lock and has taken
/// `slot`): the launch hand-off, with the saved environment.
pub(super) fn start(store: &Store, job: &Job, staged: Staged, slot: Option<u32>) -> Result<(), String> {
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
        slot: None,
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
pub(super) fn end_unrun(store: &Store, job: &mut Job, st: State, reason: &str) -> Result<End, String> {
    let staged = store.open_queued(&job.dir)?.ok_or_else(|| format!("{}: being started", job.id))?;
    // Under the reserved status's lock: a starter that answered nothing
    // (killed, or its watcher killed after the job started) may have
    // published it running since it was read. Never record over that.
    job.reread()?;
    if job.end.is_some() || !job.meta.is_queued() {
        return Err(format!("{}: started or ended meanwhile", job.id));
    }
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
