//! Notifications (`run -n`, `job run --notify`) against a stand-in ntfy
//! server on 127.0.0.1, started by each test: what is sent (method, path,
//! JSON fields, UTF-8), the auth headers, where the topic comes from.
//! Submodules: `delivery` (failures, retries, timeouts, how the outcome
//! shows), `secrets` (no token or password leaks).

mod delivery;
mod secrets;

use crate::common::*;
use serde_json::Value;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use std::time::Instant;

/// A loopback ntfy server: answers each request after `delay` with
/// `answer`, noting for each whether the job's end was already recorded.
/// It takes at most 10 requests and stops by itself after a minute.
struct Ntfy {
    url: String,
    seen: Arc<Mutex<Vec<(Instant, String, bool)>>>,
    stop: Arc<AtomicBool>,
}

impl Ntfy {
    fn start(store: &Path, delay: Duration, answer: &'static str) -> Ntfy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("the port"));
        listener.set_nonblocking(true).expect("nonblocking");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen2, stop2, store) = (seen.clone(), stop.clone(), store.to_path_buf());
        std::thread::spawn(move || {
            let until = Instant::now() + Duration::from_secs(60);
            let mut served = 0;
            while served < 10 && Instant::now() < until && !stop2.load(Ordering::SeqCst) {
                let Ok((mut conn, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                served += 1;
                let (seen, store, stop) = (seen2.clone(), store.clone(), stop2.clone());
                std::thread::spawn(move || {
                    let _ = conn.set_nonblocking(false);
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                    let request = read_request_text(&mut conn);
                    let ended =
                        fs::read_dir(&store).into_iter().flatten().flatten().any(|e| e.path().join("status").is_file());
                    seen.lock().expect("the log of requests").push((Instant::now(), request, ended));
                    let until = Instant::now() + delay;
                    while Instant::now() < until && !stop.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    let _ = conn.write_all(answer.as_bytes());
                });
            }
        });
        Ntfy { url, seen, stop }
    }

    fn requests(&self) -> Vec<(Instant, String, bool)> {
        self.seen.lock().expect("the log of requests").clone()
    }
}

impl Drop for Ntfy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn read_request_text(conn: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= len {
                return text;
            }
        }
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return String::from_utf8_lossy(&buf).into_owned(),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

const OK_200: &str =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";

/// How the server answers one connection.
#[derive(Clone, Copy)]
enum Reply {
    /// This HTTP status, at once.
    Status(u16),
    /// Reads the request and never answers; holds the connection open
    /// until the client drops it.
    Silent,
    /// 200, once the test calls `release` (a slow server).
    Held,
}

#[derive(Clone, Debug)]
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        let text = std::str::from_utf8(&self.body).expect("the request body is UTF-8");
        serde_json::from_str(text).expect("the request body is JSON")
    }

    fn title(&self) -> String {
        self.json()["title"].as_str().expect("a title").to_string()
    }

    fn message(&self) -> String {
        self.json()["message"].as_str().expect("a message").to_string()
    }
}

struct Server {
    url: String,
    seen: Arc<Mutex<Vec<Request>>>,
    released: Arc<AtomicBool>,
}

