//! The fronts, one file each, and what they share: reading the
//! environment, the job's state (store record + process liveness),
//! resolving what the user typed to a job, launching, waiting, following,
//! and writing to a terminal or a pipe.

pub mod job;
pub mod run;
pub mod runlog;
pub mod runrm;
pub mod runs;

use crate::proc;
use crate::store::{self, Job, Meta, State, Store};
use crate::watch;
use crate::{Exit, Fail, Res};
use serde::Serialize;
use serde_json::value::RawValue;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, IsTerminal, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Parses a front's arguments. Usage errors become one line naming the
/// flag, exit 2; `--help` and `--version` print and exit 0.
pub fn parse<T: clap::Parser>(args: Vec<OsString>) -> Res<T> {
    T::try_parse_from(args).map_err(|e| {
        use clap::error::ErrorKind::*;
        use clap::error::{ContextKind, ContextValue};
        match e.kind() {
            DisplayHelp | DisplayVersion | DisplayHelpOnMissingArgumentOrSubcommand => {
                let _ = e.print();
                let code = if e.kind() == DisplayHelpOnMissingArgumentOrSubcommand { Exit::Usage } else { Exit::Ok };
                Fail::quiet(code)
            }
            _ => {
                let text = e.render().to_string();
                let first = text.lines().next().unwrap_or("invalid arguments");
                let mut first = first.strip_prefix("error: ").unwrap_or(first).to_string();
                // A huge value (a 10,000-character --name) is shown cut, so
                // the error stays one readable line.
                if let Some(ContextValue::String(v)) = e.get(ContextKind::InvalidValue) {
                    if v.chars().count() > 40 {
                        let cut: String = v.chars().take(40).collect();
                        first = first.replacen(v.as_str(), &format!("{cut}…"), 1);
                    }
                }
                // A closed set of values (`--status`) is listed.
                if let Some(ContextValue::Strings(valid)) = e.get(ContextKind::ValidValue) {
                    first = format!("{first}; possible values: {}", valid.join(", "));
                }
                Fail::new(Exit::Usage, format!("{} (see --help)", clean(&first)))
            }
        }
    })
}

pub fn usage(msg: impl Into<String>) -> Fail {
    Fail::new(Exit::Usage, msg)
}

pub fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The store, from RUN_DIR / XDG_DATA_HOME / HOME.
/// A relative RUN_DIR is taken from the working directory (the watcher
/// leaves it, so the store's path must not depend on it).
pub fn store() -> Res<Store> {
    let store =
        Store::from_env(std::env::var_os("RUN_DIR"), std::env::var_os("XDG_DATA_HOME"), std::env::var_os("HOME"))?;
    if store.root().is_absolute() {
        return Ok(store);
    }
    Ok(Store::at(current_dir()?.join(store.root())))
}

// --- output -------------------------------------------------------------------

/// Standard output; a closed pipe (`runs | head`) ends the command quietly.
pub struct Out {
    w: io::BufWriter<io::StdoutLock<'static>>,
    pub color: bool,
}

impl Out {
    pub fn new() -> Out {
        let stdout = io::stdout();
        let color = stdout.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        Out { w: io::BufWriter::new(stdout.lock()), color }
    }
    pub fn line(&mut self, s: &str) -> Res<()> {
        self.bytes(s.as_bytes())?;
        self.bytes(b"\n")
    }
    pub fn bytes(&mut self, b: &[u8]) -> Res<()> {
        self.w.write_all(b).map_err(out_err)
    }
    /// `v` as pretty JSON and a newline, streamed (a big listing is never
    /// one string in memory).
    pub fn json(&mut self, v: &impl serde::Serialize) -> Res<()> {
        let mut ser = serde_json::Serializer::with_formatter(&mut self.w, SafeJson(Default::default()));
        v.serialize(&mut ser).map_err(|e| match e.io_error_kind() {
            Some(kind) => out_err(io::Error::from(kind)),
            None => Fail::from(format!("writing JSON: {e}")),
        })?;
        self.bytes(b"\n")
    }
    pub fn flush(&mut self) -> Res<()> {
        self.w.flush().map_err(out_err)
    }
    pub fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
}

