//! Removing jobs (`runrm`, `job clean`): never a running job, nor one
//! ending at that moment, nor one replaced under the same id; what is
//! printed; leftovers of interrupted launches swept; a removed job's key
//! freed.

use crate::common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A child killed (and reaped) when the test ends, even by a failed assert.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `front args` again and again until `stop`, collecting every run
/// that did not exit 0 quietly.
fn churn(env: &Env, front: &'static str, args: &'static [&'static str], stop: Arc<AtomicBool>) -> Vec<String> {
    let mut complaints = Vec::new();
    let mut cmd = env.cmd(front);
    cmd.args(args);
    while !stop.load(Ordering::SeqCst) {
        let out = cmd.output().expect("running a remover");
        if !out.status.success() || !out.stderr.is_empty() {
            complaints.push(format!("{front} {args:?}: {:?}: {}", out.status.code(), stderr(&out)));
        }
    }
    complaints
}

/// The processes waiting for a flock (`->` lines of /proc/locks).
fn lock_waiters() -> Vec<i32> {
    let text = fs::read_to_string("/proc/locks").unwrap_or_default();
    text.lines()
        .filter(|l| l.contains("->"))
        .filter_map(|l| l.split_whitespace().nth(5).and_then(|p| p.parse().ok()))
        .collect()
}

// --- runrm ---------------------------------------------------------------------

#[test]
fn runrm_never_removes_a_job_that_is_ending_at_that_moment() {
    let env = Env::new();
    for round in 0..8 {
        // Ten jobs ending together, and three runrm loops racing them.
        let jobs: Vec<Launched> = (0..10).map(|_| launch(&env, &["sleep", "0.3"])).collect();
        let mut kept = Vec::new();
        for (i, job) in jobs.iter().enumerate() {
            let watcher = meta(&env, &job.id)["watcher_pid"].as_i64().expect("watcher_pid");
            // A second name for the log outlives the directory: what the
            // watcher writes after a removal still shows there.
            let kept_log = env.root.join(format!("log-{round}-{i}"));
            std::fs::hard_link(&job.log, &kept_log).expect("linking the log");
            kept.push((watcher, kept_log));
        }
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    wait_until(SOON, "runrm to remove the jobs once they ended", || {
                        let out = env.run("runrm", &[]);
                        assert!(out.status.success(), "runrm failed: {}", stderr(&out));
                        let mut all_gone = true;
                        for job in &jobs {
                            let gone = !env.job_dir(&job.id).exists();
                            assert!(!gone || !pid_alive(job.pid.into()), "runrm removed {} while it ran", job.id);
                            all_gone &= gone;
                        }
                        all_gone
                    });
                });
            }
        });
        for ((watcher, kept_log), job) in kept.iter().zip(&jobs) {
            wait_until(SOON, "the watcher to exit", || !pid_alive(*watcher));
            let log = std::fs::read_to_string(kept_log).expect("reading the kept log");
            assert!(log.contains("=== done (exit 0) after "), "{}: {log}", job.id);
            assert!(!log.contains("could not record"), "runrm removed {} before its end was recorded: {log}", job.id);
        }
    }
}

#[test]
fn runrm_refuses_to_remove_a_running_job_by_id_or_name() {
    let env = Env::new();
    let mut left = Leftovers::default();
    let gate = env.root.join("gate");
    let job = launch(&env, &["--name", "sleeper", &started_gated(&gate, 0)]);
    left.add(job.pid);
    for query in [job.id.as_str(), "sleeper"] {
        let out = env.run("runrm", &[query]);
        assert_eq!(out.status.code(), Some(1), "runrm {query}");
        let err = stderr(&out);
        assert!(err.contains(&job.id) && err.contains("is running"), "runrm {query} said: {err}");
        assert!(env.job_dir(&job.id).join("log").is_file(), "runrm {query} touched the job");
        assert_eq!(env.state(&job.id), "running");
    }
    open(&gate);
    env.wait_ended(&job.id, SOON);
}

