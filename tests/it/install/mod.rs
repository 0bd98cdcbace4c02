//! install.sh, run into a temporary HOME with the binaries cargo built for
//! the tests (`--no-build`, so no release build): every file lands where
//! the script says, a second run changes nothing, `--uninstall` removes
//! exactly what it installed and never the job store, and bash completion
//! and man find the installed files with nothing else to do.

use crate::common::*;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

mod shells;

/// A copy of the five binaries cargo built for the tests, made once per
/// test: the originals may be rebuilt by another cargo meanwhile.
fn binaries(env: &Env) -> PathBuf {
    let dir = env.root.join("built");
    std::fs::create_dir_all(&dir).expect("creating the binaries' directory");
    for name in NAMES {
        std::fs::copy(bin(name), dir.join(name)).expect("copying a built binary");
    }
    dir
}

/// A command with HOME set to the test's and none of the variables that
/// would move the install elsewhere.
fn in_home(env: &Env, program: &str) -> Command {
    let mut c = env.tool(program);
    for var in [
        "XDG_DATA_HOME",
        "XDG_CONFIG_HOME",
        "CARGO_INSTALL_ROOT",
        "CARGO_HOME",
        "BASH_COMPLETION_USER_DIR",
        "ZDOTDIR",
        "MANPATH",
        "RUN_DIR",
    ] {
        c.env_remove(var);
    }
    c.env("PATH", format!("{}:/usr/bin:/bin", env.home.join(".cargo/bin").display()));
    c
}

fn install(env: &Env, args: &[&str]) -> Output {
    in_home(env, "bash").arg(repo().join("install.sh")).args(args).output().expect("running install.sh")
}

fn succeeded(out: &Output, what: &str) {
    assert!(out.status.success(), "{what} failed ({}):\n{}{}", out.status, stdout(out), stderr(out));
}

