//! The transport: one ssh process per call (or, for `local`, this
//! machine's own entry point), the request written to its stdin, the
//! answer's header checked, and what went wrong said in one line.

use super::proto::{self, Request};
use super::{LOCAL, SERVE_WORD};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// The command every login shell (bash, zsh, fish, dash) parses the same
/// way: no quoting of ours, the arguments go on stdin. `runs` is looked
/// for on the remote PATH, then in `~/.local/bin` (a non-interactive ssh
/// session's PATH often lacks it). `"$PATH"":…"`, not `"$PATH:…"`: a
/// colon right after a variable is a modifier in zsh and csh.
pub const REMOTE_COMMAND: &str = r#"env "PATH=$PATH"":$HOME/.local/bin" runs __bgrun-remote"#;

/// The connect timeout when the ssh configuration sets none.
const CONNECT_TIMEOUT_S: u32 = 10;
/// The most of the answer read while looking for its header.
const MAX_BEFORE_HEADER: u64 = 64 * 1024;
/// The most stderr lines kept before the header (a failing ssh says one).
const MAX_EARLY_LINES: usize = 50;
/// How long the far side may take to answer once ssh is connected (a
/// login shell's start-up included): past it, the call is ended.
const HEADER_WAIT_S: u64 = 60;

/// The ssh command for `dest`: `ssh_words` (RUN_SSH, or `ssh`), then
/// `-T` (no terminal), BatchMode (no prompt on a terminal that is not
/// there) and, unless the configuration for `dest` sets them, a connect
/// timeout and keep-alives (a dropped connection is noticed within a
/// minute), then `remote`, a fixed command string.
pub fn command(ssh_words: &[String], dest: &str, remote: &str) -> Command {
    let (program, words) = ssh_words.split_first().map_or(("ssh", &[][..]), |(p, w)| (p.as_str(), w));
    let mut c = Command::new(program);
    c.args(words).args(["-T", "-o", "BatchMode=yes"]);
    let set = configured(program, words, dest);
    if !set.contains(&"connecttimeout") {
        c.args(["-o", &format!("ConnectTimeout={CONNECT_TIMEOUT_S}")]);
    }
    if !set.contains(&"serveraliveinterval") {
        c.args(["-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=3"]);
    }
    c.args(["--", dest, remote]);
    c
}

/// Which of the options we would add the ssh configuration already sets
/// for `dest` (`ssh -G`, which reads the configuration and connects to
/// nothing); none when it cannot tell.
fn configured(program: &str, words: &[String], dest: &str) -> Vec<&'static str> {
    let out = Command::new(program)
        .args(words)
        .args(["-G", "--", dest])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut ch| {
            let mut s = String::new();
            let read = ch.stdout.take().map(|o| o.take(256 * 1024).read_to_string(&mut s));
            ch.wait()?;
            read.transpose().map(|_| s)
        })
        .unwrap_or_default();
    let mut set = Vec::new();
    for l in out.lines() {
        match l.split_once(' ') {
            Some(("connecttimeout", v)) if v != "none" => set.push("connecttimeout"),
            Some(("serveraliveinterval", v)) if v != "0" => set.push("serveraliveinterval"),
            _ => {}
        }
    }
    set
}

/// One call under way: the answer's stream (past its header), the
/// process, and the stream to it (kept open: closing it ends the call).
pub struct Session {
    child: Arc<Mutex<Child>>,
    /// Told when the header is read or given up on; the watchdog kills
    /// the call when it hears nothing within [`HEADER_WAIT_S`].
    answered: Option<mpsc::Sender<()>>,
    timed_out: Arc<AtomicBool>,
    pub out: BufReader<ChildStdout>,
    _stdin: Option<ChildStdin>,
    err: Option<JoinHandle<Vec<String>>>,
    seen: Arc<AtomicBool>,
}

