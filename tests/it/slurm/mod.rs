//! The Slurm backend against a real cluster: the single node that
//! `.ci/slurm` starts (CI runs it first). Where Slurm is not installed or
//! does not answer, each test is reported as not run, with the reason
//! (`common::need`), and passes, unless BGRUN_TEST_ALL=1 (CI), where it
//! fails. Setting the node down needs root: as another user that test is
//! reported as not run.
//!
//! The node has 2 CPUs, so jobs of parallel tests may wait for each other:
//! deadlines allow for it. Every test scancels what it submitted when it
//! ends, passing or not. The test that sets the node down holds the node
//! lock exclusively; every other test holds it shared while its jobs run.
//! Submodule `trust`: what is submitted and recorded is exactly the job
//! (paths, clusters, arrays, a second step, a stop, a transient answer).

mod trust;

use crate::common::*;
use serde_json::Value;
use std::ops::Deref;
use std::process::Command;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

const SOON: Duration = Duration::from_secs(60);

/// Why Slurm cannot be used here, if it cannot.
fn slurm_missing() -> Option<String> {
    for tool in ["sbatch", "sinfo", "squeue", "scancel", "scontrol"] {
        let on_path = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
            .unwrap_or(false);
        if !on_path {
            return Some(format!("{tool} is not installed"));
        }
    }
    // sinfo's own error (a resolver's or munge's, several lines) is not
    // the point: no cluster answers.
    match Command::new("sinfo").args(["-h", "-o", "%t"]).output() {
        Ok(o) if o.status.success() => None,
        _ => Some("Slurm is installed but no cluster answers".into()),
    }
}

/// True if Slurm answers here; otherwise the test is reported as not run.
#[must_use]
fn slurm_here() -> bool {
    match slurm_missing() {
        None => true,
        Some(why) => need(
            false,
            &why,
            &as_root(
                "installs slurm-wlm and munge and starts a one-node cluster on this machine; \
                 bash .ci/slurm stop stops it",
                "bash .ci/slurm",
            ),
        ),
    }
}

/// Held shared by tests whose jobs need the node; exclusively by the test
/// that sets it down.
static NODE: RwLock<()> = RwLock::new(());

enum Hold {
    Shared(#[allow(dead_code)] RwLockReadGuard<'static, ()>),
    Exclusive(#[allow(dead_code)] RwLockWriteGuard<'static, ()>),
}

/// A temporary store whose Slurm jobs are all scancelled when the test ends.
struct Cluster {
    env: Env,
    _hold: Hold,
}

impl Deref for Cluster {
    type Target = Env;
    fn deref(&self) -> &Env {
        &self.env
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let ids: Vec<String> = std::fs::read_dir(&self.env.store)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.path().join("slurm_id")).ok())
            .map(|s| s.trim().to_string())
            .collect();
        if !ids.is_empty() {
            let _ = Command::new("scancel").args(&ids).output();
        }
    }
}

impl Cluster {
    /// `run --slurm ARGS…`: the id and the Slurm job id it printed.
    fn submit(&self, args: &[&str]) -> (String, u64) {
        let mut all = vec!["--slurm"];
        all.extend_from_slice(args);
        let out = self.run("run", &all);
        assert!(out.status.success(), "run {all:?} failed: {}", stderr(&out));
        let line = stdout(&out);
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(words.len(), 3, "run printed {line:?}");
        let slurm_id = words[1].strip_prefix("slurm:").and_then(|n| n.parse().ok());
        (words[0].to_string(), slurm_id.unwrap_or_else(|| panic!("no Slurm id in {line:?}")))
    }

    /// `job ARGS…`.
    fn job(&self, args: &[&str]) -> std::process::Output {
        self.run("job", args)
    }

    /// Waits until the job's state is `state`; returns its object.
    fn wait_state(&self, id: &str, state: &str, within: Duration) -> Value {
        let mut last = Value::Null;
        wait_until(within, &format!("job {id} to be {state}"), || {
            last = self.job_json(id);
            last["state"] == state
        });
        last
    }

