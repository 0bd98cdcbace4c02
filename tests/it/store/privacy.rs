//! The store's owner and modes: private under any umask, unreadable to
//! another user, and a store writable by others or owned by someone else
//! refused, saying how to fix it.

use crate::common::*;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).expect("reading a mode").permissions().mode() & 0o7777
}

/// Every entry under `dir`, links left out, with its mode.
fn modes(dir: &Path) -> Vec<(PathBuf, u32, bool)> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).expect("reading a directory").flatten() {
        let m = fs::symlink_metadata(e.path()).expect("stat");
        if m.is_symlink() {
            continue;
        }
        out.push((e.path(), m.permissions().mode() & 0o7777, m.is_dir()));
        if m.is_dir() {
            out.extend(modes(&e.path()));
        }
    }
    out
}

// --- privacy ------------------------------------------------------------------------------

#[test]
fn another_user_can_read_nothing_in_the_store_even_when_jobs_start_under_umask_000() {
    if !need_tool("setpriv") || !isolated("switching to another user", true) {
        return;
    }
    let env = Env::new();
    let script = format!(
        "umask 000; {run} --name secret sh -c 'echo the-secret' && {job} run --key k --name keyed 'echo more'",
        run = bin("run").display(),
        job = bin("job").display()
    );
    let out = env.tool("sh").args(["-c", &script]).output().expect("running sh");
    assert!(out.status.success(), "{}", stderr(&out));
    for j in env.jobs() {
        env.wait_ended(j["id"].as_str().unwrap_or_default(), SOON);
    }
    let id = env.jobs()[0]["id"].as_str().unwrap_or_default().to_string();
    // The way to the store is open: only the store's own modes stand guard.
    fs::set_permissions(&env.root, fs::Permissions::from_mode(0o755)).expect("chmod");

    let s = env.store.display();
    for probe in [
        format!("ls {s}"),
        format!("cat {s}/{id}/log"),
        format!("cat {s}/{id}/meta.json"),
        format!("ls {s}/{id}"),
        format!("ls {s}/.keys"),
    ] {
        let out = as_another_user(&probe);
        assert!(!out.status.success(), "user {OTHER_ID} could run `{probe}`: {}", stdout(&out));
        assert!(!stdout(&out).contains("the-secret") && !stdout(&out).contains(&id), "{probe} leaked");
    }
    // A copy of runs in the open directory, so that the user can run it
    // wherever the build is.
    let runs = env.root.join("runs");
    fs::copy(bin("runs"), &runs).expect("copying runs");
    let out = as_another_user(&format!("RUN_DIR={s} {} --json", runs.display()));
    assert!(!matches!(out.status.code(), Some(126 | 127)), "user {OTHER_ID} could not start runs: {}", stderr(&out));
    assert!(!stdout(&out).contains(&id), "runs as another user listed the jobs");

    let mut dirs = vec![env.store.clone()];
    while let Some(d) = dirs.pop() {
        for e in fs::read_dir(&d).expect("reading the store").flatten() {
            let m = fs::symlink_metadata(e.path()).expect("stat");
            if m.is_symlink() {
                continue;
            }
            let want = if m.is_dir() { 0o700 } else { 0o600 };
            assert_eq!(m.permissions().mode() & 0o777, want, "{} is not private", e.path().display());
            if m.is_dir() {
                dirs.push(e.path());
            }
        }
    }
}

// --- the store's owner and modes ---------------------------------------------------

#[test]
fn under_umask_0277_the_store_and_every_job_are_made_private_and_later_runs_still_work() {
    let env = Env::new();
    let script = format!(
        "umask 0277 && {run} --name one true && {job} run --key k --name two true && {job} wait one two && \
         {run} --name three true && {job} wait three && {runs} && {runrm} one",
        run = bin("run").display(),
        job = bin("job").display(),
        runs = bin("runs").display(),
        runrm = bin("runrm").display()
    );
    let out = env.tool("sh").args(["-c", &script]).output().expect("running sh");
    assert!(out.status.success(), "under umask 0277: {}{}", stdout(&out), stderr(&out));
    assert_eq!(mode(&env.store), 0o700, "the store");
    let all = modes(&env.store);
    assert!(all.len() > 10, "{all:?}");
    for (path, mode, is_dir) in all {
        assert_eq!(mode, if is_dir { 0o700 } else { 0o600 }, "{}", path.display());
    }
}

