//! A hostile pass over queues (issue 23, classes 1 and 3): each test here
//! pins a defect found by attacking the queues' planted state and races:
//! an entry naming another queue's job, a damaged running job's slot, an
//! unreadable `conf` or a planted `lock`, a store lock held by a stopped
//! command.

use super::*;
use std::fs;

#[test]
fn a_directory_planted_at_a_queues_lock_under_a_waiting_job_is_reported_by_a_listing() {
    let q = queues();
    let gate = q.file("gate");
    let head = q.run_q(&["-q", "locked", &format!("while [ ! -e '{}' ]; do sleep 0.02; done", gate.display())]);
    let second = q.run_q(&["-q", "locked", "true"]);
    let lock = q.queue_dir("locked").join("lock");
    fs::remove_file(&lock).expect("removing the lock");
    fs::create_dir(&lock).expect("planting a directory at the lock");
    write(&gate, "");
    q.wait_state(&head, &["done"]);
    // The head's watcher could not decide; the listing neither: the
    // second job waits for ever, and whoever looks must be told why.
    let out = q.run("runs", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(q.state(&second), "queued");
    assert!(err.contains(&lock.display().to_string()), "runs says nothing of what strands {second}: {err:?}");
}

#[test]
fn a_running_job_whose_meta_is_damaged_keeps_its_slot() {
    let q = queues();
    let gate = q.file("gate");
    let head = q.run_q(&["-q", "dmg", &format!("while [ ! -e '{}' ]; do sleep 0.02; done", gate.display())]);
    let second = q.run_q(&["-q", "dmg", "true"]);
    wait_until(SOON, "the head to run", || q.state(&head) == "running");
    // Its process runs on; only its meta.json is unreadable.
    write(&q.job_dir(&head).join("meta.json"), "{\"broken");
    let out = q.run("runs", &[]);
    let started = !q.meta(&second)["pid"].is_null();
    write(&gate, "");
    assert!(!started, "a queue of one started {second} beside {head}, still running: {}", stderr(&out));
}

#[test]
fn an_entry_left_in_one_queue_naming_a_job_of_another_never_starts_it_past_its_own_queue() {
    let q = queues();
    // What a launcher into `other`, killed between indexing the id it
    // hoped for and publishing under a suffixed one, leaves when that id
    // is a job queued in `paused` (two launches of one name in one second).
    q.job_ok(&["queue", "paused", "--pause"]);
    let id = q.run_q(&["-q", "paused", "true"]);
    q.job_ok(&["queue", "other", "--slots", "1"]);
    write(&q.queue_dir("other").join("wait").join(format!("{:020}.{id}", 1)), "");
    let out = q.run("runs", &[]);
    let m = q.meta(&id);
    assert!(
        m["pid"].is_null(),
        "{id} of the paused queue was started by another queue's decision: {m} {}",
        stderr(&out)
    );
}

#[test]
fn a_paused_queue_whose_conf_cannot_be_read_starts_nothing_and_says_why() {
    let q = queues();
    q.job_ok(&["queue", "held", "--pause"]);
    let id = q.run_q(&["-q", "held", "true"]);
    let conf = q.queue_dir("held").join("conf");
    fs::remove_file(&conf).expect("removing conf");
    fs::create_dir(&conf).expect("planting a directory at conf");
    let out = q.run("runs", &[]);
    let m = q.meta(&id);
    assert!(m["pid"].is_null(), "a paused queue whose conf is unreadable started {id}: {}", stderr(&out));
    assert!(
        stderr(&out).contains(&conf.display().to_string()),
        "runs says nothing of the damaged conf: {}",
        stderr(&out)
    );
}

#[test]
fn a_launch_into_a_queue_facing_a_store_lock_held_by_a_stopped_command_gives_up_in_time() {
    let q = queues();
    q.job_ok(&["queue", "st", "--pause"]);
    // What a `runrm` stopped (Ctrl-Z) while it renames a job away holds.
    let held = fs::File::open(&q.store).expect("opening the store");
    held.lock().expect("locking the store");
    let mut child = q.cmd("run").args(["-q", "st", "true"]).spawn().expect("run -q");
    let started = std::time::Instant::now();
    let mut ended = None;
    while started.elapsed() < Duration::from_secs(15) {
        if let Some(s) = child.try_wait().expect("waiting for run -q") {
            ended = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let waited = started.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    drop(held);
    assert!(ended.is_some(), "run -q still waits after {waited:?} for a store lock held by a stopped command");
}

#[test]
fn an_entry_left_in_the_queue_of_after_jobs_naming_a_queued_job_never_starts_it_beside_its_queues_running_job() {
    let q = queues();
    let gate = q.file("gate");
    let head = q.run_q(&["-q", "solo", &format!("while [ ! -e '{}' ]; do sleep 0.02; done", gate.display())]);
    let second = q.run_q(&["-q", "solo", "true"]);
    // A `run --after` makes the queue of --after jobs; its launcher, killed
    // between indexing the id it hoped for (here `second`'s) and indexing
    // the suffixed one it got, leaves this entry.
    let dep = q.run_q(&["--after", &head, "true"]);
    let after_queue = fs::read_dir(q.store.join(".queues"))
        .expect(".queues")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('@')))
        .expect("the queue of --after jobs");
    write(&after_queue.join("wait").join(format!("{:020}.{second}", 1)), "");
    let out = q.run("runs", &[]);
    let started = !q.meta(&second)["pid"].is_null();
    write(&gate, "");
    q.wait_state(&dep, &["done"]);
    assert!(!started, "{second} ran beside {head} in a queue of one, with no slot: {}", stderr(&out));
}
