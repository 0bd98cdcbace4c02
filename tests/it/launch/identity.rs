//! What names a job: the id `run` prints names a job that exists when it
//! returns, however many launch at once; ids are never given twice;
//! names and keys find one job, and racing launches with one key start one.

use crate::common::*;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// The local-time part of an id (`NAME_YYYYMMDD_HHMMSS`).
fn stamp(id: &str) -> &str {
    &id[id.len() - 15..]
}

/// `run --name same true` with `TZ` set; returns its id once it ended.
fn launch_in(env: &Env, tz: &str) -> String {
    let id = id_and_pid(env.cmd("run").env("TZ", tz).args(["--name", "same", "true"]).output().expect("run")).0;
    env.wait_ended(&id, SOON);
    id
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

#[test]
fn job_run_with_a_key_that_exists_prints_its_id_and_says_nothing_new_started_and_whether_the_command_differs() {
    let env = Env::new();
    let first = env.run("job", &["run", "--key", "k1", "true"]);
    let id = stdout(&first).trim().to_string();
    assert!(stderr(&first).is_empty(), "{}", stderr(&first));
    let same = env.run("job", &["run", "--key", "k1", "true"]);
    assert_eq!(stdout(&same).trim(), id);
    assert!(stderr(&same).contains("no new job was started"), "{}", stderr(&same));
    assert!(!stderr(&same).contains("differs"), "{}", stderr(&same));
    let other = env.run("job", &["run", "--key", "k1", "false"]);
    assert_eq!(stdout(&other).trim(), id);
    assert!(stderr(&other).contains(&id) && stderr(&other).contains("its command differs: true"), "{}", stderr(&other));
    assert_eq!(env.jobs().len(), 1);
}

// --- concurrency --------------------------------------------------------------------

#[test]
fn five_hundred_launches_from_parallel_shells_give_five_hundred_whole_jobs() {
    let env = Env::new();
    let script = format!("for i in $(seq 50); do {} --name race true || echo FAILED; done", bin("run").display());
    let shells: Vec<Child> = (0..10)
        .map(|_| env.tool("sh").args(["-c", &script]).stdout(Stdio::piped()).spawn().expect("starting sh"))
        .collect();
    let mut printed = Vec::new();
    for sh in shells {
        let out = sh.wait_with_output().expect("waiting for a shell");
        assert!(out.status.success(), "{}", stderr(&out));
        printed.extend(stdout(&out).lines().map(|l| l.split_whitespace().next().unwrap_or(l).to_string()));
    }
    assert!(!printed.iter().any(|l| l == "FAILED"), "a launch failed");
    let unique: BTreeSet<&String> = printed.iter().collect();
    assert_eq!(printed.len(), 500);
    assert_eq!(unique.len(), 500, "two launches printed the same id");

    wait_until(SOON * 3, "all 500 jobs to end", || env.jobs().iter().all(|j| j["state"] != "running"));
    let jobs = env.jobs();
    let listed: BTreeSet<&str> = jobs.iter().filter_map(|j| j["id"].as_str()).collect();
    assert_eq!(listed, unique.iter().map(|s| s.as_str()).collect(), "the store does not hold exactly what was printed");
    assert!(jobs.iter().all(|j| j["state"] == "done" && j["exit_code"] == 0));
    for id in &listed {
        wait_watcher_gone(&env, id);
        assert_whole(&env.job_dir(id));
    }
    assert_eq!(hidden_leftovers(&env.store), Vec::<PathBuf>::new());
}

// --- ids never given twice --------------------------------------------------------

#[test]
fn a_removed_jobs_id_is_never_given_again_within_its_second() {
    // Launch, wait, remove and launch again must fit in one second; on a
    // loaded machine they may not, so each try starts as a second begins
    // and the tries go on for a minute. (Local time cannot be set back
    // by less than a minute: an RFC 3339 offset has no seconds.)
    let env = Env::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut tries = Vec::new();
    while Instant::now() < deadline {
        let sub = chrono::Utc::now().timestamp_subsec_millis();
        if sub > 50 {
            std::thread::sleep(Duration::from_millis(u64::from(1000 - sub)));
        }
        let began = Instant::now();
        let (first, _) =
            id_and_pid(env.cmd("run").env("TZ", "UTC").args(["--name", "same", "true"]).output().expect("run"));
        let out = env.run("job", &["wait", &first]);
        assert_eq!(out.status.code(), Some(0), "job wait {first}: {}", stderr(&out));
        let out = env.run("runrm", &[&first]);
        assert!(out.status.success(), "runrm: {}", stderr(&out));
        let again = launch_in(&env, "UTC");
        if again.starts_with(&first) {
            assert_ne!(again, first, "a removed job's id was given again");
            return;
        }
        tries.push(format!("{first} then {again} ({:?})", began.elapsed()));
        let _ = env.run("runrm", &[&again]); // a second boundary got in the way: again
    }
    panic!("never launched twice within one second: {tries:?}");
}

#[test]
fn a_removed_jobs_id_is_never_given_again_when_local_time_repeats() {
    let env = Env::new();
    for _ in 0..3 {
        // A minute ahead, then (a minute later) local time set back a
        // minute, as at the end of summer time: the same local second.
        let first = launch_in(&env, "XXX-0:01");
        let t0 = chrono::NaiveDateTime::parse_from_str(stamp(&first), "%Y%m%d_%H%M%S").expect("a stamp").and_utc();
        let out = env.run("runrm", &[&first]);
        assert!(out.status.success(), "runrm: {}", stderr(&out));
        let target = t0.timestamp();
        wait_until(Duration::from_secs(70), "the same local second, a minute on", || {
            chrono::Utc::now().timestamp() >= target
        });
        let again = launch_in(&env, "UTC");
        if again.starts_with(&first) {
            assert_ne!(again, first, "a removed job's id was given again");
            return;
        }
        let _ = env.run("runrm", &[&again]);
    }
    panic!("never launched at the removed job's local second");
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
fn a_key_whose_launcher_was_killed_after_starting_its_job_gives_that_job_not_an_error() {
    let env = Env::new();
    // Each round: a launch killed at some point of its claim, then the
    // same launch again at once (a CI runner's retry). The killed launch's
    // watcher (a fork of it) goes on and starts the job when the kill came
    // after the fork: then the retry must give that job (or wait for it),
    // never say the key was "claimed by a launch that did not finish" and
    // advise removing it (which runs the job twice).
    let mut hits = Vec::new();
    for round in 0..40u64 {
        let key = format!("k{round}");
        let mut first = env
            .cmd("job")
            .args(["run", "--key", &key, "sleep 30"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting job run");
        // Not a wait for a condition: where in the launch the kill lands.
        std::thread::sleep(Duration::from_micros(400 * (round % 20)));
        let _ = first.kill();
        let _ = first.wait();
        let out = env.run("job", &["run", "--key", &key, "sleep 30"]);
        if out.status.success() {
            continue;
        }
        // The retry failed: that is right only if no job holds the key.
        let err = stderr(&out);
        let holder = || env.jobs().into_iter().find(|j| j["key"] == key.as_str());
        // A watcher forked before the kill publishes its job within
        // milliseconds; none in 5 s means the kill came before the fork.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut job = holder();
        while job.is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            job = holder();
        }
        if let Some(j) = job {
            hits.push(format!("round {round}: {} ({}), yet: {}", j["id"], j["state"], err.trim()));
        }
    }
    assert!(hits.is_empty(), "the retry failed while the killed launch's job holds the key:\n{}", hits.join("\n"));
}

#[test]
fn a_key_naming_a_job_that_no_longer_exists_never_answers_with_that_missing_job() {
    let env = Env::new();
    let out = env.run("job", &["run", "--key", "k1", "--wait", "true"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = stdout(&out).trim().to_string();
    // The job's directory is gone and its key is left: a runrm killed
    // between removing the directory and releasing the key (the release
    // comes after), or a directory removed by hand.
    // (Once its watcher is gone: it writes meta.json after the end.)
    wait_watcher_gone(&env, &id);
    std::fs::remove_dir_all(env.job_dir(&id)).expect("removing the job's directory");
    let out = env.run("job", &["run", "--key", "k1", "echo again"]);
    let printed = stdout(&out).trim().to_string();
    assert!(
        !(out.status.success() && printed == id),
        "job run --key exited 0 printing {id}, a job that no longer exists, and started nothing: {}",
        stderr(&out)
    );
}
