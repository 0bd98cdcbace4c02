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
//! run's not-run directory (one file per test, see need.rs), which
//! tests/zz_not_run.rs, the last test binary cargo runs, prints with a
//! count. With `BGRUN_TEST_ALL=1` (CI) a missing need fails the test
//! instead.
//!
//! The rest is in files by subject: `need` (what a test needs, the
//! not-run record), `proc` (processes: finding, signalling, waiting,
//! `Leftovers`), `store` (the store's files read directly), `ssh` (several
//! hosts, each a real sshd in namespaces of its own), `jobs`
//! (starting jobs as the tests do and reading what the commands print).
#![allow(dead_code)]

mod jobs;
mod need;
mod proc;
mod ssh;
mod store;

// Each test binary uses a part (tests/zz_not_run.rs only `need`).
#[allow(unused_imports)]
pub use jobs::*;
pub use need::*;
#[allow(unused_imports)]
pub use proc::*;
#[allow(unused_imports)]
pub use ssh::*;
#[allow(unused_imports)]
pub use store::*;

use need::INSIDE;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// For things that normally take milliseconds, on a busy two-core machine.
pub const SOON: Duration = Duration::from_secs(20);

/// The five commands.
pub const NAMES: [&str; 5] = ["run", "runs", "runlog", "runrm", "job"];

/// The repository's top directory.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A temporary directory holding the store (`RUN_DIR`) and a HOME; removed
/// when dropped.
pub struct Env {
    pub root: PathBuf,
    pub store: PathBuf,
    pub home: PathBuf,
}

pub(crate) static COUNTER: AtomicUsize = AtomicUsize::new(0);

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
        if program == "script" {
            // A terminal's session as a user's is, whatever this test run
            // inherited (`nohup cargo test` ignores SIGHUP in every child).
            // SAFETY: signal(2) is async-signal-safe.
            unsafe {
                std::os::unix::process::CommandExt::pre_exec(&mut c, || {
                    libc::signal(libc::SIGHUP, libc::SIG_DFL);
                    Ok(())
                });
            }
        }
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
