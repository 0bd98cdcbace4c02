//! No secret leaks: the ntfy token and password appear in no argv and no
//! job file, in no form even when the server echoes them back, and a
//! credential sent over plain HTTP to another host is warned about.

use super::*;
use crate::common::*;
use serde_json::Value;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

/// A loopback server that answers every request with `status` and `body`,
/// for at most a minute.
fn echo_server(status: u16, body: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding a loopback port");
    let url = format!("http://{}", listener.local_addr().expect("the port"));
    listener.set_nonblocking(true).expect("nonblocking");
    std::thread::spawn(move || {
        let until = Instant::now() + Duration::from_secs(60);
        while Instant::now() < until {
            let Ok((mut conn, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            let _ = conn.set_nonblocking(false);
            let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = [0u8; 65536];
            let _ = conn.read(&mut buf);
            let answer = format!(
                "HTTP/1.1 {status} Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(answer.as_bytes());
        }
    });
    url
}

fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            out.push(if i <= chunk.len() { T[(n >> (18 - 6 * i) & 63) as usize] as char } else { '=' });
        }
    }
    out
}

/// The forms a secret may take: as is, JSON-escaped as serde and as Go
/// write it, percent-encoded.
fn forms(secret: &str) -> Vec<String> {
    let json = serde_json::to_string(secret).expect("JSON");
    let json = json[1..json.len() - 1].to_string();
    let go: String = json
        .chars()
        .map(|c| if c.is_ascii() && !"<>&".contains(c) { c.to_string() } else { format!("\\u{:04x}", c as u32) })
        .collect();
    let pct = |upper: bool| -> String {
        let unreserved = |b: u8| b.is_ascii_alphanumeric() || b"-._~".contains(&b);
        secret
            .bytes()
            .map(|b| match (unreserved(b), upper) {
                (true, _) => (b as char).to_string(),
                (false, true) => format!("%{b:02X}"),
                (false, false) => format!("%{b:02x}"),
            })
            .collect()
    };
    vec![secret.to_string(), json, go, pct(true), pct(false)]
}

/// Watchers still trying to reach an unreachable server when the test
/// ends (a failed assertion) are killed, not left behind.
struct Watchers(Vec<i32>);

impl Drop for Watchers {
    fn drop(&mut self) {
        for &pid in &self.0 {
            if pid > 0 && pid_alive(pid.into()) {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
        }
    }
}

/// Every file under `dir`, with its bytes.
fn every_file(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("listing the job directory").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(every_file(&path));
        } else {
            out.push((path.display().to_string(), std::fs::read(&path).expect("reading a job file")));
        }
    }
    out
}

#[test]
fn the_ntfy_token_never_lands_in_the_store_nor_in_any_argv_even_when_the_server_echoes_it() {
    let env = Env::new();
    let token = "tk_faultsSECRETtoken0123456789";
    let echo: &'static str = Box::leak(
        format!(
            "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n\
             {{\"code\":50001,\"http\":500,\"error\":\"bad token {token}\"}}"
        )
        .into_boxed_str(),
    );
    for answer in [OK_200, echo] {
        let server = Ntfy::start(&env.store, Duration::ZERO, answer);
        let out = env
            .cmd("run")
            .env("NTFY_SERVER", &server.url)
            .env("NTFY_TOKEN", token)
            .args(["--topic", "faults", "sh", "-c", "sleep 1; echo done"])
            .output()
            .expect("running run");
        assert!(out.status.success(), "{}", stderr(&out));
        let id = id_of(&out);
        while env.state(&id) == "running" {
            let holders = processes_where(|c| c.windows(token.len()).any(|w| w == token.as_bytes()));
            assert_eq!(holders, Vec::<i32>::new(), "the token is in a process's argv");
            std::thread::sleep(Duration::from_millis(50));
        }
        wait_watcher_gone(&env, &id);
        let requests = server.requests();
        assert!(
            requests.iter().any(|(_, r, _)| r.contains(&format!("Bearer {token}"))),
            "the token was not sent: {requests:?}"
        );
        let notify = &env.job(&id)["notify"];
        let want = if answer == OK_200 { "sent" } else { "failed" };
        assert_eq!(notify["state"], want, "{notify}");
    }
    let mut files = vec![env.store.clone()];
    while let Some(p) = files.pop() {
        if fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
            files.extend(fs::read_dir(&p).expect("reading the store").flatten().map(|e| e.path()));
        } else if let Ok(bytes) = fs::read(&p) {
            assert!(!bytes.windows(token.len()).any(|w| w == token.as_bytes()), "the token is in {}", p.display());
        }
    }
}

