//! The store against what is planted in it or shared with it (issue 16,
//! classes 3 to 7): jobs of other hosts and pid namespaces, entries that are
//! not what they claim, the store's owner and modes, control characters in
//! every printed byte, and secrets a server echoes back.
//!
//! The pid-namespace test runs inside user and pid namespaces (`unshare`),
//! so it changes nothing on the host.

mod common;

use common::*;
use serde_json::Value;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// For what normally takes milliseconds (the machine is shared and slow).
const SOON: Duration = Duration::from_secs(20);

// --- helpers -------------------------------------------------------------------

/// Runs `c` to completion, or kills it and fails after `within`: a command
/// that hangs on a planted entry fails the test instead of hanging it.
fn within(mut c: Command, within: Duration, what: &str) -> Output {
    let child = c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("starting a command");
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(within) {
        Ok(out) => out.expect("waiting for a command"),
        Err(_) => {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            panic!("{what} did not finish within {within:?}");
        }
    }
}

/// A finished job made by `run --name NAME true`; returns its id.
fn finished(env: &Env, name: &str) -> String {
    let id = env.start(&["--name", name, "true"]);
    assert_eq!(env.wait_ended(&id, SOON)["state"], "done");
    wait_watcher_gone(env, &id);
    id
}

fn meta(dir: &Path) -> Value {
    serde_json::from_slice(&fs::read(dir.join("meta.json")).expect("reading meta.json")).expect("meta.json is JSON")
}

fn wait_watcher_gone(env: &Env, id: &str) {
    let pid = meta(&env.job_dir(id))["watcher_pid"].as_i64().expect("a watcher pid");
    wait_until(SOON, "the watcher to exit", || !pid_alive(pid));
}

/// A copy of the job directory `from` under the name `id` in `store`,
/// with `edit` applied to its meta.json.
fn plant(from: &Path, store: &Path, id: &OsStr, edit: impl FnOnce(&mut Value)) -> PathBuf {
    let to = store.join(id);
    fs::create_dir(&to).expect("making a planted job directory");
    for e in fs::read_dir(from).expect("reading a job directory").flatten() {
        fs::copy(e.path(), to.join(e.file_name())).expect("copying a job file");
    }
    let mut m = meta(&to);
    m["id"] = Value::String(id.to_string_lossy().into_owned());
    edit(&mut m);
    fs::write(to.join("meta.json"), serde_json::to_vec_pretty(&m).expect("JSON")).expect("writing meta.json");
    to
}

/// Waits for `child` (never leaving it behind: it is killed after 20 s);
/// returns its exit code and its peak resident memory in KiB.
fn wait_with_rusage(child: Child) -> (i32, i64) {
    let pid = child.id() as i32;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let d = done.clone();
    std::thread::spawn(move || {
        let until = Instant::now() + SOON;
        while !d.load(std::sync::atomic::Ordering::SeqCst) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        if !d.load(std::sync::atomic::Ordering::SeqCst) {
            // SAFETY: kill with plain integers; the child is not reaped yet.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    });
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid, and wait4 fills it in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child, with valid pointers.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(r, pid, "wait4");
    std::mem::forget(child); // reaped here, not by std
    let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { -1 };
    (code, usage.ru_maxrss)
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

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).expect("reading a mode").permissions().mode() & 0o7777
}

/// Every entry under `dir`, links left out, with its mode.
fn modes(dir: &Path) -> Vec<(PathBuf, u32, bool)> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).expect("reading a directory").flatten() {
        let m = fs::symlink_metadata(e.path()).expect("stat");
        if m.is_symlink() {
            continue;
        }
        out.push((e.path(), m.permissions().mode() & 0o7777, m.is_dir()));
        if m.is_dir() {
            out.extend(modes(&e.path()));
        }
    }
    out
}