#[test]
fn a_store_writable_by_group_or_others_is_refused_saying_how_to_fix_it() {
    let env = Env::new();
    let id = finished(&env, "mine");
    let s = env.store.display().to_string();
    fs::set_permissions(&env.store, fs::Permissions::from_mode(0o777)).expect("chmod");
    for (name, args) in [("runs", vec![]), ("run", vec!["true"]), ("runrm", vec![]), ("job", vec!["status", &id])] {
        let out = env.run(name, &args);
        assert_eq!(out.status.code(), Some(1), "{name} {args:?} in a store open to all: {}", stdout(&out));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(&s) && err.contains(&format!("chmod 700 {s}")), "{err}");
    }
    assert_eq!(fs::read_dir(&env.store).expect("the store").count(), 1, "nothing was added or removed");
    fs::set_permissions(&env.store, fs::Permissions::from_mode(0o700)).expect("chmod");
    assert_eq!(env.state(&id), "done");
}

#[test]
fn a_store_owned_by_another_user_is_refused_by_them_saying_how_to_fix_it() {
    if !need_tool("setpriv") || !isolated("switching to another user", true) {
        return;
    }
    let env = Env::new();
    let id = finished(&env, "mine");
    // The way to the store is open even to them (its own mode is 0755):
    // only its owner stands guard.
    for d in [&env.root, &env.store] {
        fs::set_permissions(d, fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let s = env.store.display().to_string();
    for front in [format!("{} --json", bin("runs").display()), format!("{} true", bin("run").display())] {
        let out = as_another_user(&format!("RUN_DIR={s} {front}"));
        assert_eq!(out.status.code(), Some(1), "{front} as another user: {}", stdout(&out));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(&s) && err.contains("not by you") && err.contains("chown"), "{err}");
        assert!(!stdout(&out).contains(&id), "{}", stdout(&out));
    }
    assert_eq!(fs::read_dir(&env.store).expect("the store").count(), 1, "nothing was added");
}

#[test]
fn a_user_the_password_file_does_not_name_launches_and_is_named_by_their_uid() {
    // No USER nor LOGNAME, and a uid /etc/passwd does not hold: glibc would
    // ask its other NSS modules (systemd's, LDAP's), which a static binary
    // cannot load (it crashed in getpwuid_r).
    let root = nix::unistd::geteuid().is_root();
    if !need(root, "switching to a uid no password file names needs root", "run the tests as root (CI does)") {
        return;
    }
    let env = Env::new();
    let dir = env.root.join("open");
    fs::create_dir(&dir).expect("mkdir");
    fs::set_permissions(&env.root, fs::Permissions::from_mode(0o755)).expect("chmod");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).expect("chmod");
    let store = dir.join("store");
    let out = Command::new("setpriv")
        .args(["--reuid", "54321", "--regid", "54321", "--clear-groups", "env", "-i"])
        .arg(format!("RUN_DIR={}", store.display()))
        .arg("PATH=/usr/local/bin:/usr/bin:/bin")
        .args([bin("run").as_os_str(), OsStr::new("true")])
        .current_dir(&dir)
        .output()
        .expect("setpriv");
    assert!(out.status.success(), "run as uid 54321: {:?} {}", out.status, stderr(&out));
    let id = stdout(&out).split_whitespace().next().expect("an id").to_string();
    let meta = fs::read_to_string(store.join(&id).join("meta.json")).expect("its meta.json");
    assert!(meta.contains("\"user\": \"54321\""), "{meta}");
}
