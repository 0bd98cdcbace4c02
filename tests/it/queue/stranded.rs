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

#[test]
fn a_directory_planted_at_a_slot_is_reported_kept_and_never_strands_the_queue() {
    let q = queues();
    q.job_ok(&["queue", "p", "--slots", "2"]);
    let planted = q.queue_dir("p").join("run").join("0");
    fs::create_dir(&planted).expect("planting a directory at slot 0");
    let id = q.run_q(&["-q", "p", "true"]);
    assert_eq!(q.wait_state(&id, &["done"])["slot"], 1, "slot 0 is planted: the job takes slot 1");
    let out = q.run("runs", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(&planted.display().to_string()) && err.contains("not a slot"), "{err}");
    assert!(planted.is_dir(), "the planted directory was removed");
}

#[test]
fn a_file_where_a_queues_wait_directory_belongs_is_reported_with_the_job_it_strands_and_refuses_launches() {
    let q = queues();
    q.job_ok(&["queue", "w", "--pause"]);
    let id = q.run_q(&["-q", "w", "true"]);
    let wait = q.queue_dir("w").join("wait");
    fs::remove_dir_all(&wait).expect("removing wait/");
    write(&wait, "");
    let out = q.run("runs", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    let path = wait.display().to_string();
    assert!(err.lines().any(|l| l.contains(&format!("damaged entry {path}: not a directory"))), "{err}");
    assert!(err.lines().any(|l| l.contains(&id) && l.contains("queue w") && l.contains(&path)), "{err}");
    assert_eq!(q.state(&id), "queued");
    let before = q.states().len();
    let out = q.run("run", &["-q", "w", "true"]);
    one_line_error(&out, 1, &[&path, "not queued"], "run -q into a queue whose wait/ is a file");
    assert_eq!(q.states().len(), before, "a refused launch left a job");
}

#[test]
fn a_queue_directory_deleted_under_its_jobs_is_made_again_its_jobs_run_in_order_and_never_two_at_once() {
    let q = queues();
    let gate = q.file("gate");
    let head = q.run_q(&["-q", "gone", &format!("while [ ! -e '{}' ]; do sleep 0.02; done", gate.display())]);
    let second = q.run_q(&["-q", "gone", "true"]);
    let third = q.run_q(&["-q", "gone", "true"]);
    fs::remove_dir_all(q.queue_dir("gone")).expect("deleting the queue's directory");
    let out = q.run("runs", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    for id in [&second, &third] {
        assert!(err.lines().any(|l| l.contains(id.as_str()) && l.contains("indexed again")), "{err}");
    }
    // The running head keeps its slot: the queue of one runs nothing else.
    for _ in 0..3 {
        assert_eq!(q.state(&second), "queued", "a second job ran beside the head");
    }
    write(&gate, "");
    q.wait_state(&head, &["done"]);
    let (s, t) = (q.wait_state(&second, &["done"]), q.wait_state(&third, &["done"]));
    assert!(s["started_at"].as_str() < t["started_at"].as_str(), "not in order: {s} {t}");
}

#[test]
fn a_queued_job_published_under_a_suffixed_id_whose_launcher_died_before_indexing_it_still_runs() {
    let q = queues();
    q.job_ok(&["queue", "sfx", "--pause"]);
    // Two launches of one name within one second: the queued one gets `_2`.
    let (base, suffixed) = (0..10)
        .find_map(|_| {
            let base = q.run_q(&["--name", "twin", "true"]);
            let other = q.run_q(&["--name", "twin", "-q", "sfx", "true"]);
            if other == format!("{base}_2") {
                return Some((base, other));
            }
            q.job_ok(&["stop", &other]);
            None
        })
        .expect("two launches within one second");
    q.wait_state(&base, &["done"]);
    // What a launcher killed after publishing and before indexing `_2`
    // leaves: the entry it made first, under the base id.
    let wait = q.queue_dir("sfx").join("wait");
    let entry = fs::read_dir(&wait)
        .expect("wait/")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|e| e.ends_with(&format!(".{suffixed}")))
        .expect("the job's entry");
    let planted = entry.replace(&suffixed, &base);
    fs::rename(wait.join(&entry), wait.join(&planted)).expect("renaming the entry");
    // Resuming decides (and no listing mends anything meanwhile).
    q.job_ok(&["queue", "sfx", "--resume"]);
    wait_until(SOON, "the suffixed job to start", || !q.meta(&suffixed)["pid"].is_null());
}

#[test]
fn a_queued_job_whose_meta_names_a_queue_outside_the_store_makes_nothing_outside_it() {
    let q = queues();
    q.job_ok(&["queue", "x", "--pause"]);
    let id = q.run_q(&["-q", "x", "true"]);
    // `.queues/../../escaped@PLACE` would be beside the store.
    let mut m = q.meta(&id);
    m["queue"] = "../../escaped".into();
    q.set_meta(&id, &m);
    let beside = |dir: &Path| {
        fs::read_dir(dir).map_or(vec![], |d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains("escaped"))
                .collect()
        })
    };
    for (front, args) in [("runs", vec![]), ("job", vec!["status", &id]), ("job", vec!["stop", &id])] {
        let out = q.run(front, &args);
        assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    }
    assert_eq!(beside(&q.root), Vec::<String>::new(), "a queue was made outside the store");
    assert_eq!(beside(&q.store), Vec::<String>::new(), "a queue was made in the store's root");
}
