//! `job`: every command and flag of the job manual, run as a user would,
//! on a temporary store shared with `run` and `runs`.

mod common;

use common::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read};
use std::ops::Deref;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const SOON: Duration = Duration::from_secs(20);

/// A temporary store that, when the test ends (passing or not), force-stops
/// whatever it left running.
struct Jobs {
    env: Env,
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

fn jobs() -> Jobs {
    Jobs { env: Env::new() }
}

impl Jobs {
    /// `job ARGS…` from the test's directory.
    fn cli(&self, args: &[&str]) -> Output {
        self.cli_in(&self.root, args)
    }

    /// `job ARGS…` from `dir`, returning within `SOON` or failing the test.
    fn cli_in(&self, dir: &Path, args: &[&str]) -> Output {
        let mut c = self.cmd("job");
        c.args(args).current_dir(dir);
        output_within(c, SOON, &format!("job {args:?}"))
    }

    /// `job run ARGS…`, which must succeed and print the id alone.
    fn launch(&self, args: &[&str]) -> String {
        self.launch_in(&self.root, args)
    }

    fn launch_in(&self, dir: &Path, args: &[&str]) -> String {
        let mut all = vec!["run"];
        all.extend_from_slice(args);
        let out = self.cli_in(dir, &all);
        assert!(out.status.success(), "job {all:?} failed: {}", stderr(&out));
        the_id(&out)
    }

