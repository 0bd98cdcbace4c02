//! The examples in the documentation print what the documentation shows:
//! each example whose output is the same on every run but for ids' times,
//! pids, durations, sizes and the home, host and user names is run in a
//! temporary store and compared with those masked: README's quick tour,
//! docs/queues.md's GPU queue. (The others, such as README's `runs`
//! listing of jobs that ran for an hour, show output no test can
//! reproduce.)

use crate::common::*;

/// The fenced block that follows the first line starting with `after`.
fn block_after<'a>(doc: &'a str, after: &str) -> &'a str {
    let from = doc.find(after).unwrap_or_else(|| panic!("no {after:?} in the document"));
    let rest = &doc[from..];
    let open = rest.find("```").expect("a block follows");
    let body = &rest[open..];
    let body = &body[body.find('\n').expect("a fence line") + 1..];
    &body[..body.find("```").expect("the block ends")]
}

/// A line of `runs` with what differs from run to run masked: the id down
/// to its name (`train_…`), the pid, how long a running job has run.
fn masked(line: &str) -> String {
    let (head, command) = line.split_once("  ").unwrap_or((line, ""));
    let mut words: Vec<String> = head.split(' ').map(String::from).collect();
    if let Some(id) = words.get_mut(1) {
        *id = format!("{}_…", id.split('_').next().unwrap_or_default());
    }
    if let Some(pid) = words.iter_mut().find(|w| w.ends_with(')') && w[..w.len() - 1].parse::<u32>().is_ok()) {
        *pid = "N)".into();
    }
    if let Some(at) = words.iter().position(|w| w == "running") {
        words.truncate(at + 1);
    }
    format!("{}  {command}", words.join(" "))
}

#[test]
fn the_gpu_queue_example_in_docs_queues_md_prints_what_it_shows() {
    let doc = std::fs::read_to_string(repo().join("docs/queues.md")).expect("reading docs/queues.md");
    let example = block_after(&doc, "GPU experiments, two at a time");
    let shown: Vec<String> = block_after(&doc, "`runs` then shows").lines().map(masked).collect();

    let env = Env::new();
    // A `python` that runs until stopped, so that two run and four wait.
    let stubs = env.root.join("stubs");
    std::fs::create_dir_all(&stubs).expect("making the stubs' directory");
    let python = stubs.join("python");
    std::fs::write(&python, "#!/bin/sh\nexec sleep 600\n").expect("writing the python stub");
    std::fs::set_permissions(&python, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let path = format!("{}:{}:/usr/bin:/bin", stubs.display(), bin("run").parent().expect("a directory").display());
    let out = env.tool("sh").arg("-c").arg(example).env("PATH", &path).output().expect("running the example");
    ok(&out, "the example");

    let runs = env.run("runs", &[]);
    ok(&runs, "runs");
    let real: Vec<String> = stdout(&runs).lines().map(masked).collect();
    assert_eq!(real, shown, "runs printed:\n{}", stdout(&runs));
}

/// A line with what differs between machines and runs masked: the home
/// directory, the host and user names, then every number (times, pids,
/// sizes, durations) as `N` and a size's unit as `?`.
fn masked_line(line: &str, home: &str, host: &str, user: &str) -> String {
    let line = line.replace(home, "/home/you").replace(&format!(" on {host} as {user}"), " on buildbox as you");
    let mut out = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            while chars.peek().is_some_and(|d| d.is_ascii_digit() || *d == '.') {
                chars.next();
            }
            out.push('N');
            // A size's unit (1.7M, 980K) depends on the size.
            if chars.peek().is_some_and(|u| "KMG".contains(*u)) {
                chars.next();
                out.push('?');
            }
        } else {
            out.push(c);
        }
    }
    // What a loaded machine may show otherwise: `runs` right after the
    // end's `status` and before meta.json has what the job used (peak
    // memory), and an id with a suffix where its second was taken.
    out.replace("N KiB", "N ?iB")
        .replace("N MiB", "N ?iB")
        .replace("N GiB", "N ?iB")
        .replace("done Ns N?  ", "done Ns  ")
        .replace("_N_N_N", "_N_N")
}

#[test]
fn the_quick_tour_in_readme_prints_what_it_shows() {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("reading README.md");
    let tour = block_after(&readme, "## A quick tour");
    let env = Env::new();
    let src = env.home.join("src");
    std::fs::create_dir_all(&src).expect("making ~/src");
    let home = env.home.display().to_string();
    let host = stdout(&std::process::Command::new("hostname").output().expect("running hostname")).trim().to_string();
    let user = stdout(&std::process::Command::new("id").arg("-un").output().expect("running id")).trim().to_string();
    let path = format!("{}:/usr/bin:/bin", bin("run").parent().expect("a directory").display());
    let (mut shown, mut real) = (Vec::new(), Vec::new());
    for line in tour.lines() {
        let Some(command) = line.strip_prefix("$ ") else {
            shown.push(masked_line(line, &home, &host, &user));
            continue;
        };
        shown.push(masked_line(line, &home, &host, &user));
        real.push(masked_line(line, &home, &host, &user));
        let command = command.split("  #").next().unwrap_or(command).trim_end();
        let out = env
            .tool("sh")
            .arg("-c")
            .arg(format!("exec 2>&1; {command}"))
            .current_dir(&src)
            .env_remove("RUN_DIR")
            .env("PATH", &path)
            // The log's header names the user as $USER says (CI may set it
            // to another name than the account's).
            .env("USER", &user)
            .output()
            .expect("running a command of the tour");
        real.extend(stdout(&out).lines().map(|l| masked_line(l, &home, &host, &user)));
    }
    // The first line that differs, alone: CI shows only the end of a
    // failing run's output.
    if let Some(i) = (0..real.len().max(shown.len())).find(|&i| real.get(i) != shown.get(i)) {
        panic!(
            "the tour printed:\n{}\nits line {} differs: README shows {:?}, the commands printed {:?}",
            real.join("\n"),
            i + 1,
            shown.get(i),
            real.get(i)
        );
    }
}
