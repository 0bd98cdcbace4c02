//! Starting jobs as the tests do and reading what the commands print:
//! `launch` (`run`), the `Jobs` store of `job`, gated jobs, outputs and
//! exit codes.

use super::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A command that must have succeeded with nothing on stderr.
pub fn ok(out: &Output, what: &str) {
    assert!(out.status.success() && out.stderr.is_empty(), "{what}: status {}, stderr:\n{}", out.status, stderr(out));
}

/// What `run` printed: `ID PID LOG`.
pub struct Launched {
    pub id: String,
    pub pid: i32,
    pub log: PathBuf,
}

/// `run args…`, which must succeed and print `ID PID LOG` on one line.
pub fn launch(env: &Env, args: &[&str]) -> Launched {
    let out = env.run("run", args);
    assert!(out.status.success(), "run {args:?} failed: {}", stderr(&out));
    let text = stdout(&out);
    let words: Vec<&str> = text.trim_end_matches('\n').split(' ').collect();
    assert_eq!(words.len(), 3, "run printed {text:?}, not `ID PID LOG`");
    assert_eq!(text.lines().count(), 1, "run printed more than one line: {text:?}");
    Launched {
        id: words[0].to_string(),
        pid: words[1].parse().unwrap_or_else(|_| panic!("run printed a pid that is not a number: {text:?}")),
        log: PathBuf::from(words[2]),
    }
}

/// A shell string that prints `started`, waits until `gate` exists, then
/// exits with `code`.
pub fn started_gated(gate: &Path, code: i32) -> String {
    format!("echo started; while [ ! -e {} ]; do sleep 0.02; done; exit {code}", gate.display())
}

pub fn open(gate: &Path) {
    write(gate, "");
}

/// `runlog ID --no-follow`, which must succeed; its stdout.
pub fn runlog(env: &Env, id: &str) -> String {
    let out = env.run("runlog", &[id, "--no-follow"]);
    assert!(out.status.success(), "runlog {id} failed: {}", stderr(&out));
    stdout(&out)
}

/// A command's failure: the status, and one line on stderr that names what
/// it must (and no panic).
pub fn one_line_error(out: &Output, code: i32, naming: &[&str], what: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "{what}: exit status {:?}, stderr: {err}", out.status);
    assert_eq!(err.lines().count(), 1, "{what}: not one line: {err:?}");
    assert!(!err.contains("panicked"), "{what} panicked: {err}");
    for n in naming {
        assert!(err.contains(n), "{what}: the error does not name {n:?}: {err}");
    }
}

/// The id that `run` printed.
pub fn id_of(out: &Output) -> String {
    stdout(out).split_whitespace().next().expect("run printed an id").to_string()
}

/// Text for a terminal holds no control character but newlines (C1 ones,
/// such as U+009B, a one-character CSI, included).
pub fn has_control_bytes(text: &[u8]) -> bool {
    let s = String::from_utf8_lossy(text);
    s.chars().any(|c| c.is_control() && c != '\n')
}

/// A finished job made by `run --name NAME true`; returns its id.
pub fn finished(env: &Env, name: &str) -> String {
    let id = env.start(&["--name", name, "true"]);
    assert_eq!(env.wait_ended(&id, SOON)["state"], "done");
    wait_watcher_gone(env, &id);
    id
}

/// A temporary store that, when the test ends (passing or not), force-stops
/// whatever it left running.
pub struct Jobs {
    pub env: Env,
}

impl Deref for Jobs {
    type Target = Env;
    fn deref(&self) -> &Env {
        &self.env
    }
}

impl Drop for Jobs {
    fn drop(&mut self) {
        let Ok(out) = self.env.cmd("runs").arg("--json").output() else {
            return;
        };
        let Ok(Value::Array(jobs)) = serde_json::from_slice::<Value>(&out.stdout) else {
            return;
        };
        let running: Vec<String> = jobs
            .iter()
            .filter(|j| j["state"] == "running")
            .filter_map(|j| j["id"].as_str().map(String::from))
            .collect();
        if !running.is_empty() {
            let _ = self.env.cmd("job").arg("stop").arg("--force").args(&running).output();
        }
    }
}

