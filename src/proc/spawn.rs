//! Launching (nq's handshake, with one more fork):
//! 1. The launcher (`run`) stages the job directory, then forks the watcher
//!    and waits on a pipe for one line from it.
//! 2. The watcher calls `setsid` (its own session: no SIGHUP from the
//!    caller's terminal), points its stdio at /dev/null, blocks SIGCHLD and
//!    SIGUSR1, makes itself a child subreaper, and forks the job.
//! 3. The job calls `setsid` (its own session and process group) and waits
//!    on a second pipe. The watcher reads the job's start time from /proc,
//!    publishes the job directory (with `pid` in it), then says "go": only
//!    now does the job exec, with /dev/null as stdin and the log as stdout
//!    and stderr. Then the watcher sends the launcher the job's id.
//!
//! (The watcher's wait, once the job runs, is `wait`'s.)

use std::ffi::{CStr, CString, OsString};
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Instant;

/// The watcher's end of the launcher's pipe.
pub struct Handshake(File);

impl Handshake {
    /// Sends the one line the launcher waits for, and closes the pipe.
    pub fn send(mut self, line: &str) {
        let _ = self.0.write_all(format!("{}\n", line.replace('\n', " ")).as_bytes());
    }
    pub fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// Forks the watcher, which runs `in_watcher` in its own session and exits
/// with what it returns. The launcher gets the one line the watcher sends
/// (empty if it died first). Call only while single-threaded.
pub fn detach(in_watcher: impl FnOnce(Handshake) -> i32) -> Result<String, String> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    // SAFETY: the process is single-threaded here (no thread is started
    // before a launch; a watcher's pump thread, when a watcher starts the
    // next queued job, waits on a lock the caller holds and holds none),
    // so the child may run ordinary code.
    match unsafe { nix::unistd::fork() } {
        Err(e) => Err(format!("fork: {e}")),
        Ok(nix::unistd::ForkResult::Parent { .. }) => {
            drop(w);
            let mut line = String::new();
            let _ = BufReader::new(File::from(r)).read_line(&mut line);
            Ok(line.trim_end().to_string())
        }
        Ok(nix::unistd::ForkResult::Child) => {
            drop(r);
            let _ = nix::unistd::setsid();
            reset_signals(&DETACHED_IGNORES);
            let _ = redirect_stdio_to_null();
            let code = in_watcher(Handshake(File::from(w)));
            // SAFETY: ends the watcher without running the launcher's
            // atexit handlers or flushing its buffers a second time.
            unsafe { libc::_exit(code) }
        }
    }
}

/// Runs `f` in a grandchild that is not this process's child (the child
/// between exits at once), and returns what it wrote, if it did within
/// `within`. What `f` uses, and what the processes it runs use (a squeue
/// call), are never counted in this process's usage of its children
/// (what wait4 says of the ones it reaps: a job's peak memory and CPU
/// time), and its threads never live here. Call only while single-threaded, and before
/// becoming a subreaper (or the grandchild would come back to this one).
pub fn in_grandchild(within: std::time::Duration, f: impl FnOnce() -> String) -> Option<String> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ok()?;
    // SAFETY: single-threaded (see above), so both children may run
    // ordinary code.
    match unsafe { nix::unistd::fork() }.ok()? {
        nix::unistd::ForkResult::Child => {
            drop(r);
            // SAFETY: as above.
            if let Ok(nix::unistd::ForkResult::Child) = unsafe { nix::unistd::fork() } {
                // Nothing of the parent's (its log, its lock) is held here.
                close_fds_except(&[w.as_raw_fd()]);
                let _ = File::from(w).write_all(f().as_bytes());
            }
            // SAFETY: ends either child without the parent's exit handlers.
            unsafe { libc::_exit(0) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(w);
            let _ = nix::sys::wait::waitpid(child, None);
            read_within(File::from(r), Instant::now() + within)
        }
    }
}