    /// Waits until the job's log holds `text`: the job itself runs.
    fn wait_output(&self, id: &str, text: &str) {
        wait_until(SOON, &format!("job {id} to write {text:?}"), || self.log(id).contains(text));
    }

    fn job_json(&self, id: &str) -> Value {
        let out = self.job(&["status", id, "--json"]);
        assert!(out.status.success(), "job status {id}: {}", stderr(&out));
        serde_json::from_slice(&out.stdout).expect("job status --json prints JSON")
    }
}

fn cluster() -> Cluster {
    Cluster { env: Env::new(), _hold: Hold::Shared(NODE.read().unwrap_or_else(|e| e.into_inner())) }
}

/// What squeue says of a Slurm job now: its state, or "" if it forgot it.
fn squeue_state(id: u64) -> String {
    let out = Command::new("squeue").args(["-h", "-t", "all", "-o", "%T", "-j"]).arg(format!("{id},{id}")).output();
    out.map(|o| stdout(&o).trim().to_string()).unwrap_or_default()
}

fn release(id: u64) {
    let out = Command::new("scontrol").args(["release", &id.to_string()]).output().expect("scontrol");
    assert!(out.status.success(), "scontrol release {id}: {}", stderr(&out));
}

fn hostname() -> String {
    let out = Command::new("hostname").output().expect("hostname");
    stdout(&out).trim().to_string()
}

/// SIGTERM's bit in /proc/PID/status's signal masks.
const TERM: u64 = 1 << (15 - 1);

/// The pid of the job's batch step, once it runs.
fn wait_for_step(id: &str) -> i32 {
    let mut pid = None;
    wait_until(SOON, &format!("the step of {id} to start"), || {
        pid = std::fs::read_dir("/proc").unwrap().flatten().find_map(|e| {
            let n: i32 = e.file_name().to_str()?.parse().ok()?;
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            let words: Vec<&[u8]> = cmd.split(|&b| b == 0).collect();
            (words.contains(&b"__slurm-step".as_slice()) && words.contains(&id.as_bytes())).then_some(n)
        });
        pid.is_some()
    });
    pid.unwrap()
}

/// A signal mask ("SigBlk", "SigPnd"…) of the process `pid`.
fn signal_mask(pid: i32, which: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find_map(|l| l.strip_prefix(which)?.strip_prefix(':'))?;
    u64::from_str_radix(line.trim(), 16).ok()
}

/// Brings the node back when the test ends, passing or not, and waits
/// until Slurm has it up.
struct NodeBack(String);

