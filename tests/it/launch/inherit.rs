//! What a job survives and inherits from whoever launched it: a terminal
//! hung up, an SSH client killed, a parent that ignores or blocks signals
//! or SIGCHLD, a file size limit, closed standard descriptors.

use crate::common::*;
use std::fs;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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
        let to_run = as_root(
            "remounts /dev/pts for the whole machine: new terminals get the tty group and mode 620, \
             as most distributions set it",
            "mount -o remount,gid=5,mode=620 /dev/pts",
        );
        if !root && !need(ptys_in_tty_group, why, &to_run) {
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

/// A line of /proc/PID/status, as a number (the signal masks are hex).
fn status_mask(pid: i32, field: &str) -> u64 {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).expect("reading /proc/PID/status");
    let line = s.lines().find_map(|l| l.strip_prefix(&format!("{field}:"))).expect("the field");
    u64::from_str_radix(line.trim(), 16).expect("a hex mask")
}

fn bit(sig: i32) -> u64 {
    1 << (sig - 1)
}

/// The descriptors a process holds.
fn fds(pid: i32) -> Vec<i32> {
    let mut v: Vec<i32> = fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("reading /proc/PID/fd")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    v.sort_unstable();
    v
}

/// `name args…` started from a parent that ignores SIGCHLD, SIGINT,
/// SIGQUIT and SIGTERM, blocks SIGUSR2 and SIGTERM, and leaves descriptor 9
/// open (as `cmd &` in a script, or a daemon that avoids zombies, would).
fn hostile_parent(env: &Env, name: &str, args: &[&str]) -> Command {
    let mut c = env.cmd(name);
    c.args(args);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        c.pre_exec(|| {
            for sig in [libc::SIGCHLD, libc::SIGINT, libc::SIGQUIT, libc::SIGTERM] {
                libc::signal(sig, libc::SIG_IGN);
            }
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGUSR2);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            libc::dup2(2, 9);
            libc::umask(0o027);
            Ok(())
        });
    }
    c
}

#[test]
fn a_job_survives_the_hangup_of_the_terminal_it_was_started_from() {
    if !need_tool("script") {
        return;
    }
    let env = Env::new();
    let mut left = Leftovers::default();
    let gate = env.root.join("gate");
    let (out, shell_pid) = (env.root.join("out"), env.root.join("shell_pid"));
    let job_cmd = format!("while [ ! -e {} ]; do sleep 0.02; done; exit 5", gate.display());
    let session = format!(
        "{} sh -c '{job_cmd}' > {out}; echo $$ > {pid}.tmp; mv {pid}.tmp {pid}; exec sleep 60",
        bin("run").display(),
        out = out.display(),
        pid = shell_pid.display()
    );
    let mut script = env.tool("script").args(["-qfec", &session, "/dev/null"]).spawn().expect("running script");
    wait_until(SOON, "run to start the job inside the terminal", || shell_pid.exists());
    let shell: i32 = std::fs::read_to_string(&shell_pid).expect("reading the pid").trim().parse().expect("a pid");
    left.add(shell);
    let line = std::fs::read_to_string(&out).expect("reading run's output");
    let id = line.split_whitespace().next().expect("run printed an id").to_string();
    let pid: i32 = line.split_whitespace().nth(1).and_then(|p| p.parse().ok()).expect("run printed a pid");
    left.add(pid);
    assert_eq!(env.state(&id), "running");

    // Hang up: the terminal's master side closes with `script`.
    kill(script.id() as i32, libc::SIGKILL);
    let _ = script.wait();
    wait_until(SOON, "the terminal's session to be hung up", || !pid_alive(shell.into()));
    assert!(pid_alive(pid.into()), "the job died with its terminal");
    assert_eq!(env.state(&id), "running");

    open(&gate);
    let j = env.wait_ended(&id, SOON);
    assert_eq!(j["state"], "failed");
    assert_eq!(j["exit_code"], 5);
    assert!(env.job_dir(&id).join("status").is_file());
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

    kill(client.id() as i32, libc::SIGKILL);
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

// --- what a job and its watcher inherit -------------------------------------------

#[test]
fn a_job_launched_by_a_parent_that_ignores_and_blocks_signals_starts_clean_and_dies_of_sigint() {
    let env = Env::new();
    let mut owned = Leftovers::default();
    let (id, pid) =
        id_and_pid(hostile_parent(&env, "run", &["sleep", "600"]).env("BGRUN_PASSED", "yes").output().expect("run"));
    owned.add(pid);
    let watcher = int(&meta(&env, &id)["watcher_pid"]);
    owned.add(watcher);
    // Asleep in `sleep` itself: past the exec and the dynamic loader,
    // which holds the libraries it opens on descriptor 3 for a moment.
    wait_until(SOON, "the job to exec sleep and sleep", || {
        let state = fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit_once(')').and_then(|(_, r)| r.trim_start().chars().next()));
        fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c == "sleep\n") && state == Some('S')
    });

    assert_eq!(status_mask(pid, "SigIgn"), 0, "the job inherited ignored signals");
    assert_eq!(status_mask(pid, "SigBlk"), 0, "the job inherited blocked signals");
    assert_eq!(fds(pid), vec![0, 1, 2], "the job inherited descriptors");
    // What it does inherit: the environment, the umask; and no terminal.
    // (The new name shows in /proc a moment before the new environment.)
    wait_until(SOON, "the environment passed to the job", || {
        let environ = fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        environ.split(|&b| b == 0).any(|v| v == b"BGRUN_PASSED=yes")
    });
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("reading status");
    assert!(status.lines().any(|l| l == "Umask:\t0027"), "the umask was not passed: {status}");
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("reading stat");
    let tty = stat.rsplit_once(')').and_then(|(_, r)| r.split_whitespace().nth(4).map(str::to_string));
    assert_eq!(tty.as_deref(), Some("0"), "the job has a controlling terminal");
    // The watcher ignores what would end it by mistake (a SIGINT, a
    // SIGHUP), never what it waits for: SIGTERM and SIGUSR1, and SIGCHLD
    // (ignored, the kernel would reap the job before the watcher saw how
    // it ended). Its mask is not checked: the kernel shows it changed
    // while the watcher waits in sigtimedwait.
    let ign = status_mask(watcher, "SigIgn");
    let waited = bit(libc::SIGCHLD) | bit(libc::SIGTERM) | bit(libc::SIGUSR1);
    assert_eq!(ign & waited, 0, "the watcher ignores a signal it waits for (SigIgn {ign:x})");
    let mistakes = bit(libc::SIGINT) | bit(libc::SIGHUP) | bit(libc::SIGQUIT) | bit(libc::SIGUSR2);
    assert_eq!(ign & mistakes, mistakes, "a stray signal can end the watcher (SigIgn {ign:x})");
    assert!(!fds(watcher).contains(&9), "the watcher holds the launcher's descriptor 9");

    kill(pid, libc::SIGINT);
    let j = env.wait_ended(&id, SOON);
    assert_eq!(j["state"], "killed", "{j}");
    assert_eq!(j["signal"], "SIGINT", "{j}");
}

