//! install.sh, run into a temporary HOME with the binaries cargo built for
//! the tests (`--no-build`, so no release build): every file lands where
//! the script says, a second run changes nothing, `--uninstall` removes
//! exactly what it installed and never the job store, and bash completion
//! and man find the installed files with nothing else to do.

mod common;

use common::{apt_get, bin, need, need_tools, stderr, stdout, Env};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

const NAMES: [&str; 5] = ["run", "runs", "runlog", "runrm", "job"];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

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
    common::wait_until(Duration::from_secs(20), "the job's watcher to exit", || {
        !common::pid_alive(watcher) && env.home.join(".local/share/run").join(&id).join("status").is_file()
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
    common::write(&foreign, "# someone else's completion\n");
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
    assert!(stdout(&out).contains("is not on your PATH"), "no PATH note for a prefix off PATH: {}", stdout(&out));

    succeeded(&install(&env, &["--uninstall"]), "install.sh --uninstall");
    assert!(!prefix.exists(), "uninstall left {} behind", prefix.display());
}
