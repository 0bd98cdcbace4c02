//! Starting a job (`run`, `job run`, `job retry`): what reaches the job
//! (its arguments, bytes and context, intact), what cannot start and is
//! refused before anything is made (126, 127, the kernel's argument
//! limit), and a retry that runs the same thing again.

mod identity;
mod ids;
mod inherit;

use crate::common::*;
use serde_json::{json, Value};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Output;

#[test]
fn arguments_with_spaces_and_quotes_reach_the_command_intact() {
    let env = Env::new();
    let job = launch(&env, &["printf", "%s|", "a b", "c\"d", "e'f"]);
    let j = env.wait_ended(&job.id, SOON);
    assert_eq!(j["state"], "done");
    assert_eq!(j["argv"], serde_json::json!(["printf", "%s|", "a b", "c\"d", "e'f"]));
    let log = env.log(&job.id);
    assert!(log.lines().any(|l| l == "a b|c\"d|e'f|"), "{log}");
}

#[test]
fn one_argument_with_shell_syntax_runs_through_sh_c() {
    let env = Env::new();
    let job = launch(&env, &["echo one && echo two"]);
    let j = env.wait_ended(&job.id, SOON);
    assert_eq!(j["state"], "done");
    assert_eq!(j["argv"], serde_json::json!(["sh", "-c", "echo one && echo two"]));
    assert_eq!(j["command"], "echo one && echo two");
    assert!(env.log(&job.id).starts_with("one\ntwo\n"), "{}", env.log(&job.id));
}

// --- refusing what cannot run ------------------------------------------------

#[test]
fn a_missing_command_is_refused_with_127_and_leaves_nothing_in_the_store() {
    let env = Env::new();
    let out = env.run("run", &["nosuchcmd-xyz"]);
    assert_eq!(out.status.code(), Some(127));
    assert_eq!(stderr(&out), "run: nosuchcmd-xyz: command not found\n");
    assert_eq!(stdout(&out), "");
    assert_eq!(store_entries(&env), Vec::<String>::new());
}

#[test]
fn a_shell_string_whose_first_word_is_missing_is_refused_with_127() {
    let env = Env::new();
    let out = env.run("run", &["nosuchcmd-xyz --flag"]);
    assert_eq!(out.status.code(), Some(127));
    assert_eq!(stderr(&out), "run: nosuchcmd-xyz: command not found\n");
    assert_eq!(stdout(&out), "");
    assert_eq!(store_entries(&env), Vec::<String>::new());
}

#[test]
fn a_file_that_is_not_executable_is_refused_with_126_by_run_and_job_run_in_the_same_words() {
    let env = Env::new();
    let script = env.root.join("notexec.sh");
    write(&script, "echo hi\n");
    let path = script.to_str().expect("a UTF-8 temp path");
    for (front, args) in [("run", vec![path]), ("job", vec!["run", path])] {
        let out = env.run(front, &args);
        assert_eq!(out.status.code(), Some(126), "{front}: {}", stderr(&out));
        assert_eq!(stderr(&out), format!("{front}: {path}: not executable\n"));
    }
    assert_eq!(store_entries(&env), Vec::<String>::new());
}

#[test]
fn shell_strings_get_the_name_of_the_program_they_run() {
    let env = Env::new();
    std::fs::create_dir_all(env.root.join("sub")).expect("mkdir");
    write(&env.root.join("build.sh"), "true\n");
    for (front, cmd, name) in [
        ("run", "cd sub && true", "true"),
        ("job", "FOO=bar env", "env"),
        ("job", "{ echo a; }", "echo"),
        ("job", ". ./build.sh", "build"),
    ] {
        let out = if front == "run" { env.run("run", &[cmd]) } else { env.run("job", &["run", cmd]) };
        assert!(out.status.success(), "{cmd}: {}", stderr(&out));
        let id = stdout(&out).split_whitespace().next().expect("an id").to_string();
        assert_eq!(env.job(&id)["name"], name, "{cmd}");
    }
}

