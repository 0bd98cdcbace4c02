//! `run CMD…`: start a detached job and return at once.

use super::out::Out;
use super::{parse, usage};
use crate::exit::{Exit, Res};
use crate::launch::{self, Launched, Spec};
use crate::{cli, proc};
use std::ffi::{OsStr, OsString};
use std::time::Duration;

pub fn main(args: Vec<OsString>) -> Res<Exit> {
    let a: cli::Run = parse(args)?;
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
        let t = super::env("NTFY_TOPIC").ok_or_else(|| {
            usage("-n needs a topic: set NTFY_TOPIC or pass one (run -n TOPIC CMD…, or --topic TOPIC)")
        })?;
        topic = Some(cli::parse_topic(&t).map_err(|e| usage(format!("NTFY_TOPIC: {e}")))?);
    }
    if a.min_duration.is_some() && topic.is_none() {
        return Err(usage("--min-duration needs -n or --topic: run -n --min-duration 2m CMD…"));
    }
    let min = super::min_duration(a.min_duration)?;
    let log_max = super::log_max(a.start.log_max)?;
    let slurm = super::slurm::spec(&a.slurm)?;
    let mut spec = Spec { log_max, slurm, ..spec_for(cmd, a.name, topic, min, path.as_deref())? };
    let cfg = super::ntfy_config("run", spec.topic.as_ref());
    let store = super::open_store()?;
    crate::queue::catch_up(&store);
    spec.queue = a.start.queue;
    spec.after = super::resolve::after_ids(&store, a.start.after)?;
    match launch::start(&store, spec, cfg)? {
        Launched::Started { id, pid, log } => {
            let mut out = Out::new();
            out.line(&format!("{id} {pid} {}", log.display()))?;
            out.flush()?;
        }
        Launched::Queued { id, log } => {
            let mut out = Out::new();
            out.line(&format!("{id} queued {}", log.display()))?;
            out.flush()?;
        }
        Launched::Submitted { id, slurm_id, log } => {
            let mut out = Out::new();
            out.line(&format!("{id} slurm:{slurm_id} {}", log.display()))?;
            out.flush()?;
        }
        Launched::Existing(id) => Out::new().line(&id)?,
    }
    Ok(Exit::Ok)
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
        cwd: super::current_dir()?,
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
