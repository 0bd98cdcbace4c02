//! The store: where it is, that it is private, and that a store that
//! cannot be used (read-only, a file in its place, missing) is named or
//! made, never half-used. Submodules: `disk` (a full disk), `entries`
//! (damaged, planted and hostile entries), `privacy` (owner and modes).
//!
//! Some cases need privileges: a tmpfs for a full or read-only disk, a
//! second user. They run inside namespaces of their own
//! (`common::isolated`), as root there, changing nothing on the host;
//! where namespaces are not allowed they are reported as not run.

mod disk;
mod entries;
mod planted;
mod privacy;

use crate::common::*;
use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).expect("reading a mode").permissions().mode() & 0o777
}

/// A tmpfs mounted for one test (inside its namespaces: see
/// `common::isolated`); unmounted when dropped, even on failure.
struct Tmpfs {
    at: PathBuf,
}

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        fs::create_dir_all(at).expect("making the mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755"), "tmpfs"])
            .arg(at)
            .output()
            .expect("running mount");
        assert!(out.status.success(), "mount -t tmpfs {}: {}", at.display(), stderr(&out));
        Tmpfs { at: at.to_path_buf() }
    }

    fn remount(&self, opts: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,{opts}")])
            .arg(&self.at)
            .output()
            .expect("running mount");
        assert!(out.status.success(), "mount -o remount,{opts}: {}", stderr(&out));
    }

    /// Bytes still free.
    fn free(&self) -> u64 {
        let s = nix::sys::statvfs::statvfs(&self.at).expect("statvfs on the tmpfs");
        s.blocks_available() as u64 * s.fragment_size() as u64
    }

    /// Fills the file system with a file `filler`, then frees `free` bytes
    /// of it again (whole pages).
    fn fill_leaving(&self, free: u64) {
        let path = self.at.join("filler");
        let mut f = fs::File::create(&path).expect("creating the filler");
        let block = vec![0u8; 64 * 1024];
        loop {
            match f.write(&block) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("filling {}: {e}", path.display()),
            }
        }
        let len = f.metadata().expect("reading the filler").len();
        f.set_len(len.saturating_sub(free)).expect("freeing part of the filler");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount").arg(&self.at).status().is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.at).status();
        }
    }
}

// --- the store -----------------------------------------------------------------

#[test]
fn the_store_and_its_jobs_are_private_to_the_user() {
    let env = Env::new();
    let job = launch(&env, &["true"]);
    env.wait_ended(&job.id, SOON);
    assert_eq!(mode(&env.store), 0o700, "the store");
    let dir = env.job_dir(&job.id);
    assert_eq!(mode(&dir), 0o700, "the job directory");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("reading the job directory").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        // The watcher's temporary file for meta.json may be renamed away
        // between the listing and the look at it.
        if name.starts_with('.') && !entry.path().exists() {
            continue;
        }
        assert_eq!(mode(&entry.path()), 0o600, "{name}");
        names.push(name);
    }
    for f in ["cmd", "meta.json", "log", "pid", "status"] {
        assert!(names.iter().any(|n| n == f), "no {f} in {names:?}");
    }
}

#[test]
fn without_run_dir_the_store_is_under_xdg_data_home_else_under_home() {
    let env = Env::new();
    let xdg = env.root.join("xdg");
    let cases = [(Some(&xdg), xdg.join("run")), (None, env.home.join(".local/share/run"))];
    for (xdg_dir, store) in cases {
        let with_env = |name: &str| {
            let mut c = env.cmd(name);
            c.env_remove("RUN_DIR");
            if let Some(x) = xdg_dir {
                c.env("XDG_DATA_HOME", x);
            }
            c
        };
        let out = with_env("run").arg("true").output().expect("running run");
        assert!(out.status.success(), "run failed: {}", stderr(&out));
        let text = stdout(&out);
        let id = text.split_whitespace().next().expect("an id");
        assert_eq!(text.split_whitespace().nth(2), Some(store.join(id).join("log").to_str().expect("UTF-8")));
        assert!(store.join(id).is_dir(), "no job in {}", store.display());
        assert_eq!(mode(&store), 0o700);
        let out = with_env("runs").arg("--json").output().expect("running runs");
        assert!(stdout(&out).contains(id), "runs does not see the job: {}", stdout(&out));
    }
    assert!(!env.store.exists(), "RUN_DIR was used though unset");
}

// --- the store unusable ------------------------------------------------------------

