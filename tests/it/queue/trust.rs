//! Queues under faults: deciders, readers and watchers SIGKILLed at any
//! moment, a held lock, a chain skipped to its end, a slot held while its
//! job's end is still being recorded.

use super::*;
use std::fs;
use std::process::{Child, Stdio};
use std::time::Instant;

/// A small pseudo-random sequence (xorshift), seeded from the clock; the
/// seed is printed so that a failing run can be told apart.
struct Dice(u64);

impl Dice {
    fn new() -> Dice {
        let seed =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64);
        eprintln!("seed {seed}");
        Dice(seed | 1)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// The live processes of this program (launchers, readers, watchers, a
/// job not yet exec'd) working on this test's store, and no other test's.
fn ours(q: &Queues) -> Vec<i32> {
    let exes: Vec<_> =
        ["run", "runs", "runlog", "runrm", "job"].map(|b| fs::canonicalize(bin(b)).expect("the binary's path")).into();
    let mark = format!("RUN_DIR={}", q.store.display()).into_bytes();
    fs::read_dir("/proc")
        .expect("reading /proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|e| exes.contains(&e)))
        .filter(|pid| fs::read(format!("/proc/{pid}/environ")).is_ok_and(|e| e.split(|&b| b == 0).any(|v| v == mark)))
        .collect()
}

fn sigkill(pid: i32) {
    // SAFETY: kill(2) with plain integers, in a test.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

/// The process state letter of `pid` (R, S, T, Z…), if it exists.
fn proc_state(pid: i64) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

#[test]
fn a_queue_of_two_never_runs_more_than_two_nor_one_slot_twice_whoever_is_killed_at_any_moment() {
    let q = queues();
    q.job_ok(&["queue", "kq", "--slots", "2"]);
    let trace = q.file("trace");
    let cmd = format!(
        "echo \"s $(date +%s%N) $RUN_SLOT $$\" >> '{0}'; sleep 0.15; echo \"e $(date +%s%N) $RUN_SLOT $$\" >> '{0}'",
        trace.display()
    );
    let mut dice = Dice::new();
    let until = Instant::now() + Duration::from_secs(60);
    for _ in 0..25 {
        if Instant::now() > until {
            break;
        }
        // A burst: launchers and readers, each killed at a random moment
        // (or left to finish), then a random few of whatever of ours runs
        // (watchers included) killed too.
        let mut kids: Vec<Child> = Vec::new();
        for n in 0..8 {
            let mut c = if n % 4 == 3 { q.cmd("runs") } else { q.cmd("run") };
            if n % 4 != 3 {
                c.args(["-q", "kq", &cmd]);
            }
            kids.push(c.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("starting a front"));
        }
        for k in &kids {
            std::thread::sleep(Duration::from_millis(dice.below(12)));
            if dice.below(3) > 0 {
                sigkill(k.id() as i32);
            }
        }
        for pid in ours(&q) {
            if dice.below(4) == 0 {
                sigkill(pid);
            }
        }
        for mut k in kids {
            let _ = k.wait();
        }
    }
    // Every job that was queued starts and ends (each `runs` catches up).
    wait_until(Duration::from_secs(120), "every job to end", || {
        q.states().iter().all(|(_, s)| s != "queued" && s != "running")
    });
    let mut events: Vec<(u128, bool, String, String)> = lines(&trace)
        .iter()
        .filter_map(|l| {
            let w: Vec<&str> = l.split(' ').collect();
            Some((w.get(1)?.parse().ok()?, *w.first()? == "s", w.get(2)?.to_string(), w.get(3)?.to_string()))
        })
        .collect();
    assert!(events.iter().filter(|e| e.1).count() >= 3, "too few jobs ran to judge: {events:?}");
    // Ends before starts at the same nanosecond.
    events.sort_by_key(|e| (e.0, e.1));
    let mut running: Vec<(String, String)> = Vec::new();
    for (at, start, slot, pid) in &events {
        if *start {
            assert!(
                !running.iter().any(|(s, _)| s == slot),
                "at {at}, job {pid} started in slot {slot} while {running:?} ran"
            );
            running.push((slot.clone(), pid.clone()));
            assert!(running.len() <= 2, "at {at}, {} jobs ran at once in a queue of 2: {running:?}", running.len());
        } else {
            running.retain(|(_, p)| p != pid);
        }
    }
}

#[test]
fn a_failed_head_skips_a_chain_alternating_between_two_queues_to_its_end_in_one_catch_up() {
    let q = queues();
    let gate = q.file("gate");
    let head = q.run_q(&["-q", "qa", &format!("while [ ! -e '{}' ]; do sleep 0.02; done; exit 3", gate.display())]);
    let mut prev = head.clone();
    let mut chain = Vec::new();
    for n in 0..40 {
        let queue = if n % 2 == 0 { "qb" } else { "qa" };
        prev = q.run_q(&["-q", queue, "--after", &prev, "true"]);
        chain.push(prev.clone());
    }
    let watcher = q.meta(&head)["watcher_pid"].as_i64().expect("a watcher pid");
    write(&gate, "");
    // No command in between: the head's watcher, after recording its end,
    // catches the queues up once, and that one catch-up skips them all.
    wait_until(SOON, "the head's watcher to exit", || !pid_alive(watcher));
    let skipped = chain
        .iter()
        .filter(|id| fs::read_to_string(q.job_dir(id).join("status")).is_ok_and(|s| s.contains("skipped")))
        .count();
    assert_eq!(skipped, chain.len(), "one catch-up skipped {skipped} of {}", chain.len());
}

#[test]
fn a_reader_facing_a_queue_lock_held_by_a_hung_decider_answers_soon_without_deciding_and_says_so() {
    let q = queues();
    q.job_ok(&["queue", "held", "--pause"]);
    let id = q.run_q(&["-q", "held", "true"]);
    let dir = fs::read_dir(q.store.join(".queues"))
        .expect("reading .queues")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("held@")))
        .expect("the queue's directory");
    let lock = fs::File::open(dir.join("lock")).expect("opening the queue's lock");
    lock.lock().expect("holding the queue's lock");
    let started = Instant::now();
    let mut child = q.cmd("runs").stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("starting runs");
    let answered = (|| {
        while started.elapsed() < Duration::from_secs(5) {
            if child.try_wait().ok()?.is_some() {
                return Some(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    })();
    if answered.is_none() {
        let _ = child.kill();
    }
    let out = child.wait_with_output().expect("runs's output");
    assert!(answered.is_some(), "runs still waited for the lock after {:?}", started.elapsed());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&id), "runs did not list the job: {}", stdout(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("queue held is busy"), "{err}");
    drop(lock);
    q.job_ok(&["queue", "held", "--resume"]);
    q.wait_state(&id, &["done"]);
}

#[test]
fn a_slot_is_not_free_while_the_watcher_still_records_the_end_of_a_job_whose_process_is_gone() {
    let q = queues();
    let first = q.run_q(&["-q", "rec", "sleep", "0.3"]);
    let second = q.run_q(&["-q", "rec", "true"]);
    let m = q.meta(&first);
    let (watcher, pid) = (m["watcher_pid"].as_i64().expect("a watcher"), m["pid"].as_i64().expect("a pid"));
    // The watcher stopped before it can record the end: the job's own
    // process ends meanwhile (a zombie no one reaps).
    // SAFETY: kill(2) with plain integers, in a test.
    unsafe { libc::kill(watcher as i32, libc::SIGSTOP) };
    wait_until(SOON, "the job's process to end", || proc_state(pid).is_none_or(|s| s == 'Z'));
    for _ in 0..3 {
        assert_eq!(q.state(&first), "running");
        assert_eq!(q.state(&second), "queued", "the slot was given away while the end was being recorded");
    }
    // SAFETY: as above.
    unsafe { libc::kill(watcher as i32, libc::SIGCONT) };
    q.wait_state(&first, &["done"]);
    q.wait_state(&second, &["done"]);
}

#[test]
fn a_removal_of_every_finished_job_keeps_one_that_a_job_queued_while_it_ran_waits_for() {
    let q = queues();
    // Many ended jobs (copies of one, each under its own id), so that the
    // removal (batches of 256, deleted by 8 threads) is still under way
    // when the job is queued.
    let seed = q.run_q(&["true"]);
    q.wait_state(&seed, &["done"]);
    wait_until(SOON, "the seed's watcher to exit", || !pid_alive(q.meta(&seed)["watcher_pid"].as_i64().unwrap_or(0)));
    let mut ids = vec![seed.clone()];
    for n in 0..2000 {
        let id = format!("{seed}_copy{n:04}");
        let dir = q.store.join(&id);
        fs::create_dir(&dir).expect("a job directory");
        for e in fs::read_dir(q.job_dir(&seed)).expect("the seed's files").flatten() {
            fs::copy(e.path(), dir.join(e.file_name())).expect("copying a file");
        }
        let mut meta = q.meta(&seed);
        meta["id"] = Value::from(id.clone());
        q.set_meta(&id, &meta);
        ids.push(id);
    }
    let last = ids.iter().max().expect("an id").clone();
    let gate = q.file("gate");
    let gated = q.run_q(&[&format!("while [ ! -e '{}' ]; do sleep 0.02; done", gate.display())]);
    let count = || fs::read_dir(&q.store).map_or(0, |rd| rd.flatten().count());
    let before = count();
    let mut rm = q.cmd("runrm").stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("starting runrm");
    wait_until(SOON, "runrm to remove a first job", || count() < before);
    // While it removes the others (the newest last), a job is queued
    // after the newest and after one still running (so it still waits).
    let waiter = q.run_q(&["--after", &last, "--after", &gated, "true"]);
    let status = rm.wait().expect("waiting for runrm");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut rm.stderr.take().expect("its stderr"), &mut err).expect("reading stderr");
    assert!(status.success(), "{err}");
    assert!(q.job_dir(&last).is_dir(), "runrm removed {last}, which a job queued meanwhile waits for");
    assert!(err.contains(&format!("kept {last}")), "{err}");
    write(&gate, "");
    q.wait_state(&waiter, &["done"]);
}

#[test]
fn a_host_renamed_since_the_launch_still_sees_its_running_job_and_can_stop_it() {
    if !isolated("renaming the host (a UTS namespace)", false) {
        return;
    }
    let q = queues();
    let id = q.run_q(&["sleep", "30"]);
    assert_eq!(q.state(&id), "running");
    let name = b"bgrun-renamed";
    // SAFETY: sethostname(2) with a valid buffer, in this test's own UTS
    // namespace.
    assert_eq!(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) }, 0, "renaming the host");
    assert_ne!(q.meta(&id)["host"], "bgrun-renamed");
    assert_eq!(q.state(&id), "running", "a renamed host took its own job for another host's");
    q.job_ok(&["stop", &id]);
    q.wait_state(&id, &["stopped"]);
}

