//! What a new user trips on in the first hour and a daily user reaches for
//! next: usage errors that name what is wrong, filters of the listings,
//! what removal prints, `--key` on a job that exists, default names of
//! shell strings, and following several jobs at once.

mod common;

use common::*;
use std::process::Output;
use std::time::Duration;

const SOON: Duration = Duration::from_secs(20);

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
    usage_error(&env, "run", &["--nmae", "x", "ls"], &["unknown flag --nmae", "put -- before it"]);
    usage_error(&env, "job", &["run", "ls", "-la"], &["unknown flag -la", "\"ls -la\"", "--"]);
    // ... while a flag after the command is the command's.
    let id = env.start(&["ls", "-la"]);
    assert_eq!(env.wait_ended(&id, SOON)["argv"], serde_json::json!(["ls", "-la"]));
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

#[test]
fn a_timeout_of_0_is_no_timeout_as_with_gnu_timeout() {
    let env = Env::new();
    let out = env.run("job", &["run", "--timeout", "0", "sleep 1; exit 4"]);
    let id = stdout(&out).trim().to_string();
    assert!(out.status.success(), "{}", stderr(&out));
    let j = env.wait_ended(&id, SOON);
    assert_eq!(j["state"], "failed", "{j}");
    assert_eq!(j["exit_code"], 4, "{j}");
    assert_eq!(j["timeout_s"], serde_json::Value::Null, "{j}");
}

fn ids(out: &Output) -> Vec<String> {
    stdout(out).lines().map(|l| l.split_whitespace().nth(1).unwrap_or_default().to_string()).collect()
}

#[test]
fn runs_and_job_list_filter_by_state_project_and_the_last_n_newest_last() {
    let env = Env::new();
    let project = env.root.join("proj");
    std::fs::create_dir_all(project.join(".git")).expect("making a project");
    let start_in = |dir: &std::path::Path, name: &str, cmd: &str| {
        let out = env.cmd("job").args(["run", "--name", name, cmd]).current_dir(dir).output().expect("job run");
        assert!(out.status.success(), "{}", stderr(&out));
        let id = stdout(&out).trim().to_string();
        env.wait_ended(&id, SOON);
        id
    };
    let a = start_in(&env.root, "a", "true");
    let b = start_in(&project, "b", "exit 3");
    let c = start_in(&project, "c", "true");
    let d = start_in(&env.root, "d", "exit 1");
    assert_eq!(ids(&env.run("runs", &[])), [a.clone(), b.clone(), c.clone(), d.clone()]);
    assert_eq!(ids(&env.run("runs", &["--state", "failed"])), [b.clone(), d.clone()]);
    assert_eq!(
        ids(&env.run("runs", &["--state", "failed", "--state", "done", "-n", "3"])),
        [b.clone(), c.clone(), d.clone()]
    );
    assert_eq!(ids(&env.run("runs", &["--last", "1"])), vec![d.clone()]);
    let here = env.cmd("runs").arg("--project").current_dir(project.join(".git")).output().expect("runs");
    assert_eq!(ids(&here), [b.clone(), c.clone()]);
    let json: serde_json::Value =
        serde_json::from_slice(&env.run("runs", &["--json", "--state", "done"]).stdout).expect("JSON");
    assert_eq!(json.as_array().map(Vec::len), Some(2), "{json}");
    assert_eq!(ids(&env.run("job", &["list", "--all", "-n", "2"])), [c.clone(), d.clone()]);
    assert_eq!(
        ids(&env.run("job", &["list", "--all", "--status", "failed", "--status", "done", "--last", "2"])),
        [c.clone(), d.clone()]
    );
    let none = env.run("runs", &["--state", "lost"]);
    assert!(none.status.success() && stdout(&none).is_empty(), "{}", stderr(&none));
}

#[test]
fn runrm_and_job_clean_print_each_id_removed_and_no_count_after_a_refusal() {
    let env = Env::new();
    let a = env.start(&["--name", "a", "true"]);
    let b = env.start(&["--name", "b", "true"]);
    let sleeper = env.start(&["--name", "sleeper", "sleep", "30"]);
    env.wait_ended(&a, SOON);
    env.wait_ended(&b, SOON);
    let refused = env.run("runrm", &[&sleeper]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("is running"), "{}", stderr(&refused));
    assert_eq!(stdout(&refused), "", "a refusal printed a count");
    let out = env.run("runrm", &[]);
    let text = stdout(&out);
    assert!(text.contains(&format!("removed {a}\n")) && text.contains(&format!("removed {b}\n")), "{text}");
    assert!(text.contains("removed 2 jobs"), "{text}");
    let c = env.start(&["--name", "c", "true"]);
    env.wait_ended(&c, SOON);
    let out = env.run("job", &["clean", "--all"]);
    assert!(stdout(&out).starts_with(&format!("removed {c}\nremoved 1 job,")), "{}", stdout(&out));
    assert!(env.run("job", &["stop", &sleeper]).status.success());
}

