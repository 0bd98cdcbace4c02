//! `job status [ID]`: one job in full, or the store at a glance.

use crate::cli;
use crate::cmd::env;
use crate::cmd::out::{clean, human_bytes, Out};
use crate::cmd::resolve::{load_all, resolve_any, Found};
use crate::cmd::view::{queue_notes, queue_places, summary, view, LINGERING};
use crate::exit::{Exit, Res};
use crate::state;
use crate::store::{self, State, Store};

pub(super) fn status(store: &Store, a: cli::JobStatus) -> Res<Exit> {
    let Some(q) = a.id else { return system_status(store, a.json) };
    let mut job = match resolve_any(store, &q)? {
        Found::Job(job) => *job,
        Found::Legacy(old) => return legacy_status(&old, a.json),
    };
    let st = state::of(&mut job, &crate::proc::boot_id());
    // A capped log's dropped range holds nothing.
    let dropped = job.dropped().map_or(0, |(s, e)| e - s);
    let log_size = std::fs::symlink_metadata(job.log()).map(|m| m.len()).unwrap_or(0).saturating_sub(dropped);
    let waits = Waits::of(store, &job, st)?;
    let mut out = Out::new();
    if a.json {
        // The `runs --json` object, in its order, then `log_size`,
        // `log_dropped` and, while queued in a named queue, its place.
        #[derive(serde::Serialize)]
        struct WithSize<'a> {
            #[serde(flatten)]
            view: crate::cmd::view::View<'a>,
            log_size: u64,
            log_dropped: u64,
            queue_place: Option<usize>,
            queue_paused: Option<bool>,
        }
        let (queue_place, queue_paused) = (waits.place, waits.paused);
        out.json(&WithSize { view: view(&job, st), log_size, log_dropped: dropped, queue_place, queue_paused })?;
        out.flush()?;
        return Ok(Exit::Ok);
    }
    let v = view(&job, st);
    let state = match &job.end {
        Some(e) => store::describe_end(e) + if v.lingering { LINGERING } else { "" },
        None if waits.note.is_empty() => st.as_str().to_string(),
        None => format!("{} {}", st.as_str(), clean(&waits.note)),
    };
    let mut rows: Vec<(&str, String)> =
        vec![("id", v.id.to_string()), ("name", clean(v.name)), ("command", clean(v.command)), ("state", state)];
    // A job that has not started (or never will) has no start time: when
    // it was queued (or submitted to Slurm) instead.
    let never = st == State::Queued || job.end.as_ref().is_some_and(|e| e.outcome == store::Outcome::NotRun);
    if let Some(q) = v.queued_at.or(never.then_some(v.started_at)) {
        rows.push(("queued", q.to_string()));
    }
    if !never {
        rows.push(("started", v.started_at.to_string()));
    }
    if let Some(e) = &v.ended_at {
        rows.push(("ended", e.clone()));
    }
    if let Some(d) = v.duration_s {
        rows.push(("duration", store::human_duration(d)));
    }
    if v.backend == "slurm" {
        rows.push(("slurm", v.slurm_job_id.map_or("- (being submitted)".into(), |i| format!("job {i}"))));
        if let Some(n) = v.node {
            rows.push(("node", clean(n)));
        }
        if let Some(r) = &v.reason {
            rows.push(("reason", clean(r)));
        }
    } else {
        rows.push(("pid", v.pid.map_or("-".into(), |p| p.to_string())));
    }
    rows.push(("cwd", clean(v.cwd)));
    rows.push(("project", clean(v.project)));
    rows.push(("host", clean(v.host)));
    rows.push(("log", format!("{} ({})", v.log, human_bytes(log_size))));
    if let Some(max) = v.log_max {
        rows.push(("log max", format!("{} ({} dropped)", human_bytes(max), human_bytes(dropped))));
    }
    if let Some(u) = job.meta.usage() {
        rows.push(("memory", format!("{} peak (the largest single process)", human_bytes(u.max_rss_kib * 1024))));
        let cpu = store::human_cpu(u.cpu_user_s + u.cpu_sys_s);
        rows.push((
            "cpu",
            format!("{cpu} (user {}, system {})", store::human_cpu(u.cpu_user_s), store::human_cpu(u.cpu_sys_s)),
        ));
    }
    if let Some(q) = v.queue {
        let paused = match waits.paused {
            Some(true) => format!(", paused (job queue {q} --resume starts it again)"),
            _ => String::new(),
        };
        rows.push(("queue", v.slot.map_or(q.to_string(), |k| format!("{q}, slot {k}")) + &paused));
    }
    if !v.after.is_empty() {
        rows.push(("after", v.after.join(", ")));
    }
    if let Some(t) = v.timeout_s {
        rows.push(("timeout", store::human_duration(t as f64)));
    }
    if let Some(k) = v.key {
        rows.push(("key", clean(k)));
    }
    if let Some(c) = v.context {
        rows.push(("context", clean(c.get())));
    }
    if let Some(n) = &v.notify {
        let e = n.error.as_ref().map(|e| format!(": {}", clean(e))).unwrap_or_default();
        rows.push(("notify", format!("{} {}{e}", n.topic, n.state)));
    }
    for (k, val) in rows {
        out.line(&format!("{k:>9}  {val}"))?;
    }
    out.flush()?;
    Ok(Exit::Ok)
}