/// Pretty JSON in which no text holds DEL or a C1 control character
/// (U+0080 to U+009F; a terminal may take U+009B for the start of an escape
/// sequence): they are written as `\u` escapes, which every JSON reader
/// decodes to the same text. serde_json already escapes C0 characters.
struct SafeJson<'a>(serde_json::ser::PrettyFormatter<'a>);

fn write_without_c1<W: ?Sized + io::Write>(w: &mut W, text: &str) -> io::Result<()> {
    let mut from = 0;
    for (i, c) in text.char_indices() {
        if ('\u{7f}'..='\u{9f}').contains(&c) {
            w.write_all(&text.as_bytes()[from..i])?;
            write!(w, "\\u{:04x}", u32::from(c))?;
            from = i + c.len_utf8();
        }
    }
    w.write_all(&text.as_bytes()[from..])
}

impl serde_json::ser::Formatter for SafeJson<'_> {
    fn write_string_fragment<W: ?Sized + io::Write>(&mut self, w: &mut W, fragment: &str) -> io::Result<()> {
        write_without_c1(w, fragment)
    }
    /// A `--context` value, kept as given: outside its strings JSON is
    /// ASCII, so the same escapes are valid there.
    fn write_raw_fragment<W: ?Sized + io::Write>(&mut self, w: &mut W, fragment: &str) -> io::Result<()> {
        write_without_c1(w, fragment)
    }
    fn begin_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + io::Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + io::Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object_value(w)
    }
}

fn out_err(e: io::Error) -> Fail {
    if e.kind() == io::ErrorKind::BrokenPipe {
        Fail::quiet(Exit::Ok)
    } else {
        Fail::from(format!("writing to standard output: {e}"))
    }
}

/// Text from a job (its command, its name) made safe for a terminal:
/// control characters are shown escaped, never sent.
pub fn clean(s: &str) -> String {
    if !s.chars().any(|c| c.is_control()) {
        return s.to_string();
    }
    s.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

// --- state ----------------------------------------------------------------------

/// The job's state: what `status` says; else `running` while the job's
/// process or its watcher lives (checked by pid, start time and boot id);
/// else `lost`.
pub fn state(job: &mut Job, boot: &str) -> State {
    if let Some(e) = &job.end {
        return e.state;
    }
    let live = is_live(job, boot);
    // Read `status` after the liveness check: the watcher records the end
    // before it exits, so a job seen dead with no `status` after that is
    // lost, and a live watcher may have recorded the end just now.
    let _ = job.reread_end();
    match &job.end {
        Some(e) => e.state,
        None if live => State::Running,
        None => State::Lost,
    }
}

fn is_live(job: &Job, boot: &str) -> bool {
    let m = &job.meta;
    if m.boot_id != boot {
        return false;
    }
    let job_alive = matches!((job.pid_file(), m.pid_start), (Some(p), Some(s)) if proc::alive(p, s));
    job_alive || matches!((m.watcher_pid, m.watcher_start), (Some(p), Some(s)) if proc::alive(p, s))
}

pub fn boot_id() -> String {
    proc::boot_id()
}

/// Every job with its state, oldest first; damaged entries are named on
/// stderr and left out.
pub fn load_all(store: &Store, front: &str) -> Res<Vec<(Job, State)>> {
    let (jobs, damaged) = store.list()?;
    report_damaged(front, &damaged);
    let boot = boot_id();
    Ok(jobs
        .into_iter()
        .map(|mut j| {
            let s = state(&mut j, &boot);
            (j, s)
        })
        // Removed (by another runrm) while we looked: gone, not lost.
        .filter(|(j, s)| *s != State::Lost || j.dir.exists())
        .collect())
}

pub fn report_damaged(front: &str, damaged: &[store::Damaged]) {
    for d in damaged {
        eprintln!("{front}: skipping damaged entry {}: {}", clean(&d.path.display().to_string()), clean(&d.reason));
    }
}

/// What the user typed, to one job: an exact id, else a name (the newest
/// job of that name), else a unique id prefix.
pub fn resolve(store: &Store, query: &str) -> Res<Job> {
    if query.is_empty() {
        return Err(Fail::from("an empty job id".to_string()));
    }
    match store.get(query) {
        Ok(Some(job)) => return Ok(job),
        Ok(None) => {}
        Err(d) => return Err(Fail::from(format!("job {}: damaged: {}", clean(&d.id), clean(&d.reason)))),
    }
    let (mut jobs, _) = store.list()?;
    let keys: Vec<(&str, &str)> = jobs.iter().map(|j| (j.id.as_str(), j.meta.name.as_str())).collect();
    match store::pick(&keys, query) {
        store::Pick::One(i) => Ok(jobs.swap_remove(i)),
        store::Pick::NoMatch => Err(Fail::from(format!("no job '{}' in {}", clean(query), store.root().display()))),
        store::Pick::Ambiguous(matches) => {
            let n = matches.len();
            let names: Vec<&str> = matches.iter().rev().take(10).map(|&i| jobs[i].id.as_str()).collect();
            Err(Fail::from(format!(
                "'{}' matches {n} jobs: {}{}",
                clean(query),
                names.join(", "),
                if n > 10 { ", …" } else { "" }
            )))
        }
    }
}

// --- JSON -----------------------------------------------------------------------

#[derive(Serialize)]
pub struct NotifyView {
    pub topic: String,
    pub state: String,
    pub error: Option<String>,
}

/// One job as `runs --json` and `job list --json` print it: a stable
/// interface, documented in README.md.
#[derive(Serialize)]
pub struct View<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub state: State,
    pub exit_code: Option<i32>,
    pub signal: Option<String>,
    pub pid: Option<i32>,
    pub command: &'a str,
    pub argv: &'a [String],
    pub cwd: &'a str,
    pub project: &'a str,
    pub host: &'a str,
    pub user: &'a str,
    pub started_at: &'a str,
    pub ended_at: Option<String>,
    pub duration_s: Option<f64>,
    pub log: String,
    pub key: Option<&'a str>,
    pub context: Option<&'a RawValue>,
    pub timeout_s: Option<u64>,
    pub notify: Option<NotifyView>,
}

