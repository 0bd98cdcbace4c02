//! `job`: the fuller manager over the same store: run, list, status, logs,
//! stop, wait, retry, clean.

use super::follow::{follow_many, show_log, tail_offset, wait_all};
use super::out::{clean, human_bytes, warn, Out};
use super::resolve::{load_all, resolve};
use super::runrm::{awaited, sweep_leftovers};
use super::view::{queue_notes, summary, summary_noted, view};
use super::{env, exit_for, parse, usage};
use crate::cli::{self, JobCmd};
use crate::launch::{self, Launched, Spec};
use crate::state;
use crate::store::{self, Job, State, Store};
use crate::{proc, queue, watch, Exit, Fail, Res};
use std::ffi::OsString;
use std::time::Duration;

pub fn main(args: Vec<OsString>) -> Res<Exit> {
    let a: cli::Job = parse(args)?;
    let store = super::store()?;
    match a.cmd {
        JobCmd::Run(r) => run(&store, r),
        JobCmd::List(l) => list(&store, l),
        JobCmd::Status(s) => status(&store, s),
        JobCmd::Logs(l) => logs(&store, l),
        JobCmd::Stop(s) => stop(&store, s),
        JobCmd::Wait(w) => wait(&store, &w.ids, w.timeout),
        JobCmd::Retry(r) => retry(&store, r),
        JobCmd::Clean(c) => clean_jobs(&store, c),
        JobCmd::Queue(q) => super::queues::main(&store, q),
    }
}

fn run(store: &Store, a: cli::JobRun) -> Res<Exit> {
    let mut cmd = a.cmd.join(" ");
    let mut topic = a.topic.clone();
    let notify = a.notify.is_some() || a.topic.is_some();
    if let Some(Some(t)) = &a.notify {
        if cmd.is_empty() {
            cmd = t.clone(); // `job run --notify "CMD"`: the value was the command
        } else if topic.is_none() {
            topic = Some(cli::parse_topic(t).map_err(|e| usage(format!("--notify: {e}")))?);
        }
    }
    if cmd.trim().is_empty() {
        return Err(usage("job run needs a command: job run \"CMD\""));
    }
    if a.follow && !a.wait {
        return Err(usage("--follow needs --wait: job run \"CMD\" --wait --follow"));
    }
    let slurm = super::slurm::spec(&a.slurm)?;
    launch::check_shell_command(&cmd, std::env::var_os("PATH").as_deref())?;
    if notify && topic.is_none() {
        let t = env("NTFY_TOPIC")
            .ok_or_else(|| usage("--notify needs a topic: set NTFY_TOPIC or pass one (--notify TOPIC)"))?;
        topic = Some(cli::parse_topic(&t).map_err(|e| usage(format!("NTFY_TOPIC: {e}")))?);
    }
    let name = a.name.unwrap_or_else(|| launch::shell_name(&cmd));
    if a.min_duration.is_some() && topic.is_none() {
        return Err(usage("--min-duration needs --notify or --topic: job run --notify --min-duration 2m \"CMD\""));
    }
    let min_duration = super::min_duration(a.min_duration)?;
    let spec = Spec {
        program: launch::shell()?,
        argv: vec!["sh".into(), "-c".into(), cmd.clone().into()],
        command: cmd.clone(),
        name,
        cwd: super::current_dir()?,
        // `--timeout 0` is no timeout, as with GNU timeout.
        timeout: a.timeout.filter(|t| !t.is_zero()),
        topic,
        min_duration,
        context: a.context,
        key: a.key.clone(),
        log_max: super::log_max(a.log_max)?,
        queue: a.queue,
        after: super::resolve::after_ids(store, a.after)?,
        slurm,
    };
    let cfg = super::ntfy_config("job", spec.topic.as_ref());
    let id = match launch::start(store, spec, cfg)? {
        Launched::Started { id, .. } | Launched::Queued { id, .. } => id,
        Launched::Submitted { id, slurm_id, .. } => {
            warn(&format!("job: {id}: submitted to Slurm as job {slurm_id}"));
            id
        }
        Launched::Existing(id) => {
            note_existing(store, &id, a.key.as_deref().unwrap_or_default(), &cmd);
            id
        }
    };
    let mut out = Out::new();
    out.line(&id)?;
    out.flush()?;
    if !a.wait {
        return Ok(Exit::Ok);
    }
    if a.follow {
        let mut job = resolve(store, &id)?;
        let st = show_log(&mut job, 0, true, &mut out)?;
        return Ok(exit_for(st));
    }
    wait(store, &[id], None)
}

