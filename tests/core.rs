//! The core (issue 2): `run`, `runs`, `runlog` and `runrm` against a
//! temporary store, with real processes. Jobs that must stay running for a
//! while wait on a gate file the test creates, never on a fixed sleep.

mod common;

use common::*;
use serde_json::Value;
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// For things that normally take milliseconds, on a busy two-core machine.
const SOON: Duration = Duration::from_secs(20);

/// What `run` printed: `ID PID LOG`.
struct Launched {
    id: String,
    pid: i32,
    log: PathBuf,
}

/// `run args…`, which must succeed and print `ID PID LOG` on one line.
fn launch(env: &Env, args: &[&str]) -> Launched {
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
fn gated(gate: &Path, code: i32) -> String {
    format!("echo started; while [ ! -e {} ]; do sleep 0.02; done; exit {code}", gate.display())
}

fn open(gate: &Path) {
    write(gate, "");
}

/// The processes a test leaves running, killed (with their process groups)
/// when it ends, even when an assertion failed first. Each is remembered
/// with its start time so that a pid reused meanwhile is left alone.
#[derive(Default)]
struct Leftovers(Vec<(i32, u64)>);

impl Leftovers {
    fn add(&mut self, pid: i32) {
        if let Some(start) = start_time(pid) {
            self.0.push((pid, start));
        }
    }
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        for &(pid, start) in &self.0 {
            if start_time(pid) == Some(start) {
                kill(-pid, libc::SIGKILL);
                kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// A process's start time (field 22 of /proc/PID/stat).
fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn kill(pid: i32, sig: i32) {
    // SAFETY: kill(2) with plain integers.
    unsafe { libc::kill(pid, sig) };
}

fn meta(env: &Env, id: &str) -> Value {
    let path = env.job_dir(id).join("meta.json");
    serde_json::from_slice(&std::fs::read(&path).expect("reading meta.json")).expect("meta.json is JSON")
}

/// Kills the job's watcher with SIGKILL and waits until it is gone.
fn kill_watcher(env: &Env, id: &str) -> i32 {
    let watcher = meta(env, id)["watcher_pid"].as_i64().expect("meta.json has watcher_pid") as i32;
    assert!(pid_alive(watcher.into()), "the watcher of {id} is not running");
    kill(watcher, libc::SIGKILL);
    wait_until(SOON, "the watcher to die", || !pid_alive(watcher.into()));
    watcher
}

/// Kills the job's whole process group and waits until its process is gone.
fn kill_job(pid: i32) {
    kill(-pid, libc::SIGKILL);
    kill(pid, libc::SIGKILL);
    wait_until(SOON, "the job to die", || !pid_alive(pid.into()));
}

/// `runlog ID --no-follow`, which must succeed; its stdout.
fn runlog(env: &Env, id: &str) -> String {
    let out = env.run("runlog", &[id, "--no-follow"]);
    assert!(out.status.success(), "runlog {id} failed: {}", stderr(&out));
    stdout(&out)
}

/// The entries of the store, hidden ones included (none if it is missing).
fn store_entries(env: &Env) -> Vec<String> {
    match std::fs::read_dir(&env.store) {
        Ok(rd) => rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => vec![],
    }
}

/// Output of `CMD` run in a pseudo-terminal (by `script`), stdout and
/// stderr mixed as a terminal shows them.
fn on_a_terminal(env: &Env, shell_cmd: &str, no_color: bool) -> String {
    let mut c = env.tool("script");
    c.args(["-qfec", shell_cmd, "/dev/null"]);
    if !no_color {
        c.env_remove("NO_COLOR");
    }
    let out = c.output().expect("running script");
    assert!(out.status.success(), "{shell_cmd} on a terminal failed: {}{}", stdout(&out), stderr(&out));
    stdout(&out)
}

/// Polls a child until it exits; panics after `within`.
fn wait_exit(child: &mut Child, within: Duration, what: &str) -> std::process::ExitStatus {
    let mut status = None;
    wait_until(within, what, || {
        status = child.try_wait().expect("waiting for a child");
        status.is_some()
    });
    status.expect("the child exited")
}

// --- the life of a job -------------------------------------------------------

#[test]
fn a_job_is_running_then_done_and_runlog_shows_it_and_runrm_removes_it() {
    let env = Env::new();
    let mut left = Leftovers::default();
    let gate = env.root.join("gate");
    let cmd = gated(&gate, 0);
    let job = launch(&env, &[&cmd]);
    left.add(job.pid);

    let j = env.job(&job.id);
    assert_eq!(j["state"], "running");
    assert_eq!(j["pid"], job.pid);
    assert!(j["exit_code"].is_null() && j["ended_at"].is_null(), "{j}");
    wait_until(SOON, "the job's output in its log", || env.log(&job.id).contains("started\n"));

    open(&gate);
    let j = env.wait_ended(&job.id, SOON);
    assert_eq!(j["state"], "done");
    assert_eq!(j["exit_code"], 0);
    assert!(j["signal"].is_null(), "{j}");
    assert!(j["ended_at"].is_string(), "{j}");
    assert!(j["duration_s"].as_f64().is_some_and(|d| d >= 0.0), "{j}");

    let log = runlog(&env, &job.id);
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines[0], format!("=== {cmd}"));
    assert_eq!(lines[1], format!("=== cwd: {}", env.root.display()));
    assert!(lines[2].starts_with("=== started: "), "{log}");
    assert_eq!(lines[3], "started");
    assert!(lines[4].starts_with("=== done (exit 0) after "), "{log}");
    assert_eq!(lines.len(), 5, "{log}");

    let out = env.run("runrm", &[&job.id]);
    assert!(out.status.success(), "runrm failed: {}", stderr(&out));
    assert!(stdout(&out).contains("removed 1 job"), "{}", stdout(&out));
    assert!(!env.job_dir(&job.id).exists(), "the job's directory is still there");
    assert!(env.jobs().is_empty());
}

#[test]
fn a_job_that_exits_3_is_failed_with_exit_code_3() {
    let env = Env::new();
    let job = launch(&env, &["exit 3"]);
    let j = env.wait_ended(&job.id, SOON);
    assert_eq!(j["state"], "failed");
    assert_eq!(j["exit_code"], 3);
    assert!(j["signal"].is_null(), "{j}");
    assert_eq!(j["argv"], serde_json::json!(["sh", "-c", "exit 3"]));
    let log = runlog(&env, &job.id);
    assert!(log.lines().last().is_some_and(|l| l.starts_with("=== failed (exit 3) after ")), "{log}");

    assert!(env.run("runrm", &[&job.id]).status.success());
    assert!(!env.job_dir(&job.id).exists());
}

#[test]
fn a_job_killed_by_sigkill_is_killed_with_signal_sigkill() {
    let env = Env::new();
    let job = launch(&env, &["sh", "-c", "kill -KILL $$"]);
    let j = env.wait_ended(&job.id, SOON);
    assert_eq!(j["state"], "killed");
    assert_eq!(j["signal"], "SIGKILL");
    assert!(j["exit_code"].is_null(), "{j}");
    let log = runlog(&env, &job.id);
    assert!(log.lines().last().is_some_and(|l| l.starts_with("=== killed (SIGKILL) after ")), "{log}");

    assert!(env.run("runrm", &[&job.id]).status.success());
    assert!(!env.job_dir(&job.id).exists());
}

#[test]
fn arguments_with_spaces_and_quotes_reach_the_command_intact() {
    let env = Env::new();
    let job = launch(&env, &["printf", "%s|", "a b", "c\"d", "e'f"]);
    let j = env.wait_ended(&job.id, SOON);
    assert_eq!(j["state"], "done");
    assert_eq!(j["argv"], serde_json::json!(["printf", "%s|", "a b", "c\"d", "e'f"]));
    let log = env.log(&job.id);
    assert!(log.lines().any(|l| l == "a b|c\"d|e'f|"), "{log}");
}

#[test]
fn one_argument_with_shell_syntax_runs_through_sh_c() {
    let env = Env::new();
    let job = launch(&env, &["echo one && echo two"]);
    let j = env.wait_ended(&job.id, SOON);
    assert_eq!(j["state"], "done");
    assert_eq!(j["argv"], serde_json::json!(["sh", "-c", "echo one && echo two"]));
    assert_eq!(j["command"], "echo one && echo two");
    assert!(env.log(&job.id).starts_with("one\ntwo\n"), "{}", env.log(&job.id));
}

// --- refusing what cannot run ------------------------------------------------

#[test]
fn a_missing_command_is_refused_with_127_and_leaves_nothing_in_the_store() {
    let env = Env::new();
    let out = env.run("run", &["nosuchcmd-xyz"]);
    assert_eq!(out.status.code(), Some(127));
    assert_eq!(stderr(&out), "run: nosuchcmd-xyz: command not found\n");
    assert_eq!(stdout(&out), "");
    assert_eq!(store_entries(&env), Vec::<String>::new());
}

#[test]
fn a_shell_string_whose_first_word_is_missing_is_refused_with_127() {
    let env = Env::new();
    let out = env.run("run", &["nosuchcmd-xyz --flag"]);
    assert_eq!(out.status.code(), Some(127));
    assert_eq!(stderr(&out), "run: nosuchcmd-xyz: command not found\n");
    assert_eq!(stdout(&out), "");
    assert_eq!(store_entries(&env), Vec::<String>::new());
}

#[test]
fn a_file_that_is_not_executable_is_refused_with_126_by_run_and_job_run_in_the_same_words() {
    let env = Env::new();
    let script = env.root.join("notexec.sh");
    write(&script, "echo hi\n");
    let path = script.to_str().expect("a UTF-8 temp path");
    for (front, args) in [("run", vec![path]), ("job", vec!["run", path])] {
        let out = env.run(front, &args);
        assert_eq!(out.status.code(), Some(126), "{front}: {}", stderr(&out));
        assert_eq!(stderr(&out), format!("{front}: {path}: not executable\n"));
    }
    assert_eq!(store_entries(&env), Vec::<String>::new());
}

// --- launching -----------------------------------------------------------------

#[test]
fn the_id_run_prints_names_a_job_that_exists_when_run_returns() {
    let env = Env::new();
    for _ in 0..10 {
        let job = launch(&env, &["true"]);
        let dir = env.job_dir(&job.id);
        assert_eq!(job.log, dir.join("log"));
        // What a reader needs is there when `run` returns: meta.json (with
        // the pid) and the log.
        for f in ["meta.json", "log"] {
            assert!(dir.join(f).is_file(), "{} has no {f} when run returned", job.id);
        }
        assert_eq!(meta(&env, &job.id)["id"], job.id.as_str());
        assert_eq!(meta(&env, &job.id)["pid"], job.pid);
        // `cmd` and `pid` repeat meta.json; the watcher writes them after.
        wait_until(SOON, "cmd and pid", || dir.join("cmd").is_file() && dir.join("pid").is_file());
        let pid = std::fs::read_to_string(dir.join("pid")).expect("reading pid");
        assert_eq!(pid.trim(), job.pid.to_string());
    }
}

#[test]
fn a_job_survives_the_hangup_of_the_terminal_it_was_started_from() {
    if !need_tool("script") {
        return;
    }
    let env = Env::new();
    let mut left = Leftovers::default();
    let gate = env.root.join("gate");
    let (out, shell_pid) = (env.root.join("out"), env.root.join("shell_pid"));
    let job_cmd = format!("while [ ! -e {} ]; do sleep 0.02; done; exit 5", gate.display());
    let session = format!(
        "{} sh -c '{job_cmd}' > {out}; echo $$ > {pid}.tmp; mv {pid}.tmp {pid}; exec sleep 60",
        bin("run").display(),
        out = out.display(),
        pid = shell_pid.display()
    );
    let mut script = env.tool("script").args(["-qfec", &session, "/dev/null"]).spawn().expect("running script");
    wait_until(SOON, "run to start the job inside the terminal", || shell_pid.exists());
    let shell: i32 = std::fs::read_to_string(&shell_pid).expect("reading the pid").trim().parse().expect("a pid");
    left.add(shell);
    let line = std::fs::read_to_string(&out).expect("reading run's output");
    let id = line.split_whitespace().next().expect("run printed an id").to_string();
    let pid: i32 = line.split_whitespace().nth(1).and_then(|p| p.parse().ok()).expect("run printed a pid");
    left.add(pid);
    assert_eq!(env.state(&id), "running");

    // Hang up: the terminal's master side closes with `script`.
    kill(script.id() as i32, libc::SIGKILL);
    let _ = script.wait();
    wait_until(SOON, "the terminal's session to be hung up", || !pid_alive(shell.into()));
    assert!(pid_alive(pid.into()), "the job died with its terminal");
    assert_eq!(env.state(&id), "running");

    open(&gate);
    let j = env.wait_ended(&id, SOON);
    assert_eq!(j["state"], "failed");
    assert_eq!(j["exit_code"], 5);
    assert!(env.job_dir(&id).join("status").is_file());
}

// --- liveness ------------------------------------------------------------------

#[test]
fn a_job_whose_watcher_was_killed_is_running_while_it_lives_and_lost_after() {
    let env = Env::new();
    let mut left = Leftovers::default();
    let gate = env.root.join("gate");
    let job = launch(&env, &[&gated(&gate, 0)]);
    left.add(job.pid);

    kill_watcher(&env, &job.id);
    assert!(pid_alive(job.pid.into()));
    assert_eq!(env.state(&job.id), "running");

    kill_job(job.pid);
    let j = env.job(&job.id);
    assert_eq!(j["state"], "lost");
    assert!(j["exit_code"].is_null() && j["signal"].is_null() && j["ended_at"].is_null(), "{j}");
    assert!(!env.job_dir(&job.id).join("status").exists(), "a status was invented");
    let out = env.run("runs", &[]);
    let line = stdout(&out).lines().find(|l| l.contains(&job.id)).map(str::to_string).unwrap_or_default();
    assert!(line.contains(" - lost"), "runs says: {line}");
}

#[test]
fn a_pid_now_held_by_another_process_makes_the_job_lost_not_running() {
    let env = Env::new();
    let mut left = Leftovers::default();
    let gate = env.root.join("gate");
    let job = launch(&env, &[&gated(&gate, 0)]);
    left.add(job.pid);
    kill_watcher(&env, &job.id);
    kill_job(job.pid);

    let mut other = std::process::Command::new("sleep").arg("30").spawn().expect("starting sleep");
    left.add(other.id() as i32);
    write(&env.job_dir(&job.id).join("pid"), &format!("{}\n", other.id()));
    assert!(pid_alive(other.id().into()));
    let j = env.job(&job.id);
    assert_eq!(j["state"], "lost");
    assert!(j["exit_code"].is_null(), "{j}");
    let _ = other.kill();
    let _ = other.wait();
}

#[test]
fn a_background_child_holding_the_log_does_not_keep_the_job_running() {
    let env = Env::new();
    let mut left = Leftovers::default();
    let job = launch(&env, &["sh", "-c", "sleep 30 & echo \"child $!\""]);
    left.add(job.pid);
    let j = env.wait_ended(&job.id, SOON);
    assert_eq!(j["state"], "done");
    assert_eq!(j["exit_code"], 0);

    let log = env.log(&job.id);
    let child: i32 = log
        .lines()
        .find_map(|l| l.strip_prefix("child "))
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no child pid in the log: {log}"));
    left.add(child);
    assert!(pid_alive(child.into()), "the background sleep is gone already");
    let log_path = std::fs::canonicalize(&job.log).expect("the log exists");
    let holds_log = std::fs::read_dir(format!("/proc/{child}/fd"))
        .expect("reading the child's descriptors")
        .flatten()
        .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t == log_path));
    assert!(holds_log, "the background sleep does not hold the log open");
}

#[test]
fn two_hundred_concurrent_launches_give_two_hundred_jobs() {
    let env = Env::new();
    let barrier = std::sync::Barrier::new(200);
    let outs: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..200)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    env.run("run", &["true"])
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a launching thread")).collect()
    });
    let mut ids = HashSet::new();
    for out in &outs {
        assert!(out.status.success(), "run true failed: {}", stderr(out));
        let id = stdout(out).split_whitespace().next().expect("run printed an id").to_string();
        assert!(env.job_dir(&id).is_dir(), "{id} has no directory");
        ids.insert(id);
    }
    assert_eq!(ids.len(), 200, "ids are not distinct");

    wait_until(Duration::from_secs(60), "200 jobs to end", || env.jobs().iter().all(|j| j["state"] != "running"));
    let jobs = env.jobs();
    assert_eq!(jobs.len(), 200);
    for j in &jobs {
        assert_eq!(j["state"], "done", "{j}");
        assert!(ids.contains(j["id"].as_str().unwrap_or_default()), "{j}");
    }
    let entries = store_entries(&env);
    assert_eq!(entries.len(), 200, "the store holds more than the jobs: {entries:?}");
}

