//! Stores of many jobs: a removal of every job done in bulk with every
//! guarantee of a removal of one; the ids of removed jobs kept compactly
//! and never given again (also across the migration of the older
//! one-file-per-id records); listings and lookups that read only what they
//! show giving a full listing's answers; the old scripts' files listed
//! once each. Behaviour only: the figures are bench/'s.

mod names;
mod summary;

use crate::common::*;
use serde_json::Value;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

/// An ended job to copy: its directory, once its watcher is done with it.
fn ended_template(env: &Env, name: &str) -> PathBuf {
    let id = env.start(&["--name", name, "true"]);
    env.wait_ended(&id, SOON);
    wait_until(SOON, "ended_at in meta.json", || meta(env, &id)["ended_at"].is_string());
    env.job_dir(&id)
}

/// The time of the `i`th planted job: a second apart from 2025-01-01.
fn planted_time(i: usize) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(1_735_689_600 + i as i64, 0).expect("a time")
}

/// Plants `n` copies of the ended job `from` named `NAME_…`, a second
/// apart from 2025-01-01 (UTC) on: their ids, oldest first.
fn plant_many(env: &Env, from: &Path, name: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let t = planted_time(i);
            let id = format!("{name}_{}", t.format("%Y%m%d_%H%M%S"));
            plant(from, &env.store, id.as_ref(), |m| {
                m["name"] = name.into();
                m["started_at"] = t.to_rfc3339_opts(chrono::SecondsFormat::Millis, false).into();
            });
            id
        })
        .collect()
}

/// The files in the store's `.ids`.
fn ids_files(env: &Env) -> Vec<String> {
    entries(&env.store.join(".ids")).into_iter().map(|n| n.to_string_lossy().into_owned()).collect()
}

// --- removal in bulk -----------------------------------------------------------

#[test]
fn removing_every_job_of_a_big_store_keeps_running_elsewhere_and_awaited_jobs_and_follows_no_link() {
    let env = Env::new();
    let tmpl = ended_template(&env, "tmpl");
    // More than one batch of removals.
    let planted = plant_many(&env, &tmpl, "many", 700);
    let running = env.start(&["sleep", "300"]);
    let awaited = env.start(&["--name", "awaited", "true"]);
    env.wait_ended(&awaited, SOON);
    let waiting = env.start(&["--after", &awaited, "--after", &running, "true"]);
    assert_eq!(env.state(&waiting), "queued");
    // A job of another host with no end recorded: maybe alive there.
    let far = plant(&tmpl, &env.store, "far_20250101_000000".as_ref(), |m| {
        m["host"] = "otherhost.example".into();
        // Another host has a machine id of its own: this one's would be this machine.
        m["machine"] = "0f0f0f0f00004000800000000000000f".into();
        m["boot_id"] = "0f0f0f0f-0000-4000-8000-000000000000".into();
    });
    fs::remove_file(far.join("status")).expect("removing the planted status");
    assert_eq!(env.state("far_20250101_000000"), "elsewhere");
    // Links: one named as a job, to a directory outside the store; one in
    // place of a job's log, to a file outside.
    let outside = env.root.join("outside");
    fs::create_dir(&outside).expect("mkdir outside");
    write(&outside.join("keep"), "kept");
    symlink(&outside, env.store.join("link_20250101_000000")).expect("planting a link");
    let linked = env.store.join(&planted[300]);
    fs::remove_file(linked.join("log")).expect("removing a log");
    symlink(outside.join("keep"), linked.join("log")).expect("planting a link");

    let out = env.run("runrm", &[]);
    let text = stdout(&out);
    for id in &planted {
        assert!(!env.store.join(id).exists(), "{id} was not removed: {}", stderr(&out));
        assert!(text.contains(&format!("removed {id}\n")), "{id} not said removed");
    }
    for id in [&running, &awaited, &waiting, &"far_20250101_000000".to_string()] {
        assert!(env.job_dir(id).join("meta.json").exists(), "{id} was removed");
    }
    assert_eq!(env.state(&running), "running");
    assert_eq!(env.state(&waiting), "queued");
    assert_eq!(fs::read_to_string(outside.join("keep")).expect("the file outside"), "kept");
    assert!(fs::symlink_metadata(env.store.join("link_20250101_000000")).is_ok_and(|m| m.is_symlink()));
    assert!(text.contains("removed 701 jobs"), "{text}");
    // The ids kept: a file per name and hour, not one per job.
    let kept = ids_files(&env);
    assert!(kept.len() <= 3, "{kept:?}");
    assert!(kept.contains(&"many_20250101_00".to_string()), "{kept:?}");
    // And still known as removed.
    let out = env.run("runlog", &[&planted[650], "--no-follow"]);
    assert!(stderr(&out).contains(&format!("job {} was removed", planted[650])), "{}", stderr(&out));
    let _ = env.run("job", &["stop", &running]);
}

