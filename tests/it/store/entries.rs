//! Entries of the store that are not what they claim: damaged, foreign,
//! planted links and fifos, hostile names and control bytes. Each is named
//! and skipped, never followed, never hangs a command, never reaches the
//! terminal raw; a big store lists every job once.

use crate::common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn copy_job(from: &Path, to: &Path) {
    fs::create_dir(to).expect("making a job directory");
    for f in ["cmd", "meta.json", "log", "pid", "status"] {
        fs::copy(from.join(f), to.join(f)).expect("copying a job file");
    }
}

/// The harness of [`limited`]: forks the command (from this small
/// process, not from the test binary, whose resident pages a child forked
/// from it counts as its own peak until it execs), limits its address
/// space to 1 GiB, its stdout to a file, kills it after 20 s; prints its
/// exit code and peak resident memory (KiB).
const HARNESS: &str = r#"
import os, resource, signal, sys
out, argv = sys.argv[1], sys.argv[2:]
pid = os.fork()
if pid == 0:
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
    os.dup2(os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 1)
    os.execv(argv[0], argv)
signal.signal(signal.SIGALRM, lambda *_: os.kill(pid, signal.SIGKILL))
signal.alarm(20)
_, status, usage = os.wait4(pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
"#;

/// `front args…` run as `env.cmd` would, its stdout into `printed`, its
/// address space limited to 1 GiB (an unbounded read would grow until it
/// hit that, and fail), killed after 20 s: its exit code and peak resident
/// memory in KiB; None (the test reported not run) without python3.
fn limited(env: &Env, front: &str, args: &[&str], printed: &Path) -> Option<(i32, i64)> {
    if !need_tool("python3") {
        return None;
    }
    let like = env.cmd(front);
    let mut c = std::process::Command::new("python3");
    for (k, v) in like.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    if let Some(dir) = like.get_current_dir() {
        c.current_dir(dir);
    }
    c.args(["-c", HARNESS]).arg(printed).arg(like.get_program()).args(args).stdin(Stdio::null());
    let out = c.output().expect("running python3");
    let text = stdout(&out);
    let mut words = text.split_whitespace().map(|w| w.parse::<i64>().expect("a number"));
    Some((words.next().expect("an exit code") as i32, words.next().expect("a peak")))
}

fn mkfifo(path: &Path) {
    let _ = fs::remove_file(path);
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
}

/// Bytes a terminal may act on: C0 controls but newline, DEL, and the C1
/// controls as UTF-8 (U+0080 to U+009F: `C2 80` to `C2 9F`).
fn raw_controls(bytes: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    for (i, &b) in bytes.iter().enumerate() {
        if (b < 0x20 && b != b'\n')
            || b == 0x7f
            || (b == 0xc2 && bytes.get(i + 1).is_some_and(|n| (0x80..=0x9f).contains(n)))
        {
            let from = i.saturating_sub(30);
            found.push(String::from_utf8_lossy(&bytes[from..(i + 10).min(bytes.len())]).escape_debug().to_string());
        }
    }
    found
}

// --- damaged and foreign entries -----------------------------------------------

#[test]
fn damaged_and_foreign_entries_are_named_and_skipped_and_a_planted_link_is_removed_alone() {
    let env = Env::new();
    let healthy = launch(&env, &["echo", "healthy"]);
    let broken_meta = launch(&env, &["--name", "broken-meta", "true"]);
    let bad_status = launch(&env, &["--name", "bad-status", "true"]);
    for j in [&healthy, &broken_meta, &bad_status] {
        env.wait_ended(&j.id, SOON);
    }
    let meta_path = env.job_dir(&broken_meta.id).join("meta.json");
    let bytes = std::fs::read(&meta_path).expect("reading meta.json");
    std::fs::write(&meta_path, &bytes[..bytes.len() / 2]).expect("truncating meta.json");
    write(&env.job_dir(&bad_status.id).join("status"), "garbage \u{1}\n");
    let empty = "empty_20250101_000000";
    std::fs::create_dir(env.store.join(empty)).expect("making an empty directory");
    write(&env.store.join("stray.log"), "an old script's log\n");
    let outside = env.root.join("outside");
    std::fs::create_dir(&outside).expect("making a directory outside the store");
    write(&outside.join("precious"), "keep me\n");
    let link = "elsewhere_20250101_000000";
    std::os::unix::fs::symlink(&outside, env.store.join(link)).expect("planting a link");
    let damaged = [broken_meta.id.as_str(), bad_status.id.as_str(), empty, link];

    for args in [vec![], vec!["--json"]] {
        let out = env.run("runs", &args);
        assert!(out.status.success(), "runs {args:?} failed: {}", stderr(&out));
        let err = stderr(&out);
        for name in damaged {
            assert_eq!(err.lines().filter(|l| l.contains(name)).count(), 1, "runs {args:?} stderr: {err}");
        }
        let text = stdout(&out);
        assert!(text.contains(&healthy.id), "runs {args:?}: {text}");
        for name in damaged.iter().chain(&["stray.log"]) {
            assert!(!text.contains(name), "runs {args:?} listed {name}: {text}");
        }
    }
    let ids: Vec<Value> = env.jobs().iter().map(|j| j["id"].clone()).collect();
    assert_eq!(ids, vec![Value::from(healthy.id.as_str())]);

    let out = env.run("runrm", &[]);
    assert!(out.status.success(), "runrm failed: {}", stderr(&out));
    assert!(!env.job_dir(&healthy.id).exists());
    assert!(outside.join("precious").is_file(), "runrm reached through the link");

    let out = env.run("runrm", &[link]);
    assert!(out.status.success(), "runrm {link} failed: {}", stderr(&out));
    assert!(std::fs::symlink_metadata(env.store.join(link)).is_err(), "the link is still there");
    assert_eq!(std::fs::read_to_string(outside.join("precious")).ok().as_deref(), Some("keep me\n"));
}

// --- a big store -----------------------------------------------------------------

#[test]
fn a_big_store_lists_every_job_once_in_order_and_names_each_damaged_one() {
    let env = Env::new();
    let model = launch(&env, &["sh", "-c", "exit 3"]);
    env.wait_ended(&model.id, SOON);
    let model_dir = env.job_dir(&model.id);
    // The watcher's last write: ended_at in meta.json, after `status`.
    wait_until(SOON, "ended_at in meta.json", || {
        std::fs::read(model_dir.join("meta.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .is_some_and(|m| m["ended_at"].is_string())
    });
    let files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&model_dir)
        .expect("reading the model job")
        .flatten()
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).expect("reading a job file")))
        .filter(|(name, _)| !name.starts_with('.'))
        .collect();
    let mut meta: Value =
        serde_json::from_slice(&files.iter().find(|(n, _)| n == "meta.json").expect("meta.json").1).expect("JSON");
    std::fs::remove_dir_all(&model_dir).expect("removing the model job");
    // Enough jobs that the listing reads them with several threads.
    let n = 1500;
    let mut ids = Vec::new();
    for i in 0..n {
        let id = format!("copy_20250101_{:02}{:02}{:02}", i / 3600, i / 60 % 60, i % 60);
        meta["id"] = Value::from(id.as_str());
        meta["started_at"] =
            Value::from(format!("2025-01-01T{:02}:{:02}:{:02}.000+00:00", i / 3600, i / 60 % 60, i % 60));
        let dir = env.store.join(&id);
        std::fs::create_dir(&dir).expect("making a job directory");
        for (name, bytes) in &files {
            let bytes = if name == "meta.json" { serde_json::to_vec(&meta).expect("JSON") } else { bytes.clone() };
            std::fs::write(dir.join(name), bytes).expect("writing a job file");
        }
        ids.push(id);
    }
    let (truncated, garbage, linked) = (ids[700].clone(), ids[1200].clone(), ids[1499].clone());
    let meta_path = env.job_dir(&truncated).join("meta.json");
    let bytes = std::fs::read(&meta_path).expect("reading meta.json");
    std::fs::write(&meta_path, &bytes[..bytes.len() / 2]).expect("truncating meta.json");
    write(&env.job_dir(&garbage).join("status"), "done exit 0 never\n");
    let meta_path = env.job_dir(&linked).join("meta.json");
    std::fs::rename(&meta_path, env.root.join("elsewhere.json")).expect("moving meta.json out");
    std::os::unix::fs::symlink(env.root.join("elsewhere.json"), &meta_path).expect("planting a link");

    let out = env.run("runs", &["--json"]);
    assert!(out.status.success(), "runs --json failed: {}", stderr(&out));
    let err = stderr(&out);
    for id in [&truncated, &garbage, &linked] {
        assert_eq!(err.lines().filter(|l| l.contains(id.as_str())).count(), 1, "{id} in stderr: {err}");
    }
    assert_eq!(err.lines().count(), 3, "stderr: {err}");
    let jobs: Vec<Value> = serde_json::from_slice(&out.stdout).expect("runs --json prints JSON");
    let listed: Vec<&str> = jobs.iter().map(|j| j["id"].as_str().unwrap_or_default()).collect();
    let expected: Vec<&str> = ids
        .iter()
        .map(String::as_str)
        .filter(|id| ![&truncated, &garbage, &linked].contains(&&id.to_string()))
        .collect();
    assert_eq!(listed, expected, "every readable job once, oldest first");
    assert!(jobs.iter().all(|j| j["state"] == "failed" && j["exit_code"] == 3), "a copy lost its end");

    let out = env.run("runs", &[]);
    assert!(out.status.success(), "runs failed: {}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), n - 3);
}