impl Drop for NodeBack {
    fn drop(&mut self) {
        let up = || {
            let out = Command::new("sinfo").args(["-h", "-n", &self.0, "-o", "%t"]).output();
            out.is_ok_and(|o| matches!(stdout(&o).trim(), "idle" | "mix" | "alloc"))
        };
        for _ in 0..300 {
            if up() {
                return;
            }
            let _ = Command::new("scontrol").args(["update", &format!("nodename={}", self.0), "state=resume"]).output();
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn a_job_past_its_slurm_time_limit_ends_in_timeout() {
    if !slurm_here() {
        return;
    }
    let c = cluster();
    // Slurm's own limit (checked every 30 s: the job runs 61 to 90 s).
    let (slurm_limit, _) = c.submit(&["--sbatch", "--time=1", "--name", "limit", "sleep", "300"]);
    // bgrun's --timeout, which the step enforces to the second.
    let out = c.job(&["run", "--slurm", "--timeout", "3s", "--name", "quick", "sleep 300"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let quick = stdout(&out).trim().to_string();
    let j = c.wait_state(&quick, "timeout", SOON);
    assert_eq!(j["signal"], "SIGTERM", "{j}");
    assert_eq!(j["timeout_s"], 3);
    let j = c.wait_state(&slurm_limit, "timeout", Duration::from_secs(150));
    assert_eq!(j["backend"], "slurm");
}

#[test]
fn a_slurm_job_goes_from_queued_to_running_to_done_with_its_node_as_host() {
    if !slurm_here() {
        return;
    }
    let c = cluster();
    let (id, slurm_id) = c.submit(&["--sbatch", "--hold", "sh", "-c", "echo started; sleep 2; echo finished"]);
    let j = c.wait_state(&id, "queued", SOON);
    assert_eq!(j["reason"], "JobHeldUser", "{j}");
    assert_eq!(j["slurm_job_id"], slurm_id);
    assert_eq!(j["node"], Value::Null);
    let meta: Value = serde_json::from_slice(&std::fs::read(c.job_dir(&id).join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["backend"], "slurm");
    release(slurm_id);
    let j = c.wait_state(&id, "running", SOON);
    assert_eq!(j["node"], hostname().as_str(), "{j}");
    assert_eq!(j["host"], j["node"]);
    let j = c.wait_state(&id, "done", SOON);
    assert_eq!(j["exit_code"], 0);
    let log = c.log(&id);
    assert!(log.contains("started\nfinished\n") && log.contains("=== done (exit 0)"), "{log}");
}

#[test]
fn a_failing_slurm_job_keeps_its_exit_code_and_job_wait_exits_0_1_or_124() {
    if !slurm_here() {
        return;
    }
    let c = cluster();
    let out = c.job(&["run", "--slurm", "--name", "bad", "echo oops >&2; exit 3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let bad = stdout(&out).trim().to_string();
    let out = c.job(&["run", "--slurm", "--name", "good", "true"]);
    let good = stdout(&out).trim().to_string();
    let (held, _) = c.submit(&["--sbatch", "--hold", "true"]);

    let out = c.job(&["wait", &held, "--timeout", "1s"]);
    assert_eq!(out.status.code(), Some(124), "a queued job is waited for: {}", stderr(&out));
    let out = c.job(&["wait", &bad]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("failed (exit 3)"), "{}", stderr(&out));
    let j = c.job_json(&bad);
    assert_eq!((j["state"].as_str(), j["exit_code"].as_i64()), (Some("failed"), Some(3)), "{j}");
    assert!(c.log(&bad).contains("oops\n"));
    let out = c.job(&["wait", &good]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn job_stop_cancels_a_pending_and_a_running_slurm_job_and_records_them_stopped() {
    if !slurm_here() {
        return;
    }
    let c = cluster();
    let (pending, pending_sid) = c.submit(&["--sbatch", "--hold", "--name", "pending", "sleep", "300"]);
    let (running, running_sid) = c.submit(&["--name", "running", "sh", "-c", "echo up; exec sleep 300"]);
    c.wait_state(&pending, "queued", SOON);
    c.wait_output(&running, "up\n");

    // A queued job is never removed, as a running one is not.
    let out = c.run("runrm", &[&pending]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("is queued; stop it first"), "{}", stderr(&out));
    let out = c.run("runrm", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(c.job_dir(&pending).join("meta.json").exists() && c.job_dir(&running).join("meta.json").exists());

    let out = c.job(&["stop", &pending]);
    assert!(out.status.success(), "{}", stderr(&out));
    let j = c.job_json(&pending);
    assert_eq!(j["state"], "stopped", "{j}");
    assert_eq!(j["reason"], "Slurm: CANCELLED (JobHeldUser)");
    assert_eq!(squeue_state(pending_sid), "CANCELLED");

    let out = c.job(&["stop", &running]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("stopped"), "{}", stdout(&out));
    let j = c.job_json(&running);
    assert_eq!(j["state"], "stopped", "{j}");
    assert_eq!(j["signal"], "SIGTERM", "the step recorded how the job ended: {j}");
    wait_until(SOON, "Slurm to end the job", || squeue_state(running_sid) == "CANCELLED");
}

#[test]
fn scancel_from_outside_is_recorded_stopped_by_the_step_or_from_slurms_words() {
    if !slurm_here() {
        return;
    }
    let c = cluster();
    let (running, running_sid) = c.submit(&["sh", "-c", "echo up; exec sleep 300"]);
    let (held, held_sid) = c.submit(&["--sbatch", "--hold", "sleep", "300"]);
    // Its step has started it (a SIGTERM before that is the next test's).
    c.wait_output(&running, "up\n");
    c.wait_state(&held, "queued", SOON);
    for sid in [running_sid, held_sid] {
        let out = Command::new("scancel").arg(sid.to_string()).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let j = c.wait_state(&running, "stopped", SOON);
    assert_eq!(j["signal"], "SIGTERM", "{j}");
    // Never started: its end is recorded from what Slurm says, once.
    let j = c.wait_state(&held, "stopped", SOON);
    assert_eq!(j["reason"], "Slurm: CANCELLED (JobHeldUser)", "{j}");
    let status = std::fs::read_to_string(c.job_dir(&held).join("status")).unwrap();
    assert!(status.starts_with("stopped unknown 0 "), "{status}");
    assert!(c.log(&held).contains("=== stopped (Slurm: CANCELLED (JobHeldUser))"), "{}", c.log(&held));
}

#[test]
fn a_slurm_jobs_recorded_usage_is_its_own_not_the_steps_squeue_call() {
    if !slurm_here() {
        return;
    }
    let c = cluster();
    // The step asks squeue for the time left before it starts the job;
    // squeue's peak (4 MiB and more) was recorded as the job's.
    let (remote, _) = c.submit(&["true"]);
    let local = c.start(&["true"]);
    c.wait_state(&remote, "done", SOON);
    c.wait_state(&local, "done", SOON);
    // What each used is written to meta.json just after the end.
    let (mut r, mut l) = (Value::Null, Value::Null);
    wait_until(SOON, "what both jobs used in meta.json", || {
        (r, l) = (c.job_json(&remote), c.job_json(&local));
        !r["max_rss_kib"].is_null() && !l["max_rss_kib"].is_null()
    });
    let (rk, lk) = (r["max_rss_kib"].as_u64().unwrap_or(0), l["max_rss_kib"].as_u64().unwrap_or(0));
    assert!(rk <= lk + 1024, "`true` on Slurm peaked at {rk} KiB, locally at {lk} KiB: {r}");
}

#[test]
fn a_slurm_job_cancelled_while_its_step_starts_is_recorded_stopped_by_the_step_and_never_run() {
    if !slurm_here() {
        return;
    }
    let c = cluster();
    let marker = c.root.join("ran");
    let script = format!("touch {}; sleep 300", marker.display());
    let (id, sid) = c.submit(&["--sbatch", "--hold", "sh", "-c", &script]);
    c.wait_state(&id, "queued", SOON);
    // Holding the reserved status file's lock keeps the step in its start
    // (it waits for the launcher's lock to go) until its SIGTERM comes.
    let status = std::fs::File::open(c.job_dir(&id).join(".status")).unwrap();
    status.lock().unwrap();
    release(sid);
    let step = wait_for_step(&id);
    wait_until(SOON, "the step to block SIGTERM", || signal_mask(step, "SigBlk").is_some_and(|m| m & TERM != 0));
    let out = Command::new("scancel").arg(sid.to_string()).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let j = c.wait_state(&id, "stopped", SOON);
    drop(status);
    assert_eq!(j["reason"], "ended by Slurm before it started", "{j}");
    assert_eq!(j["signal"], Value::Null, "{j}");
    let line = std::fs::read_to_string(c.job_dir(&id).join("status")).unwrap();
    assert!(line.starts_with("stopped none 0 "), "the step recorded it, not a reader: {line}");
    // No usage in the footer: a job that never ran used nothing.
    assert!(c.log(&id).contains("=== stopped (ended by Slurm before it started), at "), "{}", c.log(&id));
    assert!(!marker.exists(), "the job was started");
}

#[test]
fn a_slurm_job_whose_step_cannot_run_is_lost_with_slurms_words_not_queued_forever() {
    if !slurm_here() {
        return;
    }
    let c = cluster();
    let (id, sid) = c.submit(&["--sbatch", "--hold", "true"]);
    c.wait_state(&id, "queued", SOON);
    // Slurm cannot open the log as the step's output: the step never runs,
    // as when the store is not reachable from the node.
    let log = c.job_dir(&id).join("log");
    std::fs::remove_file(&log).unwrap();
    std::fs::create_dir(&log).unwrap();
    release(sid);
    let j = c.wait_state(&id, "lost", SOON);
    let reason = j["reason"].as_str().unwrap_or_default();
    assert!(reason.starts_with("Slurm: FAILED") && reason.contains("reachable"), "{j}");
}

#[test]
fn runlog_follows_a_slurm_job_from_the_queue_to_its_end() {
    if !slurm_here() {
        return;
    }
    let c = cluster();
    let (id, sid) = c.submit(&["--sbatch", "--hold", "sh", "-c", "for i in 1 2 3; do echo line $i; sleep 0.5; done"]);
    c.wait_state(&id, "queued", SOON);
    let follower = c.cmd("runlog").arg(&id).stdout(std::process::Stdio::piped()).spawn().unwrap();
    release(sid);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(follower.wait_with_output());
    });
    let out = rx.recv_timeout(SOON).expect("runlog ended with the job").unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("line 1\nline 2\nline 3\n") && text.contains("=== done (exit 0)"), "{text}");
}

#[test]
fn runs_json_lists_local_and_slurm_jobs_side_by_side() {
    if !slurm_here() {
        return;
    }
    let c = cluster();
    let local = c.start(&["true"]);
    let (slurm, sid) = c.submit(&["--cpus", "1", "--mem", "100M", "--name", "remote", "true"]);
    let j = c.wait_state(&slurm, "done", SOON);
    assert_eq!((j["backend"].as_str(), j["slurm_job_id"].as_u64()), (Some("slurm"), Some(sid)));
    let jobs = c.jobs();
    let l = jobs.iter().find(|j| j["id"] == local.as_str()).expect("the local job is listed");
    assert_eq!((l["backend"].as_str(), &l["slurm_job_id"], &l["node"]), (Some("local"), &Value::Null, &Value::Null));
    assert!(jobs.iter().any(|j| j["id"] == slurm.as_str()));
    let out = c.run("runs", &[]);
    assert!(stdout(&out).contains(&format!("(Slurm: {sid} on ")), "{}", stdout(&out));

    // job retry asks Slurm for the same resources.
    let out = c.job(&["retry", "remote"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let again = stdout(&out).trim().to_string();
    let j = c.wait_state(&again, "done", SOON);
    assert_ne!(j["slurm_job_id"], sid);
    let meta = |id: &str| -> Value {
        serde_json::from_slice(&std::fs::read(c.job_dir(id).join("meta.json")).unwrap()).unwrap()
    };
    let (mut before, mut after) = (meta(&slurm)["slurm"].clone(), meta(&again)["slurm"].clone());
    assert_eq!((after["mem"].as_str(), after["cpus"].as_u64()), (Some("100M"), Some(1)));
    before["bin"] = Value::Null;
    after["bin"] = Value::Null;
    assert_eq!(before, after);
}

#[test]
fn a_refused_submission_names_what_slurm_said_and_leaves_nothing() {
    if !slurm_here() {
        return;
    }
    let c = cluster();
    let out = c.run("run", &["--slurm", "--partition", "nosuch", "true"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.starts_with("run: sbatch refused the job: ") && err.contains("Invalid partition"), "{err}");
    assert!(err.trim_end().ends_with("; nothing was left in the store"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let out = c.job(&["run", "--slurm", "--mem", "999999G", "true"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let left: Vec<_> =
        std::fs::read_dir(&c.store).unwrap().flatten().map(|e| e.file_name()).filter(|n| n != ".ids").collect();
    assert!(left.is_empty(), "left in the store: {left:?}");
}

#[test]
fn notifying_from_the_node_records_a_failed_delivery_and_keeps_the_end() {
    if !slurm_here() {
        return;
    }
    let c = cluster();
    // Nothing listens on port 9 of loopback: the delivery fails at once.
    let out = c
        .cmd("run")
        .env("NTFY_SERVER", "http://127.0.0.1:9")
        .env("NTFY_TIMEOUT", "2")
        .args(["--slurm", "--topic", "bgrun-test", "true"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let id = stdout(&out).split_whitespace().next().unwrap().to_string();
    c.wait_state(&id, "done", SOON);
    let mut j = Value::Null;
    wait_until(SOON, "the notification outcome", || {
        j = c.job_json(&id);
        j["notify"]["state"] != "pending"
    });
    assert_eq!(j["notify"]["state"], "failed", "{j}");
}

#[test]
fn when_the_node_goes_down_mid_job_the_job_does_not_stay_running() {
    if !slurm_here() {
        return;
    }
    let root = nix::unistd::geteuid().is_root();
    let to_run = "run the suite as root, with a target directory of root's own so that yours gets no \
                  root-owned files (it sets this machine's Slurm node down for a moment, then back up): \
                  CARGO_TARGET_DIR=/var/tmp/bgrun-root-target cargo test --locked --test it slurm::";
    if !need(root, "setting the Slurm node down needs root (Slurm's administrator)", to_run) {
        return;
    }
    let env = Env::new();
    let c = Cluster { env, _hold: Hold::Exclusive(NODE.write().unwrap_or_else(|e| e.into_inner())) };
    let node = hostname();
    let (id, sid) = c.submit(&["sleep", "300"]);
    c.wait_state(&id, "running", SOON);
    let _restore = NodeBack(node.clone());
    let out = Command::new("scontrol")
        .args(["update", &format!("nodename={node}"), "state=down", "reason=bgrun-test"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let mut j = Value::Null;
    wait_until(SOON, "the job to end", || {
        j = c.job_json(&id);
        j["state"] != "running"
    });
    assert!(["stopped", "lost", "killed"].contains(&j["state"].as_str().unwrap_or_default()), "{j}");
    assert_ne!(squeue_state(sid), "RUNNING");
}

#[test]
fn without_sbatch_or_without_slurm_the_slurm_flags_are_refused_and_nothing_is_made() {
    let env = Env::new();
    let out = env.cmd("run").env("PATH", "/nonexistent").args(["--slurm", "/bin/true"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "run: --slurm: sbatch is not on PATH (is Slurm installed here?)\n");
    let out = env.run("run", &["--gpus", "1", "true"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr(&out), "run: --gpus needs --slurm (or RUN_BACKEND=slurm)\n");
    let out = env.cmd("job").env("RUN_BACKEND", "pbs").args(["run", "true"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("RUN_BACKEND: 'pbs' is not a backend"), "{}", stderr(&out));
    let out = env.run("job", &["run", "--slurm", "--mem", "4GB", "true"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--mem"), "{}", stderr(&out));
    assert!(!env.store.exists() || std::fs::read_dir(&env.store).unwrap().next().is_none());
}

#[test]
fn an_unreachable_controller_is_named_in_one_line_and_leaves_nothing() {
    // A stand-in sbatch that answers as Slurm's does with slurmctld down.
    let env = Env::new();
    let bin = env.root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let fake = bin.join("sbatch");
    write(
        &fake,
        "#!/bin/sh\necho 'sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)' >&2\nexit 1\n",
    );
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let out = env.cmd("run").env("PATH", &path).args(["--slurm", "true"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "run: sbatch could not reach Slurm's controller (Batch job submission failed: Unable to contact slurm \
         controller (connect failure)); the job was not submitted; nothing was left in the store\n"
    );
    let left: Vec<_> =
        std::fs::read_dir(&env.store).unwrap().flatten().map(|e| e.file_name()).filter(|n| n != ".ids").collect();
    assert!(left.is_empty(), "left in the store: {left:?}");
}

#[test]
fn a_controller_on_a_closed_port_is_named_unreachable_by_the_real_sbatch_and_leaves_nothing() {
    if !need_tool("sbatch") {
        return;
    }
    // A cluster whose controller listens nowhere: port 9 of loopback.
    let env = Env::new();
    let conf = env.root.join("slurm.conf");
    write(
        &conf,
        "ClusterName=bgruntest\nSlurmctldHost=localhost(127.0.0.1)\nSlurmctldPort=9\nMessageTimeout=1\n\
         NodeName=localhost CPUs=1\nPartitionName=p Nodes=localhost Default=YES\n",
    );
    for (front, args) in [("run", &["--slurm", "true"][..]), ("job", &["run", "--slurm", "true"])] {
        let out = env.cmd(front).env("SLURM_CONF", &conf).args(args).output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("could not reach Slurm's controller") && !err.contains("refused"), "{err}");
        assert!(err.trim_end().ends_with("nothing was left in the store"), "{err}");
        assert!(stdout(&out).is_empty(), "no id: {}", stdout(&out));
        let left: Vec<_> =
            std::fs::read_dir(&env.store).unwrap().flatten().map(|e| e.file_name()).filter(|n| n != ".ids").collect();
        assert!(left.is_empty(), "left in the store: {left:?}");
    }
}

#[test]
fn a_slurm_job_whose_launcher_died_before_sbatch_answered_is_lost_not_queued_forever() {
    // A stand-in sbatch that never answers.
    let env = Env::new();
    let bin = env.root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let fake = bin.join("sbatch");
    write(&fake, "#!/bin/sh\nsleep 60\n");
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let mut launcher = env.cmd("run").env("PATH", &path).args(["--slurm", "true"]).spawn().unwrap();
    let mut id = String::new();
    wait_until(SOON, "the job to be published", || {
        let jobs = env.jobs();
        jobs.first().map(|j| id = j["id"].as_str().unwrap_or_default().to_string()).is_some()
    });
    let j = env.job(&id);
    assert_eq!((j["state"].as_str(), j["reason"].as_str()), (Some("queued"), Some("submitting")), "{j}");
    launcher.kill().unwrap();
    launcher.wait().unwrap();
    assert_eq!(env.state(&id), "lost");
}

#[test]
fn after_between_slurm_jobs_is_slurms_dependency_and_a_failed_one_skips_the_next() {
    if !slurm_here() {
        return;
    }
    let c = cluster();
    let out = c.job(&["run", "--slurm", "--name", "first", "sleep 1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let first = stdout(&out).trim().to_string();
    let (then, _) = c.submit(&["--after", &first, "true"]);
    let j = c.wait_state(&then, "queued", SOON);
    assert_eq!(j["after"], serde_json::json!([first]), "{j}");
    let j = c.wait_state(&then, "done", SOON);
    assert_eq!(c.job_json(&first)["state"], "done", "{j}");

    let out = c.job(&["run", "--slurm", "--name", "bad", "exit 1"]);
    let bad = stdout(&out).trim().to_string();
    let (never, _) = c.submit(&["--after", &bad, "true"]);
    let j = c.wait_state(&never, "skipped", SOON);
    assert!(j["reason"].as_str().unwrap_or_default().contains("Dependency"), "{j}");
    assert!(!c.log(&never).contains("=== done"), "it never ran: {}", c.log(&never));

    // Slurm can wait only for its own jobs; and it queues jobs itself.
    let local = c.start(&["true"]);
    let entries = || std::fs::read_dir(&c.store).unwrap().flatten().filter(|e| e.file_name() != ".ids").count();
    let before = entries();
    let out = c.run("run", &["--slurm", "--after", &local, "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not a Slurm job"), "{}", stderr(&out));
    let out = c.run("run", &["--slurm", "-q", "gpu", "true"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(entries(), before, "nothing was left in the store");
}
