//! The launcher's half of a job's life: what to start (`Spec`), its id and
//! default name, the check of a shell string's first word, and the hand-off
//! to the watcher (`watch`, the other half), which forks the job and
//! publishes it before `start` returns; or, with a queue or `--after`, the
//! hand-off to `queue`, which publishes it queued and starts it when its
//! turn comes.
//!
//! A Slurm job (`--slurm`) has no watcher here: its directory is published
//! whole (meta.json with `backend: "slurm"`, the empty log, the reserved
//! `status`) before `sbatch` is called, then `slurm_id` is written once
//! sbatch has accepted it; until then the job shows `queued` while this
//! launcher lives (it stands in `watcher_pid`), `lost` if it died. If sbatch
//! refuses the job, the directory is removed: nothing is left. The batch
//! step (`watch::slurm_step`) runs the job on the node; `--after` between Slurm jobs is
//! Slurm's `--dependency=afterok:` (`submit`). `name` holds what a job is
//! called and how a command line is shown and checked.

mod name;
mod submit;

pub use name::{check_shell_command, default_name, not_found, project_of, shell, shell_join, shell_name};
pub use submit::STEP_WORD;

use crate::exit::{Exit, Fail, Res};
use crate::store::{self, Meta, SlurmSpec, Store};
use crate::{ntfy, proc, queue, slurm, watch};
use serde_json::value::RawValue;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What to start.
pub struct Spec {
    pub program: PathBuf,
    pub argv: Vec<OsString>,
    pub command: String,
    pub name: String,
    pub cwd: PathBuf,
    pub timeout: Option<Duration>,
    pub topic: Option<String>,
    /// Notify only if the job ran at least this long.
    pub min_duration: Option<Duration>,
    pub context: Option<Box<RawValue>>,
    pub key: Option<String>,
    /// `--log-max` in bytes.
    pub log_max: Option<u64>,
    /// `--queue`: wait for a slot in this queue.
    pub queue: Option<String>,
    /// `--after`: the ids of the jobs that must end `done` first.
    pub after: Vec<String>,
    /// Submit to Slurm with these resources instead of running here.
    pub slurm: Option<SlurmSpec>,
}

pub enum Launched {
    Started {
        id: String,
        pid: i32,
        log: PathBuf,
    },
    /// Accepted by Slurm as job `slurm_id`.
    Submitted {
        id: String,
        slurm_id: u64,
        log: PathBuf,
    },
    /// Queued: it starts when its queue has a slot and its `--after` jobs are done.
    Queued {
        id: String,
        log: PathBuf,
    },
    /// `--key` named a job that exists: nothing was started.
    Existing(String),
}

/// Starts a job, detached, and returns once it exists in the store.
pub fn start(store: &Store, mut spec: Spec, ntfy: ntfy::Config) -> Res<Launched> {
    if spec.slurm.is_some() && !slurm::installed(std::env::var_os("PATH").as_deref()) {
        return Err(Fail::from("--slurm: sbatch is not on PATH (is Slurm installed here?)".to_string()));
    }
    store.create()?;
    let now = chrono::Local::now();
    let slurm_spec = spec.slurm.take();
    let mut meta = Meta {
        id: format!("{}_{}", id_name(&spec.name), now.format("%Y%m%d_%H%M%S")),
        name: spec.name,
        command: spec.command,
        project: project_of(&spec.cwd).to_string_lossy().into_owned(),
        host: proc::hostname(),
        user: proc::username(),
        started_at: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, false),
        boot_id: proc::boot_id(),
        timeout_s: spec.timeout.map(|t| t.as_secs()),
        notify_min_s: spec.min_duration.filter(|_| spec.topic.is_some()).map(|d| d.as_secs()),
        notify_topic: spec.topic,
        context: spec.context,
        key: spec.key,
        pid_ns: proc::pid_ns(),
        machine: proc::machine_id().map(str::to_string),
        log_max: spec.log_max,
        backend: if slurm_spec.is_some() { "slurm" } else { "local" }.into(),
        log_header: Some(store::HEADER_IN_META.into()),
        ..Meta::default()
    };
    meta.set_argv(&spec.argv);
    meta.set_cwd(&spec.cwd);
    if let Some(s) = slurm_spec {
        if spec.queue.is_some() {
            return Err(Fail::new(Exit::Usage, "--queue: not with --slurm (Slurm queues the job itself)"));
        }
        return submit::submit(store, meta, s, spec.timeout, &spec.after);
    }
    if spec.queue.is_some() || !spec.after.is_empty() {
        let meta = Meta {
            queue: spec.queue,
            after: spec.after,
            queued_at: Some(meta.started_at.clone()),
            place: Some(proc::place()),
            program: Some(spec.program.to_string_lossy().into_owned()),
            ..meta
        };
        // Into an idle queue: started at once, as a job launched at once
        // (no saved environment, no index entry, one publication).
        if let Some(hold) = queue::slot_now(store, &meta)? {
            let mut env = proc::environ();
            env.retain(|e| {
                !e.as_encoded_bytes().starts_with(b"RUN_SLOT=") && !e.as_encoded_bytes().starts_with(b"RUN_QUEUE=")
            });
            if let Some(q) = &meta.queue {
                env.push(format!("RUN_QUEUE={q}").into());
            }
            env.push(format!("RUN_SLOT={}", hold.slot).into());
            let meta = Meta { slot: Some(hold.slot), ..meta };
            return launch_now(store, meta, spec.program, spec.argv, ntfy, Some(env), Some(hold));
        }
        return start_queued(store, meta);
    }
    launch_now(store, meta, spec.program, spec.argv, ntfy, None, None)
}

