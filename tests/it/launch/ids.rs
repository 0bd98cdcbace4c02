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

#[test]
fn a_removed_jobs_id_names_no_other_job_when_its_sibling_of_the_same_second_runs() {
    let env = Env::new();
    let run_utc = |name: &str, cmd: &[&str]| {
        let mut args = vec!["--name", name];
        args.extend(cmd);
        id_and_pid(env.cmd("run").env("TZ", "UTC").args(&args).output().expect("run")).0
    };
    within_one_second(
        |name| vec![run_utc(name, &["true"]), run_utc(name, &["sleep", "300"])],
        |ids| {
            let (gone, sibling) = (&ids[0], &ids[1]);
            assert_eq!(*sibling, format!("{gone}_2"));
            env.wait_ended(gone, SOON);
            ok(&env.run("runrm", &[gone]), "runrm of the ended job");
            for (front, args) in [
                ("job", vec!["stop", gone.as_str()]),
                ("runrm", vec![gone.as_str()]),
                ("runlog", vec![gone.as_str(), "--no-follow"]),
                ("job", vec!["wait", gone.as_str(), "--timeout", "1"]),
            ] {
                let out = env.run(front, &args);
                one_line_error(&out, 1, &[gone.as_str(), "removed"], &format!("{front} {args:?}"));
                assert!(
                    !stdout(&out).contains(sibling.as_str()),
                    "{front} {args:?} acted on {sibling}: {}",
                    stdout(&out)
                );
                assert_eq!(env.state(sibling), "running", "{front} {args:?} touched {sibling}");
            }
            let out = env.run("run", &["--after", gone, "true"]);
            assert_eq!(code(&out), 2, "--after a removed id: {}", stderr(&out));
            assert!(stderr(&out).contains("removed"), "{}", stderr(&out));
            ok(&env.run("job", &["stop", sibling]), "stopping the sibling");
        },
    );
}

#[test]
fn a_removed_underscore_two_never_names_an_underscore_twenty() {
    let env = Env::new();
    let base = env.start(&["--name", "w", "true"]);
    env.wait_ended(&base, SOON);
    let (two, twenty) = (format!("{base}_2"), format!("{base}_20"));
    plant(&env.job_dir(&base), &env.store, two.as_ref(), |_| {});
    ok(&env.run("runrm", &[&two]), "runrm of _2");
    plant(&env.job_dir(&base), &env.store, twenty.as_ref(), |_| {});
    for (front, args) in [("runlog", vec![two.as_str(), "--no-follow"]), ("runrm", vec![two.as_str()])] {
        one_line_error(&env.run(front, &args), 1, &[two.as_str(), "removed"], &format!("{front} {args:?}"));
    }
    assert!(env.job_dir(&twenty).is_dir(), "{twenty} was removed");
    // An id never given (nor removed) is not a prefix of `_30` either.
    let (never, thirty) = (format!("{base}_3"), format!("{base}_30"));
    plant(&env.job_dir(&base), &env.store, thirty.as_ref(), |_| {});
    let out = env.run("runlog", &[&never, "--no-follow"]);
    one_line_error(&out, 1, &[never.as_str(), "no job"], "runlog of an id never given");
    let out = env.run("runlog", &[&base[..base.len() - 2], "--no-follow"]);
    one_line_error(&out, 1, &["matches 3 jobs"], "a short prefix still matches");
}

#[test]
fn a_launch_never_takes_the_id_of_an_old_run_scripts_job_of_its_second() {
    let env = Env::new();
    std::fs::create_dir_all(&env.store).expect("making the store");
    // The old script's jobs of this second and the next few, as `.log`
    // for some and `.pid` for the others.
    let now = chrono::Local::now();
    let planted: Vec<String> =
        (0..4).map(|s| format!("make_{}", (now + chrono::Duration::seconds(s)).format("%Y%m%d_%H%M%S"))).collect();
    for (i, id) in planted.iter().enumerate() {
        let ext = if i % 2 == 0 { "log" } else { "pid" };
        std::fs::write(env.store.join(format!("{id}.{ext}")), "").expect("planting an old script's job");
    }
    let id = env.start(&["--name", "make", "true"]);
    assert!(!planted.contains(&id), "{id} is an old script's job's id too");
    assert!(planted.iter().any(|p| id == format!("{p}_2")), "{id} is not the _2 of its second");
}
