//! Trust, processes (issue 16, classes 1, 2 and 8): what a job and its
//! watcher inherit, signals only to what is the job's, and identity and
//! exactness (ids, retry, keys, the end before the notification's tail).
//!
//! Each test starts its processes and ends them on any exit (`Owned`).

mod common;

use common::*;
use serde_json::Value;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SOON: Duration = Duration::from_secs(20);

// --- helpers -------------------------------------------------------------------

/// Processes a test started: SIGKILLed when it ends, even on failure (only
/// if the pid still holds the process that was started).
#[derive(Default)]
struct Owned(Vec<(i32, Option<u64>)>);

impl Owned {
    fn add(&mut self, pid: i32) {
        self.0.push((pid, start_time(pid)));
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        for &(pid, start) in &self.0 {
            if pid > 1 && start.is_some() && start_time(pid) == start {
                // SAFETY: kill with plain integers, on a process we started.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

/// The start time of a live process (/proc/PID/stat field 22).
fn start_time(pid: i32) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = s.rsplit_once(')')?;
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn meta(env: &Env, id: &str) -> Value {
    let bytes = fs::read(env.job_dir(id).join("meta.json")).expect("reading meta.json");
    serde_json::from_slice(&bytes).expect("meta.json is JSON")
}

fn int(v: &Value) -> i32 {
    v.as_i64().unwrap_or_else(|| panic!("not a number: {v}")) as i32
}

fn kill(pid: i32, sig: i32) {
    // SAFETY: kill with plain integers.
    unsafe { libc::kill(pid, sig) };
}

/// A line of /proc/PID/status, as a number (the signal masks are hex).
fn status_mask(pid: i32, field: &str) -> u64 {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).expect("reading /proc/PID/status");
    let line = s.lines().find_map(|l| l.strip_prefix(&format!("{field}:"))).expect("the field");
    u64::from_str_radix(line.trim(), 16).expect("a hex mask")
}

fn bit(sig: i32) -> u64 {
    1 << (sig - 1)
}

/// The descriptors a process holds.
fn fds(pid: i32) -> Vec<i32> {
    let mut v: Vec<i32> = fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("reading /proc/PID/fd")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    v.sort_unstable();
    v
}

/// `name args…` started from a parent that ignores SIGCHLD, SIGINT,
/// SIGQUIT and SIGTERM, blocks SIGUSR2 and SIGTERM, and leaves descriptor 9
/// open (as `cmd &` in a script, or a daemon that avoids zombies, would).
fn hostile_parent(env: &Env, name: &str, args: &[&str]) -> Command {
    let mut c = env.cmd(name);
    c.args(args);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        c.pre_exec(|| {
            for sig in [libc::SIGCHLD, libc::SIGINT, libc::SIGQUIT, libc::SIGTERM] {
                libc::signal(sig, libc::SIG_IGN);
            }
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGUSR2);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            libc::dup2(2, 9);
            libc::umask(0o027);
            Ok(())
        });
    }
    c
}

fn started(out: std::process::Output) -> (String, i32) {
    assert!(out.status.success(), "launch failed: {}", stderr(&out));
    let s = stdout(&out);
    let mut w = s.split_whitespace();
    let id = w.next().expect("an id").to_string();
    (id, w.next().and_then(|p| p.parse().ok()).unwrap_or(0))
}

// --- 1. what a job and its watcher inherit -------------------------------------------

#[test]
fn a_job_launched_by_a_parent_that_ignores_and_blocks_signals_starts_clean_and_dies_of_sigint() {
    let env = Env::new();
    let mut owned = Owned::default();
    let (id, pid) =
        started(hostile_parent(&env, "run", &["sleep", "600"]).env("BGRUN_PASSED", "yes").output().expect("run"));
    owned.add(pid);
    let watcher = int(&meta(&env, &id)["watcher_pid"]);
    owned.add(watcher);
    // Asleep in `sleep` itself: past the exec and the dynamic loader,
    // which holds the libraries it opens on descriptor 3 for a moment.
    wait_until(SOON, "the job to exec sleep and sleep", || {
        let state = fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit_once(')').and_then(|(_, r)| r.trim_start().chars().next()));
        fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c == "sleep\n") && state == Some('S')
    });

    assert_eq!(status_mask(pid, "SigIgn"), 0, "the job inherited ignored signals");
    assert_eq!(status_mask(pid, "SigBlk"), 0, "the job inherited blocked signals");
    assert_eq!(fds(pid), vec![0, 1, 2], "the job inherited descriptors");
    // What it does inherit: the environment, the umask; and no terminal.
    // (The new name shows in /proc a moment before the new environment.)
    wait_until(SOON, "the environment passed to the job", || {
        let environ = fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        environ.split(|&b| b == 0).any(|v| v == b"BGRUN_PASSED=yes")
    });
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("reading status");
    assert!(status.lines().any(|l| l == "Umask:\t0027"), "the umask was not passed: {status}");
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("reading stat");
    let tty = stat.rsplit_once(')').and_then(|(_, r)| r.split_whitespace().nth(4).map(str::to_string));
    assert_eq!(tty.as_deref(), Some("0"), "the job has a controlling terminal");
    // The watcher ignores only what it chose to (its mask is not checked:
    // the kernel shows it changed while the watcher waits in sigtimedwait).
    let ign = status_mask(watcher, "SigIgn");
    let chosen = bit(libc::SIGPIPE) | bit(libc::SIGXFSZ) | bit(libc::SIGHUP);
    assert_eq!(ign & !chosen, 0, "the watcher ignores more than it chose (SigIgn {ign:x})");
    assert!(!fds(watcher).contains(&9), "the watcher holds the launcher's descriptor 9");

    kill(pid, libc::SIGINT);
    let j = env.wait_ended(&id, SOON);
    assert_eq!(j["state"], "killed", "{j}");
    assert_eq!(j["signal"], "SIGINT", "{j}");
}

