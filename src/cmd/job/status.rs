//! `job status [ID]`: one job in full, or the store at a glance.

use crate::cli;
use crate::cmd::env;
use crate::cmd::out::{clean, human_bytes, Out};
use crate::cmd::resolve::{load_all, resolve};
use crate::cmd::view::{summary, view};
use crate::exit::{Exit, Res};
use crate::state;
use crate::store::{self, State, Store};

pub(super) fn status(store: &Store, a: cli::JobStatus) -> Res<Exit> {
    let Some(q) = a.id else { return system_status(store, a.json) };
    let mut job = resolve(store, &q)?;
    let st = state::of(&mut job, &crate::proc::boot_id());
    // A capped log's dropped range holds nothing.
    let dropped = job.dropped().map_or(0, |(s, e)| e - s);
    let log_size = std::fs::symlink_metadata(job.log()).map(|m| m.len()).unwrap_or(0).saturating_sub(dropped);
    let mut out = Out::new();
    if a.json {
        // The `runs --json` object, in its order, then `log_size` and `log_dropped`.
        #[derive(serde::Serialize)]
        struct WithSize<'a> {
            #[serde(flatten)]
            view: crate::cmd::view::View<'a>,
            log_size: u64,
            log_dropped: u64,
        }
        out.json(&WithSize { view: view(&job, st), log_size, log_dropped: dropped })?;
        out.flush()?;
        return Ok(Exit::Ok);
    }
    let v = view(&job, st);
    let mut rows: Vec<(&str, String)> = vec![
        ("id", v.id.to_string()),
        ("name", clean(v.name)),
        ("command", clean(v.command)),
        ("state", job.end.as_ref().map_or(st.as_str().to_string(), store::describe_end)),
        ("started", v.started_at.to_string()),
    ];
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
        rows.push(("queue", v.slot.map_or(q.to_string(), |k| format!("{q}, slot {k}"))));
    }
    if !v.after.is_empty() {
        rows.push(("after", v.after.join(", ")));
    }
    if let Some(q) = v.queued_at {
        rows.push(("queued", q.to_string()));
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