pub fn view(job: &Job, state: State) -> View<'_> {
    let m = &job.meta;
    let (exit_code, signal) = match job.end.as_ref().map(|e| e.outcome) {
        Some(store::Outcome::Exited(c)) => (Some(c), None),
        Some(store::Outcome::Signaled(s)) => (None, Some(store::signal_name(s))),
        None => (None, None),
    };
    View {
        id: &job.id,
        name: &m.name,
        state,
        exit_code,
        signal,
        pid: m.pid,
        command: &m.command,
        argv: &m.argv,
        cwd: &m.cwd,
        project: &m.project,
        host: &m.host,
        user: &m.user,
        started_at: &m.started_at,
        ended_at: job.end.as_ref().map(|e| e.ended_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, false)),
        duration_s: duration(job, state),
        log: job.log().display().to_string(),
        key: m.key.as_deref(),
        context: m.context.as_deref(),
        timeout_s: m.timeout_s,
        notify: notify_view(job, state),
    }
}

fn notify_view(job: &Job, state: State) -> Option<NotifyView> {
    let topic = job.meta.notify_topic.clone()?;
    let (st, error) = match job.notified() {
        Some(s) if s == "sent" => ("sent".to_string(), None),
        Some(s) => ("failed".to_string(), Some(s.strip_prefix("failed: ").unwrap_or(&s).to_string())),
        None if state == State::Lost => ("failed".to_string(), Some("the job was lost".to_string())),
        None => ("pending".to_string(), None),
    };
    Some(NotifyView { topic, state: st, error })
}

/// Seconds the job ran (so far, if running); none if lost.
pub fn duration(job: &Job, state: State) -> Option<f64> {
    let end = match (&job.end, state) {
        (Some(e), _) => e.ended_at,
        (None, State::Running) => chrono::Local::now().fixed_offset(),
        _ => return None,
    };
    Some(((end - job.started).num_milliseconds().max(0) as f64) / 1000.0)
}

