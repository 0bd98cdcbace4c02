//! State planted inside the store by someone who can write it: a link
//! where one of its directories should be (the store's `.queues`, `.keys`,
//! `.ids`, a queue's own directory, its `wait` and `run`), and hostile
//! files of the old run scripts (huge, FIFOs, links). Nothing outside the
//! store is ever touched, and no read is unbounded.

use crate::common::*;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Every entry of `dir` (not recursive): its name, its bytes (or its link
/// target) and its mode.
fn snapshot(dir: &Path) -> BTreeMap<String, (Vec<u8>, u32)> {
    let mut all = BTreeMap::new();
    for e in fs::read_dir(dir).expect("reading the outside directory").flatten() {
        let m = fs::symlink_metadata(e.path()).expect("reading an entry's metadata");
        let bytes = if m.file_type().is_symlink() {
            fs::read_link(e.path()).expect("reading a link").into_os_string().into_encoded_bytes()
        } else if m.is_dir() {
            b"(a directory)".to_vec()
        } else {
            fs::read(e.path()).expect("reading an entry")
        };
        all.insert(e.file_name().to_string_lossy().into_owned(), (bytes, m.permissions().mode()));
    }
    all
}

/// A directory outside the store full of files with dots in their names
/// (taken for waiting entries naming no job), digits (taken for slots) and
/// links, as a queue's, the keys' and the ids' directories hold.
fn outside(env: &Env) -> std::path::PathBuf {
    let dir = env.root.join("outside");
    fs::create_dir(&dir).expect("making the outside directory");
    for name in ["notes.txt", "00000000000000000001.gone", "a.b.c", "0", "1", "7", "lock", "conf"] {
        write(&dir.join(name), &format!("{name}: keep me\n"));
    }
    std::os::unix::fs::symlink("gone_20250101_000000", dir.join("2")).expect("a link in the outside directory");
    std::os::unix::fs::symlink("x", dir.join("6b")).expect("a link named as a key");
    dir
}

/// Runs `c` with a deadline (killed past it); its output.
fn bounded(mut c: Command, within: Duration, what: &str) -> Output {
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().expect("starting a command");
    let until = Instant::now() + within;
    while child.try_wait().expect("waiting for a command").is_none() {
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} took more than {within:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().expect("reading a command's output")
}

#[test]
fn a_link_planted_at_any_directory_level_of_the_store_or_a_queue_is_never_followed_by_any_command() {
    for level in [".queues", "QUEUE", "QUEUE/wait", "QUEUE/run", ".keys", ".ids"] {
        let env = Env::new();
        let ended = env.start(&["--name", "ended", "true"]);
        env.wait_ended(&ended, SOON);
        assert!(env.run("job", &["queue", "q", "--pause"]).status.success(), "job queue q --pause");
        let queued = env.start(&["-q", "q", "--name", "queued", "true"]);
        assert!(env.run("job", &["run", "--key", "k", "true"]).status.success(), "job run --key");
        let removed = env.start(&["--name", "removed", "true"]);
        env.wait_ended(&removed, SOON);
        assert!(env.run("runrm", &[&removed]).status.success(), "runrm (making .ids)");
        let queues = env.store.join(".queues");
        let queue = fs::read_dir(&queues).expect("reading .queues").flatten().next().expect("a queue").path();
        let rel = level.replace("QUEUE", &format!(".queues/{}", queue.file_name().expect("a name").to_string_lossy()));
        let at = env.store.join(&rel);
        let out_dir = outside(&env);
        let before = snapshot(&out_dir);
        fs::rename(&at, env.root.join("moved")).expect("moving the real directory away");
        std::os::unix::fs::symlink(&out_dir, &at).expect("planting the link");

        let commands: [(&str, &[&str]); 17] = [
            ("runs", &[]),
            ("runs", &["--json"]),
            ("runlog", &[&ended, "--no-follow"]),
            ("job", &["list", "--all"]),
            ("job", &["status"]),
            ("job", &["status", &queued]),
            ("job", &["queue"]),
            ("job", &["queue", "q"]),
            ("job", &["queue", "q", "--slots", "2"]),
            ("job", &["queue", "q", "--resume"]),
            ("run", &["-q", "q", "true"]),
            ("run", &["--after", &ended, "true"]),
            ("job", &["run", "--key", "k", "true"]),
            ("job", &["run", "--key", "other", "true"]),
            ("runrm", &[&ended]),
            ("runrm", &[]),
            ("job", &["clean", "--all"]),
        ];
        let mut named = false;
        for (front, args) in commands {
            let out = bounded(
                {
                    let mut c = env.cmd(front);
                    c.args(args);
                    c
                },
                SOON,
                &format!("{front} {args:?} with {rel} a link"),
            );
            assert_ne!(out.status.code(), Some(101), "{front} {args:?} panicked: {}", stderr(&out));
            named |= stderr(&out).contains(&at.display().to_string());
            assert_eq!(snapshot(&out_dir), before, "{front} {args:?} touched what {rel}, a link, points to");
        }
        assert!(named, "no command named the link planted as {rel}");
        assert!(fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()), "{rel}: the link itself is kept");
    }
}

#[test]
fn old_script_files_that_are_huge_fifos_or_links_are_named_and_never_read_whole() {
    let env = Env::new();
    let ended = env.start(&["--name", "ended", "true"]);
    env.wait_ended(&ended, SOON);
    let huge = env.store.join("huge_20250101_000000.pid");
    fs::File::create(&huge).expect("making a pid file").set_len(1 << 30).expect("a sparse 1 GiB pid file");
    write(&env.store.join("huge_20250101_000000.log"), "Command: huge\n");
    let fifo_pid = env.store.join("fifo_20250101_000001.pid");
    let fifo_log = env.store.join("fifo_20250101_000001.log");
    for f in [&fifo_pid, &fifo_log] {
        nix::unistd::mkfifo(f, nix::sys::stat::Mode::S_IRWXU).expect("making a FIFO");
    }
    let link_pid = env.store.join("link_20250101_000002.pid");
    std::os::unix::fs::symlink("/dev/zero", &link_pid).expect("a pid file linked to /dev/zero");
    std::os::unix::fs::symlink("/dev/zero", env.store.join("link_20250101_000002.log")).expect("a log link");
    for (front, args) in [("runs", vec![]), ("runs", vec!["--json"]), ("job", vec!["list", "--all"])] {
        let started = Instant::now();
        let out = bounded(
            {
                let mut c = env.cmd(front);
                c.args(&args);
                c
            },
            Duration::from_secs(5),
            &format!("{front} {args:?}"),
        );
        assert!(out.status.success(), "{front} {args:?}: {}", stderr(&out));
        assert!(started.elapsed() < Duration::from_secs(3), "{front} {args:?} took {:?}", started.elapsed());
        for bad in [&huge, &fifo_pid, &fifo_log, &link_pid] {
            assert!(
                stderr(&out).contains(&bad.display().to_string()),
                "{front} {args:?} does not name {}: {}",
                bad.display(),
                stderr(&out)
            );
        }
        assert!(stdout(&out).contains(&ended), "{front} {args:?} lost the other jobs: {}", stdout(&out));
    }
}

#[test]
fn a_link_planted_at_a_watchers_temporary_name_in_a_job_directory_is_never_followed() {
    let env = Env::new();
    // The watcher publishes meta.json (the end's times and usage) and,
    // under a cap, `dropped` by write-temp-then-rename, under the name
    // `.NAME.PID.tmp`: its pid is in meta.json, so the name is known while
    // the job runs. A link planted there must not be written through.
    let victims: Vec<_> = ["meta.json", "dropped"].iter().map(|n| (n, env.root.join(format!("victim-{n}")))).collect();
    for (_, v) in &victims {
        write(v, "precious\n");
        fs::set_permissions(v, fs::Permissions::from_mode(0o644)).unwrap();
    }
    let gate = env.root.join("gate");
    let script = format!(
        "while [ ! -e '{}' ]; do sleep 0.02; done; head -c 2000000 /dev/zero | tr '\\0' x; echo",
        gate.display()
    );
    let id = env.start(&["--log-max", "64K", "sh", "-c", &script]);
    let watcher = int(&meta(&env, &id)["watcher_pid"]);
    for (name, v) in &victims {
        std::os::unix::fs::symlink(v, env.job_dir(&id).join(format!(".{name}.{watcher}.tmp"))).expect("planting");
    }
    write(&gate, "");
    // (Not `wait_ended`: a job whose meta.json became the planted link is
    // no longer listed.)
    wait_until(SOON, "the watcher to leave", || !Path::new(&format!("/proc/{watcher}")).exists());
    let mut through = Vec::new();
    for (name, v) in &victims {
        let now = fs::read_to_string(v).unwrap_or_default();
        let mode = fs::metadata(v).map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
        if (now.as_str(), mode) != ("precious\n", 0o644) {
            let head: String = now.chars().take(40).collect();
            through.push(format!(".{name}.{watcher}.tmp (the file outside now: mode {mode:o}, {head:?}…)"));
        }
    }
    assert!(through.is_empty(), "the watcher wrote through links planted at {}", through.join(", "));
}

#[test]
fn a_link_planted_in_place_of_a_running_jobs_directory_is_never_written_through() {
    let env = Env::new();
    let victim = env.root.join("victim");
    fs::create_dir(&victim).expect("making the outside directory");
    write(&victim.join("keep"), "precious\n");
    let gate = env.root.join("gate");
    let script = format!("while [ ! -e '{}' ]; do sleep 0.02; done; seq 1 100000; echo", gate.display());
    let id = env.start(&["--log-max", "64K", "sh", "-c", &script]);
    let watcher = int(&meta(&env, &id)["watcher_pid"]);
    // The running job's directory moved aside, a link to a directory
    // outside the store in its place.
    fs::rename(env.job_dir(&id), env.root.join("moved")).expect("moving the job's directory");
    std::os::unix::fs::symlink(&victim, env.job_dir(&id)).expect("planting the link");
    write(&gate, "");
    wait_until(SOON, "the watcher to leave", || !Path::new(&format!("/proc/{watcher}")).exists());
    let mut names: Vec<String> =
        fs::read_dir(&victim).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(
        names,
        ["keep"],
        "the watcher wrote into {} through the link planted as its job's directory",
        victim.display()
    );
}