// --- runrm ---------------------------------------------------------------------

#[test]
fn runrm_never_removes_a_job_that_is_ending_at_that_moment() {
    let env = Env::new();
    for round in 0..8 {
        // Ten jobs ending together, and three runrm loops racing them.
        let jobs: Vec<Launched> = (0..10).map(|_| launch(&env, &["sleep", "0.3"])).collect();
        let mut kept = Vec::new();
        for (i, job) in jobs.iter().enumerate() {
            let watcher = meta(&env, &job.id)["watcher_pid"].as_i64().expect("watcher_pid");
            // A second name for the log outlives the directory: what the
            // watcher writes after a removal still shows there.
            let kept_log = env.root.join(format!("log-{round}-{i}"));
            std::fs::hard_link(&job.log, &kept_log).expect("linking the log");
            kept.push((watcher, kept_log));
        }
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    wait_until(SOON, "runrm to remove the jobs once they ended", || {
                        let out = env.run("runrm", &[]);
                        assert!(out.status.success(), "runrm failed: {}", stderr(&out));
                        let mut all_gone = true;
                        for job in &jobs {
                            let gone = !env.job_dir(&job.id).exists();
                            assert!(!gone || !pid_alive(job.pid.into()), "runrm removed {} while it ran", job.id);
                            all_gone &= gone;
                        }
                        all_gone
                    });
                });
            }
        });
        for ((watcher, kept_log), job) in kept.iter().zip(&jobs) {
            wait_until(SOON, "the watcher to exit", || !pid_alive(*watcher));
            let log = std::fs::read_to_string(kept_log).expect("reading the kept log");
            assert!(log.contains("=== done (exit 0) after "), "{}: {log}", job.id);
            assert!(!log.contains("could not record"), "runrm removed {} before its end was recorded: {log}", job.id);
        }
    }
}

