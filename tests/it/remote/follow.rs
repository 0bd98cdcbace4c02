//! Following a remote job's log (`runlog DEST:ID`): the output streams as
//! it comes; Ctrl-C ends the follower on both sides and never the job; a
//! dropped connection ends it with a message and a non-zero exit.

use super::*;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};

/// `runlog ID` followers running on host `h` (in its store), but for the
/// job itself.
fn remote_followers(h: &Host) -> Vec<i32> {
    let store = format!("RUN_DIR={}", h.store.display());
    processes_where(|c| c.starts_with(b"runlog\0")).into_iter().filter(|p| environ_has(*p, &store)).collect()
}

fn environ_has(pid: i32, var: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|e| e.split(|&b| b == 0).any(|v| v == var.as_bytes()))
}

/// Starts `runlog ID` here, in a process group of its own (as a shell's
/// job), and waits for its first line of the job's output.
fn follow(hosts: &Hosts, env: &Env, id: &str) -> (Child, BufReader<std::process::ChildStdout>) {
    let mut c = hosts.cmd(env, "runlog");
    c.arg(id).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    // As an interactive shell starts a foreground job: SIGINT not ignored
    // (the test itself may run in the background of `isolated`'s sh, which
    // ignores it).
    // SAFETY: signal(2) alone, between fork and exec.
    unsafe {
        c.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            Ok(())
        })
    };
    let mut child = c.spawn().expect("starting runlog");
    let mut out = BufReader::new(child.stdout.take().expect("piped"));
    let mut line = String::new();
    while !line.contains("tick") {
        line.clear();
        assert!(out.read_line(&mut line).expect("reading runlog") > 0, "runlog ended before the job's output");
    }
    (child, out)
}

fn state_there(hosts: &Hosts, env: &Env, id: &str) -> String {
    let out = hosts.run(env, "job", &["status", id, "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{out:?}"));
    v["state"].as_str().unwrap_or_default().to_string()
}

#[test]
fn ctrl_c_ends_a_remote_follower_on_both_sides_and_never_the_job() {
    if !isolated("an sshd host", false) {
        return;
    }
    let env = Env::new();
    let Some(hosts) = Hosts::start(&env, &[BASH]) else { return };
    let h1 = &hosts.hosts[0];
    let id = first_word(&hosts.run(&env, "run", &["--on", "h1", "sh", "-c", "echo tick; exec sleep 600"]));
    let (mut child, _out) = follow(&hosts, &env, &id);
    assert_eq!(remote_followers(h1).len(), 1, "one follower on h1");
    // Ctrl-C: SIGINT to the terminal's foreground group (runlog and ssh).
    kill(-(child.id() as i32), libc::SIGINT);
    let status = wait_exit(&mut child, SOON, "runlog to end on Ctrl-C");
    assert!(!status.success());
    wait_until(SOON, "the follower on h1 to end", || remote_followers(h1).is_empty());
    assert_eq!(state_there(&hosts, &env, &id), "running", "the job goes on");
}

#[test]
fn a_dropped_connection_ends_a_remote_follower_with_a_message_and_the_job_goes_on() {
    if !isolated("an sshd host", false) {
        return;
    }
    let env = Env::new();
    let Some(hosts) = Hosts::start(&env, &[BASH]) else { return };
    let h1 = &hosts.hosts[0];
    let id = first_word(&hosts.run(&env, "run", &["--on", "h1", "sh", "-c", "echo tick; exec sleep 600"]));
    let (mut child, mut out) = follow(&hosts, &env, &id);
    // The link goes: the sshd processes of the connection are killed.
    let sessions = hosts.sessions(0);
    assert!(!sessions.is_empty(), "no ssh session on h1");
    for p in sessions {
        kill(p, libc::SIGKILL);
    }
    let status = wait_exit(&mut child, SOON, "runlog to end when its connection drops");
    assert_eq!(status.code(), Some(1));
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut out, &mut rest);
    let mut err = String::new();
    let _ = std::io::Read::read_to_string(&mut child.stderr.take().expect("piped"), &mut err);
    assert!(err.contains("runlog: h1: the connection was lost"), "{err}");
    wait_until(SOON, "the follower on h1 to end", || remote_followers(h1).is_empty());
    assert_eq!(state_there(&hosts, &env, &id), "running", "the job goes on");
}
