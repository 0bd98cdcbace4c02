//! Faults and hostile input (issue 6): whatever happens to the disk, the
//! terminal, the network, the watcher or the machine, a job's state is
//! either right or honestly `lost`, and no command destroys what it should
//! not.
//!
//! Some cases need privileges: a tmpfs for a full or read-only disk, a
//! second user, the kernel's next pid. They run inside namespaces of their
//! own (`common::isolated`), as root there, changing nothing on the host;
//! where namespaces are not allowed they are reported as not run.

mod common;

use bgrun::store::{End, Meta};
use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// For what normally takes milliseconds (the machine is shared and slow).
const SOON: Duration = Duration::from_secs(20);

// --- helpers -------------------------------------------------------------------

/// A tmpfs mounted for one test (inside its namespaces: see
/// `common::isolated`); unmounted when dropped, even on failure.
struct Tmpfs {
    at: PathBuf,
}

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        fs::create_dir_all(at).expect("making the mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755"), "tmpfs"])
            .arg(at)
            .output()
            .expect("running mount");
        assert!(out.status.success(), "mount -t tmpfs {}: {}", at.display(), stderr(&out));
        Tmpfs { at: at.to_path_buf() }
    }

    fn remount(&self, opts: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,{opts}")])
            .arg(&self.at)
            .output()
            .expect("running mount");
        assert!(out.status.success(), "mount -o remount,{opts}: {}", stderr(&out));
    }

    /// Bytes still free.
    fn free(&self) -> u64 {
        let s = nix::sys::statvfs::statvfs(&self.at).expect("statvfs on the tmpfs");
        s.blocks_available() as u64 * s.fragment_size() as u64
    }

    /// Fills the file system with a file `filler`, then frees `free` bytes
    /// of it again (whole pages).
    fn fill_leaving(&self, free: u64) {
        let path = self.at.join("filler");
        let mut f = fs::File::create(&path).expect("creating the filler");
        let block = vec![0u8; 64 * 1024];
        loop {
            match f.write(&block) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("filling {}: {e}", path.display()),
            }
        }
        let len = f.metadata().expect("reading the filler").len();
        f.set_len(len.saturating_sub(free)).expect("freeing part of the filler");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount").arg(&self.at).status().is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.at).status();
        }
    }
}

/// Processes a test started: killed when it ends, even on failure (only if
/// the pid still holds the process that was started).
#[derive(Default)]
struct Leftovers(Vec<(i32, Option<u64>)>);

impl Leftovers {
    fn add(&mut self, pid: i32) {
        self.0.push((pid, start_time(pid)));
    }
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        for &(pid, start) in &self.0 {
            if start.is_some() && start_time(pid) == start {
                signal(pid, Signal::SIGKILL);
            }
        }
    }
}

fn signal(pid: i32, sig: Signal) {
    let _ = kill(Pid::from_raw(pid), sig);
}

/// The start time of a live process (/proc/PID/stat field 22).
fn start_time(pid: i32) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = s.rsplit_once(')')?;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// No process holds `pid` any more, not even as a zombie.
fn reaped(pid: i32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

fn meta(env: &Env, id: &str) -> Value {
    let bytes = fs::read(env.job_dir(id).join("meta.json")).expect("reading meta.json");
    serde_json::from_slice(&bytes).expect("meta.json is JSON")
}

fn int(v: &Value) -> i32 {
    v.as_i64().unwrap_or_else(|| panic!("not a number: {v}")) as i32
}

/// Waits until the job's watcher has exited (its last writes are done).
fn wait_watcher_gone(env: &Env, id: &str) {
    let m = meta(env, id);
    let (pid, start) = (int(&m["watcher_pid"]), m["watcher_start"].as_u64());
    wait_until(SOON, &format!("the watcher of {id} to exit"), || !pid_alive(pid.into()) || start_time(pid) != start);
}

/// Every name in a directory, hidden ones included, sorted (none if it does
/// not exist).
fn entries(dir: &Path) -> Vec<OsString> {
    let mut v: Vec<OsString> = match fs::read_dir(dir) {
        Ok(rd) => rd.flatten().map(|e| e.file_name()).collect(),
        Err(_) => vec![],
    };
    v.sort();
    v
}

/// Every hidden entry anywhere under the store: what a half-done write,
/// launch or removal would leave.
fn hidden_leftovers(store: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![store.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if e.file_name().as_bytes().first() == Some(&b'.') && e.file_name() != ".keys" {
                found.push(p.clone());
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(p);
            }
        }
    }
    found
}

/// A command's failure: the status, and one line on stderr that names what
/// it must (and no panic).
fn one_line_error(out: &Output, code: i32, naming: &[&str], what: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "{what}: exit status {:?}, stderr: {err}", out.status);
    assert_eq!(err.lines().count(), 1, "{what}: not one line: {err:?}");
    assert!(!err.contains("panicked"), "{what} panicked: {err}");
    for n in naming {
        assert!(err.contains(n), "{what}: the error does not name {n:?}: {err}");
    }
}

/// The id that `run` printed.
fn id_of(out: &Output) -> String {
    stdout(out).split_whitespace().next().expect("run printed an id").to_string()
}

