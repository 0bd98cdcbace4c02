//! The examples in the documentation print what the documentation shows:
//! each example whose output is the same on every run but for ids' times,
//! pids and durations is run in a temporary store and compared with those
//! masked. (The others, such as README's `runs` listing of jobs that ran
//! for an hour, show output no test can reproduce.)

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