// --- launching --------------------------------------------------------------------

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
pub fn launch(store: &Store, spec: Spec) -> Res<Launched> {
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
    let ntfy = meta.notify_topic.as_ref().map(|_| {
        crate::ntfy::Config::new(
            env("NTFY_SERVER"),
            env("NTFY_TOKEN"),
            env("NTFY_USER"),
            std::env::var("NTFY_PASSWORD").ok(),
            env("NTFY_TIMEOUT"),
        )
    });
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

pub fn current_dir() -> Res<PathBuf> {
    std::env::current_dir().map_err(|e| Fail::from(format!("reading the working directory: {e}")))
}

/// Refuses a shell string whose first word can only be a command on PATH
/// and is not there (`run 'nosuch --flag'`, `job run "nosuch"`), before
/// anything starts: exit 127, as the shell itself would.
pub fn check_shell_command(text: &str, path: Option<&OsStr>) -> Res<()> {
    match plain_first_word(text) {
        Some(word) if proc::which(OsStr::new(word), path).is_none() => {
            Err(Fail::new(Exit::NotFound, format!("{}: command not found", clean(word))))
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

// --- waiting and following ----------------------------------------------------------

/// Watches job directories for changes (inotify, via the notify crate).
/// Only changes wake it: our own reads of the job's files (opening `pid`,
/// reading the log) raise access events too, and waking on those would
/// make waiting a busy loop.
struct DirWatch {
    _watcher: Option<notify::RecommendedWatcher>,
    rx: std::sync::mpsc::Receiver<()>,
    /// Keeps the channel open when no watcher could be made (inotify
    /// limits), so that waiting falls back to the one-second re-check
    /// instead of spinning.
    _tx: std::sync::mpsc::Sender<()>,
}

impl DirWatch {
    fn new(dirs: &[&Path]) -> DirWatch {
        use notify::event::{AccessKind, AccessMode, EventKind};
        use notify::Watcher;
        let (tx, rx) = std::sync::mpsc::channel();
        let keep = tx.clone();
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let read_only = res
                .as_ref()
                .is_ok_and(|e| matches!(e.kind, EventKind::Access(k) if k != AccessKind::Close(AccessMode::Write)));
            if !read_only {
                let _ = tx.send(());
            }
        })
        .ok()
        .map(|mut w| {
            for d in dirs {
                let _ = w.watch(d, notify::RecursiveMode::NonRecursive);
            }
            w
        });
        DirWatch { _watcher: watcher, rx, _tx: keep }
    }

    /// Sleeps until something changes or `d` passes. The jobs' state is
    /// also re-checked every second: a job lost with its watcher changes no
    /// file.
    fn wait(&self, d: Duration) {
        let _ = self.rx.recv_timeout(d.min(Duration::from_secs(1)));
        while self.rx.try_recv().is_ok() {}
    }
}

/// Waits until every job has ended; false if `timeout` ran out first.
///
/// For each job in turn it blocks on the lock its watcher holds until the
/// end is recorded (or the watcher dies), as `nq -w` does: no file watch to
/// set up and tear down. Where that cannot tell (a lock that is free while
/// the job still runs: its watcher was killed), it watches the directories
/// and re-checks every second.
pub fn wait_all(jobs: &mut [Job], timeout: Option<Duration>) -> bool {
    let dirs: Vec<PathBuf> = jobs.iter().map(|j| j.dir.clone()).collect();
    let refs: Vec<&Path> = dirs.iter().map(PathBuf::as_path).collect();
    let deadline = timeout.map(|t| Instant::now() + t);
    let boot = boot_id();
    let (tx, rx) = std::sync::mpsc::channel::<usize>();
    let mut locked = vec![false; jobs.len()];
    let mut pending = None;
    // The watch is made only when there is something to wait for (tearing
    // an inotify watch down costs a process some milliseconds at exit), and
    // the state is checked again once it is in place.
    let mut watch = None;
    loop {
        let Some(i) = jobs.iter_mut().position(|j| state(j, &boot) == State::Running) else { return true };
        let left = match deadline {
            Some(d) if Instant::now() >= d => return false,
            Some(d) => d - Instant::now(),
            None => Duration::from_secs(1),
        };
        if pending.is_none() && !locked[i] {
            locked[i] = true;
            if let Some(f) = jobs[i].end_lock() {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    let _ = f.lock_shared();
                    let _ = tx.send(i);
                });
                pending = Some(i);
            }
        }
        if let Some(p) = pending {
            match rx.recv_timeout(left) {
                Ok(done) if done == p => pending = None,
                _ => {}
            }
            continue;
        }
        match &watch {
            None => watch = Some(DirWatch::new(&refs)),
            Some(w) => w.wait(left),
        }
    }
}