#[test]
fn a_job_queued_after_a_job_while_a_removal_of_every_job_runs_keeps_that_job() {
    let env = Env::new();
    let tmpl = ended_template(&env, "tmpl");
    let running = env.start(&["sleep", "300"]);
    for attempt in 0..3 {
        let planted = plant_many(&env, &tmpl, &format!("m{attempt}"), 3000);
        // Removed last: the listing's newest.
        let last = planted.last().expect("planted").clone();
        let mut runrm = env.cmd("runrm").stdout(std::process::Stdio::null()).spawn().expect("runrm");
        wait_until(SOON, "runrm to remove the first jobs", || !env.store.join(&planted[0]).exists());
        let queued = env.cmd("run").args(["--after", &last, "--after", &running, "true"]).output().expect("run");
        runrm.wait().expect("runrm");
        if !queued.status.success() {
            // Removed already: too late to tell.
            continue;
        }
        assert!(env.store.join(&last).join("meta.json").exists(), "{last} was removed while a queued job awaited it");
        let _ = env.run("job", &["stop", &running]);
        return;
    }
    let _ = env.run("job", &["stop", &running]);
    panic!("the removal always ended before a job could be queued after its last job");
}

// --- the ids of removed jobs ---------------------------------------------------

/// `NAME_YYYYmmdd_HHMMSS` of an id (without its `_N`).
fn second_of(id: &str) -> &str {
    let stamped = |s: &str| s.len() > 16 && s.as_bytes()[s.len() - 7] == b'_';
    if stamped(id) {
        id
    } else {
        id.rsplit_once('_').map(|(base, _)| base).filter(|b| stamped(b)).unwrap_or(id)
    }
}

#[test]
fn the_ids_of_jobs_removed_together_are_never_given_again_in_their_second() {
    let env = Env::new();
    for _ in 0..30 {
        let a = env.start(&["--name", "again", "true"]);
        let b = env.start(&["--name", "again", "true"]);
        for id in [&a, &b] {
            env.wait_ended(id, SOON);
        }
        let out = env.run("runrm", &[&a, &b]);
        assert!(out.status.success(), "runrm: {}", stderr(&out));
        let c = env.start(&["--name", "again", "true"]);
        if second_of(&c) == second_of(&b) {
            assert!(c != a && c != b, "a removed job's id was given again: {c}");
            return;
        }
        env.wait_ended(&c, SOON);
        let _ = env.run("runrm", &[&c]);
    }
    panic!("never launched again within the second of the removed jobs");
}

#[test]
fn the_ids_kept_one_file_each_by_older_versions_are_never_given_again_and_are_folded_into_hour_files() {
    let env = Env::new();
    let tmpl = ended_template(&env, "tmpl");
    let ids = env.store.join(".ids");
    fs::create_dir_all(&ids).expect("mkdir .ids");
    // As an older version would have left them: the ids `_1` to `_3` of
    // each of the next 30 seconds, removed.
    let now = chrono::Local::now();
    let (mut old, mut seconds) = (Vec::new(), Vec::new());
    for s in 0..30 {
        let base = format!("mig_{}", (now + chrono::Duration::seconds(s)).format("%Y%m%d_%H%M%S"));
        for n in 1..=3 {
            let id = if n == 1 { base.clone() } else { format!("{base}_{n}") };
            write(&ids.join(&id), "");
            old.push(id);
        }
        seconds.push(base);
    }
    let landed = |id: &str| {
        assert!(!old.contains(&id.to_string()), "a removed job's id was given again: {id}");
        seconds.iter().any(|s| s == second_of(id))
    };
    // Before the migration: read as they are.
    let first = env.start(&["--name", "mig", "true"]);
    assert!(landed(&first), "{first} launched outside the seconds prepared");
    // A removal folds them into hour files, then removes them.
    let tmpl_id = tmpl.file_name().expect("an id").to_string_lossy().into_owned();
    let out = env.run("runrm", &[&tmpl_id]);
    assert!(out.status.success(), "runrm: {}", stderr(&out));
    let left = ids_files(&env);
    assert!(left.iter().all(|f| !old.contains(f)), "old records left: {left:?}");
    assert!(left.iter().any(|f| f.starts_with("mig_")), "no hour file for mig: {left:?}");
    // After it: the same ids still taken, and none given.
    for _ in 0..3 {
        let id = env.start(&["--name", "mig", "true"]);
        assert!(landed(&id), "{id} launched outside the seconds prepared");
    }
    for id in old.iter().step_by(7) {
        let out = env.run("runlog", &[id, "--no-follow"]);
        assert!(stderr(&out).contains("was removed"), "{id}: {}", stderr(&out));
    }
}