// --- 4. entries that are not what they claim ----------------------------------------

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
            let out = within(c, Duration::from_secs(15), &format!("{name} {args:?} with a FIFO as {file}"));
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
        let mut c = env.cmd("runs");
        c.args(&args).stdout(fs::File::create(&printed).expect("a file for stdout")).stderr(Stdio::null());
        // An unbounded read would grow until it hit this (and fail).
        // SAFETY: setrlimit is async-signal-safe.
        unsafe {
            c.pre_exec(|| {
                let lim = libc::rlimit { rlim_cur: 1 << 30, rlim_max: 1 << 30 };
                if libc::setrlimit(libc::RLIMIT_AS, &lim) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        let started = Instant::now();
        let child = c.spawn().expect("starting runs");
        let (code, max_rss_kib) = wait_with_rusage(child);
        assert_eq!(code, 0, "runs {args:?} failed");
        assert!(started.elapsed() < Duration::from_secs(5), "runs took {:?}", started.elapsed());
        assert!(max_rss_kib < 64 * 1024, "runs {args:?} grew to {max_rss_kib} KiB");
        let text = fs::read_to_string(&printed).expect("reading what runs printed");
        assert!(text.len() < 8192, "runs printed {} bytes", text.len());
        assert!(text.contains("zero_20250101_000000"), "{text}");
    }
}

#[test]
fn a_job_with_a_command_line_as_long_as_the_kernel_takes_can_be_listed_and_waited_for() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit fills in a valid struct.
    unsafe { libc::getrlimit(libc::RLIMIT_STACK, &mut lim) };
    let room = lim.rlim_max == libc::RLIM_INFINITY || lim.rlim_max >= 32 << 20;
    if !need(room, "the hard stack limit keeps arguments under 6 MiB", "ulimit -Hs unlimited (as root)") {
        return;
    }
    let env = Env::new();
    // 44 arguments of 128 KiB (the kernel's limit for one) of a byte JSON
    // writes as six: 5.5 MiB of arguments, kept twice in meta.json (argv
    // and the quoted command), about 66 MiB.
    let arg = OsString::from_vec(vec![1u8; 128 * 1024 - 1]);
    let mut c = env.cmd("run");
    c.args(["--name", "huge", "true"]).args(std::iter::repeat_n(&arg, 44));
    // The stack limit sets how much the kernel takes (a quarter of it, at
    // most 6 MiB): raise it as `ulimit -s unlimited` would.
    // SAFETY: getrlimit and setrlimit are async-signal-safe.
    unsafe {
        c.pre_exec(|| {
            let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            libc::getrlimit(libc::RLIMIT_STACK, &mut lim);
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_STACK, &lim);
            Ok(())
        });
    }
    let out = c.output().expect("running run");
    assert!(out.status.success(), "run with 5.5 MiB of arguments: {}", stderr(&out));
    let id = stdout(&out).split_whitespace().next().expect("an id").to_string();
    let size = fs::metadata(env.job_dir(&id).join("meta.json")).expect("meta.json").len();
    assert!(size > 64 << 20, "meta.json is only {size} bytes: the test no longer tests the limit");
    let mut c = env.cmd("job");
    c.args(["wait", &id]);
    let out = within(c, SOON, "job wait");
    assert!(out.status.success(), "job wait: {}", stderr(&out));
    let out = env.run("runs", &["--json"]);
    assert!(out.status.success() && stderr(&out).is_empty(), "runs --json: {}", stderr(&out));
    let jobs: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let job = jobs.as_array().and_then(|a| a.iter().find(|j| j["id"] == *id)).expect("the job is listed");
    assert_eq!(job["state"], "done");
    assert_eq!(job["argv"].as_array().map(Vec::len), Some(45));
}

// --- 5. the store's owner and modes ---------------------------------------------------

#[test]
fn under_umask_0277_the_store_and_every_job_are_made_private_and_later_runs_still_work() {
    let env = Env::new();
    let script = format!(
        "umask 0277 && {run} --name one true && {job} run --key k --name two true && {job} wait one two && \
         {run} --name three true && {job} wait three && {runs} && {runrm} one",
        run = bin("run").display(),
        job = bin("job").display(),
        runs = bin("runs").display(),
        runrm = bin("runrm").display()
    );
    let out = env.tool("sh").args(["-c", &script]).output().expect("running sh");
    assert!(out.status.success(), "under umask 0277: {}{}", stdout(&out), stderr(&out));
    assert_eq!(mode(&env.store), 0o700, "the store");
    let all = modes(&env.store);
    assert!(all.len() > 10, "{all:?}");
    for (path, mode, is_dir) in all {
        assert_eq!(mode, if is_dir { 0o700 } else { 0o600 }, "{}", path.display());
    }
}

#[test]
fn a_store_writable_by_group_or_others_is_refused_saying_how_to_fix_it() {
    let env = Env::new();
    let id = finished(&env, "mine");
    let s = env.store.display().to_string();
    fs::set_permissions(&env.store, fs::Permissions::from_mode(0o777)).expect("chmod");
    for (name, args) in [("runs", vec![]), ("run", vec!["true"]), ("runrm", vec![]), ("job", vec!["status", &id])] {
        let out = env.run(name, &args);
        assert_eq!(out.status.code(), Some(1), "{name} {args:?} in a store open to all: {}", stdout(&out));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(&s) && err.contains(&format!("chmod 700 {s}")), "{err}");
    }
    assert_eq!(fs::read_dir(&env.store).expect("the store").count(), 1, "nothing was added or removed");
    fs::set_permissions(&env.store, fs::Permissions::from_mode(0o700)).expect("chmod");
    assert_eq!(env.state(&id), "done");
}

