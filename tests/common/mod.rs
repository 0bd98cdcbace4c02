//! What every integration test shares: a temporary store, the real
//! binaries, waiting for a condition with a deadline (never a fixed
//! sleep), and what a test needs from the machine.
//!
//! Every process a test starts through its [`Env`] carries the Env's
//! directory in `RUN_DIR` or `HOME`; dropping the Env (the test ending,
//! failed or not) kills whatever still does, so no test leaves a job, a
//! watcher or a tmux server behind.
//!
//! A test that needs what a machine may lack asks first and returns when
//! told no: `if !need_tool("tmux") { return; }`, `if !isolated("mounting a
//! tmpfs") { return; }`. A missing need is reported, never passed over in
//! silence: one line `NOT RUN: TEST: REASON; to run it: COMMAND` goes to
//! stderr (past libtest's capture, so it shows) and into this `cargo test`
//! run's not-run directory, which tests/zz_not_run.rs, the last test
//! binary cargo runs, prints with a count. With `BGRUN_TEST_ALL=1` (CI) a
//! missing need fails the test instead.
#![allow(dead_code)]

use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A temporary directory holding the store (`RUN_DIR`) and a HOME; removed
/// when dropped.
pub struct Env {
    pub root: PathBuf,
    pub store: PathBuf,
    pub home: PathBuf,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl Env {
    pub fn new() -> Env {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        // Inside namespaces (see `isolated`) the pid is no one's own: the
        // copy's tag, unique on the host, stands in for it.
        let pid = std::env::var(INSIDE).unwrap_or_else(|_| std::process::id().to_string());
        let root = std::env::temp_dir().join(format!("bgrun-test-{pid}-{n}"));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("home")).expect("creating the test directory");
        Env { store: root.join("store"), home: root.join("home"), root }
    }

    /// One of the five binaries, with the temporary store and no ntfy
    /// settings from the outer environment.
    pub fn cmd(&self, name: &str) -> Command {
        let mut c = Command::new(bin(name));
        c.env("RUN_DIR", &self.store)
            .env("HOME", &self.home)
            .env("NO_COLOR", "1")
            .env_remove("XDG_DATA_HOME")
            .env_remove("NTFY_TOPIC")
            .env_remove("NTFY_SERVER")
            .env_remove("NTFY_TOKEN")
            .env_remove("NTFY_USER")
            .env_remove("NTFY_PASSWORD")
            .current_dir(&self.root)
            .stdin(Stdio::null());
        c
    }

    /// Runs `name args…` to completion.
    pub fn run(&self, name: &str, args: &[&str]) -> Output {
        self.cmd(name).args(args).output().expect("running the binary")
    }