#[test]
fn job_run_with_a_key_that_exists_prints_its_id_and_says_nothing_new_started_and_whether_the_command_differs() {
    let env = Env::new();
    let first = env.run("job", &["run", "--key", "k1", "true"]);
    let id = stdout(&first).trim().to_string();
    assert!(stderr(&first).is_empty(), "{}", stderr(&first));
    let same = env.run("job", &["run", "--key", "k1", "true"]);
    assert_eq!(stdout(&same).trim(), id);
    assert!(stderr(&same).contains("no new job was started"), "{}", stderr(&same));
    assert!(!stderr(&same).contains("differs"), "{}", stderr(&same));
    let other = env.run("job", &["run", "--key", "k1", "false"]);
    assert_eq!(stdout(&other).trim(), id);
    assert!(stderr(&other).contains(&id) && stderr(&other).contains("its command differs: true"), "{}", stderr(&other));
    assert_eq!(env.jobs().len(), 1);
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

/// A job that prints a line, waits for `gate` to exist, prints another and
/// exits with `code`.
fn gated_job(env: &Env, name: &str, gate: &std::path::Path, code: i32) -> String {
    let script = format!(
        "echo {name} first; while [ ! -e '{}' ]; do sleep 0.05; done; echo {name} second; exit {code}",
        gate.display()
    );
    env.start(&["--name", name, "sh", "-c", &script])
}

/// Has process `pid` an inotify instance open (it has read what there was
/// and waits for more)?
fn watches_files(pid: u32) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return false };
    fds.flatten().any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy().contains("inotify")))
}

/// Runs `front args…` in the background; returns its output once it exits.
fn follower(env: &Env, front: &str, args: &[&str]) -> std::process::Child {
    env.cmd(front)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starting a follower")
}

#[test]
fn runlog_and_job_logs_follow_several_jobs_with_prefixes_until_all_end_exiting_as_the_worst() {
    let env = Env::new();
    let gate = env.root.join("gate");
    let a = gated_job(&env, "alpha", &gate, 0);
    let b = gated_job(&env, "beta", &gate, 0);
    let c = gated_job(&env, "gamma", &gate, 3);
    wait_until(SOON, "the first lines", || [&a, &b, &c].iter().all(|id| env.log(id).contains("first")));
    // Started before the gate opens: a follower that ended early would miss
    // the "second" lines, written after it.
    let followers = [
        follower(&env, "runlog", &["-f", "alpha", "beta", "gamma"]),
        follower(&env, "job", &["logs", "--follow", &a, &b]),
        follower(&env, "runlog", &["--running"]),
    ];
    wait_until(SOON, "every follower to watch its jobs", || followers.iter().all(|f| watches_files(f.id())));
    std::fs::write(&gate, "").expect("opening the gate");
    let outs: Vec<Output> = followers.into_iter().map(|f| f.wait_with_output().expect("a follower's output")).collect();
    for (i, out) in outs.iter().enumerate() {
        let text = stdout(out);
        let names: &[&str] = if i == 1 { &["alpha", "beta"] } else { &["alpha", "beta", "gamma"] };
        for name in names {
            for part in ["first", "second"] {
                let line = text.lines().find(|l| l.ends_with(&format!("{name} {part}")));
                let line = line.unwrap_or_else(|| panic!("follower {i}: no {name} {part} line in:\n{text}"));
                assert!(line.starts_with(&format!("{name} ")) && line.contains(" | "), "not prefixed: {line}");
            }
            assert!(text.lines().any(|l| l.starts_with(name) && l.contains("=== ")), "no end line: {text}");
        }
        let want = if i == 1 { 0 } else { 1 };
        assert_eq!(out.status.code(), Some(want), "follower {i}: {}", stderr(out));
    }
    // Names are padded to one width, so the output lines up.
    let text = stdout(&outs[0]);
    let bars: Vec<usize> = text.lines().filter_map(|l| l.find(" | ")).collect();
    assert!(bars.windows(2).all(|w| w[0] == w[1]), "{text}");
}

