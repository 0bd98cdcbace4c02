//! Processes: finding, signalling and waiting for them, and killing what a
//! test leaves behind.

use super::*;
use std::fs;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Polls a child until it exits; panics after `within`.
pub fn wait_exit(child: &mut Child, within: Duration, what: &str) -> std::process::ExitStatus {
    let mut status = None;
    wait_until(within, what, || {
        status = child.try_wait().expect("waiting for a child");
        status.is_some()
    });
    status.expect("the child exited")
}

/// The pids of live processes whose argv passes `test`.
pub fn processes_where(test: impl Fn(&[u8]) -> bool) -> Vec<i32> {
    fs::read_dir("/proc")
        .expect("reading /proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| test(&c)) && pid_alive(pid.into()))
        .collect()
}

/// The pids of live processes whose argv holds `words` in a row.
pub fn processes_with_args(words: &[&str]) -> Vec<i32> {
    let want: Vec<&[u8]> = words.iter().map(|w| w.as_bytes()).collect();
    processes_where(|cmdline| {
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        args.windows(want.len()).any(|w| w == want.as_slice())
    })
}

/// The launchers still waiting in the foreground with `words` in their
/// argv (a watcher is a fork of its launcher, same argv: left out).
pub fn waiting(env: &Env, words: &[&str]) -> Vec<i32> {
    let watchers: Vec<i32> =
        env.jobs().iter().filter_map(|j| j["id"].as_str()).map(|id| int(&meta(env, id)["watcher_pid"])).collect();
    processes_with_args(words).into_iter().filter(|p| !watchers.contains(p)).collect()
}

/// The id and pid a successful `run` printed (pid 0 if the second word is
/// not one).
pub fn id_and_pid(out: std::process::Output) -> (String, i32) {
    assert!(out.status.success(), "launch failed: {}", stderr(&out));
    let s = stdout(&out);
    let mut w = s.split_whitespace();
    let id = w.next().expect("an id").to_string();
    (id, w.next().and_then(|p| p.parse().ok()).unwrap_or(0))
}

/// A process that leads its own session, as the job does.
pub fn session_leader() -> std::process::Child {
    let c = Command::new("setsid").args(["sleep", "600"]).stdin(Stdio::null()).spawn().expect("setsid sleep");
    let pid = c.id() as i32;
    wait_until(SOON, "setsid to exec sleep", || {
        fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c == "sleep\n")
    });
    c
}

/// Runs `cmd` to the end (stdin empty, stdout and stderr captured, as
/// `Command::output`); after `within`, kills it and fails the test: a
/// command that hangs (on a planted entry, say) fails the test instead of
/// hanging it.
pub fn output_within(mut cmd: Command, within: Duration, what: &str) -> Output {
    let child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn();
    let child = child.unwrap_or_else(|e| panic!("starting {what}: {e}"));
    let pid = child.id() as i32;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(within) {
        Ok(out) => out.expect("waiting for a command"),
        Err(_) => {
            kill(pid, libc::SIGKILL);
            panic!("{what} did not finish within {within:?}");
        }
    }
}

/// Live processes (not zombies) whose process group is `pgid`.
pub fn group_members(pgid: i64) -> Vec<i64> {
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

pub fn pgrp_of(pid: i64) -> i64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("reading /proc/PID/stat");
    let (_, rest) = stat.rsplit_once(')').expect("a stat line");
    rest.split_whitespace().nth(2).and_then(|s| s.parse().ok()).expect("a pgrp")
}

/// SIGKILL to one process, with kill(1), which must succeed.
pub fn sigkill(pid: i64) {
    let st = Command::new("kill").args(["-KILL", &pid.to_string()]).status().expect("running kill");
    assert!(st.success(), "kill -KILL {pid} failed");
}

/// SIGKILL to a job's whole process group (its pid), so that nothing it
/// started outlives the test.
pub fn kill_group(pgid: i64) {
    // The job makes its group (setsid) as it starts, maybe after `job run`
    // has returned.
    wait_until(SOON, "the job's process group", || !group_members(pgid).is_empty());
    let st = Command::new("kill").args(["-KILL", "--", &format!("-{pgid}")]).status().expect("running kill");
    assert!(st.success(), "kill -KILL -{pgid} failed");
}

/// A process's start time (field 22 of /proc/PID/stat).
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Sends `sig` to `pid` (a negative pid: its process group), whatever
/// becomes of it.
pub fn kill(pid: i32, sig: i32) {
    // SAFETY: kill(2) with plain integers.
    unsafe { libc::kill(pid, sig) };
}

/// The processes a test started, SIGKILLed (with their process groups)
/// when it ends, even when an assertion failed first. Each is remembered
/// with its start time so that a pid reused meanwhile is left alone.
#[derive(Default)]
pub struct Leftovers(Vec<(i32, u64)>);

impl Leftovers {
    pub fn add(&mut self, pid: i32) {
        if let Some(start) = start_time(pid) {
            self.0.push((pid, start));
        }
    }
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        for &(pid, start) in &self.0 {
            if pid > 1 && start_time(pid) == Some(start) {
                kill(-pid, libc::SIGKILL);
                kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// Kills the job's watcher with SIGKILL (the job lives on) and waits until
/// it is gone, reaped; returns its pid.
pub fn kill_watcher(env: &Env, id: &str) -> i32 {
    let watcher = int(&meta(env, id)["watcher_pid"]);
    assert!(pid_alive(watcher.into()), "the watcher of {id} is not running");
    kill(watcher, libc::SIGKILL);
    wait_until(SOON, "the watcher to be gone", || !Path::new(&format!("/proc/{watcher}")).exists());
    watcher
}

/// Waits until the job's watcher has exited (its last writes are done: a
/// capped log's last trim comes after meta.json).
pub fn wait_watcher_gone(env: &Env, id: &str) {
    let m = meta(env, id);
    let (pid, start) = (int(&m["watcher_pid"]), m["watcher_start"].as_u64());
    let gone = || !pid_alive(pid.into()) || (start.is_some() && start_time(pid) != start);
    wait_until(Duration::from_secs(60), &format!("the watcher of {id} to exit"), gone);
}
