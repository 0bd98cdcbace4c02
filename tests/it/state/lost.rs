//! Liveness: a job is running only while its own process or watcher
//! lives; a killed watcher, a reused pid, another boot or an edited pid
//! file make it lost, never running; a job of another host or pid
//! namespace is elsewhere.

use crate::common::*;
use serde_json::Value;
use std::ffi::OsStr;
use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

/// Kills the job's whole process group and waits until its process is gone.
fn kill_job(pid: i32) {
    kill(-pid, libc::SIGKILL);
    kill(pid, libc::SIGKILL);
    wait_until(SOON, "the job to die", || !pid_alive(pid.into()));
}

/// No process holds `pid` any more, not even as a zombie.
fn reaped(pid: i32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

/// Starts `sleep 600` as exactly `pid` (sets the kernel's last pid just
/// below it: root in the test's pid namespace), trying again while other
/// processes race for it.
fn spawn_with_pid(pid: i32) -> Child {
    let deadline = Instant::now() + SOON;
    loop {
        fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string()).expect("writing ns_last_pid");
        let mut c = Command::new("sleep").arg("600").spawn().expect("starting sleep");
        if c.id() as i32 == pid {
            return c;
        }
        let _ = c.kill();
        let _ = c.wait();
        assert!(Instant::now() < deadline, "could not start a process with pid {pid}");
    }
}

/// Rewrites one field of a job's meta.json (write, then rename).
fn set_meta(env: &Env, id: &str, field: &str, value: Value) {
    let mut m = meta(env, id);
    m[field] = value;
    let tmp = env.job_dir(id).join(".meta.test.tmp");
    fs::write(&tmp, serde_json::to_vec_pretty(&m).expect("JSON")).expect("writing meta.json");
    fs::rename(&tmp, env.job_dir(id).join("meta.json")).expect("renaming meta.json");
}

/// A process tree in new user, mount and pid namespaces, killed (with all
/// it holds in there) when dropped.
struct Namespace(Child);

impl Namespace {
    fn start(env: &Env, script: &str) -> Namespace {
        let child = env
            .tool("unshare")
            .args(["--user", "--map-root-user", "--pid", "--fork", "--mount-proc", "--kill-child", "sh", "-c", script])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running unshare");
        Namespace(child)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Stops a job of this namespace when dropped.
struct Stopper<'a>(&'a Env, String);

impl Drop for Stopper<'_> {
    fn drop(&mut self) {
        let _ = self.0.run("job", &["stop", "--force", &self.1]);
    }
}

/// Can this user make user, mount and pid namespaces (`unshare`)? Reported
/// as not run if not.
fn need_namespaces() -> bool {
    if !need_tool("unshare") {
        return false;
    }
    let ok = Command::new("unshare")
        .args(["--user", "--map-root-user", "--pid", "--fork", "--mount-proc", "true"])
        .output()
        .is_ok_and(|o| o.status.success());
    let to_run = as_root(
        "lets every user of this machine make user namespaces, until the next boot",
        "sysctl -w kernel.unprivileged_userns_clone=1",
    );
    need(ok, "unshare cannot make user and pid namespaces here", &to_run)
}

// --- liveness ------------------------------------------------------------------

#[test]
fn a_job_whose_watcher_was_killed_is_running_while_it_lives_and_lost_after() {
    let env = Env::new();
    let mut left = Leftovers::default();
    let gate = env.root.join("gate");
    let job = launch(&env, &[&started_gated(&gate, 0)]);
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
    let job = launch(&env, &[&started_gated(&gate, 0)]);
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

// --- the watcher killed, the machine rebooted ---------------------------------------

#[test]
fn once_the_watcher_and_the_job_are_killed_strangers_holding_their_pids_never_revive_the_job() {
    if !isolated("setting the kernel's next pid", false) {
        return;
    }
    let env = Env::new();
    let mut left = Leftovers::default();
    let id = env.start(&["--name", "victim", "sleep", "600"]);
    let m = meta(&env, &id);
    let (pid, watcher) = (int(&m["pid"]), int(&m["watcher_pid"]));
    left.add(pid);
    left.add(watcher);

    kill(watcher, libc::SIGKILL);
    wait_until(SOON, "the killed watcher to be reaped", || reaped(watcher));
    assert_eq!(env.state(&id), "running", "the job lives on without its watcher");
    kill(pid, libc::SIGKILL);
    wait_until(SOON, "the killed job to be reaped", || reaped(pid));
    let j = env.job(&id);
    assert_eq!(j["state"], "lost", "{j}");
    assert!(j["exit_code"].is_null() && j["signal"].is_null(), "an end was invented: {j}");

    // The pids come back, held by processes that have nothing to do with it.
    let mut strangers = [spawn_with_pid(pid), spawn_with_pid(watcher)];
    for s in &strangers {
        left.add(s.id() as i32);
    }
    assert_eq!(env.state(&id), "lost", "a stranger with the job's or the watcher's pid revived it");
    assert!(env.jobs().iter().all(|j| j["state"] != "running"));
    let out = env.run("job", &["list", "--all", "--status", "running", "--json"]);
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout).ok(), Some(Value::Array(vec![])));
    let out = env.run("job", &["wait", &id]);
    assert_eq!(out.status.code(), Some(1), "job wait on a lost job: {}", stderr(&out));
    let out = env.run("job", &["stop", &id]);
    assert!(out.status.success() && stdout(&out).contains("already ended: lost"), "job stop: {}", stdout(&out));
    let out = env.run("runrm", &[&id]);
    assert!(out.status.success(), "runrm: {}", stderr(&out));
    assert!(!env.job_dir(&id).exists());
    for s in &mut strangers {
        assert!(pid_alive(s.id().into()), "a stranger holding an old pid was killed");
        let _ = s.kill();
        let _ = s.wait();
    }
}