#[test]
fn under_a_parent_that_ignores_sigchld_an_exit_0_is_done_and_a_timeout_is_a_timeout() {
    let env = Env::new();
    let mut owned = Owned::default();
    let (quick, _) = started(hostile_parent(&env, "run", &["sh", "-c", "exit 0"]).output().expect("run"));
    owned.add(int(&meta(&env, &quick)["watcher_pid"]));
    let out = hostile_parent(&env, "job", &["run", "--timeout", "1s", "sleep 600"]).output().expect("job run");
    let slow = stdout(&out).trim().to_string();
    assert!(out.status.success() && !slow.is_empty(), "job run: {}", stderr(&out));
    owned.add(int(&meta(&env, &slow)["pid"]));
    owned.add(int(&meta(&env, &slow)["watcher_pid"]));

    let j = env.wait_ended(&quick, SOON);
    assert_eq!((j["state"].as_str(), j["exit_code"].as_i64()), (Some("done"), Some(0)), "{j}");
    let j = env.wait_ended(&slow, SOON);
    assert_eq!(j["state"], "timeout", "{j}");
    assert_eq!(j["signal"], "SIGTERM", "the job's own end was lost: {j}");
}

#[test]
fn under_a_file_size_limit_the_watcher_records_how_the_job_ended() {
    let env = Env::new();
    let mut c = env.cmd("run");
    // The job fills its log up to the limit (its `head` dies of SIGXFSZ)
    // and exits 0; the watcher's footer then cannot be written.
    // (The shell's own report of its child's end goes to /dev/null.)
    c.args(["sh", "-c", "exec 2>/dev/null; head -c 100000 /dev/zero; exit 0"]);
    // SAFETY: setrlimit between fork and exec.
    unsafe {
        c.pre_exec(|| {
            let lim = libc::rlimit { rlim_cur: 16384, rlim_max: 16384 };
            libc::setrlimit(libc::RLIMIT_FSIZE, &lim);
            Ok(())
        });
    }
    let (id, _) = started(c.output().expect("run"));
    let j = env.wait_ended(&id, SOON);
    assert_eq!((j["state"].as_str(), j["exit_code"].as_i64()), (Some("done"), Some(0)), "{j}");
    assert_eq!(fs::metadata(env.job_dir(&id).join("log")).map(|m| m.len()).ok(), Some(16384));
}