/// Checks a job's files are whole: meta.json reads as a Meta naming the
/// job, and status (if any) reads as an end.
fn assert_whole(dir: &Path) {
    let id = dir.file_name().expect("a job directory").to_string_lossy().into_owned();
    match fs::read(dir.join("meta.json")) {
        Ok(bytes) => {
            let m: Meta = serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("{id}/meta.json is half-written: {e}: {}", String::from_utf8_lossy(&bytes)));
            assert_eq!(m.id, id, "{id}/meta.json names another job");
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => panic!("reading {id}/meta.json: {e}"),
    }
    match fs::read_to_string(dir.join("status")) {
        Ok(text) => assert!(End::parse(&text).is_some(), "{id}/status is half-written: {text:?}"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => panic!("reading {id}/status: {e}"),
    }
}

/// The pids of live processes whose argv passes `test`.
fn processes_where(test: impl Fn(&[u8]) -> bool) -> Vec<i32> {
    fs::read_dir("/proc")
        .expect("reading /proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| test(&c)) && pid_alive(pid.into()))
        .collect()
}

/// The pids of live processes whose argv holds `words` in a row.
fn processes_with_args(words: &[&str]) -> Vec<i32> {
    let want: Vec<&[u8]> = words.iter().map(|w| w.as_bytes()).collect();
    processes_where(|cmdline| {
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        args.windows(want.len()).any(|w| w == want.as_slice())
    })
}

/// The launchers still waiting in the foreground with `words` in their
/// argv (a watcher is a fork of its launcher, same argv: left out).
fn waiting(env: &Env, words: &[&str]) -> Vec<i32> {
    let watchers: Vec<i32> =
        env.jobs().iter().filter_map(|j| j["id"].as_str()).map(|id| int(&meta(env, id)["watcher_pid"])).collect();
    processes_with_args(words).into_iter().filter(|p| !watchers.contains(p)).collect()
}

/// Text for a terminal holds no control character but newlines (C1 ones,
/// such as U+009B, a one-character CSI, included).
fn has_control_bytes(text: &[u8]) -> bool {
    let s = String::from_utf8_lossy(text);
    s.chars().any(|c| c.is_control() && c != '\n')
}

// --- disk full -------------------------------------------------------------------

#[test]
fn on_a_full_disk_run_makes_a_whole_job_or_nothing_at_every_fill_level() {
    if !isolated("mounting a tmpfs", false) {
        return;
    }
    let mut env = Env::new();
    let disk = Tmpfs::mount(&env.root.join("disk"), "1m");
    env.store = disk.at.join("store");
    let mut accepted = Vec::new();
    for pages in 0..=12u64 {
        disk.fill_leaving(pages * 4096);
        let before = entries(&env.store);
        let out = env.run("run", &["--name", "full", "true"]);
        if out.status.success() {
            let id = id_of(&out);
            let j = env.wait_ended(&id, SOON);
            assert_eq!(j["state"], "done", "with {pages} pages free: {j}");
            assert_eq!(j["exit_code"], 0, "with {pages} pages free: {j}");
            wait_watcher_gone(&env, &id);
            assert_whole(&env.job_dir(&id));
            for f in ["meta.json", "log", "status"] {
                assert!(env.job_dir(&id).join(f).is_file(), "with {pages} pages free, {id} has no {f}");
            }
            // `cmd` and `pid` repeat meta.json and are written after the
            // launch: on a full disk they may be missing, but never silently.
            let log = fs::read_to_string(env.job_dir(&id).join("log")).expect("reading the log");
            for f in ["cmd", "pid"] {
                let said = log.contains(&format!("{f}: no space left on device"));
                assert!(env.job_dir(&id).join(f).is_file() || said, "with {pages} pages free, {id} has no {f}: {log}");
            }
        } else {
            let store = env.store.display().to_string();
            one_line_error(&out, 1, &[&store, "no space left on device"], &format!("run with {pages} pages free"));
            assert_eq!(entries(&env.store), before, "a refused run left something in the store");
        }
        accepted.push(out.status.success());
        assert_eq!(hidden_leftovers(&env.store), Vec::<PathBuf>::new(), "with {pages} pages free");
        let out = env.run("runs", &["--json"]);
        assert!(out.status.success(), "runs failed with {pages} pages free: {}", stderr(&out));
        assert_eq!(stderr(&out), "", "runs found damage with {pages} pages free");
        fs::remove_file(disk.at.join("filler")).expect("removing the filler");
    }
    // The disk was really full at first, and there was room at the end.
    assert_eq!(accepted.first(), Some(&false), "run succeeded on a full disk");
    assert_eq!(accepted.last(), Some(&true), "run failed with 12 pages free");
}

#[test]
fn a_job_that_fills_the_disk_still_has_its_end_recorded_and_the_store_stays_readable() {
    if !isolated("mounting a tmpfs", false) {
        return;
    }
    let mut env = Env::new();
    let disk = Tmpfs::mount(&env.root.join("disk"), "1m");
    env.store = disk.at.join("store");
    let id = env.start(&["--name", "filler", "sh", "-c", "head -c 4000000 /dev/zero; echo more; exit 3"]);
    let j = env.wait_ended(&id, SOON);
    assert_eq!(j["state"], "failed", "{j}");
    assert_eq!(j["exit_code"], 3, "{j}");
    assert!(disk.free() < 8192, "the job did not fill the disk: {} bytes free", disk.free());
    let status = fs::read_to_string(env.job_dir(&id).join("status")).expect("reading status");
    assert!(status.starts_with("failed exit 3 "), "status: {status:?}");

    let out = env.run("runs", &[]);
    assert!(out.status.success(), "runs on a full disk: {}", stderr(&out));
    assert_eq!(stderr(&out), "");
    assert!(
        stdout(&out).contains(&format!("{id} (PID")) && stdout(&out).contains("failed (exit 3)"),
        "{}",
        stdout(&out)
    );
    let out = env.run("runlog", &[&id, "--no-follow"]);
    assert!(out.status.success(), "runlog on a full disk: {}", stderr(&out));

    let out = env.run("run", &["true"]);
    one_line_error(&out, 1, &["no space left on device"], "run on a disk a job filled");
    let out = env.run("runrm", &[&id]);
    assert!(out.status.success(), "runrm on a full disk: {}", stderr(&out));
    assert!(disk.free() > 512 * 1024, "removing the job did not free the disk");
    let id = env.start(&["true"]);
    assert_eq!(env.wait_ended(&id, SOON)["state"], "done");
}

#[test]
fn a_job_whose_end_cannot_be_written_shows_lost_not_running_forever() {
    let env = Env::new();
    // The job takes away the reserved status file, so that its end cannot
    // be written when it comes.
    let id = env.start(&["sh", "-c", r#"rm "$(dirname "$(readlink /proc/$$/fd/1)")/.status"; exit 4"#]);
    let j = env.wait_ended(&id, SOON);
    assert_eq!(j["state"], "lost", "{j}");
    assert!(j["exit_code"].is_null() && j["signal"].is_null() && j["ended_at"].is_null(), "{j}");
    assert!(env.log(&id).contains("could not record the end"), "the watcher did not say why: {}", env.log(&id));
    let out = env.run("job", &["wait", &id]);
    assert_eq!(out.status.code(), Some(1), "job wait on a lost job: {}", stderr(&out));
    wait_watcher_gone(&env, &id);
    assert_eq!(env.state(&id), "lost");
}

// --- the store unusable ------------------------------------------------------------

#[test]
fn a_read_only_store_is_refused_in_one_line_naming_it_and_stays_readable() {
    if !isolated("mounting a tmpfs", false) {
        return;
    }
    let mut env = Env::new();
    let disk = Tmpfs::mount(&env.root.join("disk"), "4m");
    env.store = disk.at.join("store");
    let id = env.start(&["--name", "before", "echo", "kept"]);
    env.wait_ended(&id, SOON);
    wait_watcher_gone(&env, &id);
    // Read-only for everyone who writes through this mount (a user
    // namespace may not make the tmpfs itself read-only): EROFS all the same.
    disk.remount("bind,ro");

    let store = env.store.display().to_string();
    for (front, args) in
        [("run", vec!["true"]), ("job", vec!["run", "true"]), ("job", vec!["run", "--key", "k", "true"])]
    {
        let out = env.run(front, &args);
        one_line_error(&out, 1, &[&store, "read-only file system"], &format!("{front} {args:?}"));
    }
    for (front, args) in [("runrm", vec![id.as_str()]), ("runrm", vec![]), ("job", vec!["clean", "--all"])] {
        let out = env.run(front, &args);
        let what = format!("{front} {args:?} on a read-only store");
        one_line_error(&out, 1, &[&env.job_dir(&id).display().to_string(), "read-only file system"], &what);
    }
    let out = env.run("runs", &[]);
    assert!(out.status.success() && stdout(&out).contains(&id), "runs: {}", stderr(&out));
    let out = env.run("runlog", &[&id, "--no-follow"]);
    assert!(out.status.success() && stdout(&out).contains("kept"), "runlog: {}", stderr(&out));
    assert_eq!(entries(&env.store), vec![OsString::from(&id)]);
}

#[test]
fn a_file_where_the_store_should_be_is_an_error_naming_it_from_every_command() {
    let mut env = Env::new();
    let file = env.root.join("store-file");
    write(&file, "not a directory\n");
    let commands: [(&str, &[&str]); 19] = [
        ("run", &["true"]),
        ("run", &["sh", "-c", "exit 0"]),
        ("job", &["run", "true"]),
        ("runs", &[]),
        ("runs", &["--json"]),
        ("runlog", &[]),
        ("runlog", &["x"]),
        ("runrm", &[]),
        ("runrm", &["x"]),
        ("runrm", &["--dry-run"]),
        ("job", &["list", "--all"]),
        ("job", &["list", "--json"]),
        ("job", &["status"]),
        ("job", &["status", "x"]),
        ("job", &["logs", "x"]),
        ("job", &["stop", "x"]),
        ("job", &["wait", "x"]),
        ("job", &["retry", "x"]),
        ("job", &["clean", "--all"]),
    ];
    for store in [file.clone(), file.join("sub")] {
        env.store = store;
        for (front, args) in commands {
            let out = env.run(front, args);
            let what = format!("RUN_DIR={} {front} {args:?}", env.store.display());
            one_line_error(&out, 1, &[&file.display().to_string()], &what);
        }
    }
    assert_eq!(fs::read_to_string(&file).ok().as_deref(), Some("not a directory\n"));
}

#[test]
fn a_missing_store_reads_as_empty_and_is_made_private_by_the_first_run() {
    let mut env = Env::new();
    env.store = env.root.join("not/yet/there");
    let store = env.store.display().to_string();
    let out = env.run("runs", &[]);
    assert!(out.status.success(), "runs: {}", stderr(&out));
    assert!(stderr(&out).contains(&format!("no jobs in {store}")), "runs: {}", stderr(&out));
    assert_eq!(stdout(&env.run("runs", &["--json"])).trim(), "[]");
    for (front, args) in [("runlog", vec!["x"]), ("runlog", vec![]), ("runrm", vec!["x"]), ("job", vec!["status", "x"])]
    {
        let out = env.run(front, &args);
        one_line_error(&out, 1, &[&store], &format!("{front} {args:?} with no store"));
    }
    for (front, args) in [("runrm", vec![]), ("job", vec!["clean", "--all"]), ("job", vec!["status"])] {
        let out = env.run(front, &args);
        assert!(out.status.success(), "{front} {args:?} with no store: {}", stderr(&out));
    }
    assert!(!env.root.join("not").exists(), "a reader made the store");

    let id = env.start(&["true"]);
    assert_eq!(env.wait_ended(&id, SOON)["state"], "done");
    let mode = fs::metadata(&env.store).expect("the store exists now").permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "the store was made {mode:o}");
}

// --- the watcher killed, the machine rebooted ---------------------------------------

/// Starts `sleep 600` as exactly `pid` (sets the kernel's last pid just
/// below it: root in the test's pid namespace), trying again while other
/// processes race for it.
fn spawn_with_pid(pid: i32) -> Child {
    let deadline = Instant::now() + SOON;
    loop {
        fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string()).expect("writing ns_last_pid");
        let mut c = Command::new("sleep").arg("600").spawn().expect("starting sleep");
        if c.id() as i32 == pid {
            return c;
        }
        let _ = c.kill();
        let _ = c.wait();
        assert!(Instant::now() < deadline, "could not start a process with pid {pid}");
    }
}

#[test]
fn once_the_watcher_and_the_job_are_killed_strangers_holding_their_pids_never_revive_the_job() {
    if !isolated("setting the kernel's next pid", false) {
        return;
    }
    let env = Env::new();
    let mut left = Leftovers::default();
    let id = env.start(&["--name", "victim", "sleep", "600"]);
    let m = meta(&env, &id);
    let (pid, watcher) = (int(&m["pid"]), int(&m["watcher_pid"]));
    left.add(pid);
    left.add(watcher);

    signal(watcher, Signal::SIGKILL);
    wait_until(SOON, "the killed watcher to be reaped", || reaped(watcher));
    assert_eq!(env.state(&id), "running", "the job lives on without its watcher");
    signal(pid, Signal::SIGKILL);
    wait_until(SOON, "the killed job to be reaped", || reaped(pid));
    let j = env.job(&id);
    assert_eq!(j["state"], "lost", "{j}");
    assert!(j["exit_code"].is_null() && j["signal"].is_null(), "an end was invented: {j}");

    // The pids come back, held by processes that have nothing to do with it.
    let mut strangers = [spawn_with_pid(pid), spawn_with_pid(watcher)];
    for s in &strangers {
        left.add(s.id() as i32);
    }
    assert_eq!(env.state(&id), "lost", "a stranger with the job's or the watcher's pid revived it");
    assert!(env.jobs().iter().all(|j| j["state"] != "running"));
    let out = env.run("job", &["list", "--all", "--status", "running", "--json"]);
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout).ok(), Some(Value::Array(vec![])));
    let out = env.run("job", &["wait", &id]);
    assert_eq!(out.status.code(), Some(1), "job wait on a lost job: {}", stderr(&out));
    let out = env.run("job", &["stop", &id]);
    assert!(out.status.success() && stdout(&out).contains("already ended: lost"), "job stop: {}", stdout(&out));
    let out = env.run("runrm", &[&id]);
    assert!(out.status.success(), "runrm: {}", stderr(&out));
    assert!(!env.job_dir(&id).exists());
    for s in &mut strangers {
        assert!(pid_alive(s.id().into()), "a stranger holding an old pid was killed");
        let _ = s.kill();
        let _ = s.wait();
    }
}