#[test]
fn runrm_refuses_to_remove_a_running_job_by_id_or_name() {
    let env = Env::new();
    let mut left = Leftovers::default();
    let gate = env.root.join("gate");
    let job = launch(&env, &["--name", "sleeper", &gated(&gate, 0)]);
    left.add(job.pid);
    for query in [job.id.as_str(), "sleeper"] {
        let out = env.run("runrm", &[query]);
        assert_eq!(out.status.code(), Some(1), "runrm {query}");
        let err = stderr(&out);
        assert!(err.contains(&job.id) && err.contains("is running"), "runrm {query} said: {err}");
        assert!(env.job_dir(&job.id).join("log").is_file(), "runrm {query} touched the job");
        assert_eq!(env.state(&job.id), "running");
    }
    open(&gate);
    env.wait_ended(&job.id, SOON);
}

#[test]
fn runrm_dry_run_removes_nothing() {
    let env = Env::new();
    let a = launch(&env, &["true"]);
    let b = launch(&env, &["false"]);
    env.wait_ended(&a.id, SOON);
    env.wait_ended(&b.id, SOON);
    for args in [vec!["--dry-run"], vec!["--dry-run", a.id.as_str()]] {
        let out = env.run("runrm", &args);
        assert!(out.status.success(), "runrm {args:?}: {}", stderr(&out));
        let text = stdout(&out);
        assert!(text.contains(&format!("would remove {}", a.id)), "runrm {args:?}: {text}");
        assert!(text.contains("would remove "), "{text}");
        assert!(env.job_dir(&a.id).is_dir() && env.job_dir(&b.id).is_dir(), "runrm {args:?} removed a job");
    }
    assert!(stdout(&env.run("runrm", &["--dry-run"])).contains("would remove 2 jobs"));
    assert_eq!(env.jobs().len(), 2);
}

