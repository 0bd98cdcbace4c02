//! What a test needs from the machine, and the record of the tests that
//! could not run: `need`, `need_tool(s)`, `isolated` (a copy of the test
//! inside namespaces) and `as_another_user`; tests/zz_not_run.rs reads
//! the record at the end of `cargo test`.

use super::{stderr, stdout, COUNTER};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::Ordering;
use std::sync::OnceLock;

/// Set (to anything but `0`) by CI: a test that cannot run fails.
const ALL: &str = "BGRUN_TEST_ALL";
/// Where a copy of a test run inside namespaces records that it was not run.
const NOT_RUN_DIR: &str = "BGRUN_TEST_NOT_RUN_DIR";
/// Set for a copy of a test run inside namespaces by [`isolated`]: a tag
/// unique on the host.
pub(super) const INSIDE: &str = "BGRUN_TEST_INSIDE";

/// The name of the running test (libtest names each test's thread so).
pub fn test_name() -> String {
    std::thread::current().name().unwrap_or("?").to_string()
}

/// The directory collecting this `cargo test` run's tests not run, one
/// file each. Cargo
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
    let line = not_run_line(&test_name(), reason, to_run);
    assert!(!all_must_run(), "{line} ({ALL} is set: every test must run)");
    // Straight to the file descriptor: libtest captures eprintln!.
    let _ = writeln!(std::io::stderr(), "{line}");
    record_not_run(&not_run_dir(), &test_name(), &line);
    false
}

/// The one line that says a test was not run: a reason of several lines
/// (what a tool printed) is joined into one.
pub fn not_run_line(test: &str, reason: &str, to_run: &str) -> String {
    let one_line = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    format!("NOT RUN: {test}: {}; to run it: {}", one_line(reason), one_line(to_run))
}

/// Records `line` as the test `test` not run: one file per test in `dir`,
/// named for the test, so the summary counts tests, whatever they said.
pub fn record_not_run(dir: &Path, test: &str, line: &str) {
    let _ = std::fs::create_dir_all(dir);
    let _ = std::fs::write(dir.join(test.replace('/', "_")), format!("{line}\n"));
}

/// The tests recorded as not run in `dir`, one line each, by test name.
pub fn not_run_records(dir: &Path) -> Vec<String> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.flatten().map(|e| e.path()).collect(),
        Err(_) => vec![],
    };
    files.sort();
    files.iter().filter_map(|f| std::fs::read_to_string(f).ok()).map(|t| t.trim_end().to_string()).collect()
}

#[test]
fn a_test_not_run_for_a_reason_of_several_lines_is_counted_once_on_one_line() {
    let env = super::Env::new();
    let dir = env.root.join("not-run");
    let reason = "unshare failed: unshare: write failed\n  /proc/self/uid_map:\n\tOperation not permitted";
    record_not_run(&dir, "slurm::a", &not_run_line("slurm::a", reason, "sysctl -w x=1"));
    record_not_run(&dir, "slurm::b", &not_run_line("slurm::b", "sbatch is not installed", "apt-get install slurm"));
    // A test that asks twice is still one test.
    record_not_run(&dir, "slurm::b", &not_run_line("slurm::b", "sbatch is not installed", "apt-get install slurm"));
    let records = not_run_records(&dir);
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(
        records[0],
        "NOT RUN: slurm::a: unshare failed: unshare: write failed /proc/self/uid_map: Operation not permitted; \
         to run it: sysctl -w x=1"
    );
    assert!(records.iter().all(|r| !r.contains('\n')), "{records:?}");
}

#[test]
fn advice_that_needs_root_says_as_root_and_what_it_changes_and_never_sudo() {
    let advice = as_root("remounts /dev/pts for the whole machine", "mount -o remount,gid=5 /dev/pts");
    let install = apt_get("tmux");
    // Root reads what it changes too.
    assert_eq!(advice, "as root (remounts /dev/pts for the whole machine): mount -o remount,gid=5 /dev/pts");
    assert_eq!(install, "as root (installs packages on this machine): apt-get install tmux");
    assert!(!second_user_advice().contains("USER"), "a placeholder for the user: {}", second_user_advice());
    // Every piece of advice the helpers and the tests give, as written in
    // their source: no sudo (the reader may have none), no cargo as root.
    let dir = super::repo().join("tests");
    let mut files = Vec::new();
    let mut dirs = vec![dir];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).expect("reading tests/").flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    // (Spelt so that this file does not hold them itself.)
    let needles = [format!("{}su{}", '"', "do "), format!(" su{} ", "do")];
    for f in files {
        let text = std::fs::read_to_string(&f).expect("reading a test file");
        for (n, line) in text.lines().enumerate() {
            let advice = line.contains('"') && !line.trim_start().starts_with("//");
            assert!(
                !(advice && needles.iter().any(|s| line.contains(s.as_str()))),
                "{}:{}: advice with sudo: {line}",
                f.display(),
                n + 1
            );
        }
    }
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

/// Advice for what only root can do: "as root (WHAT IT CHANGES):
/// command", whoever reads it (root too: the command changes the machine,
/// and the reader should know what before running it); never `sudo` (the
/// reader may have none) and never cargo as root (it would leave
/// root-owned files in target/).
pub fn as_root(changes: &str, command: &str) -> String {
    format!("as root ({changes}): {command}")
}

/// The command that installs Debian `packages` (as root, said so).
pub fn apt_get(packages: &str) -> String {
    as_root("installs packages on this machine", &format!("apt-get install {packages}"))
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
    c.args([
        "--mount",
        "--uts",
        "--pid",
        "--fork",
        "--mount-proc",
        "--kill-child",
        "sh",
        "-c",
        r#""$@" & wait $!"#,
        "sh",
    ])
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
/// the store: its modes are checked too). Its PATH is the system's, which
/// it can read, not the caller's (which may hold private directories).
pub fn as_another_user(script: &str) -> Output {
    let id = OTHER_ID.to_string();
    let denied = std::fs::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "deny");
    Command::new("setpriv")
        .args(["--reuid", &id, "--regid", &id, if denied { "--keep-groups" } else { "--clear-groups" }])
        .args(["sh", "-c", script])
        .env("HOME", "/")
        .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
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
            let sysctl_w = |setting: &str| {
                as_root(
                    "lets every user of this machine make user namespaces, until the next boot",
                    &format!("sysctl -w {setting}"),
                )
            };
            let to_run = if sysctl("kernel/unprivileged_userns_clone").trim() == "0" {
                sysctl_w("kernel.unprivileged_userns_clone=1")
            } else if sysctl("user/max_user_namespaces").trim() == "0" {
                sysctl_w("user.max_user_namespaces=15000")
            } else if sysctl("kernel/apparmor_restrict_unprivileged_userns").trim() == "1" {
                sysctl_w("kernel.apparmor_restrict_unprivileged_userns=0")
            } else {
                "run the tests where unshare(2) is allowed (not in an unprivileged container)".into()
            };
            Err((format!("unshare failed: {said}"), to_run))
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
            second_user_advice(),
        )),
    }
}

/// How to give this user (named) subordinate ids for a second user.
fn second_user_advice() -> String {
    let me = nix::unistd::User::from_uid(nix::unistd::getuid()).ok().flatten();
    let name = me.map_or_else(|| nix::unistd::getuid().to_string(), |u| u.name);
    as_root(
        &format!("gives {name} subordinate ids 100000-165535 in /etc/subuid and /etc/subgid"),
        &format!("usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {name}"),
    )
}