/// Rewrites one field of a job's meta.json (write, then rename).
fn set_meta(env: &Env, id: &str, field: &str, value: Value) {
    let mut m = meta(env, id);
    m[field] = value;
    let tmp = env.job_dir(id).join(".meta.test.tmp");
    fs::write(&tmp, serde_json::to_vec_pretty(&m).expect("JSON")).expect("writing meta.json");
    fs::rename(&tmp, env.job_dir(id).join("meta.json")).expect("renaming meta.json");
}

#[test]
fn a_job_recorded_under_another_boot_is_lost_even_while_its_pid_and_start_time_match_a_live_process() {
    let env = Env::new();
    let mut left = Leftovers::default();
    let id = env.start(&["--name", "rebooted", "sleep", "600"]);
    let m = meta(&env, &id);
    left.add(int(&m["pid"]));
    let boot = m["boot_id"].clone();
    assert_eq!(boot.as_str().map(str::len), Some(36), "no boot id recorded: {m}");
    assert_eq!(env.state(&id), "running");

    set_meta(&env, &id, "boot_id", Value::from("00000000-0000-4000-8000-000000000000"));
    let j = env.job(&id);
    assert_eq!(j["state"], "lost", "{j}");
    assert!(j["exit_code"].is_null() && j["signal"].is_null(), "{j}");
    assert!(pid_alive(m["pid"].as_i64().unwrap_or(0)), "the process itself is alive");

    // Only the boot id made the difference.
    set_meta(&env, &id, "boot_id", boot);
    assert_eq!(env.state(&id), "running");
    let out = env.run("job", &["stop", "--force", &id]);
    assert!(out.status.success(), "job stop: {}", stderr(&out));
    assert_eq!(env.wait_ended(&id, SOON)["state"], "stopped");
}