/// `--key` found a job: say on stderr that nothing new started, and
/// whether that job's command is another one.
fn note_existing(store: &Store, id: &str, key: &str, cmd: &str) {
    let differs = match store.get(id) {
        Ok(Some(job)) if job.meta.command != cmd => format!("; its command differs: {}", clean(&job.meta.command)),
        _ => String::new(),
    };
    warn(&format!("job: key '{}' is held by {}: no new job was started{differs}", clean(key), clean(id)));
}

fn started_id(l: Launched) -> String {
    match l {
        Launched::Started { id, .. } | Launched::Queued { id, .. } | Launched::Existing(id) => id,
        Launched::Submitted { id, slurm_id, .. } => {
            warn(&format!("job: {id}: submitted to Slurm as job {slurm_id}"));
            id
        }
    }
}

fn list(store: &Store, a: cli::JobList) -> Res<Exit> {
    let project = launch::project_of(&super::current_dir()?).to_string_lossy().into_owned();
    let all = load_all(store, "job")?;
    let notes = queue_notes(&all);
    let jobs: Vec<(Job, State)> = all
        .into_iter()
        .filter(|(j, _)| a.all || j.meta.project == project || j.meta.cwd == project)
        .filter(|(_, s)| a.status.is_empty() || a.status.contains(s))
        .collect();
    let jobs = super::last(jobs, a.last);
    let mut out = Out::new();
    if a.json {
        let views: Vec<_> = jobs.iter().map(|(j, s)| view(j, *s)).collect();
        out.json(&views)?;
    } else if jobs.is_empty() {
        let scope = if a.all { String::new() } else { format!(" for {project} (--all for every project)") };
        warn(&format!("no jobs{scope}"));
    } else {
        for (j, s) in &jobs {
            let line = summary_noted(&out, j, *s, notes.get(&j.id).map_or("", String::as_str));
            out.painted(&line)?;
        }
    }
    out.flush()?;
    Ok(Exit::Ok)
}

