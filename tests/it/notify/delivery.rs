//! How a notification is delivered and recorded: failures retried or not,
//! timeouts kept, the job's end never delayed, and `runs` marking pending,
//! sent and failed; a watcher that gave back its memory still does it all.

use super::*;
use crate::common::*;
use serde_json::Value;
use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

/// A URL where nothing listens: a port that was just free.
fn refusing_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding a port on 127.0.0.1");
    let url = format!("http://{}", listener.local_addr().expect("the address"));
    drop(listener);
    url
}

fn mtime(path: &Path) -> SystemTime {
    std::fs::metadata(path).and_then(|m| m.modified()).expect("the file's mtime")
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
fn a_slow_ntfy_server_never_delays_the_record_of_the_end_and_the_watcher_keeps_to_its_timeouts() {
    let env = Env::new();
    // Answered after 3 s, within the default timeout: sent.
    let server = Ntfy::start(&env.store, Duration::from_secs(3), OK_200);
    let out = env.cmd("run").env("NTFY_SERVER", &server.url).args(["--topic", "slow", "true"]).output().expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    let id = id_of(&out);
    let j = env.wait_ended(&id, SOON);
    assert_eq!(j["state"], "done");
    wait_until(SOON, "the slow answer to be recorded", || env.job(&id)["notify"]["state"] == "sent");
    let requests = server.requests();
    assert_eq!(requests.len(), 1, "one try was enough");
    assert!(requests[0].2, "the request went out before the end was recorded");
    wait_watcher_gone(&env, &id);
    drop(server);

    // NTFY_TIMEOUT=1 (seconds per try, three tries): it gives up in time.
    let env = Env::new();
    let server = Ntfy::start(&env.store, Duration::from_secs(30), OK_200);
    let launched = Instant::now();
    let out = env
        .cmd("run")
        .env("NTFY_SERVER", &server.url)
        .env("NTFY_TIMEOUT", "1")
        .args(["--topic", "slow", "true"])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    let id = id_of(&out);
    let j = env.wait_ended(&id, SOON);
    assert_eq!(j["state"], "done");
    wait_watcher_gone(&env, &id);
    let took = launched.elapsed();
    // 3 tries of 1 s, and backoffs of 1 s and 2 s between them.
    assert!(took >= Duration::from_secs(5), "the watcher gave up after {took:?}, before its tries were out");
    assert!(took < Duration::from_secs(20), "the watcher took {took:?} to give up");
    let notify = &env.job(&id)["notify"];
    assert_eq!(notify["state"], "failed", "{notify}");
    assert_eq!(server.requests().len(), 3, "not three tries");
    assert!(server.requests().iter().all(|r| r.2), "a request went out before the end was recorded");
}

#[test]
fn a_notification_whose_watcher_is_gone_shows_failed_not_pending() {
    let env = Env::new();
    let mut owned = Leftovers::default();
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
    let (id, pid) = id_and_pid(out);
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
        let notify = wait_notified(&env, id);
        assert_eq!(notify["state"], "sent", "{id}: {notify}");
        let footer = format!("=== {state}");
        assert!(env.log(id).lines().any(|l| l.starts_with(&footer)), "no footer in the log of {id}: {}", env.log(id));
        let req = server.request_for(id);
        assert!(req.title().contains(title), "{id}: {}", req.title());
    }
    assert_eq!(env.job(&ending)["exit_code"], 3);
}

/// A loopback ntfy server that holds each request `hold` before answering
/// 200, counting the connections open at once: (requests, most at once).
fn counting_server(hold: Duration) -> (String, Arc<Mutex<(usize, usize)>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding a loopback port");
    let url = format!("http://{}", listener.local_addr().expect("the port"));
    let counts = Arc::new(Mutex::new((0usize, 0usize)));
    let open = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = counts.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let (c, open) = (c.clone(), open.clone());
            std::thread::spawn(move || {
                let mut conn = conn;
                let now = open.fetch_add(1, Ordering::SeqCst) + 1;
                {
                    let mut k = c.lock().expect("the counts");
                    k.1 = k.1.max(now);
                }
                let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                let _ = read_request_text(&mut conn);
                std::thread::sleep(hold);
                c.lock().expect("the counts").0 += 1;
                open.fetch_sub(1, Ordering::SeqCst);
                let _ = conn.write_all(OK_200.as_bytes());
            });
        }
    });
    (url, counts)
}

#[test]
fn a_skipped_chain_of_notifying_jobs_sends_a_few_notifications_at_a_time_and_every_one_arrives() {
    let env = Env::new();
    let (url, counts) = counting_server(Duration::from_millis(300));
    let vars = [("NTFY_TOPIC", "bgrun-tests")];
    let gate = env.root.join("gate");
    let wait_gate = format!("while [ ! -e '{}' ]; do sleep 0.02; done; exit 3", gate.display());
    let head = started(&call(&env, &url, &vars, "run", &["-q", "qa", "sh", "-c", &wait_gate]));
    let (mut prev, mut chain) = (head, Vec::new());
    for _ in 0..30 {
        prev = started(&call(&env, &url, &vars, "run", &["-n", "-q", "qa", "--after", &prev, "true"]));
        chain.push(prev.clone());
    }
    fs::write(&gate, "").expect("opening the gate");
    // Read from the store, not `runs`: a skipped job has no watcher, and
    // `runs` takes a missing one for a notifier that died.
    for id in &chain {
        let notified = env.store.join(id).join("notified");
        wait_until(SOON, &format!("job {id}'s notification"), || notified.exists());
        let outcome = fs::read_to_string(&notified).expect("reading notified");
        assert_eq!(outcome, "sent\n", "{id}");
    }
    let (sent, most) = *counts.lock().expect("the counts");
    assert_eq!(sent, chain.len(), "every skipped job's notification arrived");
    assert!(most <= 4, "{most} notifications were sent at once");
}