#[test]
fn runlog_running_with_nothing_running_says_so_and_succeeds() {
    let env = Env::new();
    let id = env.start(&["true"]);
    env.wait_ended(&id, SOON);
    let out = env.run("runlog", &["--running"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("no running jobs"), "{}", stderr(&out));
}

// --- the old run scripts' files ----------------------------------------------------

/// A child killed (and reaped) when the test ends, even by a failed assert.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_old_scripts_log_and_pid_files_are_listed_viewable_and_removable_never_while_running() {
    let env = Env::new();
    std::fs::create_dir_all(&env.store).expect("making the store");
    // An ended one: its pid is a process that has exited.
    let mut gone = std::process::Command::new("true").spawn().expect("running true");
    let gone_pid = gone.id();
    gone.wait().expect("reaping true");
    write(&env.store.join("build_20250101_120000.log"), "Command: make -j8\nStarted: then\ncompiling\nall done\n");
    write(&env.store.join("build_20250101_120000.pid"), &format!("{gone_pid}\n"));
    // A running one, started now.
    let mut live = KillOnDrop(std::process::Command::new("sleep").arg("60").spawn().expect("running sleep"));
    let now = stdout(&std::process::Command::new("date").arg("+%Y%m%d_%H%M%S").output().expect("date"));
    let live_id = format!("train_{}", now.trim());
    write(&env.store.join(format!("{live_id}.log")), "Command: python train.py\nepoch 1\n");
    write(&env.store.join(format!("{live_id}.pid")), &format!("{}\n", live.0.id()));
    let fresh = env.start(&["--name", "fresh", "true"]);
    env.wait_ended(&fresh, SOON);

    let listing = stdout(&env.run("runs", &[]));
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 3, "{listing}");
    assert!(lines[0].contains("build_20250101_120000") && lines[0].contains("ended, exit code unknown"), "{listing}");
    assert!(lines[0].contains("make -j8") && lines[0].contains("old run script"), "{listing}");
    assert!(lines.iter().any(|l| l.contains(&live_id) && l.contains("running") && l.contains("python train.py")));
    assert!(lines.iter().any(|l| l.contains(&fresh)), "{listing}");
    let running = stdout(&env.run("runs", &["--state", "running"]));
    assert!(running.contains(&live_id) && !running.contains("build_2025"), "{running}");
    assert_eq!(env.jobs().len(), 1, "the old scripts' jobs are not in --json");

    let out = env.run("runlog", &["build"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("compiling\nall done\n"), "{}", stdout(&out));
    let out = env.run("runlog", &[&live_id, "--no-follow"]);
    assert!(stdout(&out).contains("epoch 1"), "{}", stdout(&out));

    let refused = env.run("runrm", &[&live_id]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("is running"), "{}", stderr(&refused));
    let out = env.run("runrm", &[]);
    assert!(stdout(&out).contains("removed build_20250101_120000 (old run script)"), "{}", stdout(&out));
    assert!(
        !env.store.join("build_20250101_120000.log").exists() && !env.store.join("build_20250101_120000.pid").exists()
    );
    assert!(env.store.join(format!("{live_id}.log")).exists(), "runrm removed a running old job's log");

    live.0.kill().expect("killing sleep");
    live.0.wait().expect("reaping sleep");
    let out = env.run("runrm", &[&live_id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!env.store.join(format!("{live_id}.pid")).exists());
}

/// The keys of the first JSON object in `text`, in the order written.
fn top_keys(text: &str, indent: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix(indent).filter(|r| r.starts_with('"')))
        .filter_map(|r| r[1..].split('"').next().map(String::from))
        .collect()
}

#[test]
fn job_status_json_has_the_keys_of_runs_json_in_the_same_order_then_log_size() {
    let env = Env::new();
    let id = env.start(&["--name", "k", "true"]);
    env.wait_ended(&id, SOON);
    let listing = stdout(&env.run("runs", &["--json"]));
    let status = stdout(&env.run("job", &["status", &id, "--json"]));
    let mut want = top_keys(&listing, "    ");
    assert!(want.len() > 10, "{listing}");
    want.push("log_size".into());
    want.push("log_dropped".into());
    assert_eq!(top_keys(&status, "  "), want, "{status}");
}
