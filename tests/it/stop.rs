//! Stopping a job (`job stop`, `--timeout`): its whole process group and
//! escaped descendants end, SIGKILL after the grace or at once with
//! `--force`, and a signal never reaches a stranger that took a pid.

use crate::common::*;
use std::fs;
use std::time::Duration;

#[test]
fn a_timeout_of_0_is_no_timeout_as_with_gnu_timeout() {
    let env = Env::new();
    let out = env.run("job", &["run", "--timeout", "0", "sleep 1; exit 4"]);
    let id = stdout(&out).trim().to_string();
    assert!(out.status.success(), "{}", stderr(&out));
    let j = env.wait_ended(&id, SOON);
    assert_eq!(j["state"], "failed", "{j}");
    assert_eq!(j["exit_code"], 4, "{j}");
    assert_eq!(j["timeout_s"], serde_json::Value::Null, "{j}");
}

// --- signal only what is the job's ----------------------------------------------

#[test]
fn with_its_watcher_gone_a_stop_refuses_a_pid_file_naming_init_or_a_stranger() {
    let env = Env::new();
    let mut owned = Leftovers::default();
    let (id, pid) = id_and_pid(env.cmd("run").args(["sleep", "600"]).output().expect("run"));
    owned.add(pid);
    kill_watcher(&env, &id);
    let mut stranger = session_leader();
    owned.add(stranger.id() as i32);

    for planted in ["1".to_string(), stranger.id().to_string()] {
        write(&env.job_dir(&id).join("pid"), &format!("{planted}\n"));
        let out = env.run("job", &["stop", "--force", &id]);
        assert_eq!(out.status.code(), Some(1), "job stop with pid file {planted}: {}", stdout(&out));
        assert!(stderr(&out).contains("altered"), "{}", stderr(&out));
        assert!(pid_alive(stranger.id().into()) && pid_alive(pid.into()), "something was signalled");
    }
    // The entry as it was: the stop goes through, and only to the job.
    write(&env.job_dir(&id).join("pid"), &format!("{pid}\n"));
    let out = env.run("job", &["stop", "--force", &id]);
    assert!(out.status.success(), "job stop: {}", stderr(&out));
    wait_until(SOON, "the job to be gone", || !pid_alive(pid.into()));
    assert!(pid_alive(stranger.id().into()), "the stranger was killed");
    let _ = stranger.kill();
    let _ = stranger.wait();
}

#[test]
fn with_its_watcher_gone_a_stop_reaches_a_child_that_moved_into_its_own_session() {
    let env = Env::new();
    let mut owned = Leftovers::default();
    let script = "setsid sleep 600 & echo \"child $!\"; trap 'exit 0' TERM; while :; do sleep 1; done";
    let (id, pid) = id_and_pid(env.cmd("run").args(["sh", "-c", script]).output().expect("run"));
    owned.add(pid);
    let mut child = 0;
    wait_until(SOON, "the child's pid in the log", || {
        child = env.log(&id).lines().find_map(|l| l.strip_prefix("child ")?.trim().parse().ok()).unwrap_or(0);
        child > 0
    });
    owned.add(child);
    wait_until(SOON, "the child's own session", || {
        fs::read_to_string(format!("/proc/{child}/stat")).is_ok_and(|s| {
            s.rsplit_once(')').and_then(|(_, r)| r.split_whitespace().nth(3)) == Some(&child.to_string())
        })
    });
    kill_watcher(&env, &id);
    let out = env.run("job", &["stop", &id]);
    assert!(out.status.success(), "job stop: {}", stderr(&out));
    assert!(!pid_alive(pid.into()), "the job lives");
    wait_until(SOON, "the child in its own session to be gone", || !pid_alive(child.into()));
}

