//! The completions at work: each script, loaded in its real shell (bash
//! and fish called as on TAB, zsh typed into in tmux), offers the ids and
//! names of the jobs in the store where a job goes, and only those the
//! command can act on (`runs --complete-ids=active|ended|all`).

use super::path_with_binaries;
use crate::common::*;
use std::time::Duration;

/// Completes the last word of `words` with the bash completion of
/// `words[0]` from completions/bash, as bash does on TAB: through the
/// function `complete -p` names. Returns the candidates.
fn bash_complete(env: &Env, words: &[&str]) -> Vec<String> {
    let script = r#"
        source "$1"; shift
        COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 ))
        COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
        fn=$(complete -p "$1" | sed -E 's/.* -F ([^ ]+) .*/\1/')
        "$fn" "$1" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
        printf '%s\n' "${COMPREPLY[@]}"
    "#;
    let file = repo().join(format!("completions/bash/{}", words[0]));
    let out = env
        .tool("bash")
        .arg("-c")
        .arg(script)
        .arg("bash")
        .arg(file)
        .args(words)
        .env("PATH", path_with_binaries())
        .output()
        .expect("running bash");
    ok(&out, &format!("bash completing {words:?}"));
    stdout(&out).lines().map(String::from).collect()
}

/// Two ended jobs, `alpha` and `beta` (ended: `runrm` and `job retry`
/// offer only those): their ids.
fn two_jobs(env: &Env) -> (String, String) {
    let a = env.start(&["--name", "alpha", "true"]);
    let b = env.start(&["--name", "beta", "true"]);
    env.wait_ended(&a, SOON);
    env.wait_ended(&b, SOON);
    (a, b)
}

#[test]
fn completing_runlog_in_bash_offers_the_ids_and_names_of_the_jobs_in_the_store() {
    if !need_tool("bash") {
        return;
    }
    let env = Env::new();
    let (a, b) = two_jobs(&env);
    let mut got = bash_complete(&env, &["runlog", ""]);
    got.sort();
    let mut want = vec![a.clone(), b.clone(), "alpha".to_string(), "beta".to_string()];
    want.sort();
    assert_eq!(got, want);
    assert_eq!(bash_complete(&env, &["runlog", "be"]), vec![b.clone(), "beta".to_string()]);
    // A word where no job goes gets clap's completions, not jobs.
    let after_tail = bash_complete(&env, &["runlog", "--tail", ""]);
    assert!(!after_tail.contains(&a), "the value of --tail was completed with job ids: {after_tail:?}");
    assert!(bash_complete(&env, &["runlog", "--"]).contains(&"--no-follow".to_string()));
    let after_one = bash_complete(&env, &["runlog", &a, ""]);
    assert!(after_one.contains(&b), "runlog follows several jobs, yet no second was offered: {after_one:?}");
}

#[test]
fn completing_runrm_and_the_job_subcommands_in_bash_offers_job_ids() {
    if !need_tool("bash") {
        return;
    }
    let env = Env::new();
    let (a, b) = two_jobs(&env);
    for words in [&["runrm", &a, ""][..], &["job", "logs", ""], &["job", "status", ""], &["job", "retry", ""]] {
        let got = bash_complete(&env, words);
        assert!(
            got.contains(&a) && got.contains(&b) && got.contains(&"alpha".to_string()),
            "{words:?} offered {got:?}"
        );
    }
    let subcommands = bash_complete(&env, &["job", ""]);
    assert!(
        subcommands.contains(&"logs".to_string()) && !subcommands.contains(&a),
        "job <TAB> offered {subcommands:?}"
    );
    let run_options = bash_complete(&env, &["job", "run", "--"]);
    assert!(run_options.contains(&"--timeout".to_string()), "job run --<TAB> offered {run_options:?}");
}

/// A running job named `busy` and an ended one named `over`: their ids.
fn running_and_ended(env: &Env) -> (String, String) {
    let over = env.start(&["--name", "over", "true"]);
    env.wait_ended(&over, SOON);
    (env.start(&["--name", "busy", "sleep", "600"]), over)
}