// --- hostile store contents -----------------------------------------------------------

#[test]
fn hostile_store_entries_are_named_on_stderr_while_every_listing_shows_the_rest_and_links_are_never_followed() {
    let env = Env::new();
    let good = env.start(&["--name", "good", "echo", "healthy"]);
    let logged = env.start(&["--name", "linked-log", "true"]);
    let inner = env.start(&["--name", "inner-link", "true"]);
    let model = env.start(&["--name", "model", "true"]);
    for id in [&good, &logged, &inner, &model] {
        env.wait_ended(id, SOON);
        wait_watcher_gone(&env, id);
    }
    let outside = env.root.join("outside");
    fs::create_dir(&outside).expect("making a directory outside the store");
    write(&outside.join("precious"), "keep me\n");
    copy_job(&env.job_dir(&model), &outside.join("looks-like-a-job"));
    let (store, model_dir) = (&env.store, env.job_dir(&model));

    // Damaged: each must be named on stderr and left out.
    let mut damaged: Vec<(OsString, String)> = Vec::new();
    let mut plant = |name: &[u8], shown: &str| {
        let dir = store.join(std::ffi::OsStr::from_bytes(name));
        copy_job(&model_dir, &dir);
        damaged.push((OsString::from_vec(name.to_vec()), shown.to_string()));
        dir
    };
    let d = plant(b"truncated_meta", "truncated_meta");
    let bytes = fs::read(d.join("meta.json")).expect("reading meta.json");
    fs::write(d.join("meta.json"), &bytes[..bytes.len() / 3]).expect("truncating meta.json");
    let d = plant(b"binary_meta", "binary_meta");
    fs::write(d.join("meta.json"), b"\x00\xff\x1b[2J\x89PNG").expect("writing garbage");
    let d = plant(b"huge_meta", "huge_meta");
    fs::File::create(d.join("meta.json")).and_then(|f| f.set_len(8 << 30)).expect("making a sparse 8 GiB meta.json");
    let d = plant(b"garbage_status", "garbage_status");
    fs::write(d.join("status"), b"done exit \x1b[31m0 \x00 yesterday\n").expect("writing garbage");
    plant(b"not_utf8_\xff\xfe", "not_utf8_\u{fffd}\u{fffd}");
    plant(b"newline\nand_\xc3", r"newline\nand_");
    let empty = store.join("empty_20260101_000000");
    fs::create_dir(&empty).expect("making an empty job directory");
    damaged.push((empty.file_name().expect("a name").into(), "empty_20260101_000000".into()));
    let link = store.join("link_20260101_000000");
    std::os::unix::fs::symlink(outside.join("looks-like-a-job"), &link).expect("planting a link");
    damaged.push((link.file_name().expect("a name").into(), "link_20260101_000000".into()));

    // Whole, but hostile: a log that is a link out of the store, a link to
    // a directory outside inside a job, a name holding an escape sequence.
    fs::remove_file(env.job_dir(&logged).join("log")).expect("removing a log");
    std::os::unix::fs::symlink(outside.join("precious"), env.job_dir(&logged).join("log"))
        .expect("planting a log link");
    std::os::unix::fs::symlink(&outside, env.job_dir(&inner).join("cache")).expect("planting a link to a directory");
    let escaped = store.join("esc_\x1b]0;pwned\x07_20260101_000000");
    copy_job(&model_dir, &escaped);

    let listings: [(&str, &[&str]); 7] = [
        ("runs", &[]),
        ("runs", &["--json"]),
        ("job", &["list", "--all"]),
        ("job", &["list", "--all", "--json"]),
        ("job", &["status"]),
        ("runlog", &["--no-follow"]),
        ("runrm", &["--dry-run"]),
    ];
    for (front, args) in listings {
        let started = Instant::now();
        let out = env.run(front, args);
        let what = format!("{front} {args:?}");
        assert!(out.status.success(), "{what} failed: {}", stderr(&out));
        assert!(started.elapsed() < SOON, "{what} took {:?}", started.elapsed());
        let (text, err) = (stdout(&out), stderr(&out));
        assert!(!has_control_bytes(&out.stdout), "{what} printed a control character: {text:?}");
        assert!(!has_control_bytes(&out.stderr), "{what} printed a control character: {err:?}");
        for (_, shown) in &damaged {
            let lines = err.lines().filter(|l| l.contains(shown.as_str()) && l.contains("damaged")).count();
            assert_eq!(lines, 1, "{what} did not name {shown} once on stderr: {err}");
            assert!(!text.contains(shown.as_str()), "{what} listed {shown}: {text}");
        }
        if front != "runlog" && args != ["status"] {
            for id in [&good, &logged, &inner, &model] {
                assert!(text.contains(id.as_str()), "{what} left out {id}: {text}");
            }
            assert!(
                text.contains(r"esc_\u{1b}]0;pwned\u{7}_") || text.contains(r"esc_\u001b]0;pwned\u0007_"),
                "{what}: {text}"
            );
        }
    }

    let out = env.run("runrm", &[&logged, &inner]);
    assert!(out.status.success(), "runrm: {}", stderr(&out));
    let out = env.run("runrm", &["link_20260101_000000"]);
    assert!(out.status.success(), "runrm of a planted link: {}", stderr(&out));
    assert!(fs::symlink_metadata(&link).is_err(), "the planted link is still there");
    let out = env.run("runrm", &[]);
    assert!(out.status.success(), "runrm: {}", stderr(&out));
    assert_eq!(fs::read_to_string(outside.join("precious")).ok().as_deref(), Some("keep me\n"));
    assert_eq!(
        entries(&outside.join("looks-like-a-job")).len(),
        5,
        "a removal reached through a link into a directory outside the store"
    );
    let left: BTreeSet<OsString> = entries(store).into_iter().filter(|n| n != ".ids").collect();
    let want: BTreeSet<OsString> =
        damaged.iter().map(|(n, _)| n.clone()).filter(|n| n != "link_20260101_000000").collect();
    assert_eq!(left, want, "runrm removed a damaged entry nobody named, or left a finished job");
}

