//! Processes: the only home of nix (but for one `openat` in `files` and
//! the `fallocate`s and one `lseek(SEEK_DATA)` in `store::cap`), `unsafe`,
//! fork/setsid/exec, signals and liveness. This file: the process's
//! set-up before `main` (`set_up_std`), what /proc says of a process,
//! liveness, names and finding executables; `signal`: signals only to
//! processes proven to be the job's (pidfds); `spawn`: detaching the
//! watcher and forking the job; `wait`: the watcher's wait (reaping, its
//! signals, a deadline); `shed`: giving back the launcher's memory that a
//! waiting watcher does not use; `tether`: the remote entry point's wait,
//! which ends its front when the caller's connection ends.
//!
//! Liveness rests on (pid, start time, boot id), not on the pid alone: a pid
//! reused after a wrap-around or a reboot has another start time or another
//! boot id. We chose this over nq's inherited lock because a lock is held by
//! every process that inherits it, so a background child left behind would
//! keep a finished job "running"; the start time names exactly one process.
//! A zombie counts as ended.

mod shed;
mod signal;
mod spawn;
mod tether;
mod wait;

pub use shed::shed;
pub use signal::{
    descendants, job_tree, signal_leader, signal_proven, signal_tree, tree_left, Proc, SIGKILL, SIGTERM, SIGUSR1,
};
pub use spawn::{close_fds_except, detach, fork_job, in_grandchild, Handshake};
pub use tether::wait_tethered;
pub use wait::{
    become_step, become_watcher, cwd_of, has_children, hold_term, mark_watcher, marked_watcher, next_wake,
    settle_watcher, term_pending, term_waiting, ChildEnd, Wake,
};

use std::ffi::{CString, OsStr};
use std::fs::{self, File};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
#[cfg(test)]
use std::time::{Duration, Instant};

/// What std's runtime would have done before `main` and matters here
/// (see `bgrun::start`): descriptors 0 to 2 open (on /dev/null if the
/// caller closed them, so that no file of the store ever becomes our
/// stdout), and SIGPIPE ignored (a closed pipe is an error to handle, not
/// a death).
pub fn set_up_std() {
    open_std_fds();
    // SAFETY: setting a signal's disposition to ignored.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

/// Opens /dev/null on any of descriptors 0 to 2 that is closed (one poll,
/// as std's runtime does).
fn open_std_fds() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd { fd, events: 0, revents: 0 });
    // SAFETY: poll on a valid array, no timeout.
    if unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) } <= 0 {
        return;
    }
    for p in fds.iter().filter(|p| p.revents & libc::POLLNVAL != 0) {
        // SAFETY: opening /dev/null; the lowest free descriptor is `p.fd`,
        // since the ones below it are open by now.
        let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        if fd >= 0 && fd != p.fd {
            // SAFETY: closing the descriptor just opened.
            unsafe { libc::close(fd) };
        }
    }
}

/// This process's environment as `NAME=VALUE` entries, as a queued job
/// keeps it and a job is given it.
pub fn environ() -> Vec<std::ffi::OsString> {
    let entry = |(mut e, v): (std::ffi::OsString, std::ffi::OsString)| {
        e.push("=");
        e.push(v);
        e
    };
    std::env::vars_os().map(entry).collect()
}

/// What /proc says of a process.
pub struct Stat {
    pub ppid: i32,
    pub session: i32,
    pub state: u8,
    pub start: u64,
}

pub fn stat(pid: i32) -> Option<Stat> {
    if pid <= 0 {
        return None;
    }
    let mut buf = [0u8; 1024];
    let n = read_proc(&format!("/proc/{pid}/stat"), &mut buf)?;
    parse_stat(&buf[..n])
}