/// Which of the running job (`busy`) and the ended one (`over`) `got`
/// offers, by id and name: "both", "running", "ended" or "none".
fn offered(got: &[String], running: &str, ended: &str) -> &'static str {
    let has = |id: &str, name: &str| {
        let (i, n) = (got.iter().any(|g| g == id), got.iter().any(|g| g == name));
        assert_eq!(i, n, "offered the id or the name of {id} but not both: {got:?}");
        i
    };
    match (has(running, "busy"), has(ended, "over")) {
        (true, true) => "both",
        (true, false) => "running",
        (false, true) => "ended",
        (false, false) => "none",
    }
}

/// What each command can act on: stop and wait a running (or queued)
/// job, runrm and retry an ended one, the rest any.
const OFFERS: [(&str, &str); 7] = [
    ("job stop ", "running"),
    ("job wait ", "running"),
    ("runrm ", "ended"),
    ("job retry ", "ended"),
    ("job status ", "both"),
    ("job logs ", "both"),
    ("runlog ", "both"),
];

#[test]
fn completion_in_bash_offers_only_the_jobs_the_command_can_act_on() {
    if !need_tool("bash") {
        return;
    }
    let env = Env::new();
    let (running, ended) = running_and_ended(&env);
    for (line, want) in OFFERS {
        let words: Vec<&str> = line.split(' ').collect();
        let got = bash_complete(&env, &words);
        assert_eq!(offered(&got, &running, &ended), want, "'{line}<TAB>' offered {got:?}");
    }
}

#[test]
fn completion_in_fish_offers_only_the_jobs_the_command_can_act_on() {
    if !need_tool("fish") {
        return;
    }
    let env = Env::new();
    let (running, ended) = running_and_ended(&env);
    for (line, want) in OFFERS {
        let got = fish_complete(&env, line);
        assert_eq!(offered(&got, &running, &ended), want, "'{line}<TAB>' offered {got:?}");
    }
}

/// Completes `line` with the fish completion of its first word from
/// completions/fish, as fish does on TAB. Returns the candidates.
fn fish_complete(env: &Env, line: &str) -> Vec<String> {
    let name = line.split(' ').next().expect("a command line has a word");
    let file = repo().join(format!("completions/fish/{name}.fish"));
    let out = env
        .tool("fish")
        .arg("--no-config")
        .arg("-c")
        .arg("source $argv[1]; and complete -C $argv[2]")
        .arg(file)
        .arg(line)
        .env("PATH", path_with_binaries())
        .output()
        .expect("running fish");
    ok(&out, &format!("fish completing '{line}'"));
    stdout(&out).lines().map(|l| l.split('\t').next().unwrap_or_default().to_string()).collect()
}

#[test]
fn completing_job_ids_in_fish_offers_the_jobs_in_the_store() {
    if !need_tool("fish") {
        return;
    }
    let env = Env::new();
    let (a, b) = two_jobs(&env);
    let complete = |line: &str| fish_complete(&env, line);
    for line in ["runlog ", "runrm ", "job logs ", "job logs alpha "] {
        let got = complete(line);
        assert!(got.contains(&a) && got.contains(&b) && got.contains(&"beta".to_string()), "'{line}' offered {got:?}");
    }
    let mut narrowed = complete("runlog al");
    narrowed.sort();
    assert_eq!(narrowed, vec!["alpha".to_string(), a.clone()]);
    let after_tail = complete("runlog --tail ");
    assert!(!after_tail.contains(&a), "the value of --tail was completed with job ids: {after_tail:?}");
    assert!(!complete("job ").contains(&a), "job <TAB> offered job ids");
}

#[test]
fn completing_runlog_in_zsh_lists_the_jobs_in_the_store() {
    if !need_tools(&["zsh", "tmux"]) {
        return;
    }
    let env = Env::new();
    let (a, b) = two_jobs(&env);
    if let Err(last) = zsh_tab(&env, "runlog ", |s| s.contains(&a) && s.contains(&b)) {
        panic!("zsh did not list {a} and {b}; the screen:\n{last}");
    }
}

#[test]
fn completing_job_stop_in_zsh_offers_the_running_job_and_not_the_ended_one() {
    if !need_tools(&["zsh", "tmux"]) {
        return;
    }
    let env = Env::new();
    let (running, ended) = running_and_ended(&env);
    // The id and the name `busy` share `busy`: zsh inserts that, or lists
    // both; with the ended job offered too it would list three.
    match zsh_tab(&env, "job stop ", |s| s.contains(&running) || s.contains("ready> job stop busy")) {
        Ok(screen) => assert!(!screen.contains(&ended), "job stop <TAB> offered {ended}:\n{screen}"),
        Err(last) => panic!("zsh did not offer {running}; the screen:\n{last}"),
    }
}

