//! The watcher that stays, once a job's end is recorded, for processes the
//! job left running (`--log-max`: the cap holds while they write). Such a
//! job is not removed, its state says processes remain, `job stop` ends
//! what it left, and a SIGTERM to the watcher ends it too, with a note,
//! before the watcher leaves.

use super::*;
use crate::common::*;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

const SOON: Duration = Duration::from_secs(60);

/// A capped job whose own process ends at once (`done`) and leaves a
/// writer behind (64 KiB every 50 ms, until it is ended); returns the
/// job's id and the writer's pid once it writes.
fn left_writer(env: &Env) -> (String, i32) {
    let pidfile = env.root.join("writer.pid");
    let script = format!(
        "sh -c 'while :; do head -c 65536 /dev/zero | tr \"\\0\" y; echo; sleep 0.05; done' & echo $! > '{}'",
        pidfile.display()
    );
    let id = env.start(&["--log-max", "64K", "sh", "-c", &script]);
    assert_eq!(env.wait_ended(&id, SOON)["state"], "done");
    let mut pid = 0;
    wait_until(SOON, "the writer's pid", || {
        pid = fs::read_to_string(&pidfile).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
        pid > 0
    });
    assert!(pid_alive(pid.into()), "the writer is not running");
    (id, pid)
}

fn watcher_of(env: &Env, id: &str) -> i32 {
    int(&meta_at(&env.job_dir(id))["watcher_pid"])
}

#[test]
fn runrm_and_job_clean_keep_an_ended_job_whose_background_writer_runs_and_remove_it_once_stopped() {
    let env = Env::new();
    let (id, writer) = left_writer(&env);
    let by_id = env.run("runrm", &[&id]);
    assert_eq!(code(&by_id), 1, "runrm {id}: {}", stderr(&by_id));
    let err = stderr(&by_id);
    assert!(err.contains(&id) && err.contains("its processes still run; job stop"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let all = env.run("runrm", &[]);
    assert!(all.status.success(), "runrm: {}", stderr(&all));
    assert!(stderr(&all).contains("kept 1 ended job whose processes still run"), "{}", stderr(&all));
    let clean = env.run("job", &["clean", "--all"]);
    assert!(clean.status.success(), "job clean: {}", stderr(&clean));
    assert!(stderr(&clean).contains("kept 1 ended job whose processes still run"), "{}", stderr(&clean));
    assert!(env.job_dir(&id).join("meta.json").exists(), "the job was removed while its writer ran");
    assert!(pid_alive(writer.into()), "a removal ended the writer");

    let stop = env.run("job", &["stop", &id]);
    assert!(stop.status.success(), "job stop: {}", stderr(&stop));
    assert!(stdout(&stop).contains("ended: done (exit 0); stopped its remaining processes"), "{}", stdout(&stop));
    let rm = env.run("runrm", &[&id]);
    assert!(rm.status.success(), "runrm {id} once stopped: {}", stderr(&rm));
    assert!(!env.job_dir(&id).exists(), "the job is still there once stopped");
}

#[test]
fn job_stop_of_an_ended_job_says_processes_remain_then_ends_the_writer_it_left_and_keeps_its_end() {
    for force in [false, true] {
        let env = Env::new();
        let (id, writer) = left_writer(&env);
        let watcher = watcher_of(&env, &id);
        assert_eq!(env.job(&id)["lingering"], true, "runs --json does not say processes remain");
        let listed = stdout(&env.run("runs", &[]));
        assert!(listed.contains("done (processes still running)"), "{listed}");
        let status = stdout(&env.run("job", &["status", &id]));
        assert!(status.contains("done (exit 0) (processes still running)"), "{status}");
        let args: &[&str] = if force { &["stop", "--force", &id] } else { &["stop", &id] };
        let stop = env.run("job", args);
        assert!(stop.status.success(), "job {args:?}: {}", stderr(&stop));
        assert!(stdout(&stop).contains("stopped its remaining processes"), "{}", stdout(&stop));
        assert!(!pid_alive(writer.into()), "job {args:?} returned with the writer running");
        wait_until(SOON, "the watcher to leave", || !pid_alive(watcher.into()));
        assert_eq!(env.state(&id), "done", "the recorded end changed");
        assert_eq!(env.job(&id)["lingering"], false, "runs --json says processes remain once stopped");
        let listed = stdout(&env.run("runs", &[]));
        assert!(!listed.contains("processes still running"), "{listed}");
        let again = env.run("job", &["stop", &id]);
        assert!(stdout(&again).contains("already ended: done"), "{}", stdout(&again));
    }
}

#[test]
fn sigterm_to_the_staying_watcher_ends_the_writer_with_a_note_and_the_log_stays_capped() {
    let env = Env::new();
    let (id, writer) = left_writer(&env);
    let watcher = watcher_of(&env, &id);
    kill(watcher, libc::SIGTERM);
    wait_until(SOON, "the writer to end", || !pid_alive(writer.into()));
    wait_until(SOON, "the watcher to leave", || !pid_alive(watcher.into()));
    // The note comes after all the writer wrote, where no drop reaches it.
    let log = stdout(&env.run("runlog", &[&id]));
    assert!(log.contains("the watcher was sent SIGTERM"), "no note in the log:\n{log}");
    let disk = fs::metadata(env.job_dir(&id).join("log")).map_or(0, |m| m.blocks() * 512);
    assert!(disk <= (64 << 10) + 2 * 65536, "the log takes {disk} bytes on disk, over --log-max 64K");
    assert_eq!(env.state(&id), "done", "the recorded end changed");
}

#[test]
fn a_jobs_timeout_ends_what_it_left_running_with_a_note() {
    let env = Env::new();
    let pidfile = env.root.join("left.pid");
    let script = format!("sleep 600 & echo $! > '{}'; exit 0", pidfile.display());
    let out = env.run("job", &["run", &script, "--timeout", "2s"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = stdout(&out).trim().to_string();
    assert_eq!(env.wait_ended(&id, SOON)["state"], "done");
    let mut pid = 0;
    wait_until(SOON, "the leftover's pid", || {
        pid = fs::read_to_string(&pidfile).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
        pid > 0
    });
    wait_until(SOON, "the timeout to end the leftover", || !pid_alive(pid.into()));
    wait_watcher_gone(&env, &id);
    let log = stdout(&env.run("runlog", &[&id]));
    assert!(log.contains("--timeout: ended the job's remaining processes"), "{log}");
    assert_eq!(env.state(&id), "done", "the recorded end changed");
}

#[test]
fn a_capped_job_writing_its_log_by_its_path_is_brought_back_under_the_cap_while_it_runs() {
    let env = Env::new();
    // 20 MiB appended by the log's path (not through stdout), then a
    // wait: the watcher's looks, not the end, must bring it back.
    let script = "head -c 20000000 /dev/zero | tr '\\0' y >> \"$(echo \"$RUN_DIR\"/*/log)\"; sleep 600";
    let id = env.start(&["--log-max", "1M", "sh", "-c", script]);
    let log = env.job_dir(&id).join("log");
    wait_until(SOON, "the 20 MB to be written", || fs::metadata(&log).map_or(0, |m| m.len()) >= 20_000_000);
    wait_until(SOON, "the log to be back under its cap while the job runs", || {
        fs::metadata(&log).map_or(u64::MAX, |m| m.blocks() * 512) <= (1 << 20) + 8192
    });
    assert!(!env.job_dir(&id).join("status").exists(), "the job ended");
}
