//! Queues, slots and `--after`, with real processes: the order, the width
//! under races, what frees a slot, what survives a killed watcher and a
//! reboot, and how queued jobs compose with stop, wait, retry, keys and
//! removal.

use crate::common::*;
use serde_json::Value;
use std::collections::HashSet;
use std::ops::Deref;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

mod locks;
mod place;
mod stranded;
mod trust;

const SOON: Duration = Duration::from_secs(30);

/// A temporary store that, when the test ends, stops what it left queued
/// (first, so that nothing new starts) and then what it left running.
struct Queues {
    env: Env,
}

impl Deref for Queues {
    type Target = Env;
    fn deref(&self) -> &Env {
        &self.env
    }
}

impl Drop for Queues {
    fn drop(&mut self) {
        for state in ["queued", "running"] {
            let ids: Vec<String> = self.states().into_iter().filter(|(_, s)| s == state).map(|(id, _)| id).collect();
            if !ids.is_empty() {
                let _ = self.env.cmd("job").arg("stop").arg("--force").args(&ids).output();
            }
        }
    }
}

impl Queues {
    /// `run ARGS…`, which must succeed; the id it printed.
    fn run_q(&self, args: &[&str]) -> String {
        self.start(args)
    }

    /// `job ARGS…`, which must succeed; its stdout.
    fn job_ok(&self, args: &[&str]) -> String {
        let out = self.run("job", args);
        assert!(out.status.success(), "job {args:?} failed: {}", stderr(&out));
        stdout(&out)
    }

    /// Every job's (id, state), from `runs --json` (tolerant: used in Drop).
    fn states(&self) -> Vec<(String, String)> {
        let Ok(out) = self.env.cmd("runs").arg("--json").output() else { return vec![] };
        let Ok(Value::Array(jobs)) = serde_json::from_slice::<Value>(&out.stdout) else { return vec![] };
        jobs.iter()
            .map(|j| (j["id"].as_str().unwrap_or("").to_string(), j["state"].as_str().unwrap_or("").to_string()))
            .collect()
    }

    fn meta(&self, id: &str) -> Value {
        let text = std::fs::read(self.job_dir(id).join("meta.json")).expect("reading meta.json");
        serde_json::from_slice(&text).expect("meta.json is JSON")
    }

    fn set_meta(&self, id: &str, meta: &Value) {
        let dir = self.job_dir(id);
        let tmp = dir.join(".meta.test.tmp");
        write(&tmp, &serde_json::to_string(meta).expect("JSON"));
        std::fs::rename(&tmp, dir.join("meta.json")).expect("replacing meta.json");
    }

    /// Waits (through `runs`, which also starts what should run) until the
    /// job is in one of `states`; returns its object.
    fn wait_state(&self, id: &str, states: &[&str]) -> Value {
        let mut last = Value::Null;
        wait_until(SOON, &format!("{id} to be {states:?}"), || {
            last = self.job(id);
            states.iter().any(|s| last["state"] == *s)
        });
        last
    }

    fn file(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// The directory of queue `name` (made by a first command on it).
    fn queue_dir(&self, name: &str) -> PathBuf {
        std::fs::read_dir(self.store.join(".queues"))
            .expect("reading .queues")
            .flatten()
            .map(|e| e.path())
            .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&format!("{name}@"))))
            .expect("the queue's directory")
    }
}

fn queues() -> Queues {
    Queues { env: Env::new() }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_string).collect()
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn kill(pid: i64) {
    // SAFETY: kill with plain integers, in a test.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
}

/// A stand-in for ntfy on 127.0.0.1 that answers 200 and keeps the bodies.
fn ntfy_server() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a port");
    let url = format!("http://{}", listener.local_addr().expect("its address"));
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let mut r = BufReader::new(&conn);
            let mut len = 0;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            let _ = r.read_exact(&mut body);
            keep.lock().expect("the list").push(String::from_utf8_lossy(&body).into_owned());
            let _ = (&conn).write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (url, seen)
}