impl Jobs {
    /// `job ARGS…` from the test's directory.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_in(&self.root, args)
    }

    /// `job ARGS…` from `dir`, returning within `SOON` or failing the test.
    pub fn cli_in(&self, dir: &Path, args: &[&str]) -> Output {
        let mut c = self.cmd("job");
        c.args(args).current_dir(dir);
        output_within(c, SOON, &format!("job {args:?}"))
    }

    /// `job run ARGS…`, which must succeed and print the id alone.
    pub fn launch(&self, args: &[&str]) -> String {
        self.launch_in(&self.root, args)
    }

    pub fn launch_in(&self, dir: &Path, args: &[&str]) -> String {
        let mut all = vec!["run"];
        all.extend_from_slice(args);
        let out = self.cli_in(dir, &all);
        assert!(out.status.success(), "job {all:?} failed: {}", stderr(&out));
        the_id(&out)
    }

    /// A line of shell, as a user would type it, with `job` (and any fake
    /// tools in `bin`) on PATH.
    pub fn sh(&self, dir: &Path, bin: &Path, line: &str) -> Output {
        let path = format!(
            "{}:{}:{}",
            bin.display(),
            super::bin("job").parent().expect("the binaries' directory").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut c = self.tool("sh");
        c.arg("-c").arg(line).env("PATH", path).current_dir(dir);
        output_within(c, SOON, line)
    }

    /// The ids of the job directories in the store.
    pub fn ids(&self) -> Vec<String> {
        let Ok(rd) = std::fs::read_dir(&self.store) else {
            return vec![];
        };
        let mut ids: Vec<String> = rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        ids.sort();
        ids
    }

    pub fn meta(&self, id: &str) -> Value {
        let text = std::fs::read_to_string(self.job_dir(id).join("meta.json")).expect("reading meta.json");
        serde_json::from_str(&text).expect("meta.json is JSON")
    }

    /// Makes a finished job look as if it ended `ago`: rewrites the last
    /// token of its `status` (the end time).
    pub fn age(&self, id: &str, ago: chrono::Duration) {
        let path = self.job_dir(id).join("status");
        let text = std::fs::read_to_string(&path).expect("reading status");
        let mut words: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(words.len(), 4, "status of {id}: {text:?}");
        let when = (chrono::Local::now() - ago).to_rfc3339_opts(chrono::SecondsFormat::Millis, false);
        words[3] = &when;
        write(&path, &format!("{}\n", words.join(" ")));
    }

    /// A finished job of this state, made for real.
    pub fn ended(&self, cmd: &str, name: &str) -> String {
        let id = self.launch(&[cmd, "--name", name]);
        self.wait_ended(&id, SOON);
        id
    }

    /// The job's pid, from its `pid` file.
    /// The job's pid, as meta.json has it from the launch on (the `pid`
    /// file is written by the watcher just after, and never if the test
    /// kills the watcher first).
    pub fn pid(&self, id: &str) -> i64 {
        self.meta(id)["pid"].as_i64().unwrap_or_else(|| panic!("no pid in the meta.json of {id}"))
    }
}

pub fn jobs() -> Jobs {
    Jobs { env: Env::new() }
}

/// The id a `job run` printed: its whole stdout is that one line.
pub fn the_id(out: &Output) -> String {
    let text = stdout(out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "job run printed {text:?}");
    assert!(!lines[0].contains(' '), "job run printed more than an id: {text:?}");
    lines[0].to_string()
}

pub fn json_of(out: &Output) -> Value {
    assert!(out.status.success(), "failed: {}", stderr(out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(out)))
}

pub fn ids_of(list: &Value) -> Vec<String> {
    list.as_array().expect("a JSON array").iter().map(|j| j["id"].as_str().expect("an id").to_string()).collect()
}

pub fn code(out: &Output) -> i32 {
    out.status.code().expect("an exit code, not a signal")
}

/// A running command whose stdout is read line by line as it comes.
pub struct Streaming {
    pub child: Child,
    pub lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Streaming {
    pub fn start(mut cmd: Command) -> Streaming {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("starting a command");
        let out = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Streaming { child, lines, seen: vec![] }
    }

    /// Waits for a line holding `text`.
    pub fn expect_line(&mut self, text: &str) {
        let deadline = std::time::Instant::now() + SOON;
        while !self.seen.iter().any(|l| l.contains(text)) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => self.seen.push(l),
                Err(_) => panic!("no line with {text:?} within {SOON:?}; got {:?}", self.seen),
            }
        }
    }

    /// Waits for the command to exit; returns its exit code and stderr.
    pub fn finish(mut self) -> (i32, Vec<String>, String) {
        let mut status = None;
        wait_until(SOON, "the command to exit", || {
            status = self.child.try_wait().expect("checking the command");
            status.is_some()
        });
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(l);
        }
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        (status.and_then(|s| s.code()).expect("an exit code"), std::mem::take(&mut self.seen), err)
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A shell command that prints `first`, waits until `gate` exists, prints
/// `second`, then exits with `code`.
pub fn gated(gate: &Path, code: i32) -> String {
    format!("echo first; while [ ! -e '{}' ]; do sleep 0.05; done; echo second; exit {code}", gate.display())
}

pub fn canonical(p: &Path) -> String {
    std::fs::canonicalize(p).expect("canonicalizing a test directory").display().to_string()
}

pub fn git_init(dir: &Path) {
    assert!(on_path("git"), "git is not installed (the tests need Rust and git)");
    let st = Command::new("git").args(["init", "-q"]).current_dir(dir).status().expect("running git init");
    assert!(st.success(), "git init failed in {}", dir.display());
}

/// Waits until the job has ended and what it used is recorded: in
/// `meta.json`, a moment after its end is visible (status first).
pub fn wait_used(env: &Env, id: &str) -> Value {
    // Jobs of known memory and CPU use (python3) are slow to end on a busy machine.
    const SOON: Duration = Duration::from_secs(60);
    env.wait_ended(id, SOON);
    let mut j = Value::Null;
    wait_until(SOON, "what the job used in meta.json", || {
        j = env.job(id);
        !j["max_rss_kib"].is_null()
    });
    j
}