/// A small file of /proc in one read(2): the kernel makes it whole on the
/// first read of a large enough buffer (a stat line is at most a few
/// hundred bytes). None if it does not fit.
fn read_proc(path: &str, buf: &mut [u8]) -> Option<usize> {
    use std::io::Read;
    let n = File::open(path).ok()?.read(buf).ok()?;
    (n < buf.len()).then_some(n)
}

fn parse_stat(buf: &[u8]) -> Option<Stat> {
    // "pid (comm) S ppid …": comm may hold spaces and parentheses.
    let close = buf.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(buf.get(close + 2..)?).ok()?;
    let f: Vec<&str> = rest.split(' ').collect();
    Some(Stat {
        state: *f.first()?.as_bytes().first()?,
        ppid: f.get(1)?.parse().ok()?,
        session: f.get(3)?.parse().ok()?,
        start: f.get(19)?.parse().ok()?,
    })
}

/// Is the process that had `pid` and started at `start` still running?
/// Only for a job or a watcher: each leads its own session, which a
/// stranger given the same pid within the same clock tick (the start
/// time's unit) almost never does.
pub fn leader_lives(pid: i32, start: u64) -> bool {
    matches!(stat(pid), Some(s) if s.start == start && s.session == pid && s.state != b'Z' && s.state != b'X')
}

/// When the process `pid` started, in seconds since the epoch (its start
/// in clock ticks after boot, plus the boot time); none if it is gone or a
/// zombie. For the old scripts' jobs, which recorded no start time.
pub fn started_unix(pid: i32) -> Option<i64> {
    let st = stat(pid).filter(|s| s.state != b'Z' && s.state != b'X')?;
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let btime: i64 = fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime ").and_then(|v| v.trim().parse().ok()))?;
    (ticks > 0).then(|| btime + (st.start / ticks as u64) as i64)
}

/// The width of the terminal on standard error, if it is one.
pub fn terminal_columns() -> Option<u16> {
    let mut ws = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ writes a winsize into the one we pass.
    let r = unsafe { libc::ioctl(2, libc::TIOCGWINSZ, &mut ws) };
    (r == 0 && ws.ws_col > 0).then_some(ws.ws_col)
}

/// Is the process that had `pid` and started at `start` still running,
/// whatever its session (a launcher, which leads none)?
pub fn lives(pid: i32, start: u64) -> bool {
    matches!(stat(pid), Some(s) if s.start == start && s.state != b'Z' && s.state != b'X')
}

/// Does any process have this pid (used only for key claims, which live
/// for milliseconds)?
pub fn pid_taken(pid: i32) -> bool {
    matches!(stat(pid), Some(s) if s.state != b'Z' && s.state != b'X')
}

pub fn boot_id() -> String {
    let mut buf = [0u8; 64];
    let n = read_proc("/proc/sys/kernel/random/boot_id", &mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).trim().to_string()
}

/// This machine, as a queue knows it (the place of its queues): its
/// machine id (`/etc/machine-id`, the same across reboots and host
/// renames, one per installed system), else the host name made safe for
/// a file name. A queued job starts only on the machine where it was
/// queued; every pid namespace of the machine shares its queues.
pub fn place() -> String {
    machine_id().map(str::to_string).unwrap_or_else(safe_host)
}

/// The place of a queue made by an earlier version, which named it by
/// the host and the pid namespace (`HOST~INODE`): still decided here
/// while it holds jobs.
pub fn old_place() -> String {
    format!("{}~{}", safe_host(), pid_ns().map(|n| n.to_string()).unwrap_or_default())
}

fn safe_host() -> String {
    hostname()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' })
        .take(64)
        .collect()
}

/// The machine id (32 hex digits) of `/etc/machine-id` (or dbus's copy),
/// read once; none where the system has none.
pub fn machine_id() -> Option<&'static str> {
    static ID: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        ["/etc/machine-id", "/var/lib/dbus/machine-id"].iter().find_map(|path| {
            let mut buf = [0u8; 64];
            let n = read_proc(path, &mut buf)?;
            let id = std::str::from_utf8(&buf[..n]).ok()?.trim();
            (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_ascii_lowercase())
        })
    })
    .as_deref()
}