#[test]
fn no_form_of_a_secret_the_server_echoes_back_is_stored_or_shown() {
    let user = "bob"; // "bob:" is not a multiple of 3 bytes: base64(user:pass) does not end with base64(pass)
    let password = "pa\"ss\\wörd<x>&9";
    let token = "tk_\"quoted\\<b>&1";
    let cases = [
        (vec![("NTFY_USER", user), ("NTFY_PASSWORD", password)], password.to_string(), format!("{user}:{password}")),
        (vec![("NTFY_TOKEN", token)], token.to_string(), token.to_string()),
    ];
    for (vars, secret, pair) in cases {
        let env = Env::new();
        let mut secret_forms = forms(&secret);
        secret_forms.extend([base64(pair.as_bytes()), base64(secret.as_bytes())]);
        // The server puts every form into its JSON error string, escaped
        // as JSON escapes it (so each arrives decoded as itself).
        let text = format!("denied: {}", secret_forms.join(" | "));
        let body = serde_json::json!({"code": 40101, "http": 401, "error": text}).to_string();
        let go_body =
            body.replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026").replace('ö', "\\u00f6");
        let url = echo_server(401, go_body);
        let mut c = env.cmd("run");
        c.env("NTFY_SERVER", &url).args(["--topic", "secrets", "true"]);
        for (k, v) in &vars {
            c.env(k, v);
        }
        let out = c.output().expect("run");
        assert!(out.status.success(), "{}", stderr(&out));
        let id = stdout(&out).split_whitespace().next().expect("an id").to_string();
        let mut notify = Value::Null;
        wait_until(SOON, "the notification to fail", || {
            notify = env.job(&id)["notify"].clone();
            notify["state"] == "failed"
        });
        assert!(notify["error"].as_str().is_some_and(|e| e.contains("HTTP 401: denied")), "{notify}");
        let mut shown = vec![
            ("run's stderr".to_string(), out.stderr.clone()),
            ("notified".to_string(), fs::read(env.job_dir(&id).join("notified")).expect("notified")),
            ("runs --json".into(), env.run("runs", &["--json"]).stdout),
            ("runs".into(), env.run("runs", &[]).stdout),
            ("job status".into(), env.run("job", &["status", &id]).stdout),
            ("job status --json".into(), env.run("job", &["status", &id, "--json"]).stdout),
        ];
        for e in fs::read_dir(env.job_dir(&id)).expect("the job").flatten() {
            shown.push((e.path().display().to_string(), fs::read(e.path()).unwrap_or_default()));
        }
        for (what, bytes) in shown {
            let text = String::from_utf8_lossy(&bytes);
            for f in &secret_forms {
                assert!(!text.contains(f.as_str()), "{vars:?}: {f:?} in {what}: {text}");
            }
        }
    }
}

