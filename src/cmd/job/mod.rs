//! `job`: the fuller manager over the same store: run, list, status, logs,
//! stop, wait, retry (here), status, stop, clean and queue (a file each).

mod clean;
mod queue;
mod status;
mod stop;

use super::follow::{follow_many, settled, show_legacy_log, show_log, wait_all};
use super::launch_args::{self, Checked};
use super::out::{clean, warn, Out};
use super::resolve::{load_all, resolve, resolve_any, Found};
use super::view::{queue_notes, summary_noted, view};
use super::{exit_for, parse};
use crate::cli::{self, JobCmd};
use crate::exit::{Exit, Fail, Res};
use crate::launch::{self, Launched, Spec};
use crate::proc;
use crate::state;
use crate::store::{self, Job, State, Store};
use std::ffi::OsString;
use std::time::Duration;

pub fn main(args: Vec<OsString>) -> Res<Exit> {
    let a: cli::Job = parse(args.clone())?;
    if let Some(done) = elsewhere(&a.cmd, args) {
        return done;
    }
    let store = super::open_store()?;
    // A command that changes a queue takes its lock itself (and decides
    // under it); a queued launch decides what it changed (`queue::enqueue`).
    let changes_queues = match &a.cmd {
        JobCmd::Queue(q) => q.slots.is_some() || q.pause || q.resume,
        JobCmd::Stop(_) => true,
        JobCmd::Run(r) => r.start.queue.is_some() || !r.start.after.is_empty(),
        _ => false,
    };
    if !changes_queues {
        super::catch_up(&store, "job");
    }
    match a.cmd {
        JobCmd::Run(r) => run(&store, r),
        JobCmd::List(l) => list(&store, l),
        JobCmd::Status(s) => status::status(&store, s),
        JobCmd::Logs(l) => logs(&store, l),
        JobCmd::Stop(s) => stop::stop(&store, s),
        JobCmd::Wait(w) => wait(&store, &w.ids, w.timeout),
        JobCmd::Retry(r) => retry(&store, r),
        JobCmd::Clean(c) => clean::clean(&store, c),
        JobCmd::Queue(q) => queue::queue(&store, q),
        // Routed before the store is opened (`elsewhere`).
        JobCmd::Install(i) => super::remote::install::install(&i.dest),
    }
}

/// A subcommand for another host (`--on`, `DEST:ID`): run there.
fn elsewhere(cmd: &JobCmd, mut args: Vec<OsString>) -> Option<Res<Exit>> {
    use super::remote::{on_ids, on_many, on_one};
    let on = |d: &Option<cli::Dests>| d.as_ref().map(|d| d.0.clone());
    match cmd {
        JobCmd::Run(r) => on_one("job", on(&r.on).as_deref(), &args),
        JobCmd::List(l) => {
            // There, every job: this directory's project means nothing.
            if !l.all {
                args.push("--all".into());
            }
            on_many("job", on(&l.on).as_deref(), &args, l.json)
        }
        JobCmd::Clean(c) => on_many("job", on(&c.on).as_deref(), &args, false),
        JobCmd::Status(s) => on_ids("job", s.id.as_slice(), &args),
        JobCmd::Logs(l) => on_ids("job", &l.ids, &args),
        JobCmd::Stop(s) => on_ids("job", &s.ids, &args),
        JobCmd::Wait(w) => on_ids("job", &w.ids, &args),
        JobCmd::Retry(r) => on_ids("job", std::slice::from_ref(&r.id), &args),
        JobCmd::Queue(_) => None,
        JobCmd::Install(i) => Some(super::remote::install::install(&i.dest)),
    }
}

fn run(store: &Store, a: cli::JobRun) -> Res<Exit> {
    let (waits, follows, key) = (a.wait, a.follow, a.key.clone());
    let Checked { spec, ntfy } = launch_args::job_run(store, a)?;
    let cmd = spec.command.clone();
    let id = match launch::start(store, spec, ntfy)? {
        Launched::Started { id, .. } | Launched::Queued { id, .. } => id,
        Launched::Submitted { id, slurm_id, .. } => {
            warn(&format!("job: {id}: submitted to Slurm as job {slurm_id}"));
            id
        }
        Launched::Existing(id) => {
            note_existing(store, &id, key.as_deref().unwrap_or_default(), &cmd);
            id
        }
    };
    let mut out = Out::new();
    out.line(&crate::remote::qualify(&id))?;
    out.flush()?;
    if !waits {
        return Ok(Exit::Ok);
    }
    if follows {
        let mut job = resolve(store, &id)?;
        let st = show_log(&mut job, None, true, &mut out)?;
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
        out.json_lines(jobs.iter().map(|(j, s)| view(j, *s)))?;
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
    let mut job = match resolve_any(store, &a.ids[0])? {
        Found::Job(job) => *job,
        Found::Legacy(old) => {
            show_legacy_log(&old, a.tail, a.follow, &mut Out::new())?;
            return Ok(Exit::Ok);
        }
    };
    let mut out = Out::new();
    let st = show_log(&mut job, a.tail, a.follow, &mut out)?;
    Ok(if a.follow { exit_for(st) } else { Exit::Ok })
}

fn wait(store: &Store, ids: &[String], timeout: Option<Duration>) -> Res<Exit> {
    let mut jobs = Vec::new();
    for q in ids {
        jobs.push(resolve(store, q)?);
    }
    if !wait_all(&mut jobs, timeout) {
        let boot = proc::boot_id();
        let running: Vec<String> = jobs
            .iter_mut()
            .filter_map(|j| {
                let st = state::of(j, &boot);
                (!settled(j, st)).then(|| j.id.clone())
            })
            .collect();
        warn(&format!("job: timed out waiting for {} (still running)", running.join(", ")));
        return Ok(Exit::WaitTimeout);
    }
    let boot = proc::boot_id();
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
    let cfg = launch_args::ntfy_config("job", spec.topic.as_ref());
    let id = started_id(launch::start(store, spec, cfg)?);
    let mut out = Out::new();
    out.line(&crate::remote::qualify(&id))?;
    out.flush()?;
    if a.wait {
        return wait(store, &[id], None);
    }
    Ok(Exit::Ok)
}
