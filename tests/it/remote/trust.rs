//! What crosses the connection, and what does not: the arguments byte for
//! byte whatever the far login shell is, no secret in any process's
//! arguments, a far bgrun of another protocol or a far program that
//! prints garbage said in one line, a host without bgrun said so, and
//! `job install` putting it there.

use super::*;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const FISH: Spec = Spec { shell: "/usr/bin/fish", bgrun: true };
const ZSH: Spec = Spec { shell: "/usr/bin/zsh", bgrun: true };
const BARE: Spec = Spec { shell: "/bin/bash", bgrun: false };

/// Arguments a shell would mangle if it ever parsed them.
fn hostile() -> Vec<&'static [u8]> {
    vec![
        b"plain",
        b"two words",
        b"'single' \"double\"",
        b"$HOME $(id) `id` ${x:-y} %s \\n \\",
        b"new\nline",
        b"; echo pwned & | > /tmp/x",
        b"*",
        b"",
        b"-n",
        b"\xff\xfe not utf-8 \x80",
        b"tab\tand\x01ctl",
    ]
}

#[test]
fn arguments_arrive_byte_for_byte_under_a_fish_or_zsh_login_shell() {
    if !isolated("sshd hosts whose login shells are fish and zsh", false) {
        return;
    }
    if !need_tools(&["fish", "zsh"]) {
        return;
    }
    let env = Env::new();
    let Some(hosts) = Hosts::start(&env, &[FISH, ZSH]) else { return };
    let args = hostile();
    for (i, h) in hosts.hosts.iter().enumerate() {
        let mut c = hosts.cmd(&env, "run");
        c.args(["--on", &h.name, "--name", "it's $x", "printf", "%s\\0"]);
        c.args(args.iter().map(|a| OsStr::from_bytes(a)));
        let id = first_word(&c.output().unwrap());
        let id = id.split_once(':').expect("DEST:ID").1.to_string();
        let waited = hosts.run(&env, "job", &["wait", &format!("{}:{id}", h.name)]);
        assert!(waited.status.success(), "host {i}: {waited:?}");
        let log = std::fs::read(h.store.join(&id).join("log")).expect("the log there");
        let want: Vec<u8> = args.iter().flat_map(|a| a.iter().copied().chain([0])).collect();
        assert!(log.starts_with(&want), "{}: {:?}", h.name, String::from_utf8_lossy(&log));
        let meta: Value = serde_json::from_slice(&std::fs::read(h.store.join(&id).join("meta.json")).unwrap()).unwrap();
        assert_eq!(meta["name"], "it's $x");
    }
}

/// A loopback stand-in for ntfy that keeps the text of each request.
fn recording_server() -> (String, std::sync::mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding");
    let url = format!("http://{}", listener.local_addr().expect("the port"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let mut conn = conn;
            let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(5)));
            // Headers and body (ureq may send them apart): to the body's end.
            let mut got = Vec::new();
            let mut b = vec![0u8; 65536];
            while let Ok(n @ 1..) = conn.read(&mut b) {
                got.extend_from_slice(&b[..n]);
                let text = String::from_utf8_lossy(&got).to_lowercase();
                let want = text
                    .split_once("content-length:")
                    .and_then(|(_, r)| r.trim_start().split('\r').next()?.parse().ok());
                let body = text.split_once("\r\n\r\n").map_or(0, |(_, body)| body.len());
                if want.is_some_and(|w: usize| body >= w) {
                    break;
                }
            }
            let _ = tx.send(String::from_utf8_lossy(&got).into_owned());
            let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}");
        }
    });
    (url, rx)
}

