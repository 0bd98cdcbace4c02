//! A hostile pass over queues (issue 23, classes 1 and 3): each test here
//! reproduces a defect found by attacking the queues' planted state and
//! races, and fails until it is fixed.

use super::*;
use std::fs;

#[test]
fn a_launch_into_a_queue_whose_slot_link_was_deleted_under_its_running_job_does_not_start_a_second_job() {
    let q = queues();
    let gate = q.file("gate");
    let head = q.run_q(&["-q", "one", &format!("while [ ! -e '{}' ]; do sleep 0.02; done", gate.display())]);
    wait_until(SOON, "the head to run", || q.state(&head) == "running");
    // The queue's directory deleted under its running job (no listing
    // mends it before the next launch).
    fs::remove_dir_all(q.queue_dir("one")).expect("deleting the queue's directory");
    let second = q.run_q(&["-q", "one", "true"]);
    let state = q.state(&second);
    write(&gate, "");
    q.wait_state(&head, &["done"]);
    assert_eq!(state, "queued", "a queue of one ran {second} beside its running head {head}");
}

#[test]
fn a_launch_into_a_queue_whose_directory_was_deleted_under_waiting_jobs_does_not_pass_them() {
    let q = queues();
    let gate = q.file("gate");
    let head = q.run_q(&["-q", "fifo", &format!("while [ ! -e '{}' ]; do sleep 0.02; done", gate.display())]);
    let second = q.run_q(&["-q", "fifo", "true"]);
    fs::remove_dir_all(q.queue_dir("fifo")).expect("deleting the queue's directory");
    let third = q.run_q(&["-q", "fifo", "true"]);
    write(&gate, "");
    let (s, t) = (q.wait_state(&second, &["done"]), q.wait_state(&third, &["done"]));
    q.wait_state(&head, &["done"]);
    assert!(s["started_at"].as_str() < t["started_at"].as_str(), "the later launch passed the waiting job: {s} {t}");
}