#[test]
fn a_read_only_store_is_refused_in_one_line_naming_it_and_stays_readable() {
    if !isolated("mounting a tmpfs", false) {
        return;
    }
    let mut env = Env::new();
    let disk = Tmpfs::mount(&env.root.join("disk"), "4m");
    env.store = disk.at.join("store");
    let id = env.start(&["--name", "before", "echo", "kept"]);
    env.wait_ended(&id, SOON);
    wait_watcher_gone(&env, &id);
    // Read-only for everyone who writes through this mount (a user
    // namespace may not make the tmpfs itself read-only): EROFS all the same.
    disk.remount("bind,ro");

    let store = env.store.display().to_string();
    for (front, args) in
        [("run", vec!["true"]), ("job", vec!["run", "true"]), ("job", vec!["run", "--key", "k", "true"])]
    {
        let out = env.run(front, &args);
        one_line_error(&out, 1, &[&store, "read-only file system"], &format!("{front} {args:?}"));
    }
    for (front, args) in [("runrm", vec![id.as_str()]), ("runrm", vec![]), ("job", vec!["clean", "--all"])] {
        let out = env.run(front, &args);
        let what = format!("{front} {args:?} on a read-only store");
        one_line_error(&out, 1, &[&env.job_dir(&id).display().to_string(), "read-only file system"], &what);
    }
    let out = env.run("runs", &[]);
    assert!(out.status.success() && stdout(&out).contains(&id), "runs: {}", stderr(&out));
    let out = env.run("runlog", &[&id, "--no-follow"]);
    assert!(out.status.success() && stdout(&out).contains("kept"), "runlog: {}", stderr(&out));
    assert_eq!(entries(&env.store), vec![OsString::from(&id)]);
}

#[test]
fn a_file_where_the_store_should_be_is_an_error_naming_it_from_every_command() {
    let mut env = Env::new();
    let file = env.root.join("store-file");
    write(&file, "not a directory\n");
    let commands: [(&str, &[&str]); 19] = [
        ("run", &["true"]),
        ("run", &["sh", "-c", "exit 0"]),
        ("job", &["run", "true"]),
        ("runs", &[]),
        ("runs", &["--json"]),
        ("runlog", &[]),
        ("runlog", &["x"]),
        ("runrm", &[]),
        ("runrm", &["x"]),
        ("runrm", &["--dry-run"]),
        ("job", &["list", "--all"]),
        ("job", &["list", "--json"]),
        ("job", &["status"]),
        ("job", &["status", "x"]),
        ("job", &["logs", "x"]),
        ("job", &["stop", "x"]),
        ("job", &["wait", "x"]),
        ("job", &["retry", "x"]),
        ("job", &["clean", "--all"]),
    ];
    for store in [file.clone(), file.join("sub")] {
        env.store = store;
        for (front, args) in commands {
            let out = env.run(front, args);
            let what = format!("RUN_DIR={} {front} {args:?}", env.store.display());
            one_line_error(&out, 1, &[&file.display().to_string()], &what);
        }
    }
    assert_eq!(fs::read_to_string(&file).ok().as_deref(), Some("not a directory\n"));
}

#[test]
fn a_missing_store_reads_as_empty_and_is_made_private_by_the_first_run() {
    let mut env = Env::new();
    env.store = env.root.join("not/yet/there");
    let store = env.store.display().to_string();
    let out = env.run("runs", &[]);
    assert!(out.status.success(), "runs: {}", stderr(&out));
    assert!(stderr(&out).contains(&format!("no jobs in {store}")), "runs: {}", stderr(&out));
    assert_eq!(stdout(&env.run("runs", &["--json"])).trim(), "[]");
    for (front, args) in [("runlog", vec!["x"]), ("runlog", vec![]), ("runrm", vec!["x"]), ("job", vec!["status", "x"])]
    {
        let out = env.run(front, &args);
        one_line_error(&out, 1, &[&store], &format!("{front} {args:?} with no store"));
    }
    for (front, args) in [("runrm", vec![]), ("job", vec!["clean", "--all"]), ("job", vec!["status"])] {
        let out = env.run(front, &args);
        assert!(out.status.success(), "{front} {args:?} with no store: {}", stderr(&out));
    }
    assert!(!env.root.join("not").exists(), "a reader made the store");

    let id = env.start(&["true"]);
    assert_eq!(env.wait_ended(&id, SOON)["state"], "done");
    let mode = fs::metadata(&env.store).expect("the store exists now").permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "the store was made {mode:o}");
}