// --- listings that read only what they show -------------------------------------

/// `FRONT ARGS…` in UTC (the planted ids' time zone), which must succeed;
/// its stdout.
fn utc(env: &Env, front: &str, args: &[&str]) -> String {
    let out = env.cmd(front).env("TZ", "UTC").args(args).output().expect("running a front");
    assert!(out.status.success(), "{front} {args:?}: {}", stderr(&out));
    stdout(&out)
}

/// A store of `n` seconds of jobs of a few names (two whose ids share
/// their name part, and jobs sharing a second whose suffixes are not in
/// their start order), with damaged and foreign entries among the newest,
/// and a link and the old scripts' files unless `plain` (whose names
/// are kept, as a listing reads the directory whatever); the names used.
fn crowded_store(env: &Env, n: usize, plain: bool) -> Vec<&'static str> {
    let tmpl = ended_template(env, "tmpl");
    let names = ["a", "b", "c b", "c_b"];
    for i in 0..n {
        let name = names[i % names.len()];
        let t = planted_time(i);
        let base = format!("{}_{}", name.replace(' ', "_"), t.format("%Y%m%d_%H%M%S"));
        // Every fifth second has a second job, `_2`, started before the first.
        let ids: Vec<(String, u32)> =
            if i % 5 == 0 { vec![(base.clone(), 900), (format!("{base}_2"), 100)] } else { vec![(base, 500)] };
        for (id, ms) in ids {
            let started = t + chrono::Duration::milliseconds(ms.into());
            plant(&tmpl, &env.store, id.as_ref(), |m| {
                m["name"] = name.into();
                m["started_at"] = started.to_rfc3339_opts(chrono::SecondsFormat::Millis, false).into();
            });
        }
    }
    // Damaged, among the newest: a job whose meta.json is not JSON, one
    // with none, a foreign file and directory, a link.
    let newest = planted_time(n).format("%Y%m%d_%H%M%S");
    fs::create_dir(env.store.join(format!("a_{newest}"))).expect("mkdir");
    write(&env.store.join(format!("a_{newest}/meta.json")), "{ not json");
    fs::create_dir(env.store.join(format!("b_{newest}"))).expect("mkdir");
    fs::create_dir(env.store.join("foreign")).expect("mkdir");
    write(&env.store.join("notes.txt"), "not a job");
    if plain {
        fs::remove_dir_all(&tmpl).expect("removing the template");
        return names.to_vec();
    }
    symlink(&tmpl, env.store.join(format!("a_{newest}_2"))).expect("planting a link");
    // The old scripts' files: pairs and lone files, among the newest.
    for i in [n - 3, n - 2, n - 1, n + 1] {
        let stem = format!("old_{}", planted_time(i).format("%Y%m%d_%H%M%S"));
        write(&env.store.join(format!("{stem}.log")), &format!("Command: old {i}\n"));
        if i != n - 2 {
            write(&env.store.join(format!("{stem}.pid")), "4194305\n");
        }
    }
    fs::remove_dir_all(&tmpl).expect("removing the template");
    names.to_vec()
}

/// The last `n` lines of a text.
fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].iter().map(|l| format!("{l}\n")).collect()
}

/// The ids of `runs --json`'s output.
fn json_ids(text: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("runs --json: {e}: {text}"));
    v.as_array().expect("an array").iter().map(|j| j["id"].as_str().expect("an id").to_string()).collect()
}

/// Checks `runs -n N` and lookups by name and prefix against the full
/// listing, as `words` name them.
fn check_against_full_listing(env: &Env, words: &[&str]) {
    let full = utc(env, "runs", &[]);
    let full_json = json_ids(&utc(env, "runs", &["--json"]));
    for n in [1, 2, 3, 5, 8, 37, 1000] {
        assert_eq!(utc(env, "runs", &["-n", &n.to_string()]), last_lines(&full, n), "runs -n {n}");
        let ids = json_ids(&utc(env, "runs", &["--json", "-n", &n.to_string()]));
        assert_eq!(ids, full_json[full_json.len().saturating_sub(n)..], "runs --json -n {n}");
    }
    let all: Value = serde_json::from_str(&utc(env, "runs", &["--json"])).expect("JSON");
    for word in words {
        // The newest of that name, as the full listing orders them.
        let want = all.as_array().expect("an array").iter().rev().find(|j| j["name"] == *word).map(|j| j["id"].clone());
        let out = env.cmd("job").env("TZ", "UTC").args(["status", word, "--json"]).output().expect("job status");
        let got: Option<Value> = serde_json::from_slice::<Value>(&out.stdout).ok().map(|v| v["id"].clone());
        if let Some(want) = want {
            assert_eq!(got, Some(want), "job status {word}: {}", stderr(&out));
        }
        let log = env.cmd("runlog").env("TZ", "UTC").args([*word, "--no-follow"]).output().expect("runlog");
        assert_eq!(log.status.success(), got.is_some(), "runlog {word}: {}", stderr(&log));
    }
}

