//! `run -n` and `job run --notify` against a stand-in ntfy server on
//! 127.0.0.1, started by each test: what is sent (method, path, JSON
//! fields, UTF-8), the auth headers, where the topic comes from, how
//! failures are retried and recorded, and that no secret leaks; and that a
//! watcher which gave back the launcher's memory still does all of its work.

mod common;

use common::{pid_alive, stderr, stdout, wait_until, write, Env};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Generous: the machine is shared and small.
const SOON: Duration = Duration::from_secs(20);

// --- the stand-in server --------------------------------------------------------

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

/// A URL where nothing listens: a port that was just free.
fn refusing_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding a port on 127.0.0.1");
    let url = format!("http://{}", listener.local_addr().expect("the address"));
    drop(listener);
    url
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

// --- driving the binaries ------------------------------------------------------------

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

fn meta(env: &Env, id: &str) -> Value {
    let text = std::fs::read_to_string(env.job_dir(id).join("meta.json")).expect("reading meta.json");
    serde_json::from_str(&text).expect("meta.json is JSON")
}

fn watcher_pid(env: &Env, id: &str) -> i64 {
    meta(env, id)["watcher_pid"].as_i64().expect("a watcher pid in meta.json")
}

/// Entries of the store, hidden ones included (none if it does not exist).
fn store_entries(env: &Env) -> Vec<String> {
    match std::fs::read_dir(&env.store) {
        Ok(rd) => rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => Vec::new(),
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

fn mtime(path: &Path) -> SystemTime {
    std::fs::metadata(path).and_then(|m| m.modified()).expect("the file's mtime")
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

/// The `runs` line of job `id`.
fn runs_line(env: &Env, id: &str) -> String {
    let out = env.run("runs", &[]);
    assert!(out.status.success(), "runs failed: {}", stderr(&out));
    stdout(&out)
        .lines()
        .find(|l| l.split_whitespace().any(|w| w == id))
        .unwrap_or_else(|| panic!("no line for {id} in runs"))
        .to_string()
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

// --- failures and retries ---------------------------------------------------------------

#[test]
fn an_unreachable_server_fails_the_notification_but_never_delays_the_jobs_end() {
    let env = Env::new();
    let id = started(&call(&env, &refusing_url(), &[("NTFY_TOPIC", "bgrun-tests")], "run", &["-n", "true"]));
    let notify = wait_notified(&env, &id);
    assert_eq!(notify["state"], "failed", "{notify}");
    assert!(notify["error"].as_str().is_some_and(|e| !e.is_empty()), "{notify}");
    assert_eq!(env.state(&id), "done", "a failed notification leaves the job's state alone");
    // Three tries with a backoff take seconds; the end was recorded before.
    let dir = env.job_dir(&id);
    let gap = mtime(&dir.join("notified")).duration_since(mtime(&dir.join("status")));
    assert!(
        gap.as_ref().is_ok_and(|g| *g >= Duration::from_secs(2)),
        "status was written {gap:?} before the notification gave up"
    );
    assert!(runs_line(&env, &id).contains(" ✉✗"), "{}", runs_line(&env, &id));
}

#[test]
fn a_server_error_is_retried_and_then_sent() {
    let env = Env::new();
    let server = Server::start(&[Reply::Status(500), Reply::Status(200)]);
    let id = started(&call(&env, &server.url, &[("NTFY_TOPIC", "bgrun-tests")], "run", &["-n", "true"]));
    let notify = wait_notified(&env, &id);
    assert_eq!(notify["state"], "sent", "{notify}");
    assert_eq!(notify["error"], Value::Null);
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2, "one retry after the 500");
    assert_eq!(reqs[0].body, reqs[1].body, "the retry sends the same message");
}

fn a_client_error_fails_at_once(status: u16) {
    let env = Env::new();
    let server = Server::start(&[Reply::Status(status)]);
    let id = started(&call(&env, &server.url, &[("NTFY_TOPIC", "bgrun-tests")], "run", &["-n", "true"]));
    let watcher = watcher_pid(&env, &id);
    let notify = wait_notified(&env, &id);
    assert_eq!(notify["state"], "failed", "{notify}");
    let error = notify["error"].as_str().expect("an error");
    assert!(error.contains(&format!("HTTP {status}")), "{error}");
    wait_until(SOON, "the watcher to exit", || !pid_alive(watcher));
    assert_eq!(server.requests().len(), 1, "no retry on HTTP {status}");
    assert_eq!(env.state(&id), "done");
}

#[test]
fn an_unauthorized_answer_is_not_retried() {
    a_client_error_fails_at_once(401);
}

#[test]
fn a_rate_limit_answer_is_not_retried() {
    a_client_error_fails_at_once(429);
}

#[test]
fn a_server_that_never_answers_is_given_up_within_the_timeout() {
    let env = Env::new();
    let server = Server::start(&[Reply::Silent]);
    let vars = [("NTFY_TOPIC", "bgrun-tests"), ("NTFY_TIMEOUT", "1")];
    let id = started(&call(&env, &server.url, &vars, "run", &["-n", "true"]));
    let watcher = watcher_pid(&env, &id);
    assert_eq!(env.wait_ended(&id, SOON)["state"], "done", "the end is recorded while the server hangs");
    // Three tries of one second and 1 + 2 s of backoff: about 6 s.
    wait_until(Duration::from_secs(12), "the watcher to give up and exit", || !pid_alive(watcher));
    let notify = env.job(&id)["notify"].clone();
    assert_eq!(notify["state"], "failed", "{notify}");
    assert!(notify["error"].as_str().is_some_and(|e| e.contains("timed out")), "{notify}");
    assert_eq!(server.requests().len(), 3, "a timeout is retried like any network error");
}

// --- secrets ----------------------------------------------------------------------------

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
    common::write(&env.root.join("go"), "");
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

// --- how the outcome shows ----------------------------------------------------------------

#[test]
fn runs_marks_pending_sent_and_failed_notifications() {
    let env = Env::new();
    let slow = Server::start(&[Reply::Held]);
    let refusing = Server::start(&[Reply::Status(401)]);
    let vars = [("NTFY_TOPIC", "bgrun-tests")];
    let plain = started(&call(&env, &slow.url, &vars, "run", &["true"]));
    let held = started(&call(&env, &slow.url, &vars, "run", &["-n", "true"]));
    let denied = started(&call(&env, &refusing.url, &vars, "run", &["-n", "true"]));

    // The end is recorded while the server has not answered yet.
    assert_eq!(env.wait_ended(&held, SOON)["state"], "done");
    wait_until(SOON, "the slow server to get the message", || slow.requests().len() == 1);
    let notify = env.job(&held)["notify"].clone();
    assert_eq!(notify, serde_json::json!({"topic": "bgrun-tests", "state": "pending", "error": null}));
    assert!(runs_line(&env, &held).contains(" ✉…"), "{}", runs_line(&env, &held));

    slow.release();
    let notify = wait_notified(&env, &held);
    assert_eq!(notify, serde_json::json!({"topic": "bgrun-tests", "state": "sent", "error": null}));
    let line = runs_line(&env, &held);
    assert!(line.contains(" ✉") && !line.contains("✉…") && !line.contains("✉✗"), "{line}");

    let notify = wait_notified(&env, &denied);
    assert_eq!(notify["state"], "failed");
    assert!(notify["error"].as_str().is_some_and(|e| e.starts_with("HTTP 401")), "{notify}");
    assert!(runs_line(&env, &denied).contains(" ✉✗"), "{}", runs_line(&env, &denied));

    env.wait_ended(&plain, SOON);
    assert_eq!(env.job(&plain)["notify"], Value::Null);
    assert!(!runs_line(&env, &plain).contains('✉'), "{}", runs_line(&env, &plain));
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

#[test]
fn min_duration_sends_nothing_for_jobs_that_ended_sooner_and_runs_shows_no_mark_while_a_job_runs() {
    let env = Env::new();
    let server = Server::start(&[Reply::Status(200)]);
    let vars = [("NTFY_TOPIC", "bgrun-tests")];
    let quick_ok = started(&call(&env, &server.url, &vars, "run", &["-n", "--min-duration", "2m", "true"]));
    let quick_fail =
        started(&call(&env, &server.url, &vars, "job", &["run", "--notify", "--min-duration", "2m", "exit 1"]));
    let by_env = [("NTFY_TOPIC", "bgrun-tests"), ("NTFY_MIN_DURATION", "1s")];
    let long_enough = started(&call(&env, &server.url, &by_env, "run", &["-n", "sleep", "1.5"]));
    let too_short = started(&call(&env, &server.url, &by_env, "run", &["-n", "true"]));
    let running = started(&call(&env, &server.url, &vars, "run", &["-n", "sleep", "30"]));

    for id in [&quick_ok, &quick_fail, &too_short] {
        let notify = wait_notified(&env, id);
        assert_eq!(notify["state"], "skipped", "{id}: {notify}");
        assert!(!runs_line(&env, id).contains('✉'), "{}", runs_line(&env, id));
    }
    assert_eq!(wait_notified(&env, &long_enough)["state"], "sent");
    let sent: Vec<String> = server.requests().iter().map(|r| r.message()).collect();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].contains(&format!("Job: {long_enough}")), "{sent:?}");

    assert_eq!(env.job(&running)["notify"]["state"], "pending");
    assert!(!runs_line(&env, &running).contains('✉'), "a mark while running: {}", runs_line(&env, &running));
    assert!(env.run("job", &["stop", &running]).status.success());
    assert!(runs_line(&env, &running).contains('✉'), "{}", runs_line(&env, &running));
}

// --- a watcher that gave back its memory -----------------------------------------------

/// The watcher's resident memory (Rss of /proc/PID/smaps_rollup), in KiB;
/// none once it is gone.
fn rss_kib(pid: i64) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    text.lines().find_map(|l| l.strip_prefix("Rss:")?.trim().strip_suffix(" kB")?.trim().parse().ok())
}

/// A watcher starts as a copy of its launcher, with the pages of code and
/// data that the launcher touched (parsing the command line, staging the
/// job): about 2.3 MiB resident in a release build, 6.4 MiB in a debug
/// one. Once its job has run for 100 ms it gives back what waiting does
/// not use (`proc::shed`) and settles near 0.5–0.6 MiB (release) or
/// 1.4–1.7 MiB (debug), the pages it touches again while it waits
/// included. The bound sits between the two, twice the lower figure and
/// about half the higher, so that neither the size of the environment nor
/// the C library's version moves a watcher across it.
const SHED_RSS_KIB: u64 = if cfg!(debug_assertions) { 3584 } else { 1280 };

/// Waits until job `id`'s watcher is below `SHED_RSS_KIB` while the job
/// still runs.
fn wait_shed(env: &Env, id: &str) {
    let watcher = watcher_pid(env, id);
    let mut rss = None;
    wait_until(SOON, &format!("job {id}'s watcher to give back memory"), || {
        assert_eq!(
            env.state(id),
            "running",
            "job {id} ended before its watcher was seen below the bound ({rss:?} KiB)"
        );
        rss = rss_kib(watcher);
        rss.is_some_and(|kib| kib < SHED_RSS_KIB)
    });
}

#[test]
fn a_watcher_that_gave_back_its_memory_still_records_the_end_stops_times_out_and_notifies() {
    let env = Env::new();
    let server = Server::start(&[Reply::Status(200)]);
    let vars = [("NTFY_TOPIC", "bgrun-tests")];
    let gate = env.root.join("gate");
    let script = format!("while [ ! -e {} ]; do sleep 0.02; done; exit 3", gate.display());
    let ending = started(&call(&env, &server.url, &vars, "run", &["-n", "sh", "-c", &script]));
    let stopped = started(&call(&env, &server.url, &vars, "run", &["-n", "sleep", "600"]));
    // Long enough for the watcher to be seen below the bound first.
    let timed_out =
        started(&call(&env, &server.url, &vars, "job", &["run", "--notify", "--timeout", "8s", "sleep 600"]));
    for id in [&ending, &stopped, &timed_out] {
        wait_shed(&env, id);
    }

    write(&gate, "");
    assert!(env.run("job", &["stop", &stopped]).status.success());
    for (id, state, title) in [
        (&ending, "failed", " failed (exit 3)"),
        (&stopped, "stopped", " stopped ("),
        (&timed_out, "timeout", " timed out ("),
    ] {
        let job = env.wait_ended(id, SOON);
        assert_eq!(job["state"], state, "{job}");
        assert_eq!(wait_notified(&env, id)["state"], "sent", "{id}");
        let footer = format!("=== {state}");
        assert!(env.log(id).lines().any(|l| l.starts_with(&footer)), "no footer in the log of {id}: {}", env.log(id));
        let req = server.request_for(id);
        assert!(req.title().contains(title), "{id}: {}", req.title());
    }
    assert_eq!(env.job(&ending)["exit_code"], 3);
}
