//! What the listings show: `runs` lines and filters, `job list` per
//! project, `job status` of a job and of the system, and the JSON of
//! each.

use crate::common::*;
use serde_json::{json, Value};
use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::process::CommandExt;
use std::process::Output;

/// Output of `CMD` run in a pseudo-terminal (by `script`), stdout and
/// stderr mixed as a terminal shows them.
fn on_a_terminal(env: &Env, shell_cmd: &str, no_color: bool) -> String {
    let mut c = env.tool("script");
    c.args(["-qfec", shell_cmd, "/dev/null"]);
    if !no_color {
        c.env_remove("NO_COLOR");
    }
    let out = c.output().expect("running script");
    assert!(out.status.success(), "{shell_cmd} on a terminal failed: {}{}", stdout(&out), stderr(&out));
    stdout(&out)
}

fn ids(out: &Output) -> Vec<String> {
    stdout(out).lines().map(|l| l.split_whitespace().nth(1).unwrap_or_default().to_string()).collect()
}

/// The keys of the first JSON object in `text`, in the order written.
fn top_keys(text: &str, indent: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix(indent).filter(|r| r.starts_with('"')))
        .filter_map(|r| r[1..].split('"').next().map(String::from))
        .collect()
}

/// The keys of the compact JSON object on one line, in order.
fn line_keys(line: &str) -> Vec<String> {
    let (mut keys, mut depth, mut in_str, mut escaped, mut key) = (Vec::new(), 0, false, false, None::<String>);
    let mut expect_key = false;
    for c in line.chars() {
        if in_str {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => {
                    in_str = false;
                    if let Some(k) = key.take() {
                        keys.push(k);
                    }
                    continue;
                }
                _ => {}
            }
            if let Some(k) = key.as_mut() {
                k.push(c);
            }
            continue;
        }
        match c {
            '{' | '[' => {
                depth += 1;
                expect_key = c == '{' && depth == 1;
            }
            '}' | ']' => depth -= 1,
            ',' => expect_key = depth == 1,
            '"' => {
                in_str = true;
                key = expect_key.then(String::new);
                expect_key = false;
            }
            _ => {}
        }
    }
    keys
}

#[test]
fn runs_lines_show_mark_id_pid_state_and_command_without_colour_off_a_terminal() {
    if !need_tool("script") {
        return;
    }
    let env = Env::new();
    let mut left = Leftovers::default();
    let gate = env.root.join("gate");
    let cmd = started_gated(&gate, 0);
    let running = launch(&env, &[&cmd]);
    left.add(running.pid);
    let done = launch(&env, &["true"]);
    let failed = launch(&env, &["exit 2"]);
    env.wait_ended(&done.id, SOON);
    env.wait_ended(&failed.id, SOON);

    let plain = stdout(&env.run("runs", &[]));
    let no_color_unset = env.cmd("runs").env_remove("NO_COLOR").output().expect("running runs");
    for text in [&plain, &stdout(&no_color_unset)] {
        assert!(!text.contains('\u{1b}'), "colour in a pipe: {text:?}");
        let line = |id: &str| text.lines().find(|l| l.contains(id)).unwrap_or_default().to_string();
        let l = line(&running.id);
        assert!(l.starts_with(&format!("● {} (PID: {}) - running ", running.id, running.pid)), "{l}");
        assert!(l.ends_with(&format!("  {cmd}")), "{l}");
        let l = line(&done.id);
        assert!(l.starts_with(&format!("○ {} (PID: {}) - done ", done.id, done.pid)), "{l}");
        assert!(l.ends_with("  true"), "{l}");
        let l = line(&failed.id);
        assert!(l.starts_with(&format!("✗ {} (PID: {}) - failed (exit 2) ", failed.id, failed.pid)), "{l}");
        assert!(l.ends_with("  exit 2"), "{l}");
        let order: Vec<&str> = text.lines().map(|l| l.split(' ').nth(1).unwrap_or_default()).collect();
        assert_eq!(order, [&running.id, &done.id, &failed.id], "not newest last");
    }

    let runs = bin("runs").display().to_string();
    let tty_plain = on_a_terminal(&env, &runs, true);
    assert!(tty_plain.contains(&done.id) && !tty_plain.contains('\u{1b}'), "NO_COLOR ignored: {tty_plain:?}");
    let tty_colour = on_a_terminal(&env, &runs, false);
    assert!(tty_colour.contains('\u{1b}'), "no colour on a terminal: {tty_colour:?}");
    open(&gate);
    env.wait_ended(&running.id, SOON);
}