/// A job of the old run scripts: what its files say (no exit code was
/// ever recorded). Its JSON has the `runs --json` fields it can fill.
fn legacy_status(l: &store::Legacy, json: bool) -> Res<Exit> {
    let running = state::legacy_running(l);
    let state = if running { "running" } else { "ended, exit code unknown" };
    let log = l.log.as_ref().map(|p| p.display().to_string());
    let mut out = Out::new();
    if json {
        // In the order of the `runs --json` object.
        #[derive(serde::Serialize)]
        struct Old<'a> {
            id: &'a str,
            name: &'a str,
            state: &'a str,
            pid: Option<i32>,
            command: &'a str,
            started_at: String,
            log: Option<String>,
            backend: &'a str,
        }
        out.json(&Old {
            id: &l.id,
            name: &l.name,
            state: if running { "running" } else { "ended" },
            pid: l.pid,
            command: &l.command,
            started_at: l.started.to_rfc3339(),
            log,
            backend: "old run script",
        })?;
    } else {
        let rows = [
            ("id", clean(&l.id)),
            ("name", clean(&l.name)),
            ("command", clean(&l.command)),
            ("state", format!("{state} (a job of the old run scripts)")),
            ("started", l.started.to_rfc3339()),
            ("pid", l.pid.map_or("-".into(), |p| p.to_string())),
            ("log", log.map_or("- (none)".into(), |p| clean(&p))),
        ];
        for (k, val) in rows {
            out.line(&format!("{k:>9}  {val}"))?;
        }
    }
    out.flush()?;
    Ok(Exit::Ok)
}

/// What a queued job waits for: its place in its queue and the jobs it
/// is after not done yet (as `runs` shows them), and whether its queue
/// is paused. Nothing for any other job.
#[derive(Default)]
struct Waits {
    note: String,
    place: Option<usize>,
    paused: Option<bool>,
}

impl Waits {
    fn of(store: &Store, job: &store::Job, st: State) -> Res<Waits> {
        if st != State::Queued || job.is_slurm() {
            return Ok(Waits::default());
        }
        let all = load_all(store, "job")?;
        let paused = job.meta.queue.as_ref().map(|_| crate::queue::queue_of(store, &job.meta).conf().paused);
        let note = queue_notes(&all).remove(&job.id).unwrap_or_default();
        let note = match (paused, note.is_empty()) {
            (Some(true), true) => "paused".to_string(),
            (Some(true), false) => format!("{note}, paused"),
            _ => note,
        };
        Ok(Waits { note, place: queue_places(&all).remove(&job.id), paused })
    }
}

fn system_status(store: &Store, json: bool) -> Res<Exit> {
    let jobs = load_all(store, "job")?;
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for st in State::ALL {
        let n = jobs.iter().filter(|(_, s)| *s == st).count();
        counts.push((st.as_str(), n));
    }
    let disk = store.disk_usage();
    let topic = env("NTFY_TOPIC");
    let mut out = Out::new();
    if json {
        let running: Vec<_> = jobs.iter().filter(|(_, s)| s.is_active()).map(|(j, s)| view(j, *s)).collect();
        let by_state: serde_json::Map<String, serde_json::Value> =
            counts.iter().map(|(k, n)| (k.to_string(), (*n).into())).collect();
        let v = serde_json::json!({
            "store": store.root().display().to_string(),
            "jobs": jobs.len(),
            "by_state": by_state,
            "disk_bytes": disk,
            "running": running,
            "ntfy_topic": topic,
            "ntfy_server": env("NTFY_SERVER").unwrap_or_else(|| "https://ntfy.sh".into()),
        });
        out.json(&v)?;
        out.flush()?;
        return Ok(Exit::Ok);
    }
    out.line(&format!("store    {} ({})", store.root().display(), human_bytes(disk)))?;
    let parts: Vec<String> = counts.iter().filter(|(_, n)| *n > 0).map(|(k, n)| format!("{n} {k}")).collect();
    out.line(&format!(
        "jobs     {}{}",
        jobs.len(),
        if parts.is_empty() { String::new() } else { format!(": {}", parts.join(", ")) }
    ))?;
    out.line(&match &topic {
        Some(t) => format!(
            "ntfy     NTFY_TOPIC={} ({})",
            clean(t),
            env("NTFY_SERVER").unwrap_or_else(|| "https://ntfy.sh".into())
        ),
        None => "ntfy     NTFY_TOPIC is not set (run -n and job run --notify need a topic)".into(),
    })?;
    let running: Vec<_> = jobs.iter().filter(|(_, s)| s.is_active()).collect();
    if !running.is_empty() {
        out.line("running")?;
        for (j, s) in running {
            let line = summary(&out, j, *s);
            out.painted(&format!("  {line}"))?;
        }
    }
    out.flush()?;
    Ok(Exit::Ok)
}