#[test]
fn under_a_parent_that_ignores_sigchld_an_exit_0_is_done_and_a_timeout_is_a_timeout() {
    let env = Env::new();
    let mut owned = Leftovers::default();
    let (quick, _) = id_and_pid(hostile_parent(&env, "run", &["sh", "-c", "exit 0"]).output().expect("run"));
    owned.add(int(&meta(&env, &quick)["watcher_pid"]));
    let out = hostile_parent(&env, "job", &["run", "--timeout", "1s", "sleep 600"]).output().expect("job run");
    let slow = stdout(&out).trim().to_string();
    assert!(out.status.success() && !slow.is_empty(), "job run: {}", stderr(&out));
    owned.add(int(&meta(&env, &slow)["pid"]));
    owned.add(int(&meta(&env, &slow)["watcher_pid"]));

    let j = env.wait_ended(&quick, SOON);
    assert_eq!((j["state"].as_str(), j["exit_code"].as_i64()), (Some("done"), Some(0)), "{j}");
    let j = env.wait_ended(&slow, SOON);
    assert_eq!(j["state"], "timeout", "{j}");
    assert_eq!(j["signal"], "SIGTERM", "the job's own end was lost: {j}");
}

#[test]
fn under_a_file_size_limit_the_watcher_records_how_the_job_ended() {
    let env = Env::new();
    let mut c = env.cmd("run");
    // The job fills its log up to the limit (its `head` dies of SIGXFSZ)
    // and exits 0; the watcher's footer then cannot be written.
    // (The shell's own report of its child's end goes to /dev/null.)
    c.args(["sh", "-c", "exec 2>/dev/null; head -c 100000 /dev/zero; exit 0"]);
    // SAFETY: setrlimit between fork and exec.
    unsafe {
        c.pre_exec(|| {
            let lim = libc::rlimit { rlim_cur: 16384, rlim_max: 16384 };
            libc::setrlimit(libc::RLIMIT_FSIZE, &lim);
            Ok(())
        });
    }
    let (id, _) = id_and_pid(c.output().expect("run"));
    let j = env.wait_ended(&id, SOON);
    assert_eq!((j["state"].as_str(), j["exit_code"].as_i64()), (Some("done"), Some(0)), "{j}");
    assert_eq!(fs::metadata(env.job_dir(&id).join("log")).map(|m| m.len()).ok(), Some(16384));
}

#[test]
fn started_with_stdin_stdout_and_stderr_closed_run_writes_nothing_of_its_own_into_the_job() {
    let env = Env::new();
    // The store's files would take descriptors 0 to 2 if they stayed
    // closed, and the id `run` prints would land in one of them.
    let mut c = env.cmd("run");
    c.args(["--name", "closed", "echo", "the job's line"]);
    // SAFETY: close(2) between fork and exec.
    unsafe {
        c.pre_exec(|| {
            for fd in 0..3 {
                libc::close(fd);
            }
            Ok(())
        });
    }
    let out = c.output().expect("run");
    assert!(out.status.success(), "run with 0 to 2 closed: {:?}", out.status);
    let id = env.jobs().iter().find_map(|j| j["id"].as_str().map(String::from)).expect("a job");
    let j = env.wait_ended(&id, SOON);
    assert_eq!(j["state"], "done", "{j}");
    let log = env.log(&id);
    assert!(log.contains("the job's line") && !log.contains(&id), "the log:\n{log}");
    let m = meta(&env, &id);
    assert_eq!(m["id"], id.as_str());
}