#[test]
fn a_store_owned_by_another_user_is_refused_by_them_saying_how_to_fix_it() {
    if !need_tool("setpriv") || !isolated("switching to another user", true) {
        return;
    }
    let env = Env::new();
    let id = finished(&env, "mine");
    // The way to the store is open even to them (its own mode is 0755):
    // only its owner stands guard.
    for d in [&env.root, &env.store] {
        fs::set_permissions(d, fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let s = env.store.display().to_string();
    for front in [format!("{} --json", bin("runs").display()), format!("{} true", bin("run").display())] {
        let out = as_another_user(&format!("RUN_DIR={s} {front}"));
        assert_eq!(out.status.code(), Some(1), "{front} as another user: {}", stdout(&out));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(&s) && err.contains("not by you") && err.contains("chown"), "{err}");
        assert!(!stdout(&out).contains(&id), "{}", stdout(&out));
    }
    assert_eq!(fs::read_dir(&env.store).expect("the store").count(), 1, "nothing was added");
}

// --- 6. every printed byte is safe ------------------------------------------------------

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
    within(c, SOON, "job wait");
    // The watcher rewrites meta.json after `status` (a temporary file, then
    // a rename): copy the directory once it is gone.
    let pid = meta(&store.join(&base))["watcher_pid"].as_i64().expect("a watcher pid");
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
        let out = within(c, SOON, name);
        for (what, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
            let found = raw_controls(bytes);
            assert!(found.is_empty(), "{name} {args:?}: raw control bytes on {what}: {found:?}");
        }
    }
    assert!(!dir.exists(), "runrm removed the planted job");
}

// --- 3. stores seen from elsewhere ------------------------------------------------------