// --- entries that are not what they claim ----------------------------------------

#[test]
fn a_fifo_in_place_of_any_job_file_hangs_no_command_and_a_bad_meta_or_status_is_named_as_damaged() {
    let env = Env::new();
    let base = finished(&env, "base");
    let from = env.job_dir(&base);
    for file in ["meta.json", "status", "pid", "notified", "log"] {
        let id = format!("fifo-{}_20250101_000000", file.replace('.', "-"));
        let dir = plant(&from, &env.store, OsStr::new(&id), |m| m["notify_topic"] = "t".into());
        if file == "pid" {
            fs::remove_file(dir.join("status")).expect("removing status");
        }
        mkfifo(&dir.join(file));
        let commands: [(&str, Vec<&str>); 7] = [
            ("runs", vec![]),
            ("runs", vec!["--json"]),
            ("runs", vec!["--complete-ids"]),
            ("runlog", vec![&id, "--no-follow"]),
            ("job", vec!["status", &id]),
            ("job", vec!["wait", &id, "--timeout", "5s"]),
            ("job", vec!["logs", &id, "--tail", "3"]),
        ];
        for (name, args) in commands {
            let mut c = env.cmd(name);
            c.args(&args);
            let out = output_within(c, Duration::from_secs(15), &format!("{name} {args:?} with a FIFO as {file}"));
            let err = stderr(&out);
            assert!(err.lines().count() <= 2, "{name} {args:?}, FIFO {file}: {err}");
            if matches!(file, "meta.json" | "status") && name == "runs" && args.is_empty() {
                assert!(err.contains(&id) && err.contains("damaged"), "FIFO {file}: {err}");
                assert!(stdout(&out).contains(&base), "the listing goes on: {}", stdout(&out));
            }
            if file == "log" && name == "runlog" {
                assert_eq!(out.status.code(), Some(1), "{err}");
                assert!(err.contains("not a regular file") && err.contains("log"), "{err}");
            }
        }
        fs::remove_file(dir.join(file)).expect("removing the FIFO");
        let out = env.run("runrm", &[&id]);
        assert!(out.status.success(), "runrm {id}: {}", stderr(&out));
    }
}