#[test]
fn secrets_cross_on_stdin_in_no_process_arguments_and_the_far_watcher_sends_the_notification() {
    if !isolated("an sshd host", false) {
        return;
    }
    let env = Env::new();
    let Some(hosts) = Hosts::start(&env, &[BASH]) else { return };
    let (url, requests) = recording_server();
    let token = format!("tk_{}_secret", std::process::id());
    let out = hosts
        .cmd(&env, "run")
        .args(["--on", "h1", "--topic", "remote-done", "sh", "-c", "sleep 2"])
        .env("NTFY_TOKEN", &token)
        .env("NTFY_SERVER", &url)
        .output()
        .unwrap();
    let id = first_word(&out);
    // While it runs: in no argv on this machine (both sides are here).
    assert!(processes_where(|c| c.windows(token.len()).any(|w| w == token.as_bytes())).is_empty());
    let req = requests.recv_timeout(SOON).expect("a notification from the far watcher");
    assert!(req.contains(&format!("Bearer {token}")), "{req}");
    assert!(req.contains("remote-done"), "{req}");
    assert_eq!(hosts.run(&env, "job", &["wait", &id]).status.code(), Some(0));
}

fn script(dir: &Path, name: &str, body: &str) {
    let p = dir.join(name);
    write(&p, &format!("#!/bin/sh\n{body}\n"));
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn another_version_or_garbage_from_the_far_side_is_one_clear_line_never_a_wrong_answer() {
    if !isolated("an sshd host", false) {
        return;
    }
    let env = Env::new();
    let Some(hosts) = Hosts::start(&env, &[BASH]) else { return };
    let tools = &hosts.hosts[0].tools;
    let cases = [
        ("cat > /dev/null & echo 'bgrun-remote 99 9.9.9'; echo '[]'", "version 9.9.9 (remote protocol 99)"),
        ("echo 'Welcome!'; echo '[{\"id\": \"forged\"}]'", "the answer is not bgrun's (it said: Welcome!)"),
        ("echo 'runs: unexpected argument' >&2; exit 2", "it said: runs: unexpected argument"),
        // A program that echoes the request back is not answering it.
        ("exec cat", "the answer is not bgrun's (it said: bgrun-request 1)"),
    ];
    for (body, says) in cases {
        script(tools, "runs", body);
        let out = hosts.run(&env, "runs", &["--on", "h1", "--json"]);
        assert_eq!(out.status.code(), Some(1), "{body}: {out:?}");
        assert!(stderr(&out).contains(says) && stderr(&out).lines().count() == 1, "{body}: {}", stderr(&out));
        assert!(stderr(&out).contains("job install h1"), "{}", stderr(&out));
        let listed: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
        assert!(listed.is_empty(), "nothing forged is listed: {listed:?}");
    }
}

#[test]
fn a_host_without_bgrun_says_so_and_job_install_puts_this_one_there_when_the_architecture_matches() {
    if !isolated("an sshd host", false) {
        return;
    }
    let env = Env::new();
    let Some(hosts) = Hosts::start(&env, &[BARE]) else { return };
    let h = &hosts.hosts[0];
    let out = hosts.run(&env, "runs", &["--on", "h1"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out).trim(),
        "runs: h1: bgrun is not installed there (no 'runs' on its PATH nor in ~/.local/bin); to put it there: job install h1"
    );
    // Another architecture: refused, nothing copied.
    script(&h.tools, "uname", "echo riscv64");
    let out = hosts.run(&env, "job", &["install", "h1"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stderr(&out).contains("riscv64") && stderr(&out).contains(std::env::consts::ARCH), "{out:?}");
    assert!(!h.home.join(".local/bin").exists());
    std::fs::remove_file(h.tools.join("uname")).unwrap();
    let out = hosts.run(&env, "job", &["install", "h1"]);
    assert!(out.status.success(), "{out:?}");
    for name in NAMES {
        assert!(h.home.join(".local/bin").join(name).is_file(), "{name} installed");
    }
    let id = first_word(&hosts.run(&env, "run", &["--on", "h1", "true"]));
    assert!(id.starts_with("h1:true_"), "{id}");
    assert!(stdout(&hosts.run(&env, "runs", &["--on", "h1"])).contains(&id));
}
