//! How a job is judged and recorded: running, then done, failed or killed,
//! whatever became of its log or of the children holding it. Submodules:
//! `lost` (liveness: lost, elsewhere), `listing` (what `runs`, `job list`
//! and `job status` show), `usage` (memory and CPU time).

mod listing;
mod lost;
mod usage;

use crate::common::*;

// --- the life of a job -------------------------------------------------------

#[test]
fn a_job_is_running_then_done_and_runlog_shows_it_and_runrm_removes_it() {
    let env = Env::new();
    let mut left = Leftovers::default();
    let gate = env.root.join("gate");
    let cmd = started_gated(&gate, 0);
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
fn a_failed_jobs_end_is_recorded_whatever_its_log_has_become() {
    let env = Env::new();
    let mut owned = Leftovers::default();
    // The job puts a FIFO where its log was: a reader of the log's tail
    // that opened it plainly would block for ever.
    let script = "L=$(readlink /proc/$$/fd/1); rm -f \"$L\"; mkfifo \"$L\"; exit 3";
    let out = env
        .cmd("run")
        .env("NTFY_SERVER", "http://127.0.0.1:9")
        .args(["--topic", "faults", "sh", "-c", script])
        .output()
        .expect("run");
    let (id, pid) = id_and_pid(out);
    owned.add(pid);
    owned.add(int(&meta(&env, &id)["watcher_pid"]));
    let j = env.wait_ended(&id, SOON);
    assert_eq!((j["state"].as_str(), j["exit_code"].as_i64()), (Some("failed"), Some(3)), "{j}");
}
