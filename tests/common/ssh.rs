//! Several "hosts" on this machine for the tests of `--on` and `DEST:ID`:
//! one real sshd each on 127.0.0.1, each in a UTS and a mount namespace
//! of its own (its own host name; its own /etc/passwd, bind-mounted, which
//! gives the login user the shell and the home the test chose), each
//! pointing the commands it runs at its own store and PATH through sshd's
//! `SetEnv`. Key authentication; `RUN_SSH=ssh -F CONFIG` reaches them as
//! `h1`, `h2`…, and `down` is a port where nothing listens. Start them
//! inside [`isolated`] (they log in the namespace's root); they are killed
//! when dropped, and with the namespace anyway.

use super::*;
use std::fs;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// What a host is made of.
pub struct Spec {
    /// The login shell (`/bin/bash`, `/usr/bin/fish`…).
    pub shell: &'static str,
    /// Are the binaries under test on its PATH?
    pub bgrun: bool,
}

pub struct Host {
    pub name: String,
    /// Its host name (`host-1`…), as `hostname` says there.
    pub hostname: String,
    pub store: PathBuf,
    pub home: PathBuf,
    /// A directory first on its PATH, for the tools a test fakes there.
    pub tools: PathBuf,
    child: Child,
}

pub struct Hosts {
    pub hosts: Vec<Host>,
    pub config: PathBuf,
}

/// The directory of the binaries under test.
pub fn bin_dir() -> PathBuf {
    bin("runs").parent().expect("the binaries' directory").to_path_buf()
}

impl Hosts {
    /// Starts one host per spec, `h1`, `h2`…, under `env.root`; `None`
    /// (the test reported as not run) where sshd or ssh is missing.
    pub fn start(env: &Env, specs: &[Spec]) -> Option<Hosts> {
        if !need_tools(&["sshd", "ssh", "ssh-keygen"]) {
            return None;
        }
        // sshd sets the login user's groups, which a user namespace made
        // by a user other than root forbids (isolated's, as a normal user).
        let denied = fs::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "deny");
        let to_run = as_root(
            "runs these tests as root, with a target directory of root's own",
            "CARGO_TARGET_DIR=/var/tmp/bgrun-root-target cargo test --locked --test it remote::",
        );
        if !need(!denied, "sshd hosts in namespaces need to set groups, which this user namespace forbids", &to_run) {
            return None;
        }
        let dir = env.root.join("hosts");
        fs::create_dir_all(&dir).expect("making the hosts' directory");
        let _ = fs::create_dir_all("/run/sshd");
        for k in ["host_key", "user_key"] {
            let out = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(dir.join(k))
                .output()
                .expect("running ssh-keygen");
            assert!(out.status.success(), "ssh-keygen: {}", stderr(&out));
        }
        fs::copy(dir.join("user_key.pub"), dir.join("authorized_keys")).expect("authorizing the key");
        let passwd = fs::read_to_string("/etc/passwd").expect("reading /etc/passwd");
        let mut config = String::new();
        let mut hosts = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            let name = format!("h{}", i + 1);
            let hd = dir.join(&name);
            let (store, home, tools) = (hd.join("store"), hd.join("home"), hd.join("tools"));
            for d in [&home, &tools] {
                fs::create_dir_all(d).expect("making a host's directory");
            }
            // The login user (root, in the namespace) gets this shell and home.
            let mine: String = passwd
                .lines()
                .map(|l| match l.split(':').collect::<Vec<_>>().as_slice() {
                    [user, pw, "0", gid, gecos, _, _] => {
                        format!("{user}:{pw}:0:{gid}:{gecos}:{}:{}", home.display(), spec.shell)
                    }
                    _ => l.to_string(),
                })
                .map(|l| l + "\n")
                .collect();
            write(&hd.join("passwd"), &mine);
            let port = free_port();
            let path = match spec.bgrun {
                true => format!("{}:{}:/usr/bin:/bin", tools.display(), bin_dir().display()),
                false => format!("{}:/usr/bin:/bin", tools.display()),
            };
            write(
                &hd.join("sshd_config"),
                &format!(
                    "ListenAddress 127.0.0.1\nPort {port}\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\n\
                     PermitRootLogin yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
                     StrictModes no\nPidFile {h}/sshd.pid\nLogLevel ERROR\nSetEnv RUN_DIR={s} PATH={path}\n",
                    d = dir.display(),
                    h = hd.display(),
                    s = store.display()
                ),
            );
            let hostname = format!("host-{}", i + 1);
            let script = format!(
                "hostname {hostname} && mount --bind {h}/passwd /etc/passwd && exec /usr/sbin/sshd -D -e -f {h}/sshd_config",
                h = hd.display()
            );
            let log = fs::File::create(hd.join("sshd.log")).expect("creating sshd.log");
            let child = Command::new("unshare")
                .args(["--uts", "--mount", "sh", "-c", &script])
                .env("HOME", &env.home)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("starting sshd");
            wait_until(SOON, &format!("the sshd of {name} to greet"), || {
                let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return false };
                let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(2)));
                let mut b = [0u8; 4];
                s.read_exact(&mut b).is_ok() && &b == b"SSH-"
            });
            config += &format!("Host {name}\n  Port {port}\n");
            hosts.push(Host { name, hostname, store, home, tools, child });
        }
        config += &format!(
            "Host down\n  Port {}\nHost *\n  HostName 127.0.0.1\n  User root\n  IdentityFile {}\n  \
             StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n",
            free_port(),
            dir.join("user_key").display()
        );
        let config_path = dir.join("ssh_config");
        write(&config_path, &config);
        Some(Hosts { hosts, config: config_path })
    }

    /// One of the five binaries, as [`Env::cmd`], reaching the hosts.
    pub fn cmd(&self, env: &Env, name: &str) -> Command {
        let mut c = env.cmd(name);
        c.env("RUN_SSH", format!("ssh -F {}", self.config.display()));
        c
    }

    pub fn run(&self, env: &Env, name: &str, args: &[&str]) -> Output {
        self.cmd(env, name).args(args).output().expect("running the binary")
    }

    /// The per-connection sshd processes of host `i` (its listener's
    /// descendants that are sshd): killing them drops its connections.
    pub fn sessions(&self, i: usize) -> Vec<i32> {
        let listener = self.hosts[i].child.id() as i32;
        descendants_of(listener)
            .into_iter()
            .filter(|&p| fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "sshd"))
            .collect()
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for h in &mut self.hosts {
            let _ = h.child.kill();
            let _ = h.child.wait();
        }
    }
}

/// A port on 127.0.0.1 where nothing listens (for now).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("finding a free port").port()
}

/// Every live descendant of `pid`.
pub fn descendants_of(pid: i32) -> Vec<i32> {
    let ppid = |p: i32| -> Option<i32> {
        let s = fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
        s.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()
    };
    let all: Vec<i32> = fs::read_dir("/proc")
        .expect("reading /proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .collect();
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        let children: Vec<i32> =
            all.iter().copied().filter(|&p| ppid(p) == Some(parent) && !found.contains(&p)).collect();
        found.extend(children);
        i += 1;
    }
    found.retain(|&p| p != pid && pid_alive(p.into()));
    found
}
