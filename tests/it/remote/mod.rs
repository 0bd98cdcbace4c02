//! The same commands on other hosts over ssh (`--on DEST`, `DEST:ID`),
//! against real sshd "hosts" on loopback, each in namespaces of its own
//! with its own host name and store (`common::Hosts`), inside
//! `isolated`. Submodules: `follow` (following a remote log: Ctrl-C, a
//! dropped connection), `trust` (what crosses: arguments byte for byte
//! under fish and zsh, secrets, other versions, garbage, a host without
//! bgrun and the install).

mod follow;
mod trust;

use crate::common::*;
use serde_json::Value;
use std::process::Output;

const BASH: Spec = Spec { shell: "/bin/bash", bgrun: true };
const DASH: Spec = Spec { shell: "/bin/dash", bgrun: true };

/// The parsed JSON array a listing printed.
fn listed(out: &Output) -> Vec<Value> {
    assert!(out.status.success(), "the listing failed: {}", stderr(out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(out)))
}

/// The first word a launch printed (its qualified id), the launch having
/// succeeded.
fn first_word(out: &Output) -> String {
    assert!(out.status.success(), "failed: {}", stderr(out));
    stdout(out).split_whitespace().next().expect("a word").to_string()
}

/// The job ids in a store (its visible directories).
fn ids_in(store: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(store)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| !n.starts_with('.'))
        .collect();
    v.sort();
    v
}

#[test]
fn jobs_start_list_wait_stop_retry_and_clean_on_other_hosts_as_they_do_here() {
    if !isolated("several sshd hosts, each with its own host name", false) {
        return;
    }
    let env = Env::new();
    let Some(hosts) = Hosts::start(&env, &[BASH, DASH]) else { return };
    let (h1, h2) = (&hosts.hosts[0], &hosts.hosts[1]);
    let here = env.start(&["--name", "here", "true"]);

    // run --on prints DEST:ID PID LOG, the remote's line; job run --on DEST:ID.
    let out = hosts.run(&env, "run", &["--on", "h1", "--name", "ok", "sh", "-c", "echo hi from $(hostname)"]);
    let ok = first_word(&out);
    let words: Vec<String> = stdout(&out).split_whitespace().map(str::to_string).collect();
    assert!(ok.starts_with("h1:ok_"), "{out:?}");
    assert!(words[2].starts_with(&h1.store.display().to_string()), "the log is on h1: {words:?}");
    let bad = stdout(&hosts.run(&env, "job", &["run", "--on", "h2", "--name", "bad", "exit 3"])).trim().to_string();
    assert!(bad.starts_with("h2:bad_"), "{bad}");
    let long = first_word(&hosts.run(&env, "run", &["--on", "h2", "--name", "long", "sleep", "600"]));

    // job wait: the same exit codes as here.
    assert_eq!(hosts.run(&env, "job", &["wait", &ok]).status.code(), Some(0));
    // --after a job of the same host, named as this machine names it.
    let then = first_word(&hosts.run(&env, "run", &["--on", "h1", "--name", "then", "--after", &ok, "true"]));
    assert_eq!(hosts.run(&env, "job", &["wait", &then]).status.code(), Some(0));
    let waited = hosts.run(&env, "job", &["wait", &bad]);
    assert_eq!(waited.status.code(), Some(1), "{waited:?}");
    assert!(stderr(&waited).contains("h2: job: bad_"), "{}", stderr(&waited));
    assert_eq!(hosts.run(&env, "job", &["wait", &long, "--timeout", "1s"]).status.code(), Some(124));
    let log = hosts.run(&env, "runlog", &[&ok]);
    assert!(stdout(&log).contains("hi from host-1"), "{log:?}");
    let logs = hosts.run(&env, "job", &["logs", &ok]);
    assert!(stdout(&logs).contains("hi from host-1"), "{logs:?}");

    // A listing of here and both hosts: text qualified, JSON with `on`.
    let text = stdout(&hosts.run(&env, "runs", &["--on", "local,h1,h2"]));
    for id in [&here, &ok, &bad, &long] {
        assert!(text.lines().any(|l| l.split_whitespace().nth(1) == Some(id.as_str())), "{id} in {text}");
    }
    let all =
        listed(&hosts.cmd(&env, "runs").args(["--on", "all", "--json"]).env("RUN_HOSTS", "h1,h2").output().unwrap());
    let by_id = |id: &str| all.iter().find(|j| j["id"] == id).unwrap_or_else(|| panic!("{id} in {all:?}")).clone();
    assert!(by_id(&here).get("on").is_none(), "a local job has no `on`");
    let remote_ok = by_id(ok.split_once(':').unwrap().1);
    assert_eq!((remote_ok["on"].as_str(), remote_ok["host"].as_str()), (Some("h1"), Some(h1.hostname.as_str())));
    let remote_long = by_id(long.split_once(':').unwrap().1);
    assert_eq!((remote_long["on"].as_str(), remote_long["state"].as_str()), (Some("h2"), Some("running")));
    let listed_h2 = listed(&hosts.run(&env, "job", &["list", "--on", "h2", "--json"]));
    assert_eq!(listed_h2.len(), 2, "job list --on lists every job there: {listed_h2:?}");

    // status, stop, retry.
    let status = hosts.run(&env, "job", &["status", &long, "--json"]);
    assert_eq!(listed_one(&status)["state"], "running");
    let stop = hosts.run(&env, "job", &["stop", &long]);
    assert!(stop.status.success(), "{stop:?}");
    assert_eq!(listed_one(&hosts.run(&env, "job", &["status", &long, "--json"]))["state"], "stopped");
    let retried = stdout(&hosts.run(&env, "job", &["retry", &ok, "--wait"])).trim().to_string();
    assert!(retried.starts_with("h1:ok_") && retried != ok, "{retried}");
    assert_eq!(ids_in(&h1.store).len(), 3);

    // A job that is not there: one line naming the host, exit 1.
    let missing = hosts.run(&env, "job", &["status", "h1:nothing_here"]);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(stderr(&missing).lines().count(), 1, "{}", stderr(&missing));
    assert!(stderr(&missing).contains("h1:") && stderr(&missing).contains("nothing_here"), "{missing:?}");

    // Clean up there.
    let rm = hosts.run(&env, "runrm", &["--on", "h1"]);
    assert!(rm.status.success(), "{rm:?}");
    assert!(stdout(&rm).lines().any(|l| l.starts_with("h1: removed ok_")), "{}", stdout(&rm));
    assert_eq!(ids_in(&h1.store), Vec::<String>::new());
    let clean = hosts.run(&env, "job", &["clean", "--on", "h2", "--all"]);
    assert!(clean.status.success(), "{clean:?}");
    assert_eq!(ids_in(&h2.store), Vec::<String>::new());

    // Nothing of theirs was written here.
    assert_eq!(ids_in(&env.store), [here]);
}

