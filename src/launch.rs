//! The launcher's half of a job's life: what to start (`Spec`), its id and
//! default name, the check of a shell string's first word, and the hand-off
//! to the watcher (`watch`, the other half), which forks the job and
//! publishes it before `start` returns; or, with a queue or `--after`, the
//! hand-off to `queue`, which publishes it queued and starts it when its
//! turn comes.
//!
//! A Slurm job (`--slurm`) has no watcher here: its directory is published
//! whole (meta.json with `backend: "slurm"`, the log's header, the reserved
//! `status`) before `sbatch` is called, then `slurm_id` is written once
//! sbatch has accepted it; until then the job shows `queued` while this
//! launcher lives (it stands in `watcher_pid`), `lost` if it died. If sbatch
//! refuses the job, the directory is removed: nothing is left. The batch
//! step (`step`) runs the job on the node; `--after` between Slurm jobs is
//! Slurm's `--dependency=afterok:`.

use crate::store::{self, Meta, SlurmSpec, Store};
use crate::{ntfy, proc, queue, slurm, watch};
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
        log_max: spec.log_max,
        backend: if slurm_spec.is_some() { "slurm" } else { "local" }.into(),
        ..Meta::default()
    };
    meta.set_argv(&spec.argv);
    meta.set_cwd(&spec.cwd);
    if let Some(s) = slurm_spec {
        if spec.queue.is_some() {
            return Err(Fail::new(Exit::Usage, "--queue: not with --slurm (Slurm queues the job itself)"));
        }
        return submit(store, meta, s, spec.timeout, &spec.after);
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
        return start_queued(store, meta);
    }
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
    let plan = watch::Plan {
        staged,
        meta,
        program: spec.program,
        argv: spec.argv,
        ntfy,
        started: Instant::now(),
        env: None,
        cwd: None,
        on_end: Some(queue::after_end),
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
            log: store.root().join(id).join("log"),
        }),
        (Some("err"), _, _) => fail(line.strip_prefix("err ").unwrap_or(&line).to_string()),
        _ => fail("the watcher ended before the job started".into()),
    }
}