    /// `run args…`, which must succeed; returns the job id it printed.
    pub fn start(&self, args: &[&str]) -> String {
        let out = self.run("run", args);
        assert!(out.status.success(), "run {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        let line = String::from_utf8_lossy(&out.stdout).into_owned();
        line.split_whitespace().next().expect("run printed an id").to_string()
    }

    /// `runs --json`, parsed.
    pub fn jobs(&self) -> Vec<Value> {
        let out = self.run("runs", &["--json"]);
        assert!(out.status.success(), "runs --json failed: {}", String::from_utf8_lossy(&out.stderr));
        match serde_json::from_slice(&out.stdout).expect("runs --json prints JSON") {
            Value::Array(a) => a,
            other => panic!("runs --json printed {other}"),
        }
    }

    /// One job's object from `runs --json`.
    pub fn job(&self, id: &str) -> Value {
        self.jobs().into_iter().find(|j| j["id"] == id).unwrap_or_else(|| panic!("no job {id} in runs --json"))
    }

    pub fn state(&self, id: &str) -> String {
        self.job(id)["state"].as_str().unwrap_or_default().to_string()
    }

    /// Waits until the job is no longer running; returns its object.
    pub fn wait_ended(&self, id: &str, within: Duration) -> Value {
        let mut last = Value::Null;
        wait_until(within, &format!("job {id} to end"), || {
            last = self.job(id);
            last["state"] != "running"
        });
        last
    }

    pub fn job_dir(&self, id: &str) -> PathBuf {
        self.store.join(id)
    }

    /// The log file as it is: the job's output from its first byte, then
    /// the footer.
    pub fn log(&self, id: &str) -> String {
        String::from_utf8_lossy(&std::fs::read(self.job_dir(id).join("log")).unwrap_or_default()).into_owned()
    }

    /// The header readers show before the log of a job that was not
    /// queued, rendered here from its meta.json as older versions wrote it
    /// into the log: command, directory, start.
    pub fn header(&self, id: &str) -> String {
        let meta: Value =
            serde_json::from_slice(&std::fs::read(self.job_dir(id).join("meta.json")).expect("meta.json"))
                .expect("meta.json is JSON");
        assert_eq!(meta["log_header"], "meta", "a job whose log holds its own header: {meta}");
        let field = |k: &str| meta[k].as_str().unwrap_or_else(|| panic!("no {k} in {meta}")).to_string();
        format!(
            "=== {}\n=== cwd: {}\n=== started: {} on {} as {}\n",
            field("command"),
            field("cwd"),
            field("started_at"),
            field("host"),
            field("user")
        )
    }

    /// What `runlog ID` shows of a job that was not queued: the header,
    /// then the log file.
    pub fn shown_log(&self, id: &str) -> String {
        self.header(id) + &self.log(id)
    }

    /// Any other program (`script`, `tmux`, `sh`) with the environment the
    /// binaries get from [`Env::cmd`].
    pub fn tool(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("RUN_DIR", &self.store)
            .env("HOME", &self.home)
            .env("NO_COLOR", "1")
            .env_remove("XDG_DATA_HOME")
            .env_remove("NTFY_TOPIC")
            .env_remove("NTFY_SERVER")
            .env_remove("NTFY_TOKEN")
            .env_remove("NTFY_USER")
            .env_remove("NTFY_PASSWORD")
            .env_remove("TMUX")
            .current_dir(&self.root)
            .stdin(Stdio::null());
        c
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        end_processes_of(&self.root);
        // A watcher finishing its last writes (meta.json after `status`)
        // can put a file back into a directory being emptied: try again.
        for _ in 0..10 {
            if std::fs::remove_dir_all(&self.root).is_ok() || !self.root.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The path of one of the five binaries that cargo built for the tests.
pub fn bin(name: &str) -> PathBuf {
    match name {
        "run" => env!("CARGO_BIN_EXE_run").into(),
        "runs" => env!("CARGO_BIN_EXE_runs").into(),
        "runlog" => env!("CARGO_BIN_EXE_runlog").into(),
        "runrm" => env!("CARGO_BIN_EXE_runrm").into(),
        "job" => env!("CARGO_BIN_EXE_job").into(),
        other => panic!("no binary {other}"),
    }
}

/// Polls `cond` until it holds; panics naming `what` after `within`.
pub fn wait_until(within: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    let mut pause = Duration::from_millis(5);
    loop {
        if cond() {
            return;
        }
        if Instant::now() > deadline {
            panic!("timed out after {within:?} waiting for {what}");
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// Is a process with this pid alive (and not a zombie)?
pub fn pid_alive(pid: i64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            let state = s.rsplit_once(')').and_then(|(_, r)| r.trim_start().chars().next());
            !matches!(state, Some('Z') | Some('X') | None)
        }
        Err(_) => false,
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("writing a test file");
}

/// Kills every process whose environment has `RUN_DIR` or `HOME` in
/// `root`: what a test started through its [`Env`], jobs and watchers
/// included. Repeats until none is left, as a dying job may have forked.
fn end_processes_of(root: &Path) {
    let root = root.as_os_str().as_encoded_bytes();
    let owned = |environ: &[u8]| {
        environ.split(|&b| b == 0).any(|var| {
            let value = var.strip_prefix(b"RUN_DIR=").or_else(|| var.strip_prefix(b"HOME="));
            value.and_then(|v| v.strip_prefix(root)).is_some_and(|rest| rest.is_empty() || rest[0] == b'/')
        })
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut found = false;
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse::<i32>().ok()) else { continue };
            if pid == std::process::id() as i32 {
                continue;
            }
            if std::fs::read(entry.path().join("environ")).is_ok_and(|e| owned(&e)) {
                found = true;
                // SAFETY: kill(2) has no memory effects.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        if !found || Instant::now() > deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// --- what a test needs ---------------------------------------------------------

/// Set (to anything but `0`) by CI: a test that cannot run fails.
const ALL: &str = "BGRUN_TEST_ALL";
/// Where a copy of a test run inside namespaces writes its not-run lines.
const NOT_RUN_DIR: &str = "BGRUN_TEST_NOT_RUN_DIR";
/// Set for a copy of a test run inside namespaces by [`isolated`]: a tag
/// unique on the host.
const INSIDE: &str = "BGRUN_TEST_INSIDE";

/// The name of the running test (libtest names each test's thread so).
pub fn test_name() -> String {
    std::thread::current().name().unwrap_or("?").to_string()
}

/// The directory collecting this `cargo test` run's not-run lines. Cargo
/// runs every test binary as its own child, one after another, so the
/// parent's pid and start time name one run; tests/zz_not_run.rs reads and
/// removes it at the end.
pub fn not_run_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(NOT_RUN_DIR) {
        return dir.into();
    }
    let parent = std::os::unix::process::parent_id();
    let started = std::fs::read_to_string(format!("/proc/{parent}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').and_then(|(_, r)| r.split_whitespace().nth(19).map(str::to_string)))
        .unwrap_or_default();
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("not-run").join(format!("{parent}-{started}"))
}

/// Is every missing need a failure (CI)?
pub fn all_must_run() -> bool {
    std::env::var_os(ALL).is_some_and(|v| v != "0" && !v.is_empty())
}

/// `true` when `have`; otherwise reports the running test as not run,
/// `reason` and the command `to_run` that would let it run, and returns
/// `false` (under `BGRUN_TEST_ALL=1` it panics instead).
#[must_use]
pub fn need(have: bool, reason: &str, to_run: &str) -> bool {
    if have {
        return true;
    }
    let line = format!("NOT RUN: {}: {reason}; to run it: {to_run}", test_name());
    assert!(!all_must_run(), "{line} ({ALL} is set: every test must run)");
    // Straight to the file descriptor: libtest captures eprintln!.
    let _ = writeln!(std::io::stderr(), "{line}");
    let dir = not_run_dir();
    let _ = std::fs::create_dir_all(&dir);
    let file = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("lines"));
    // One write of one short line: appends from parallel tests stay whole.
    let _ = file.and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
    false
}

/// Is `tool` on PATH (or in /usr/sbin, where sshd lives)?
pub fn on_path(tool: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).chain([PathBuf::from("/usr/sbin")]).any(|d| d.join(tool).is_file())
}

/// The Debian package that provides `tool`.
fn package_of(tool: &str) -> &str {
    match tool {
        "man" => "man-db",
        "script" => "bsdutils",
        "ssh" | "ssh-keygen" => "openssh-client",
        "sshd" => "openssh-server",
        "unshare" | "setpriv" => "util-linux",
        "newuidmap" => "uidmap",
        other => other,
    }
}

/// The command that installs Debian `packages`, with sudo unless root.
pub fn apt_get(packages: &str) -> String {
    let sudo = if nix::unistd::geteuid().is_root() { "" } else { "sudo " };
    format!("{sudo}apt-get install {packages}")
}

/// Is `tool` installed? Reported as not run (with its package) if not.
#[must_use]
pub fn need_tool(tool: &str) -> bool {
    need_tools(&[tool])
}

/// Are all these tools installed? Reported as not run if not, naming every
/// missing one and one command that installs them all.
#[must_use]
pub fn need_tools(tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools.iter().copied().filter(|t| !on_path(t)).collect();
    let mut packages: Vec<&str> = missing.iter().map(|t| package_of(t)).collect();
    packages.sort();
    packages.dedup();
    let verb = if missing.len() == 1 { "is" } else { "are" };
    need(missing.is_empty(), &format!("{} {verb} not installed", missing.join(" and ")), &apt_get(&packages.join(" ")))
}

/// Runs the calling test again, alone, inside new mount and pid namespaces
/// (and a user namespace that maps the caller to root, unless the caller
/// is root already): there it may mount, write the kernel's next pid or
/// switch users and change nothing outside, and whatever it starts dies
/// with the namespace's first process.
///
/// Returns `true` in the copy inside, which goes on with the test; `false`
/// outside, once the copy has passed (it panics with the copy's output
/// when the copy fails), or when namespaces are not available here (then
/// the test is reported as not run). `why` says what the test does there.
/// With `second_user`, the namespace also holds user id 1000 (another
/// user, with no passwd entry: see [`as_another_user`]).
#[must_use]
pub fn isolated(why: &str, second_user: bool) -> bool {
    if std::env::var_os(INSIDE).is_some() {
        return true;
    }
    if let Err((reason, to_run)) = namespaces() {
        return need(false, &format!("{why} needs namespaces: {reason}"), &to_run);
    }
    let root = nix::unistd::geteuid().is_root();
    let mut c = Command::new("unshare");
    if !root {
        c.args(["--user", "--map-root-user"]);
        if second_user {
            match second_ids() {
                Ok((uid, gid)) => {
                    c.arg(format!("--map-users={uid},{OTHER_ID},1")).arg(format!("--map-groups={gid},{OTHER_ID},1"));
                }
                Err((reason, to_run)) => return need(false, &format!("{why} needs {reason}"), &to_run),
            }
        }
    }
    let name = test_name();
    // The namespace's first process is a shell that waits for the test and
    // meanwhile reaps the orphans given to it (finished watchers), as init
    // does; when it ends, the kernel kills everything left inside.
    c.args(["--mount", "--pid", "--fork", "--mount-proc", "--kill-child", "sh", "-c", r#""$@" & wait $!"#, "sh"])
        .arg(std::env::current_exe().expect("the test binary's path"))
        .args(["--exact", &name, "--nocapture", "--test-threads=1"])
        .env(INSIDE, format!("{}.{}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst)))
        .env(NOT_RUN_DIR, not_run_dir())
        .stdin(Stdio::null());
    let out = c.output().expect("running unshare");
    let (so, se) = (stdout(&out), stderr(&out));
    for line in se.lines().filter(|l| l.starts_with("NOT RUN: ")) {
        let _ = writeln!(std::io::stderr(), "{line}");
    }
    assert!(out.status.success(), "{name}, run inside namespaces ({why}), failed:\n{so}{se}");
    assert!(so.contains(&format!("test {name} ... ok")), "{name} did not run inside namespaces:\n{so}{se}");
    false
}

/// The id, inside the namespaces of [`isolated`], of the second user.
pub const OTHER_ID: u32 = 1000;

/// `sh -c script` as the second user of [`isolated`]`(…, true)`: user and
/// group [`OTHER_ID`], no supplementary groups (where a user namespace
/// forbids setgroups(2), the unmapped ones it has, which grant nothing in
/// the store: its modes are checked too).
pub fn as_another_user(script: &str) -> Output {
    let id = OTHER_ID.to_string();
    let denied = std::fs::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "deny");
    Command::new("setpriv")
        .args(["--reuid", &id, "--regid", &id, if denied { "--keep-groups" } else { "--clear-groups" }])
        .args(["sh", "-c", script])
        .env("HOME", "/")
        .stdin(Stdio::null())
        .output()
        .expect("running setpriv")
}

/// Can [`isolated`] make its namespaces here? Tried once per test binary;
/// the error is the reason and the command that would make it work.
fn namespaces() -> Result<(), (String, String)> {
    static TRIED: OnceLock<Result<(), (String, String)>> = OnceLock::new();
    TRIED
        .get_or_init(|| {
            if !on_path("unshare") {
                return Err(("unshare is not installed".into(), apt_get("util-linux")));
            }
            let mut c = Command::new("unshare");
            if !nix::unistd::geteuid().is_root() {
                c.args(["--user", "--map-root-user"]);
            }
            let out = c
                .args(["--mount", "--pid", "--fork", "--mount-proc", "true"])
                .stdin(Stdio::null())
                .output()
                .map_err(|e| (format!("running unshare: {e}"), apt_get("util-linux")))?;
            if out.status.success() {
                return Ok(());
            }
            let said = stderr(&out).trim().replace('\n', " ");
            let sysctl = |name: &str| std::fs::read_to_string(format!("/proc/sys/{name}")).unwrap_or_default();
            let to_run = if sysctl("kernel/unprivileged_userns_clone").trim() == "0" {
                "sudo sysctl -w kernel.unprivileged_userns_clone=1"
            } else if sysctl("user/max_user_namespaces").trim() == "0" {
                "sudo sysctl -w user.max_user_namespaces=15000"
            } else if sysctl("kernel/apparmor_restrict_unprivileged_userns").trim() == "1" {
                "sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0"
            } else {
                "run the tests where unshare(2) is allowed (not in an unprivileged container)"
            };
            Err((format!("unshare failed: {said}"), to_run.into()))
        })
        .clone()
}

/// A host user and group id this user may map into a user namespace as
/// the second user: the first of its subordinate ids, which newuidmap
/// (package uidmap) grants.
fn second_ids() -> Result<(u32, u32), (String, String)> {
    if !on_path("newuidmap") || !on_path("newgidmap") {
        return Err(("a second user id, which needs newuidmap".into(), apt_get("uidmap")));
    }
    let me = nix::unistd::User::from_uid(nix::unistd::getuid()).ok().flatten();
    let first = |file: &str| -> Option<u32> {
        let me = me.as_ref()?;
        let text = std::fs::read_to_string(file).ok()?;
        text.lines().find_map(|l| {
            let mut f = l.split(':');
            let who = f.next()?;
            (who == me.name || who == me.uid.to_string()).then(|| f.next()?.parse().ok())?
        })
    };
    match (first("/etc/subuid"), first("/etc/subgid")) {
        (Some(uid), Some(gid)) => Ok((uid, gid)),
        _ => Err((
            "a second user id, and this user has no subordinate ids in /etc/subuid and /etc/subgid".into(),
            "sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 \"$USER\"".into(),
        )),
    }
}