#[test]
fn a_command_holding_an_escape_byte_is_shown_escaped() {
    if !need_tool("script") {
        return;
    }
    let env = Env::new();
    let job = launch(&env, &["printf", "x\u{1b}[2Jy\n"]);
    env.wait_ended(&job.id, SOON);
    let text = stdout(&env.run("runs", &[]));
    assert!(text.contains(&job.id), "{text}");
    assert!(!text.contains('\u{1b}'), "a raw ESC reached the output: {text:?}");
    let tty = on_a_terminal(&env, &bin("runs").display().to_string(), true);
    assert!(tty.contains(&job.id) && !tty.contains('\u{1b}'), "a raw ESC reached the terminal: {tty:?}");
    assert_eq!(env.job(&job.id)["argv"][1], "x\u{1b}[2Jy\n");
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
fn job_status_json_has_the_keys_of_runs_json_in_the_same_order_then_log_size_and_queue_place() {
    let env = Env::new();
    let id = env.start(&["--name", "k", "true"]);
    env.wait_ended(&id, SOON);
    let listing = stdout(&env.run("runs", &["--json"]));
    let status = stdout(&env.run("job", &["status", &id, "--json"]));
    // One job a line: the keys of its object, in order.
    let line = listing.lines().nth(1).expect("a job's line");
    assert_eq!((listing.lines().next(), listing.lines().nth(2)), (Some("["), Some("]")), "{listing}");
    let mut want = line_keys(line);
    assert!(want.len() > 10, "{listing}");
    want.push("log_size".into());
    want.push("log_dropped".into());
    want.push("queue_place".into());
    want.push("queue_paused".into());
    assert_eq!(top_keys(&status, "  "), want, "{status}");
}

#[test]
fn a_job_with_a_command_line_as_long_as_the_kernel_takes_can_be_listed_and_waited_for() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit fills in a valid struct.
    unsafe { libc::getrlimit(libc::RLIMIT_STACK, &mut lim) };
    let room = lim.rlim_max == libc::RLIM_INFINITY || lim.rlim_max >= 32 << 20;
    let user = nix::unistd::User::from_uid(nix::unistd::getuid()).ok().flatten().map_or("*".into(), |u| u.name);
    let to_run = as_root(
        &format!("lets {user} raise the stack limit without bound, from the next login on"),
        &format!("echo '{user} hard stack unlimited' >> /etc/security/limits.conf, then log in again"),
    );
    if !need(room, "the hard stack limit keeps arguments under 6 MiB (the kernel takes a quarter of it)", &to_run) {
        return;
    }
    let env = Env::new();
    // 44 arguments of 128 KiB (the kernel's limit for one) of a byte JSON
    // writes as six: 5.5 MiB of arguments, kept twice in meta.json (argv
    // and the quoted command), about 66 MiB.
    let arg = OsString::from_vec(vec![1u8; 128 * 1024 - 1]);
    let mut c = env.cmd("run");
    c.args(["--name", "huge", "true"]).args(std::iter::repeat_n(&arg, 44));
    // The stack limit sets how much the kernel takes (a quarter of it, at
    // most 6 MiB): raise it as `ulimit -s unlimited` would.
    // SAFETY: getrlimit and setrlimit are async-signal-safe.
    unsafe {
        c.pre_exec(|| {
            let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            libc::getrlimit(libc::RLIMIT_STACK, &mut lim);
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_STACK, &lim);
            Ok(())
        });
    }
    let out = c.output().expect("running run");
    assert!(out.status.success(), "run with 5.5 MiB of arguments: {}", stderr(&out));
    let id = stdout(&out).split_whitespace().next().expect("an id").to_string();
    let size = fs::metadata(env.job_dir(&id).join("meta.json")).expect("meta.json").len();
    assert!(size > 64 << 20, "meta.json is only {size} bytes: the test no longer tests the limit");
    let mut c = env.cmd("job");
    c.args(["wait", &id]);
    let out = output_within(c, SOON, "job wait");
    assert!(out.status.success(), "job wait: {}", stderr(&out));
    let out = env.run("runs", &["--json"]);
    assert!(out.status.success() && stderr(&out).is_empty(), "runs --json: {}", stderr(&out));
    let jobs: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let job = jobs.as_array().and_then(|a| a.iter().find(|j| j["id"] == *id)).expect("the job is listed");
    assert_eq!(job["state"], "done");
    assert_eq!(job["argv"].as_array().map(Vec::len), Some(45));
}