#[test]
fn started_with_stdin_stdout_and_stderr_closed_run_writes_nothing_of_its_own_into_the_job() {
    let env = Env::new();
    // The store's files would take descriptors 0 to 2 if they stayed
    // closed, and the id `run` prints would land in one of them.
    let mut c = env.cmd("run");
    c.args(["--name", "closed", "echo", "the job's line"]);
    // SAFETY: close(2) between fork and exec.
    unsafe {
        c.pre_exec(|| {
            for fd in 0..3 {
                libc::close(fd);
            }
            Ok(())
        });
    }
    let out = c.output().expect("run");
    assert!(out.status.success(), "run with 0 to 2 closed: {:?}", out.status);
    let id = env.jobs().iter().find_map(|j| j["id"].as_str().map(String::from)).expect("a job");
    let j = env.wait_ended(&id, SOON);
    assert_eq!(j["state"], "done", "{j}");
    let log = env.log(&id);
    assert!(log.contains("the job's line") && !log.contains(&id), "the log:\n{log}");
    let m = meta(&env, &id);
    assert_eq!(m["id"], id.as_str());
}

// --- 2. signal only what is the job's ----------------------------------------------

/// Kills a job's watcher (the job lives on) and waits until it is gone.
fn kill_watcher(env: &Env, id: &str) {
    let w = int(&meta(env, id)["watcher_pid"]);
    kill(w, libc::SIGKILL);
    wait_until(SOON, "the watcher to be gone", || !Path::new(&format!("/proc/{w}")).exists());
}

/// A process that leads its own session, as the job does.
fn session_leader() -> std::process::Child {
    let c = Command::new("setsid").args(["sleep", "600"]).stdin(Stdio::null()).spawn().expect("setsid sleep");
    let pid = c.id() as i32;
    wait_until(SOON, "setsid to exec sleep", || {
        fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c == "sleep\n")
    });
    c
}