/// What the pipe `r` gives until its writer closes it, at most 4 KiB, if
/// that happens before `until`.
fn read_within(mut r: File, until: Instant) -> Option<String> {
    use std::io::Read;
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        let left = until.saturating_duration_since(Instant::now());
        let mut pfd = libc::pollfd { fd: r.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        let ms = left.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        match unsafe { libc::poll(&mut pfd, 1, ms) } {
            n if n > 0 => {}
            0 => return None,
            _ if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => continue,
            _ => return None,
        }
        match r.read(&mut buf) {
            Ok(0) => return Some(String::from_utf8_lossy(&got).into_owned()),
            Ok(n) if got.len() + n <= 4096 => got.extend_from_slice(&buf[..n]),
            Ok(_) => return None,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

fn redirect_stdio_to_null() -> Result<(), nix::Error> {
    let null = nix::fcntl::open("/dev/null", nix::fcntl::OFlag::O_RDWR, nix::sys::stat::Mode::empty())?;
    for fd in 0..3 {
        // SAFETY: dup2 onto the standard descriptors, which we own.
        unsafe { libc::dup2(null.as_raw_fd(), fd) };
    }
    Ok(())
}

/// Linux's signals are 1 to 64.
const NSIG: i32 = 65;

/// The signals a detached process (a watcher) ignores: every one whose
/// default would end it, but SIGTERM (which a watcher takes as a stop) and
/// SIGUSR1 (a stop request), which it blocks and waits for, and SIGKILL;
/// SIGCHLD keeps its default (ignored, the kernel would reap the job
/// before the watcher sees how it ended). A SIGINT, SIGHUP, SIGQUIT,
/// SIGUSR2, SIGALRM or real-time signal sent to a watcher by mistake then
/// never leaves its job `lost` (the job itself gets every signal at its
/// default). SIGPIPE: the launcher may be gone when it answers; SIGXFSZ:
/// under `ulimit -f` a write past the limit fails with EFBIG instead.
const DETACHED_IGNORES: [i32; 56] = {
    let mut all = [0; 56];
    let (mut sig, mut n) = (1, 0);
    while sig < NSIG {
        let kept = matches!(sig, libc::SIGKILL | libc::SIGSTOP | libc::SIGCHLD | libc::SIGCONT)
            || matches!(sig, libc::SIGTERM | libc::SIGUSR1 | libc::SIGWINCH | libc::SIGURG);
        if !kept {
            all[n] = sig;
            n += 1;
        }
        sig += 1;
    }
    assert!(n == all.len(), "every signal but the eight kept");
    all
};

/// Every signal back to its default action, but for `ignored`, and none
/// blocked: nothing the launcher's parent set (an ignored SIGCHLD would
/// make the kernel reap the job before the watcher sees how it ended; an
/// ignored SIGINT would make the job deaf to it) reaches the watcher.
fn reset_signals(ignored: &[i32]) {
    for sig in 1..NSIG {
        // SAFETY: rt_sigaction with a valid action (below).
        unsafe { set_disposition(sig, if ignored.contains(&sig) { libc::SIG_IGN } else { libc::SIG_DFL }) };
    }
    let _ = nix::sys::signal::SigSet::empty().thread_set_mask();
}

/// Sets `sig`'s disposition to SIG_DFL or SIG_IGN with the system call
/// itself: the C library refuses the signals it reserves (32 and 33),
/// which an ignoring parent still passes on. The kernel's sigaction starts
/// with the handler; no flags, no restorer and an empty mask are zeros, so
/// this layout holds on every Linux architecture that has rt_sigaction.
/// Async-signal-safe. SIGKILL and SIGSTOP fail harmlessly.
unsafe fn set_disposition(sig: i32, handler: libc::sighandler_t) {
    let act: [usize; 4] = [handler, 0, 0, 0];
    libc::syscall(libc::SYS_rt_sigaction, sig, act.as_ptr(), std::ptr::null::<usize>(), 8usize);
}

/// Closes every descriptor from 3 up except `keep`: close_range(2) over
/// the gaps, else (before Linux 5.9) each one listed in /proc/self/fd.
pub fn close_fds_except(keep: &[RawFd]) {
    let mut keep: Vec<u32> = keep.iter().filter_map(|&fd| u32::try_from(fd).ok()).filter(|&fd| fd > 2).collect();
    keep.sort_unstable();
    keep.dedup();
    let mut first = 3u32;
    let mut ranged = true;
    for &k in keep.iter().chain(std::iter::once(&u32::MAX)) {
        if k > first {
            // SAFETY: closes descriptors nothing in this process uses.
            ranged &= unsafe { libc::close_range(first, k - 1, 0) } == 0;
        }
        first = k.saturating_add(1);
    }
    if ranged {
        return;
    }
    let fds: Vec<RawFd> = match fs::read_dir("/proc/self/fd") {
        Ok(rd) => rd.flatten().filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok())).collect(),
        Err(_) => (3..1024).collect(),
    };
    for fd in fds {
        if fd > 2 && !keep.contains(&(fd as u32)) {
            // SAFETY: closing a descriptor nothing in this process uses.
            unsafe { libc::close(fd) };
        }
    }
}

/// The job, forked and waiting for the word to exec.
pub struct JobChild {
    pub pid: i32,
    go: Option<File>,
}

impl JobChild {
    /// Lets the job exec.
    pub fn go(&mut self) {
        if let Some(mut f) = self.go.take() {
            let _ = f.write_all(b"g");
        }
    }
}

/// Forks the job: its own session, then (on "go") stdin from /dev/null,
/// stdout and stderr to `log`, every signal at its default action and none
/// blocked, no other descriptor open, and exec. If the watcher drops the
/// child without "go", the job exits without running anything. A job
/// started from a queue gets the environment (`env`) and the working
/// directory (`cwd`) it was queued with; a directory gone since fails the
/// job (126).
pub fn fork_job(
    program: &Path,
    argv: &[OsString],
    log: RawFd,
    env: Option<&[OsString]>,
    cwd: Option<&Path>,
) -> Result<JobChild, String> {
    let cprog = CString::new(program.as_os_str().as_bytes()).map_err(|_| "command holds a NUL byte".to_string())?;
    let cargs: Vec<CString> = argv
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<_, _>>()
        .map_err(|_| "an argument holds a NUL byte".to_string())?;
    let mut ptrs: Vec<*const libc::c_char> = cargs.iter().map(|c| c.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    let cenv: Option<Vec<CString>> = env.map(|e| e.iter().filter_map(|v| CString::new(v.as_bytes()).ok()).collect());
    let envp: Option<Vec<*const libc::c_char>> =
        cenv.as_ref().map(|e| e.iter().map(|c| c.as_ptr()).chain(std::iter::once(std::ptr::null())).collect());
    let ccwd = match cwd {
        Some(d) => Some(CString::new(d.as_os_str().as_bytes()).map_err(|_| "directory holds a NUL byte".to_string())?),
        None => None,
    };
    let start = Start { prog: &cprog, argv: &ptrs, envp: envp.as_deref(), cwd: ccwd.as_deref() };
    let null = CString::new("/dev/null").expect("no NUL in a literal");
    let pipe = || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"));
    let (gr, gw) = pipe()?;
    let (rr, rw) = pipe()?;
    // SAFETY: single-threaded; the child only makes system calls and execs.
    match unsafe { nix::unistd::fork() } {
        Err(e) => Err(format!("fork: {e}")),
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            drop(gr);
            drop(rw);
            // Wait until the job has its own session and group, so that
            // once its id is printed, `kill -- -PID` reaches it.
            let mut b = [0u8; 1];
            let _ = std::io::Read::read(&mut File::from(rr), &mut b);
            Ok(JobChild { pid: child.as_raw(), go: Some(File::from(gw)) })
        }
        Ok(nix::unistd::ForkResult::Child) => {
            drop(gw);
            drop(rr);
            // SAFETY: system calls on descriptors and memory this child owns.
            unsafe { exec_job(gr, rw, log, &null, &start) }
        }
    }
}

/// What the job's child execs, prepared before the fork.
struct Start<'a> {
    prog: &'a CStr,
    argv: &'a [*const libc::c_char],
    envp: Option<&'a [*const libc::c_char]>,
    cwd: Option<&'a CStr>,
}