#[test]
fn runrm_dry_run_removes_nothing() {
    let env = Env::new();
    let a = launch(&env, &["true"]);
    let b = launch(&env, &["false"]);
    env.wait_ended(&a.id, SOON);
    env.wait_ended(&b.id, SOON);
    for args in [vec!["--dry-run"], vec!["--dry-run", a.id.as_str()]] {
        let out = env.run("runrm", &args);
        assert!(out.status.success(), "runrm {args:?}: {}", stderr(&out));
        let text = stdout(&out);
        assert!(text.contains(&format!("would remove {}", a.id)), "runrm {args:?}: {text}");
        assert!(text.contains("would remove "), "{text}");
        assert!(env.job_dir(&a.id).is_dir() && env.job_dir(&b.id).is_dir(), "runrm {args:?} removed a job");
    }
    assert!(stdout(&env.run("runrm", &["--dry-run"])).contains("would remove 2 jobs"));
    assert_eq!(env.jobs().len(), 2);
}

// --- leftovers of interrupted launches and removals ----------------------------------

#[test]
fn runrm_and_job_clean_sweep_abandoned_hidden_leftovers_and_leave_fresh_ones() {
    let env = Env::new();
    let job = env.start(&["true"]);
    env.wait_ended(&job, SOON);
    let outside = env.root.join("outside");
    std::fs::create_dir(&outside).expect("making a directory outside the store");
    write(&outside.join("precious"), "keep me\n");
    let make = |name: &str, age: &str| {
        let dir = env.store.join(name);
        std::fs::create_dir(&dir).expect("making a leftover");
        write(&dir.join("log"), "half a launch\n");
        std::os::unix::fs::symlink(&outside, dir.join("link")).expect("planting a link");
        let out = std::process::Command::new("touch").args(["-d", age]).arg(&dir).output().expect("running touch");
        assert!(out.status.success(), "touch: {}", stderr(&out));
        dir
    };
    let old_new = make(".new-true_20250101_000000-4242", "1 hour ago");
    let old_rm = make(".rm-true_20250101_000001-4243", "2 hours ago");
    let fresh = make(".new-true_20250101_000002-4244", "now");

    let out = env.run("runrm", &["--dry-run"]);
    assert!(out.status.success(), "runrm --dry-run failed: {}", stderr(&out));
    let text = stdout(&out);
    for dir in [&old_new, &old_rm] {
        let name = dir.file_name().unwrap_or_default().to_string_lossy().into_owned();
        assert!(text.contains(&format!("would remove {name}")), "runrm --dry-run: {text}");
        assert!(dir.is_dir(), "--dry-run removed {name}");
    }
    assert!(!text.contains(".new-true_20250101_000002"), "a fresh leftover was named: {text}");

    let out = env.run("runrm", &[&job]);
    assert!(out.status.success(), "runrm {job} failed: {}", stderr(&out));
    assert!(old_new.is_dir() && old_rm.is_dir(), "runrm JOB swept leftovers");

    let out = env.run("job", &["clean", "--all"]);
    assert!(out.status.success(), "job clean failed: {}", stderr(&out));
    assert!(!old_new.exists() && !old_rm.exists(), "job clean left them: {}", stdout(&out));
    assert!(fresh.is_dir(), "a launch or removal in progress was swept");
    assert_eq!(std::fs::read_to_string(outside.join("precious")).ok().as_deref(), Some("keep me\n"));
    let again = make(".new-true_20250101_000003-4245", "1 hour ago");
    let out = env.run("runrm", &[]);
    assert!(out.status.success(), "runrm failed: {}", stderr(&out));
    assert!(!again.exists(), "runrm left it: {}", stdout(&out));
    assert!(fresh.is_dir(), "a launch or removal in progress was swept");
    let out = env.run("runs", &["--json"]);
    assert!(out.status.success() && stderr(&out).is_empty(), "runs: {}", stderr(&out));
}