// --- job list --------------------------------------------------------------------

#[test]
fn job_list_shows_the_jobs_of_the_current_project() {
    let env = jobs();
    let a = env.root.join("alpha");
    let deep = a.join("src/deep");
    let b = env.root.join("beta");
    std::fs::create_dir_all(&deep).expect("mkdir");
    std::fs::create_dir_all(&b).expect("mkdir");
    git_init(&a);
    let in_a =
        env.launch_in(&deep, &["true", "--name", "alpha-job", "--key", "ka", "--context", "[1, 2]", "--timeout", "1h"]);
    let in_b = env.launch_in(&b, &["true", "--name", "beta-job"]);
    for dir in [&a, &deep] {
        let listed = json_of(&env.cli_in(dir, &["list", "--json"]));
        assert_eq!(ids_of(&listed), vec![in_a.clone()], "from {}", dir.display());
        let j = &listed[0];
        assert_eq!(j["project"], canonical(&a));
        assert_eq!(j["cwd"], canonical(&deep));
        assert_eq!(j["name"], "alpha-job");
        assert_eq!(j["key"], "ka");
        assert_eq!(j["context"], json!([1, 2]));
        assert_eq!(j["timeout_s"], 3600);
        let human = stdout(&env.cli_in(dir, &["list"]));
        assert!(human.contains(&in_a) && !human.contains(&in_b), "{human}");
    }
    let listed = json_of(&env.cli_in(&b, &["list", "--json"]));
    assert_eq!(ids_of(&listed), vec![in_b.clone()]);
    assert_eq!(listed[0]["project"], canonical(&b));
    assert_eq!(listed[0]["key"], Value::Null);
    let all = ids_of(&json_of(&env.cli_in(&b, &["list", "--all", "--json"])));
    assert!(all.contains(&in_a) && all.contains(&in_b), "{all:?}");
    let empty = env.cli(&["list"]);
    assert!(empty.status.success());
    assert_eq!(stdout(&empty), "", "jobs of another project were listed");
    assert!(stderr(&empty).contains("no jobs"), "{}", stderr(&empty));
}

#[test]
fn job_list_status_filters_by_every_state() {
    let env = jobs();
    let done = env.ended("true", "d");
    let failed = env.ended("exit 3", "f");
    let timeout = env.launch(&["sleep 30", "--timeout", "1s", "--name", "t"]);
    env.wait_ended(&timeout, SOON);
    let stopped = env.launch(&["sleep 300", "--name", "s"]);
    assert!(env.cli(&["stop", &stopped]).status.success());
    let killed = env.launch(&["sleep 300", "--name", "k"]);
    kill_group(env.pid(&killed));
    env.wait_ended(&killed, SOON);
    let lost = env.launch(&["sleep 300", "--name", "l"]);
    let watcher = env.meta(&lost)["watcher_pid"].as_i64().expect("a watcher pid");
    sigkill(watcher);
    kill_group(env.pid(&lost));
    let running = env.launch(&["sleep 300", "--name", "r"]);
    env.wait_ended(&lost, SOON);
    for (state, id) in [
        ("running", &running),
        ("done", &done),
        ("failed", &failed),
        ("stopped", &stopped),
        ("timeout", &timeout),
        ("killed", &killed),
        ("lost", &lost),
    ] {
        let listed = json_of(&env.cli(&["list", "--status", state, "--json"]));
        assert_eq!(ids_of(&listed), vec![id.clone()], "--status {state}");
        assert_eq!(listed[0]["state"], state);
        let human = stdout(&env.cli(&["list", "--all", "--status", state]));
        assert_eq!(human.lines().count(), 1, "--status {state}: {human}");
        assert!(human.contains(id.as_str()), "--status {state}: {human}");
    }
}

