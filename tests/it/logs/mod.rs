//! Reading a job's log (`runlog`, `job logs`): the whole log or its tail,
//! following one or several jobs until they end, exiting as the worst,
//! and the job's raw bytes kept exact while the terminal sees them
//! escaped. Submodules: `header` (the log header), `cap` (`--log-max`),
//! `linger` (the watcher that stays for what an ended job left running),
//! `picker` (runlog's fuzzy picker).

mod cap;
mod header;
mod linger;
mod picker;

use crate::common::*;
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Output, Stdio};
use std::sync::mpsc;

/// A job that prints a line, waits for `gate` to exist, prints another and
/// exits with `code`.
fn gated_job(env: &Env, name: &str, gate: &std::path::Path, code: i32) -> String {
    let script = format!(
        "echo {name} first; while [ ! -e '{}' ]; do sleep 0.05; done; echo {name} second; exit {code}",
        gate.display()
    );
    env.start(&["--name", name, "sh", "-c", &script])
}

/// Has process `pid` an inotify instance open (it has read what there was
/// and waits for more)?
fn watches_files(pid: u32) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return false };
    fds.flatten().any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy().contains("inotify")))
}

/// Runs `front args…` in the background; returns its output once it exits.
fn follower(env: &Env, front: &str, args: &[&str]) -> std::process::Child {
    env.cmd(front)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starting a follower")
}

/// `front args…`, which must succeed; its stdout.
fn shown(env: &Env, front: &str, args: &[&str]) -> String {
    let out = env.run(front, args);
    assert!(out.status.success(), "{front} {args:?}: {}", stderr(&out));
    stdout(&out)
}

/// A job that has ended and whose watcher is gone (its meta.json final).
fn ended(env: &Env, args: &[&str]) -> String {
    let id = env.start(args);
    env.wait_ended(&id, SOON);
    let pid = meta_at(&env.job_dir(&id))["watcher_pid"].as_i64().expect("a watcher pid");
    wait_until(SOON, "the watcher to exit", || !pid_alive(pid));
    id
}

/// The last `n` lines of `text`, as `--tail n` counts them.
fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    lines[lines.len().saturating_sub(n)..].concat()
}

// --- runlog --------------------------------------------------------------------