#[test]
fn a_job_recorded_under_another_boot_is_lost_even_while_its_pid_and_start_time_match_a_live_process() {
    let env = Env::new();
    let mut left = Leftovers::default();
    let id = env.start(&["--name", "rebooted", "sleep", "600"]);
    let m = meta(&env, &id);
    left.add(int(&m["pid"]));
    let boot = m["boot_id"].clone();
    assert_eq!(boot.as_str().map(str::len), Some(36), "no boot id recorded: {m}");
    assert_eq!(env.state(&id), "running");

    set_meta(&env, &id, "boot_id", Value::from("00000000-0000-4000-8000-000000000000"));
    let j = env.job(&id);
    assert_eq!(j["state"], "lost", "{j}");
    assert!(j["exit_code"].is_null() && j["signal"].is_null(), "{j}");
    assert!(pid_alive(m["pid"].as_i64().unwrap_or(0)), "the process itself is alive");

    // Only the boot id made the difference.
    set_meta(&env, &id, "boot_id", boot);
    assert_eq!(env.state(&id), "running");
    let out = env.run("job", &["stop", "--force", &id]);
    assert!(out.status.success(), "job stop: {}", stderr(&out));
    assert_eq!(env.wait_ended(&id, SOON)["state"], "stopped");
}

#[test]
fn a_stranger_that_leads_its_own_session_under_a_jobs_pid_does_not_make_it_running() {
    let env = Env::new();
    let mut owned = Leftovers::default();
    let (id, pid) = id_and_pid(env.cmd("run").args(["sleep", "600"]).output().expect("run"));
    owned.add(pid);
    kill_watcher(&env, &id);
    kill(pid, libc::SIGKILL);
    wait_until(SOON, "the job to be gone", || !pid_alive(pid.into()));
    // Only its start time tells this process from the job: it leads its
    // own session, as the job did, and is this user's.
    let mut stranger = session_leader();
    owned.add(stranger.id() as i32);
    write(&env.job_dir(&id).join("pid"), &format!("{}\n", stranger.id()));
    assert_eq!(env.state(&id), "lost");
    let _ = env.run("job", &["stop", "--force", &id]);
    assert!(pid_alive(stranger.id().into()), "the stranger was killed");
    let _ = stranger.kill();
    let _ = stranger.wait();
}

#[test]
fn an_edited_pid_file_does_not_make_a_running_job_look_lost_nor_removable() {
    let env = Env::new();
    let mut owned = Leftovers::default();
    let (id, pid) = id_and_pid(env.cmd("run").args(["sleep", "600"]).output().expect("run"));
    owned.add(pid);
    kill_watcher(&env, &id);
    let mut stranger = session_leader();
    owned.add(stranger.id() as i32);
    for planted in ["1".to_string(), stranger.id().to_string(), "garbage".to_string()] {
        write(&env.job_dir(&id).join("pid"), &format!("{planted}\n"));
        assert_eq!(env.state(&id), "running", "with pid file {planted}");
        let out = env.run("runrm", &[&id]);
        assert_eq!(out.status.code(), Some(1), "runrm with pid file {planted}: {}", stdout(&out));
        assert!(env.job_dir(&id).join("log").exists(), "runrm removed a running job");
    }
    assert!(pid_alive(pid.into()) && pid_alive(stranger.id().into()), "something was signalled");
    let _ = stranger.kill();
    let _ = stranger.wait();
}

