//! A full disk (a small tmpfs, inside namespaces): `run` makes a whole job
//! or nothing, a job's end is still recorded, and a job whose end cannot
//! be written shows lost, not running forever.

use super::*;
use crate::common::*;
use std::fs;
use std::path::PathBuf;

// --- disk full -------------------------------------------------------------------

#[test]
fn on_a_full_disk_run_makes_a_whole_job_or_nothing_at_every_fill_level() {
    if !isolated("mounting a tmpfs", false) {
        return;
    }
    let mut env = Env::new();
    let disk = Tmpfs::mount(&env.root.join("disk"), "1m");
    env.store = disk.at.join("store");
    let mut accepted = Vec::new();
    for pages in 0..=12u64 {
        disk.fill_leaving(pages * 4096);
        let before = entries(&env.store);
        let out = env.run("run", &["--name", "full", "true"]);
        if out.status.success() {
            let id = id_of(&out);
            let j = env.wait_ended(&id, SOON);
            assert_eq!(j["state"], "done", "with {pages} pages free: {j}");
            assert_eq!(j["exit_code"], 0, "with {pages} pages free: {j}");
            wait_watcher_gone(&env, &id);
            assert_whole(&env.job_dir(&id));
            for f in ["meta.json", "log", "status"] {
                assert!(env.job_dir(&id).join(f).is_file(), "with {pages} pages free, {id} has no {f}");
            }
            // `cmd` and `pid` repeat meta.json and are written after the
            // launch: on a full disk they may be missing, but never silently.
            let log = fs::read_to_string(env.job_dir(&id).join("log")).expect("reading the log");
            for f in ["cmd", "pid"] {
                let said = log.contains(&format!("{f}: no space left on device"));
                assert!(env.job_dir(&id).join(f).is_file() || said, "with {pages} pages free, {id} has no {f}: {log}");
            }
        } else {
            let store = env.store.display().to_string();
            one_line_error(&out, 1, &[&store, "no space left on device"], &format!("run with {pages} pages free"));
            assert_eq!(entries(&env.store), before, "a refused run left something in the store");
        }
        accepted.push(out.status.success());
        assert_eq!(hidden_leftovers(&env.store), Vec::<PathBuf>::new(), "with {pages} pages free");
        let out = env.run("runs", &["--json"]);
        assert!(out.status.success(), "runs failed with {pages} pages free: {}", stderr(&out));
        assert_eq!(stderr(&out), "", "runs found damage with {pages} pages free");
        fs::remove_file(disk.at.join("filler")).expect("removing the filler");
    }
    // The disk was really full at first, and there was room at the end.
    assert_eq!(accepted.first(), Some(&false), "run succeeded on a full disk");
    assert_eq!(accepted.last(), Some(&true), "run failed with 12 pages free");
}

#[test]
fn a_job_that_fills_the_disk_still_has_its_end_recorded_and_the_store_stays_readable() {
    if !isolated("mounting a tmpfs", false) {
        return;
    }
    let mut env = Env::new();
    let disk = Tmpfs::mount(&env.root.join("disk"), "1m");
    env.store = disk.at.join("store");
    let id = env.start(&["--name", "filler", "sh", "-c", "head -c 4000000 /dev/zero; echo more; exit 3"]);
    let j = env.wait_ended(&id, SOON);
    assert_eq!(j["state"], "failed", "{j}");
    assert_eq!(j["exit_code"], 3, "{j}");
    assert!(disk.free() < 8192, "the job did not fill the disk: {} bytes free", disk.free());
    let status = fs::read_to_string(env.job_dir(&id).join("status")).expect("reading status");
    assert!(status.starts_with("failed exit 3 "), "status: {status:?}");

    let out = env.run("runs", &[]);
    assert!(out.status.success(), "runs on a full disk: {}", stderr(&out));
    assert_eq!(stderr(&out), "");
    assert!(
        stdout(&out).contains(&format!("{id} (PID")) && stdout(&out).contains("failed (exit 3)"),
        "{}",
        stdout(&out)
    );
    let out = env.run("runlog", &[&id, "--no-follow"]);
    assert!(out.status.success(), "runlog on a full disk: {}", stderr(&out));

    let out = env.run("run", &["true"]);
    one_line_error(&out, 1, &["no space left on device"], "run on a disk a job filled");
    let out = env.run("runrm", &[&id]);
    assert!(out.status.success(), "runrm on a full disk: {}", stderr(&out));
    assert!(disk.free() > 512 * 1024, "removing the job did not free the disk");
    let id = env.start(&["true"]);
    assert_eq!(env.wait_ended(&id, SOON)["state"], "done");
}

