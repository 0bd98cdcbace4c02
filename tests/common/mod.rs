//! What every integration test shares: a temporary store, the real
//! binaries, and waiting for a condition with a deadline (never a fixed
//! sleep).
#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
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
        let root = std::env::temp_dir().join(format!("bgrun-test-{}-{n}", std::process::id()));
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

    pub fn log(&self, id: &str) -> String {
        String::from_utf8_lossy(&std::fs::read(self.job_dir(id).join("log")).unwrap_or_default()).into_owned()
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

/// Is `tool` on PATH? Tests that need one fail loudly without it.
pub fn require(tool: &str) {
    let found =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file())).unwrap_or(false);
    assert!(found, "{tool} is not installed: .ci/run installs it (apt-get install {tool})");
}

pub fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("writing a test file");
}