/// Every path under `dir` with its contents (None for a directory).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, Option<Vec<u8>>>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())) {
            let path = entry.expect("reading a directory entry").path();
            if path.is_dir() && !path.is_symlink() {
                out.insert(path.clone(), None);
                walk(&path, out);
            } else {
                out.insert(path.clone(), Some(std::fs::read(&path).unwrap_or_default()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, &mut out);
    out
}

/// Where each file must land in `home` (default prefix), and what it must
/// hold.
fn expected_files(home: &Path, bins: &Path) -> Vec<(PathBuf, PathBuf)> {
    let share = home.join(".local/share");
    let mut files = Vec::new();
    for name in NAMES {
        files.push((home.join(".cargo/bin").join(name), bins.join(name)));
        files.push((share.join("bash-completion/completions").join(name), repo().join("completions/bash").join(name)));
        files.push((
            share.join("zsh/site-functions").join(format!("_{name}")),
            repo().join(format!("completions/zsh/_{name}")),
        ));
        files.push((
            home.join(".config/fish/completions").join(format!("{name}.fish")),
            repo().join(format!("completions/fish/{name}.fish")),
        ));
    }
    for page in std::fs::read_dir(repo().join("man")).expect("reading man/") {
        let page = page.expect("reading man/").path();
        let file = page.file_name().expect("a page has a name").to_owned();
        files.push((home.join(".cargo/share/man/man1").join(file), page));
    }
    files
}

/// A job store in the HOME, made by the real `run` (no RUN_DIR).
fn job_in_home_store(env: &Env) -> String {
    let out = in_home(env, bin("run").to_str().expect("a UTF-8 path"))
        .args(["--name", "kept", "true"])
        .output()
        .expect("running run");
    succeeded(&out, "run --name kept true");
    let id = stdout(&out).split_whitespace().next().expect("run printed an id").to_string();
    assert!(env.home.join(".local/share/run").join(&id).join("meta.json").is_file(), "the job is not in HOME's store");
    id
}

/// An sshd on 127.0.0.1 that lets this user in with a key of its own and
/// gives every session `vars` (HOME among them): what a laptop's
/// `ssh host CMD` meets on a stock account. Killed when dropped.
struct Sshd {
    child: std::process::Child,
    port: u16,
    key: PathBuf,
}

impl Sshd {
    /// `None` (the test reported as not run) when sshd or ssh is missing.
    fn start(dir: &Path, vars: &[(&str, &Path)]) -> Option<Sshd> {
        use std::io::Read;
        if !need_tools(&["sshd", "ssh", "ssh-keygen"]) {
            return None;
        }
        let sshd = Path::new("/usr/sbin/sshd");
        std::fs::create_dir_all(dir).expect("making the sshd directory");
        if nix::unistd::geteuid().is_root() {
            std::fs::create_dir_all("/run/sshd").expect("making sshd's privilege separation directory");
        }
        for k in ["host_key", "user_key"] {
            let out = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(dir.join(k))
                .output()
                .expect("running ssh-keygen");
            assert!(out.status.success(), "ssh-keygen: {}", stderr(&out));
        }
        std::fs::copy(dir.join("user_key.pub"), dir.join("authorized_keys")).expect("authorizing the key");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("finding a free port")
            .port();
        let set_env: Vec<String> = vars.iter().map(|(k, v)| format!("{k}={}", v.display())).collect();
        let config = format!(
            "ListenAddress 127.0.0.1\nPort {port}\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\n\
             PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             UsePAM no\nStrictModes no\nPidFile {d}/sshd.pid\nLogLevel ERROR\nSetEnv {}\n",
            set_env.join(" "),
            d = dir.display()
        );
        crate::common::write(&dir.join("sshd_config"), &config);
        let log = std::fs::File::create(dir.join("sshd.log")).expect("creating sshd.log");
        let child = Command::new(sshd)
            .args(["-D", "-e", "-f"])
            .arg(dir.join("sshd_config"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting sshd");
        let server = Sshd { child, port, key: dir.join("user_key") };
        crate::common::wait_until(Duration::from_secs(20), "sshd to greet", || {
            let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return false };
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut b = [0u8; 4];
            s.read_exact(&mut b).is_ok() && &b == b"SSH-"
        });
        Some(server)
    }

    /// `ssh USER@127.0.0.1 REMOTE`, as a laptop runs a command on a host:
    /// no terminal, so the far side's shell is neither interactive nor a
    /// login shell.
    fn ssh(&self, remote: &str) -> Output {
        let user = stdout(&Command::new("id").arg("-un").output().expect("running id")).trim().to_string();
        Command::new("ssh")
            .args(["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"])
            .args(["-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-i"])
            .arg(&self.key)
            .args(["-p", &self.port.to_string(), &format!("{user}@127.0.0.1"), remote])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("running ssh")
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The stock Debian/Ubuntu ~/.bashrc begins so: nothing after it is read by
/// a shell that is not interactive.
const STOCK_BASHRC: &str = "# ~/.bashrc: executed by bash(1) for non-login shells.\n\n\
# If not running interactively, don't do anything\ncase $- in\n    *i*) ;;\n      *) return;;\nesac\n\n\
export PATH=\"$HOME/.cargo/bin:$PATH\"\nexport NTFY_TOPIC=mine\n";

#[test]
fn installing_puts_every_file_where_it_says_and_uninstalling_removes_exactly_those() {
    let env = Env::new();
    let id = job_in_home_store(&env);
    // The store must be still before the snapshot: the watcher writes
    // meta.json once more after `status`, then exits.
    let meta = env.home.join(".local/share/run").join(&id).join("meta.json");
    let text = std::fs::read_to_string(&meta).expect("reading meta.json");
    let watcher = serde_json::from_str::<serde_json::Value>(&text).expect("meta.json is JSON")["watcher_pid"]
        .as_i64()
        .expect("meta.json names the watcher");
    crate::common::wait_until(Duration::from_secs(20), "the job's watcher to exit", || {
        !crate::common::pid_alive(watcher) && env.home.join(".local/share/run").join(&id).join("status").is_file()
    });
    let before = snapshot(&env.home);
    let bins = binaries(&env);
    let bins = bins.to_str().expect("a UTF-8 path");

    let out = install(&env, &["--no-build", bins]);
    succeeded(&out, "install.sh --no-build");
    for (dest, src) in expected_files(&env.home, Path::new(bins)) {
        let got = std::fs::read(&dest).unwrap_or_else(|e| panic!("{} was not installed: {e}", dest.display()));
        assert!(
            got == std::fs::read(&src).expect("reading the source"),
            "{} differs from {}",
            dest.display(),
            src.display()
        );
    }
    for name in NAMES {
        let mode = std::fs::metadata(env.home.join(".cargo/bin").join(name)).expect("installed").permissions().mode();
        assert_eq!(mode & 0o755, 0o755, "{name} is not executable");
    }
    let manifest = env.home.join(".local/share/bgrun/installed-files");
    let listed = std::fs::read_to_string(&manifest).expect("install.sh writes its manifest");
    for (dest, _) in expected_files(&env.home, Path::new(bins)) {
        assert!(
            listed.lines().any(|l| l == format!("file {}", dest.display())),
            "the manifest does not list {}",
            dest.display()
        );
    }
    let installed = snapshot(&env.home);

    let again = install(&env, &["--no-build", bins]);
    succeeded(&again, "a second install.sh --no-build");
    assert!(snapshot(&env.home) == installed, "a second install changed the files");

    let out = install(&env, &["--uninstall"]);
    succeeded(&out, "install.sh --uninstall");
    let after = snapshot(&env.home);
    let left: Vec<_> = after.keys().filter(|p| !before.contains_key(*p)).collect();
    assert!(left.is_empty(), "uninstall left behind: {left:?}");
    let changed: Vec<_> = before.keys().filter(|p| after.get(*p) != before.get(*p)).collect();
    assert!(changed.is_empty(), "uninstall changed or removed what was there before: {changed:?}");

    let out = install(&env, &["--uninstall"]);
    succeeded(&out, "a second install.sh --uninstall");
    assert!(stdout(&out).contains("nothing to uninstall"), "{}", stdout(&out));
}

#[test]
fn after_installing_bash_completes_job_ids_and_man_finds_the_pages_with_nothing_else_to_do() {
    let completion = Path::new("/usr/share/bash-completion/bash_completion");
    if !need_tools(&["bash", "man"])
        || !need(completion.is_file(), "bash-completion is not installed", &apt_get("bash-completion"))
    {
        return;
    }
    let env = Env::new();
    let id = job_in_home_store(&env);
    let bins = binaries(&env);
    succeeded(&install(&env, &["--no-build", bins.to_str().expect("a UTF-8 path")]), "install.sh --no-build");

    // What an interactive bash with bash-completion does on `runlog <TAB>`:
    // load the completion for runlog on demand, then call it.
    let script = r#"
        source "$1"
        _completion_loader runlog
        fn=$(complete -p runlog | sed -E 's/.* -F ([^ ]+) .*/\1/')
        COMP_WORDS=(runlog ""); COMP_CWORD=1; COMP_LINE="runlog "; COMP_POINT=7
        "$fn" runlog "" runlog
        printf '%s\n' "${COMPREPLY[@]}"
    "#;
    let out = in_home(&env, "bash").arg("-c").arg(script).arg("bash").arg(completion).output().expect("running bash");
    succeeded(&out, "bash completing runlog");
    let text = stdout(&out);
    let offered: Vec<&str> = text.lines().collect();
    assert!(offered.contains(&id.as_str()) && offered.contains(&"kept"), "runlog <TAB> offered {offered:?}, not {id}");

    for page in ["job", "job-logs", "run"] {
        let out = in_home(&env, "man").args(["-w", page]).output().expect("running man");
        succeeded(&out, &format!("man -w {page}"));
        let want = env.home.join(format!(".cargo/share/man/man1/{page}.1"));
        assert_eq!(stdout(&out).trim(), want.display().to_string(), "man {page} finds another page");
    }
}

#[test]
fn install_refuses_to_replace_a_file_it_did_not_install_unless_forced() {
    let env = Env::new();
    let foreign = env.home.join(".local/share/bash-completion/completions/runs");
    std::fs::create_dir_all(foreign.parent().expect("has a parent")).expect("creating the directory");
    crate::common::write(&foreign, "# someone else's completion\n");
    let bins = binaries(&env);
    let bins = bins.to_str().expect("a UTF-8 path");

    let out = install(&env, &["--no-build", bins]);
    assert!(!out.status.success(), "install.sh replaced a foreign file");
    assert!(
        stderr(&out).contains(&foreign.display().to_string()),
        "the refusal does not name the file: {}",
        stderr(&out)
    );
    assert_eq!(std::fs::read_to_string(&foreign).expect("still there"), "# someone else's completion\n");
    assert!(!env.home.join(".cargo").exists(), "a refused install installed something");
    assert!(!env.home.join(".local/share/bgrun").exists(), "a refused install wrote a manifest");

    succeeded(&install(&env, &["--no-build", bins, "--force"]), "install.sh --force");
    let ours = std::fs::read(repo().join("completions/bash/runs")).expect("reading completions/bash/runs");
    assert!(std::fs::read(&foreign).expect("installed") == ours, "--force did not install the completion");
}

#[test]
fn a_prefix_puts_the_commands_and_man_pages_under_it_and_uninstall_finds_them() {
    let env = Env::new();
    let prefix = env.root.join("prefix");
    let bins = binaries(&env);
    let out = install(
        &env,
        &["--prefix", prefix.to_str().expect("a UTF-8 path"), "--no-build", bins.to_str().expect("a UTF-8 path")],
    );
    succeeded(&out, "install.sh --prefix");
    for name in NAMES {
        assert!(prefix.join("bin").join(name).is_file(), "{name} is not in PREFIX/bin");
    }
    assert!(prefix.join("share/man/man1/job-wait.1").is_file(), "the man pages are not in PREFIX/share/man/man1");
    assert!(!env.home.join(".cargo").exists(), "--prefix still installed into ~/.cargo");
    let text = stdout(&out);
    assert!(
        text.contains("is not on your PATH") || text.contains("new shells find the commands"),
        "no PATH note for a prefix off PATH: {text}"
    );

    succeeded(&install(&env, &["--uninstall"]), "install.sh --uninstall");
    assert!(!prefix.exists(), "uninstall left {} behind", prefix.display());
}

#[test]
fn cargo_home_decides_where_the_commands_go_when_no_prefix_is_given() {
    let env = Env::new();
    let cargo_home = env.root.join("cargo-home");
    let bins = binaries(&env);
    let out = in_home(&env, "bash")
        .arg(repo().join("install.sh"))
        .args(["--no-build", bins.to_str().expect("a UTF-8 path")])
        .env("CARGO_HOME", &cargo_home)
        .output()
        .expect("running install.sh");
    succeeded(&out, "install.sh with CARGO_HOME");
    for name in NAMES {
        assert!(cargo_home.join("bin").join(name).is_file(), "{name} is not in $CARGO_HOME/bin");
    }
    assert!(cargo_home.join("share/man/man1/run.1").is_file(), "the man pages are not beside $CARGO_HOME/bin");
    assert!(!env.home.join(".cargo").exists(), "CARGO_HOME was ignored: ~/.cargo was made");
    succeeded(&install(&env, &["--uninstall"]), "install.sh --uninstall");
    assert!(!cargo_home.join("bin/run").exists(), "uninstall left $CARGO_HOME/bin/run");
}

#[test]
fn after_installing_ssh_host_run_finds_the_commands_and_uninstalling_takes_the_lines_out() {
    let env = Env::new();
    let login = std::fs::read_to_string("/etc/passwd").ok().and_then(|p| {
        let uid = stdout(&Command::new("id").arg("-u").output().expect("running id")).trim().to_string();
        p.lines().find(|l| l.split(':').nth(2) == Some(&uid)).map(|l| l.rsplit(':').next().unwrap_or("").to_string())
    });
    let login = login.unwrap_or_default();
    let rc = match login.rsplit('/').next() {
        Some("bash") => env.home.join(".bashrc"),
        Some("zsh") => env.home.join(".zshenv"),
        _ => {
            let why = format!(
                "this user's login shell is {login:?}; this test checks the lines install.sh writes for bash \
                 and zsh (fish's have tests of their own)"
            );
            let _ = need(false, &why, "as a user whose login shell is bash or zsh");
            return;
        }
    };
    crate::common::write(&env.home.join(".bashrc"), STOCK_BASHRC);
    let before = std::fs::read(&rc).ok();
    let Some(sshd) = Sshd::start(&env.root.join("sshd"), &[("HOME", &env.home), ("RUN_DIR", &env.store)]) else {
        return;
    };

    // As users meet it: the commands are not found over ssh.
    let out = sshd.ssh("run true");
    assert_eq!(out.status.code(), Some(127), "run was found before installing: {}", stderr(&out));

    let bins = binaries(&env);
    let out = install(&env, &["--no-build", bins.to_str().expect("a UTF-8 path")]);
    succeeded(&out, "install.sh --no-build");
    assert!(
        stdout(&out).contains(&rc.display().to_string()),
        "install.sh does not say what it changed: {}",
        stdout(&out)
    );
    if rc.ends_with(".bashrc") {
        assert!(stdout(&out).contains("NTFY_TOPIC"), "no word on the NTFY_TOPIC ssh will not see: {}", stdout(&out));
    }
    let out = sshd.ssh("run --name viassh true && job wait viassh && runs");
    assert!(out.status.success(), "ssh host run: {}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("viassh_"), "{}", stdout(&out));
    assert!(env
        .store
        .read_dir()
        .is_ok_and(|mut d| d.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("viassh_")))));

    succeeded(&install(&env, &["--uninstall"]), "install.sh --uninstall");
    assert_eq!(std::fs::read(&rc).ok(), before, "uninstall did not give {} back as it was", rc.display());
}

#[test]
fn a_fish_user_gets_a_path_line_in_conf_d_that_a_fish_login_shell_reads_and_uninstall_removes_it() {
    if !need_tool("fish") {
        return;
    }
    let env = Env::new();
    // A fish user: ~/.config/fish exists before the install.
    let fish_config = env.home.join(".config/fish");
    std::fs::create_dir_all(&fish_config).expect("making ~/.config/fish");
    let conf = fish_config.join("conf.d/bgrun.fish");
    let which_run = |login: bool| {
        let mut c = in_home(&env, "fish");
        c.env("PATH", "/usr/bin:/bin");
        if login {
            c.arg("-l");
        }
        let out = c.args(["-c", "command -s run"]).output().expect("running fish");
        stdout(&out).trim().to_string()
    };
    assert_eq!(which_run(true), "", "run is found before installing");

    let bins = binaries(&env);
    let out = install(&env, &["--no-build", bins.to_str().expect("a UTF-8 path")]);
    succeeded(&out, "install.sh --no-build");
    assert!(conf.is_file(), "no {}: {}", conf.display(), stdout(&out));
    assert!(stdout(&out).contains(&conf.display().to_string()), "install.sh does not say so: {}", stdout(&out));
    let run = env.home.join(".cargo/bin/run").display().to_string();
    assert_eq!(which_run(true), run, "a fish login shell does not find run");
    assert_eq!(which_run(false), run, "fish -c (as ssh runs a command) does not find run");
    // Once there, not twice.
    succeeded(&install(&env, &["--no-build", bins.to_str().expect("a UTF-8 path")]), "install.sh again");
    let line = std::fs::read_to_string(&conf).expect("reading bgrun.fish");
    assert_eq!(line.lines().filter(|l| l.contains("set -gx PATH")).count(), 1, "{line}");

    succeeded(&install(&env, &["--uninstall"]), "install.sh --uninstall");
    assert!(!conf.exists(), "uninstall left {}", conf.display());
    assert!(!fish_config.join("conf.d").exists(), "uninstall left the conf.d it made");
    assert!(fish_config.is_dir(), "uninstall removed the user's own ~/.config/fish");
}

#[test]
fn without_fish_install_writes_no_fish_configuration_though_its_completions_make_config_fish() {
    let user = stdout(&Command::new("id").arg("-un").output().expect("running id")).trim().to_string();
    let entry = stdout(&Command::new("getent").args(["passwd", &user]).output().expect("running getent"));
    if !need(
        !entry.trim_end().ends_with("/fish"),
        "this user's login shell is fish",
        "as a user whose shell is not fish",
    ) {
        return;
    }
    let env = Env::new();
    let bins = binaries(&env);
    succeeded(&install(&env, &["--no-build", bins.to_str().expect("a UTF-8 path")]), "install.sh --no-build");
    assert!(!env.home.join(".config/fish/conf.d").exists(), "a conf.d for a user without fish");
}