// --- job status ------------------------------------------------------------------

#[test]
fn job_status_shows_everything_known_of_a_job() {
    let env = jobs();
    let out = env
        .cmd("job")
        .args(["run", "echo some output; exit 3", "--name", "deploy", "--timeout", "1h", "--key", "k-9"])
        .args(["--context", r#"{"pr": 7}"#, "--notify", "my-topic"])
        .env("NTFY_SERVER", "http://127.0.0.1:1")
        .env("NTFY_TIMEOUT", "5")
        .output()
        .expect("running job run");
    assert!(out.status.success(), "{}", stderr(&out));
    let id = the_id(&out);
    env.wait_ended(&id, SOON);
    wait_until(SOON, "the notification outcome", || env.job_dir(&id).join("notified").exists());
    let human = stdout(&env.cli(&["status", &id]));
    let log = env.job_dir(&id).join("log");
    let size = std::fs::metadata(&log).expect("the log").len();
    for want in [
        format!("id  {id}"),
        "name  deploy".into(),
        "command  echo some output; exit 3".into(),
        "state  failed (exit 3)".into(),
        "started  ".into(),
        "ended  ".into(),
        "duration  ".into(),
        format!("pid  {}", env.pid(&id)),
        format!("cwd  {}", canonical(&env.root)),
        format!("project  {}", canonical(&env.root)),
        format!("log  {} ({size} B)", log.display()),
        "timeout  1h 00m".into(),
        "key  k-9".into(),
        r#"context  {"pr": 7}"#.into(),
        "notify  my-topic failed: ".into(),
    ] {
        assert!(human.contains(&want), "no {want:?} in:\n{human}");
    }
    let j = json_of(&env.cli(&["status", &id, "--json"]));
    assert_eq!(j["id"], id.as_str());
    assert_eq!(j["state"], "failed");
    assert_eq!(j["exit_code"], 3);
    assert_eq!(j["signal"], Value::Null);
    assert_eq!(j["log_size"], size);
    assert_eq!(j["key"], "k-9");
    assert_eq!(j["context"], json!({"pr": 7}));
    assert_eq!(j["timeout_s"], 3600);
    assert_eq!(j["notify"]["topic"], "my-topic");
    assert_eq!(j["notify"]["state"], "failed");
    for field in ["command", "argv", "cwd", "project", "host", "user", "started_at", "ended_at", "duration_s", "pid"] {
        assert!(!j[field].is_null(), "{field} is missing: {j}");
    }
}

#[test]
fn job_status_without_an_id_shows_the_system() {
    let env = jobs();
    let done = env.ended("true", "d");
    let failed = env.ended("false", "f");
    let running = env.launch(&["sleep 300", "--name", "r"]);
    let human = stdout(&env.cli(&["status"]));
    assert!(human.contains(&env.store.display().to_string()), "{human}");
    assert!(human.contains("jobs     3: 1 running, 1 done, 1 failed"), "{human}");
    assert!(human.contains(&running) && !human.contains(&done) && !human.contains(&failed), "{human}");
    assert!(human.contains("NTFY_TOPIC is not set"), "{human}");
    let with_topic = env.cmd("job").arg("status").env("NTFY_TOPIC", "my-topic").output().expect("job status");
    assert!(stdout(&with_topic).contains("NTFY_TOPIC=my-topic"), "{}", stdout(&with_topic));

    let j = json_of(&env.cli(&["status", "--json"]));
    assert_eq!(j["store"], env.store.display().to_string());
    assert_eq!(j["jobs"], 3);
    assert_eq!(j["by_state"]["running"], 1);
    assert_eq!(j["by_state"]["done"], 1);
    assert_eq!(j["by_state"]["failed"], 1);
    assert_eq!(j["by_state"]["lost"], 0);
    assert_eq!(ids_of(&j["running"]), vec![running]);
    assert_eq!(j["ntfy_topic"], Value::Null);
    assert!(j["disk_bytes"].as_u64().expect("disk_bytes") > 0);
    let with_topic = env.cmd("job").args(["status", "--json"]).env("NTFY_TOPIC", "my-topic").output().expect("job");
    assert_eq!(json_of(&with_topic)["ntfy_topic"], "my-topic");
}