// --- damaged and foreign entries -----------------------------------------------

#[test]
fn damaged_and_foreign_entries_are_named_and_skipped_and_a_planted_link_is_removed_alone() {
    let env = Env::new();
    let healthy = launch(&env, &["echo", "healthy"]);
    let broken_meta = launch(&env, &["--name", "broken-meta", "true"]);
    let bad_status = launch(&env, &["--name", "bad-status", "true"]);
    for j in [&healthy, &broken_meta, &bad_status] {
        env.wait_ended(&j.id, SOON);
    }
    let meta_path = env.job_dir(&broken_meta.id).join("meta.json");
    let bytes = std::fs::read(&meta_path).expect("reading meta.json");
    std::fs::write(&meta_path, &bytes[..bytes.len() / 2]).expect("truncating meta.json");
    write(&env.job_dir(&bad_status.id).join("status"), "garbage \u{1}\n");
    let empty = "empty_20250101_000000";
    std::fs::create_dir(env.store.join(empty)).expect("making an empty directory");
    write(&env.store.join("stray.log"), "an old script's log\n");
    let outside = env.root.join("outside");
    std::fs::create_dir(&outside).expect("making a directory outside the store");
    write(&outside.join("precious"), "keep me\n");
    let link = "elsewhere_20250101_000000";
    std::os::unix::fs::symlink(&outside, env.store.join(link)).expect("planting a link");
    let damaged = [broken_meta.id.as_str(), bad_status.id.as_str(), empty, link];

    for args in [vec![], vec!["--json"]] {
        let out = env.run("runs", &args);
        assert!(out.status.success(), "runs {args:?} failed: {}", stderr(&out));
        let err = stderr(&out);
        for name in damaged {
            assert_eq!(err.lines().filter(|l| l.contains(name)).count(), 1, "runs {args:?} stderr: {err}");
        }
        let text = stdout(&out);
        assert!(text.contains(&healthy.id), "runs {args:?}: {text}");
        for name in damaged.iter().chain(&["stray.log"]) {
            assert!(!text.contains(name), "runs {args:?} listed {name}: {text}");
        }
    }
    let ids: Vec<Value> = env.jobs().iter().map(|j| j["id"].clone()).collect();
    assert_eq!(ids, vec![Value::from(healthy.id.as_str())]);

    let out = env.run("runrm", &[]);
    assert!(out.status.success(), "runrm failed: {}", stderr(&out));
    assert!(!env.job_dir(&healthy.id).exists());
    assert!(outside.join("precious").is_file(), "runrm reached through the link");

    let out = env.run("runrm", &[link]);
    assert!(out.status.success(), "runrm {link} failed: {}", stderr(&out));
    assert!(std::fs::symlink_metadata(env.store.join(link)).is_err(), "the link is still there");
    assert_eq!(std::fs::read_to_string(outside.join("precious")).ok().as_deref(), Some("keep me\n"));
}

