//! The log's header (`=== ` lines: command, directory, start) lives in
//! meta.json, not in the log file: the file holds the job's output from its
//! first byte (so the job's writes are page-aligned, as with a plain
//! redirect), and every reader shows the header first, as the file of an
//! older version had it. A log of an older version (header in the file, no
//! `log_header` in meta.json) shows exactly as before, its header once.

use super::*;
use crate::common::*;
use std::fs;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Instant;

/// A `runlog` following a job, its lines read by a thread of its own, so
/// that waiting for them has a deadline; killed if the test fails.
struct Follower {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: String,
}

impl Follower {
    fn start(env: &Env, args: &[&str]) -> Follower {
        let mut child = env.cmd("runlog").args(args).stdout(Stdio::piped()).spawn().expect("starting runlog");
        let pipe = BufReader::new(child.stdout.take().expect("runlog's stdout"));
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in pipe.split(b'\n').map_while(Result::ok) {
                let _ = tx.send(String::from_utf8_lossy(&line).into_owned() + "\n");
            }
        });
        Follower { child, lines, seen: String::new() }
    }

    /// Reads until a line starts with `prefix`, or to the end with none;
    /// fails after `SOON`.
    fn read_until(&mut self, prefix: Option<&str>) -> &str {
        let deadline = Instant::now() + SOON;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = prefix.is_some_and(|p| line.starts_with(p));
                    self.seen.push_str(&line);
                    if found {
                        return &self.seen;
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) if prefix.is_none() => return &self.seen,
                Err(e) => panic!("runlog: {e} waiting for {prefix:?}; it showed:\n{}", self.seen),
            }
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_new_jobs_log_file_starts_with_its_first_output_byte_and_readers_show_the_header_first() {
    let env = Env::new();
    let id = ended(&env, &["--name", "hdr", "sh", "-c", "printf 'first line\\nno newline'"]);
    let log = fs::read(env.job_dir(&id).join("log")).expect("the log");
    assert!(log.starts_with(b"first line\nno newline\n=== done (exit 0) after "), "{}", env.log(&id));
    assert_eq!(meta_at(&env.job_dir(&id))["log_header"], "meta");

    let header = env.header(&id);
    let lines: Vec<&str> = header.lines().collect();
    assert_eq!(lines[0], "=== sh -c 'printf '\\''first line\\nno newline'\\'''");
    assert_eq!(lines[1], format!("=== cwd: {}", env.root.display()));
    assert!(lines[2].starts_with("=== started: ") && lines[2].contains(" on "), "{header}");
    let whole = env.shown_log(&id);
    assert_eq!(shown(&env, "runlog", &[&id, "--no-follow"]), whole);
    assert_eq!(shown(&env, "runlog", &[&id]), whole, "following an ended job");
    assert_eq!(shown(&env, "job", &["logs", &id]), whole);
    assert_eq!(shown(&env, "job", &["logs", &id, "--follow"]), whole);

    let out = shown(&env, "job", &["run", "--wait", "--follow", "--name", "fw", "echo followed"]);
    let (first, rest) = out.split_once('\n').expect("the id, then the log");
    assert_eq!(rest, env.shown_log(first), "job run --wait --follow");
    assert!(env.log(first).starts_with("followed\n"), "{}", env.log(first));
}

#[test]
fn a_log_made_by_an_older_version_shows_exactly_as_before_with_its_header_once() {
    let env = Env::new();
    let base = ended(&env, &["--name", "base", "true"]);
    let id = "old_20250101_000000";
    let dir = env.store.join(id);
    fs::create_dir(&dir).expect("a planted job directory");
    for e in fs::read_dir(env.job_dir(&base)).expect("the job directory").flatten() {
        fs::copy(e.path(), dir.join(e.file_name())).expect("copying a job file");
    }
    let mut m = meta_at(&dir);
    m["id"] = id.into();
    m["name"] = "old".into();
    m.as_object_mut().expect("an object").remove("log_header");
    fs::write(dir.join("meta.json"), serde_json::to_vec_pretty(&m).expect("JSON")).expect("meta.json");
    let log = "=== echo old\n=== cwd: /somewhere\n=== started: 2025-01-01T00:00:00.000+00:00 on h as u\nold\n\
               === done (exit 0) after 0s, at 2025-01-01T00:00:01.000+00:00\n";
    fs::write(dir.join("log"), log).expect("the log");

    assert_eq!(shown(&env, "runlog", &[id, "--no-follow"]), log);
    assert_eq!(shown(&env, "runlog", &[id]), log);
    assert_eq!(shown(&env, "job", &["logs", id]), log);
    for n in [1, 2, 3, 5, 9] {
        let tail = n.to_string();
        assert_eq!(shown(&env, "runlog", &[id, "--no-follow", "--tail", &tail]), last_lines(log, n), "--tail {n}");
        assert_eq!(shown(&env, "job", &["logs", id, "--tail", &tail]), last_lines(log, n), "--tail {n}");
    }
    let both = shown(&env, "runlog", &["--no-follow", id, &base]);
    assert_eq!(both.matches("=== echo old").count(), 1, "{both}");
    assert_eq!(both.matches("=== cwd: ").count(), 2, "one header each: {both}");
    let olds: Vec<&str> = both.lines().filter_map(|l| l.strip_prefix("old  | ")).collect();
    assert_eq!(olds, log.lines().collect::<Vec<_>>(), "{both}");
}