#[test]
fn after_the_job_is_reaped_its_watcher_never_signals_a_stranger_that_took_its_group_id() {
    if !isolated("choosing the next pid (ns_last_pid)", false) {
        return;
    }
    let env = Env::new();
    // In a pid namespace of its own, where the test may choose the next pid.
    let script = r#"
        set -u
        out=$("$RUN" --name grp sh -c 'setsid sh -c "trap \"\" TERM; exec sleep 600" & exec sleep 600') || exit 10
        set -- $out; id=$1; pid=$2
        esc=""
        for t in $(seq 400); do
            for d in /proc/[0-9]*; do
                p=${d#/proc/}
                [ "$p" = "$pid" ] && continue
                [ "$(cat $d/comm 2>/dev/null)" = sleep ] && esc=$p
            done
            [ -n "$esc" ] && break
            sleep 0.05
        done
        [ -n "$esc" ] || exit 11
        "$JOB" stop "$id" >stop.out 2>&1 &
        stop=$!
        for t in $(seq 400); do [ -e /proc/$pid ] || break; sleep 0.01; done
        [ -e /proc/$pid ] && exit 12
        s=""
        for t in $(seq 100); do
            echo $((pid - 1)) >/proc/sys/kernel/ns_last_pid
            setsid sleep 600 &
            s=$!
            [ "$s" = "$pid" ] && break
            kill $s; wait $s 2>/dev/null; s=""
        done
        [ -n "$s" ] || exit 13
        wait $stop
        st=$(cut -d' ' -f3 /proc/$s/stat 2>/dev/null)
        echo "stranger ${st:-gone}"
        kill "$s"
        "$RUNS" --json
    "#;
    let out = env
        .tool("sh")
        .args(["-c", script])
        .env("RUN", bin("run"))
        .env("JOB", bin("job"))
        .env("RUNS", bin("runs"))
        .output()
        .expect("sh");
    let text = stdout(&out);
    assert!(out.status.success(), "exit {:?}: {text}{}", out.status.code(), stderr(&out));
    assert!(text.contains("stranger S"), "the stranger holding the job's group id was killed: {text}");
    assert!(text.contains("\"stopped\""), "{text}");
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

// --- a job started from inside another job is its own job --------------------

/// Starts a driver job that starts `run sleep 600` and waits for it with
/// `job wait`; returns the driver's id and the inner job's, once the inner
/// job's launcher has returned (so its watcher is re-parented to the
/// driver's, a child subreaper).
fn driver(env: &Env, extra: &[&str]) -> (String, String) {
    let script = format!(
        "out=$('{}' --name inner sleep 600) || exit 9; set -- $out; echo \"inner $1\"; exec '{}' wait \"$1\"",
        bin("run").display(),
        bin("job").display()
    );
    let mut args = vec!["run", &script, "--name", "driver"];
    args.extend_from_slice(extra);
    let outer = the_id(&env.run("job", &args));
    let mut inner = String::new();
    wait_until(SOON, "the driver to print the inner job's id", || {
        inner = env.log(&outer).lines().find_map(|l| l.strip_prefix("inner ")).unwrap_or_default().to_string();
        !inner.is_empty()
    });
    let inner_watcher = int(&meta(env, &inner)["watcher_pid"]);
    let outer_watcher = int(&meta(env, &outer)["watcher_pid"]);
    let parent = || fs::read_to_string(format!("/proc/{inner_watcher}/stat")).unwrap_or_default();
    wait_until(SOON, "the inner watcher to be re-parented to the driver's", || {
        parent().rsplit_once(") ").and_then(|(_, r)| r.split(' ').nth(1)) == Some(&outer_watcher.to_string())
    });
    (outer, inner)
}

/// The inner job still runs as itself; then it is stopped and recorded.
fn inner_runs_on(env: &Env, inner: &str) {
    let j = env.job(inner);
    assert_eq!(j["state"], "running", "the inner job did not survive the driver's end: {j}");
    assert!(pid_alive(int(&j["pid"]).into()), "{j}");
    assert!(env.run("job", &["stop", inner]).status.success());
    assert_eq!(env.wait_ended(inner, SOON)["state"], "stopped");
}

#[test]
fn stopping_a_driver_job_leaves_a_job_it_started_with_run_running() {
    let env = Env::new();
    let (outer, inner) = driver(&env, &[]);
    let out = env.run("job", &["stop", &outer]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(env.wait_ended(&outer, SOON)["state"], "stopped");
    inner_runs_on(&env, &inner);
}

#[test]
fn a_driver_jobs_timeout_leaves_a_job_it_started_with_run_running() {
    let env = Env::new();
    let (outer, inner) = driver(&env, &["--timeout", "2s"]);
    assert_eq!(env.wait_ended(&outer, SOON)["state"], "timeout");
    inner_runs_on(&env, &inner);
}

#[test]
fn a_watcher_sent_sigterm_stops_its_job_and_records_it_stopped() {
    let env = Env::new();
    let id = env.start(&["sleep", "600"]);
    let (pid, watcher) = (int(&meta(&env, &id)["pid"]), int(&meta(&env, &id)["watcher_pid"]));
    kill(watcher, libc::SIGTERM);
    let j = env.wait_ended(&id, SOON);
    assert_eq!((j["state"].as_str(), j["signal"].as_str()), (Some("stopped"), Some("SIGTERM")), "{j}");
    assert!(!pid_alive(pid.into()), "the job outlived its watcher's SIGTERM");
    let log = env.log(&id);
    assert!(log.contains("the watcher was sent SIGTERM"), "{log}");
}

#[test]
fn a_stop_never_signals_a_stranger_that_took_a_dead_watchers_pid() {
    if !isolated("choosing the next pid (ns_last_pid)", false) {
        return;
    }
    let env = Env::new();
    // In a pid namespace of its own: the job's watcher is killed, and a
    // stranger leading its own session (as a watcher does) takes its pid.
    let script = r#"
        set -u
        out=$("$RUN" sleep 600) || exit 10
        set -- $out; id=$1; pid=$2
        w=$(sed -n 's/.*"watcher_pid": *\([0-9]*\).*/\1/p' "$RUN_DIR/$id/meta.json")
        [ -n "$w" ] || exit 11
        # The watcher's start time, in clock ticks: the stranger must start
        # at a later tick, or no start time could tell the two apart.
        ws=$(sed 's/.*) //' /proc/$w/stat | cut -d' ' -f20)
        kill -KILL "$w"
        for t in $(seq 400); do [ -e /proc/$w ] || break; sleep 0.01; done
        [ -e /proc/$w ] && exit 12
        for t in $(seq 1000); do
            now=$(sh -c 'sed "s/.*) //" /proc/$$/stat | cut -d" " -f20')
            [ "$now" -gt "$ws" ] && break
        done
        s=""
        for t in $(seq 100); do
            echo $((w - 1)) >/proc/sys/kernel/ns_last_pid
            setsid sleep 600 &
            s=$!
            [ "$s" = "$w" ] && break
            kill $s; wait $s 2>/dev/null; s=""
        done
        [ -n "$s" ] || exit 13
        for t in $(seq 400); do [ "$(cat /proc/$s/comm)" = sleep ] && break; sleep 0.01; done
        "$JOB" stop "$id"
        echo "stop $?"
        st=$(cut -d' ' -f3 /proc/$s/stat 2>/dev/null)
        echo "stranger ${st:-gone}"
        [ -e /proc/$pid ] && echo "job alive"
        kill "$s"
    "#;
    let out = env.tool("sh").args(["-c", script]).env("RUN", bin("run")).env("JOB", bin("job")).output().expect("sh");
    let text = stdout(&out);
    assert!(out.status.success(), "exit {:?}: {text}{}", out.status.code(), stderr(&out));
    assert!(text.contains("stranger S"), "the stranger holding the watcher's pid was signalled: {text}");
    assert!(text.contains("stop 0") && !text.contains("job alive"), "{text}{}", stderr(&out));
}

/// The parent pid of process `pid`, from /proc (none once it is gone).
fn parent_of(pid: i32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.split(' ').nth(1)?.parse().ok()
}

#[test]
fn stopping_a_driver_job_never_signals_what_a_job_it_started_left_running() {
    let env = Env::new();
    // The driver starts an inner job (no cap) that leaves a background
    // process and ends at once; the inner watcher records `done`. The
    // leftover is the inner job's (its session, its log), not the
    // driver's.
    let left = env.root.join("leftover.pid");
    let inner = format!("sleep 600 & echo \\$! > '{}'; exit 0", left.display());
    let script = format!("'{}' --name inner sh -c \"{inner}\" || exit 9; exec sleep 600", bin("run").display());
    let outer = the_id(&env.run("job", &["run", &script, "--name", "driver"]));
    let mut pid = 0;
    wait_until(SOON, "the inner job's leftover to start", || {
        pid = fs::read_to_string(&left).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
        pid > 0
    });
    let inner = env.jobs().iter().find(|j| j["name"] == "inner").map(|j| j["id"].as_str().unwrap().to_string());
    let inner = inner.expect("the inner job is listed");
    assert_eq!(env.wait_ended(&inner, SOON)["state"], "done");
    // Its watcher stays for it (were it gone, the leftover would be
    // re-parented to the driver's watcher, whose stop would take it).
    let inner_watcher = int(&meta(&env, &inner)["watcher_pid"]);
    assert_eq!(parent_of(pid), Some(inner_watcher), "the leftover is not below the inner job's watcher");
    assert_eq!(env.job(&inner)["lingering"], true, "the inner job does not say its processes still run");
    let out = env.run("job", &["stop", &outer]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(env.wait_ended(&outer, SOON)["state"], "stopped");
    assert!(pid_alive(pid.into()), "job stop {outer} killed {pid}, a process the inner job {inner} left running");
    kill(pid, libc::SIGKILL);
}

#[test]
fn a_watcher_sent_sigint_sigquit_sigusr2_or_sigalrm_still_records_its_jobs_end() {
    let env = Env::new();
    // usage.md: "Only a SIGKILL to the watcher leaves a job `lost`".
    let mut lost = Vec::new();
    for (sig, name) in
        [(libc::SIGINT, "INT"), (libc::SIGQUIT, "QUIT"), (libc::SIGUSR2, "USR2"), (libc::SIGALRM, "ALRM")]
    {
        let gate = env.root.join(format!("gate-{name}"));
        let script = format!("while [ ! -e '{}' ]; do sleep 0.02; done; echo finished", gate.display());
        let id = env.start(&["--name", name, "sh", "-c", &script]);
        let watcher = int(&meta(&env, &id)["watcher_pid"]);
        kill(watcher, sig);
        write(&gate, "");
        let j = env.wait_ended(&id, SOON);
        if j["state"] == "lost" {
            lost.push(format!("SIG{name} (log: {:?})", env.log(&id)));
        }
    }
    assert!(lost.is_empty(), "the job was left lost after its watcher got: {}", lost.join(", "));
}

#[test]
fn a_process_of_the_job_that_dresses_as_another_jobs_watcher_is_still_stopped_with_its_job() {
    let env = Env::new();
    // The mark another job's watcher carries (usage.md): named
    // `bgrun-watcher`, leading its own session, working in a directory
    // whose meta.json names it with its start time. A process of this job
    // can put all three on: a copy of `sleep` named bgrun-watcher, setsid,
    // and a directory of its own, outside the store, with such a meta.json.
    let fake = env.root.join("fake");
    let pidfile = env.root.join("dressed.pid");
    let script = format!(
        r#"set -e
        mkdir -p '{fake}/bin' '{fake}/x_20250101_000000'
        cp "$(command -v sleep)" '{fake}/bin/bgrun-watcher'
        cd '{fake}/x_20250101_000000'
        setsid '{fake}/bin/bgrun-watcher' 600 &
        p=$!
        st=$(sed 's/.*) //' /proc/$p/stat | cut -d' ' -f20)
        sed -e "s/\"watcher_pid\": [0-9]*/\"watcher_pid\": $p/" -e "s/\"watcher_start\": [0-9]*/\"watcher_start\": $st/" \
            -e 's/"id": "[^"]*"/"id": "x_20250101_000000"/' "$RUN_DIR/$(basename "$(dirname "$(readlink /proc/$$/fd/1)")")/meta.json" > meta.json
        echo $p > '{pid}'
        exec sleep 600"#,
        fake = fake.display(),
        pid = pidfile.display()
    );
    let id = env.start(&["--name", "dressed", "sh", "-c", &script]);
    let mut pid = 0;
    wait_until(SOON, "the dressed process to start", || {
        pid = fs::read_to_string(&pidfile).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
        pid > 0
    });
    assert_eq!(fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim(), "bgrun-watcher");
    let out = env.run("job", &["stop", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(env.wait_ended(&id, SOON)["state"], "stopped");
    wait_watcher_gone(&env, &id);
    let alive = pid_alive(pid.into());
    kill(pid, libc::SIGKILL);
    assert!(!alive, "job stop {id} left {pid} running: a process of the job marked as another job's watcher");
}