// --- runlog --------------------------------------------------------------------

#[test]
fn runlog_follows_a_running_job_until_it_ends() {
    let env = Env::new();
    let mut left = Leftovers::default();
    let (g1, g2) = (env.root.join("g1"), env.root.join("g2"));
    let cmd = format!(
        "echo first; while [ ! -e {g1} ]; do sleep 0.02; done; echo second; while [ ! -e {g2} ]; do sleep 0.02; done",
        g1 = g1.display(),
        g2 = g2.display()
    );
    let job = launch(&env, &[&cmd]);
    left.add(job.pid);
    let mut follower = env.cmd("runlog").arg(&job.id).stdout(Stdio::piped()).spawn().expect("starting runlog");
    let (tx, rx) = mpsc::channel();
    let reader = BufReader::new(follower.stdout.take().expect("runlog's stdout"));
    std::thread::spawn(move || {
        for line in reader.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let expect = |want: &str| loop {
        match rx.recv_timeout(SOON) {
            Ok(line) if line.starts_with(want) => return,
            Ok(line) => assert!(!line.starts_with("=== done"), "the job ended before {want:?} was seen"),
            Err(_) => panic!("runlog did not print {want:?} within {SOON:?}"),
        }
    };

    expect("first");
    assert!(follower.try_wait().expect("checking runlog").is_none(), "runlog exited while the job ran");
    open(&g1);
    expect("second");
    assert!(follower.try_wait().expect("checking runlog").is_none(), "runlog exited while the job ran");
    open(&g2);
    expect("=== done (exit 0) after ");
    let status = wait_exit(&mut follower, SOON, "runlog to exit after the job ended");
    assert!(status.success(), "runlog exited with {status}");
}

#[test]
fn runlog_tail_prints_only_the_last_lines() {
    let env = Env::new();
    let job = launch(&env, &["seq", "1", "10"]);
    env.wait_ended(&job.id, SOON);
    for args in [vec![job.id.as_str(), "--tail", "3", "--no-follow"], vec![job.id.as_str(), "--tail", "3"]] {
        let out = env.run("runlog", &args);
        assert!(out.status.success(), "runlog {args:?}: {}", stderr(&out));
        let text = stdout(&out);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "runlog {args:?}: {text}");
        assert_eq!(&lines[..2], ["9", "10"]);
        assert!(lines[2].starts_with("=== done (exit 0) after "), "{text}");
    }
}

#[test]
fn runlog_without_a_job_and_without_a_terminal_shows_the_newest_job_and_says_so() {
    let env = Env::new();
    let old = launch(&env, &["echo", "older-output"]);
    env.wait_ended(&old.id, SOON);
    let new = launch(&env, &["echo", "newer-output"]);
    env.wait_ended(&new.id, SOON);
    let out = env.run("runlog", &[]);
    assert!(out.status.success(), "runlog failed: {}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("\nnewer-output\n") && !text.contains("older-output"), "{text}");
    let err = stderr(&out);
    assert!(err.contains("newest") && err.contains(&new.id), "runlog said: {err}");
}

// --- the store -----------------------------------------------------------------

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).expect("reading a mode").permissions().mode() & 0o777
}

