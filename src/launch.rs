//! The launcher's half of a job's life: what to start (`Spec`), its id and
//! default name, the check of a shell string's first word, and the hand-off
//! to the watcher (`watch`, the other half), which forks the job and
//! publishes it before `start` returns.

use crate::store::{self, Meta, Store};
use crate::{ntfy, proc, watch};
use crate::{Exit, Fail, Res};
use serde_json::value::RawValue;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
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
    pub context: Option<Box<RawValue>>,
    pub key: Option<String>,
}

pub enum Launched {
    Started {
        id: String,
        pid: i32,
        log: PathBuf,
    },
    /// `--key` named a job that exists: nothing was started.
    Existing(String),
}

/// Starts a job, detached, and returns once it exists in the store.
pub fn start(store: &Store, spec: Spec, ntfy: ntfy::Config) -> Res<Launched> {
    store.create()?;
    let now = chrono::Local::now();
    let cwd = spec.cwd.to_string_lossy().into_owned();
    let meta = Meta {
        id: format!("{}_{}", id_name(&spec.name), now.format("%Y%m%d_%H%M%S")),
        name: spec.name,
        command: spec.command,
        argv: spec.argv.iter().map(|a| a.to_string_lossy().into_owned()).collect(),
        project: project_of(&spec.cwd).to_string_lossy().into_owned(),
        cwd,
        host: proc::hostname(),
        user: proc::username(),
        started_at: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, false),
        boot_id: proc::boot_id(),
        timeout_s: spec.timeout.map(|t| t.as_secs()),
        notify_topic: spec.topic,
        context: spec.context,
        key: spec.key,
        pid_ns: proc::pid_ns(),
        ..Meta::default()
    };
    if let Some(key) = &meta.key {
        match store.claim_key(key, &proc::pid_exists)? {
            store::Claim::Taken(id) => return Ok(Launched::Existing(id)),
            store::Claim::Mine => {}
        }
    }
    let release = |store: &Store| {
        if let Some(key) = &meta.key {
            store.release_key(key, &Store::pending_target());
        }
    };
    let staged = match store.stage(&meta) {
        Ok(s) => s,
        Err(e) => {
            release(store);
            return Err(Fail::from(e));
        }
    };
    let ntfy = meta.notify_topic.as_ref().map(|_| ntfy);
    let staged_dir = staged.dir.clone();
    let key = meta.key.clone();
    let plan = watch::Plan { staged, meta, program: spec.program, argv: spec.argv, ntfy, started: Instant::now() };
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
            log: store.root().join(id).join("log"),
        }),
        (Some("err"), _, _) => fail(line.strip_prefix("err ").unwrap_or(&line).to_string()),
        _ => fail("the watcher ended before the job started".into()),
    }
}

/// The part of a job id that comes from its name: safe in a file name and
/// never hidden.
fn id_name(name: &str) -> String {
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

/// The project a directory belongs to: its git top level, else itself.
pub fn project_of(dir: &Path) -> PathBuf {
    let mut d = Some(dir);
    while let Some(p) = d {
        if p.join(".git").exists() {
            return p.to_path_buf();
        }
        d = p.parent();
    }
    dir.to_path_buf()
}

/// The default job name: the command's basename without its extension; for
/// an interpreter running a script (`python train.py`), the script's.
pub fn default_name(argv: &[OsString]) -> String {
    let base = |a: &OsStr| {
        let b = Path::new(a).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        match b.rsplit_once('.') {
            Some((stem, _)) if !stem.is_empty() => stem.to_string(),
            _ => b,
        }
    };
    let Some(first) = argv.first() else { return "job".into() };
    let prog = Path::new(first).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let interpreter = ["python", "python3", "node", "bash", "sh", "zsh", "ruby", "perl", "deno", "bun"]
        .iter()
        .any(|i| prog == *i || (prog.starts_with("python3.") && *i == "python3"));
    if interpreter {
        if let Some(script) = argv.get(1).filter(|a| !a.to_string_lossy().starts_with('-')) {
            return base(script);
        }
    }
    let b = base(first);
    if b.is_empty() {
        "job".into()
    } else {
        b
    }
}

/// A command line for display: words that need it are single-quoted.
pub fn shell_join(argv: &[OsString]) -> String {
    argv.iter()
        .map(|a| {
            let s = a.to_string_lossy();
            let plain = !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%^".contains(c));
            if plain {
                s.into_owned()
            } else {
                format!("'{}'", s.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Refuses a shell string whose first word can only be a command on PATH
/// and is not there (`run 'nosuch --flag'`, `job run "nosuch"`), before
/// anything starts: exit 127, as the shell itself would.
pub fn check_shell_command(text: &str, path: Option<&OsStr>) -> Res<()> {
    match plain_first_word(text) {
        Some(word) if proc::which(OsStr::new(word), path).is_none() => {
            Err(Fail::new(Exit::NotFound, format!("{word}: command not found")))
        }
        _ => Ok(()),
    }
}

/// The first word of a shell string when it can only be a command on PATH
/// (not a builtin, keyword, assignment or anything expanded), so that a
/// typo is refused before anything starts.
fn plain_first_word(text: &str) -> Option<&str> {
    const SHELL_WORDS: &[&str] = &[
        "if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done", "case", "esac", "in", "function",
        "select", "time", "!", "{", "}", "[", "[[", ".", ":", "alias", "bg", "break", "cd", "command", "continue",
        "eval", "exec", "exit", "export", "false", "fg", "getopts", "hash", "jobs", "kill", "local", "printf", "pwd",
        "read", "readonly", "return", "set", "shift", "source", "test", "trap", "true", "type", "ulimit", "umask",
        "unalias", "unset", "wait", "echo", "let", "declare", "typeset",
    ];
    let word = text.split_whitespace().next()?;
    let plain = word.chars().all(|c| c.is_alphanumeric() || "-_./+@%,:".contains(c));
    (plain && !SHELL_WORDS.contains(&word)).then_some(word)
}

/// The program for `sh -c`.
pub fn shell() -> Res<PathBuf> {
    proc::which(OsStr::new("sh"), std::env::var_os("PATH").as_deref())
        .or_else(|| Some(PathBuf::from("/bin/sh")).filter(|p| proc::is_executable(p)))
        .ok_or_else(|| Fail::new(Exit::NotFound, "sh: command not found"))
}
