//! One checked value of a launch's arguments, as ripgrep's HiArgs: the
//! flags of `run` or `job run`, the environment's defaults (NTFY_TOPIC,
//! NTFY_MIN_DURATION, RUN_LOG_MAX, RUN_BACKEND, and the NTFY_* settings of
//! the notification) and every check, applied in one step before anything
//! is launched, in the order each front has always applied them (so the
//! first error a user sees, and its exit code, are unchanged). What
//! needs the store (`--after`'s ids) is resolved against it last.

use super::out::{self, clean};
use super::resolve::after_ids;
use super::{current_dir, env, usage};
use crate::exit::Res;
use crate::launch::{self, Spec};
use crate::store::{SlurmSpec, Store};
use crate::{cli, ntfy, proc};
use std::ffi::{OsStr, OsString};
use std::time::Duration;

/// A launch's arguments, checked: what to start, and the notification's
/// settings.
pub struct Checked {
    pub spec: Spec,
    pub ntfy: ntfy::Config,
}

/// `run`'s arguments, checked but for `--after` (see `Unresolved::after`).
pub struct Unresolved {
    checked: Checked,
    after: Vec<Vec<String>>,
}

impl Unresolved {
    /// Resolves `--after`'s words against the store.
    pub fn after(self, store: &Store) -> Res<Checked> {
        let Unresolved { mut checked, after } = self;
        checked.spec.after = after_ids(store, after)?;
        Ok(checked)
    }
}

/// `run CMD…`: the `-n` rule, the topic, the notification's threshold,
/// the log cap, where the job goes, and the command itself (found on
/// PATH, or a shell string checked), in that order.
pub fn run(a: cli::Run) -> Res<Unresolved> {
    let path = std::env::var_os("PATH");
    let mut cmd = a.cmd;
    let mut topic = a.topic;
    // The -n rule: the next argument is the command if it names an
    // executable or is the last argument; otherwise it is the topic.
    if a.notify && topic.is_none() && cmd.len() > 1 && proc::which(&cmd[0], path.as_deref()).is_none() {
        let word = cmd.remove(0);
        let t = word.to_str().ok_or_else(|| usage("-n: the topic is not UTF-8"))?;
        topic = Some(
            cli::parse_topic(t)
                .map_err(|e| usage(format!("-n: {e}; and it is not a command either (not found on PATH)")))?,
        );
    }
    if (a.notify || topic.is_some()) && topic.is_none() {
        topic =
            Some(topic_from_env("-n needs a topic: set NTFY_TOPIC or pass one (run -n TOPIC CMD…, or --topic TOPIC)")?);
    }
    if a.min_duration.is_some() && topic.is_none() {
        return Err(usage("--min-duration needs -n or --topic: run -n --min-duration 2m CMD…"));
    }
    let min = min_duration(a.min_duration)?;
    let log_max = log_max(a.start.log_max)?;
    let slurm = slurm_spec(&a.slurm)?;
    let mut spec = Spec { log_max, slurm, ..spec_for(cmd, a.name, topic, min, path.as_deref())? };
    let ntfy = ntfy_config("run", spec.topic.as_ref());
    spec.queue = a.start.queue;
    Ok(Unresolved { checked: Checked { spec, ntfy }, after: a.start.after })
}

/// `job run "CMD"`: the command (`--notify`'s value may be it), `--follow`
/// only with `--wait`, where the job goes, the shell string's first word,
/// the topic, the notification's threshold, the log cap and `--after`, in
/// that order.
pub fn job_run(store: &Store, a: cli::JobRun) -> Res<Checked> {
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
    let slurm = slurm_spec(&a.slurm)?;
    launch::check_shell_command(&cmd, std::env::var_os("PATH").as_deref())?;
    if notify && topic.is_none() {
        topic = Some(topic_from_env("--notify needs a topic: set NTFY_TOPIC or pass one (--notify TOPIC)")?);
    }
    let name = a.name.unwrap_or_else(|| launch::shell_name(&cmd));
    if a.min_duration.is_some() && topic.is_none() {
        return Err(usage("--min-duration needs --notify or --topic: job run --notify --min-duration 2m \"CMD\""));
    }
    let min = min_duration(a.min_duration)?;
    let spec = Spec {
        program: launch::shell()?,
        argv: vec!["sh".into(), "-c".into(), cmd.clone().into()],
        command: cmd.clone(),
        name,
        cwd: current_dir()?,
        // `--timeout 0` is no timeout, as with GNU timeout.
        timeout: a.timeout.filter(|t| !t.is_zero()),
        topic,
        min_duration: min,
        context: a.context,
        key: a.key.clone(),
        log_max: log_max(a.start.log_max)?,
        queue: a.start.queue,
        after: after_ids(store, a.start.after)?,
        slurm,
    };
    let ntfy = ntfy_config("job", spec.topic.as_ref());
    Ok(Checked { spec, ntfy })
}

/// Where an ssh command's shell finds `NTFY_TOPIC` (docs/install.md): it
/// reads `~/.bashrc` only down to its early return, and no `~/.profile`.
const OVER_SSH: &str = "over ssh, ~/.bashrc is read only down to its early return (and ~/.profile not at all): \
                        export NTFY_TOPIC at the top of ~/.bashrc (~/.zshenv for zsh)";