#[test]
fn a_queue_of_width_one_runs_its_jobs_one_after_another_in_the_order_they_were_queued() {
    let q = queues();
    let trace = q.file("trace");
    let mut ids = Vec::new();
    for n in 0..5 {
        let cmd = format!("echo start {n} >> '{0}'; sleep 0.2; echo end {n} >> '{0}'", trace.display());
        ids.push(q.run_q(&["-q", "serial", &cmd]));
    }
    let mut args = vec!["wait"];
    args.extend(ids.iter().map(String::as_str));
    q.job_ok(&args);
    let expected: Vec<String> = (0..5).flat_map(|n| [format!("start {n}"), format!("end {n}")]).collect();
    assert_eq!(lines(&trace), expected);
}

#[test]
fn a_queue_of_width_three_never_runs_more_than_three_and_finishes_all_thirty() {
    let q = queues();
    q.job_ok(&["queue", "wide", "--slots", "3"]);
    let ids: Vec<String> =
        (0..30).map(|n| q.run_q(&["-q", "wide", "--name", &format!("w{n}"), "sleep", "0.3"])).collect();
    let mut most = 0;
    wait_until(Duration::from_secs(120), "30 jobs to finish", || {
        let jobs = q.jobs();
        let running = jobs.iter().filter(|j| j["queue"] == "wide" && j["state"] == "running").count();
        assert!(running <= 3, "{running} running in a queue of 3");
        most = most.max(running);
        ids.iter().all(|id| jobs.iter().any(|j| j["id"] == *id && j["state"] == "done"))
    });
    assert_eq!(most, 3, "the queue never ran three at once");
}

#[test]
fn fifty_concurrent_launches_into_one_queue_all_run_never_more_than_two_at_once() {
    let q = queues();
    q.job_ok(&["queue", "burst", "--slots", "2"]);
    let trace = q.file("trace");
    let cmd = format!("echo s >> '{0}'; sleep 0.05; echo e >> '{0}'", trace.display());
    let ids: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..50).map(|_| s.spawn(|| q.run_q(&["-q", "burst", &cmd]))).collect();
        handles.into_iter().map(|h| h.join().expect("a launch thread")).collect()
    });
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 50, "ids are not distinct: {ids:?}");
    let mut args = vec!["wait", "--timeout", "2m"];
    args.extend(ids.iter().map(String::as_str));
    q.job_ok(&args);
    let (mut now, mut most) = (0i32, 0);
    for l in lines(&trace) {
        now += if l == "s" { 1 } else { -1 };
        most = most.max(now);
    }
    assert!(most <= 2, "{most} jobs ran at once in a queue of 2");
    assert_eq!(lines(&trace).len(), 100, "every job ran once");
}

#[test]
fn when_the_watcher_of_a_running_queued_job_is_killed_the_next_job_still_starts() {
    let q = queues();
    let first = q.run_q(&["-q", "k", "sleep", "1"]);
    let second = q.run_q(&["-q", "k", "true"]);
    let watcher = q.meta(&first)["watcher_pid"].as_i64().expect("a watcher pid");
    kill(watcher);
    // Nothing records the first job's end: it ends lost, and the next
    // command starts the second.
    q.wait_state(&first, &["lost"]);
    q.wait_state(&second, &["done"]);
}