unsafe fn exec_job(go: OwnedFd, ready: OwnedFd, log: RawFd, null: &CStr, start: &Start) -> ! {
    let prog = start.prog;
    libc::setsid();
    libc::write(ready.as_raw_fd(), b"r".as_ptr().cast(), 1);
    drop(ready);
    let mut b = [0u8; 1];
    if libc::read(go.as_raw_fd(), b.as_mut_ptr().cast(), 1) != 1 {
        libc::_exit(125);
    }
    let nullfd = libc::open(null.as_ptr(), libc::O_RDONLY);
    if nullfd >= 0 {
        libc::dup2(nullfd, 0);
    }
    libc::dup2(log, 1);
    libc::dup2(log, 2);
    for sig in 1..NSIG {
        set_disposition(sig, libc::SIG_DFL);
    }
    let mut empty: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut empty);
    libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) != 0 {
        for fd in 3..1024 {
            libc::close(fd);
        }
    }
    if let Some(dir) = start.cwd {
        if libc::chdir(dir.as_ptr()) != 0 {
            let err = std::io::Error::last_os_error();
            let msg = format!("run: cannot enter {}: {err}\n", dir.to_string_lossy());
            libc::write(2, msg.as_ptr().cast(), msg.len());
            libc::_exit(126);
        }
    }
    match start.envp {
        Some(envp) => libc::execve(prog.as_ptr(), start.argv.as_ptr(), envp.as_ptr()),
        None => libc::execv(prog.as_ptr(), start.argv.as_ptr()),
    };
    let err = std::io::Error::last_os_error();
    let code = if err.raw_os_error() == Some(libc::ENOENT) { 127 } else { 126 };
    let msg = format!("run: {}: {err}\n", prog.to_string_lossy());
    libc::write(2, msg.as_ptr().cast(), msg.len());
    libc::_exit(code)
}
