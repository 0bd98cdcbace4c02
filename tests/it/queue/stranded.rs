//! Queued and skipped jobs that must never be stranded or misreported: a
//! skipped job's notification on its way, a queue's files damaged or gone
//! under waiting jobs, a start that fails on a full disk, a launcher
//! killed between publishing a job and indexing it.

use super::*;
use std::fs;

#[test]
fn a_skipped_jobs_notification_still_on_its_way_shows_pending_not_failed() {
    let q = queues();
    // A server that takes connections and never answers: each sender
    // waits on it, holding one of the few sending slots; the others wait
    // for a slot.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a port");
    let url = format!("http://{}", listener.local_addr().expect("its address"));
    let gate = q.file("gate");
    let head = q.run_q(&["sh", "-c", &format!("while [ ! -e '{}' ]; do sleep 0.02; done; exit 2", gate.display())]);
    let mut prev = head.clone();
    let mut chain = Vec::new();
    for _ in 0..6 {
        let out = q
            .cmd("run")
            .env("NTFY_SERVER", &url)
            .env("NTFY_TOPIC", "pending-test")
            .env("NTFY_TIMEOUT", "300")
            .args(["-n", "--after", &prev, "true"])
            .output()
            .expect("run");
        assert!(out.status.success(), "{}", stderr(&out));
        prev = stdout(&out).split_whitespace().next().expect("an id").to_string();
        chain.push(prev.clone());
    }
    write(&gate, "");
    for id in &chain {
        q.wait_state(id, &["skipped"]);
    }
    for _ in 0..3 {
        for id in &chain {
            let j = q.job(id);
            assert_eq!(j["notify"]["state"], "pending", "{id}: {}", j["notify"]);
        }
    }
    // The server goes away: every sender fails, and says so itself.
    drop(listener);
    for id in &chain {
        wait_until(SOON, "the sender's own outcome", || q.job(id)["notify"]["state"] == "failed");
        let error = q.job(id)["notify"]["error"].as_str().unwrap_or("").to_string();
        assert!(!error.contains("ended before notifying"), "{id}: {error}");
    }
}