/// zsh's completion only runs in an interactive shell, so this types
/// `typed` and TAB into one, in tmux, and waits for the screen to show
/// `until`: the screen then, or (timed out) the last one seen.
fn zsh_tab(env: &Env, typed: &str, until: impl Fn(&str) -> bool) -> Result<String, String> {
    let zdotdir = env.root.join("zdotdir");
    std::fs::create_dir_all(&zdotdir).expect("creating ZDOTDIR");
    let rc = format!(
        "fpath=({} $fpath)\nautoload -U compinit && compinit -u -d {}\nPS1='ready> '\n",
        repo().join("completions/zsh").display(),
        env.root.join("zcompdump").display()
    );
    crate::common::write(&zdotdir.join(".zshrc"), &rc);
    let socket = env.root.join("tmux.sock");
    let tmux = |args: &[&str]| env.tool("tmux").arg("-S").arg(&socket).args(args).output().expect("running tmux");
    let shell = format!(
        "env PATH='{}' RUN_DIR='{}' ZDOTDIR='{}' zsh -i",
        path_with_binaries(),
        env.store.display(),
        zdotdir.display()
    );
    let out = tmux(&["new-session", "-d", "-s", "z", "-x", "150", "-y", "40", &shell]);
    ok(&out, "tmux new-session");
    let screen = || stdout(&tmux(&["capture-pane", "-p", "-t", "z"]));
    // The tmux server is killed even when the wait fails.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_until(Duration::from_secs(20), "the zsh prompt", || screen().contains("ready>"));
        tmux(&["send-keys", "-t", "z", "-l", typed]);
        tmux(&["send-keys", "-t", "z", "Tab"]);
        wait_until(Duration::from_secs(20), "zsh to complete", || until(&screen()));
    }));
    let last = screen();
    tmux(&["kill-server"]);
    result.map(|_| last.clone()).map_err(|_| last)
}

#[test]
fn runs_complete_ids_prints_nothing_and_succeeds_without_a_store() {
    let env = Env::new();
    let out = env.run("runs", &["--complete-ids"]);
    ok(&out, "runs --complete-ids with no store");
    assert_eq!(stdout(&out), "");
    let (a, _) = two_jobs(&env);
    let out = env.run("runs", &["--complete-ids"]);
    assert!(stdout(&out).lines().any(|l| l == a), "runs --complete-ids printed {:?}", stdout(&out));
    let help = stdout(&env.run("runs", &["--help"]));
    assert!(!help.contains("complete-ids"), "the hidden flag shows in runs --help");
}

/// A ~/.ssh/config with two hosts and a pattern.
fn ssh_config(env: &Env) {
    std::fs::create_dir_all(env.home.join(".ssh")).expect("making ~/.ssh");
    write(&env.home.join(".ssh/config"), "Host gpu1 gpu2\n  User me\nHost *.lab\n  User lab\n");
}

#[test]
fn completing_on_offers_local_all_run_hosts_and_the_hosts_of_the_ssh_config() {
    let env = Env::new();
    ssh_config(&env);
    let out = env.cmd("runs").arg("--complete-hosts").env("RUN_HOSTS", "build,gpu1").output().unwrap();
    assert_eq!(stdout(&out), "local\nall\nbuild\ngpu1\ngpu2\n", "{out:?}");
    let mut got = bash_complete(&env, &["runs", "--on", ""]);
    got.sort();
    assert_eq!(got, ["all", "gpu1", "gpu2", "local"]);
    assert_eq!(bash_complete(&env, &["job", "run", "--on", "gp"]), ["gpu1", "gpu2"]);
    let mut listed = bash_complete(&env, &["runrm", "--on", "local,g"]);
    listed.sort();
    assert_eq!(listed, ["local,gpu1", "local,gpu2"]);
    if !need_tool("fish") {
        return;
    }
    let mut got = fish_complete(&env, "run --on gp");
    got.sort();
    assert_eq!(got, ["gpu1", "gpu2"]);
    let listed = fish_complete(&env, "job list --on local,gpu");
    assert!(listed.contains(&"local,gpu2".to_string()), "{listed:?}");
}