#[test]
fn a_pid_file_linked_to_dev_zero_costs_a_listing_nothing() {
    let env = Env::new();
    let base = finished(&env, "base");
    let dir = plant(&env.job_dir(&base), &env.store, OsStr::new("zero_20250101_000000"), |_| {});
    fs::remove_file(dir.join("status")).expect("removing status");
    fs::remove_file(dir.join("pid")).expect("removing pid");
    std::os::unix::fs::symlink("/dev/zero", dir.join("pid")).expect("planting a link");
    for args in [vec![], vec!["--json"]] {
        let printed = env.root.join("printed");
        let started = Instant::now();
        let Some((code, max_rss_kib)) = limited(&env, "runs", &args, &printed) else { return };
        assert_eq!(code, 0, "runs {args:?} failed");
        assert!(started.elapsed() < Duration::from_secs(5), "runs took {:?}", started.elapsed());
        assert!(max_rss_kib < 64 * 1024, "runs {args:?} grew to {max_rss_kib} KiB");
        let text = fs::read_to_string(&printed).expect("reading what runs printed");
        assert!(text.len() < 8192, "runs printed {} bytes", text.len());
        assert!(text.contains("zero_20250101_000000"), "{text}");
    }
}

// --- every printed byte is safe ------------------------------------------------------