// --- stores seen from elsewhere ------------------------------------------------------

#[test]
fn a_job_of_another_host_is_elsewhere_shown_with_its_host_and_removed_only_with_force() {
    let env = Env::new();
    let base = finished(&env, "base");
    let mut ids = Vec::new();
    for n in 1..=2 {
        let id = format!("remote{n}_20250101_000000");
        let dir = plant(&env.job_dir(&base), &env.store, OsStr::new(&id), |m| {
            m["host"] = "otherhost.example".into();
            // Another host has a machine id of its own: this one's would be this machine.
            m["machine"] = "0f0f0f0f00004000800000000000000f".into();
            m["boot_id"] = "0f0f0f0f-0000-4000-8000-000000000000".into();
        });
        fs::remove_file(dir.join("status")).expect("removing status");
        ids.push(id);
    }
    for id in &ids {
        assert_eq!(env.state(id), "elsewhere");
    }
    let line = stdout(&env.run("runs", &[])).lines().find(|l| l.contains(&ids[0])).map(str::to_string);
    assert!(line.as_deref().is_some_and(|l| l.contains("elsewhere on otherhost.example")), "{line:?}");

    let out = env.run("runrm", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("kept 2 jobs") && stderr(&out).contains("--force"), "{}", stderr(&out));
    let out = env.run("job", &["clean", "--all"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = env.run("runrm", &[&ids[0]]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("otherhost.example") && stderr(&out).contains("--force"), "{}", stderr(&out));
    let out = env.run("job", &["stop", &ids[0]]);
    assert_eq!(out.status.code(), Some(1), "a job elsewhere cannot be stopped from here");
    let out = env.run("job", &["wait", &ids[0], "--timeout", "1s"]);
    assert_eq!(out.status.code(), Some(124), "its end may still come: {}", stderr(&out));
    let out = env.run("job", &["list", "--all", "--status", "elsewhere"]);
    assert_eq!(stdout(&out).lines().count(), 2, "{}", stdout(&out));
    assert!(ids.iter().all(|id| env.job_dir(id).exists()), "a job elsewhere was removed without --force");
    assert!(!env.job_dir(&base).exists(), "the finished job of this host went");

    let out = env.run("runrm", &["--force", &ids[0]]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = env.run("job", &["clean", "--all", "--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(ids.iter().all(|id| !env.job_dir(id).exists()), "--force removes jobs elsewhere");
}

#[test]
fn a_job_in_another_pid_namespace_is_elsewhere_from_outside_and_from_inside() {
    if !need_namespaces() {
        return;
    }
    let env = Env::new();
    let run = bin("run").display().to_string();
    let ns = Namespace::start(&env, &format!("{run} --name inside sleep 300 && exec sleep 300"));
    let mut inside = String::new();
    wait_until(SOON, "the job started in the namespace", || {
        inside = env.jobs().iter().find(|j| j["name"] == "inside").map(|j| j["id"].to_string()).unwrap_or_default();
        !inside.is_empty()
    });
    let inside = inside.trim_matches('"').to_string();
    assert_eq!(env.state(&inside), "elsewhere", "from outside, its pids mean nothing");
    let outside = env.start(&["--name", "outside", "sleep", "300"]);
    let _stop = Stopper(&env, outside.clone());

    for (name, args) in [("runrm", vec![]), ("job", vec!["clean", "--all"]), ("runrm", vec![inside.as_str()])] {
        let _ = env.run(name, &args);
    }
    assert!(env.job_dir(&inside).exists(), "removed from outside while it runs in its namespace");
    let out = env.run("job", &["stop", &inside]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));

    // From inside another namespace, the job outside is elsewhere too.
    let runs = bin("runs").display().to_string();
    let runrm = bin("runrm").display().to_string();
    let out = env
        .tool("unshare")
        .args(["--user", "--map-root-user", "--pid", "--fork", "--mount-proc", "sh", "-c"])
        .arg(format!("{runrm} >/dev/null 2>&1; {runs} --json"))
        .output()
        .expect("running unshare");
    assert!(out.status.success(), "{}", stderr(&out));
    let seen: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let state = |id: &str| seen.as_array().and_then(|a| a.iter().find(|j| j["id"] == id)).map(|j| j["state"].clone());
    assert_eq!(state(&outside), Some("elsewhere".into()), "{seen}");
    assert_eq!(state(&inside), Some("elsewhere".into()), "{seen}");
    assert_eq!(env.state(&outside), "running", "runrm in another namespace removed or ended it");

    drop(ns);
    let out = env.run("runrm", &["--force", &inside]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!env.job_dir(&inside).exists());
}