#[test]
fn with_its_watcher_gone_a_stop_refuses_a_pid_file_naming_init_or_a_stranger() {
    let env = Env::new();
    let mut owned = Owned::default();
    let (id, pid) = started(env.cmd("run").args(["sleep", "600"]).output().expect("run"));
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
fn a_stranger_that_leads_its_own_session_under_a_jobs_pid_does_not_make_it_running() {
    let env = Env::new();
    let mut owned = Owned::default();
    let (id, pid) = started(env.cmd("run").args(["sleep", "600"]).output().expect("run"));
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
    let mut owned = Owned::default();
    let (id, pid) = started(env.cmd("run").args(["sleep", "600"]).output().expect("run"));
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

#[test]
fn with_its_watcher_gone_a_stop_reaches_a_child_that_moved_into_its_own_session() {
    let env = Env::new();
    let mut owned = Owned::default();
    let script = "setsid sleep 600 & echo \"child $!\"; trap 'exit 0' TERM; while :; do sleep 1; done";
    let (id, pid) = started(env.cmd("run").args(["sh", "-c", script]).output().expect("run"));
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

// --- 8. identity and exactness --------------------------------------------------

/// The local-time part of an id (`NAME_YYYYMMDD_HHMMSS`).
fn stamp(id: &str) -> &str {
    &id[id.len() - 15..]
}

/// `run --name same true` with `TZ` set; returns its id once it ended.
fn launch_in(env: &Env, tz: &str) -> String {
    let id = started(env.cmd("run").env("TZ", tz).args(["--name", "same", "true"]).output().expect("run")).0;
    env.wait_ended(&id, SOON);
    id
}

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
            started(env.cmd("run").env("TZ", "UTC").args(["--name", "same", "true"]).output().expect("run"));
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

#[test]
fn retry_runs_the_same_bytes_in_the_same_directory_when_neither_is_utf8() {
    let env = Env::new();
    let dir = env.root.join(OsStr::from_bytes(b"dir-\xfe"));
    fs::create_dir(&dir).expect("a directory whose name is not UTF-8");
    let arg = OsStr::from_bytes(b"arg-\xff\x80");
    let out = env
        .cmd("run")
        .current_dir(&dir)
        .args([OsStr::new("sh"), OsStr::new("-c"), OsStr::new("printf '%s|' \"$1\" >>got"), OsStr::new("sh"), arg])
        .output()
        .expect("run");
    let (id, _) = started(out);
    env.wait_ended(&id, SOON);
    let out = env.run("job", &["retry", "--wait", &id]);
    assert!(out.status.success(), "job retry: {}{}", stdout(&out), stderr(&out));
    assert_eq!(fs::read(dir.join("got")).expect("got"), b"arg-\xff\x80|arg-\xff\x80|");
}

#[test]
fn removing_a_damaged_job_frees_its_key() {
    let env = Env::new();
    let out = env.run("job", &["run", "--key", "k1", "--wait", "true"]);
    assert!(out.status.success(), "job run: {}", stderr(&out));
    let id = stdout(&out).trim().to_string();
    write(&env.job_dir(&id).join("meta.json"), "{ damaged");
    let out = env.run("runrm", &[&id]);
    assert!(out.status.success(), "runrm: {}{}", stdout(&out), stderr(&out));
    assert!(!env.job_dir(&id).exists());
    let out = env.run("job", &["run", "--key", "k1", "--wait", "true"]);
    assert!(out.status.success(), "job run: {}", stderr(&out));
    let again = stdout(&out).trim().to_string();
    assert_ne!(again, id, "the key still names the removed job");
    assert!(env.job_dir(&again).exists());
}

#[test]
fn a_failed_jobs_end_is_recorded_whatever_its_log_has_become() {
    let env = Env::new();
    let mut owned = Owned::default();
    // The job puts a FIFO where its log was: a reader of the log's tail
    // that opened it plainly would block for ever.
    let script = "L=$(readlink /proc/$$/fd/1); rm -f \"$L\"; mkfifo \"$L\"; exit 3";
    let out = env
        .cmd("run")
        .env("NTFY_SERVER", "http://127.0.0.1:9")
        .args(["--topic", "faults", "sh", "-c", script])
        .output()
        .expect("run");
    let (id, pid) = started(out);
    owned.add(pid);
    owned.add(int(&meta(&env, &id)["watcher_pid"]));
    let j = env.wait_ended(&id, SOON);
    assert_eq!((j["state"].as_str(), j["exit_code"].as_i64()), (Some("failed"), Some(3)), "{j}");
}

#[test]
fn a_notification_whose_watcher_is_gone_shows_failed_not_pending() {
    let env = Env::new();
    let mut owned = Owned::default();
    // A server that takes the connection and never answers: the watcher
    // waits on it with the end recorded and `notified` not yet written.
    let server = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let url = format!("http://{}", server.local_addr().expect("its address"));
    let out = env
        .cmd("run")
        .env("NTFY_SERVER", &url)
        .env("NTFY_TIMEOUT", "600")
        .args(["--topic", "faults", "sh", "-c", "exit 3"])
        .output()
        .expect("run");
    let (id, pid) = started(out);
    owned.add(pid);
    let watcher = int(&meta(&env, &id)["watcher_pid"]);
    owned.add(watcher);
    let j = env.wait_ended(&id, SOON);
    assert_eq!(j["state"], "failed", "{j}");
    let _held = server.accept().expect("the watcher's connection");
    assert_eq!(env.job(&id)["notify"]["state"], "pending", "while the watcher lives");
    kill(watcher, libc::SIGKILL);
    wait_until(SOON, "the watcher to be gone", || !Path::new(&format!("/proc/{watcher}")).exists());
    let j = env.job(&id);
    assert_eq!(j["notify"]["state"], "failed", "{j}");
    assert!(j["notify"]["error"].as_str().is_some_and(|e| e.contains("watcher gone")), "{j}");
}