/// The process holding a flock(2) on the file of device `dev` and inode
/// `ino`, with its name, as /proc/locks tells (read bounded); none if
/// unknown (the lock's taker may have passed it on to a child and died).
pub fn flock_holder(dev: u64, ino: u64) -> Option<(i32, String)> {
    use std::io::Read;
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let want = format!("{major:02x}:{minor:02x}:{ino}");
    let mut text = String::new();
    File::open("/proc/locks").ok()?.take(1 << 20).read_to_string(&mut text).ok()?;
    let pid = text.lines().find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        // `1: FLOCK  ADVISORY  WRITE 1234 fd:00:5678 0 EOF` (a waiter's
        // line has `->` after the number).
        (f.get(1) == Some(&"FLOCK") && f.get(5) == Some(&want.as_str())).then(|| f.get(4)?.parse::<i32>().ok())?
    })?;
    let mut comm = [0u8; 64];
    let n = read_proc(&format!("/proc/{pid}/comm"), &mut comm)?;
    Some((pid, String::from_utf8_lossy(&comm[..n]).trim().to_string()))
}

pub fn hostname() -> String {
    nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_else(|_| "localhost".into())
}

/// The inode of this process's pid namespace (`readlink /proc/self/ns/pid`
/// is `pid:[4026531836]`): pids mean something only within one.
pub fn pid_ns() -> Option<u64> {
    let link = fs::read_link("/proc/self/ns/pid").ok()?;
    link.to_str()?.strip_prefix("pid:[")?.strip_suffix(']')?.parse().ok()
}

/// The user's name: `$USER` or `$LOGNAME` (as the shell knows it), else the
/// password database (slower: it may consult NSS).
pub fn username() -> String {
    for var in ["USER", "LOGNAME"] {
        if let Some(u) = std::env::var(var).ok().filter(|u| !u.is_empty()) {
            return u;
        }
    }
    // /etc/passwd read by hand, never glibc's getpwuid: the binaries are
    // static where glibc's archives are (build.rs), and a static glibc that
    // loads an NSS module (systemd's, LDAP's) for a user not in the file
    // crashes. Such a user is named by their uid.
    let uid = nix::unistd::getuid().as_raw();
    let passwd = crate::files::read_bounded(Path::new("/etc/passwd"), 16 << 20).unwrap_or_default();
    passwd
        .split(|&b| b == b'\n')
        .filter_map(|line| {
            let mut f = line.split(|&b| b == b':');
            let (name, _, id) = (f.next()?, f.next()?, f.next()?);
            (std::str::from_utf8(id).ok()?.parse::<u32>().ok()? == uid)
                .then(|| String::from_utf8_lossy(name).into_owned())
        })
        .find(|n| !n.is_empty())
        .unwrap_or_else(|| uid.to_string())
}

/// Finds an executable: a name with a slash is taken as a path, anything
/// else is looked up in `path` (the caller's PATH).
pub fn which(cmd: &OsStr, path: Option<&OsStr>) -> Option<PathBuf> {
    if cmd.is_empty() {
        return None;
    }
    if cmd.as_bytes().contains(&b'/') {
        let p = PathBuf::from(cmd);
        return is_executable(&p).then_some(p);
    }
    let path = path.unwrap_or(OsStr::new("/usr/local/bin:/usr/bin:/bin"));
    for dir in path.as_bytes().split(|&b| b == b':') {
        let dir = if dir.is_empty() { Path::new(".") } else { Path::new(OsStr::from_bytes(dir)) };
        let p = dir.join(cmd);
        if is_executable(&p) {
            return Some(p);
        }
    }
    None
}