#[test]
fn a_job_whose_end_cannot_be_written_shows_lost_not_running_forever() {
    let env = Env::new();
    // The job takes away the reserved status file, so that its end cannot
    // be written when it comes.
    let id = env.start(&["sh", "-c", r#"rm "$(dirname "$(readlink /proc/$$/fd/1)")/.status"; exit 4"#]);
    let j = env.wait_ended(&id, SOON);
    assert_eq!(j["state"], "lost", "{j}");
    assert!(j["exit_code"].is_null() && j["signal"].is_null() && j["ended_at"].is_null(), "{j}");
    assert!(env.log(&id).contains("could not record the end"), "the watcher did not say why: {}", env.log(&id));
    let out = env.run("job", &["wait", &id]);
    assert_eq!(out.status.code(), Some(1), "job wait on a lost job: {}", stderr(&out));
    wait_watcher_gone(&env, &id);
    assert_eq!(env.state(&id), "lost");
}

#[test]
fn a_capped_log_on_a_disk_that_fills_past_the_cap_still_drops_its_oldest_output_and_keeps_the_newest() {
    if !isolated("mounting a tmpfs", false) {
        return;
    }
    let mut env = Env::new();
    let disk = Tmpfs::mount(&env.root.join("disk"), "2m");
    env.store = disk.at.join("store");
    let gate = env.root.join("gate");
    let script = format!(
        "while [ ! -e '{}' ]; do sleep 0.01; done; i=0; while [ $i -lt 400 ]; do seq 1 2000; i=$((i+1)); done; echo LAST-LINE",
        gate.display()
    );
    let id = env.start(&["--name", "capped", "--log-max", "512K", "sh", "-c", &script]);
    // The disk holds the cap and two pages more: the log can always be
    // brought back under its cap by dropping its oldest output.
    disk.fill_leaving((512 << 10) + 8192);
    write(&gate, "");
    let j = env.wait_ended(&id, SOON);
    assert_eq!(j["state"], "done", "{j}");
    wait_watcher_gone(&env, &id);
    let shown = runlog(&env, &id);
    let tail: String = shown.chars().rev().take(400).collect::<Vec<_>>().into_iter().rev().collect();
    assert!(
        shown.contains("LAST-LINE\n") && shown.contains("=== done"),
        "the newest output and the footer are lost, the oldest kept ({} bytes free): …{tail}",
        disk.free()
    );
}

#[test]
fn on_a_full_disk_a_queued_job_that_cannot_start_ends_failed_with_why_or_keeps_its_entry_and_never_strands() {
    if !isolated("mounting a tmpfs", false) {
        return;
    }
    let mut env = Env::new();
    let disk = Tmpfs::mount(&env.root.join("disk"), "1m");
    env.store = disk.at.join("store");
    let state_of = |id: &str| env.state(id);
    let mut troubled = 0;
    for pages in 0..=6u64 {
        let gate = env.root.join(format!("gate{pages}"));
        let gated = format!("while [ ! -e '{}' ]; do sleep 0.02; done", gate.display());
        let head = env.start(&["-q", "d", "sh", "-c", &gated]);
        let next = env.start(&["-q", "d", "true"]);
        disk.fill_leaving(pages * 4096);
        fs::write(&gate, "").expect("opening the gate");
        // The head ends; its watcher tries to start the next job on the
        // full disk, and so does every listing after it.
        wait_until(SOON, "the head to end", || state_of(&head) != "running");
        wait_watcher_gone(&env, &head);
        let now = env.job(&next);
        troubled += usize::from(now["state"] == "queued" || now["state"] == "failed");
        if now["state"] == "queued" {
            let queues = disk.at.join("store").join(".queues");
            let indexed = fs::read_dir(&queues)
                .expect(".queues")
                .flatten()
                .filter_map(|q| fs::read_dir(q.path().join("wait")).ok())
                .flat_map(|w| w.flatten())
                .any(|e| e.file_name().to_string_lossy().ends_with(&format!(".{next}")));
            assert!(indexed, "with {pages} pages free, {next} is queued without its entry");
        }
        fs::remove_file(disk.at.join("filler")).expect("removing the filler");
        // Room again: the next command starts it, unless it ended already.
        let mut last = serde_json::Value::Null;
        wait_until(SOON, "the next job to end", || {
            last = env.job(&next);
            !["queued", "running"].contains(&last["state"].as_str().unwrap_or(""))
        });
        match last["state"].as_str() {
            Some("done") => {}
            Some("failed") => {
                let reason = last["reason"].as_str().unwrap_or("");
                assert!(reason.contains("could not start"), "with {pages} pages free: {last}");
            }
            _ => panic!("with {pages} pages free: {last}"),
        }
    }
    assert!(troubled > 0, "the disk was never full enough to stop a start");
}