#[test]
fn a_credential_sent_over_plain_http_to_another_host_is_warned_about_at_launch() {
    let env = Env::new();
    let loopback = echo_server(200, "{}".into());
    /// The server, the variables, the launch and whether it warns.
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [&'a str], bool);
    let cases: [Case; 6] = [
        ("http://192.0.2.1:9", &[("NTFY_TOKEN", "tk_x")], &["run", "-n", "t", "true"], true),
        (
            "http://192.0.2.1:9",
            &[("NTFY_USER", "u"), ("NTFY_PASSWORD", "p")],
            &["job", "run", "--notify", "t", "true"],
            true,
        ),
        ("http://192.0.2.1:9", &[], &["run", "-n", "t", "true"], false),
        ("https://192.0.2.1:9", &[("NTFY_TOKEN", "tk_x")], &["run", "-n", "t", "true"], false),
        (&loopback, &[("NTFY_TOKEN", "tk_x")], &["run", "-n", "t", "true"], false),
        ("http://192.0.2.1:9", &[("NTFY_TOKEN", "tk_x")], &["run", "true"], false),
    ];
    let mut ids = Vec::new();
    let mut watchers = Watchers(Vec::new());
    for (server, vars, argv, warned) in cases {
        let mut c = env.cmd(argv[0]);
        c.env("NTFY_SERVER", server).env("NTFY_TIMEOUT", "1").args(&argv[1..]);
        for (k, v) in vars {
            c.env(k, v);
        }
        let out = c.output().expect("launching");
        assert!(out.status.success(), "{argv:?}: {}", stderr(&out));
        let id = stdout(&out).split_whitespace().next().expect("an id").to_string();
        watchers.0.push(meta_at(&env.job_dir(&id))["watcher_pid"].as_i64().unwrap_or(0) as i32);
        ids.push(id);
        let err = stderr(&out);
        if warned {
            assert_eq!(err.lines().count(), 1, "{err}");
            assert!(err.contains("warning") && err.contains("clear text") && err.contains(server), "{err}");
            assert!(!err.contains("tk_x") && !err.contains("NTFY_PASSWORD=p"), "{err}");
        } else {
            assert!(err.is_empty(), "{server} {vars:?} {argv:?}: {err}");
        }
    }
    for id in &ids {
        wait_until(SOON, "the watchers to give up", || {
            let m = meta_at(&env.job_dir(id));
            !pid_alive(m["watcher_pid"].as_i64().unwrap_or(0))
        });
    }
}

#[test]
fn the_token_and_password_appear_in_no_argv_and_no_job_file() {
    let env = Env::new();
    let server = Server::start(&[Reply::Status(200)]);
    let vars = [
        ("NTFY_TOPIC", "bgrun-tests"),
        ("NTFY_TOKEN", "tk_secret123"),
        ("NTFY_USER", "alice"),
        ("NTFY_PASSWORD", "pw_secret456"),
    ];
    let secrets = ["tk_secret123", "pw_secret456"];
    let wait_for_go = "echo waiting; until [ -e go ]; do sleep 0.05; done";
    let id = started(&call(&env, &server.url, &vars, "run", &["-n", "sh", "-c", wait_for_go]));
    let job_pid = meta(&env, &id)["pid"].as_i64().expect("a job pid");
    // Until the job has exec'd, its argv is the launcher's: read the job's
    // own once its first line is in the log.
    wait_until(SOON, "the job's first line", || env.log(&id).contains("waiting"));
    for pid in [watcher_pid(&env, &id), job_pid] {
        // An empty read is a process between states (the kernel shows no
        // arguments then): read again until there are some.
        let mut cmdline = Vec::new();
        wait_until(SOON, &format!("the arguments of process {pid}"), || {
            cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            !cmdline.is_empty()
        });
        let text = String::from_utf8_lossy(&cmdline);
        for s in secrets {
            assert!(!text.contains(s), "{s} in /proc/{pid}/cmdline: {text}");
        }
    }
    crate::common::write(&env.root.join("go"), "");
    assert_eq!(wait_notified(&env, &id)["state"], "sent");
    assert_eq!(server.request_for(&id).header("authorization"), Some("Bearer tk_secret123"));

    let files = every_file(&env.job_dir(&id));
    assert!(
        files.iter().any(|(p, _)| p.ends_with("/notified")),
        "{:?}",
        files.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    for (path, bytes) in files {
        let text = String::from_utf8_lossy(&bytes);
        for s in secrets {
            assert!(!text.contains(s), "{s} in {path}");
        }
    }
    let listing = stdout(&env.run("runs", &["--json"]));
    for s in secrets {
        assert!(!listing.contains(s), "{s} in runs --json");
    }
}