#[test]
fn no_command_prints_a_raw_control_byte_from_a_planted_entry_a_key_or_the_stores_path() {
    let env = Env::new();
    let store = env.root.join("st\x1b[31mre");
    let cmd = |name: &str| {
        let mut c = env.cmd(name);
        c.env("RUN_DIR", &store);
        c
    };
    let out = cmd("run").args(["--name", "base", "true"]).output().expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    let base = stdout(&out).split_whitespace().next().expect("an id").to_string();
    let mut c = cmd("job");
    c.args(["wait", &base]);
    output_within(c, SOON, "job wait");
    // The watcher rewrites meta.json after `status` (a temporary file, then
    // a rename): copy the directory once it is gone.
    let pid = meta_at(&store.join(&base))["watcher_pid"].as_i64().expect("a watcher pid");
    wait_until(SOON, "the watcher to exit", || !pid_alive(pid));
    let evil = "evil\x1b]0;pwn\x07\u{9b}2J\x7f_20250101_000000";
    let dir = plant(&store.join(&base), &store, OsStr::new(evil), |m| {
        m["name"] = "n\x1b[2Jame\u{9b}1m".into();
        m["command"] = "echo \x1b[31mred\u{85}".into();
        m["cwd"] = "/tmp/\x1b[1mcwd".into();
        m["project"] = "/tmp/\x1b[1mcwd".into();
        m["host"] = "h\x1bost".into();
        m["notify_topic"] = "top\x1bic".into();
        m["key"] = "k\x1b[5m".into();
    });
    fs::write(dir.join("status"), "failed exit 3 2025-01-01T00:00:01.000+00:00\n").expect("status");
    fs::write(dir.join("notified"), "failed: HTTP 500: \x1b[2J\u{9b}boom\n").expect("notified");
    fs::write(dir.join("log"), "=== plain log\n").expect("log");
    fs::create_dir(store.join("dam\x1b[7maged_20250101_000000")).expect("a damaged entry");
    let keys = store.join(".keys");
    fs::create_dir_all(&keys).expect(".keys");
    std::os::unix::fs::symlink(evil, keys.join("6b")).expect("a key link"); // the key "k"

    let nosuch = "no\x1b[31msuch";
    let runs: Vec<(&str, Vec<&str>)> = vec![
        ("runs", vec![]),
        ("runs", vec!["--json"]),
        ("runs", vec!["--complete-ids"]),
        ("job", vec!["list", "--all"]),
        ("job", vec!["list", "--all", "--json"]),
        ("job", vec!["status"]),
        ("job", vec!["status", "--json"]),
        ("job", vec!["status", evil]),
        ("job", vec!["status", evil, "--json"]),
        ("job", vec!["status", nosuch]),
        ("job", vec!["logs", evil]),
        ("runlog", vec![evil, "--no-follow"]),
        ("runlog", vec![nosuch]),
        ("runlog", vec![]),
        ("job", vec!["stop", evil]),
        ("job", vec!["wait", evil]),
        ("job", vec!["wait", nosuch]),
        ("job", vec!["run", "--key", "k", "true"]),
        ("job", vec!["clean", "--all", "--dry-run"]),
        ("runrm", vec!["--dry-run"]),
        ("runrm", vec![nosuch]),
        ("runrm", vec![evil]),
        ("runs", vec![]),
    ];
    for (name, args) in runs {
        let mut c = cmd(name);
        c.args(&args);
        let out = output_within(c, SOON, name);
        for (what, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
            let found = raw_controls(bytes);
            assert!(found.is_empty(), "{name} {args:?}: raw control bytes on {what}: {found:?}");
        }
    }
    assert!(!dir.exists(), "runrm removed the planted job");
}

