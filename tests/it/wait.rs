//! Waiting for jobs (`job wait`, `--wait`): the exit status says how they
//! ended (0, 1, 124), waiting sleeps instead of spinning, and a hung-up
//! terminal ends the waiting, not the job.

use crate::common::*;
use std::process::{Child, Stdio};

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

// --- terminal hangup, SSH disconnect -----------------------------------------------

#[test]
fn a_terminal_hung_up_under_job_run_wait_follow_ends_the_waiting_not_the_job() {
    if !need_tool("script") {
        return;
    }
    let env = Env::new();
    let mut left = Leftovers::default();
    let session = format!(
        "{} run --name follower --wait --follow 'echo begun; sleep 6; echo finished; exit 7'",
        bin("job").display()
    );
    let mut script = env
        .tool("script")
        .args(["-qfec", &session, "/dev/null"])
        .stdout(Stdio::null())
        .spawn()
        .expect("running script");
    left.add(script.id() as i32);
    let waiter = ["run", "--name", "follower", "--wait"];
    wait_until(SOON, "the job to start inside the terminal", || {
        env.jobs().iter().any(|j| j["name"] == "follower") && !waiting(&env, &waiter).is_empty()
    });
    let id = env.jobs()[0]["id"].as_str().unwrap_or_default().to_string();
    wait_until(SOON, "the job's first line", || env.log(&id).contains("begun"));

    kill(script.id() as i32, libc::SIGKILL);
    let _ = script.wait();
    wait_until(SOON, "the waiting `job run` to be hung up", || waiting(&env, &waiter).is_empty());
    assert_eq!(env.state(&id), "running", "the job ended with its terminal");
    let j = env.wait_ended(&id, SOON);
    assert_eq!(j["state"], "failed", "{j}");
    assert_eq!(j["exit_code"], 7, "{j}");
    assert!(env.log(&id).contains("finished"));
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
    sigkill(watcher);
    wait_until(SOON, "the killed watcher to be gone", || !pid_alive(watcher));
    let out = env.cli(&["wait", &id, "--timeout", "1s"]);
    assert_eq!(code(&out), 124, "a job whose watcher died was taken for ended: {}", stderr(&out));
    assert_eq!(waiter.child.try_wait().expect("checking job wait"), None, "job wait returned while the job ran");
    kill_group(env.pid(&id));
    let (rc, _, err) = waiter.finish();
    assert_eq!(rc, 1, "{err}");
    assert_eq!(env.state(&id), "lost");
}