pub fn is_executable(p: &Path) -> bool {
    let Ok(m) = fs::metadata(p) else { return false };
    if !m.is_file() {
        return false;
    }
    let Ok(c) = CString::new(p.as_os_str().as_bytes()) else { return false };
    // SAFETY: c is a valid NUL-terminated string.
    unsafe { libc::access(c.as_ptr(), libc::X_OK) == 0 }
}

/// A pipe for a capped job's output (`watch::pump`): the end the watcher
/// reads (close-on-exec, non-blocking) and the end the job writes.
pub fn output_pipe() -> Result<(File, std::os::fd::OwnedFd), String> {
    use nix::fcntl::OFlag;
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).map_err(|e| format!("pipe: {e}"))?;
    // The job's end blocks: a job that writes faster than the watcher
    // copies waits, which is what bounds the log.
    nix::fcntl::fcntl(&w, nix::fcntl::FcntlArg::F_SETFL(OFlag::empty())).map_err(|e| format!("pipe: {e}"))?;
    // Its default size (64 KiB): a bigger one (F_SETPIPE_SZ) made 1 GiB
    // under a cap faster (1.42× the uncapped job against 1.90×), but a
    // user's pipes share 64 MiB (`pipe-user-pages-soft`), past which every
    // new pipe of theirs gets 8 KiB: 256 capped jobs of 256 KiB would slow
    // every pipeline the user runs (bench/GAPS.md).
    Ok((File::from(r), w))
}

/// Sleeps until `f` (a pipe) can be read, or its writers are all gone
/// (true), or `within` has passed (false).
pub fn wait_readable(f: &File, within: std::time::Duration) -> bool {
    use std::os::fd::AsRawFd;
    let mut p = libc::pollfd { fd: f.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    let ms = within.as_millis().clamp(1, i32::MAX as u128) as i32;
    // SAFETY: one valid pollfd. EINTR returns as a timeout would.
    unsafe { libc::poll(&mut p, 1, ms) > 0 }
}

pub fn my_pid() -> i32 {
    std::process::id() as i32
}

/// What this process's reaped children used, with their own reaped
/// children, other jobs' watchers left out (see `wait`).
pub struct ChildUsage {
    /// The largest peak resident set of any one of them, in KiB.
    pub max_rss_kib: u64,
    pub user_s: f64,
    pub sys_s: f64,
}

/// Reaps every child that has ended (without waiting for the others),
/// then says what the reaped ones used.
pub fn children_usage() -> Option<ChildUsage> {
    while let Ok(Some(_)) = wait::reap_one() {}
    let (max_rss_kib, user_s, sys_s) = wait::reaped_usage();
    Some(ChildUsage { max_rss_kib, user_s, sys_s })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_survives_a_command_name_with_parentheses_and_spaces() {
        let line = b"123 (a) b (c) S 1 123 123 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 4242 0 0";
        let s = parse_stat(line).unwrap();
        assert_eq!(s.state, b'S');
        assert_eq!(s.ppid, 1);
        assert_eq!(s.start, 4242);
    }

    #[test]
    fn a_session_leader_is_alive_and_a_wrong_start_time_or_a_process_in_another_session_is_not() {
        let mut child = std::process::Command::new("setsid").args(["sleep", "30"]).spawn().unwrap();
        let pid = child.id() as i32;
        // `setsid` execs `sleep` once it leads its own session.
        let deadline = Instant::now() + Duration::from_secs(20);
        while stat(pid).is_none_or(|s| s.session != pid) {
            assert!(Instant::now() < deadline, "setsid never made its session");
            std::thread::yield_now();
        }
        let start = stat(pid).unwrap().start;
        assert!(leader_lives(pid, start));
        assert!(!leader_lives(pid, start + 1));
        let me = stat(my_pid()).unwrap();
        assert_eq!(me.session == my_pid(), leader_lives(my_pid(), me.start));
        let _ = child.kill();
        let _ = child.wait();
        assert!(!leader_lives(pid, start), "a reaped process");
    }
}