    /// A line of shell, as a user would type it, with `job` (and any fake
    /// tools in `bin`) on PATH.
    fn sh(&self, dir: &Path, bin: &Path, line: &str) -> Output {
        let path = format!(
            "{}:{}:{}",
            bin.display(),
            common::bin("job").parent().expect("the binaries' directory").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut c = self.tool("sh");
        c.arg("-c").arg(line).env("PATH", path).current_dir(dir);
        output_within(c, SOON, line)
    }

    /// The ids of the job directories in the store.
    fn ids(&self) -> Vec<String> {
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

    fn meta(&self, id: &str) -> Value {
        let text = std::fs::read_to_string(self.job_dir(id).join("meta.json")).expect("reading meta.json");
        serde_json::from_str(&text).expect("meta.json is JSON")
    }

    /// Makes a finished job look as if it ended `ago`: rewrites the last
    /// token of its `status` (the end time).
    fn age(&self, id: &str, ago: chrono::Duration) {
        let path = self.job_dir(id).join("status");
        let text = std::fs::read_to_string(&path).expect("reading status");
        let mut words: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(words.len(), 4, "status of {id}: {text:?}");
        let when = (chrono::Local::now() - ago).to_rfc3339_opts(chrono::SecondsFormat::Millis, false);
        words[3] = &when;
        write(&path, &format!("{}\n", words.join(" ")));
    }

    /// A finished job of this state, made for real.
    fn ended(&self, cmd: &str, name: &str) -> String {
        let id = self.launch(&[cmd, "--name", name]);
        self.wait_ended(&id, SOON);
        id
    }

    /// The job's pid, from its `pid` file.
    /// The job's pid, as meta.json has it from the launch on (the `pid`
    /// file is written by the watcher just after, and never if the test
    /// kills the watcher first).
    fn pid(&self, id: &str) -> i64 {
        self.meta(id)["pid"].as_i64().unwrap_or_else(|| panic!("no pid in the meta.json of {id}"))
    }
}

/// The id a `job run` printed: its whole stdout is that one line.
fn the_id(out: &Output) -> String {
    let text = stdout(out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "job run printed {text:?}");
    assert!(!lines[0].contains(' '), "job run printed more than an id: {text:?}");
    lines[0].to_string()
}

fn json_of(out: &Output) -> Value {
    assert!(out.status.success(), "failed: {}", stderr(out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(out)))
}

fn ids_of(list: &Value) -> Vec<String> {
    list.as_array().expect("a JSON array").iter().map(|j| j["id"].as_str().expect("an id").to_string()).collect()
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("an exit code, not a signal")
}

/// Runs `cmd` to the end; fails the test if it has not finished (stdout
/// closed and exited) within `within`.
fn output_within(mut cmd: Command, within: Duration, what: &str) -> Output {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(cmd.output());
    });
    match rx.recv_timeout(within) {
        Ok(out) => out.expect("starting a test command"),
        Err(_) => panic!("{what} did not finish within {within:?}"),
    }
}

/// A running command whose stdout is read line by line as it comes.
struct Streaming {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Streaming {
    fn start(mut cmd: Command) -> Streaming {
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
    fn expect_line(&mut self, text: &str) {
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
    fn finish(mut self) -> (i32, Vec<String>, String) {
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
fn gated(gate: &Path, code: i32) -> String {
    format!("echo first; while [ ! -e '{}' ]; do sleep 0.05; done; echo second; exit {code}", gate.display())
}

/// Live processes (not zombies) whose process group is `pgid`.
fn group_members(pgid: i64) -> Vec<i64> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i64>().ok())
        .filter(|&pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let Some((_, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            let f: Vec<&str> = rest.split_whitespace().collect();
            f.len() > 2 && f[0] != "Z" && f[0] != "X" && f[2] == pgid.to_string()
        })
        .collect()
}

fn pgrp_of(pid: i64) -> i64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("reading /proc/PID/stat");
    let (_, rest) = stat.rsplit_once(')').expect("a stat line");
    rest.split_whitespace().nth(2).and_then(|s| s.parse().ok()).expect("a pgrp")
}

fn kill(pid: i64) {
    let st = Command::new("kill").args(["-KILL", &pid.to_string()]).status().expect("running kill");
    assert!(st.success(), "kill -KILL {pid} failed");
}

/// SIGKILL to a job's whole process group (its pid), so that nothing it
/// started outlives the test.
fn kill_group(pgid: i64) {
    // The job makes its group (setsid) as it starts, maybe after `job run`
    // has returned.
    wait_until(SOON, "the job's process group", || !group_members(pgid).is_empty());
    let st = Command::new("kill").args(["-KILL", "--", &format!("-{pgid}")]).status().expect("running kill");
    assert!(st.success(), "kill -KILL -{pgid} failed");
}

fn canonical(p: &Path) -> String {
    std::fs::canonicalize(p).expect("canonicalizing a test directory").display().to_string()
}

fn one_line_naming(out: &Output, flag: &str) {
    let err = stderr(out);
    assert_eq!(code(out), 2, "expected a usage error, got {:?}: {err}", out.status);
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err:?}");
    assert!(err.contains(flag), "the error does not name {flag}: {err}");
    assert!(err.len() < 400, "the error is {} bytes long: {err}", err.len());
}

fn git_init(dir: &Path) {
    assert!(on_path("git"), "git is not installed (the tests need Rust and git)");
    let st = Command::new("git").args(["init", "-q"]).current_dir(dir).status().expect("running git init");
    assert!(st.success(), "git init failed in {}", dir.display());
}

// --- job run ---------------------------------------------------------------------

#[test]
fn job_run_prints_the_id_alone_and_returns_while_the_job_runs() {
    let env = jobs();
    let id = env.launch(&["sleep 300"]);
    let j = env.job(&id);
    assert_eq!(j["state"], "running", "{j}");
    assert_eq!(j["command"], "sleep 300");
    assert_eq!(j["argv"], json!(["sh", "-c", "sleep 300"]));
    assert_eq!(env.ids(), vec![id.clone()]);
}

#[test]
fn jobs_started_by_run_and_by_job_run_share_one_store() {
    let env = jobs();
    let from_job = env.launch(&["sleep 300"]);
    let from_run = env.start(&["sleep", "301"]);
    let runs: Vec<Value> = env.jobs();
    assert!(runs.iter().any(|j| j["id"] == from_job.as_str()), "job run's job is not in runs --json");
    let all = ids_of(&json_of(&env.cli(&["list", "--all", "--json"])));
    assert!(all.contains(&from_job) && all.contains(&from_run), "job list --all: {all:?}");
    let status = env.cli(&["status", &from_run]);
    assert!(stdout(&status).contains("sleep 301"), "{}", stdout(&status));
    let stop = env.cli(&["stop", &from_run]);
    assert!(stop.status.success(), "{}", stderr(&stop));
    assert_eq!(env.state(&from_run), "stopped");
}

#[test]
fn a_named_job_is_found_by_name_by_status_logs_and_wait() {
    let env = jobs();
    let gate = env.root.join("go");
    let id = env.launch(&[&gated(&gate, 0), "--name", "build"]);
    assert!(id.starts_with("build_"), "{id}");
    let status = env.cli(&["status", "build"]);
    assert!(stdout(&status).contains(&id), "{}", stdout(&status));
    let waiter = Streaming::start({
        let mut c = env.cmd("job");
        c.args(["wait", "build"]);
        c
    });
    write(&gate, "");
    let (rc, _, err) = waiter.finish();
    assert_eq!(rc, 0, "job wait build: {err}");
    let logs = env.cli(&["logs", "build"]);
    assert!(stdout(&logs).contains("first\nsecond\n"), "{}", stdout(&logs));
    assert_eq!(env.cli(&["status", "build", "--json"]).status.code(), Some(0));
}

#[test]
fn names_that_are_not_plain_file_names_are_refused_naming_the_flag() {
    let env = jobs();
    let long = "x".repeat(10_000);
    for name in [".", "..", "a/b", "/", "", long.as_str()] {
        let out = env.cli(&["run", "true", "--name", name]);
        one_line_naming(&out, "--name");
    }
    assert!(env.ids().is_empty(), "a job was started: {:?}", env.ids());
}

#[test]
fn a_timeout_ends_a_plain_job_in_state_timeout() {
    let env = jobs();
    let id = env.launch(&["sleep 30", "--timeout", "1s"]);
    let j = env.wait_ended(&id, SOON);
    assert_eq!(j["state"], "timeout", "{j}");
    assert_eq!(j["signal"], "SIGTERM", "{j}");
    assert_eq!(j["timeout_s"], 1);
    assert_eq!(code(&env.cli(&["wait", &id])), 1);
    assert!(env.log(&id).contains("=== timeout (SIGTERM)"), "{}", env.log(&id));
}

#[test]
fn a_timeout_still_ends_a_job_that_ignores_sigterm_by_sigkill_after_the_grace() {
    let env = jobs();
    let id = env.launch(&["trap '' TERM; sleep 30", "--timeout", "1s"]);
    let pid = env.pid(&id);
    let j = env.wait_ended(&id, SOON);
    assert_eq!(j["state"], "timeout", "{j}");
    assert_eq!(j["signal"], "SIGKILL", "{j}");
    let took = j["duration_s"].as_f64().expect("a duration");
    assert!(took < 25.0, "it ran {took} s: the sleep ran out, nothing killed it");
    assert!(group_members(pid).is_empty(), "left in the job's group: {:?}", group_members(pid));
}

#[test]
fn bad_durations_are_refused_before_anything_starts() {
    let env = jobs();
    one_line_naming(&env.cli(&["run", "sleep 30", "--timeout", "5x"]), "--timeout");
    assert!(env.ids().is_empty(), "a job was started: {:?}", env.ids());
    assert!(!env.store.join(".keys").exists());
    let id = env.launch(&["true"]);
    one_line_naming(&env.cli(&["wait", &id, "--timeout", "5x"]), "--timeout");
    one_line_naming(&env.cli(&["clean", "--older-than", "1.5d"]), "--older-than");
    one_line_naming(&env.cli(&["list", "--status", "sleeping"]), "--status");
    assert_eq!(env.ids(), vec![id]);
}

#[test]
fn context_is_stored_verbatim_and_shown_by_status_and_json() {
    let env = jobs();
    let ctx = r#"{"pr": 123, "env": "staging"}"#;
    let id = env.launch(&["true", "--context", ctx]);
    let raw = std::fs::read_to_string(env.job_dir(&id).join("meta.json")).expect("reading meta.json");
    assert!(raw.contains(&format!("\"context\": {ctx}")), "not verbatim in meta.json:\n{raw}");
    let human = stdout(&env.cli(&["status", &id]));
    assert!(human.contains(ctx), "{human}");
    let expected = json!({"pr": 123, "env": "staging"});
    assert_eq!(json_of(&env.cli(&["status", &id, "--json"]))["context"], expected);
    assert_eq!(json_of(&env.cli(&["list", "--json"]))[0]["context"], expected);
    assert_eq!(env.job(&id)["context"], expected);
}

#[test]
fn context_that_is_not_json_is_refused() {
    let env = jobs();
    for bad in ["not json", "{\"a\": 1", ""] {
        one_line_naming(&env.cli(&["run", "true", "--context", bad]), "--context");
    }
    assert!(env.ids().is_empty(), "a job was started: {:?}", env.ids());
}

#[test]
fn the_same_key_twice_gives_the_same_job_until_it_is_cleaned() {
    let env = jobs();
    let first = env.launch(&["--key", "k1", "sleep 300"]);
    let again = env.launch(&["--key", "k1", "sleep 300"]);
    assert_eq!(first, again);
    assert_eq!(env.ids(), vec![first.clone()]);
    assert_eq!(env.job(&first)["key"], "k1");
    // Any state: a stopped job still holds its key.
    assert!(env.cli(&["stop", &first]).status.success());
    assert_eq!(env.launch(&["--key", "k1", "sleep 300"]), first);
    // Once cleaned away, the key starts a new job.
    assert!(env.cli(&["clean", "--all"]).status.success());
    let fresh = env.launch(&["--key", "k1", "true"]);
    assert_ne!(fresh, first);
    assert_eq!(env.ids(), vec![fresh]);
}

#[test]
fn fifty_racing_launches_with_one_key_start_exactly_one_job() {
    let env = jobs();
    let children: Vec<Child> = (0..50)
        .map(|_| {
            env.cmd("job")
                .args(["run", "--key", "same", "sleep 1"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("starting job run")
        })
        .collect();
    let mut printed = Vec::new();
    for child in children {
        let out = child.wait_with_output().expect("waiting for job run");
        assert!(out.status.success(), "job run --key failed: {}", stderr(&out));
        printed.push(the_id(&out));
    }
    let ids = env.ids();
    assert_eq!(ids.len(), 1, "{} job directories: {ids:?}", ids.len());
    assert!(printed.iter().all(|p| *p == ids[0]), "not all printed {}: {printed:?}", ids[0]);
}

#[test]
fn run_wait_exits_as_the_job_did_without_echoing_its_log() {
    let env = jobs();
    let ok = env.cli(&["run", "echo hidden-output", "--wait"]);
    assert_eq!(code(&ok), 0, "{}", stderr(&ok));
    let id = the_id(&ok);
    assert_eq!(env.state(&id), "done");
    let bad = env.cli(&["run", "false", "--wait"]);
    assert_eq!(code(&bad), 1);
    assert_eq!(env.state(&the_id(&bad)), "failed");
    assert!(stderr(&bad).contains("failed (exit 1)"), "{}", stderr(&bad));
}

#[test]
fn run_wait_follow_streams_the_log_while_the_job_runs() {
    let env = jobs();
    let gate = env.root.join("go");
    let mut s = Streaming::start({
        let mut c = env.cmd("job");
        c.args(["run", &gated(&gate, 0), "--wait", "--follow"]);
        c
    });
    s.expect_line("first");
    assert!(!s.seen.iter().any(|l| l == "second"), "second printed before the gate opened");
    write(&gate, "");
    s.expect_line("second");
    let (rc, lines, err) = s.finish();
    assert_eq!(rc, 0, "{err}");
    assert!(lines.iter().any(|l| l.starts_with("=== done (exit 0)")), "{lines:?}");
}

// --- job list --------------------------------------------------------------------

#[test]
fn job_list_shows_the_jobs_of_the_current_project() {
    let env = jobs();
    let a = env.root.join("alpha");
    let deep = a.join("src/deep");
    let b = env.root.join("beta");
    std::fs::create_dir_all(&deep).expect("mkdir");
    std::fs::create_dir_all(&b).expect("mkdir");
    git_init(&a);
    let in_a =
        env.launch_in(&deep, &["true", "--name", "alpha-job", "--key", "ka", "--context", "[1, 2]", "--timeout", "1h"]);
    let in_b = env.launch_in(&b, &["true", "--name", "beta-job"]);
    for dir in [&a, &deep] {
        let listed = json_of(&env.cli_in(dir, &["list", "--json"]));
        assert_eq!(ids_of(&listed), vec![in_a.clone()], "from {}", dir.display());
        let j = &listed[0];
        assert_eq!(j["project"], canonical(&a));
        assert_eq!(j["cwd"], canonical(&deep));
        assert_eq!(j["name"], "alpha-job");
        assert_eq!(j["key"], "ka");
        assert_eq!(j["context"], json!([1, 2]));
        assert_eq!(j["timeout_s"], 3600);
        let human = stdout(&env.cli_in(dir, &["list"]));
        assert!(human.contains(&in_a) && !human.contains(&in_b), "{human}");
    }
    let listed = json_of(&env.cli_in(&b, &["list", "--json"]));
    assert_eq!(ids_of(&listed), vec![in_b.clone()]);
    assert_eq!(listed[0]["project"], canonical(&b));
    assert_eq!(listed[0]["key"], Value::Null);
    let all = ids_of(&json_of(&env.cli_in(&b, &["list", "--all", "--json"])));
    assert!(all.contains(&in_a) && all.contains(&in_b), "{all:?}");
    let empty = env.cli(&["list"]);
    assert!(empty.status.success());
    assert_eq!(stdout(&empty), "", "jobs of another project were listed");
    assert!(stderr(&empty).contains("no jobs"), "{}", stderr(&empty));
}

#[test]
fn job_list_status_filters_by_every_state() {
    let env = jobs();
    let done = env.ended("true", "d");
    let failed = env.ended("exit 3", "f");
    let timeout = env.launch(&["sleep 30", "--timeout", "1s", "--name", "t"]);
    env.wait_ended(&timeout, SOON);
    let stopped = env.launch(&["sleep 300", "--name", "s"]);
    assert!(env.cli(&["stop", &stopped]).status.success());
    let killed = env.launch(&["sleep 300", "--name", "k"]);
    kill_group(env.pid(&killed));
    env.wait_ended(&killed, SOON);
    let lost = env.launch(&["sleep 300", "--name", "l"]);
    let watcher = env.meta(&lost)["watcher_pid"].as_i64().expect("a watcher pid");
    kill(watcher);
    kill_group(env.pid(&lost));
    let running = env.launch(&["sleep 300", "--name", "r"]);
    env.wait_ended(&lost, SOON);
    for (state, id) in [
        ("running", &running),
        ("done", &done),
        ("failed", &failed),
        ("stopped", &stopped),
        ("timeout", &timeout),
        ("killed", &killed),
        ("lost", &lost),
    ] {
        let listed = json_of(&env.cli(&["list", "--status", state, "--json"]));
        assert_eq!(ids_of(&listed), vec![id.clone()], "--status {state}");
        assert_eq!(listed[0]["state"], state);
        let human = stdout(&env.cli(&["list", "--all", "--status", state]));
        assert_eq!(human.lines().count(), 1, "--status {state}: {human}");
        assert!(human.contains(id.as_str()), "--status {state}: {human}");
    }
}

// --- job status ------------------------------------------------------------------

#[test]
fn job_status_shows_everything_known_of_a_job() {
    let env = jobs();
    let out = env
        .cmd("job")
        .args(["run", "echo some output; exit 3", "--name", "deploy", "--timeout", "1h", "--key", "k-9"])
        .args(["--context", r#"{"pr": 7}"#, "--notify", "my-topic"])
        .env("NTFY_SERVER", "http://127.0.0.1:1")
        .env("NTFY_TIMEOUT", "5")
        .output()
        .expect("running job run");
    assert!(out.status.success(), "{}", stderr(&out));
    let id = the_id(&out);
    env.wait_ended(&id, SOON);
    wait_until(SOON, "the notification outcome", || env.job_dir(&id).join("notified").exists());
    let human = stdout(&env.cli(&["status", &id]));
    let log = env.job_dir(&id).join("log");
    let size = std::fs::metadata(&log).expect("the log").len();
    for want in [
        format!("id  {id}"),
        "name  deploy".into(),
        "command  echo some output; exit 3".into(),
        "state  failed (exit 3)".into(),
        "started  ".into(),
        "ended  ".into(),
        "duration  ".into(),
        format!("pid  {}", env.pid(&id)),
        format!("cwd  {}", canonical(&env.root)),
        format!("project  {}", canonical(&env.root)),
        format!("log  {} ({size} B)", log.display()),
        "timeout  1h 00m".into(),
        "key  k-9".into(),
        r#"context  {"pr": 7}"#.into(),
        "notify  my-topic failed: ".into(),
    ] {
        assert!(human.contains(&want), "no {want:?} in:\n{human}");
    }
    let j = json_of(&env.cli(&["status", &id, "--json"]));
    assert_eq!(j["id"], id.as_str());
    assert_eq!(j["state"], "failed");
    assert_eq!(j["exit_code"], 3);
    assert_eq!(j["signal"], Value::Null);
    assert_eq!(j["log_size"], size);
    assert_eq!(j["key"], "k-9");
    assert_eq!(j["context"], json!({"pr": 7}));
    assert_eq!(j["timeout_s"], 3600);
    assert_eq!(j["notify"]["topic"], "my-topic");
    assert_eq!(j["notify"]["state"], "failed");
    for field in ["command", "argv", "cwd", "project", "host", "user", "started_at", "ended_at", "duration_s", "pid"] {
        assert!(!j[field].is_null(), "{field} is missing: {j}");
    }
}

#[test]
fn job_status_without_an_id_shows_the_system() {
    let env = jobs();
    let done = env.ended("true", "d");
    let failed = env.ended("false", "f");
    let running = env.launch(&["sleep 300", "--name", "r"]);
    let human = stdout(&env.cli(&["status"]));
    assert!(human.contains(&env.store.display().to_string()), "{human}");
    assert!(human.contains("jobs     3: 1 running, 1 done, 1 failed"), "{human}");
    assert!(human.contains(&running) && !human.contains(&done) && !human.contains(&failed), "{human}");
    assert!(human.contains("NTFY_TOPIC is not set"), "{human}");
    let with_topic = env.cmd("job").arg("status").env("NTFY_TOPIC", "my-topic").output().expect("job status");
    assert!(stdout(&with_topic).contains("NTFY_TOPIC=my-topic"), "{}", stdout(&with_topic));

    let j = json_of(&env.cli(&["status", "--json"]));
    assert_eq!(j["store"], env.store.display().to_string());
    assert_eq!(j["jobs"], 3);
    assert_eq!(j["by_state"]["running"], 1);
    assert_eq!(j["by_state"]["done"], 1);
    assert_eq!(j["by_state"]["failed"], 1);
    assert_eq!(j["by_state"]["lost"], 0);
    assert_eq!(ids_of(&j["running"]), vec![running]);
    assert_eq!(j["ntfy_topic"], Value::Null);
    assert!(j["disk_bytes"].as_u64().expect("disk_bytes") > 0);
    let with_topic = env.cmd("job").args(["status", "--json"]).env("NTFY_TOPIC", "my-topic").output().expect("job");
    assert_eq!(json_of(&with_topic)["ntfy_topic"], "my-topic");
}

// --- job logs --------------------------------------------------------------------

#[test]
fn job_logs_prints_the_whole_log_or_its_tail() {
    let env = jobs();
    let id = env.ended("seq 1 200", "seq");
    let all = stdout(&env.cli(&["logs", &id]));
    assert_eq!(all, env.shown_log(&id));
    assert!(all.starts_with("=== seq 1 200\n") && all.contains("\n1\n2\n") && all.contains("\n200\n"), "{all}");
    let tail = stdout(&env.cli(&["logs", &id, "--tail"]));
    let lines: Vec<&str> = tail.lines().collect();
    assert_eq!(lines.len(), 50, "{tail}");
    assert_eq!(lines[0], "152");
    assert!(lines[49].starts_with("=== done (exit 0)"), "{tail}");
    let three = stdout(&env.cli(&["logs", "seq", "--tail", "3"]));
    assert!(three.starts_with("199\n200\n=== done (exit 0)"), "{three}");
    assert_eq!(three.lines().count(), 3);
}

#[test]
fn job_logs_follow_streams_then_exits_0_when_the_job_succeeds() {
    let env = jobs();
    let gate = env.root.join("go");
    let id = env.launch(&[&gated(&gate, 0)]);
    let mut s = Streaming::start({
        let mut c = env.cmd("job");
        c.args(["logs", &id, "--follow"]);
        c
    });
    s.expect_line("first");
    write(&gate, "");
    s.expect_line("second");
    let (rc, lines, err) = s.finish();
    assert_eq!(rc, 0, "{err}");
    assert!(lines.last().is_some_and(|l| l.starts_with("=== done (exit 0)")), "{lines:?}");
}

#[test]
fn job_logs_follow_exits_1_when_the_job_fails() {
    let env = jobs();
    let gate = env.root.join("go");
    let id = env.launch(&[&gated(&gate, 4)]);
    let mut s = Streaming::start({
        let mut c = env.cmd("job");
        c.args(["logs", &id, "--follow", "--tail", "1"]);
        c
    });
    s.expect_line("first");
    write(&gate, "");
    let (rc, lines, _) = s.finish();
    assert_eq!(rc, 1);
    assert!(lines.iter().any(|l| l.starts_with("=== failed (exit 4)")), "{lines:?}");
    assert!(!lines.iter().any(|l| l.starts_with("=== cwd")), "--tail 1 printed the header: {lines:?}");
}

// --- job stop --------------------------------------------------------------------

#[test]
fn stopping_a_job_kills_its_whole_process_group() {
    let env = jobs();
    let id = env.launch(&["sh -c 'sleep 300 & sleep 300 & wait'"]);
    let pid = env.pid(&id);
    wait_until(SOON, "the job's two sleeps", || group_members(pid).len() >= 3);
    let out = env.cli(&["stop", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("stopped (SIGTERM)"), "{}", stdout(&out));
    let j = env.job(&id);
    assert_eq!(j["state"], "stopped", "{j}");
    assert_eq!(j["signal"], "SIGTERM");
    wait_until(SOON, "the job's group to be gone", || group_members(pid).is_empty());
}

#[test]
fn stopping_a_job_kills_a_descendant_that_escaped_with_setsid() {
    let env = jobs();
    let pidfile = env.root.join("escaped");
    let id = env.launch(&[&format!("setsid sleep 300 & echo $! > '{}'; wait", pidfile.display())]);
    let pid = env.pid(&id);
    let mut escaped = 0;
    wait_until(SOON, "the escaped pid", || {
        escaped = std::fs::read_to_string(&pidfile).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
        escaped > 0 && pid_alive(escaped)
    });
    wait_until(SOON, "the sleep to leave the job's process group", || pgrp_of(escaped) != pid);
    let out = env.cli(&["stop", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(env.state(&id), "stopped");
    wait_until(SOON, "the escaped sleep to die", || !pid_alive(escaped));
}

#[test]
fn stop_force_kills_at_once_with_sigkill() {
    let env = jobs();
    let plain = env.launch(&["sleep 300"]);
    let stubborn = env.launch(&["trap '' TERM; sleep 300"]);
    let out = env.cli(&["stop", "--force", &plain, &stubborn]);
    assert!(out.status.success(), "{}", stderr(&out));
    for id in [&plain, &stubborn] {
        let j = env.job(id);
        assert_eq!(j["state"], "stopped", "{j}");
        assert_eq!(j["signal"], "SIGKILL", "{j}");
    }
}

#[test]
fn stop_without_force_ends_a_job_that_ignores_sigterm_after_the_grace() {
    let env = jobs();
    let id = env.launch(&["trap '' TERM; echo trapped; sleep 300"]);
    let pid = env.pid(&id);
    wait_until(SOON, "the trap to be set", || env.log(&id).starts_with("trapped\n"));
    let out = env.cli(&["stop", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let j = env.job(&id);
    assert_eq!(j["state"], "stopped", "{j}");
    assert_eq!(j["signal"], "SIGKILL", "{j}");
    assert!(group_members(pid).is_empty());
}

#[test]
fn stopping_a_job_that_already_ended_says_so_and_succeeds() {
    let env = jobs();
    let id = env.ended("true", "t");
    let out = env.cli(&["stop", &id]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains("already ended: done (exit 0)"), "{}", stdout(&out));
    assert_eq!(env.state(&id), "done");
}

#[test]
fn an_unknown_job_is_an_error_everywhere() {
    let env = jobs();
    env.ended("true", "t");
    for cmd in ["stop", "status", "logs", "wait", "retry"] {
        let out = env.cli(&[cmd, "nosuch"]);
        assert_eq!(code(&out), 1, "job {cmd} nosuch: {:?}", out.status);
        assert!(stderr(&out).contains("no job 'nosuch'"), "job {cmd}: {}", stderr(&out));
    }
}

#[test]
fn an_ambiguous_prefix_is_an_error_listing_the_candidates() {
    let env = jobs();
    let one = env.ended("true", "ambi-one");
    let two = env.ended("true", "ambi-two");
    for cmd in ["status", "logs", "wait", "stop"] {
        let out = env.cli(&[cmd, "ambi-"]);
        assert_eq!(code(&out), 1, "job {cmd}");
        let err = stderr(&out);
        assert!(err.contains("matches 2 jobs") && err.contains(&one) && err.contains(&two), "{err}");
    }
    let by_prefix = stdout(&env.cli(&["status", "ambi-t"]));
    assert!(by_prefix.contains(&two), "a unique prefix: {by_prefix}");
}

// --- job wait --------------------------------------------------------------------

#[test]
fn job_wait_exits_0_for_success_and_1_for_every_kind_of_failure() {
    let env = jobs();
    let done = env.launch(&["true"]);
    let failed = env.launch(&["exit 2"]);
    let timeout = env.launch(&["sleep 30", "--timeout", "1s"]);
    let stopped = env.launch(&["sleep 300"]);
    let killed = env.launch(&["sleep 300"]);
    assert_eq!(code(&env.cli(&["wait", &done])), 0);
    assert_eq!(code(&env.cli(&["wait", &failed])), 1);
    assert_eq!(code(&env.cli(&["wait", &timeout])), 1);
    assert!(env.cli(&["stop", &stopped]).status.success());
    assert_eq!(code(&env.cli(&["wait", &stopped])), 1);
    kill_group(env.pid(&killed));
    let out = env.cli(&["wait", &killed]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("killed (SIGKILL)"), "{}", stderr(&out));
    assert_eq!(code(&env.cli(&["wait", &done, &failed])), 1, "one failure among several");
}

#[test]
fn job_wait_gives_up_with_124_and_leaves_the_job_running() {
    let env = jobs();
    let id = env.launch(&["sleep 300"]);
    let out = env.cli(&["wait", &id, "--timeout", "1s"]);
    assert_eq!(code(&out), 124, "{}", stderr(&out));
    assert!(stderr(&out).contains(&id), "{}", stderr(&out));
    assert_eq!(env.state(&id), "running");
}

/// CPU seconds a finished, not yet reaped child used (its /proc stat
/// survives while it is a zombie).
fn cpu_of_finished(child: &Child) -> f64 {
    let pid = child.id();
    let mut fields: Vec<String> = vec![];
    wait_until(SOON, "the command to finish", || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        fields =
            stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().map(String::from).collect()).unwrap_or_default();
        fields.first().is_some_and(|s| s == "Z")
    });
    let ticks: f64 = fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    ticks / 100.0
}

#[test]
fn waiting_and_following_sleep_instead_of_spinning() {
    let env = jobs();
    let id = env.launch(&["for i in 1 2 3 4 5 6 7 8 9 10; do echo $i; sleep 0.3; done"]);
    let spawn = |args: &[&str]| env.cmd("job").args(args).stdout(Stdio::null()).spawn().expect("starting job");
    let waiter = spawn(&["wait", &id]);
    let follower = spawn(&["logs", &id, "--follow"]);
    env.wait_ended(&id, SOON);
    for (what, child) in [("job wait", waiter), ("job logs --follow", follower)] {
        let cpu = cpu_of_finished(&child);
        assert!(cpu < 0.5, "{what} used {cpu} s of CPU during a 3 s job: it polls instead of sleeping");
        let mut child = child;
        assert!(child.wait().expect("reaping").success(), "{what} failed");
    }
}

#[test]
fn job_wait_returns_once_the_job_ends() {
    let env = jobs();
    let gate = env.root.join("go");
    let id = env.launch(&[&gated(&gate, 0)]);
    let waiter = Streaming::start({
        let mut c = env.cmd("job");
        c.args(["wait", &id]);
        c
    });
    write(&gate, "");
    let (rc, _, err) = waiter.finish();
    assert_eq!(rc, 0, "{err}");
    assert_eq!(env.state(&id), "done", "job wait returned before the job ended");
}

#[test]
fn job_wait_with_several_ids_waits_for_all_of_them() {
    let env = jobs();
    let gate = env.root.join("go");
    let quick = env.launch(&["true"]);
    let slow = env.launch(&[&gated(&gate, 0)]);
    env.wait_ended(&quick, SOON);
    let out = env.cli(&["wait", &quick, &slow, "--timeout", "1s"]);
    assert_eq!(code(&out), 124, "returned when only the first had ended");
    let waiter = Streaming::start({
        let mut c = env.cmd("job");
        c.args(["wait", &quick, &slow]);
        c
    });
    write(&gate, "");
    let (rc, _, err) = waiter.finish();
    assert_eq!(rc, 0, "{err}");
    assert_eq!(env.state(&slow), "done");
}

#[test]
fn job_wait_outlives_a_killed_watcher_while_the_job_lives_then_reports_it_lost() {
    let env = jobs();
    let id = env.launch(&["sleep 300"]);
    let mut waiter = Streaming::start({
        let mut c = env.cmd("job");
        c.args(["wait", &id]);
        c
    });
    // Its watcher gone, the lock `job wait` blocks on is free while the
    // job still runs: waiting must go on, by other means.
    let watcher = env.meta(&id)["watcher_pid"].as_i64().expect("a watcher pid");
    kill(watcher);
    wait_until(SOON, "the killed watcher to be gone", || !pid_alive(watcher));
    let out = env.cli(&["wait", &id, "--timeout", "1s"]);
    assert_eq!(code(&out), 124, "a job whose watcher died was taken for ended: {}", stderr(&out));
    assert_eq!(waiter.child.try_wait().expect("checking job wait"), None, "job wait returned while the job ran");
    kill_group(env.pid(&id));
    let (rc, _, err) = waiter.finish();
    assert_eq!(rc, 1, "{err}");
    assert_eq!(env.state(&id), "lost");
}

// --- job retry -------------------------------------------------------------------

#[test]
fn retrying_a_failed_job_starts_it_again_with_the_same_settings_but_no_key() {
    let env = jobs();
    let sub = env.root.join("work");
    std::fs::create_dir_all(&sub).expect("mkdir");
    // Notifications go to a closed loopback port: never to the internet.
    let job = |dir: &Path, args: &[&str]| {
        let mut c = env.cmd("job");
        c.args(args).current_dir(dir).env("NTFY_SERVER", "http://127.0.0.1:1");
        output_within(c, SOON, &format!("job {args:?}"))
    };
    let settings = ["--name", "flaky", "--timeout", "1h", "--context", r#"{"try": 1}"#, "--notify", "my-topic"];
    let out = job(&sub, &[&["run", "pwd; exit 5", "--key", "once"][..], &settings].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let old = the_id(&out);
    env.wait_ended(&old, SOON);
    assert_eq!(env.state(&old), "failed");
    let out = job(&env.root, &["retry", &old]);
    assert!(out.status.success(), "{}", stderr(&out));
    let new = the_id(&out);
    assert_ne!(new, old);
    let (a, b) = (env.meta(&old), env.meta(&new));
    assert_eq!(b["notify_topic"], "my-topic");
    for field in ["command", "argv", "cwd", "name", "timeout_s", "context", "notify_topic"] {
        assert_eq!(a[field], b[field], "{field} differs");
    }
    assert_eq!(b["key"], Value::Null, "the key was copied");
    env.wait_ended(&new, SOON);
    assert!(env.log(&new).starts_with(&format!("{}\n", canonical(&sub))), "{}", env.log(&new));
    assert_eq!(env.state(&new), "failed");
    // By name (the newest of that name), waiting for the outcome.
    let again = job(&env.root, &["retry", "flaky", "--wait"]);
    assert_eq!(code(&again), 1);
    assert_eq!(env.ids().len(), 3);
}

// --- job clean -------------------------------------------------------------------

#[test]
fn clean_older_than_removes_only_jobs_that_ended_before_then() {
    let env = jobs();
    let ten_days = env.ended("true", "ten-days");
    let two_days = env.ended("false", "two-days");
    let twelve_hours = env.ended("true", "twelve-hours");
    let fresh = env.ended("true", "fresh");
    let running = env.launch(&["sleep 300", "--name", "running"]);
    env.age(&ten_days, chrono::Duration::days(10));
    env.age(&two_days, chrono::Duration::days(2));
    env.age(&twelve_hours, chrono::Duration::hours(12));
    let dry = env.cli(&["clean", "--older-than", "1d", "--dry-run"]);
    assert!(stdout(&dry).contains("would remove 2 jobs"), "{}", stdout(&dry));
    assert_eq!(env.ids().len(), 5);
    let out = env.cli(&["clean", "--older-than", "1d"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("removed 2 jobs"), "{}", stdout(&out));
    let mut left = vec![twelve_hours, fresh, running.clone()];
    left.sort();
    assert_eq!(env.ids(), left);
    assert_eq!(env.state(&running), "running");
}

#[test]
fn clean_defaults_to_seven_days_and_all_removes_every_job_that_is_not_running() {
    let env = jobs();
    let eight_days = env.ended("true", "eight-days");
    let six_days = env.ended("true", "six-days");
    let failed = env.ended("false", "failed");
    let running = env.launch(&["sleep 300", "--name", "running"]);
    env.age(&eight_days, chrono::Duration::days(8));
    env.age(&six_days, chrono::Duration::days(6));
    let out = env.cli(&["clean"]);
    assert!(stdout(&out).contains("removed 1 job,"), "{}", stdout(&out));
    let mut left = vec![six_days, failed, running.clone()];
    left.sort();
    assert_eq!(env.ids(), left);
    let out = env.cli(&["clean", "--all"]);
    assert!(stdout(&out).contains("removed 2 jobs"), "{}", stdout(&out));
    assert_eq!(env.ids(), vec![running.clone()]);
    assert_eq!(env.state(&running), "running");
}

// --- help and the manual ---------------------------------------------------------

#[test]
fn job_help_lists_the_exit_codes() {
    let env = jobs();
    let help = stdout(&env.cli(&["--help"]));
    for want in ["run", "list", "status", "logs", "stop", "wait", "retry", "clean", "124 job wait --timeout ran out"] {
        assert!(help.contains(want), "no {want:?} in job --help:\n{help}");
    }
}

/// Every example of the job manual, typed into a shell as written, with
/// `abc123` replaced by a real id. Stand-ins for pytest, make, npm and
/// deploy.sh are on PATH; deploy.sh fails, to have a failed job.
#[test]
fn every_example_of_the_job_manual_works_as_written() {
    let env = jobs();
    let project = env.root.join("project");
    let bin = env.root.join("bin");
    std::fs::create_dir_all(&project).expect("mkdir");
    std::fs::create_dir_all(&bin).expect("mkdir");
    for (tool, body) in [
        ("pytest", "echo \"pytest $*: 3 passed\""),
        ("make", "echo \"make $*: built\""),
        ("npm", "echo \"npm $*: ok\""),
        ("deploy.sh", "echo 'deploy: no credentials' >&2; exit 1"),
    ] {
        let path = bin.join(tool);
        write(&path, &format!("#!/bin/sh\n{body}\n"));
        let st = Command::new("chmod").arg("+x").arg(&path).status().expect("chmod");
        assert!(st.success());
    }
    git_init(&project);
    let commit = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "--allow-empty", "-m", "x"])
        .current_dir(&project)
        .status()
        .expect("git commit");
    assert!(commit.success());
    let sh = |line: &str| env.sh(&project, &bin, line);
    let ok = |line: &str| {
        let out = sh(line);
        assert_eq!(code(&out), 0, "{line}: {}", stderr(&out));
        stdout(&out)
    };
    let started = |line: &str| {
        let out = sh(line);
        assert_eq!(code(&out), 0, "{line}: {}", stderr(&out));
        let id = the_id(&out);
        env.wait_ended(&id, SOON);
        id
    };

    // Starting jobs
    let tests = started(r#"job run "pytest tests/""#);
    assert_eq!(env.state(&tests), "done");
    assert!(env.log(&tests).contains("pytest tests/: 3 passed"), "{}", env.log(&tests));
    let build = started(r#"job run "make build" --name build"#);
    assert!(build.starts_with("build_"), "{build}");
    let npm = started(r#"job run "npm test" --timeout 30m"#);
    assert_eq!(env.job(&npm)["timeout_s"], 1800);
    let deploy = started(r#"job run "deploy.sh" --context '{"pr": 123, "env": "staging"}'"#);
    assert_eq!(env.job(&deploy)["context"], json!({"pr": 123, "env": "staging"}));
    assert_eq!(env.state(&deploy), "failed");
    let keyed = started(r#"job run "pytest" --key "test-$(git rev-parse HEAD)""#);
    assert_eq!(started(r#"job run "pytest" --key "test-$(git rev-parse HEAD)""#), keyed);
    let head = ok("git rev-parse HEAD");
    assert_eq!(env.job(&keyed)["key"], format!("test-{}", head.trim()));
    let waited = ok(r#"job run "pytest" --wait"#);
    assert_eq!(env.state(waited.trim()), "done");

    // Listing jobs
    let sleeper = env.launch_in(&project, &["sleep 300"]);
    let listed = ok("job list");
    for id in [&tests, &build, &npm, &deploy, &keyed, &sleeper] {
        assert!(listed.contains(id.as_str()), "job list lacks {id}:\n{listed}");
    }
    assert!(ok("job list --all").contains(&tests));
    let running = ok("job list --status running");
    assert!(running.contains(&sleeper) && !running.contains(&tests), "{running}");
    let failed = ok("job list --status failed");
    assert!(failed.contains(&deploy) && !failed.contains(&tests), "{failed}");
    let parsed: Value = serde_json::from_str(&ok("job list --json")).expect("job list --json is JSON");
    assert_eq!(ids_of(&parsed).len(), 7);

    // Checking status
    let system = ok("job status");
    assert!(system.contains(&env.store.display().to_string()) && system.contains("1 running"), "{system}");
    assert!(ok(&format!("job status {tests}")).contains("done (exit 0)"));
    assert!(ok("job status build  # by name if unique").contains(&build));
    let one: Value = serde_json::from_str(&ok(&format!("job status {tests} --json"))).expect("JSON");
    assert_eq!(one["id"], tests.as_str());

    // Viewing logs
    assert_eq!(ok(&format!("job logs {tests}")), env.shown_log(&tests));
    assert!(ok(&format!("job logs {tests} --tail")).contains("3 passed"));
    assert!(ok(&format!("job logs {tests} --tail 100")).contains("3 passed"));
    assert!(ok(&format!("job logs {tests} --follow")).contains("=== done (exit 0)"));

    // Stopping jobs
    ok(&format!("job stop {sleeper}"));
    assert_eq!(env.job(&sleeper)["signal"], "SIGTERM");
    let stubborn = env.launch_in(&project, &["sleep 300"]);
    ok(&format!("job stop {stubborn} --force"));
    assert_eq!(env.job(&stubborn)["signal"], "SIGKILL");

    // Waiting for completion, and the exit codes
    ok(&format!("job wait {tests}"));
    ok(&format!("job wait {tests} --timeout 5m"));
    assert_eq!(code(&sh(&format!("job wait {deploy}"))), 1);
    let slow = env.launch_in(&project, &["sleep 300"]);
    assert_eq!(code(&sh(&format!("job wait {slow} --timeout 1s"))), 124);
    assert_eq!(env.state(&slow), "running");

    // Patterns
    let build2 = started(r#"job run "make build" --name build"#);
    let _ = ok(r#"job run "npm test" --name tests
job run "npm run lint" --name lint
job run "npm run typecheck" --name types"#);
    let listed = ok("job list");
    for name in ["tests_", "lint_", "types_"] {
        assert!(listed.contains(name), "job list lacks {name}:\n{listed}");
    }
    ok("job wait tests && job wait lint && job wait types");
    assert!(ok("job status build").contains(&build2), "build is the newest of that name");
    assert!(ok(&format!("job logs {build2} --tail")).contains("make build: built"));
    let retried = ok(&format!("job retry {deploy}"));
    let retried = retried.trim();
    env.wait_ended(retried, SOON);
    assert_eq!(env.job(retried)["command"], "deploy.sh");
    assert_eq!(env.job(retried)["context"], json!({"pr": 123, "env": "staging"}));
    assert_eq!(env.state(retried), "failed");

    // Storage: clean up old jobs
    let before = env.ids().len();
    assert!(ok("job clean                    # Remove jobs older than 7 days").contains("removed 0 jobs"));
    assert!(ok("job clean --older-than 1d    # Custom retention").contains("removed 0 jobs"));
    assert_eq!(env.ids().len(), before);
    ok("job clean --all              # Remove all non-running jobs");
    assert_eq!(env.ids(), vec![slow.clone()], "only the running job is left");
}

#[test]
fn the_jobs_process_group_exists_when_job_run_returns() {
    let t = jobs();
    for _ in 0..10 {
        let id = t.launch(&["sleep 300"]);
        let pid = t.pid(&id);
        // No waiting: the group must already be there.
        assert!(!group_members(pid).is_empty(), "no process group {pid} right after job run returned");
        assert_eq!(pgrp_of(pid), pid, "the job does not lead its own group");
        kill_group(pid);
    }
}

#[test]
fn job_run_refuses_a_command_that_is_not_there_before_starting_anything() {
    let t = jobs();
    let out = t.cli(&["run", "nosuchcmd-xyz --flag"]);
    assert_eq!(code(&out), 127, "{out:?}");
    assert_eq!(stderr(&out).trim_end(), "job: nosuchcmd-xyz: command not found");
    assert!(stdout(&out).is_empty());
    let left: Vec<_> = std::fs::read_dir(&t.store).map(|rd| rd.flatten().collect()).unwrap_or_default();
    let names: Vec<_> = left.iter().map(|e| e.file_name()).filter(|n| n != ".keys").collect();
    assert!(names.is_empty(), "the store holds {names:?}");
}

#[test]
fn stop_force_cuts_short_the_grace_of_a_graceful_stop() {
    let t = jobs();
    let id = t.launch(&["trap '' TERM; sleep 300"]);
    let pid = t.pid(&id);
    wait_until(SOON, "the trap to be set", || group_members(pid).len() >= 2);
    // A graceful stop: TERM is ignored, so it waits out its 3 s grace.
    let mut graceful = t.cmd("job");
    graceful.args(["stop", &id]).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    let mut graceful = graceful.spawn().expect("starting job stop");
    wait_until(SOON, "the stop request", || t.job_dir(&id).join("stop").exists());
    let started = std::time::Instant::now();
    let forced = t.cli(&["stop", "--force", &id]);
    assert_eq!(code(&forced), 0, "{forced:?}");
    let job = t.job(&id);
    assert_eq!(job["state"], "stopped");
    assert_eq!(job["signal"], "SIGKILL");
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "the forced stop waited out the grace: {:?}",
        started.elapsed()
    );
    let _ = graceful.wait();
}
