//! A queue belongs to the machine (its machine id), not to a host name or
//! a pid namespace: a host renamed between launches keeps one queue and
//! its width, and a reboot that renamed the host and gave the commands a
//! new pid namespace neither strands the queued jobs nor keeps their
//! slots taken.

use super::*;
use std::process::Command;

fn rename_host(name: &str) {
    // SAFETY: sethostname(2) with a valid buffer, in this test's own UTS
    // namespace (`isolated`).
    assert_eq!(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) }, 0, "renaming the host");
}

#[test]
fn a_host_renamed_between_two_launches_keeps_one_queue_and_never_runs_two_in_one_slot() {
    if !isolated("renaming the host (a UTS namespace)", false) {
        return;
    }
    let q = queues();
    let gate = q.file("gate");
    let first = q.run_q(&["-q", "one", &format!("while [ ! -e '{}' ]; do sleep 0.02; done", gate.display())]);
    assert_eq!(q.state(&first), "running");
    rename_host("bgrun-renamed-host");
    let second = q.run_q(&["-q", "one", "true"]);
    for _ in 0..3 {
        assert_eq!(q.state(&second), "queued", "a renamed host ran a second job in a queue of one");
    }
    write(&gate, "");
    q.wait_state(&first, &["done"]);
    assert_eq!(q.wait_state(&second, &["done"])["slot"], 0);
}

#[test]
fn after_a_reboot_that_renamed_the_host_and_changed_the_pid_namespace_the_queued_job_starts() {
    if !isolated("renaming the host and starting a pid namespace", false) {
        return;
    }
    let q = queues();
    let running = q.run_q(&["-q", "boot", "sleep", "300"]);
    let queued = q.run_q(&["-q", "boot", "true"]);
    // The "reboot": every process of the old boot is gone, the boot id the
    // jobs recorded is not this one, the host has another name, and the
    // commands after it run in another pid namespace.
    let m = q.meta(&running);
    kill(m["watcher_pid"].as_i64().expect("watcher pid"));
    kill(m["pid"].as_i64().expect("pid"));
    for id in [&running, &queued] {
        let mut m = q.meta(id);
        m["boot_id"] = "00000000-0000-0000-0000-000000000000".into();
        q.set_meta(id, &m);
    }
    rename_host("bgrun-rebooted-host");
    let job = q.cmd("job");
    let mut c = Command::new("unshare");
    for (k, v) in job.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    // `job wait` catches the queues up first (the job starts in this new
    // pid namespace), then waits for its end; all inside the namespace.
    c.args(["--pid", "--fork", "--mount-proc", "--kill-child"]).arg(bin("job")).args([
        "wait",
        &queued,
        "--timeout",
        "20s",
    ]);
    let out = c.output().expect("running unshare");
    assert!(out.status.success(), "the queued job did not run after the reboot: {}", stderr(&out));
    assert_eq!(q.state(&running), "lost");
    assert_eq!(q.state(&queued), "done");
}

#[test]
fn a_job_running_in_another_pid_namespace_of_this_machine_keeps_its_slot() {
    if !isolated("starting a second pid namespace", false) {
        return;
    }
    let q = queues();
    let gate = q.file("gate");
    let run = q.cmd("run");
    let mut c = Command::new("unshare");
    for (k, v) in run.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    // In its own pid namespace: a job of queue `one` that runs until the
    // gate opens; the namespace lives until that job has ended and been
    // recorded (its watcher gone).
    let inner = format!(
        "id=$('{run}' -q one sh -c 'while [ ! -e \"{gate}\" ]; do sleep 0.02; done' | cut -d' ' -f1); '{job}' wait \"$id\"",
        run = bin("run").display(),
        job = bin("job").display(),
        gate = gate.display()
    );
    let mut ns = c
        .args(["--pid", "--fork", "--mount-proc", "--kill-child", "sh", "-c", &inner])
        .spawn()
        .expect("starting unshare");
    let mut there = String::new();
    wait_until(SOON, "the job in the other namespace to start", || {
        there = q.states().into_iter().map(|(id, _)| id).next().unwrap_or_default();
        !there.is_empty() && !q.meta(&there)["pid"].is_null()
    });
    assert_eq!(q.state(&there), "elsewhere", "seen from this pid namespace");
    let here = q.run_q(&["-q", "one", "true"]);
    for _ in 0..3 {
        assert_eq!(q.state(&here), "queued", "the slot of a job running in another pid namespace was given away");
    }
    write(&gate, "");
    assert!(ns.wait().expect("waiting for unshare").success(), "the job in the other namespace failed");
    assert_eq!(q.state(&there), "done");
    q.wait_state(&here, &["done"]);
}