#[test]
fn after_starts_a_job_once_its_dependency_is_done_and_skips_it_when_the_dependency_failed_or_was_stopped() {
    let q = queues();
    let gate = q.file("gate");
    let ok = q.run_q(&[&format!("while [ ! -e '{}' ]; do sleep 0.02; done", gate.display())]);
    let bad = q.run_q(&["sh", "-c", "exit 3"]);
    let stopped = q.run_q(&["sleep", "30"]);
    let ran = q.file("ran");
    let touch = |name: &str| format!("echo {name} >> '{}'", ran.display());
    let after_ok = q.run_q(&["--after", &ok, &touch("ok")]);
    let after_bad = q.run_q(&["--after", &bad, &touch("bad")]);
    let after_stopped = q.run_q(&["--after", &stopped, &touch("stopped")]);
    let after_both = q.run_q(&["--after", &ok, "--after", &bad, &touch("both")]);
    assert_eq!(q.state(&after_ok), "queued");
    q.job_ok(&["stop", &stopped]);
    write(&gate, "");
    q.wait_state(&after_ok, &["done"]);
    let skipped = q.wait_state(&after_bad, &["skipped"]);
    assert_eq!(skipped["reason"], format!("after {bad}: failed (exit 3)"));
    assert_eq!(skipped["exit_code"], Value::Null);
    let s = q.wait_state(&after_stopped, &["skipped"]);
    assert!(s["reason"].as_str().unwrap_or("").starts_with(&format!("after {stopped}: stopped")), "{s}");
    q.wait_state(&after_both, &["skipped"]);
    assert_eq!(lines(&ran), ["ok"], "only the job after a done one ran");
    let status = q.job_ok(&["status", &after_bad]);
    assert!(status.contains(&format!("skipped (after {bad}: failed (exit 3))")), "{status}");
    assert!(
        q.log(&after_bad).contains(&format!("=== skipped (after {bad}: failed (exit 3))")),
        "{}",
        q.log(&after_bad)
    );
    assert_eq!(
        std::fs::read_to_string(q.job_dir(&after_bad).join("status")).map(|s| s.contains("after")).ok(),
        Some(true)
    );
}