/// Why a call got no answer, each said in one line by [`Trouble::line`].
#[derive(Debug)]
pub enum Trouble {
    /// ssh failed (exit 255) before the far side answered: what ssh said.
    Unreachable(String),
    /// The far shell found no `runs`.
    NotInstalled,
    /// A bgrun that speaks another protocol: its version.
    Version(u32, String),
    /// Something answered, not bgrun's entry point: what it said.
    Garbage(String),
    /// The process could not even start.
    Spawn(String),
    /// Nothing came within [`HEADER_WAIT_S`].
    Silent,
}

impl Trouble {
    pub fn line(&self, dest: &str) -> String {
        let install = format!("job install {dest}");
        match self {
            Trouble::Unreachable(said) => format!("{dest}: cannot reach it: {said}"),
            Trouble::NotInstalled => format!(
                "{dest}: bgrun is not installed there (no 'runs' on its PATH nor in ~/.local/bin); to put it there: {install}"
            ),
            Trouble::Version(p, v) => format!(
                "{dest}: bgrun there is version {v} (remote protocol {p}), this one {} (protocol {}): \
                 they cannot talk; to put this version there: {install}",
                env!("CARGO_PKG_VERSION"),
                proto::PROTOCOL
            ),
            Trouble::Garbage(said) => format!(
                "{dest}: the answer is not bgrun's (it said: {said}); an old bgrun or another 'runs' is there? \
                 to put this version there: {install}"
            ),
            Trouble::Spawn(e) => format!("{dest}: {e}"),
            Trouble::Silent => format!("{dest}: no answer within {HEADER_WAIT_S} s; the call was ended"),
        }
    }
}

/// Starts the call: spawns ssh (or this machine's entry point for
/// `local`), sends the request, and reads up to the answer's header.
/// `live` gets the far side's stderr lines once it has answered (before,
/// they are kept to explain a failure).
pub fn call(
    ssh_words: &[String],
    dest: &str,
    req: &Request,
    live: impl Fn(&str) + Send + 'static,
) -> Result<Session, Trouble> {
    let mut c = if dest == LOCAL {
        let exe = std::env::current_exe().map_err(|e| Trouble::Spawn(format!("finding this program: {e}")))?;
        let mut c = Command::new(exe);
        c.arg0("runs").arg(SERVE_WORD);
        c
    } else {
        command(ssh_words, dest, REMOTE_COMMAND)
    };
    c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().map_err(|e| {
        let what = c.get_program().to_string_lossy().into_owned();
        Trouble::Spawn(format!("running {what}: {e}"))
    })?;
    let seen = Arc::new(AtomicBool::new(false));
    let err = child.stderr.take().map(|e| {
        let seen = seen.clone();
        std::thread::spawn(move || relay(e, &seen, live))
    });
    let mut stdin = child.stdin.take();
    let out = BufReader::new(child.stdout.take().expect("stdout was piped"));
    let child = Arc::new(Mutex::new(child));
    // The watchdog: the child is killed only while the call has not
    // answered, so before anything reaps it (its pid is still its own).
    let (answered, heard) = mpsc::channel::<()>();
    let timed_out = Arc::new(AtomicBool::new(false));
    let (watched, flag) = (child.clone(), timed_out.clone());
    std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = heard.recv_timeout(Duration::from_secs(HEADER_WAIT_S)) {
            if let Ok(mut c) = watched.lock() {
                // Still unanswered now that the child is ours to touch?
                if let Err(mpsc::TryRecvError::Empty) = heard.try_recv() {
                    flag.store(true, Ordering::Release);
                    let _ = c.kill();
                }
            }
        }
    });
    // A peer that is gone makes this fail (EPIPE): what ssh says explains it.
    if let Some(s) = stdin.as_mut() {
        let _ = s.write_all(&req.encode()).and_then(|_| s.flush());
    }
    let mut s = Session { child, answered: Some(answered), timed_out, out, _stdin: stdin, err, seen };
    let header = s.header();
    // Under the child's lock: the watchdog is done with it after this.
    if let Ok(_guard) = s.child.lock() {
        drop(s.answered.take());
    }
    if s.timed_out.load(Ordering::Acquire) {
        return Err(Trouble::Silent);
    }
    match header {
        Ok(()) => Ok(s),
        Err(said) => Err(s.trouble(said)),
    }
}