#[test]
fn an_ended_job_holding_a_deeply_nested_foreign_tree_is_removed_whole() {
    let env = Env::new();
    let id = finished(&env, "deep");
    // A foreign tree inside the job's directory, 30,000 directories deep
    // (made by descriptor: no path is that long).
    let mut fd = fs::File::open(env.job_dir(&id)).expect("opening the job's directory");
    let name = c"d";
    for _ in 0..30_000 {
        use std::os::fd::{AsRawFd, FromRawFd};
        // SAFETY: mkdirat and openat with a valid descriptor and a C string.
        let next = unsafe {
            assert_eq!(libc::mkdirat(fd.as_raw_fd(), name.as_ptr(), 0o700), 0, "mkdirat");
            libc::openat(fd.as_raw_fd(), name.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY)
        };
        assert!(next >= 0, "openat");
        // SAFETY: `next` is a descriptor this test just opened.
        fd = unsafe { fs::File::from_raw_fd(next) };
    }
    drop(fd);
    let out = env.run("runrm", &[&id]);
    let left: Vec<OsString> = entries(&env.store).into_iter().filter(|n| n != ".ids").collect();
    // What is left is flattened before anything else walks it (the test's
    // own clean-up would overflow its stack).
    for name in &left {
        flatten(&env.store.join(name));
    }
    assert!(
        out.status.success() && left.is_empty(),
        "runrm {id}: exit {:?}, left {left:?}: {}",
        out.status.code(),
        stderr(&out)
    );
}

/// Removes the chain of directories `d/d/d/…` under `dir` with a constant
/// number of descriptors and no recursion: the grandchild is moved up in
/// place of its emptied parent, again and again.
fn flatten(dir: &Path) {
    use std::os::fd::AsRawFd;
    let Ok(top) = fs::File::open(dir) else { return };
    let (d, x) = (c"d", c"x");
    loop {
        // SAFETY: openat, renameat, unlinkat and close on descriptors this
        // function holds, with C strings.
        unsafe {
            let child = libc::openat(top.as_raw_fd(), d.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY);
            if child < 0 {
                return;
            }
            let moved = libc::renameat(child, d.as_ptr(), top.as_raw_fd(), x.as_ptr()) == 0;
            libc::close(child);
            libc::unlinkat(top.as_raw_fd(), d.as_ptr(), libc::AT_REMOVEDIR);
            if !moved {
                return;
            }
            libc::renameat(top.as_raw_fd(), x.as_ptr(), top.as_raw_fd(), d.as_ptr());
        }
    }
}