#[test]
fn runlog_follows_a_running_job_until_it_ends() {
    let env = Env::new();
    let mut left = Leftovers::default();
    let (g1, g2) = (env.root.join("g1"), env.root.join("g2"));
    let cmd = format!(
        "echo first; while [ ! -e {g1} ]; do sleep 0.02; done; echo second; while [ ! -e {g2} ]; do sleep 0.02; done",
        g1 = g1.display(),
        g2 = g2.display()
    );
    let job = launch(&env, &[&cmd]);
    left.add(job.pid);
    let mut follower = env.cmd("runlog").arg(&job.id).stdout(Stdio::piped()).spawn().expect("starting runlog");
    let (tx, rx) = mpsc::channel();
    let reader = BufReader::new(follower.stdout.take().expect("runlog's stdout"));
    std::thread::spawn(move || {
        for line in reader.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let expect = |want: &str| loop {
        match rx.recv_timeout(SOON) {
            Ok(line) if line.starts_with(want) => return,
            Ok(line) => assert!(!line.starts_with("=== done"), "the job ended before {want:?} was seen"),
            Err(_) => panic!("runlog did not print {want:?} within {SOON:?}"),
        }
    };

    expect("first");
    assert!(follower.try_wait().expect("checking runlog").is_none(), "runlog exited while the job ran");
    open(&g1);
    expect("second");
    assert!(follower.try_wait().expect("checking runlog").is_none(), "runlog exited while the job ran");
    open(&g2);
    expect("=== done (exit 0) after ");
    let status = wait_exit(&mut follower, SOON, "runlog to exit after the job ended");
    assert!(status.success(), "runlog exited with {status}");
}

#[test]
fn runlog_tail_prints_only_the_last_lines() {
    let env = Env::new();
    let job = launch(&env, &["seq", "1", "10"]);
    env.wait_ended(&job.id, SOON);
    for args in [vec![job.id.as_str(), "--tail", "3", "--no-follow"], vec![job.id.as_str(), "--tail", "3"]] {
        let out = env.run("runlog", &args);
        assert!(out.status.success(), "runlog {args:?}: {}", stderr(&out));
        let text = stdout(&out);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "runlog {args:?}: {text}");
        assert_eq!(&lines[..2], ["9", "10"]);
        assert!(lines[2].starts_with("=== done (exit 0) after "), "{text}");
    }
}

#[test]
fn runlog_without_a_job_and_without_a_terminal_shows_the_newest_job_and_says_so() {
    let env = Env::new();
    let old = launch(&env, &["echo", "older-output"]);
    env.wait_ended(&old.id, SOON);
    let new = launch(&env, &["echo", "newer-output"]);
    env.wait_ended(&new.id, SOON);
    let out = env.run("runlog", &[]);
    assert!(out.status.success(), "runlog failed: {}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("\nnewer-output\n") && !text.contains("older-output"), "{text}");
    let err = stderr(&out);
    assert!(err.contains("newest") && err.contains(&new.id), "runlog said: {err}");
}

#[test]
fn runlog_and_job_logs_follow_several_jobs_with_prefixes_until_all_end_exiting_as_the_worst() {
    let env = Env::new();
    let gate = env.root.join("gate");
    let a = gated_job(&env, "alpha", &gate, 0);
    let b = gated_job(&env, "beta", &gate, 0);
    let c = gated_job(&env, "gamma", &gate, 3);
    wait_until(SOON, "the first lines", || [&a, &b, &c].iter().all(|id| env.log(id).contains("first")));
    // Started before the gate opens: a follower that ended early would miss
    // the "second" lines, written after it.
    let followers = [
        follower(&env, "runlog", &["-f", "alpha", "beta", "gamma"]),
        follower(&env, "job", &["logs", "--follow", &a, &b]),
        follower(&env, "runlog", &["--running"]),
    ];
    wait_until(SOON, "every follower to watch its jobs", || followers.iter().all(|f| watches_files(f.id())));
    std::fs::write(&gate, "").expect("opening the gate");
    let outs: Vec<Output> = followers.into_iter().map(|f| f.wait_with_output().expect("a follower's output")).collect();
    for (i, out) in outs.iter().enumerate() {
        let text = stdout(out);
        let names: &[&str] = if i == 1 { &["alpha", "beta"] } else { &["alpha", "beta", "gamma"] };
        for name in names {
            for part in ["first", "second"] {
                let line = text.lines().find(|l| l.ends_with(&format!("{name} {part}")));
                let line = line.unwrap_or_else(|| panic!("follower {i}: no {name} {part} line in:\n{text}"));
                assert!(line.starts_with(&format!("{name} ")) && line.contains(" | "), "not prefixed: {line}");
            }
            assert!(text.lines().any(|l| l.starts_with(name) && l.contains("=== ")), "no end line: {text}");
        }
        let want = if i == 1 { 0 } else { 1 };
        assert_eq!(out.status.code(), Some(want), "follower {i}: {}", stderr(out));
    }
    // Names are padded to one width, so the output lines up.
    let text = stdout(&outs[0]);
    let bars: Vec<usize> = text.lines().filter_map(|l| l.find(" | ")).collect();
    assert!(bars.windows(2).all(|w| w[0] == w[1]), "{text}");
}

#[test]
fn runlog_running_with_nothing_running_says_so_and_succeeds() {
    let env = Env::new();
    let id = env.start(&["true"]);
    env.wait_ended(&id, SOON);
    let out = env.run("runlog", &["--running"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("no running jobs"), "{}", stderr(&out));
}

#[test]
fn two_runlogs_following_one_job_both_see_all_of_it_and_exit_0() {
    let env = Env::new();
    let id = env.start(&[
        "--name",
        "chatty",
        "sh",
        "-c",
        "i=0; while [ $i -lt 300 ]; do echo line $i; i=$((i+1)); sleep 0.01; done",
    ]);
    let followers: Vec<Child> =
        (0..2).map(|_| env.cmd("runlog").arg(&id).stdout(Stdio::piped()).spawn().expect("starting runlog")).collect();
    assert_eq!(env.state(&id), "running", "the job ended before anyone followed it");
    let outputs: Vec<Output> =
        followers.into_iter().map(|f| f.wait_with_output().expect("waiting for runlog")).collect();
    let log = fs::read(env.job_dir(&id).join("log")).expect("reading the log");
    assert!(String::from_utf8_lossy(&log).contains("line 299\n=== done (exit 0)"), "{}", env.log(&id));
    let shown = env.shown_log(&id).into_bytes();
    for out in outputs {
        assert!(out.status.success(), "a follower failed: {}", stderr(&out));
        assert!(out.stdout == shown, "a follower saw {} of the {} bytes shown", out.stdout.len(), shown.len());
    }
}

#[test]
fn a_jobs_raw_bytes_stay_exact_in_its_log_and_its_name_and_command_never_reach_the_terminal_raw() {
    let env = Env::new();
    let payload: &[u8] = b"\xff\xfe\xc3( half\r\x1b[31mred\x1b[0m\x1b]0;pwned\x07\x1b[2J\xc2\x9b1m\x00end";
    fs::write(env.root.join("payload"), payload).expect("writing the payload");
    let evil = env.root.join("evil\x1b]0;pwned\x07\u{9b}31m.sh");
    write(&evil, "#!/bin/sh\ncat payload\n");
    fs::set_permissions(&evil, fs::Permissions::from_mode(0o755)).expect("chmod");
    let out = env.cmd("run").arg(&evil).args(["\x1b[2J", "\u{9b}2J"]).output().expect("running run");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!has_control_bytes(&out.stdout), "run printed a control character");
    let id = id_of(&out);
    env.wait_ended(&id, SOON);

    let log = fs::read(env.job_dir(&id).join("log")).expect("reading the log");
    let at = log.windows(payload.len()).position(|w| w == payload).expect("the payload is not in the log intact");
    assert!(log[at + payload.len()..].starts_with(b"\n=== done (exit 0)"), "{:?}", String::from_utf8_lossy(&log));
    let out = env.run("runlog", &[&id, "--no-follow"]);
    assert!(out.stdout.windows(payload.len()).any(|w| w == payload), "runlog changed the job's bytes");

    let name = meta(&env, &id)["name"].as_str().unwrap_or_default().to_string();
    assert!(name.contains('\x1b') && name.contains('\u{9b}'), "the name holds the escapes: {name:?}");
    // A --context is kept as given, and shown escaped just the same.
    let out = env.run("job", &["run", "--context", "{\"k\": \"\u{9b}2J\u{7f}\"}", "true"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let with_context = stdout(&out).trim().to_string();
    env.wait_ended(&with_context, SOON);
    let jobs = env.jobs();
    let shown = |id: &str| jobs.iter().find(|j| j["id"] == id).cloned().unwrap_or_default();
    assert_eq!(shown(&id)["name"], name.as_str(), "--json decodes to the name as it is");
    assert_eq!(shown(&with_context)["context"]["k"], "\u{9b}2J\u{7f}", "--json decodes to the context as given");
    for (front, args) in [
        ("runs", vec![]),
        ("runs", vec!["--json"]),
        ("job", vec!["list", "--all"]),
        ("job", vec!["list", "--all", "--json"]),
        ("job", vec!["status"]),
        ("job", vec!["status", &id]),
        ("job", vec!["status", &id, "--json"]),
        ("job", vec!["status", &with_context]),
        ("job", vec!["status", &with_context, "--json"]),
        ("job", vec!["wait", &id]),
        ("job", vec!["stop", &id]),
        ("runrm", vec!["--dry-run"]),
    ] {
        let out = env.run(front, &args);
        assert!(!has_control_bytes(&out.stdout), "{front} {args:?} printed a control character: {}", stdout(&out));
        assert!(!has_control_bytes(&out.stderr), "{front} {args:?} printed a control character: {}", stderr(&out));
    }
}

// --- job logs --------------------------------------------------------------------

#[test]
fn job_logs_prints_the_whole_log_or_its_tail() {
    let env = jobs();
    let id = env.ended("seq 1 200", "seq");
    let all = stdout(&env.cli(&["logs", &id]));
    assert_eq!(all, env.shown_log(&id));
    assert!(all.starts_with("=== seq 1 200\n") && all.contains("\n1\n2\n") && all.contains("\n200\n"), "{all}");
    let tail = stdout(&env.cli(&["logs", &id, "--tail"]));
    let lines: Vec<&str> = tail.lines().collect();
    assert_eq!(lines.len(), 50, "{tail}");
    assert_eq!(lines[0], "152");
    assert!(lines[49].starts_with("=== done (exit 0)"), "{tail}");
    let three = stdout(&env.cli(&["logs", "seq", "--tail", "3"]));
    assert!(three.starts_with("199\n200\n=== done (exit 0)"), "{three}");
    assert_eq!(three.lines().count(), 3);
}

#[test]
fn job_logs_follow_streams_then_exits_0_when_the_job_succeeds() {
    let env = jobs();
    let gate = env.root.join("go");
    let id = env.launch(&[&gated(&gate, 0)]);
    let mut s = Streaming::start({
        let mut c = env.cmd("job");
        c.args(["logs", &id, "--follow"]);
        c
    });
    s.expect_line("first");
    write(&gate, "");
    s.expect_line("second");
    let (rc, lines, err) = s.finish();
    assert_eq!(rc, 0, "{err}");
    assert!(lines.last().is_some_and(|l| l.starts_with("=== done (exit 0)")), "{lines:?}");
}

#[test]
fn job_logs_follow_exits_1_when_the_job_fails() {
    let env = jobs();
    let gate = env.root.join("go");
    let id = env.launch(&[&gated(&gate, 4)]);
    let mut s = Streaming::start({
        let mut c = env.cmd("job");
        c.args(["logs", &id, "--follow", "--tail", "1"]);
        c
    });
    s.expect_line("first");
    write(&gate, "");
    let (rc, lines, _) = s.finish();
    assert_eq!(rc, 1);
    assert!(lines.iter().any(|l| l.starts_with("=== failed (exit 4)")), "{lines:?}");
    assert!(!lines.iter().any(|l| l.starts_with("=== cwd")), "--tail 1 printed the header: {lines:?}");
}

/// Plants an ended job of the old run scripts named `name`, started `ago`
/// (negative: later than now): `NAME_YYYYmmdd_HHMMSS.log` and `.pid`, the
/// pid one that has exited. Returns its id.
fn old_script_job(env: &Env, name: &str, ago: chrono::Duration, log: &str) -> String {
    fs::create_dir_all(&env.store).expect("making the store");
    let mut gone = std::process::Command::new("true").spawn().expect("running true");
    let pid = gone.id();
    gone.wait().expect("reaping true");
    let id = format!("{name}_{}", (chrono::Local::now() - ago).format("%Y%m%d_%H%M%S"));
    write(&env.store.join(format!("{id}.log")), log);
    write(&env.store.join(format!("{id}.pid")), &format!("{pid}\n"));
    id
}

#[test]
fn a_name_finds_the_newest_job_of_that_name_an_old_scripts_one_included() {
    // An older bgrun job, a newer old-script one: the old script's wins.
    let env = Env::new();
    let mine = env.start(&["--name", "long-build", "echo", "from bgrun"]);
    env.wait_ended(&mine, SOON);
    let old = old_script_job(&env, "long-build", chrono::Duration::hours(-1), "Command: make\nfrom the old script\n");
    for (front, args) in [("runlog", &["long-build", "--no-follow"][..]), ("job", &["logs", "long-build"])] {
        let out = env.run(front, args);
        assert!(out.status.success(), "{front} {args:?}: {}", stderr(&out));
        assert!(stdout(&out).contains("from the old script") && !stdout(&out).contains("from bgrun"), "{front}");
    }
    let status = stdout(&env.run("job", &["status", "long-build"]));
    assert!(status.contains(&old) && status.contains("old run scripts"), "{status}");
    let j: serde_json::Value =
        serde_json::from_str(&stdout(&env.run("job", &["status", "long-build", "--json"]))).expect("JSON");
    assert_eq!((j["id"].as_str(), j["backend"].as_str()), (Some(old.as_str()), Some("old run script")), "{j}");
    let out = env.run("runrm", &["long-build"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!env.store.join(format!("{old}.log")).exists(), "the newer, old-script job was removed");
    assert_eq!(env.jobs().len(), 1, "the older bgrun job stays");

    // The reverse: an older old-script job, a newer bgrun one.
    let env = Env::new();
    let old = old_script_job(&env, "long-build", chrono::Duration::hours(1), "Command: make\nfrom the old script\n");
    let mine = env.start(&["--name", "long-build", "echo", "from bgrun"]);
    env.wait_ended(&mine, SOON);
    for (front, args) in [("runlog", &["long-build", "--no-follow"][..]), ("job", &["logs", "long-build"])] {
        let out = env.run(front, args);
        assert!(out.status.success(), "{front} {args:?}: {}", stderr(&out));
        assert!(stdout(&out).contains("from bgrun") && !stdout(&out).contains("from the old script"), "{front}");
    }
    let status = stdout(&env.run("job", &["status", "long-build"]));
    assert!(status.contains(&mine), "{status}");
    let out = env.run("runrm", &["long-build"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(env.jobs().is_empty(), "the newer bgrun job was removed");
    assert!(env.store.join(format!("{old}.log")).exists(), "the older old-script job stays");
}

#[test]
fn a_prefix_that_fits_one_bgrun_job_and_two_old_scripts_ones_is_an_error_listing_all_three() {
    let env = Env::new();
    let mine = env.start(&["--name", "lb", "true"]);
    env.wait_ended(&mine, SOON);
    let older = old_script_job(&env, "lb", chrono::Duration::hours(1), "Command: make\n");
    let newer = old_script_job(&env, "lb", chrono::Duration::hours(-1), "Command: make\n");
    for (front, args) in [("runlog", &["lb_", "--no-follow"][..]), ("job", &["status", "lb_"]), ("runrm", &["lb_"])] {
        let out = env.run(front, args);
        one_line_error(&out, 1, &["matches 3 jobs", &mine, &older, &newer], &format!("{front} {args:?}"));
    }
    assert!(env.job_dir(&mine).is_dir() && env.store.join(format!("{newer}.log")).exists(), "runrm removed a job");
}