/// Copies the far side's stderr lines to `live` once it has answered;
/// returns the lines kept before (at most [`MAX_EARLY_LINES`], each cut at
/// 1 KiB) when it never did, else the last line (ssh's word on a lost
/// connection).
fn relay(e: impl Read, seen: &AtomicBool, live: impl Fn(&str)) -> Vec<String> {
    let mut early: Vec<String> = Vec::new();
    let mut last = None;
    let mut r = BufReader::new(e);
    let mut b = Vec::new();
    loop {
        b.clear();
        match r.by_ref().take(1024).read_until(b'\n', &mut b) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if !b.ends_with(b"\n") {
            // A line over 1 KiB: the rest of it is dropped.
            let mut rest = Vec::new();
            let _ = r.by_ref().take(1 << 20).read_until(b'\n', &mut rest);
        }
        let line = String::from_utf8_lossy(&b).trim_end().to_string();
        if seen.load(Ordering::Acquire) {
            for l in early.drain(..) {
                live(&l);
            }
            live(&line);
            last = Some(line);
        } else if early.len() < MAX_EARLY_LINES {
            early.push(line);
        }
    }
    if seen.load(Ordering::Acquire) {
        for l in early.drain(..) {
            live(&l);
        }
        return last.into_iter().collect();
    }
    early
}

impl Session {
    /// Reads lines up to the header: `Err(what came instead)`. Lines before
    /// it (a login script's chatter) are passed over.
    fn header(&mut self) -> Result<(), String> {
        let mut said = String::new();
        let mut r = (&mut self.out).take(MAX_BEFORE_HEADER);
        let mut line = String::new();
        loop {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) => return Err(said),
                Err(e) => return Err(format!("reading its answer: {e}")),
                Ok(_) => {}
            }
            match proto::parse_header(&line) {
                Some((p, _)) if p == proto::PROTOCOL => {
                    self.seen.store(true, Ordering::Release);
                    return Ok(());
                }
                Some((p, v)) => return Err(format!("\0{p} {v}")),
                // Our own request, echoed: nothing will answer it.
                None if proto::is_request(&line) => return Err(line.trim().chars().take(200).collect()),
                None if said.is_empty() => said = line.trim().chars().take(200).collect(),
                None => {}
            }
        }
    }

    /// Why the call failed, once its process has ended.
    fn trouble(mut self, said: String) -> Trouble {
        if let Some(v) = said.strip_prefix('\0') {
            let (p, v) = v.split_once(' ').unwrap_or((v, "?"));
            return Trouble::Version(p.parse().unwrap_or(0), v.to_string());
        }
        drop(self._stdin.take());
        let status = self.wait();
        let early = self.err.take().and_then(|h| h.join().ok()).unwrap_or_default();
        let last = early.iter().rev().find(|l| !l.trim().is_empty()).cloned().unwrap_or_default();
        match status.and_then(|s| s.code()) {
            Some(255) => Trouble::Unreachable(if last.is_empty() { "ssh failed".into() } else { last }),
            Some(126 | 127) if said.is_empty() => Trouble::NotInstalled,
            _ => {
                let what = if said.is_empty() { last } else { said };
                Trouble::Garbage(if what.is_empty() { "nothing".into() } else { what })
            }
        }
    }

    /// Waits for the call to end: its exit status and, for a status of
    /// ssh's own (255: the connection failed), the last thing ssh said.
    pub fn finish(mut self) -> (Option<ExitStatus>, Option<String>) {
        drop(self._stdin.take());
        let status = self.wait();
        let early = self.err.take().and_then(|h| h.join().ok()).unwrap_or_default();
        let said = early.last().cloned();
        (status, said)
    }
}

impl Session {
    fn wait(&self) -> Option<ExitStatus> {
        self.child.lock().ok().and_then(|mut c| c.wait().ok())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        drop(self._stdin.take());
        // Our own child: gone once its stdin closes, reaped here.
        if self.err.is_some() {
            let _ = self.wait();
        }
    }
}