/// Copies the job's log to `out` from byte `from`, following it while the
/// job runs. Returns the job's final state (or `running` if not following).
pub fn show_log(job: &mut Job, from: u64, follow: bool, out: &mut Out) -> Res<State> {
    let path = job.log();
    let mut f = File::open(&path).map_err(|e| Fail::from(store::io_err("reading", &path, e)))?;
    let mut pos = f.seek(SeekFrom::Start(from)).map_err(|e| Fail::from(store::io_err("reading", &path, e)))?;
    let boot = boot_id();
    let mut watch = None;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let st = state(job, &boot);
        loop {
            let n = f.read(&mut buf).map_err(|e| Fail::from(store::io_err("reading", &path, e)))?;
            if n == 0 {
                break;
            }
            pos += n as u64;
            out.bytes(&buf[..n])?;
        }
        out.flush()?;
        if !follow || st != State::Running {
            return Ok(st);
        }
        // Made once there is something to follow, then the state and the
        // log are read again with it in place (as in `wait_all`).
        let Some(w) = &watch else {
            watch = Some(DirWatch::new(&[job.dir.as_path()]));
            continue;
        };
        w.wait(Duration::from_secs(1));
        if let Ok(m) = std::fs::metadata(&path) {
            if m.len() < pos {
                eprintln!("(log truncated)");
                pos = f.seek(SeekFrom::Start(0)).unwrap_or(0);
            }
        }
    }
}

/// How long a hidden leftover (`.new-*`, `.rm-*`) is left alone: a launch
/// or a removal in progress takes milliseconds.
pub const LEFTOVER_AGE: Duration = Duration::from_secs(600);

/// Removes (or, with `dry_run`, names) the abandoned leftovers of
/// interrupted launches and removals; returns the bytes they held.
pub fn sweep_leftovers(store: &Store, dry_run: bool, out: &mut Out) -> Res<u64> {
    let (names, bytes) = store.sweep_leftovers(LEFTOVER_AGE, dry_run);
    for name in names {
        let verb = if dry_run { "would remove" } else { "removed" };
        out.line(&format!("{verb} {}: left by an interrupted launch or removal", clean(&name)))?;
    }
    Ok(bytes)
}

/// Where the log's last `n` lines start.
pub fn tail_offset(path: &Path, n: usize) -> Res<u64> {
    store::tail_start(path, n).map_err(|e| Fail::from(store::io_err("reading", path, e)))
}

/// Exit status for a job's end: 0 if it succeeded, else 1.
pub fn exit_for(state: State) -> Exit {
    if state == State::Done {
        Exit::Ok
    } else {
        Exit::Error
    }
}

/// A job's one-line summary: mark, id, pid, state and how long, command.
pub fn summary(out: &Out, job: &Job, state: State) -> String {
    let (mark, color) = match state {
        State::Running => ("●", "32"),
        State::Done => ("○", "2"),
        State::Failed | State::Killed | State::Timeout => ("✗", "31"),
        State::Stopped => ("■", "33"),
        State::Lost => ("?", "33"),
    };
    let what = match (&job.end, state) {
        (Some(e), State::Done) => {
            let _ = e;
            "done".to_string()
        }
        (Some(e), _) => store::describe_end(e),
        (None, s) => s.as_str().to_string(),
    };
    let took = duration(job, state).map(|d| format!(" {}", store::human_duration(d))).unwrap_or_default();
    let notified = match notify_view(job, state).map(|n| n.state) {
        Some(s) if s == "sent" => " ✉",
        Some(s) if s == "failed" => " ✉✗",
        Some(_) => " ✉…",
        None => "",
    };
    let pid = job.meta.pid.map(|p| p.to_string()).unwrap_or_else(|| "?".into());
    format!(
        "{} {} (PID: {pid}) - {}{took}{notified}  {}",
        out.paint(color, mark),
        clean(&job.id),
        out.paint(color, &what),
        clean(&job.meta.command)
    )
}

/// Human-readable bytes: `512 B`, `3.4 KiB`, `12.0 MiB`.
pub fn human_bytes(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

/// Is stdin/stderr a terminal (where a picker can run)?
pub fn interactive() -> bool {
    io::stdin().is_terminal() && io::stderr().is_terminal()
}