// --- terminal hangup, SSH disconnect -----------------------------------------------

#[test]
fn a_terminal_hung_up_under_job_run_wait_follow_ends_the_waiting_not_the_job() {
    if !need_tool("script") {
        return;
    }
    let env = Env::new();
    let mut left = Leftovers::default();
    let session = format!(
        "{} run --name follower --wait --follow 'echo begun; sleep 6; echo finished; exit 7'",
        bin("job").display()
    );
    let mut script = env
        .tool("script")
        .args(["-qfec", &session, "/dev/null"])
        .stdout(Stdio::null())
        .spawn()
        .expect("running script");
    left.add(script.id() as i32);
    let waiter = ["run", "--name", "follower", "--wait"];
    wait_until(SOON, "the job to start inside the terminal", || {
        env.jobs().iter().any(|j| j["name"] == "follower") && !waiting(&env, &waiter).is_empty()
    });
    let id = env.jobs()[0]["id"].as_str().unwrap_or_default().to_string();
    wait_until(SOON, "the job's first line", || env.log(&id).contains("begun"));

    signal(script.id() as i32, Signal::SIGKILL);
    let _ = script.wait();
    wait_until(SOON, "the waiting `job run` to be hung up", || waiting(&env, &waiter).is_empty());
    assert_eq!(env.state(&id), "running", "the job ended with its terminal");
    let j = env.wait_ended(&id, SOON);
    assert_eq!(j["state"], "failed", "{j}");
    assert_eq!(j["exit_code"], 7, "{j}");
    assert!(env.log(&id).contains("finished"));
}