#[test]
fn the_store_and_its_jobs_are_private_to_the_user() {
    let env = Env::new();
    let job = launch(&env, &["true"]);
    env.wait_ended(&job.id, SOON);
    assert_eq!(mode(&env.store), 0o700, "the store");
    let dir = env.job_dir(&job.id);
    assert_eq!(mode(&dir), 0o700, "the job directory");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("reading the job directory").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        // The watcher's temporary file for meta.json may be renamed away
        // between the listing and the look at it.
        if name.starts_with('.') && !entry.path().exists() {
            continue;
        }
        assert_eq!(mode(&entry.path()), 0o600, "{name}");
        names.push(name);
    }
    for f in ["cmd", "meta.json", "log", "pid", "status"] {
        assert!(names.iter().any(|n| n == f), "no {f} in {names:?}");
    }
}

#[test]
fn without_run_dir_the_store_is_under_xdg_data_home_else_under_home() {
    let env = Env::new();
    let xdg = env.root.join("xdg");
    let cases = [(Some(&xdg), xdg.join("run")), (None, env.home.join(".local/share/run"))];
    for (xdg_dir, store) in cases {
        let with_env = |name: &str| {
            let mut c = env.cmd(name);
            c.env_remove("RUN_DIR");
            if let Some(x) = xdg_dir {
                c.env("XDG_DATA_HOME", x);
            }
            c
        };
        let out = with_env("run").arg("true").output().expect("running run");
        assert!(out.status.success(), "run failed: {}", stderr(&out));
        let text = stdout(&out);
        let id = text.split_whitespace().next().expect("an id");
        assert_eq!(text.split_whitespace().nth(2), Some(store.join(id).join("log").to_str().expect("UTF-8")));
        assert!(store.join(id).is_dir(), "no job in {}", store.display());
        assert_eq!(mode(&store), 0o700);
        let out = with_env("runs").arg("--json").output().expect("running runs");
        assert!(stdout(&out).contains(id), "runs does not see the job: {}", stdout(&out));
    }
    assert!(!env.store.exists(), "RUN_DIR was used though unset");
}

// --- runs ------------------------------------------------------------------------

#[test]
fn a_link_named_runs_to_the_run_binary_behaves_as_runs() {
    let env = Env::new();
    let job = launch(&env, &["true"]);
    env.wait_ended(&job.id, SOON);
    // What the job used lands in meta.json a moment after its end: wait, so
    // that both listings below see the same.
    wait_until(SOON, "the job's usage", || !env.job(&job.id)["max_rss_kib"].is_null());
    let links = env.root.join("links");
    std::fs::create_dir(&links).expect("making a directory for the link");
    let link = links.join("runs");
    std::os::unix::fs::symlink(bin("run"), &link).expect("linking");
    for args in [vec![], vec!["--json"]] {
        let via_link = env.tool(link.to_str().expect("UTF-8")).args(&args).output().expect("running the link");
        assert!(via_link.status.success(), "runs (link) {args:?}: {}", stderr(&via_link));
        assert!(stdout(&via_link).contains(&job.id));
        assert_eq!(stdout(&via_link), stdout(&env.run("runs", &args)), "runs {args:?}");
    }
}

#[test]
fn runs_into_a_pipe_closed_early_exits_quietly() {
    let env = Env::new();
    // Long lines, so the listing overflows the pipe's buffer (64 KiB).
    let long = "x".repeat(2000);
    let ids: Vec<String> = (0..50).map(|_| launch(&env, &["true", &long]).id).collect();
    for id in &ids {
        env.wait_ended(id, SOON);
    }
    for args in [vec![], vec!["--json"]] {
        let mut child =
            env.cmd("runs").args(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("starting runs");
        let mut first = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut first).expect("reading a line");
        assert!(!first.is_empty());
        let status = wait_exit(&mut child, SOON, "runs to exit after its pipe closed");
        let mut err = String::new();
        child.stderr.take().expect("stderr").read_to_string(&mut err).expect("reading stderr");
        assert!(!err.contains("panicked"), "runs {args:?}: {err}");
        assert_eq!(err, "", "runs {args:?}");
        assert!(status.success(), "runs {args:?} exited with {status}");
    }
}