#[test]
fn contexts_nested_deeper_than_json_readers_go_are_refused_and_one_as_big_as_argv_allows_is_kept_verbatim() {
    let env = Env::new();
    // Nested past what serde_json or jq read back, it would make every
    // `runs --json` unreadable: refused, valid or not.
    for n in [100_000, 65_000, 65] {
        // (Closed, 100,000 deep is more than one argument may hold.)
        let closed = Some(format!("{}{}", "[".repeat(n), "]".repeat(n))).filter(|c| c.len() < 131_072);
        for deep in std::iter::once("[".repeat(n)).chain(closed) {
            let out = env.run("job", &["run", "--context", &deep, "true"]);
            one_line_error(&out, 2, &["--context"], &format!("a context nested {n} deep"));
        }
    }
    assert_eq!(entries(&env.store), Vec::<OsString>::new(), "a refused context started a job");
    let deep = format!("{}{}", "[".repeat(64), "]".repeat(64));
    let out = env.run("job", &["run", "--context", &deep, "true"]);
    assert!(out.status.success(), "a context nested 64 deep: {}", stderr(&out));

    // One argument is at most 128 KiB (MAX_ARG_STRLEN), NUL included.
    let mut big = String::from("{\"k\":\"");
    big.push_str(&"x".repeat(131_071 - big.len() - 2));
    big.push_str("\"}");
    assert_eq!(big.len(), 131_071);
    let out = env.run("job", &["run", "--name", "big", "--context", &big, "true"]);
    assert!(out.status.success(), "the biggest context argv allows: {}", stderr(&out));
    let id = stdout(&out).trim().to_string();
    env.wait_ended(&id, SOON);
    let out = env.run("runs", &["--json"]);
    assert!(out.status.success() && stderr(&out).is_empty(), "runs: {}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains(&big) && text.contains(&deep), "a context did not come back verbatim");
    let out = env.run("job", &["status", &id, "--json"]);
    assert!(out.status.success(), "job status: {}", stderr(&out));
}

#[test]
fn a_command_line_of_100000_arguments_reaches_the_job_whole() {
    let env = Env::new();
    let script = r#"echo "count $#"; eval "echo last \${$#}""#;
    let mut args: Vec<String> = vec!["sh".into(), "-c".into(), script.into(), "sh".into()];
    args.extend((0..100_000).map(|i| format!("a{i}")));
    let out = env.cmd("run").args(&args).output().expect("running run with 100,000 arguments");
    assert!(out.status.success(), "{}", stderr(&out));
    let id = id_of(&out);
    let j = env.wait_ended(&id, SOON);
    assert_eq!(j["state"], "done", "{j}");
    assert!(env.log(&id).contains("count 100000\nlast a99999\n"), "{}", env.log(&id).len());
    assert_eq!(j["argv"].as_array().map(Vec::len), Some(100_004));
    assert_eq!(j["argv"][100_003], "a99999");
}

#[test]
fn at_the_kernels_argument_limit_a_job_that_cannot_exec_fails_saying_so() {
    let env = Env::new();
    // A program path much longer than run's own, so that the job's exec
    // needs more room than run's did.
    let dir = env.root.join("d".repeat(150)).join("e".repeat(150));
    fs::create_dir_all(&dir).expect("making a deep directory");
    let prog = dir.join("true");
    std::os::unix::fs::symlink("/bin/true", &prog).expect("linking true");
    let prog = prog.display().to_string();
    let word = "x".repeat(30);
    let try_n = |n: usize| -> Option<Output> {
        match env.cmd("run").args(["--name", "limit"]).arg(&prog).args(std::iter::repeat_n(&word, n)).output() {
            Ok(out) => Some(out),
            Err(e) if e.raw_os_error() == Some(libc::E2BIG) => None,
            Err(e) => panic!("running run: {e}"),
        }
    };
    let (mut lo, mut hi) = (1_000usize, 200_000usize);
    assert!(try_n(lo).is_some() && try_n(hi).is_none(), "the kernel's limit is not between {lo} and {hi} words");
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if try_n(mid).is_some() {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let out = try_n(lo).expect("the kernel took this many words a moment ago");
    assert!(out.status.success(), "run with {lo} words: {}", stderr(&out));
    let id = id_of(&out);
    let j = env.wait_ended(&id, SOON);
    assert_eq!(j["state"], "failed", "{j}");
    assert_eq!(j["exit_code"], 126, "{j}");
    assert!(env.log(&id).to_lowercase().contains("argument list too long"), "the log does not say why");
}

#[test]
fn retry_runs_the_same_bytes_in_the_same_directory_when_neither_is_utf8() {
    let env = Env::new();
    let dir = env.root.join(OsStr::from_bytes(b"dir-\xfe"));
    fs::create_dir(&dir).expect("a directory whose name is not UTF-8");
    let arg = OsStr::from_bytes(b"arg-\xff\x80");
    let out = env
        .cmd("run")
        .current_dir(&dir)
        .args([OsStr::new("sh"), OsStr::new("-c"), OsStr::new("printf '%s|' \"$1\" >>got"), OsStr::new("sh"), arg])
        .output()
        .expect("run");
    let (id, _) = id_and_pid(out);
    env.wait_ended(&id, SOON);
    let out = env.run("job", &["retry", "--wait", &id]);
    assert!(out.status.success(), "job retry: {}{}", stdout(&out), stderr(&out));
    assert_eq!(fs::read(dir.join("got")).expect("got"), b"arg-\xff\x80|arg-\xff\x80|");
}

#[test]
fn context_is_stored_verbatim_and_shown_by_status_and_json() {
    let env = jobs();
    let ctx = r#"{"pr": 123, "env": "staging"}"#;
    let id = env.launch(&["true", "--context", ctx]);
    let raw = std::fs::read_to_string(env.job_dir(&id).join("meta.json")).expect("reading meta.json");
    assert!(raw.contains(&format!("\"context\": {ctx}")), "not verbatim in meta.json:\n{raw}");
    let human = stdout(&env.cli(&["status", &id]));
    assert!(human.contains(ctx), "{human}");
    let expected = json!({"pr": 123, "env": "staging"});
    assert_eq!(json_of(&env.cli(&["status", &id, "--json"]))["context"], expected);
    assert_eq!(json_of(&env.cli(&["list", "--json"]))[0]["context"], expected);
    assert_eq!(env.job(&id)["context"], expected);
}

// --- job retry -------------------------------------------------------------------

#[test]
fn retrying_a_failed_job_starts_it_again_with_the_same_settings_but_no_key() {
    let env = jobs();
    let sub = env.root.join("work");
    std::fs::create_dir_all(&sub).expect("mkdir");
    // Notifications go to a closed loopback port: never to the internet.
    let job = |dir: &Path, args: &[&str]| {
        let mut c = env.cmd("job");
        c.args(args).current_dir(dir).env("NTFY_SERVER", "http://127.0.0.1:1");
        output_within(c, SOON, &format!("job {args:?}"))
    };
    let settings = ["--name", "flaky", "--timeout", "1h", "--context", r#"{"try": 1}"#, "--notify", "my-topic"];
    let out = job(&sub, &[&["run", "pwd; exit 5", "--key", "once"][..], &settings].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let old = the_id(&out);
    env.wait_ended(&old, SOON);
    assert_eq!(env.state(&old), "failed");
    let out = job(&env.root, &["retry", &old]);
    assert!(out.status.success(), "{}", stderr(&out));
    let new = the_id(&out);
    assert_ne!(new, old);
    let (a, b) = (env.meta(&old), env.meta(&new));
    assert_eq!(b["notify_topic"], "my-topic");
    for field in ["command", "argv", "cwd", "name", "timeout_s", "context", "notify_topic"] {
        assert_eq!(a[field], b[field], "{field} differs");
    }
    assert_eq!(b["key"], Value::Null, "the key was copied");
    env.wait_ended(&new, SOON);
    assert!(env.log(&new).starts_with(&format!("{}\n", canonical(&sub))), "{}", env.log(&new));
    assert_eq!(env.state(&new), "failed");
    // By name (the newest of that name), waiting for the outcome.
    let again = job(&env.root, &["retry", "flaky", "--wait"]);
    assert_eq!(code(&again), 1);
    assert_eq!(env.ids().len(), 3);
}

#[test]
fn job_run_refuses_a_command_that_is_not_there_before_starting_anything() {
    let t = jobs();
    let out = t.cli(&["run", "nosuchcmd-xyz --flag"]);
    assert_eq!(code(&out), 127, "{out:?}");
    assert_eq!(stderr(&out).trim_end(), "job: nosuchcmd-xyz: command not found");
    assert!(stdout(&out).is_empty());
    let left: Vec<_> = std::fs::read_dir(&t.store).map(|rd| rd.flatten().collect()).unwrap_or_default();
    let names: Vec<_> = left.iter().map(|e| e.file_name()).filter(|n| n != ".keys").collect();
    assert!(names.is_empty(), "the store holds {names:?}");
}