/// The one object `job status --json` printed.
fn listed_one(out: &Output) -> Value {
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(out)))
}

#[test]
fn an_unreachable_host_is_one_line_naming_it_and_the_others_are_still_listed() {
    if !isolated("an sshd host", false) {
        return;
    }
    let env = Env::new();
    let Some(hosts) = Hosts::start(&env, &[BASH]) else { return };
    let here = env.start(&["true"]);
    let there = first_word(&hosts.run(&env, "run", &["--on", "h1", "true"]));
    let out = hosts.cmd(&env, "runs").args(["--on", "all"]).env("RUN_HOSTS", "down,h1").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = stdout(&out);
    assert!(text.contains(&here) && text.contains(&there), "the others are listed: {text}");
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("runs: down: cannot reach it: ") && err.contains("refused"), "{err}");
    // The same for a command on that host alone.
    let out = hosts.run(&env, "job", &["status", "down:x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).starts_with("job: down: cannot reach it: "), "{out:?}");
}

#[test]
fn bad_destinations_and_ids_of_several_hosts_are_refused_before_anything_starts() {
    let env = Env::new();
    let cases: [(&str, &[&str], &str); 7] = [
        ("runs", &["--on", ""], "an empty list of destinations"),
        ("runlog", &["h1:--help"], "cannot start with '-'"),
        ("job", &["stop", "h1:--force"], "cannot start with '-'"),
        ("runs", &["--on=-oProxyCommand=x"], "cannot start with '-'"),
        ("run", &["--on", "a,b", "true"], "--on"),
        ("job", &["wait", "a:x", "b:y"], "several hosts"),
        ("runs", &["--on", "a,,b"], "an empty destination"),
    ];
    for (front, args, says) in cases {
        let out = env.cmd(front).args(args).env("RUN_SSH", "false").output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{front} {args:?}: {out:?}");
        assert!(stderr(&out).contains(says) && stderr(&out).lines().count() == 1, "{front} {args:?}: {out:?}");
    }
    assert!(!env.store.exists(), "nothing was made");
}

#[test]
fn a_job_here_whose_name_holds_a_colon_is_still_this_machines() {
    let env = Env::new();
    let id = env.start(&["--name", "h1:nightly", "true"]);
    env.wait_ended(&id, SOON);
    // RUN_SSH fails: asking h1 would be an error.
    for (front, args) in [("job", vec!["status", "h1:nightly"]), ("runlog", vec!["h1:nightly", "--no-follow"])] {
        let out = env.cmd(front).args(&args).env("RUN_SSH", "false").output().unwrap();
        assert!(out.status.success(), "{front} {args:?}: {out:?}");
        assert!(stdout(&out).contains(&id) || stdout(&out).contains("=== true"), "{front}: {}", stdout(&out));
    }
    let out = env.cmd("job").args(["status", "h1:other"]).env("RUN_SSH", "false").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).starts_with("job: h1: "), "another id goes to h1: {out:?}");
}