/// Starts a job at once: its watcher forked, the job published running.
/// `env`: the job's environment, when not the launcher's; `slot`: its
/// queue's slot, for a job launched into an idle queue.
fn launch_now(
    store: &Store,
    meta: Meta,
    program: PathBuf,
    argv: Vec<std::ffi::OsString>,
    ntfy: ntfy::Config,
    env: Option<Vec<std::ffi::OsString>>,
    slot: Option<store::SlotHold>,
) -> Res<Launched> {
    if let Some(key) = &meta.key {
        match store.claim_key(key, &proc::pid_taken)? {
            store::Claim::Taken(id) => return Ok(Launched::Existing(id)),
            store::Claim::Mine => {}
        }
    }
    let release = |store: &Store| {
        if let Some(key) = &meta.key {
            store.release_key(key, &Store::pending_target());
        }
    };
    let staged = match store.stage_lean(&meta) {
        Ok(s) => s,
        Err(e) => {
            release(store);
            return Err(Fail::from(e));
        }
    };
    let ntfy = meta.notify_topic.as_ref().map(|_| ntfy);
    let staged_dir = staged.dir.clone();
    let key = meta.key.clone();
    let plan = watch::Plan {
        staged,
        meta,
        program,
        argv,
        ntfy,
        started: Instant::now(),
        env,
        cwd: None,
        on_end: Some(queue::after_end),
        slot,
    };
    let answer = proc::detach(|hs| watch::run(store, plan, hs));
    let fail = |msg: String| {
        let _ = std::fs::remove_dir_all(&staged_dir);
        if let Some(key) = &key {
            store.release_key(key, &Store::pending_target());
        }
        Err(Fail::from(msg))
    };
    let line = match answer {
        Ok(line) => line,
        Err(e) => return fail(e),
    };
    let mut words = line.splitn(3, ' ');
    match (words.next(), words.next(), words.next()) {
        (Some("ok"), Some(id), Some(pid)) => Ok(Launched::Started {
            id: id.to_string(),
            pid: pid.parse().unwrap_or(0),
            log: store::log_path(&store.root().join(id)),
        }),
        (Some("err"), _, _) => fail(line.strip_prefix("err ").unwrap_or(&line).to_string()),
        _ => fail("the watcher ended before the job started".into()),
    }
}

/// Queues a job: staged with the caller's environment saved beside it,
/// published as queued, then started at once if its queue lets it.
fn start_queued(store: &Store, mut meta: Meta) -> Res<Launched> {
    if let Some(key) = &meta.key {
        match store.claim_key(key, &proc::pid_taken)? {
            store::Claim::Taken(id) => return Ok(Launched::Existing(id)),
            store::Claim::Mine => {}
        }
    }
    let key = meta.key.clone();
    let queued = (|| {
        // The jobs it waits for stay until it is indexed, where a removal
        // (which judges under the exclusive lock) sees that it waits for
        // them: checked again under the shared lock, held until then.
        let _hold = if meta.after.is_empty() { None } else { store.hold_shared()? };
        for id in &meta.after {
            if matches!(store.get(id), Ok(None)) {
                return Err(format!("--after {id}: no such job (removed meanwhile?)"));
            }
        }
        let staged = store.stage(&meta)?;
        // The environment is read here, at queueing, as at(1) keeps it.
        let env = proc::environ();
        if let Err(e) = store::write_env(&staged, &env) {
            store.discard(&staged);
            return Err(e);
        }
        queue::enqueue(store, staged, &mut meta)
    })();
    let dir = match queued {
        Ok(d) => d,
        Err(e) => {
            if let Some(key) = &key {
                store.release_key(key, &Store::pending_target());
            }
            return Err(Fail::from(e));
        }
    };
    if let Some(key) = &key {
        let _ = store.set_key(key, &meta.id);
    }
    let log = store::log_path(&dir);
    match store.get(&meta.id) {
        Ok(Some(job)) if job.meta.pid.is_some() => {
            Ok(Launched::Started { id: meta.id, pid: job.meta.pid.unwrap_or(0), log })
        }
        _ => Ok(Launched::Queued { id: meta.id, log }),
    }
}

/// The part of a job id that comes from its name: safe in a file name and
/// never hidden.
pub fn id_name(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' { c } else { '_' })
        .take(48)
        .collect();
    if s.starts_with('.') {
        s.insert(0, '_');
    }
    if s.is_empty() {
        s.push_str("job");
    }
    s
}