fn status(store: &Store, a: cli::JobStatus) -> Res<Exit> {
    let Some(q) = a.id else { return system_status(store, a.json) };
    let mut job = resolve(store, &q)?;
    let st = state::of(&mut job, &state::boot_id());
    // A capped log's dropped range holds nothing.
    let dropped = job.dropped().map_or(0, |(s, e)| e - s);
    let log_size = std::fs::symlink_metadata(job.log()).map(|m| m.len()).unwrap_or(0).saturating_sub(dropped);
    let mut out = Out::new();
    if a.json {
        // The `runs --json` object, in its order, then `log_size` and `log_dropped`.
        #[derive(serde::Serialize)]
        struct WithSize<'a> {
            #[serde(flatten)]
            view: super::view::View<'a>,
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

fn logs(store: &Store, a: cli::JobLogs) -> Res<Exit> {
    if a.ids.len() > 1 {
        let mut jobs = Vec::new();
        for q in &a.ids {
            jobs.push(resolve(store, q)?);
        }
        let states = follow_many(&mut jobs, a.tail, a.follow, &mut Out::new())?;
        let worst = states.iter().copied().find(|s| *s != State::Done).unwrap_or(State::Done);
        return Ok(if a.follow { exit_for(worst) } else { Exit::Ok });
    }
    let mut job = resolve(store, &a.ids[0])?;
    let from = match a.tail {
        Some(n) => tail_offset(&job.log(), n, job.dropped())?,
        None => 0,
    };
    let mut out = Out::new();
    let st = show_log(&mut job, from, a.follow, &mut out)?;
    Ok(if a.follow { exit_for(st) } else { Exit::Ok })
}

fn stop(store: &Store, a: cli::JobStop) -> Res<Exit> {
    let boot = state::boot_id();
    let mut jobs = Vec::new();
    for q in &a.ids {
        jobs.push(resolve(store, q)?);
    }
    let mut out = Out::new();
    let mut code = Exit::Ok;
    for mut job in jobs {
        let mut st = state::of(&mut job, &boot);
        if st == State::Queued && !job.is_slurm() {
            match queue::stop_queued(store, &mut job)? {
                Some(end) => {
                    out.line(&format!("{}: {}", job.id, store::describe_end(&end)))?;
                    continue;
                }
                None => st = state::of(&mut job, &boot), // it started meanwhile
            }
        }
        let st = state::of(&mut job, &boot);
        if st == State::Elsewhere {
            warn(&format!("job: {}: {}; stop it there", job.id, elsewhere(&job)));
            code = Exit::Error;
            continue;
        }
        // With no end recorded and no watcher to ask, the stop would rest on
        // the entry: an altered one is refused, not guessed at (even when it
        // makes the job look lost).
        if !job.is_slurm() && job.end.is_none() && state::watcher_gone(&job, &boot) {
            if let Err(e) = pid_file_agrees(&job) {
                warn(&format!("job: {}: not stopping it: {e}", job.id));
                code = Exit::Error;
                continue;
            }
        }
        if st.ended() {
            let how = job.end.as_ref().map_or(st.as_str().to_string(), store::describe_end);
            out.line(&format!("{}: already ended: {how}", job.id))?;
            continue;
        }
        if job.is_slurm() {
            match super::slurm::stop(&mut job, a.force, &boot) {
                Ok(how) => out.line(&format!("{}: {how}", job.id))?,
                Err(e) => {
                    warn(&format!("job: {}: {e}", job.id));
                    code = Exit::Error;
                }
            }
            continue;
        }
        let word = if a.force { "kill" } else { "term" };
        store::write_atomic(&job.dir, "stop", format!("{word}\n").as_bytes())?;
        let m = &job.meta;
        let asked = matches!((m.watcher_pid, m.watcher_start),
            (Some(pid), Some(start)) if proc::signal_leader(proc::Proc { pid, start }, proc::SIGUSR1));
        if !asked {
            // The watcher is gone (killed): end the job's tree ourselves.
            // Its end cannot be recorded, so it will show as lost.
            let sig = if a.force { proc::SIGKILL } else { proc::SIGTERM };
            match stop_orphan(&job, sig) {
                Ok(()) => {
                    out.line(&format!("{}: stopped (its watcher was gone, so no end was recorded: lost)", job.id))?;
                }
                Err(e) => {
                    warn(&format!("job: {}: not stopping it: {e}", job.id));
                    code = Exit::Error;
                }
            }
            continue;
        }
        let mut one = [job];
        if wait_all(&mut one, Some(watch::GRACE + Duration::from_secs(10))) {
            let [mut job] = one;
            let st = state::of(&mut job, &boot);
            let how = job.end.as_ref().map_or(st.as_str().to_string(), store::describe_end);
            out.line(&format!("{}: {how}", job.id))?;
        } else {
            warn(&format!("job: {}: still running after the stop request", one[0].id));
            code = Exit::Error;
        }
    }
    out.flush()?;
    Ok(code)
}

/// Stops a job whose watcher is gone, once its own process is proven to be
/// the one meta.json records (pid, start time, this user's, leading its own
/// session; the boot id was checked when it was judged running): `sig` to
/// it, its session and every process below them, listed before the first
/// signal; what is left after the grace gets SIGKILL. Nothing is guessed:
/// an entry whose `pid` file disagrees with meta.json, or a process that is
/// not proven, is refused.
fn stop_orphan(job: &Job, sig: i32) -> Result<(), String> {
    let m = &job.meta;
    let (Some(pid), Some(start)) = (m.pid, m.pid_start) else {
        return Err("meta.json records no pid and start time".into());
    };
    pid_file_agrees(job)?;
    let tree = proc::job_tree(proc::Proc { pid, start })?;
    for &p in &tree {
        proc::signal_proven(p, sig, |_| true);
    }
    let gone = |d: Duration| {
        let until = std::time::Instant::now() + d;
        loop {
            let left = proc::tree_left(&tree, start);
            if left.is_empty() || std::time::Instant::now() > until {
                return left;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    let left = if sig == proc::SIGKILL { proc::tree_left(&tree, start) } else { gone(watch::GRACE) };
    for &p in &left {
        proc::signal_proven(p, proc::SIGKILL, |_| true);
    }
    gone(Duration::from_secs(2));
    Ok(())
}

/// The `pid` file, if there is one, names the pid meta.json records.
fn pid_file_agrees(job: &Job) -> Result<(), String> {
    let recorded = job.meta.pid.map(|p| p.to_string()).unwrap_or_else(|| "none".into());
    match job.pid_file_text() {
        Some(f) if f != recorded => {
            Err(format!("its pid file says {f} but meta.json says {recorded}: the entry was altered"))
        }
        _ => Ok(()),
    }
}

fn wait(store: &Store, ids: &[String], timeout: Option<Duration>) -> Res<Exit> {
    let mut jobs = Vec::new();
    for q in ids {
        jobs.push(resolve(store, q)?);
    }
    if !wait_all(&mut jobs, timeout) {
        let boot = state::boot_id();
        let running: Vec<String> =
            jobs.iter_mut().filter_map(|j| (!state::of(j, &boot).ended()).then(|| j.id.clone())).collect();
        warn(&format!("job: timed out waiting for {} (still running)", running.join(", ")));
        return Ok(Exit::WaitTimeout);
    }
    let boot = state::boot_id();
    let mut code = Exit::Ok;
    for job in &mut jobs {
        let st = state::of(job, &boot);
        if st != State::Done {
            let how = job.end.as_ref().map_or(st.as_str().to_string(), store::describe_end);
            warn(&format!("job: {}: {how}", job.id));
            code = Exit::Error;
        }
    }
    Ok(code)
}

fn retry(store: &Store, a: cli::JobRetry) -> Res<Exit> {
    let old = resolve(store, &a.id)?;
    let m = &old.meta;
    // Byte for byte what was executed, where it was.
    let cwd = m.exec_cwd();
    std::env::set_current_dir(&cwd).map_err(|e| Fail::from(store::io_err("entering", &cwd, e)))?;
    let argv: Vec<OsString> = m.exec_argv();
    let first = argv.first().ok_or_else(|| format!("job {}: no command recorded", old.id))?;
    let program = proc::which(first, std::env::var_os("PATH").as_deref()).ok_or_else(|| launch::not_found(first))?;
    let spec = Spec {
        program,
        argv,
        command: m.command.clone(),
        name: m.name.clone(),
        cwd,
        timeout: m.timeout_s.map(Duration::from_secs),
        topic: m.notify_topic.clone(),
        min_duration: m.notify_min_s.map(Duration::from_secs),
        context: m.context.clone(),
        key: None,
        log_max: m.log_max,
        queue: m.queue.clone(),
        after: Vec::new(),
        slurm: m.slurm.clone(),
    };
    let cfg = super::ntfy_config("job", spec.topic.as_ref());
    let id = started_id(launch::start(store, spec, cfg)?);
    let mut out = Out::new();
    out.line(&id)?;
    out.flush()?;
    if a.wait {
        return wait(store, &[id], None);
    }
    Ok(Exit::Ok)
}

fn clean_jobs(store: &Store, a: cli::JobClean) -> Res<Exit> {
    let cutoff = a.older_than.unwrap_or(Duration::from_secs(7 * 86_400));
    let now = chrono::Local::now().fixed_offset();
    let mut out = Out::new();
    let (mut count, mut freed, mut failed, mut kept) = (0, 0u64, false, 0);
    let all = load_all(store, "job")?;
    let awaited = awaited(&all);
    for (job, st) in all {
        if matches!(st, State::Running | State::Queued) || awaited.contains(&job.id) {
            continue;
        }
        if st == State::Elsewhere && !a.force {
            kept += 1;
            continue;
        }
        if !a.all {
            let ended = match &job.end {
                Some(e) => e.ended_at,
                None => last_sign_of_life(&job),
            };
            let age = (now - ended).to_std().unwrap_or(Duration::ZERO);
            if age < cutoff {
                continue;
            }
        }
        if a.dry_run {
            out.line(&format!("would remove {}", job.id))?;
            freed += store::disk_usage(&job.dir);
            count += 1;
            continue;
        }
        match store.remove_job(&job) {
            Ok(n) => {
                if let Some(key) = &job.meta.key {
                    store.release_key(key, &job.id);
                }
                out.line(&format!("removed {}", clean(&job.id)))?;
                freed += n;
                count += 1;
            }
            Err(e) => {
                warn(&format!("job: {e}"));
                failed = true;
            }
        }
    }
    freed += sweep_leftovers(store, a.dry_run, &mut out)?;
    keep_note("job", kept);
    let verb = if a.dry_run { "would remove" } else { "removed" };
    if count > 0 || !failed {
        out.line(&format!("{verb} {count} job{}, {} freed", if count == 1 { "" } else { "s" }, human_bytes(freed)))?;
    }
    out.flush()?;
    Ok(if failed { Exit::Error } else { Exit::Ok })
}

/// Why a job in state `elsewhere` cannot be judged from here.
pub fn elsewhere(job: &Job) -> String {
    format!("no end recorded, and it ran on {} (another host or pid namespace), where it may still run", job.meta.host)
}

/// The note for jobs left alone because they ran elsewhere.
pub fn keep_note(front: &str, kept: usize) {
    if kept > 0 {
        let s = if kept == 1 { "" } else { "s" };
        warn(&format!("{front}: kept {kept} job{s} that ran on another host or pid namespace (--force removes them)"));
    }
}

/// For a lost job (no end recorded): when its log last changed.
fn last_sign_of_life(job: &Job) -> chrono::DateTime<chrono::FixedOffset> {
    std::fs::symlink_metadata(job.log())
        .and_then(|m| m.modified())
        .map(|t| chrono::DateTime::<chrono::Local>::from(t).fixed_offset())
        .unwrap_or(job.started)
}