impl Server {
    /// Listens on a free port of 127.0.0.1. Connection i gets `script[i]`;
    /// the last entry repeats.
    fn start(script: &[Reply]) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding a port on 127.0.0.1");
        let url = format!("http://{}", listener.local_addr().expect("the server's address"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let released = Arc::new(AtomicBool::new(false));
        let script = script.to_vec();
        let (s, r) = (seen.clone(), released.clone());
        std::thread::spawn(move || {
            for (i, conn) in listener.incoming().enumerate() {
                let Ok(conn) = conn else { continue };
                let reply = script[i.min(script.len() - 1)];
                let (s, r) = (s.clone(), r.clone());
                std::thread::spawn(move || serve(conn, reply, &s, &r));
            }
        });
        Server { url, seen, released }
    }

    fn requests(&self) -> Vec<Request> {
        self.seen.lock().expect("the list of requests").clone()
    }

    /// The one request that carried job `id`'s message.
    fn request_for(&self, id: &str) -> Request {
        let line = format!("Job: {id}");
        let found: Vec<Request> =
            self.requests().into_iter().filter(|r| r.message().lines().any(|l| l == line)).collect();
        assert_eq!(found.len(), 1, "requests for job {id}: {found:?}");
        found.into_iter().next().expect("one request")
    }

    /// Lets `Reply::Held` connections answer.
    fn release(&self) {
        self.released.store(true, Ordering::SeqCst);
    }
}

fn serve(conn: TcpStream, reply: Reply, seen: &Mutex<Vec<Request>>, released: &AtomicBool) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(60)));
    let Some(req) = read_request(&conn) else {
        return;
    };
    seen.lock().expect("the list of requests").push(req);
    let status = match reply {
        Reply::Status(s) => s,
        Reply::Silent => {
            let _ = (&conn).read_to_end(&mut Vec::new());
            return;
        }
        Reply::Held => {
            wait_until(Duration::from_secs(60), "the test to release the answer", || released.load(Ordering::SeqCst));
            200
        }
    };
    let (reason, body) = match status {
        200 => ("OK", r#"{"id":"hk3n5cBTA9Ek","event":"message","topic":"t"}"#),
        401 => ("Unauthorized", r#"{"code":40101,"http":401,"error":"unauthorized"}"#),
        429 => ("Too Many Requests", r#"{"code":42901,"http":429,"error":"limit reached: too many requests"}"#),
        _ => ("Internal Server Error", r#"{"code":50001,"http":500,"error":"internal server error"}"#),
    };
    let answer = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = (&conn).write_all(answer.as_bytes());
}

/// The request line, the headers and a Content-Length body.
fn read_request(conn: &TcpStream) -> Option<Request> {
    let mut r = BufReader::new(conn);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut words = line.split_whitespace();
    let (method, path) = (words.next()?.to_string(), words.next()?.to_string());
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end_matches(['\r', '\n']);
        if h.is_empty() {
            break;
        }
        let (name, value) = h.split_once(':')?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let len = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(Request { method, path, headers, body })
}

/// `name args…` with NTFY_SERVER at `server` and these variables set.
fn call(env: &Env, server: &str, vars: &[(&str, &str)], name: &str, args: &[&str]) -> Output {
    let mut c = env.cmd(name);
    c.env("NTFY_SERVER", server).env_remove("NTFY_TIMEOUT");
    for (k, v) in vars {
        c.env(k, v);
    }
    c.args(args).output().expect("running the binary")
}

/// The job id from a successful `run` or `job run`.
fn started(out: &Output) -> String {
    assert!(out.status.success(), "the launch failed: {}", stderr(out));
    stdout(out).split_whitespace().next().expect("an id").to_string()
}

/// Waits until the job's notification is no longer pending; returns the
/// `notify` object of `runs --json`.
fn wait_notified(env: &Env, id: &str) -> Value {
    let mut notify = Value::Null;
    wait_until(SOON, &format!("job {id}'s notification"), || {
        notify = env.job(id)["notify"].clone();
        notify["state"] != "pending"
    });
    notify
}

fn watcher_pid(env: &Env, id: &str) -> i64 {
    meta(env, id)["watcher_pid"].as_i64().expect("a watcher pid in meta.json")
}

/// A duration in the scripts' form: `45s`, `3m 05s`, `2h 15m`, `1d 3h`.
fn is_human_duration(s: &str) -> bool {
    let parts: Vec<&str> = s.split(' ').collect();
    let unit_ok = |p: &str, units: &[char]| {
        p.len() >= 2
            && units.contains(&p.chars().last().unwrap_or(' '))
            && p[..p.len() - 1].chars().all(|c| c.is_ascii_digit())
    };
    match parts.as_slice() {
        [a] => unit_ok(a, &['s']),
        [a, b] => unit_ok(a, &['m', 'h', 'd']) && unit_ok(b, &['s', 'm', 'h']),
        _ => false,
    }
}

// --- the message ------------------------------------------------------------------------

#[test]
fn a_finished_job_posts_one_json_message_to_the_server_root() {
    let env = Env::new();
    let server = Server::start(&[Reply::Status(200)]);
    let id = started(&call(&env, &server.url, &[("NTFY_TOPIC", "bgrun-tests")], "run", &["-n", "true"]));
    let notify = wait_notified(&env, &id);
    assert_eq!(notify["state"], "sent", "{notify}");

    let reqs = server.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    let req = &reqs[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/");
    assert!(req.header("content-type").is_some_and(|v| v.starts_with("application/json")), "{req:?}");
    assert_eq!(req.header("authorization"), None, "no credentials were set");
    let job = env.job(&id);
    let host = job["host"].as_str().expect("a host");
    let json = req.json();
    assert_eq!(json["topic"], "bgrun-tests");
    assert_eq!(json["title"], "✅ true finished");
    assert_eq!(json["priority"], 3);
    assert_eq!(json["tags"], serde_json::json!(["white_check_mark", host]));
    let message = req.message();
    let lines: Vec<&str> = message.lines().collect();
    assert_eq!(lines[0], "true", "the body starts with the command: {message}");
    let duration = lines.iter().find_map(|l| l.strip_prefix("Duration: ")).expect("a duration line");
    assert!(is_human_duration(duration), "duration '{duration}' in {message}");
    let used = lines.iter().find_map(|l| l.strip_prefix("Used: peak ")).expect("a line of what the job used");
    assert!(used.contains(" KiB, CPU ") || used.contains(" MiB, CPU "), "'{used}' in {message}");
    assert!(lines.contains(&format!("Host: {host}").as_str()), "{message}");
    assert!(lines.contains(&format!("Job: {id}").as_str()), "{message}");
}

#[test]
fn a_failed_job_says_why_in_its_message() {
    let env = Env::new();
    let server = Server::start(&[Reply::Status(200)]);
    let script = "echo compiling; echo 'error: the disk is full' >&2; exit 2";
    let id = started(&call(&env, &server.url, &[("NTFY_TOPIC", "bgrun-tests")], "run", &["-n", "sh", "-c", script]));
    assert_eq!(wait_notified(&env, &id)["state"], "sent");

    let job = env.job(&id);
    assert_eq!(job["state"], "failed");
    let command = job["command"].as_str().expect("a command");
    let host = job["host"].as_str().expect("a host");
    let req = server.request_for(&id);
    let json = req.json();
    assert_eq!(json["title"], format!("❌ {command} failed (exit 2)"));
    assert_eq!(json["priority"], 4);
    assert_eq!(json["tags"], serde_json::json!(["x", host]));
    let message = req.message();
    assert_eq!(message.lines().next(), Some(command));
    assert!(message.lines().any(|l| l == "error: the disk is full"), "the log's last lines: {message}");
    assert!(message.lines().any(|l| l == "compiling"), "{message}");
}

#[test]
fn a_killed_job_is_titled_with_its_signal() {
    let env = Env::new();
    let server = Server::start(&[Reply::Status(200)]);
    let id =
        started(&call(&env, &server.url, &[("NTFY_TOPIC", "bgrun-tests")], "run", &["-n", "sh", "-c", "kill -9 $$"]));
    assert_eq!(wait_notified(&env, &id)["state"], "sent");
    let command = env.job(&id)["command"].as_str().expect("a command").to_string();
    let req = server.request_for(&id);
    assert_eq!(req.title(), format!("❌ {command} killed (SIGKILL)"));
    assert_eq!(req.json()["priority"], 4);
}

#[test]
fn utf8_in_the_command_arrives_intact() {
    let env = Env::new();
    let server = Server::start(&[Reply::Status(200)]);
    let id =
        started(&call(&env, &server.url, &[("NTFY_TOPIC", "bgrun-tests")], "run", &["-n", "echo", "café ☕ 🎉 naïve"]));
    assert_eq!(wait_notified(&env, &id)["state"], "sent");
    let req = server.request_for(&id);
    assert_eq!(req.title(), "✅ echo 'café ☕ 🎉 naïve' finished");
    assert_eq!(req.message().lines().next(), Some("echo 'café ☕ 🎉 naïve'"));
}

#[test]
fn a_long_command_is_cut_with_an_ellipsis_at_80_characters() {
    let env = Env::new();
    let server = Server::start(&[Reply::Status(200)]);
    let long = format!("{} {}", "é".repeat(60), "🎉".repeat(60));
    let id = started(&call(&env, &server.url, &[("NTFY_TOPIC", "bgrun-tests")], "run", &["-n", "echo", &long]));
    assert_eq!(wait_notified(&env, &id)["state"], "sent");
    let command = env.job(&id)["command"].as_str().expect("a command").to_string();
    let cut: String = command.chars().take(79).chain(['…']).collect();
    let req = server.request_for(&id);
    assert_eq!(req.title(), format!("✅ {cut} finished"));
    assert_eq!(req.message().lines().next(), Some(cut.as_str()));
}

#[test]
fn a_failure_message_stays_within_ntfys_size_limit_and_shows_the_last_line() {
    // Past 4096 bytes ntfy turns a message into an attachment: a huge last
    // line or a progress bar redrawn with \r must not push it there.
    let env = Env::new();
    let server = Server::start(&[Reply::Status(200)]);
    let script = "head -c 20000 /dev/zero | tr '\\0' x; echo; \
                  i=0; while [ $i -lt 400 ]; do printf 'epoch 1: %d%%\\r' $i; i=$((i+1)); done; \
                  echo 'epoch 1: done'; echo 'error: out of memory'; exit 1";
    let id = started(&call(&env, &server.url, &[("NTFY_TOPIC", "bgrun-tests")], "run", &["-n", "sh", "-c", script]));
    assert_eq!(wait_notified(&env, &id)["state"], "sent");
    let message = server.request_for(&id).message();
    assert!(message.len() <= 4096, "a message of {} bytes", message.len());
    assert!(message.lines().any(|l| l == "error: out of memory"), "{message}");
    assert!(message.lines().any(|l| l == "epoch 1: done"), "a redrawn line shows as a terminal shows it: {message}");
}

// --- auth -------------------------------------------------------------------------------

#[test]
fn a_token_is_sent_as_a_bearer_header() {
    let env = Env::new();
    let server = Server::start(&[Reply::Status(200)]);
    let vars = [("NTFY_TOPIC", "bgrun-tests"), ("NTFY_TOKEN", "tk_abc123")];
    let id = started(&call(&env, &server.url, &vars, "run", &["-n", "true"]));
    assert_eq!(wait_notified(&env, &id)["state"], "sent");
    assert_eq!(server.request_for(&id).header("authorization"), Some("Bearer tk_abc123"));
}

#[test]
fn a_user_and_password_are_sent_as_basic_auth() {
    let env = Env::new();
    let server = Server::start(&[Reply::Status(200)]);
    let vars = [("NTFY_TOPIC", "bgrun-tests"), ("NTFY_USER", "alice"), ("NTFY_PASSWORD", "s3cret")];
    let id = started(&call(&env, &server.url, &vars, "run", &["-n", "true"]));
    assert_eq!(wait_notified(&env, &id)["state"], "sent");
    // base64("alice:s3cret")
    assert_eq!(server.request_for(&id).header("authorization"), Some("Basic YWxpY2U6czNjcmV0"));
}

// --- where the topic comes from ---------------------------------------------------------

#[test]
fn the_word_after_n_is_the_command_when_it_is_an_executable_else_the_topic() {
    let env = Env::new();
    let server = Server::start(&[Reply::Status(200)]);
    let vars = [("NTFY_TOPIC", "from-env")];
    let as_command = started(&call(&env, &server.url, &vars, "run", &["-n", "true"]));
    let as_topic = started(&call(&env, &server.url, &vars, "run", &["-n", "mytopic", "true"]));
    for (id, topic) in [(&as_command, "from-env"), (&as_topic, "mytopic")] {
        let notify = wait_notified(&env, id);
        assert_eq!(notify["state"], "sent", "{notify}");
        assert_eq!(notify["topic"], topic);
        assert_eq!(env.job(id)["command"], "true");
        assert_eq!(server.request_for(id).json()["topic"], topic);
    }
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn topic_names_the_topic_and_implies_n() {
    let env = Env::new();
    let server = Server::start(&[Reply::Status(200)]);
    let vars = [("NTFY_TOPIC", "from-env")];
    let id = started(&call(&env, &server.url, &vars, "run", &["--topic", "flag-topic", "true"]));
    let notify = wait_notified(&env, &id);
    assert_eq!(notify["topic"], "flag-topic");
    assert_eq!(server.request_for(&id).json()["topic"], "flag-topic");
}

#[test]
fn an_invalid_topic_is_refused_before_anything_starts() {
    let env = Env::new();
    let server = Server::start(&[Reply::Status(200)]);
    let tries: [(&str, &[&str]); 4] = [
        ("run", &["--topic", "bad topic", "true"]),
        ("run", &["-n", "bad topic", "true"]),
        ("job", &["run", "--topic", "bad topic", "true"]),
        ("job", &["run", "--notify", "bad/topic", "true"]),
    ];
    for (name, args) in tries {
        let out = call(&env, &server.url, &[("NTFY_TOPIC", "fine")], name, args);
        assert_eq!(out.status.code(), Some(2), "{name} {args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("topic"), "{name} {args:?}: {}", stderr(&out));
    }
    let out = call(&env, &server.url, &[("NTFY_TOPIC", "bad topic")], "run", &["-n", "true"]);
    assert_eq!(out.status.code(), Some(2), "a bad NTFY_TOPIC: {}", stderr(&out));
    assert!(stderr(&out).contains("NTFY_TOPIC"), "{}", stderr(&out));
    assert_eq!(store_entries(&env), Vec::<String>::new(), "nothing was created");
    assert!(server.requests().is_empty());
}

#[test]
fn n_without_a_topic_anywhere_is_refused_with_a_hint() {
    let env = Env::new();
    let server = Server::start(&[Reply::Status(200)]);
    let tries: [(&str, &[&str]); 4] = [
        ("run", &["-n", "true"]),
        ("run", &["--notify", "sh", "-c", "exit 0"]),
        ("job", &["run", "--notify", "true"]),
        ("job", &["run", "true", "--notify"]),
    ];
    for (name, args) in tries {
        let out = call(&env, &server.url, &[], name, args);
        assert_eq!(out.status.code(), Some(2), "{name} {args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("NTFY_TOPIC"), "{name} {args:?}: {}", stderr(&out));
        assert!(stdout(&out).is_empty(), "no id printed: {}", stdout(&out));
    }
    assert_eq!(store_entries(&env), Vec::<String>::new(), "no job directory was created");
}

#[test]
fn over_ssh_a_missing_topic_says_where_an_ssh_command_reads_it() {
    let env = Env::new();
    let server = Server::start(&[Reply::Status(200)]);
    let ssh = [("SSH_CONNECTION", "127.0.0.1 50000 127.0.0.1 22")];
    for (name, args) in [("run", &["-n", "true"][..]), ("job", &["run", "--notify", "true"][..])] {
        let out = call(&env, &server.url, &ssh, name, args);
        assert_eq!(out.status.code(), Some(2), "{name} {args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(err.contains("NTFY_TOPIC") && err.contains("over ssh") && err.contains("top of ~/.bashrc"), "{err}");
        let mut local = env.cmd(name);
        let out =
            local.env("NTFY_SERVER", &server.url).env_remove("SSH_CONNECTION").args(args).output().expect("running");
        assert_eq!(out.status.code(), Some(2), "{name} {args:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("ssh"), "no word of ssh outside ssh: {}", stderr(&out));
    }
    assert_eq!(store_entries(&env), Vec::<String>::new(), "no job directory was created");
    assert!(server.requests().is_empty());
}

#[test]
fn job_run_notify_delivers_one_message_to_the_right_topic() {
    let env = Env::new();
    let server = Server::start(&[Reply::Status(200)]);
    let vars = [("NTFY_TOPIC", "from-env")];
    let cases: [(&[&str], &str, &str); 4] = [
        (&["run", "--notify", "job-topic", "echo one"], "job-topic", "echo one"),
        (&["run", "echo two", "--notify"], "from-env", "echo two"),
        (&["run", "--notify", "echo three"], "from-env", "echo three"),
        (&["run", "--topic", "flag-topic", "echo four"], "flag-topic", "echo four"),
    ];
    for (args, topic, command) in cases {
        let id = started(&call(&env, &server.url, &vars, "job", args));
        let notify = wait_notified(&env, &id);
        assert_eq!(notify["state"], "sent", "job {args:?}: {notify}");
        assert_eq!(notify["topic"], topic, "job {args:?}");
        assert_eq!(env.job(&id)["command"], command, "job {args:?}");
        let req = server.request_for(&id);
        assert_eq!(req.json()["topic"], topic, "job {args:?}");
        assert_eq!(req.title(), format!("✅ {command} finished"));
    }
    assert_eq!(server.requests().len(), cases.len(), "one message per job");
}

// --- reading well on a phone --------------------------------------------------------

#[test]
fn a_failure_message_tail_holds_only_the_jobs_output_never_the_log_header() {
    let env = Env::new();
    let server = Server::start(&[Reply::Status(200)]);
    let vars = [("NTFY_TOPIC", "bgrun-tests")];
    let short = started(&call(&env, &server.url, &vars, "run", &["-n", "sh", "-c", "echo only this; exit 3"]));
    let silent = started(&call(&env, &server.url, &vars, "job", &["run", "--notify", "exit 4"]));
    for id in [&short, &silent] {
        assert_eq!(wait_notified(&env, id)["state"], "sent");
        let shown = stdout(&env.cmd("runlog").args([id.as_str(), "--no-follow"]).output().expect("runlog"));
        assert!(shown.starts_with("=== ") && shown.contains("\n=== cwd: "), "the log has its header: {shown}");
        let message = server.request_for(id).message();
        assert!(!message.contains("==="), "bgrun's header lines in the message: {message}");
        assert!(!message.contains("cwd:") && !message.contains("started:"), "{message}");
    }
    assert!(
        server.request_for(&short).message().ends_with("\n\nonly this"),
        "{}",
        server.request_for(&short).message()
    );
}