/// An sshd on 127.0.0.1, on a free port, with its own keys and config;
/// killed when dropped.
struct Sshd {
    child: Child,
    port: u16,
    key: PathBuf,
    user: String,
}

impl Sshd {
    /// `None` (the test reported as not run) when sshd or ssh is missing.
    fn start(dir: &Path) -> Option<Sshd> {
        if !need_tools(&["sshd", "ssh", "ssh-keygen"]) {
            return None;
        }
        let root = nix::unistd::geteuid().is_root();
        // Not run as root, sshd can log in only its own user, which is
        // enough, and cannot chown the terminal it opens: it needs /dev/pts
        // to give new terminals the tty group, as desktops and servers do.
        let tty = nix::unistd::Group::from_name("tty").ok().flatten().map(|g| g.gid.as_raw());
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let ptys_in_tty_group = tty.is_some_and(|gid| {
            mounts
                .lines()
                .any(|l| l.contains(" /dev/pts ") && l.contains(" devpts ") && l.contains(&format!("gid={gid}")))
        });
        let why = "sshd run by a user other than root needs /dev/pts to give new terminals the tty group";
        if !root && !need(ptys_in_tty_group, why, "sudo mount -o remount,gid=5,mode=620 /dev/pts") {
            return None;
        }
        let sshd = Path::new("/usr/sbin/sshd");
        fs::create_dir_all(dir).expect("making the sshd directory");
        if root {
            fs::create_dir_all("/run/sshd").expect("making sshd's privilege separation directory");
        }
        for k in ["host_key", "user_key"] {
            let out = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(dir.join(k))
                .output()
                .expect("running ssh-keygen");
            assert!(out.status.success(), "ssh-keygen: {}", stderr(&out));
        }
        fs::copy(dir.join("user_key.pub"), dir.join("authorized_keys")).expect("authorizing the key");
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("finding a free port").port();
        let config = format!(
            "ListenAddress 127.0.0.1\nPort {port}\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\n\
             PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             UsePAM no\nStrictModes no\nPidFile {d}/sshd.pid\nLogLevel ERROR\n",
            d = dir.display()
        );
        write(&dir.join("sshd_config"), &config);
        let log = fs::File::create(dir.join("sshd.log")).expect("creating sshd.log");
        let child = Command::new(sshd)
            .args(["-D", "-e", "-f"])
            .arg(dir.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting sshd");
        let user = nix::unistd::User::from_uid(nix::unistd::geteuid())
            .ok()
            .flatten()
            .map(|u| u.name)
            .expect("this user's name");
        let server = Sshd { child, port, key: dir.join("user_key"), user };
        wait_until(SOON, "sshd to greet", || {
            let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return false };
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut b = [0u8; 4];
            s.read_exact(&mut b).is_ok() && &b == b"SSH-"
        });
        Some(server)
    }