/// NTFY_TOPIC, for a notification asked for without a topic; `missing`
/// says what to do when it is not set (and, for an ssh command, where to
/// set it).
fn topic_from_env(missing: &str) -> Res<String> {
    let t = env("NTFY_TOPIC").ok_or_else(|| match env("SSH_CONNECTION") {
        Some(_) => usage(format!("{missing}; {OVER_SSH}")),
        None => usage(missing),
    })?;
    cli::parse_topic(&t).map_err(|e| usage(format!("NTFY_TOPIC: {e}")))
}

/// `--min-duration`, else `NTFY_MIN_DURATION`: notify only for jobs that
/// ran at least this long.
fn min_duration(flag: Option<Duration>) -> Res<Option<Duration>> {
    if flag.is_some() {
        return Ok(flag);
    }
    match env("NTFY_MIN_DURATION") {
        Some(v) => crate::cli::parse_duration(&v).map(Some).map_err(|e| usage(format!("NTFY_MIN_DURATION: {e}"))),
        None => Ok(None),
    }
}

/// The log cap: `--log-max`, else `RUN_LOG_MAX`, else none (0 is none).
fn log_max(flag: Option<u64>) -> Res<Option<u64>> {
    let max = match flag {
        Some(m) => m,
        None => match env("RUN_LOG_MAX") {
            Some(v) => crate::cli::parse_size(&v).map_err(|e| usage(format!("RUN_LOG_MAX: {e}")))?,
            None => 0,
        },
    };
    Ok((max > 0).then_some(max))
}

/// Where a job goes: to Slurm with these resources (`--slurm`, or
/// RUN_BACKEND=slurm), or `None` to run here. A resource flag without
/// Slurm, or a RUN_BACKEND that names no backend, is a usage error.
fn slurm_spec(a: &cli::SlurmArgs) -> Res<Option<SlurmSpec>> {
    let by_env = match env("RUN_BACKEND").as_deref() {
        None | Some("local") => false,
        Some("slurm") => true,
        Some(other) => {
            return Err(usage(format!("RUN_BACKEND: '{}' is not a backend (local or slurm)", clean(other))));
        }
    };
    let flags = [
        ("--partition", a.partition.is_some()),
        ("--cpus", a.cpus.is_some()),
        ("--mem", a.mem.is_some()),
        ("--gpus", a.gpus.is_some()),
        ("--sbatch", a.sbatch.is_some()),
    ];
    if !(a.slurm || by_env) {
        if let Some((flag, _)) = flags.iter().find(|(_, set)| *set) {
            return Err(usage(format!("{flag} needs --slurm (or RUN_BACKEND=slurm)")));
        }
        return Ok(None);
    }
    let sbatch = match &a.sbatch {
        Some(raw) => cli::parse_words(raw).map_err(|e| usage(format!("--sbatch: {e}")))?,
        None => Vec::new(),
    };
    Ok(Some(SlurmSpec {
        partition: a.partition.clone(),
        cpus: a.cpus,
        mem: a.mem.clone(),
        gpus: a.gpus,
        sbatch,
        bin: String::new(),
    }))
}

/// The ntfy settings from NTFY_SERVER, NTFY_TOKEN, NTFY_USER,
/// NTFY_PASSWORD and NTFY_TIMEOUT, for a job that notifies (`topic` set):
/// a credential that would go over plain http to another host is warned
/// about on stderr, naming the front.
pub fn ntfy_config(front: &str, topic: Option<&String>) -> ntfy::Config {
    let cfg = ntfy::Config::from_vars(|name| std::env::var(name).ok());
    if let (Some(_), Some(what)) = (topic, cfg.secret_in_clear()) {
        out::warn(&format!(
            "{front}: warning: {what} will be sent in clear text to {} (http, not https); anyone on the way can read it",
            cfg.server
        ));
    }
    cfg
}

/// What to execute for `cmd`: the command itself, or `sh -c` for one
/// argument holding shell syntax. A missing command is refused here,
/// before anything is detached.
fn spec_for(
    cmd: Vec<OsString>,
    name: Option<String>,
    topic: Option<String>,
    min_duration: Option<Duration>,
    path: Option<&OsStr>,
) -> Res<Spec> {
    let first = &cmd[0];
    let found = proc::which(first, path);
    let shell = found.is_none() && cmd.len() == 1 && is_shell_string(first);
    let (program, argv, command) = if shell {
        let text = first.to_string_lossy().into_owned();
        launch::check_shell_command(&text, path)?;
        let argv = vec![OsString::from("sh"), OsString::from("-c"), first.clone()];
        (launch::shell()?, argv, text)
    } else {
        let Some(program) = found else { return Err(launch::not_found(first)) };
        let command = launch::shell_join(&cmd);
        (program, cmd, command)
    };
    let name = name.unwrap_or_else(|| if shell { launch::shell_name(&command) } else { launch::default_name(&argv) });
    Ok(Spec {
        program,
        argv,
        command,
        name,
        cwd: current_dir()?,
        timeout: None,
        topic,
        min_duration,
        context: None,
        key: None,
        log_max: None,
        queue: None,
        after: Vec::new(),
        slurm: None,
    })
}

/// One argument that is not a command but holds shell syntax or spaces.
fn is_shell_string(s: &OsStr) -> bool {
    s.as_encoded_bytes().iter().any(|b| b" \t\n;&|<>()$`'\"*?[]{}~#=!\\".contains(b))
}