#[test]
fn after_an_unknown_job_is_a_usage_error_naming_the_flag_and_starts_nothing() {
    let q = queues();
    let out = q.run("run", &["--after", "nosuchjob", "true"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("--after"), "{}", stderr(&out));
    let out = q.run("job", &["run", "--after", "nosuchjob", "true"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(q.states().is_empty());
}

#[test]
fn run_slot_is_unique_among_the_running_jobs_of_a_queue() {
    let q = queues();
    q.job_ok(&["queue", "gpu", "--slots", "3"]);
    let dir = q.file("slots");
    std::fs::create_dir(&dir).expect("mkdir");
    let cmd = format!(
        "mkdir \"{0}/busy$RUN_SLOT\" || echo clash >> '{0}/clash'; echo $RUN_QUEUE $RUN_SLOT >> '{0}/seen'; sleep 0.2; rmdir \"{0}/busy$RUN_SLOT\"",
        dir.display()
    );
    let ids: Vec<String> = (0..9).map(|_| q.run_q(&["-q", "gpu", &cmd])).collect();
    let mut args = vec!["wait"];
    args.extend(ids.iter().map(String::as_str));
    q.job_ok(&args);
    assert!(!dir.join("clash").exists(), "two running jobs shared a slot");
    let seen: HashSet<String> = lines(&dir.join("seen")).into_iter().collect();
    let all: HashSet<String> = ["gpu 0", "gpu 1", "gpu 2"].iter().map(|s| s.to_string()).collect();
    assert_eq!(seen, all);
}

#[test]
fn a_paused_queue_starts_nothing_until_it_is_resumed() {
    let q = queues();
    q.job_ok(&["queue", "p", "--pause"]);
    let marker = format!("queued-marker-{}", std::process::id());
    let id = q.run_q(&["-q", "p", "echo", &marker]);
    q.run("runs", &[]);
    assert_eq!(q.state(&id), "queued");
    // No process waits for it (nq keeps one per queued job).
    let waiting: Vec<String> = std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&marker))
        .collect();
    assert!(waiting.is_empty(), "processes for a queued job: {waiting:?}");
    let listing = q.job_ok(&["queue"]);
    assert!(listing.contains("p  1 slot, 0 running, 1 queued, paused"), "{listing}");
    q.job_ok(&["queue", "p", "--resume"]);
    q.wait_state(&id, &["done"]);
}

#[test]
fn queue_places_follow_the_order_of_queueing_when_launches_had_different_time_zones() {
    let q = queues();
    q.job_ok(&["queue", "tz", "--pause"]);
    let in_tz = |tz: &str| {
        let out = q.cmd("run").env("TZ", tz).args(["-q", "tz", "true"]).output().expect("run");
        assert!(out.status.success(), "run -q tz under TZ={tz}: {}", stderr(&out));
        stdout(&out).split_whitespace().next().expect("run printed an id").to_string()
    };
    let (first, second) = (in_tz("Asia/Tokyo"), in_tz("UTC"));
    for (id, place) in [(&first, "1st"), (&second, "2nd")] {
        let text = q.job_ok(&["status", id]);
        assert!(text.contains(&format!("queued {place} in tz")), "{id} is not {place}: {text}");
        let runs = stdout(&q.run("runs", &[]));
        let row = runs.lines().find(|l| l.contains(id.as_str())).unwrap_or_default();
        assert!(row.contains(&format!("{place} in tz")), "{id} is not {place} in runs: {runs}");
    }
    q.job_ok(&["queue", "tz", "--resume"]);
    q.wait_state(&second, &["done"]);
}

#[test]
fn job_status_of_a_queued_job_shows_when_it_was_queued_its_place_and_a_paused_queue_and_no_start() {
    let q = queues();
    q.job_ok(&["queue", "gpu", "--pause"]);
    let first = q.run_q(&["-q", "gpu", "true"]);
    let second = q.run_q(&["-q", "gpu", "true"]);
    let text = q.job_ok(&["status", &second]);
    let row = |k: &str| text.lines().find_map(|l| l.trim_start().strip_prefix(k).map(str::trim)).unwrap_or_default();
    assert_eq!(row("state "), "queued 2nd in gpu, paused", "{text}");
    assert!(row("queue ").starts_with("gpu, paused"), "{text}");
    assert!(row("queued ").starts_with(&chrono::Local::now().format("%Y-%m-%d").to_string()), "{text}");
    assert!(!text.contains("started"), "a queued job never started: {text}");
    let j: Value = serde_json::from_str(&q.job_ok(&["status", &first, "--json"])).expect("JSON");
    assert_eq!((j["queue_place"].as_u64(), j["queue_paused"].as_bool()), (Some(1), Some(true)), "{j}");
    assert_eq!(j["state"], "queued", "{j}");

    q.job_ok(&["queue", "gpu", "--resume"]);
    q.wait_state(&second, &["done"]);
    let text = q.job_ok(&["status", &second]);
    assert!(text.contains("started") && !text.contains("paused"), "{text}");
    let j: Value = serde_json::from_str(&q.job_ok(&["status", &second, "--json"])).expect("JSON");
    assert_eq!((j["queue_place"].clone(), j["queue_paused"].clone()), (Value::Null, Value::Null), "{j}");
}

#[test]
fn stopping_a_queued_job_ends_it_stopped_without_ever_starting_it_and_the_queue_goes_on() {
    let q = queues();
    let gate = q.file("gate");
    let first = q.run_q(&["-q", "s", &format!("while [ ! -e '{}' ]; do sleep 0.02; done", gate.display())]);
    let marker = q.file("ran");
    let second = q.run_q(&["-q", "s", "touch", marker.to_str().expect("utf-8")]);
    let third = q.run_q(&["-q", "s", "true"]);
    let out = q.job_ok(&["stop", &second]);
    assert!(out.contains("stopped (stopped while queued)"), "{out}");
    let j = q.job(&second);
    assert_eq!(j["state"], "stopped");
    assert_eq!(j["pid"], Value::Null);
    assert!(!q.job_dir(&second).join("env").exists(), "the saved environment outlived the job");
    write(&gate, "");
    q.wait_state(&third, &["done"]);
    q.wait_state(&first, &["done"]);
    assert!(!marker.exists(), "the stopped job ran");
}

#[test]
fn job_wait_on_a_queued_job_waits_through_its_start_to_its_end() {
    let q = queues();
    let gate = q.file("gate");
    q.run_q(&["-q", "w", &format!("while [ ! -e '{}' ]; do sleep 0.02; done", gate.display())]);
    let waited = q.run_q(&["-q", "w", "sh", "-c", "exit 4"]);
    let out = q.run("job", &["wait", &waited, "--timeout", "1s"]);
    assert_eq!(code(&out), 124, "{}", stderr(&out));
    let child = q.cmd("job").args(["wait", &waited]).stdout(std::process::Stdio::null()).spawn().expect("job wait");
    write(&gate, "");
    let out = child.wait_with_output().expect("job wait");
    assert_eq!(out.status.code(), Some(1), "a job that exits 4 fails the wait");
    assert_eq!(q.job(&waited)["exit_code"], 4);
}

#[test]
fn a_retry_goes_back_into_the_same_queue() {
    let q = queues();
    let first = q.run_q(&["-q", "r", "sh", "-c", "exit 1"]);
    q.wait_state(&first, &["failed"]);
    let retry = q.job_ok(&["retry", &first]).trim().to_string();
    let j = q.wait_state(&retry, &["failed"]);
    assert_eq!(j["queue"], "r");
    assert_eq!(j["slot"], 0);
}

#[test]
fn queued_jobs_survive_a_reboot_and_start_at_the_next_command() {
    let q = queues();
    let running = q.run_q(&["-q", "boot", "sleep", "300"]);
    let queued = q.run_q(&["-q", "boot", "true"]);
    // The "reboot": every process of the old boot is gone, and the boot id
    // the jobs recorded is not this one.
    let m = q.meta(&running);
    kill(m["watcher_pid"].as_i64().expect("watcher pid"));
    kill(m["pid"].as_i64().expect("pid"));
    for id in [&running, &queued] {
        let mut m = q.meta(id);
        m["boot_id"] = "00000000-0000-0000-0000-000000000000".into();
        q.set_meta(id, &m);
    }
    q.wait_state(&running, &["lost"]);
    let j = q.wait_state(&queued, &["done"]);
    assert_ne!(j["pid"], Value::Null);
}

#[test]
fn the_environment_of_run_q_is_kept_in_a_private_file_until_the_job_starts() {
    let q = queues();
    q.job_ok(&["queue", "e", "--pause"]);
    let out_file = q.file("env-seen");
    let out = q
        .cmd("run")
        .env("QUEUED_SECRET", "s3cret")
        .args(["-q", "e", &format!("echo $QUEUED_SECRET $RUN_QUEUE $RUN_SLOT > '{}'", out_file.display())])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    let id = stdout(&out).split_whitespace().next().expect("an id").to_string();
    assert_eq!(stdout(&out).split_whitespace().nth(1), Some("queued"));
    let env = q.job_dir(&id).join("env");
    let mode = std::fs::metadata(&env).expect("the saved environment").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(!std::fs::read_to_string(q.job_dir(&id).join("meta.json")).unwrap_or_default().contains("s3cret"));
    // Resumed by a command with another environment: the job still gets
    // the one it was queued with.
    q.cmd("job").env("QUEUED_SECRET", "other").args(["queue", "e", "--resume"]).output().expect("job queue");
    q.wait_state(&id, &["done"]);
    assert_eq!(lines(&out_file), ["s3cret e 0"]);
    assert!(!env.exists(), "the saved environment outlived the start");
}

#[test]
fn a_key_on_a_queued_job_gives_back_its_id_while_it_waits() {
    let q = queues();
    q.job_ok(&["queue", "kq", "--pause"]);
    let id = q.job_ok(&["run", "-q", "kq", "--key", "k1", "true"]).trim().to_string();
    let again = q.job_ok(&["run", "-q", "kq", "--key", "k1", "true"]).trim().to_string();
    assert_eq!(id, again);
    assert_eq!(q.states().len(), 1);
}

#[test]
fn runrm_leaves_a_queued_job_and_what_it_waits_for() {
    let q = queues();
    let dep = q.run_q(&["sh", "-c", "exit 0"]);
    q.wait_state(&dep, &["done"]);
    q.job_ok(&["queue", "rm", "--pause"]);
    let queued = q.run_q(&["-q", "rm", "--after", &dep, "true"]);
    let out = q.run("runrm", &[&queued]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("is queued"), "{}", stderr(&out));
    let out = q.run("runrm", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(q.state(&dep), "done", "the job a queued one waits for was removed");
    q.job_ok(&["queue", "rm", "--resume"]);
    q.wait_state(&queued, &["done"]);
}

#[test]
fn a_job_queued_on_another_host_is_never_started_here() {
    let q = queues();
    q.job_ok(&["queue", "h", "--pause"]);
    let id = q.run_q(&["-q", "h", "true"]);
    let queues_dir = q.store.join(".queues");
    let mine = std::fs::read_dir(&queues_dir).expect(".queues").flatten().next().expect("a queue").path();
    let theirs = queues_dir.join("h@elsewhere~1");
    std::fs::rename(&mine, &theirs).expect("moving the queue to another host");
    std::fs::remove_file(theirs.join("conf")).expect("unpausing it there");
    let mut m = q.meta(&id);
    m["place"] = "elsewhere~1".into();
    q.set_meta(&id, &m);
    // Each of these decides for this host's queues before it returns.
    q.run("runs", &[]);
    q.job_ok(&["queue", "h", "--slots", "2"]);
    q.run("runs", &[]);
    assert_eq!(q.state(&id), "queued");
    assert!(q.meta(&id)["pid"].is_null());
}

#[test]
fn a_timeout_counts_from_the_start_not_from_the_queueing() {
    let q = queues();
    let gate = q.file("gate");
    q.run_q(&["-q", "t", &format!("while [ ! -e '{}' ]; do sleep 0.02; done", gate.display())]);
    let timed = q.job_ok(&["run", "-q", "t", "--timeout", "1s", "sleep 0.3"]).trim().to_string();
    let queued = std::time::Instant::now();
    // Queued for longer than its timeout:
    wait_until(SOON, "the job to be queued longer than its timeout", || {
        q.state(&timed) == "queued" && queued.elapsed() > Duration::from_millis(1500)
    });
    write(&gate, "");
    assert_eq!(q.wait_state(&timed, &["done", "timeout"])["state"], "done");
}

#[test]
fn a_skipped_job_that_asked_for_a_notification_gets_one_saying_why() {
    let q = queues();
    let (url, seen) = ntfy_server();
    let dep = q.run_q(&["sh", "-c", "exit 2"]);
    let out = q
        .cmd("run")
        .env("NTFY_SERVER", &url)
        .env("NTFY_TOPIC", "queue-test")
        .args(["-n", "--after", &dep, "true"])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    let id = stdout(&out).split_whitespace().next().expect("an id").to_string();
    q.wait_state(&id, &["skipped"]);
    wait_until(SOON, "the notification", || q.job(&id)["notify"]["state"] == "sent");
    let bodies = seen.lock().expect("the list").clone();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    let msg: Value = serde_json::from_str(&bodies[0]).expect("a JSON body");
    assert_eq!(msg["title"], format!("❌ true skipped (after {dep}: failed (exit 2))"));
}

#[test]
fn after_a_job_seen_from_another_host_waits_for_its_end_instead_of_skipping() {
    let q = queues();
    let id = q.run_q(&["true"]);
    q.wait_state(&id, &["done"]);
    // The watcher writes meta.json once more after `status` (ended_at):
    // wait for that, so that it does not undo the planted host.
    wait_until(SOON, "ended_at in meta.json", || q.meta(&id)["ended_at"].is_string());
    // Seen from here, a job of another host with no end recorded yet.
    let status = q.job_dir(&id).join("status");
    let line = std::fs::read_to_string(&status).expect("status");
    std::fs::remove_file(&status).expect("removing status");
    let mut m = q.meta(&id);
    m["host"] = "otherhost.example".into();
    // Another host has a machine id of its own: this one's would be this machine.
    m["machine"] = "0f0f0f0f00004000800000000000000f".into();
    // Another host has its own boot id: the same one would be this machine.
    m["boot_id"] = "0f0f0f0f-0000-4000-8000-000000000000".into();
    q.set_meta(&id, &m);
    assert_eq!(q.state(&id), "elsewhere");
    let after = q.run_q(&["--after", &id, "true"]);
    q.run("runs", &[]);
    assert_eq!(q.state(&after), "queued");
    // Its end recorded there (and the store shared): now it starts.
    let tmp = q.job_dir(&id).join(".status.test");
    write(&tmp, &line);
    std::fs::rename(&tmp, &status).expect("recording the end");
    q.wait_state(&after, &["done"]);
}