    /// `ssh -tt USER@127.0.0.1 REMOTE`, as this user (a terminal on the far
    /// side).
    fn ssh(&self, remote: &str) -> Command {
        let mut c = Command::new("ssh");
        c.args(["-tt", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"])
            .args(["-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-i"])
            .arg(&self.key)
            .args(["-p", &self.port.to_string(), &format!("{}@127.0.0.1", self.user), remote])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn jobs_started_over_ssh_finish_and_record_their_exit_when_the_client_is_killed() {
    let env = Env::new();
    let mut left = Leftovers::default();
    let Some(sshd) = Sshd::start(&env.root.join("sshd")) else { return };
    let remote = format!(
        "export RUN_DIR={store} HOME={home}; {run} --name viassh sh -c 'sleep 6; exit 5'; \
         {job} run --name waited --wait 'sleep 6; exit 6'",
        store = env.store.display(),
        home = env.home.display(),
        run = bin("run").display(),
        job = bin("job").display()
    );
    let mut client = sshd.ssh(&remote).spawn().expect("running ssh");
    left.add(client.id() as i32);
    let waiter = ["run", "--name", "waited", "--wait"];
    wait_until(SOON, "both jobs to start over ssh", || env.jobs().len() == 2 && !waiting(&env, &waiter).is_empty());

    signal(client.id() as i32, Signal::SIGKILL);
    let _ = client.wait();
    wait_until(SOON, "the remote session to be hung up", || waiting(&env, &waiter).is_empty());
    let jobs = env.jobs();
    assert!(jobs.iter().all(|j| j["state"] == "running"), "a job ended with the connection: {jobs:?}");
    for (name, code) in [("viassh", 5), ("waited", 6)] {
        let id = jobs.iter().find(|j| j["name"] == name).and_then(|j| j["id"].as_str()).expect("the job").to_string();
        let j = env.wait_ended(&id, SOON);
        assert_eq!(j["state"], "failed", "{j}");
        assert_eq!(j["exit_code"], code, "{j}");
    }
}

// --- concurrency --------------------------------------------------------------------

#[test]
fn five_hundred_launches_from_parallel_shells_give_five_hundred_whole_jobs() {
    let env = Env::new();
    let script = format!("for i in $(seq 50); do {} --name race true || echo FAILED; done", bin("run").display());
    let shells: Vec<Child> = (0..10)
        .map(|_| env.tool("sh").args(["-c", &script]).stdout(Stdio::piped()).spawn().expect("starting sh"))
        .collect();
    let mut printed = Vec::new();
    for sh in shells {
        let out = sh.wait_with_output().expect("waiting for a shell");
        assert!(out.status.success(), "{}", stderr(&out));
        printed.extend(stdout(&out).lines().map(|l| l.split_whitespace().next().unwrap_or(l).to_string()));
    }
    assert!(!printed.iter().any(|l| l == "FAILED"), "a launch failed");
    let unique: BTreeSet<&String> = printed.iter().collect();
    assert_eq!(printed.len(), 500);
    assert_eq!(unique.len(), 500, "two launches printed the same id");

    wait_until(SOON * 3, "all 500 jobs to end", || env.jobs().iter().all(|j| j["state"] != "running"));
    let jobs = env.jobs();
    let listed: BTreeSet<&str> = jobs.iter().filter_map(|j| j["id"].as_str()).collect();
    assert_eq!(listed, unique.iter().map(|s| s.as_str()).collect(), "the store does not hold exactly what was printed");
    assert!(jobs.iter().all(|j| j["state"] == "done" && j["exit_code"] == 0));
    for id in &listed {
        wait_watcher_gone(&env, id);
        assert_whole(&env.job_dir(id));
    }
    assert_eq!(hidden_leftovers(&env.store), Vec::<PathBuf>::new());
}

/// Runs `front args` again and again until `stop`, collecting every run
/// that did not exit 0 quietly.
fn churn(env: &Env, front: &'static str, args: &'static [&'static str], stop: Arc<AtomicBool>) -> Vec<String> {
    let mut complaints = Vec::new();
    let mut cmd = env.cmd(front);
    cmd.args(args);
    while !stop.load(Ordering::SeqCst) {
        let out = cmd.output().expect("running a remover");
        if !out.status.success() || !out.stderr.is_empty() {
            complaints.push(format!("{front} {args:?}: {:?}: {}", out.status.code(), stderr(&out)));
        }
    }
    complaints
}

#[test]
fn runrm_and_job_clean_in_loops_never_remove_a_running_job_nor_lose_or_tear_one() {
    let env = Env::new();
    let marks = env.root.join("marks");
    fs::create_dir(&marks).expect("making the marks directory");
    // Each job's last act: say whether its own directory is still in place
    // (a removed one shows as `.rm-…` or `(deleted)` through its log), and
    // that it ran to its end, under the tag T its launcher gave it. (Ids
    // are not unique over time: once removed, an id is free again.)
    let job = |secs: &str| {
        format!(
            r#"sleep {secs}; l=$(readlink /proc/$$/fd/1);
            case "$l" in *"/.rm-"*|*deleted*) echo "$l" > {m}/REMOVED-WHILE-RUNNING.$T ;; esac; : > {m}/ended.$T"#,
            m = marks.display()
        )
    };
    let stop = Arc::new(AtomicBool::new(false));
    let (s1, s2, s3) = (stop.clone(), stop.clone(), stop.clone());
    let env = Arc::new(env);
    let (e1, e2, e3) = (env.clone(), env.clone(), env.clone());
    let runrm = std::thread::spawn(move || churn(&e1, "runrm", &[], s1));
    let clean = std::thread::spawn(move || churn(&e2, "job", &["clean", "--all"], s2));
    // A reader: every listing succeeds and names no damage, nothing is
    // ever lost, and every file it finds is whole.
    let reader = std::thread::spawn(move || {
        let mut complaints = Vec::new();
        while !s3.load(Ordering::SeqCst) {
            let out = e3.run("runs", &["--json"]);
            match serde_json::from_slice::<Value>(&out.stdout) {
                Ok(Value::Array(jobs)) => {
                    for j in jobs.iter().filter(|j| j["state"] == "lost") {
                        complaints.push(format!("a lost job: {j}"));
                    }
                    let ids: BTreeSet<&str> = jobs.iter().filter_map(|j| j["id"].as_str()).collect();
                    if ids.len() != jobs.len() {
                        complaints.push(format!("one id listed twice: {jobs:?}"));
                    }
                }
                _ => complaints.push(format!("runs --json printed no array: {}", stdout(&out))),
            }
            if !out.status.success() || !out.stderr.is_empty() {
                complaints.push(format!("runs --json: {:?}: {}", out.status.code(), stderr(&out)));
            }
            for e in fs::read_dir(&e3.store).into_iter().flatten().flatten() {
                if e.file_name().as_bytes()[0] != b'.' {
                    assert_whole(&e.path());
                }
            }
        }
        complaints
    });

    let mut launchers: Vec<Child> = (0..4)
        .map(|k| {
            let script = format!(
                "for i in $(seq 30); do T={k}.$i {run} --name churn sh -c '{short}' || echo FAILED; done",
                run = bin("run").display(),
                short = job(&format!("0.{k}")).replace('\'', r"'\''")
            );
            env.tool("sh").args(["-c", &script]).stdout(Stdio::piped()).spawn().expect("starting sh")
        })
        .collect();
    let mut printed = Vec::new();
    for i in 0..5 {
        let out = env.cmd("run").env("T", format!("long.{i}")).args(["--name", "long", "sh", "-c", &job("3")]).output();
        printed.push(id_of(&out.expect("running run")));
    }
    for sh in launchers.drain(..) {
        let out = sh.wait_with_output().expect("waiting for a launcher");
        printed.extend(stdout(&out).lines().map(|l| l.split_whitespace().next().unwrap_or(l).to_string()));
    }
    if printed.iter().any(|l| l == "FAILED") {
        stop.store(true, Ordering::SeqCst);
        panic!("a launch failed");
    }
    wait_until(SOON * 2, "every job to end", || fs::read_dir(&marks).map(|d| d.count()).unwrap_or(0) >= 125);
    wait_until(SOON, "every job's end to be recorded", || env.jobs().iter().all(|j| j["state"] != "running"));
    stop.store(true, Ordering::SeqCst);
    let mut complaints = runrm.join().expect("the runrm loop");
    complaints.extend(clean.join().expect("the job clean loop"));
    complaints.extend(reader.join().expect("the reader"));

    assert_eq!(printed.len(), 125, "ids printed: {printed:?}");
    let unique: BTreeSet<&String> = printed.iter().collect();
    assert_eq!(unique.len(), 125, "an id was given to two jobs: {printed:?}");
    let removed: Vec<OsString> = entries(&marks).into_iter().filter(|n| n.as_bytes().starts_with(b"REMOVED")).collect();
    assert_eq!(removed, Vec::<OsString>::new(), "running jobs were removed");
    let ended = entries(&marks).into_iter().filter(|n| n.as_bytes().starts_with(b"ended.")).count();
    assert_eq!(ended, 125, "not every job ran to its end");
    assert_eq!(complaints, Vec::<String>::new());
    for e in fs::read_dir(&env.store).expect("reading the store").flatten() {
        if e.file_name().as_bytes()[0] != b'.' {
            assert_whole(&e.path());
        }
    }
    let out = env.run("runrm", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    // (`.ids` keeps the removed jobs' ids.)
    let left: Vec<OsString> = entries(&env.store).into_iter().filter(|n| n != ".ids").collect();
    assert_eq!(left, Vec::<OsString>::new(), "left in the store after the last runrm");
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

// --- hostile store contents -----------------------------------------------------------

fn copy_job(from: &Path, to: &Path) {
    fs::create_dir(to).expect("making a job directory");
    for f in ["cmd", "meta.json", "log", "pid", "status"] {
        fs::copy(from.join(f), to.join(f)).expect("copying a job file");
    }
}

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

// --- hostile input ----------------------------------------------------------------------

#[test]
fn names_that_would_escape_the_store_or_flood_the_screen_are_refused_naming_the_flag() {
    let env = Env::new();
    let long = "n".repeat(10_000);
    for name in ["a/b", "..", ".", "../../escape", "/etc", &long] {
        for (front, args) in [("run", vec!["--name", name, "true"]), ("job", vec!["run", "--name", name, "true"])] {
            let out = env.run(front, &args);
            one_line_error(&out, 2, &["--name"], &format!("{front} --name {:.20}", name));
            assert!(stderr(&out).len() < 300, "a {}-byte error for a long name", stderr(&out).len());
        }
    }
    // A NUL cannot even be passed: the kernel's argv is NUL-terminated.
    assert!(env.cmd("run").args(["--name", "a\0b", "true"]).output().is_err());
    assert_eq!(entries(&env.store), Vec::<OsString>::new(), "a refused name left something");
    assert!(!env.root.join("escape").exists());

    // Words that look like paths name no job, and touch nothing.
    let id = env.start(&["true"]);
    env.wait_ended(&id, SOON);
    let sentinel = env.root.join("sentinel");
    write(&sentinel, "here\n");
    for word in ["..", ".", "/", "../sentinel", "*", "", &long, "\u{1b}[2J"] {
        for (front, args) in [
            ("runrm", vec![word]),
            ("runlog", vec![word, "--no-follow"]),
            ("job", vec!["status", word]),
            ("job", vec!["stop", word]),
        ] {
            let out = env.run(front, &args);
            assert_eq!(out.status.code(), Some(1), "{front} {word:.20?}: {}", stderr(&out));
            assert!(!has_control_bytes(&out.stderr), "{front} echoed a control character");
        }
    }
    assert!(sentinel.is_file() && env.job_dir(&id).is_dir(), "a hostile word removed something");
}

#[test]
fn negative_huge_and_fractional_durations_are_refused_and_clean_removes_nothing() {
    let env = Env::new();
    let id = env.start(&["true"]);
    env.wait_ended(&id, SOON);
    for dur in ["-5m", "99999999999d", "1.5h", "1h-5m", "5m1h", " 5m", "0x10", "1e9s", "18446744073709551616"] {
        for (args, flag) in [
            (vec!["run".to_string(), format!("--timeout={dur}"), "true".into()], "--timeout"),
            (vec!["wait".to_string(), format!("--timeout={dur}"), id.clone()], "--timeout"),
            (vec!["clean".to_string(), format!("--older-than={dur}")], "--older-than"),
        ] {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = env.run("job", &args);
            one_line_error(&out, 2, &[flag], &format!("job {args:?}"));
        }
        // As a separate word, `-5m` reads as a flag: refused all the same.
        let out = env.run("job", &["clean", "--older-than", dur]);
        assert_eq!(out.status.code(), Some(2), "job clean --older-than {dur}: {}", stderr(&out));
    }
    assert_eq!(entries(&env.store), vec![OsString::from(&id)], "a bad duration started or removed a job");
}

#[test]
fn contexts_nested_deeper_than_json_readers_go_are_refused_and_one_as_big_as_argv_allows_is_kept_verbatim() {
    let env = Env::new();
    // Nested past what serde_json or jq read back, it would make every
    // `runs --json` unreadable: refused, valid or not.
    for n in [100_000, 65_000, 65] {
        // (Closed, 100,000 deep is more than one argument may hold.)
        let closed = Some(format!("{}{}", "[".repeat(n), "]".repeat(n))).filter(|c| c.len() < 131_072);
        for deep in std::iter::once("[".repeat(n)).chain(closed) {
            let out = env.run("job", &["run", "--context", &deep, "true"]);
            one_line_error(&out, 2, &["--context"], &format!("a context nested {n} deep"));
        }
    }
    assert_eq!(entries(&env.store), Vec::<OsString>::new(), "a refused context started a job");
    let deep = format!("{}{}", "[".repeat(64), "]".repeat(64));
    let out = env.run("job", &["run", "--context", &deep, "true"]);
    assert!(out.status.success(), "a context nested 64 deep: {}", stderr(&out));

    // One argument is at most 128 KiB (MAX_ARG_STRLEN), NUL included.
    let mut big = String::from("{\"k\":\"");
    big.push_str(&"x".repeat(131_071 - big.len() - 2));
    big.push_str("\"}");
    assert_eq!(big.len(), 131_071);
    let out = env.run("job", &["run", "--name", "big", "--context", &big, "true"]);
    assert!(out.status.success(), "the biggest context argv allows: {}", stderr(&out));
    let id = stdout(&out).trim().to_string();
    env.wait_ended(&id, SOON);
    let out = env.run("runs", &["--json"]);
    assert!(out.status.success() && stderr(&out).is_empty(), "runs: {}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains(&big) && text.contains(&deep), "a context did not come back verbatim");
    let out = env.run("job", &["status", &id, "--json"]);
    assert!(out.status.success(), "job status: {}", stderr(&out));
}

#[test]
fn a_command_line_of_100000_arguments_reaches_the_job_whole() {
    let env = Env::new();
    let script = r#"echo "count $#"; eval "echo last \${$#}""#;
    let mut args: Vec<String> = vec!["sh".into(), "-c".into(), script.into(), "sh".into()];
    args.extend((0..100_000).map(|i| format!("a{i}")));
    let out = env.cmd("run").args(&args).output().expect("running run with 100,000 arguments");
    assert!(out.status.success(), "{}", stderr(&out));
    let id = id_of(&out);
    let j = env.wait_ended(&id, SOON);
    assert_eq!(j["state"], "done", "{j}");
    assert!(env.log(&id).contains("count 100000\nlast a99999\n"), "{}", env.log(&id).len());
    assert_eq!(j["argv"].as_array().map(Vec::len), Some(100_004));
    assert_eq!(j["argv"][100_003], "a99999");
}

#[test]
fn at_the_kernels_argument_limit_a_job_that_cannot_exec_fails_saying_so() {
    let env = Env::new();
    // A program path much longer than run's own, so that the job's exec
    // needs more room than run's did.
    let dir = env.root.join("d".repeat(150)).join("e".repeat(150));
    fs::create_dir_all(&dir).expect("making a deep directory");
    let prog = dir.join("true");
    std::os::unix::fs::symlink("/bin/true", &prog).expect("linking true");
    let prog = prog.display().to_string();
    let word = "x".repeat(30);
    let try_n = |n: usize| -> Option<Output> {
        match env.cmd("run").args(["--name", "limit"]).arg(&prog).args(std::iter::repeat_n(&word, n)).output() {
            Ok(out) => Some(out),
            Err(e) if e.raw_os_error() == Some(libc::E2BIG) => None,
            Err(e) => panic!("running run: {e}"),
        }
    };
    let (mut lo, mut hi) = (1_000usize, 200_000usize);
    assert!(try_n(lo).is_some() && try_n(hi).is_none(), "the kernel's limit is not between {lo} and {hi} words");
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if try_n(mid).is_some() {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let out = try_n(lo).expect("the kernel took this many words a moment ago");
    assert!(out.status.success(), "run with {lo} words: {}", stderr(&out));
    let id = id_of(&out);
    let j = env.wait_ended(&id, SOON);
    assert_eq!(j["state"], "failed", "{j}");
    assert_eq!(j["exit_code"], 126, "{j}");
    assert!(env.log(&id).to_lowercase().contains("argument list too long"), "the log does not say why");
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

// --- privacy ------------------------------------------------------------------------------

#[test]
fn another_user_can_read_nothing_in_the_store_even_when_jobs_start_under_umask_000() {
    if !need_tool("setpriv") || !isolated("switching to another user", true) {
        return;
    }
    let env = Env::new();
    let script = format!(
        "umask 000; {run} --name secret sh -c 'echo the-secret' && {job} run --key k --name keyed 'echo more'",
        run = bin("run").display(),
        job = bin("job").display()
    );
    let out = env.tool("sh").args(["-c", &script]).output().expect("running sh");
    assert!(out.status.success(), "{}", stderr(&out));
    for j in env.jobs() {
        env.wait_ended(j["id"].as_str().unwrap_or_default(), SOON);
    }
    let id = env.jobs()[0]["id"].as_str().unwrap_or_default().to_string();
    // The way to the store is open: only the store's own modes stand guard.
    fs::set_permissions(&env.root, fs::Permissions::from_mode(0o755)).expect("chmod");

    let s = env.store.display();
    for probe in [
        format!("ls {s}"),
        format!("cat {s}/{id}/log"),
        format!("cat {s}/{id}/meta.json"),
        format!("ls {s}/{id}"),
        format!("ls {s}/.keys"),
    ] {
        let out = as_another_user(&probe);
        assert!(!out.status.success(), "user {OTHER_ID} could run `{probe}`: {}", stdout(&out));
        assert!(!stdout(&out).contains("the-secret") && !stdout(&out).contains(&id), "{probe} leaked");
    }
    // A copy of runs in the open directory, so that the user can run it
    // wherever the build is.
    let runs = env.root.join("runs");
    fs::copy(bin("runs"), &runs).expect("copying runs");
    let out = as_another_user(&format!("RUN_DIR={s} {} --json", runs.display()));
    assert!(!matches!(out.status.code(), Some(126 | 127)), "user {OTHER_ID} could not start runs: {}", stderr(&out));
    assert!(!stdout(&out).contains(&id), "runs as another user listed the jobs");

    let mut dirs = vec![env.store.clone()];
    while let Some(d) = dirs.pop() {
        for e in fs::read_dir(&d).expect("reading the store").flatten() {
            let m = fs::symlink_metadata(e.path()).expect("stat");
            if m.is_symlink() {
                continue;
            }
            let want = if m.is_dir() { 0o700 } else { 0o600 };
            assert_eq!(m.permissions().mode() & 0o777, want, "{} is not private", e.path().display());
            if m.is_dir() {
                dirs.push(e.path());
            }
        }
    }
}

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
                    let request = read_request(&mut conn);
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

fn read_request(conn: &mut TcpStream) -> String {
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
