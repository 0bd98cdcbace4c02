//! A queue's lock held by a stopped or hung command: those that change a
//! queue give up after a bounded wait, naming the queue and the holder,
//! and change nothing; a reader's waits for many held locks add up to one
//! short wait.

use super::*;
use std::fs;
use std::process::Stdio;
use std::time::Instant;

/// The queue's lock, held by this test process until dropped.
fn hold(q: &Queues, name: &str) -> fs::File {
    let lock = fs::File::open(q.queue_dir(name).join("lock")).expect("opening the queue's lock");
    lock.lock().expect("holding the queue's lock");
    lock
}

#[test]
fn commands_that_change_a_queue_whose_lock_is_held_give_up_in_time_naming_the_queue_and_its_holder() {
    let q = queues();
    q.job_ok(&["queue", "held", "--pause"]);
    let queued = q.run_q(&["-q", "held", "true"]);
    let before = q.states().len();
    let lock = hold(&q, "held");
    let started = Instant::now();
    // All three at once: each waits its bounded while for the lock.
    let spawn = |name: &str, args: &[&str]| {
        q.cmd(name).args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("starting a command")
    };
    let children = [
        ("run -q", spawn("run", &["-q", "held", "true"])),
        ("job queue --slots", spawn("job", &["queue", "held", "--slots", "2"])),
        ("job stop", spawn("job", &["stop", &queued])),
    ];
    let me = std::process::id().to_string();
    for (what, child) in children {
        let out = output_within_child(child, Duration::from_secs(60), what);
        one_line_error(&out, 1, &["queue held", "lock", &me], what);
    }
    assert!(started.elapsed() < Duration::from_secs(60));
    drop(lock);
    // Nothing was changed: no new job, the queue still paused and one
    // wide, the queued job still queued.
    assert_eq!(q.states().len(), before, "a job was queued while the lock was held");
    assert_eq!(q.state(&queued), "queued");
    let shown: Value = serde_json::from_str(&q.job_ok(&["queue", "held", "--json"])).expect("JSON");
    assert_eq!(shown[0]["slots"], 1, "{shown}");
    assert_eq!(shown[0]["paused"], true, "{shown}");
}

/// The child's output, once it has exited (killed after `within`).
fn output_within_child(mut child: std::process::Child, within: Duration, what: &str) -> Output {
    let started = Instant::now();
    while child.try_wait().expect("polling the child").is_none() {
        if started.elapsed() > within {
            let _ = child.kill();
            panic!("{what}: still waiting for the lock after {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("its output")
}

#[test]
fn a_reader_facing_many_held_queue_locks_waits_one_short_while_in_all() {
    let q = queues();
    let names: Vec<String> = (0..10).map(|n| format!("h{n}")).collect();
    for n in &names {
        q.job_ok(&["queue", n, "--pause"]);
        q.run_q(&["-q", n, "true"]);
    }
    let locks: Vec<fs::File> = names.iter().map(|n| hold(&q, n)).collect();
    let started = Instant::now();
    let child = q.cmd("runs").stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("starting runs");
    let out = output_within_child(child, Duration::from_secs(30), "runs");
    // One wait of 0.5 s in all, not 0.5 s per queue (5 s for ten).
    assert!(started.elapsed() < Duration::from_secs(3), "runs took {:?} behind ten held locks", started.elapsed());
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    for n in &names {
        assert!(err.contains(&format!("queue {n} is busy")), "{err}");
    }
    drop(locks);
}

#[test]
fn launches_at_one_moment_into_an_idle_queue_of_two_never_give_one_slot_twice() {
    let q = queues();
    q.job_ok(&["queue", "idle", "--slots", "2"]);
    let trace = q.file("trace");
    let cmd = format!(
        "echo \"s $(date +%s%N) $RUN_SLOT $$\" >> '{0}'; sleep 0.05; echo \"e $(date +%s%N) $RUN_SLOT $$\" >> '{0}'",
        trace.display()
    );
    for _ in 0..15 {
        // The queue idle again: each round's first launches start at once.
        wait_until(SOON, "the queue to be idle", || q.states().iter().all(|(_, s)| s != "queued" && s != "running"));
        let kids: Vec<_> = (0..4)
            .map(|_| q.cmd("run").args(["-q", "idle", &cmd]).stdout(Stdio::null()).spawn().expect("starting run"))
            .collect();
        for mut k in kids {
            assert!(k.wait().expect("waiting for run").success());
        }
    }
    wait_until(SOON, "every job to end", || q.states().iter().all(|(_, s)| s != "queued" && s != "running"));
    let mut events: Vec<(u128, bool, String, String)> = lines(&trace)
        .iter()
        .filter_map(|l| {
            let w: Vec<&str> = l.split(' ').collect();
            Some((w.get(1)?.parse().ok()?, *w.first()? == "s", w.get(2)?.to_string(), w.get(3)?.to_string()))
        })
        .collect();
    assert_eq!(events.iter().filter(|e| e.1).count(), 60, "not every job ran");
    events.sort_by_key(|e| (e.0, e.1));
    let mut running: Vec<(String, String)> = Vec::new();
    for (at, start, slot, pid) in &events {
        if *start {
            assert!(
                !running.iter().any(|(s, _)| s == slot),
                "at {at}, {pid} started in slot {slot} beside {running:?}"
            );
            running.push((slot.clone(), pid.clone()));
            assert!(running.len() <= 2, "at {at}: {running:?} in a queue of two");
        } else {
            running.retain(|(_, p)| p != pid);
        }
    }
}