#[test]
fn runs_lines_show_mark_id_pid_state_and_command_without_colour_off_a_terminal() {
    if !need_tool("script") {
        return;
    }
    let env = Env::new();
    let mut left = Leftovers::default();
    let gate = env.root.join("gate");
    let cmd = gated(&gate, 0);
    let running = launch(&env, &[&cmd]);
    left.add(running.pid);
    let done = launch(&env, &["true"]);
    let failed = launch(&env, &["exit 2"]);
    env.wait_ended(&done.id, SOON);
    env.wait_ended(&failed.id, SOON);

    let plain = stdout(&env.run("runs", &[]));
    let no_color_unset = env.cmd("runs").env_remove("NO_COLOR").output().expect("running runs");
    for text in [&plain, &stdout(&no_color_unset)] {
        assert!(!text.contains('\u{1b}'), "colour in a pipe: {text:?}");
        let line = |id: &str| text.lines().find(|l| l.contains(id)).unwrap_or_default().to_string();
        let l = line(&running.id);
        assert!(l.starts_with(&format!("● {} (PID: {}) - running ", running.id, running.pid)), "{l}");
        assert!(l.ends_with(&format!("  {cmd}")), "{l}");
        let l = line(&done.id);
        assert!(l.starts_with(&format!("○ {} (PID: {}) - done ", done.id, done.pid)), "{l}");
        assert!(l.ends_with("  true"), "{l}");
        let l = line(&failed.id);
        assert!(l.starts_with(&format!("✗ {} (PID: {}) - failed (exit 2) ", failed.id, failed.pid)), "{l}");
        assert!(l.ends_with("  exit 2"), "{l}");
        let order: Vec<&str> = text.lines().map(|l| l.split(' ').nth(1).unwrap_or_default()).collect();
        assert_eq!(order, [&running.id, &done.id, &failed.id], "not newest last");
    }

    let runs = bin("runs").display().to_string();
    let tty_plain = on_a_terminal(&env, &runs, true);
    assert!(tty_plain.contains(&done.id) && !tty_plain.contains('\u{1b}'), "NO_COLOR ignored: {tty_plain:?}");
    let tty_colour = on_a_terminal(&env, &runs, false);
    assert!(tty_colour.contains('\u{1b}'), "no colour on a terminal: {tty_colour:?}");
    open(&gate);
    env.wait_ended(&running.id, SOON);
}

#[test]
fn a_command_holding_an_escape_byte_is_shown_escaped() {
    if !need_tool("script") {
        return;
    }
    let env = Env::new();
    let job = launch(&env, &["printf", "x\u{1b}[2Jy\n"]);
    env.wait_ended(&job.id, SOON);
    let text = stdout(&env.run("runs", &[]));
    assert!(text.contains(&job.id), "{text}");
    assert!(!text.contains('\u{1b}'), "a raw ESC reached the output: {text:?}");
    let tty = on_a_terminal(&env, &bin("runs").display().to_string(), true);
    assert!(tty.contains(&job.id) && !tty.contains('\u{1b}'), "a raw ESC reached the terminal: {tty:?}");
    assert_eq!(env.job(&job.id)["argv"][1], "x\u{1b}[2Jy\n");
}

// --- a big store -----------------------------------------------------------------