/// Queues a job: staged with the caller's environment saved beside it,
/// published as queued, then started at once if its queue lets it.
fn start_queued(store: &Store, mut meta: Meta) -> Res<Launched> {
    if let Some(key) = &meta.key {
        match store.claim_key(key, &proc::pid_exists)? {
            store::Claim::Taken(id) => return Ok(Launched::Existing(id)),
            store::Claim::Mine => {}
        }
    }
    let key = meta.key.clone();
    let queued = (|| {
        let staged = store.stage(&meta)?;
        // The environment is read here, at queueing, as at(1) keeps it.
        let env: Vec<OsString> = std::env::vars_os()
            .map(|(k, v)| {
                let mut e = k;
                e.push("=");
                e.push(v);
                e
            })
            .collect();
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
    let log = dir.join("log");
    match store.get(&meta.id) {
        Ok(Some(job)) if job.meta.pid.is_some() => {
            Ok(Launched::Started { id: meta.id, pid: job.meta.pid.unwrap_or(0), log })
        }
        _ => Ok(Launched::Queued { id: meta.id, log }),
    }
}

/// Submits a Slurm job: claims the key, publishes the job directory whole,
/// calls sbatch, records Slurm's id; undoes it all if sbatch refuses.
fn submit(
    store: &Store,
    mut meta: Meta,
    mut spec: SlurmSpec,
    timeout: Option<Duration>,
    after: &[String],
) -> Res<Launched> {
    // `--after` between Slurm jobs is Slurm's own dependency: it starts the
    // job once those ended COMPLETED (exit 0), and never if one did not.
    let mut depends = Vec::new();
    for id in after {
        let job = store.get(id).ok().flatten().ok_or_else(|| format!("--after: no job '{id}'"))?;
        match job.slurm.as_ref().and_then(|s| s.id) {
            Some(n) if job.is_slurm() => depends.push(n.to_string()),
            _ => {
                return Err(Fail::from(format!(
                    "--after {id}: not a Slurm job (with --slurm, --after names Slurm jobs: Slurm waits for them)"
                )))
            }
        }
    }
    meta.after = after.to_vec();
    let bin = std::env::current_exe().map_err(|e| format!("--slurm: finding this program's path: {e}"))?;
    spec.bin = bin.to_string_lossy().into_owned();
    meta.watcher_pid = Some(proc::my_pid());
    meta.watcher_start = proc::stat(proc::my_pid()).map(|s| s.start);
    meta.slurm = Some(spec.clone());
    if let Some(key) = &meta.key {
        match store.claim_key(key, &proc::pid_exists)? {
            store::Claim::Taken(id) => return Ok(Launched::Existing(id)),
            store::Claim::Mine => {}
        }
    }
    let key = meta.key.clone();
    let release = |store: &Store| {
        if let Some(key) = &key {
            store.release_key(key, &Store::pending_target());
        }
    };
    let published = store.stage(&meta).and_then(|staged| {
        let dir = store.publish(&staged, &mut meta);
        if dir.is_err() {
            store.discard(&staged);
        }
        // Closing the staged files frees the reserved status for the step.
        dir
    });
    let dir = match published {
        Ok(d) => d,
        Err(e) => {
            release(store);
            return Err(Fail::from(e));
        }
    };
    let undo = |store: &Store, msg: String| {
        let _ = store.remove(&meta.id);
        release(store);
        Err(Fail::from(msg))
    };
    let log = dir.join("log");
    let mut args: Vec<OsString> = vec![
        format!("--job-name={}", meta.id).into(),
        join_flag("--output=", &log),
        "--open-mode=append".into(),
        // One job, one run: a job Slurm requeued (after a node failure)
        // would find its end recorded and not run again.
        "--no-requeue".into(),
        join_flag("--chdir=", Path::new(&meta.cwd)),
    ];
    if let Some(p) = &spec.partition {
        args.push(format!("--partition={p}").into());
    }
    if let Some(n) = spec.cpus {
        args.push(format!("--cpus-per-task={n}").into());
    }
    if let Some(m) = &spec.mem {
        args.push(format!("--mem={m}").into());
    }
    if let Some(n) = spec.gpus {
        args.push(format!("--gpus={n}").into());
    }
    if let Some(t) = timeout {
        // Slurm counts whole minutes; the step ends the job on the second.
        args.push(format!("--time={}", t.as_secs().div_ceil(60).max(1)).into());
    }
    if !depends.is_empty() {
        // A dependency that can no longer be met cancels the job (Slurm
        // would keep it pending for ever): it shows `skipped`.
        args.push(format!("--dependency=afterok:{}", depends.join(":")).into());
        args.push("--kill-on-invalid-dep=yes".into());
    }
    args.extend(spec.sbatch.iter().map(OsString::from));
    let step = format!(
        "exec {} {STEP_WORD} {} {}",
        slurm::sh_quote(&bin),
        slurm::sh_quote(store.root()),
        slurm::sh_quote(Path::new(&meta.id))
    );
    let slurm_id = match slurm::submit(&args, &step) {
        Ok(n) => n,
        Err(e) => return undo(store, e),
    };
    if let Err(e) = store::write_atomic(&dir, "slurm_id", format!("{slurm_id}\n").as_bytes()) {
        let _ = slurm::cancel(slurm_id);
        return undo(store, e);
    }
    if let Some(key) = &meta.key {
        if let Err(e) = store.set_key(key, &meta.id) {
            let end = format!("could not record key: {e}");
            let _ = std::fs::OpenOptions::new().append(true).open(&log).map(|f| store::append_note(&f, &log, &end));
        }
    }
    Ok(Launched::Submitted { id: meta.id.clone(), slurm_id, log })
}

/// The hidden first argument that makes any of the five binaries the batch
/// step of a Slurm job: `BIN __slurm-step STORE ID`.
pub const STEP_WORD: &str = "__slurm-step";

fn join_flag(flag: &str, path: &Path) -> OsString {
    let mut s = OsString::from(flag);
    s.push(path.as_os_str());
    s
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

/// The default name of a shell string: the program it runs, past what
/// only prepares the run: a leading `cd DIR &&` (or `;`), assignments
/// (`FOO=bar`), `time`, `exec`, `env`, `nohup`, `sudo` and their flags,
/// and grouping (`{`, `(`); for `. ./build.sh` or `source x.sh`, the
/// script's name. Then as [`default_name`] (`python train.py` → `train`).
pub fn shell_name(text: &str) -> String {
    let spaced = text.replace("&&", " ; ").replace("||", " ; ").replace([';', '|', '&'], " ; ");
    let toks: Vec<&str> = spaced
        .split_whitespace()
        .map(|t| t.trim_matches(|c| "(){}'\"".contains(c)))
        .filter(|t| !t.is_empty())
        .collect();
    let is_assignment = |t: &str| {
        t.split_once('=').is_some_and(|(k, _)| {
            !k.is_empty()
                && !k.starts_with(|c: char| c.is_ascii_digit())
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
    };
    let mut i = 0;
    let mut wrapper = false;
    // `FOO=bar env` runs env itself.
    let mut last_wrapper = None;
    while i < toks.len() {
        let t = toks[i];
        match t {
            ";" => wrapper = false,
            "cd" | "pushd" => {
                // up to the next separator: `cd sub && make` is `make`
                while i < toks.len() && toks[i] != ";" {
                    i += 1;
                }
                continue;
            }
            "time" | "exec" | "env" | "nohup" | "sudo" | "command" | "nice" => {
                wrapper = true;
                last_wrapper = Some(t);
            }
            "-u" | "-g" | "-n" if wrapper && toks[i - 1] != "env" => i += 1, // sudo -u USER, nice -n N
            _ if wrapper && t.starts_with('-') => {}
            _ if is_assignment(t) => {}
            "." | "source" => {
                return toks.get(i + 1).map_or_else(|| "job".into(), |s| default_name(&[OsString::from(s)]));
            }
            _ => {
                let words: Vec<OsString> =
                    toks[i..].iter().take_while(|w| **w != ";").take(2).map(OsString::from).collect();
                return default_name(&words);
            }
        }
        i += 1;
    }
    last_wrapper.unwrap_or("sh").into()
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
        Some(word) if proc::which(OsStr::new(word), path).is_none() => Err(not_found(OsStr::new(word))),
        _ => Ok(()),
    }
}

/// Why `cmd` cannot run, as a shell says it: a path that exists but cannot
/// be executed is exit 126, anything else not found is exit 127.
pub fn not_found(cmd: &OsStr) -> Fail {
    let shown: String = cmd
        .to_string_lossy()
        .chars()
        .map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() })
        .collect();
    let p = Path::new(cmd);
    if cmd.as_encoded_bytes().contains(&b'/') && p.exists() {
        let what = if p.is_dir() { "is a directory" } else { "not executable" };
        Fail::new(Exit::NotExecutable, format!("{shown}: {what}"))
    } else {
        Fail::new(Exit::NotFound, format!("{shown}: command not found"))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_strings_are_named_after_the_program_they_run_not_what_prepares_it() {
        for (text, name) in [
            ("cd sub && make", "make"),
            ("cd sub; make -j8", "make"),
            ("FOO=bar env", "env"),
            ("FOO=bar make", "make"),
            ("{ echo a; }", "echo"),
            ("(cd a && cargo build)", "cargo"),
            (". ./build.sh", "build"),
            ("source ~/deploy.sh prod", "deploy"),
            ("time python train.py --epochs 3", "train"),
            ("sudo -u bob make install", "make"),
            ("env -i A=b nohup ./x.sh", "x"),
            ("exec ./serve", "serve"),
            ("make && make test", "make"),
            ("pytest tests/", "pytest"),
        ] {
            assert_eq!(shell_name(text), name, "{text}");
        }
    }
}