#[test]
fn job_run_with_one_key_from_processes_released_at_the_same_instant_makes_exactly_one_job() {
    let q = queues();
    let go = q.file("go");
    for round in 0..5 {
        let key = format!("k{round}");
        let _ = fs::remove_file(&go);
        // Each process spins until the gate opens, then claims the key: the
        // claims overlap as closely as processes can.
        let line = format!(
            "while [ ! -e '{}' ]; do :; done; exec '{}' run --key {key} sleep 1",
            go.display(),
            bin("job").display()
        );
        let kids: Vec<Child> = (0..6)
            .map(|_| {
                q.tool("sh")
                    .args(["-c", &line])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("starting a claimant")
            })
            .collect();
        write(&go, "");
        let printed: Vec<String> = kids
            .into_iter()
            .map(|k| {
                let out = k.wait_with_output().expect("a claimant's output");
                assert!(out.status.success(), "job run --key failed: {}", stderr(&out));
                stdout(&out).trim().to_string()
            })
            .collect();
        let holders: Vec<String> =
            q.states().into_iter().map(|(id, _)| id).filter(|id| q.meta(id)["key"] == *key).collect();
        assert_eq!(holders.len(), 1, "round {round}: {} jobs hold key {key}: {holders:?}", holders.len());
        assert!(printed.iter().all(|p| *p == holders[0]), "round {round}: {printed:?}");
    }
}