#[test]
fn a_big_store_lists_every_job_once_in_order_and_names_each_damaged_one() {
    let env = Env::new();
    let model = launch(&env, &["sh", "-c", "exit 3"]);
    env.wait_ended(&model.id, SOON);
    let model_dir = env.job_dir(&model.id);
    // The watcher's last write: ended_at in meta.json, after `status`.
    wait_until(SOON, "ended_at in meta.json", || {
        std::fs::read(model_dir.join("meta.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .is_some_and(|m| m["ended_at"].is_string())
    });
    let files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&model_dir)
        .expect("reading the model job")
        .flatten()
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).expect("reading a job file")))
        .filter(|(name, _)| !name.starts_with('.'))
        .collect();
    let mut meta: Value =
        serde_json::from_slice(&files.iter().find(|(n, _)| n == "meta.json").expect("meta.json").1).expect("JSON");
    std::fs::remove_dir_all(&model_dir).expect("removing the model job");
    // Enough jobs that the listing reads them with several threads.
    let n = 1500;
    let mut ids = Vec::new();
    for i in 0..n {
        let id = format!("copy_20250101_{:02}{:02}{:02}", i / 3600, i / 60 % 60, i % 60);
        meta["id"] = Value::from(id.as_str());
        meta["started_at"] =
            Value::from(format!("2025-01-01T{:02}:{:02}:{:02}.000+00:00", i / 3600, i / 60 % 60, i % 60));
        let dir = env.store.join(&id);
        std::fs::create_dir(&dir).expect("making a job directory");
        for (name, bytes) in &files {
            let bytes = if name == "meta.json" { serde_json::to_vec(&meta).expect("JSON") } else { bytes.clone() };
            std::fs::write(dir.join(name), bytes).expect("writing a job file");
        }
        ids.push(id);
    }
    let (truncated, garbage, linked) = (ids[700].clone(), ids[1200].clone(), ids[1499].clone());
    let meta_path = env.job_dir(&truncated).join("meta.json");
    let bytes = std::fs::read(&meta_path).expect("reading meta.json");
    std::fs::write(&meta_path, &bytes[..bytes.len() / 2]).expect("truncating meta.json");
    write(&env.job_dir(&garbage).join("status"), "done exit 0 never\n");
    let meta_path = env.job_dir(&linked).join("meta.json");
    std::fs::rename(&meta_path, env.root.join("elsewhere.json")).expect("moving meta.json out");
    std::os::unix::fs::symlink(env.root.join("elsewhere.json"), &meta_path).expect("planting a link");

    let out = env.run("runs", &["--json"]);
    assert!(out.status.success(), "runs --json failed: {}", stderr(&out));
    let err = stderr(&out);
    for id in [&truncated, &garbage, &linked] {
        assert_eq!(err.lines().filter(|l| l.contains(id.as_str())).count(), 1, "{id} in stderr: {err}");
    }
    assert_eq!(err.lines().count(), 3, "stderr: {err}");
    let jobs: Vec<Value> = serde_json::from_slice(&out.stdout).expect("runs --json prints JSON");
    let listed: Vec<&str> = jobs.iter().map(|j| j["id"].as_str().unwrap_or_default()).collect();
    let expected: Vec<&str> = ids
        .iter()
        .map(String::as_str)
        .filter(|id| ![&truncated, &garbage, &linked].contains(&&id.to_string()))
        .collect();
    assert_eq!(listed, expected, "every readable job once, oldest first");
    assert!(jobs.iter().all(|j| j["state"] == "failed" && j["exit_code"] == 3), "a copy lost its end");

    let out = env.run("runs", &[]);
    assert!(out.status.success(), "runs failed: {}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), n - 3);
}

// --- leftovers of interrupted launches and removals ----------------------------------

#[test]
fn runrm_and_job_clean_sweep_abandoned_hidden_leftovers_and_leave_fresh_ones() {
    let env = Env::new();
    let job = env.start(&["true"]);
    env.wait_ended(&job, SOON);
    let outside = env.root.join("outside");
    std::fs::create_dir(&outside).expect("making a directory outside the store");
    write(&outside.join("precious"), "keep me\n");
    let make = |name: &str, age: &str| {
        let dir = env.store.join(name);
        std::fs::create_dir(&dir).expect("making a leftover");
        write(&dir.join("log"), "half a launch\n");
        std::os::unix::fs::symlink(&outside, dir.join("link")).expect("planting a link");
        let out = std::process::Command::new("touch").args(["-d", age]).arg(&dir).output().expect("running touch");
        assert!(out.status.success(), "touch: {}", stderr(&out));
        dir
    };
    let old_new = make(".new-true_20250101_000000-4242", "1 hour ago");
    let old_rm = make(".rm-true_20250101_000001-4243", "2 hours ago");
    let fresh = make(".new-true_20250101_000002-4244", "now");

    let out = env.run("runrm", &["--dry-run"]);
    assert!(out.status.success(), "runrm --dry-run failed: {}", stderr(&out));
    let text = stdout(&out);
    for dir in [&old_new, &old_rm] {
        let name = dir.file_name().unwrap_or_default().to_string_lossy().into_owned();
        assert!(text.contains(&format!("would remove {name}")), "runrm --dry-run: {text}");
        assert!(dir.is_dir(), "--dry-run removed {name}");
    }
    assert!(!text.contains(".new-true_20250101_000002"), "a fresh leftover was named: {text}");

    let out = env.run("runrm", &[&job]);
    assert!(out.status.success(), "runrm {job} failed: {}", stderr(&out));
    assert!(old_new.is_dir() && old_rm.is_dir(), "runrm JOB swept leftovers");

    let out = env.run("job", &["clean", "--all"]);
    assert!(out.status.success(), "job clean failed: {}", stderr(&out));
    assert!(!old_new.exists() && !old_rm.exists(), "job clean left them: {}", stdout(&out));
    assert!(fresh.is_dir(), "a launch or removal in progress was swept");
    assert_eq!(std::fs::read_to_string(outside.join("precious")).ok().as_deref(), Some("keep me\n"));
    let again = make(".new-true_20250101_000003-4245", "1 hour ago");
    let out = env.run("runrm", &[]);
    assert!(out.status.success(), "runrm failed: {}", stderr(&out));
    assert!(!again.exists(), "runrm left it: {}", stdout(&out));
    assert!(fresh.is_dir(), "a launch or removal in progress was swept");
    let out = env.run("runs", &["--json"]);
    assert!(out.status.success() && stderr(&out).is_empty(), "runs: {}", stderr(&out));
}