#[test]
fn runrm_and_job_clean_print_each_id_removed_and_no_count_after_a_refusal() {
    let env = Env::new();
    let a = env.start(&["--name", "a", "true"]);
    let b = env.start(&["--name", "b", "true"]);
    let sleeper = env.start(&["--name", "sleeper", "sleep", "30"]);
    env.wait_ended(&a, SOON);
    env.wait_ended(&b, SOON);
    let refused = env.run("runrm", &[&sleeper]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("is running"), "{}", stderr(&refused));
    assert_eq!(stdout(&refused), "", "a refusal printed a count");
    let out = env.run("runrm", &[]);
    let text = stdout(&out);
    assert!(text.contains(&format!("removed {a}\n")) && text.contains(&format!("removed {b}\n")), "{text}");
    assert!(text.contains("removed 2 jobs"), "{text}");
    let c = env.start(&["--name", "c", "true"]);
    env.wait_ended(&c, SOON);
    let out = env.run("job", &["clean", "--all"]);
    assert!(stdout(&out).starts_with(&format!("removed {c}\nremoved 1 job,")), "{}", stdout(&out));
    assert!(env.run("job", &["stop", &sleeper]).status.success());
}

// --- the old run scripts' files ----------------------------------------------------

#[test]
fn the_old_scripts_log_and_pid_files_are_listed_viewable_and_removable_never_while_running() {
    let env = Env::new();
    std::fs::create_dir_all(&env.store).expect("making the store");
    // An ended one: its pid is a process that has exited.
    let mut gone = std::process::Command::new("true").spawn().expect("running true");
    let gone_pid = gone.id();
    gone.wait().expect("reaping true");
    write(&env.store.join("build_20250101_120000.log"), "Command: make -j8\nStarted: then\ncompiling\nall done\n");
    write(&env.store.join("build_20250101_120000.pid"), &format!("{gone_pid}\n"));
    // A running one, started now.
    let mut live = KillOnDrop(std::process::Command::new("sleep").arg("60").spawn().expect("running sleep"));
    let now = stdout(&std::process::Command::new("date").arg("+%Y%m%d_%H%M%S").output().expect("date"));
    let live_id = format!("train_{}", now.trim());
    write(&env.store.join(format!("{live_id}.log")), "Command: python train.py\nepoch 1\n");
    write(&env.store.join(format!("{live_id}.pid")), &format!("{}\n", live.0.id()));
    let fresh = env.start(&["--name", "fresh", "true"]);
    env.wait_ended(&fresh, SOON);

    let listing = stdout(&env.run("runs", &[]));
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 3, "{listing}");
    assert!(lines[0].contains("build_20250101_120000") && lines[0].contains("ended, exit code unknown"), "{listing}");
    assert!(lines[0].contains("make -j8") && lines[0].contains("old run script"), "{listing}");
    assert!(lines.iter().any(|l| l.contains(&live_id) && l.contains("running") && l.contains("python train.py")));
    assert!(lines.iter().any(|l| l.contains(&fresh)), "{listing}");
    let running = stdout(&env.run("runs", &["--state", "running"]));
    assert!(running.contains(&live_id) && !running.contains("build_2025"), "{running}");
    assert_eq!(env.jobs().len(), 1, "the old scripts' jobs are not in --json");

    let out = env.run("runlog", &["build"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("compiling\nall done\n"), "{}", stdout(&out));
    let out = env.run("runlog", &[&live_id, "--no-follow"]);
    assert!(stdout(&out).contains("epoch 1"), "{}", stdout(&out));

    let refused = env.run("runrm", &[&live_id]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("is running"), "{}", stderr(&refused));
    let out = env.run("runrm", &[]);
    assert!(stdout(&out).contains("removed build_20250101_120000 (old run script)"), "{}", stdout(&out));
    assert!(
        !env.store.join("build_20250101_120000.log").exists() && !env.store.join("build_20250101_120000.pid").exists()
    );
    assert!(env.store.join(format!("{live_id}.log")).exists(), "runrm removed a running old job's log");

    live.0.kill().expect("killing sleep");
    live.0.wait().expect("reaping sleep");
    let out = env.run("runrm", &[&live_id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!env.store.join(format!("{live_id}.pid")).exists());
}

#[test]
fn runrm_and_job_clean_in_loops_never_remove_a_running_job_nor_lose_or_tear_one() {
    let env = Env::new();
    let marks = env.root.join("marks");
    fs::create_dir(&marks).expect("making the marks directory");
    // Each job's last act: say whether its own directory is still in place
    // (a removed one shows as `.rm-…` or `(deleted)` through its log), and
    // that it ran to its end, under the tag T its launcher gave it. (Ids
    // are not unique over time: once removed, an id is free again.)
    let job = |secs: &str| {
        format!(
            r#"sleep {secs}; l=$(readlink /proc/$$/fd/1);
            case "$l" in *"/.rm-"*|*deleted*) echo "$l" > {m}/REMOVED-WHILE-RUNNING.$T ;; esac; : > {m}/ended.$T"#,
            m = marks.display()
        )
    };
    let stop = Arc::new(AtomicBool::new(false));
    let (s1, s2, s3) = (stop.clone(), stop.clone(), stop.clone());
    let env = Arc::new(env);
    let (e1, e2, e3) = (env.clone(), env.clone(), env.clone());
    let runrm = std::thread::spawn(move || churn(&e1, "runrm", &[], s1));
    let clean = std::thread::spawn(move || churn(&e2, "job", &["clean", "--all"], s2));
    // A reader: every listing succeeds and names no damage, nothing is
    // ever lost, and every file it finds is whole.
    let reader = std::thread::spawn(move || {
        let mut complaints = Vec::new();
        while !s3.load(Ordering::SeqCst) {
            let out = e3.run("runs", &["--json"]);
            match serde_json::from_slice::<Value>(&out.stdout) {
                Ok(Value::Array(jobs)) => {
                    for j in jobs.iter().filter(|j| j["state"] == "lost") {
                        complaints.push(format!("a lost job: {j}"));
                    }
                    let ids: BTreeSet<&str> = jobs.iter().filter_map(|j| j["id"].as_str()).collect();
                    if ids.len() != jobs.len() {
                        complaints.push(format!("one id listed twice: {jobs:?}"));
                    }
                }
                _ => complaints.push(format!("runs --json printed no array: {}", stdout(&out))),
            }
            if !out.status.success() || !out.stderr.is_empty() {
                complaints.push(format!("runs --json: {:?}: {}", out.status.code(), stderr(&out)));
            }
            for e in fs::read_dir(&e3.store).into_iter().flatten().flatten() {
                if e.file_name().as_bytes()[0] != b'.' {
                    assert_whole(&e.path());
                }
            }
        }
        complaints
    });

    let mut launchers: Vec<Child> = (0..4)
        .map(|k| {
            let script = format!(
                "for i in $(seq 30); do T={k}.$i {run} --name churn sh -c '{short}' || echo FAILED; done",
                run = bin("run").display(),
                short = job(&format!("0.{k}")).replace('\'', r"'\''")
            );
            env.tool("sh").args(["-c", &script]).stdout(Stdio::piped()).spawn().expect("starting sh")
        })
        .collect();
    let mut printed = Vec::new();
    for i in 0..5 {
        let out = env.cmd("run").env("T", format!("long.{i}")).args(["--name", "long", "sh", "-c", &job("3")]).output();
        printed.push(id_of(&out.expect("running run")));
    }
    for sh in launchers.drain(..) {
        let out = sh.wait_with_output().expect("waiting for a launcher");
        printed.extend(stdout(&out).lines().map(|l| l.split_whitespace().next().unwrap_or(l).to_string()));
    }
    if printed.iter().any(|l| l == "FAILED") {
        stop.store(true, Ordering::SeqCst);
        panic!("a launch failed");
    }
    wait_until(SOON * 2, "every job to end", || fs::read_dir(&marks).map(|d| d.count()).unwrap_or(0) >= 125);
    wait_until(SOON, "every job's end to be recorded", || env.jobs().iter().all(|j| j["state"] != "running"));
    stop.store(true, Ordering::SeqCst);
    let mut complaints = runrm.join().expect("the runrm loop");
    complaints.extend(clean.join().expect("the job clean loop"));
    complaints.extend(reader.join().expect("the reader"));

    assert_eq!(printed.len(), 125, "ids printed: {printed:?}");
    let unique: BTreeSet<&String> = printed.iter().collect();
    assert_eq!(unique.len(), 125, "an id was given to two jobs: {printed:?}");
    let removed: Vec<OsString> = entries(&marks).into_iter().filter(|n| n.as_bytes().starts_with(b"REMOVED")).collect();
    assert_eq!(removed, Vec::<OsString>::new(), "running jobs were removed");
    let ended = entries(&marks).into_iter().filter(|n| n.as_bytes().starts_with(b"ended.")).count();
    assert_eq!(ended, 125, "not every job ran to its end");
    assert_eq!(complaints, Vec::<String>::new());
    for e in fs::read_dir(&env.store).expect("reading the store").flatten() {
        if e.file_name().as_bytes()[0] != b'.' {
            assert_whole(&e.path());
        }
    }
    let out = env.run("runrm", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    // (`.ids` keeps the removed jobs' ids.)
    let left: Vec<OsString> = entries(&env.store).into_iter().filter(|n| n != ".ids").collect();
    assert_eq!(left, Vec::<OsString>::new(), "left in the store after the last runrm");
}

#[test]
fn removing_a_damaged_job_frees_its_key() {
    let env = Env::new();
    let out = env.run("job", &["run", "--key", "k1", "--wait", "true"]);
    assert!(out.status.success(), "job run: {}", stderr(&out));
    let id = stdout(&out).trim().to_string();
    write(&env.job_dir(&id).join("meta.json"), "{ damaged");
    let out = env.run("runrm", &[&id]);
    assert!(out.status.success(), "runrm: {}{}", stdout(&out), stderr(&out));
    assert!(!env.job_dir(&id).exists());
    let out = env.run("job", &["run", "--key", "k1", "--wait", "true"]);
    assert!(out.status.success(), "job run: {}", stderr(&out));
    let again = stdout(&out).trim().to_string();
    assert_ne!(again, id, "the key still names the removed job");
    assert!(env.job_dir(&again).exists());
}

// --- runrm and job clean remove only the job they judged ------------------------------------

#[test]
fn a_job_directory_replaced_under_the_same_id_between_listing_and_removal_is_left_alone() {
    let env = Env::new();
    let base = finished(&env, "base");
    let id = "swapped_20250101_000000";
    plant(&env.job_dir(&base), &env.store, OsStr::new(id), |_| {});
    for (round, front) in ["runrm", "job"].into_iter().enumerate() {
        // Holding the store's lock keeps the removal waiting after it has
        // judged the job.
        let lock = fs::File::open(&env.store).expect("opening the store");
        lock.lock_shared().expect("locking the store");
        let args: Vec<&str> = if front == "runrm" { vec![id] } else { vec!["clean", "--all"] };
        let child = env.cmd(front).args(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
        let pid = child.id() as i32;
        wait_until(SOON, "the removal to wait for the store's lock", || lock_waiters().contains(&pid));
        // Another job takes the id meanwhile.
        let old = env.root.join(format!("old-{front}"));
        fs::rename(env.store.join(id), &old).expect("moving the judged job away");
        plant(&old, &env.store, OsStr::new(id), |m| {
            m["started_at"] = "2025-01-01T00:00:00.500+00:00".into();
            m["pid"] = (999_990 + round).into();
        });
        drop(lock);
        let out = child.wait_with_output().expect("waiting");
        assert!(out.status.success(), "{front}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(env.store.join(id).join("meta.json").exists(), "{front} removed the job that took the id");
        assert_eq!(meta_at(&env.store.join(id))["pid"], 999_990 + round);
    }
}

// --- job clean -------------------------------------------------------------------

#[test]
fn clean_older_than_removes_only_jobs_that_ended_before_then() {
    let env = jobs();
    let ten_days = env.ended("true", "ten-days");
    let two_days = env.ended("false", "two-days");
    let twelve_hours = env.ended("true", "twelve-hours");
    let fresh = env.ended("true", "fresh");
    let running = env.launch(&["sleep 300", "--name", "running"]);
    env.age(&ten_days, chrono::Duration::days(10));
    env.age(&two_days, chrono::Duration::days(2));
    env.age(&twelve_hours, chrono::Duration::hours(12));
    let dry = env.cli(&["clean", "--older-than", "1d", "--dry-run"]);
    assert!(stdout(&dry).contains("would remove 2 jobs"), "{}", stdout(&dry));
    assert_eq!(env.ids().len(), 5);
    let out = env.cli(&["clean", "--older-than", "1d"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("removed 2 jobs"), "{}", stdout(&out));
    let mut left = vec![twelve_hours, fresh, running.clone()];
    left.sort();
    assert_eq!(env.ids(), left);
    assert_eq!(env.state(&running), "running");
}

#[test]
fn clean_defaults_to_seven_days_and_all_removes_every_job_that_is_not_running() {
    let env = jobs();
    let eight_days = env.ended("true", "eight-days");
    let six_days = env.ended("true", "six-days");
    let failed = env.ended("false", "failed");
    let running = env.launch(&["sleep 300", "--name", "running"]);
    env.age(&eight_days, chrono::Duration::days(8));
    env.age(&six_days, chrono::Duration::days(6));
    let out = env.cli(&["clean"]);
    assert!(stdout(&out).contains("removed 1 job,"), "{}", stdout(&out));
    let mut left = vec![six_days, failed, running.clone()];
    left.sort();
    assert_eq!(env.ids(), left);
    let out = env.cli(&["clean", "--all"]);
    assert!(stdout(&out).contains("removed 2 jobs"), "{}", stdout(&out));
    assert_eq!(env.ids(), vec![running.clone()]);
    assert_eq!(env.state(&running), "running");
}

// --- a damaged status on a running job ---------------------------------------------------------

#[test]
fn a_running_job_whose_status_file_is_damaged_is_never_removed() {
    let env = Env::new();
    // The job runs and its watcher holds the end's lock; a `status` file
    // that is not a status (empty, garbage, a link: planted, or a torn
    // write) says nothing of how it ended, as a damaged meta.json says
    // nothing (that job is kept while its pid lives).
    for (round, damage) in ["", "garbage\n", "link"].into_iter().enumerate() {
        let id = env.start(&["--name", &format!("alive{round}"), "sleep", "600"]);
        let pid = int(&meta(&env, &id)["pid"]);
        let status = env.job_dir(&id).join("status");
        if damage == "link" {
            std::os::unix::fs::symlink("/etc/hostname", &status).expect("planting a link");
        } else {
            write(&status, damage);
        }
        for args in [vec![id.as_str()], vec![], vec!["--force"]] {
            let out = env.run("runrm", &args);
            assert!(
                env.job_dir(&id).join("log").exists(),
                "runrm {args:?} removed the running job {id} (status {damage:?}, pid {pid} alive: {}): {}{}",
                pid_alive(pid.into()),
                stdout(&out),
                stderr(&out)
            );
        }
        assert!(pid_alive(pid.into()));
        kill(pid, libc::SIGKILL);
    }
}

#[test]
fn runrm_never_removes_the_log_that_a_process_the_job_left_running_still_writes() {
    let env = Env::new();
    // No cap: the watcher leaves with the main process, and the job's
    // background child goes on writing into the log. Removing the job
    // then frees nothing (the file lives on, unlinked, growing where no
    // one sees it), though runrm says it freed the log's size.
    let left = env.root.join("left.pid");
    let script = format!("(while :; do echo tick; sleep 0.02; done) & echo $! > '{}'; exit 0", left.display());
    let id = env.start(&["--name", "leaves", "sh", "-c", &script]);
    assert_eq!(env.wait_ended(&id, SOON)["state"], "done");
    let mut pid = 0;
    wait_until(SOON, "the background child to start", || {
        pid = fs::read_to_string(&left).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
        pid > 0
    });
    let out = env.run("runrm", &[&id]);
    let kept = env.job_dir(&id).join("log").exists();
    let alive = pid_alive(pid.into());
    kill(pid, libc::SIGKILL);
    assert!(alive, "the background child ended by itself");
    assert!(kept, "runrm removed {id} while its process {pid} still writes its log: {}{}", stdout(&out), stderr(&out));
}

// --- hostile trees: what the closing line claims ------------------------------------------

/// The bytes the closing line "removed N jobs, X freed" claims.
fn claimed_freed(text: &str) -> u64 {
    let line = text.lines().rev().find(|l| l.contains(" freed")).unwrap_or_else(|| panic!("no closing line: {text}"));
    let x = line.rsplit(", ").next().unwrap_or_default().trim_end_matches(" freed");
    let (num, unit) = x.split_once(' ').unwrap_or((x, "B"));
    let n: f64 = num.parse().unwrap_or_else(|_| panic!("size in {line:?}"));
    let mult = match unit {
        "B" => 1.0,
        "KiB" | "KB" | "K" => 1024.0,
        "MiB" | "MB" | "M" => 1024.0 * 1024.0,
        "GiB" | "GB" | "G" => 1024.0 * 1024.0 * 1024.0,
        u => panic!("unit {u:?} in {line:?}"),
    };
    (n * mult) as u64
}

/// What `path` holds on the disk (blocks), not following links.
fn blocks_under(path: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let m = fs::symlink_metadata(path).expect("stat");
    let own = m.blocks() * 512;
    if !m.is_dir() {
        return own;
    }
    own + fs::read_dir(path).expect("listing").flatten().map(|e| blocks_under(&e.path())).sum::<u64>()
}

#[test]
fn runrm_counts_the_directories_it_frees() {
    // 500 empty directories planted in an ended job: 2 MiB on most file
    // systems, which `remove_tree_in` removes without counting (only the
    // files' blocks and the top's are added up).
    let env = Env::new();
    let job = env.start(&["true"]);
    env.wait_ended(&job, SOON);
    for i in 0..500 {
        fs::create_dir(env.job_dir(&job).join(format!("d{i}"))).expect("planting a directory");
    }
    let held = blocks_under(&env.job_dir(&job));
    let out = env.run("runrm", &[&job]);
    assert!(out.status.success(), "runrm failed: {}", stderr(&out));
    let claimed = claimed_freed(&stdout(&out));
    assert!(claimed * 2 >= held, "held {held} bytes, runrm claims {claimed}: {}", stdout(&out));
}

#[test]
fn runrm_does_not_claim_a_hard_linked_outside_file_as_freed() {
    // A hard link to a file outside the store, planted in an ended job:
    // removing the job frees nothing of it (the outside name keeps it).
    let env = Env::new();
    let job = env.start(&["true"]);
    env.wait_ended(&job, SOON);
    let outside = env.root.join("precious");
    let data: Vec<u8> = (0..8u32 << 20).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(&outside, &data).expect("writing the outside file");
    fs::hard_link(&outside, env.job_dir(&job).join("big")).expect("planting a hard link");
    let out = env.run("runrm", &[&job]);
    assert!(out.status.success(), "runrm failed: {}", stderr(&out));
    assert_eq!(fs::read(&outside).expect("the outside file"), data, "the outside file's content changed");
    let claimed = claimed_freed(&stdout(&out));
    assert!(claimed < 1 << 20, "nothing of the 8 MiB was freed, runrm claims {claimed}: {}", stdout(&out));
}

#[test]
fn runrm_sweeps_an_abandoned_leftover_however_deep() {
    // A removal killed while it deleted a deep planted tree leaves a deep
    // `.rm-*`; the sweep (std's remove_dir_all, recursive: one descriptor
    // per level) fails at ~1020 levels under the usual 1024 descriptors,
    // silently, on every later runrm: the leftover stays forever.
    let env = Env::new();
    let job = env.start(&["true"]);
    env.wait_ended(&job, SOON);
    let left = env.store.join(".rm-true_20250101_000001-4243");
    fs::create_dir(&left).expect("making a leftover");
    let mut fd = nix::fcntl::open(&left, nix::fcntl::OFlag::O_RDONLY, nix::sys::stat::Mode::empty()).expect("open");
    for _ in 0..1500 {
        nix::sys::stat::mkdirat(&fd, "x", nix::sys::stat::Mode::S_IRWXU).expect("mkdir");
        fd = nix::fcntl::openat(&fd, "x", nix::fcntl::OFlag::O_RDONLY, nix::sys::stat::Mode::empty()).expect("openat");
    }
    drop(fd);
    let out = std::process::Command::new("touch").args(["-d", "1 hour ago"]).arg(&left).output().expect("touch");
    assert!(out.status.success(), "touch: {}", stderr(&out));
    let bin = env.cmd("runrm").get_program().to_owned();
    let mut cmd = env.cmd("runrm");
    let cmd = {
        let mut sh = std::process::Command::new("sh");
        sh.arg("-c").arg("ulimit -n 1024 && exec \"$0\"").arg(&bin);
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => sh.env(k, v),
                None => sh.env_remove(k),
            };
        }
        sh.current_dir(&env.root);
        let _ = &mut cmd;
        sh
    };
    let out = { cmd }.output().expect("running runrm");
    assert!(out.status.success(), "runrm failed: {}", stderr(&out));
    assert!(!left.exists(), "the abandoned deep leftover stays: {}", stdout(&out));
}

#[test]
fn a_second_runrm_does_not_sweep_a_removal_in_progress() {
    // The rename out of sight keeps the directory's mtime: a job that ended
    // an hour ago, being deleted now as `.rm-ID-PID`, looks abandoned to
    // another runrm's sweep, which deletes it under the first and reports
    // it "left by an interrupted launch or removal" (and both count it).
    let env = Env::new();
    let job = env.start(&["true"]);
    env.wait_ended(&job, SOON);
    let dir = env.job_dir(&job);
    for i in 0..40_000 {
        fs::write(dir.join(format!("f{i}")), b"x").expect("planting a file");
    }
    let out = std::process::Command::new("touch").args(["-d", "1 hour ago"]).arg(&dir).output().expect("touch");
    assert!(out.status.success(), "touch: {}", stderr(&out));
    let first = env.cmd("runrm").arg(&job).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("runrm");
    let first = KillOnDrop(first);
    let hidden = format!(".rm-{job}-{}", first.0.id());
    wait_until(SOON, "the job to be hidden", || env.store.join(&hidden).exists());
    let out = env.run("runrm", &[]);
    let mut first = first;
    let _ = first.0.wait();
    let text = stdout(&out);
    assert!(!text.contains(&hidden), "a removal in progress was swept as abandoned: {text}");
}

/// `chattr -i` on drop: an immutable planted file must not outlive the test.
struct Mutable(std::path::PathBuf);

impl Drop for Mutable {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr").arg("-R").arg("-i").arg(&self.0).output();
    }
}

#[test]
fn a_job_runrm_cannot_delete_is_not_left_hidden_half_removed_and_never_swept() {
    // Something runrm cannot delete in an ended job (here an immutable
    // file, as root; as a user, a directory of mode 0500 or a bind mount
    // does the same): runrm fails, yet the job is already renamed out of
    // sight and its log deleted. It vanishes from `runs`, and every later
    // runrm's sweep fails silently ("removed 0 jobs", exit 0): the space
    // is never freed and never named again.
    let env = Env::new();
    let job = env.start(&["true"]);
    env.wait_ended(&job, SOON);
    let sub = env.job_dir(&job).join("zz");
    fs::create_dir(&sub).expect("planting a directory");
    fs::write(sub.join("stuck"), b"x").expect("planting a file");
    let _guard = Mutable(env.store.clone());
    let out = std::process::Command::new("chattr").arg("+i").arg(sub.join("stuck")).output().expect("chattr");
    let why = format!("chattr +i was refused here: {}", stderr(&out));
    if !need(out.status.success(), &why, "run the tests as root on ext4, xfs or btrfs (chattr +i)") {
        return;
    }
    let out = env.run("runrm", &[&job]);
    assert!(!out.status.success(), "runrm removed an immutable file?");
    let hidden: Vec<String> =
        crate::common::store_entries(&env).into_iter().filter(|n| n.starts_with(".rm-")).collect();
    let listed = env.jobs().iter().any(|j| j["id"] == job.as_str());
    assert!(listed || hidden.is_empty(), "the job is neither listed nor gone: hidden as {hidden:?}");
    assert!(stderr(&out).contains(&job) && stderr(&out).contains("what is left of it stays"), "{}", stderr(&out));
}
