//! The command line: a missing or bad argument is a usage error (2) naming
//! the flag before anything starts; an unknown or ambiguous job is an
//! error; help lists the exit codes and the manual's examples work as
//! written; every name answers as the binary it links to.

use crate::common::*;
use serde_json::{json, Value};
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Output, Stdio};

/// A usage error: exit 2, one line on stderr naming every word of
/// `naming`, nothing started.
fn usage_error(env: &Env, front: &str, args: &[&str], naming: &[&str]) {
    let out = env.run(front, args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{front} {args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{front} {args:?}: not one line: {err}");
    for n in naming {
        assert!(err.contains(n), "{front} {args:?}: the error does not name {n:?}: {err}");
    }
    assert!(!err.contains("possible values: (") && !err.ends_with("possible values: \n"), "{err}");
    assert!(env.jobs().is_empty(), "{front} {args:?} started a job");
}

fn one_line_naming(out: &Output, flag: &str) {
    let err = stderr(out);
    assert_eq!(code(out), 2, "expected a usage error, got {:?}: {err}", out.status);
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err:?}");
    assert!(err.contains(flag), "the error does not name {flag}: {err}");
    assert!(err.len() < 400, "the error is {} bytes long: {err}", err.len());
}

#[test]
fn every_name_prints_its_version() {
    let env = Env::new();
    for name in NAMES {
        let out = env.run(name, &["--version"]);
        ok(&out, &format!("{name} --version"));
        assert_eq!(stdout(&out), format!("{name} {}\n", env!("CARGO_PKG_VERSION")));
    }
}

// --- any name, any pipe ------------------------------------------------------------

#[test]
fn a_link_named_runs_to_the_run_binary_behaves_as_runs() {
    let env = Env::new();
    let job = launch(&env, &["true"]);
    env.wait_ended(&job.id, SOON);
    // What the job used lands in meta.json a moment after its end: wait, so
    // that both listings below see the same.
    wait_until(SOON, "the job's usage", || !env.job(&job.id)["max_rss_kib"].is_null());
    let links = env.root.join("links");
    std::fs::create_dir(&links).expect("making a directory for the link");
    let link = links.join("runs");
    std::os::unix::fs::symlink(bin("run"), &link).expect("linking");
    for args in [vec![], vec!["--json"]] {
        let via_link = env.tool(link.to_str().expect("UTF-8")).args(&args).output().expect("running the link");
        assert!(via_link.status.success(), "runs (link) {args:?}: {}", stderr(&via_link));
        assert!(stdout(&via_link).contains(&job.id));
        assert_eq!(stdout(&via_link), stdout(&env.run("runs", &args)), "runs {args:?}");
    }
}

#[test]
fn runs_into_a_pipe_closed_early_exits_quietly() {
    let env = Env::new();
    // Long lines, so the listing overflows the pipe's buffer (64 KiB).
    let long = "x".repeat(2000);
    let ids: Vec<String> = (0..50).map(|_| launch(&env, &["true", &long]).id).collect();
    for id in &ids {
        env.wait_ended(id, SOON);
    }
    for args in [vec![], vec!["--json"]] {
        let mut child =
            env.cmd("runs").args(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("starting runs");
        let mut first = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut first).expect("reading a line");
        assert!(!first.is_empty());
        let status = wait_exit(&mut child, SOON, "runs to exit after its pipe closed");
        let mut err = String::new();
        child.stderr.take().expect("stderr").read_to_string(&mut err).expect("reading stderr");
        assert!(!err.contains("panicked"), "runs {args:?}: {err}");
        assert_eq!(err, "", "runs {args:?}");
        assert!(status.success(), "runs {args:?} exited with {status}");
    }
}

#[test]
fn a_missing_argument_or_value_is_named_with_what_it_needs() {
    let env = Env::new();
    usage_error(&env, "run", &[], &["missing", "CMD"]);
    usage_error(&env, "run", &["-n"], &["missing", "CMD"]);
    usage_error(&env, "run", &["--name"], &["--name", "value"]);
    for sub in ["logs", "stop", "wait", "retry"] {
        usage_error(&env, "job", &[sub], &["missing", "ID", &format!("job {sub}")]);
    }
    usage_error(&env, "job", &["run"], &["missing", "CMD"]);
    usage_error(&env, "job", &["run", "true", "--follow"], &["--follow", "needs --wait"]);
    usage_error(&env, "run", &["--min-duration", "2m", "true"], &["--min-duration", "needs -n"]);
    usage_error(&env, "job", &["run", "--min-duration", "2m", "true"], &["--min-duration", "needs --notify"]);
}

#[test]
fn a_word_starting_with_a_dash_before_the_command_is_a_flag_or_a_usage_error_never_a_command() {
    let env = Env::new();
    usage_error(&env, "run", &["--xyzzy", "x", "ls"], &["unknown flag --xyzzy", "put -- before it"]);
    usage_error(&env, "job", &["run", "ls", "-la"], &["unknown flag -la", "\"ls -la\"", "--"]);
    // ... while a flag after the command is the command's.
    let id = env.start(&["ls", "-la"]);
    assert_eq!(env.wait_ended(&id, SOON)["argv"], serde_json::json!(["ls", "-la"]));
}

#[test]
fn a_typo_gets_the_nearest_subcommand_or_flag_and_a_word_near_nothing_gets_the_old_hint() {
    let env = Env::new();
    let typo = |front: &str, args: &[&str], naming: &[&str]| {
        usage_error(&env, front, args, naming);
        let err = stderr(&env.run(front, args));
        assert!(!err.contains("put -- before it") && !err.contains("see --help"), "{front} {args:?}: {err}");
    };
    typo("job", &["stauts"], &["unrecognized subcommand 'stauts'", "did you mean status?"]);
    typo("runs", &["--stat"], &["unknown flag --stat", "did you mean --state?"]);
    typo("run", &["--nmae", "x", "ls"], &["unknown flag --nmae", "did you mean --name?"]);
    // Near nothing: no guess, and what helps instead.
    usage_error(&env, "job", &["xyzzy"], &["unrecognized subcommand 'xyzzy'", "see --help"]);
    usage_error(&env, "runs", &["--xyzzy"], &["unknown flag --xyzzy", "see --help"]);
    usage_error(&env, "run", &["--xyzzy", "ls"], &["unknown flag --xyzzy", "put -- before it"]);
    for args in [&["job", "xyzzy"][..], &["runs", "--xyzzy"], &["run", "--xyzzy", "ls"]] {
        let err = stderr(&env.run(args[0], &args[1..]));
        assert!(!err.contains("did you mean"), "{args:?}: {err}");
    }
}

#[test]
fn a_huge_or_non_utf8_mistyped_word_is_shown_cut_and_escaped_on_one_line() {
    use std::os::unix::ffi::OsStrExt;
    let env = Env::new();
    let huge = format!("--{}", "a".repeat(100_000));
    let bad = std::ffi::OsStr::from_bytes(b"--nam\xffe");
    let sub = std::ffi::OsStr::from_bytes(b"l\xffst");
    for (front, args, shown) in [
        ("run", vec![huge.as_ref(), "true".as_ref()], "aaaa…"),
        ("runs", vec![huge.as_ref()], "aaaa…"),
        ("run", vec![bad, "true".as_ref()], "--nam\\xffe"),
        ("job", vec![sub], "l\\xffst"),
    ] {
        let out = env.cmd(front).args(&args).output().expect("running the binary");
        one_line_naming(&out, shown);
        assert!(!stderr(&out).contains('\u{fffd}'), "{front}: {}", stderr(&out));
    }
    assert!(env.jobs().is_empty(), "a job was started");
}

#[test]
fn a_negative_duration_is_refused_naming_its_flag() {
    let env = Env::new();
    usage_error(&env, "job", &["run", "--timeout", "-5m", "true"], &["--timeout", "-5m"]);
    usage_error(&env, "job", &["wait", "x", "--timeout", "-5m"], &["--timeout", "-5m"]);
    usage_error(&env, "job", &["clean", "--older-than", "-1d"], &["--older-than", "-1d"]);
    usage_error(&env, "run", &["--min-duration", "-2m", "true"], &["--min-duration", "-2m"]);
    usage_error(&env, "runs", &["--state", "finished"], &["--state", "finished", "running"]);
}

// --- hostile input ----------------------------------------------------------------------

#[test]
fn names_that_would_escape_the_store_or_flood_the_screen_are_refused_naming_the_flag() {
    let env = Env::new();
    let long = "n".repeat(10_000);
    for name in ["a/b", "..", ".", "../../escape", "/etc", &long] {
        for (front, args) in [("run", vec!["--name", name, "true"]), ("job", vec!["run", "--name", name, "true"])] {
            let out = env.run(front, &args);
            one_line_error(&out, 2, &["--name"], &format!("{front} --name {:.20}", name));
            assert!(stderr(&out).len() < 300, "a {}-byte error for a long name", stderr(&out).len());
        }
    }
    // A NUL cannot even be passed: the kernel's argv is NUL-terminated.
    assert!(env.cmd("run").args(["--name", "a\0b", "true"]).output().is_err());
    assert_eq!(entries(&env.store), Vec::<OsString>::new(), "a refused name left something");
    assert!(!env.root.join("escape").exists());

    // Words that look like paths name no job, and touch nothing.
    let id = env.start(&["true"]);
    env.wait_ended(&id, SOON);
    let sentinel = env.root.join("sentinel");
    write(&sentinel, "here\n");
    for word in ["..", ".", "/", "../sentinel", "*", "", &long, "\u{1b}[2J"] {
        for (front, args) in [
            ("runrm", vec![word]),
            ("runlog", vec![word, "--no-follow"]),
            ("job", vec!["status", word]),
            ("job", vec!["stop", word]),
        ] {
            let out = env.run(front, &args);
            assert_eq!(out.status.code(), Some(1), "{front} {word:.20?}: {}", stderr(&out));
            assert!(!has_control_bytes(&out.stderr), "{front} echoed a control character");
        }
    }
    assert!(sentinel.is_file() && env.job_dir(&id).is_dir(), "a hostile word removed something");
}

#[test]
fn negative_huge_and_fractional_durations_are_refused_and_clean_removes_nothing() {
    let env = Env::new();
    let id = env.start(&["true"]);
    env.wait_ended(&id, SOON);
    for dur in ["-5m", "99999999999d", "1.5h", "1h-5m", "5m1h", " 5m", "0x10", "1e9s", "18446744073709551616"] {
        for (args, flag) in [
            (vec!["run".to_string(), format!("--timeout={dur}"), "true".into()], "--timeout"),
            (vec!["wait".to_string(), format!("--timeout={dur}"), id.clone()], "--timeout"),
            (vec!["clean".to_string(), format!("--older-than={dur}")], "--older-than"),
        ] {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = env.run("job", &args);
            one_line_error(&out, 2, &[flag], &format!("job {args:?}"));
        }
        // As a separate word, `-5m` reads as a flag: refused all the same.
        let out = env.run("job", &["clean", "--older-than", dur]);
        assert_eq!(out.status.code(), Some(2), "job clean --older-than {dur}: {}", stderr(&out));
    }
    assert_eq!(entries(&env.store), vec![OsString::from(&id)], "a bad duration started or removed a job");
}

#[test]
fn names_that_are_not_plain_file_names_are_refused_naming_the_flag() {
    let env = jobs();
    let long = "x".repeat(10_000);
    for name in [".", "..", "a/b", "/", "", long.as_str(), "--", "-x"] {
        let out = env.cli(&["run", "true", "--name", name]);
        one_line_naming(&out, "--name");
    }
    assert!(env.ids().is_empty(), "a job was started: {:?}", env.ids());
}

#[test]
fn bad_durations_are_refused_before_anything_starts() {
    let env = jobs();
    one_line_naming(&env.cli(&["run", "sleep 30", "--timeout", "5x"]), "--timeout");
    assert!(env.ids().is_empty(), "a job was started: {:?}", env.ids());
    assert!(!env.store.join(".keys").exists());
    let id = env.launch(&["true"]);
    one_line_naming(&env.cli(&["wait", &id, "--timeout", "5x"]), "--timeout");
    one_line_naming(&env.cli(&["clean", "--older-than", "1.5d"]), "--older-than");
    one_line_naming(&env.cli(&["list", "--status", "sleeping"]), "--status");
    assert_eq!(env.ids(), vec![id]);
}

#[test]
fn context_that_is_not_json_is_refused() {
    let env = jobs();
    for bad in ["not json", "{\"a\": 1", ""] {
        one_line_naming(&env.cli(&["run", "true", "--context", bad]), "--context");
    }
    assert!(env.ids().is_empty(), "a job was started: {:?}", env.ids());
}

#[test]
fn an_unknown_job_is_an_error_everywhere() {
    let env = jobs();
    env.ended("true", "t");
    for cmd in ["stop", "status", "logs", "wait", "retry"] {
        let out = env.cli(&[cmd, "nosuch"]);
        assert_eq!(code(&out), 1, "job {cmd} nosuch: {:?}", out.status);
        assert!(stderr(&out).contains("no job 'nosuch'"), "job {cmd}: {}", stderr(&out));
    }
}

#[test]
fn an_ambiguous_prefix_is_an_error_listing_the_candidates() {
    let env = jobs();
    let one = env.ended("true", "ambi-one");
    let two = env.ended("true", "ambi-two");
    for cmd in ["status", "logs", "wait", "stop"] {
        let out = env.cli(&[cmd, "ambi-"]);
        assert_eq!(code(&out), 1, "job {cmd}");
        let err = stderr(&out);
        assert!(err.contains("matches 2 jobs") && err.contains(&one) && err.contains(&two), "{err}");
    }
    let by_prefix = stdout(&env.cli(&["status", "ambi-t"]));
    assert!(by_prefix.contains(&two), "a unique prefix: {by_prefix}");
}

// --- help and the manual ---------------------------------------------------------

#[test]
fn job_help_lists_the_exit_codes() {
    let env = jobs();
    let help = stdout(&env.cli(&["--help"]));
    for want in ["run", "list", "status", "logs", "stop", "wait", "retry", "clean", "124 job wait --timeout ran out"] {
        assert!(help.contains(want), "no {want:?} in job --help:\n{help}");
    }
}

/// Every example of the job manual, typed into a shell as written, with
/// `abc123` replaced by a real id. Stand-ins for pytest, make, npm and
/// deploy.sh are on PATH; deploy.sh fails, to have a failed job.
#[test]
fn every_example_of_the_job_manual_works_as_written() {
    let env = jobs();
    let project = env.root.join("project");
    let bin = env.root.join("bin");
    std::fs::create_dir_all(&project).expect("mkdir");
    std::fs::create_dir_all(&bin).expect("mkdir");
    for (tool, body) in [
        ("pytest", "echo \"pytest $*: 3 passed\""),
        ("make", "echo \"make $*: built\""),
        ("npm", "echo \"npm $*: ok\""),
        ("deploy.sh", "echo 'deploy: no credentials' >&2; exit 1"),
    ] {
        let path = bin.join(tool);
        write(&path, &format!("#!/bin/sh\n{body}\n"));
        let st = Command::new("chmod").arg("+x").arg(&path).status().expect("chmod");
        assert!(st.success());
    }
    git_init(&project);
    let commit = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "--allow-empty", "-m", "x"])
        .current_dir(&project)
        .status()
        .expect("git commit");
    assert!(commit.success());
    let sh = |line: &str| env.sh(&project, &bin, line);
    let ok = |line: &str| {
        let out = sh(line);
        assert_eq!(code(&out), 0, "{line}: {}", stderr(&out));
        stdout(&out)
    };
    let started = |line: &str| {
        let out = sh(line);
        assert_eq!(code(&out), 0, "{line}: {}", stderr(&out));
        let id = the_id(&out);
        env.wait_ended(&id, SOON);
        id
    };

    // Starting jobs
    let tests = started(r#"job run "pytest tests/""#);
    assert_eq!(env.state(&tests), "done");
    assert!(env.log(&tests).contains("pytest tests/: 3 passed"), "{}", env.log(&tests));
    let build = started(r#"job run "make build" --name build"#);
    assert!(build.starts_with("build_"), "{build}");
    let npm = started(r#"job run "npm test" --timeout 30m"#);
    assert_eq!(env.job(&npm)["timeout_s"], 1800);
    let deploy = started(r#"job run "deploy.sh" --context '{"pr": 123, "env": "staging"}'"#);
    assert_eq!(env.job(&deploy)["context"], json!({"pr": 123, "env": "staging"}));
    assert_eq!(env.state(&deploy), "failed");
    let keyed = started(r#"job run "pytest" --key "test-$(git rev-parse HEAD)""#);
    assert_eq!(started(r#"job run "pytest" --key "test-$(git rev-parse HEAD)""#), keyed);
    let head = ok("git rev-parse HEAD");
    assert_eq!(env.job(&keyed)["key"], format!("test-{}", head.trim()));
    let waited = ok(r#"job run "pytest" --wait"#);
    assert_eq!(env.state(waited.trim()), "done");

    // Listing jobs
    let sleeper = env.launch_in(&project, &["sleep 300"]);
    let listed = ok("job list");
    for id in [&tests, &build, &npm, &deploy, &keyed, &sleeper] {
        assert!(listed.contains(id.as_str()), "job list lacks {id}:\n{listed}");
    }
    assert!(ok("job list --all").contains(&tests));
    let running = ok("job list --status running");
    assert!(running.contains(&sleeper) && !running.contains(&tests), "{running}");
    let failed = ok("job list --status failed");
    assert!(failed.contains(&deploy) && !failed.contains(&tests), "{failed}");
    let parsed: Value = serde_json::from_str(&ok("job list --json")).expect("job list --json is JSON");
    assert_eq!(ids_of(&parsed).len(), 7);

    // Checking status
    let system = ok("job status");
    assert!(system.contains(&env.store.display().to_string()) && system.contains("1 running"), "{system}");
    assert!(ok(&format!("job status {tests}")).contains("done (exit 0)"));
    assert!(ok("job status build  # by name if unique").contains(&build));
    let one: Value = serde_json::from_str(&ok(&format!("job status {tests} --json"))).expect("JSON");
    assert_eq!(one["id"], tests.as_str());

    // Viewing logs
    assert_eq!(ok(&format!("job logs {tests}")), env.shown_log(&tests));
    assert!(ok(&format!("job logs {tests} --tail")).contains("3 passed"));
    assert!(ok(&format!("job logs {tests} --tail 100")).contains("3 passed"));
    assert!(ok(&format!("job logs {tests} --follow")).contains("=== done (exit 0)"));

    // Stopping jobs
    ok(&format!("job stop {sleeper}"));
    assert_eq!(env.job(&sleeper)["signal"], "SIGTERM");
    let stubborn = env.launch_in(&project, &["sleep 300"]);
    ok(&format!("job stop {stubborn} --force"));
    assert_eq!(env.job(&stubborn)["signal"], "SIGKILL");

    // Waiting for completion, and the exit codes
    ok(&format!("job wait {tests}"));
    ok(&format!("job wait {tests} --timeout 5m"));
    assert_eq!(code(&sh(&format!("job wait {deploy}"))), 1);
    let slow = env.launch_in(&project, &["sleep 300"]);
    assert_eq!(code(&sh(&format!("job wait {slow} --timeout 1s"))), 124);
    assert_eq!(env.state(&slow), "running");

    // Patterns
    let build2 = started(r#"job run "make build" --name build"#);
    let _ = ok(r#"job run "npm test" --name tests
job run "npm run lint" --name lint
job run "npm run typecheck" --name types"#);
    let listed = ok("job list");
    for name in ["tests_", "lint_", "types_"] {
        assert!(listed.contains(name), "job list lacks {name}:\n{listed}");
    }
    ok("job wait tests && job wait lint && job wait types");
    assert!(ok("job status build").contains(&build2), "build is the newest of that name");
    assert!(ok(&format!("job logs {build2} --tail")).contains("make build: built"));
    let retried = ok(&format!("job retry {deploy}"));
    let retried = retried.trim();
    env.wait_ended(retried, SOON);
    assert_eq!(env.job(retried)["command"], "deploy.sh");
    assert_eq!(env.job(retried)["context"], json!({"pr": 123, "env": "staging"}));
    assert_eq!(env.state(retried), "failed");

    // Storage: clean up old jobs
    let before = env.ids().len();
    assert!(ok("job clean                    # Remove jobs older than 7 days").contains("removed 0 jobs"));
    assert!(ok("job clean --older-than 1d    # Custom retention").contains("removed 0 jobs"));
    assert_eq!(env.ids().len(), before);
    ok("job clean --all              # Remove all non-running jobs");
    assert_eq!(env.ids(), vec![slow.clone()], "only the running job is left");
}