#[test]
fn tail_counts_the_header_lines_where_it_reaches_the_start_of_the_log() {
    let env = Env::new();
    let id = ended(&env, &["--name", "two", "sh", "-c", "echo one; echo two"]);
    let whole = env.shown_log(&id);
    assert_eq!(whole.lines().count(), 6, "{whole}");
    for n in 0..=8 {
        let tail = n.to_string();
        let want = last_lines(&whole, n);
        assert_eq!(shown(&env, "runlog", &[&id, "--no-follow", "--tail", &tail]), want, "runlog --tail {n}");
        assert_eq!(shown(&env, "job", &["logs", &id, "--tail", &tail]), want, "job logs --tail {n}");
    }
    // Several at once: each job's lines, prefixed.
    let other = ended(&env, &["--name", "three", "echo", "three"]);
    let both = shown(&env, "runlog", &["--no-follow", "--tail", "4", &id, &other]);
    for (name, job) in [("two", &id), ("three", &other)] {
        let mine: Vec<&str> = both.lines().filter_map(|l| l.strip_prefix(&format!("{name:<5} | "))).collect();
        assert_eq!(mine, last_lines(&env.shown_log(job), 4).lines().collect::<Vec<_>>(), "{both}");
    }

    // A job started from a queue: its header says when it was queued,
    // then when it started, and a tail reaches both.
    let q = ended(&env, &["-q", "q", "--name", "qd", "echo", "out"]);
    let whole = shown(&env, "runlog", &[&q, "--no-follow"]);
    let lines: Vec<&str> = whole.lines().collect();
    assert_eq!(lines.len(), 6, "{whole}");
    assert_eq!(&lines[..2], ["=== echo out".to_string(), format!("=== cwd: {}", env.root.display())]);
    assert!(lines[2].starts_with("=== queued in q: ") && lines[2].contains(" on "), "{whole}");
    assert!(lines[3].starts_with("=== started: ") && lines[3].ends_with(" in q, slot 0"), "{whole}");
    assert_eq!(&lines[4..5], ["out"], "{whole}");
    assert!(env.log(&q).starts_with("out\n=== done (exit 0)"), "{}", env.log(&q));
    for n in 0..=7 {
        let got = shown(&env, "runlog", &[&q, "--no-follow", "--tail", &n.to_string()]);
        assert_eq!(got, last_lines(&whole, n), "--tail {n}");
    }
}

#[test]
fn a_follower_of_a_queued_job_sees_its_started_line_before_its_output() {
    let env = Env::new();
    let out = env.run("job", &["queue", "q", "--pause"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = env.start(&["-q", "q", "--name", "later", "echo", "ran"]);
    // Once a follower has shown the queued line, it follows the queued job.
    let mut followers = [Follower::start(&env, &[&id]), Follower::start(&env, &["--tail", "1", &id])];
    for f in &mut followers {
        f.read_until(Some("=== queued in q: "));
    }
    let out = env.run("job", &["queue", "q", "--resume"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let outs: Vec<String> = followers.iter_mut().map(|f| f.read_until(None).to_string()).collect();
    let whole = shown(&env, "runlog", &[&id, "--no-follow"]);
    assert_eq!(outs[0], whole);
    let lines: Vec<&str> = whole.lines().collect();
    assert!(lines[2].starts_with("=== queued in q: ") && lines[3].starts_with("=== started: "), "{whole}");
    assert_eq!(lines[4], "ran", "{whole}");
    assert_eq!(outs[1], last_lines(&whole, 4), "--tail 1: from the queued line on");
}