#[test]
fn runs_n_and_lookups_by_name_or_prefix_give_a_full_listings_answers_on_a_crowded_store() {
    let env = Env::new();
    let names = crowded_store(&env, 400, false);
    let mut words: Vec<&str> = names.clone();
    // Prefixes: unique, ambiguous, none; an old script's name; a whole id.
    words.extend(["old", "a_20250101_00000", "c_b_20250101_00011", "b_20250101_000", "zz", "a_20250101_000000"]);
    check_against_full_listing(&env, &words);
    // Ambiguity is an error listing the newest, as it was.
    let out = env.run("job", &["status", "b_20250101_000"]);
    assert!(stderr(&out).contains("matches"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("'b_20250101_000' matches 120 jobs: b_20250101_000637, b_20250101_000633"),
        "{}",
        stderr(&out)
    );
}

/// Plants a job whose id says it was queued first and that started after
/// every other job, and gives the store queues (a job run through one,
/// then removed): its id.
fn plant_late(env: &Env) -> &'static str {
    let tmpl = ended_template(env, "late");
    let late = "late_20240101_000000";
    plant(&tmpl, &env.store, late.as_ref(), |m| {
        m["name"] = "late".into();
        m["queued_at"] = "2024-01-01T00:00:00.000+00:00".into();
        m["started_at"] = planted_time(5000).to_rfc3339_opts(chrono::SecondsFormat::Millis, false).into();
    });
    fs::remove_dir_all(&tmpl).expect("removing the template");
    // A store where jobs have waited has queues.
    let q = env.start(&["-q", "Q", "true"]);
    env.wait_ended(&q, SOON);
    fs::remove_dir_all(env.job_dir(&q)).expect("removing the queued job");
    late
}

#[test]
fn a_job_that_waited_in_a_queue_and_started_last_is_the_newest_however_old_its_id() {
    let env = Env::new();
    crowded_store(&env, 400, false);
    let late = plant_late(&env);
    let newest = utc(&env, "runs", &["-n", "1"]);
    assert!(newest.contains(late), "{newest}");
    check_against_full_listing(&env, &["late", "a"]);
}

#[test]
fn the_old_scripts_files_of_thousands_of_jobs_are_listed_once_each_with_their_commands() {
    let env = Env::new();
    fs::create_dir_all(&env.store).expect("making the store");
    for i in 0..3000 {
        let stem = format!("old_{}", planted_time(i).format("%Y%m%d_%H%M%S"));
        write(&env.store.join(format!("{stem}.log")), &format!("Command: step {i}\n"));
        if i % 3 != 0 {
            write(&env.store.join(format!("{stem}.pid")), "4194305\n");
        }
    }
    let listing = utc(&env, "runs", &[]);
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 3000, "{}", last_lines(&listing, 5));
    for (i, line) in lines.iter().enumerate() {
        let stem = format!("old_{}", planted_time(i).format("%Y%m%d_%H%M%S"));
        assert!(line.contains(&stem) && line.contains(&format!("step {i}  (old run script)")), "{line}");
    }
}

#[test]
fn two_runrm_at_once_do_not_both_claim_the_same_jobs() {
    // Two removals of every job started together: each job is removed
    // once, yet a job the other got first counts as "removed" (Hidden::Gone
    // is reported as Ok(Some(0))), so both lines add up to about twice
    // the store. Seen by hand: "removed 20000 jobs" and "removed 19998
    // jobs" for a store of 20000.
    let env = Env::new();
    let tmpl = ended_template(&env, "tmpl");
    let n = 3000;
    plant_many(&env, &tmpl, "many", n);
    let a = env.cmd("runrm").stdout(std::process::Stdio::piped()).spawn().expect("runrm");
    let b = env.cmd("runrm").stdout(std::process::Stdio::piped()).spawn().expect("runrm");
    let (a, b) = (a.wait_with_output().expect("runrm"), b.wait_with_output().expect("runrm"));
    let count = |o: &std::process::Output| -> usize {
        let text = stdout(o);
        let last = text.lines().rev().find(|l| l.starts_with("removed ") && l.contains(" freed")).unwrap_or("");
        last.split_whitespace().nth(1).and_then(|w| w.parse().ok()).unwrap_or(0)
    };
    let (ca, cb) = (count(&a), count(&b));
    assert!(ca + cb <= n + 1, "{} jobs (the template too), yet the two runrm claim {ca} and {cb}", n + 1);
}