#[test]
fn a_job_of_another_host_is_elsewhere_shown_with_its_host_and_removed_only_with_force() {
    let env = Env::new();
    let base = finished(&env, "base");
    let mut ids = Vec::new();
    for n in 1..=2 {
        let id = format!("remote{n}_20250101_000000");
        let dir = plant(&env.job_dir(&base), &env.store, OsStr::new(&id), |m| {
            m["host"] = "otherhost.example".into();
            m["boot_id"] = "0f0f0f0f-0000-4000-8000-000000000000".into();
        });
        fs::remove_file(dir.join("status")).expect("removing status");
        ids.push(id);
    }
    for id in &ids {
        assert_eq!(env.state(id), "elsewhere");
    }
    let line = stdout(&env.run("runs", &[])).lines().find(|l| l.contains(&ids[0])).map(str::to_string);
    assert!(line.as_deref().is_some_and(|l| l.contains("elsewhere on otherhost.example")), "{line:?}");

    let out = env.run("runrm", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("kept 2 jobs") && stderr(&out).contains("--force"), "{}", stderr(&out));
    let out = env.run("job", &["clean", "--all"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = env.run("runrm", &[&ids[0]]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("otherhost.example") && stderr(&out).contains("--force"), "{}", stderr(&out));
    let out = env.run("job", &["stop", &ids[0]]);
    assert_eq!(out.status.code(), Some(1), "a job elsewhere cannot be stopped from here");
    let out = env.run("job", &["wait", &ids[0], "--timeout", "1s"]);
    assert_eq!(out.status.code(), Some(124), "its end may still come: {}", stderr(&out));
    let out = env.run("job", &["list", "--all", "--status", "elsewhere"]);
    assert_eq!(stdout(&out).lines().count(), 2, "{}", stdout(&out));
    assert!(ids.iter().all(|id| env.job_dir(id).exists()), "a job elsewhere was removed without --force");
    assert!(!env.job_dir(&base).exists(), "the finished job of this host went");

    let out = env.run("runrm", &["--force", &ids[0]]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = env.run("job", &["clean", "--all", "--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(ids.iter().all(|id| !env.job_dir(id).exists()), "--force removes jobs elsewhere");
}

/// A process tree in new user, mount and pid namespaces, killed (with all
/// it holds in there) when dropped.
struct Namespace(Child);

impl Namespace {
    fn start(env: &Env, script: &str) -> Namespace {
        let child = env
            .tool("unshare")
            .args(["--user", "--map-root-user", "--pid", "--fork", "--mount-proc", "--kill-child", "sh", "-c", script])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running unshare");
        Namespace(child)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Stops a job of this namespace when dropped.
struct Stopper<'a>(&'a Env, String);

impl Drop for Stopper<'_> {
    fn drop(&mut self) {
        let _ = self.0.run("job", &["stop", "--force", &self.1]);
    }
}

/// Can this user make user, mount and pid namespaces (`unshare`)? Reported
/// as not run if not.
fn need_namespaces() -> bool {
    if !need_tool("unshare") {
        return false;
    }
    let ok = Command::new("unshare")
        .args(["--user", "--map-root-user", "--pid", "--fork", "--mount-proc", "true"])
        .output()
        .is_ok_and(|o| o.status.success());
    need(ok, "unshare cannot make user and pid namespaces here", "sysctl -w kernel.unprivileged_userns_clone=1")
}

#[test]
fn a_job_in_another_pid_namespace_is_elsewhere_from_outside_and_from_inside() {
    if !need_namespaces() {
        return;
    }
    let env = Env::new();
    let run = bin("run").display().to_string();
    let ns = Namespace::start(&env, &format!("{run} --name inside sleep 300 && exec sleep 300"));
    let mut inside = String::new();
    wait_until(SOON, "the job started in the namespace", || {
        inside = env.jobs().iter().find(|j| j["name"] == "inside").map(|j| j["id"].to_string()).unwrap_or_default();
        !inside.is_empty()
    });
    let inside = inside.trim_matches('"').to_string();
    assert_eq!(env.state(&inside), "elsewhere", "from outside, its pids mean nothing");
    let outside = env.start(&["--name", "outside", "sleep", "300"]);
    let _stop = Stopper(&env, outside.clone());

    for (name, args) in [("runrm", vec![]), ("job", vec!["clean", "--all"]), ("runrm", vec![inside.as_str()])] {
        let _ = env.run(name, &args);
    }
    assert!(env.job_dir(&inside).exists(), "removed from outside while it runs in its namespace");
    let out = env.run("job", &["stop", &inside]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));

    // From inside another namespace, the job outside is elsewhere too.
    let runs = bin("runs").display().to_string();
    let runrm = bin("runrm").display().to_string();
    let out = env
        .tool("unshare")
        .args(["--user", "--map-root-user", "--pid", "--fork", "--mount-proc", "sh", "-c"])
        .arg(format!("{runrm} >/dev/null 2>&1; {runs} --json"))
        .output()
        .expect("running unshare");
    assert!(out.status.success(), "{}", stderr(&out));
    let seen: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let state = |id: &str| seen.as_array().and_then(|a| a.iter().find(|j| j["id"] == id)).map(|j| j["state"].clone());
    assert_eq!(state(&outside), Some("elsewhere".into()), "{seen}");
    assert_eq!(state(&inside), Some("elsewhere".into()), "{seen}");
    assert_eq!(env.state(&outside), "running", "runrm in another namespace removed or ended it");

    drop(ns);
    let out = env.run("runrm", &["--force", &inside]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!env.job_dir(&inside).exists());
}

// --- runrm and job clean remove only the job they judged ------------------------------------

/// The processes waiting for a flock (`->` lines of /proc/locks).
fn lock_waiters() -> Vec<i32> {
    let text = fs::read_to_string("/proc/locks").unwrap_or_default();
    text.lines()
        .filter(|l| l.contains("->"))
        .filter_map(|l| l.split_whitespace().nth(5).and_then(|p| p.parse().ok()))
        .collect()
}

#[test]
fn a_job_directory_replaced_under_the_same_id_between_listing_and_removal_is_left_alone() {
    let env = Env::new();
    let base = finished(&env, "base");
    let id = "swapped_20250101_000000";
    plant(&env.job_dir(&base), &env.store, OsStr::new(id), |_| {});
    for (round, front) in ["runrm", "job"].into_iter().enumerate() {
        // Holding the store's lock keeps the removal waiting after it has
        // judged the job.
        let lock = fs::File::open(&env.store).expect("opening the store");
        lock.lock_shared().expect("locking the store");
        let args: Vec<&str> = if front == "runrm" { vec![id] } else { vec!["clean", "--all"] };
        let child = env.cmd(front).args(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
        let pid = child.id() as i32;
        wait_until(SOON, "the removal to wait for the store's lock", || lock_waiters().contains(&pid));
        // Another job takes the id meanwhile.
        let old = env.root.join(format!("old-{front}"));
        fs::rename(env.store.join(id), &old).expect("moving the judged job away");
        plant(&old, &env.store, OsStr::new(id), |m| {
            m["started_at"] = "2025-01-01T00:00:00.500+00:00".into();
            m["pid"] = (999_990 + round).into();
        });
        drop(lock);
        let out = child.wait_with_output().expect("waiting");
        assert!(out.status.success(), "{front}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(env.store.join(id).join("meta.json").exists(), "{front} removed the job that took the id");
        assert_eq!(meta(&env.store.join(id))["pid"], 999_990 + round);
    }
}

// --- 7. secrets ------------------------------------------------------------------------

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
        watchers.0.push(meta(&env.job_dir(&id))["watcher_pid"].as_i64().unwrap_or(0) as i32);
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
            let m = meta(&env.job_dir(id));
            !pid_alive(m["watcher_pid"].as_i64().unwrap_or(0))
        });
    }
}
