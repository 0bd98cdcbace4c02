//! The shape of ids: launches of one name within one second get `NAME_TS`,
//! `NAME_TS_2`, `NAME_TS_3`, … in order; however many launch at once each
//! gets its own; a removed `_2` is never given again.

use crate::common::*;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// Runs `launches` (each a list of ids it launched, in order) as a second
/// begins until all its ids share one second, then hands them to `check`.
/// On a loaded machine a try may straddle two seconds: then it is tried
/// again under another name, for up to a minute.
fn within_one_second(launches: impl Fn(&str) -> Vec<String>, check: impl Fn(&[String])) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut tries = Vec::new();
    for n in 0.. {
        assert!(Instant::now() < deadline, "never launched all within one second: {tries:?}");
        let sub = chrono::Utc::now().timestamp_subsec_millis();
        if sub > 50 {
            std::thread::sleep(Duration::from_millis(u64::from(1000 - sub)));
        }
        let ids = launches(&format!("q{n}"));
        let stamp = |id: &String| id.split('_').nth(2).map(str::to_string);
        if ids.iter().all(|id| stamp(id) == stamp(&ids[0])) {
            return check(&ids);
        }
        tries.push(ids);
    }
}

fn launch_utc(env: &Env, name: &str) -> String {
    id_and_pid(env.cmd("run").env("TZ", "UTC").args(["--name", name, "true"]).output().expect("run")).0
}

#[test]
fn three_quick_launches_in_one_second_get_the_id_then_2_then_3() {
    let env = Env::new();
    within_one_second(
        |name| (0..3).map(|_| launch_utc(&env, name)).collect(),
        |ids| {
            let base = &ids[0];
            assert_eq!(base.matches('_').count(), 2, "the first launch has a suffix: {ids:?}");
            assert_eq!(ids, [base.clone(), format!("{base}_2"), format!("{base}_3")]);
        },
    );
}

#[test]
fn a_removed_underscore_two_is_never_given_again() {
    let env = Env::new();
    within_one_second(
        |name| {
            let (first, second) = (launch_utc(&env, name), launch_utc(&env, name));
            env.wait_ended(&second, SOON);
            let out = env.run("runrm", &[&second]);
            assert!(out.status.success(), "runrm {second}: {}", stderr(&out));
            vec![first, second.clone(), launch_utc(&env, name)]
        },
        |ids| {
            let base = &ids[0];
            assert_eq!(ids[1], format!("{base}_2"));
            assert_eq!(ids[2], format!("{base}_3"), "after {base}_2 was removed");
        },
    );
}

#[test]
fn fifty_launches_at_once_from_a_shell_loop_get_fifty_ids_with_short_suffixes() {
    let env = Env::new();
    let out = env
        .tool("sh")
        .arg("-c")
        .arg("for i in $(seq 50); do run --name c true & done; wait")
        .env("PATH", format!("{}:/usr/bin:/bin", bin("run").parent().expect("a directory").display()))
        .env("RUN_DIR", &env.store)
        .output()
        .expect("running sh");
    ok(&out, "50 launches from a shell loop");
    let ids: Vec<String> = stdout(&out).lines().filter_map(|l| l.split_whitespace().next()).map(String::from).collect();
    assert_eq!(ids.len(), 50, "{}", stdout(&out));
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 50, "an id given twice: {ids:?}");
    for id in &ids {
        assert!(env.job_dir(id).is_dir(), "{id} has no directory");
        let suffix = id.split('_').nth(3);
        assert!(suffix.is_none_or(|s| s.parse::<u32>().is_ok_and(|n| (2..=50).contains(&n))), "{id}");
    }
    wait_until(SOON, "50 jobs to end", || env.jobs().iter().all(|j| j["state"] == "done"));
    assert_eq!(store_entries(&env).len(), 50, "the store holds more than the jobs");
}
