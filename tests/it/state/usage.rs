//! What a job used (peak memory, CPU time), with real processes: python3
//! one-liners of known figures; without python3 these tests are reported
//! as not run.

use crate::common::*;
use serde_json::Value;

/// Allocates and touches 200 MiB, then burns 1 s of CPU time.
const ALLOC_AND_BURN: &str = "import time\n\
b = bytearray(200 << 20)\n\
for i in range(0, len(b), 4096): b[i] = 1\n\
t = time.process_time()\n\
while time.process_time() - t < 1.0: pass\n";

fn peak_mib(j: &Value) -> f64 {
    j["max_rss_kib"].as_f64().unwrap_or_else(|| panic!("no max_rss_kib: {j}")) / 1024.0
}

fn cpu_s(j: &Value) -> f64 {
    let user = j["cpu_user_s"].as_f64().unwrap_or_else(|| panic!("no cpu_user_s: {j}"));
    user + j["cpu_sys_s"].as_f64().unwrap_or_else(|| panic!("no cpu_sys_s: {j}"))
}

#[test]
fn a_job_that_touches_200_mib_and_burns_1_s_shows_both_in_json_status_and_footer() {
    if !need_tool("python3") {
        return;
    }
    let env = Env::new();
    let id = env.start(&["--name", "alloc", "python3", "-c", ALLOC_AND_BURN]);
    let j = wait_used(&env, &id);
    assert_eq!(j["state"], "done", "{j}");
    let peak = peak_mib(&j);
    assert!((200.0..=220.0).contains(&peak), "peak {peak:.1} MiB, not within 10 % of 200 MiB: {j}");
    let cpu = cpu_s(&j);
    assert!((0.95..=1.6).contains(&cpu), "CPU {cpu:.2} s for a job that burned 1 s: {j}");

    let status = stdout(&env.run("job", &["status", &id]));
    let memory = status.lines().find(|l| l.trim_start().starts_with("memory ")).expect("a memory line");
    assert!(memory.contains(" MiB peak"), "{status}");
    assert!(status.lines().any(|l| l.trim_start().starts_with("cpu ") && l.contains("user ")), "{status}");
    let footer = env.log(&id).lines().last().unwrap_or_default().to_string();
    assert!(
        footer.starts_with("=== done (exit 0) after ") && footer.contains(", peak 2") && footer.contains(" MiB, CPU "),
        "{footer}"
    );
    let listed = stdout(&env.run("runs", &[]));
    assert!(listed.lines().any(|l| l.contains(&id) && l.contains(" 2") && l.contains("M  python3")), "{listed}");
}

#[test]
fn an_escaped_grandchilds_memory_and_cpu_count_when_it_ended_before_the_job() {
    if !need_tool("python3") {
        return;
    }
    let env = Env::new();
    let script = env.root.join("burn.py");
    write(&script, ALLOC_AND_BURN);
    let pidfile = env.root.join("grandchild.pid");
    // The grandchild leaves the job's session (setsid) and its parent
    // exits at once, so it is re-parented to the watcher; the job then
    // waits until it has ended (a zombie, or reaped).
    let cmd = format!(
        "(setsid python3 {s} & echo $! > {p}); g=$(cat {p}); \
         while [ -e /proc/$g ] && ! grep -q '^[0-9]* ([^)]*) Z' /proc/$g/stat 2>/dev/null; do sleep 0.02; done",
        s = script.display(),
        p = pidfile.display()
    );
    let id = env.start(&[&cmd]);
    let j = wait_used(&env, &id);
    assert_eq!(j["state"], "done", "{j}");
    let peak = peak_mib(&j);
    assert!(peak >= 200.0, "peak {peak:.1} MiB: the grandchild's 200 MiB are missing: {j}");
    let cpu = cpu_s(&j);
    assert!(cpu >= 0.95, "CPU {cpu:.2} s: the grandchild's 1 s is missing: {j}");
}

#[test]
fn a_driver_jobs_usage_leaves_out_a_job_it_started_with_run() {
    if !need_tool("python3") {
        return;
    }
    let env = Env::new();
    let script = env.root.join("burn.py");
    write(&script, ALLOC_AND_BURN);
    // The inner job's watcher is re-parented to the driver's (a child
    // subreaper) and ends, and is reaped there, before the driver does:
    // the driver waits until the watcher's /proc entry is gone.
    let driver = format!(
        "out=$('{}' --name inner python3 '{}') || exit 9; set -- $out; echo \"inner $1\"; \
         w=$(sed -n 's/.*\"watcher_pid\": *\\([0-9]*\\).*/\\1/p' \"$RUN_DIR/$1/meta.json\"); [ -n \"$w\" ] || exit 7; '{}' wait \"$1\"; \
         for t in $(seq 400); do [ -e /proc/$w ] || exit 0; sleep 0.05; done; exit 8",
        bin("run").display(),
        script.display(),
        bin("job").display()
    );
    let outer = env.start(&["--name", "driver", "sh", "-c", &driver]);
    let j = wait_used(&env, &outer);
    assert_eq!(j["state"], "done", "{j}");
    let inner = env.log(&outer).lines().find_map(|l| l.strip_prefix("inner ")).expect("the inner id").to_string();
    let i = wait_used(&env, &inner);
    assert!(peak_mib(&i) >= 200.0, "the inner job's own peak: {i}");
    assert!(peak_mib(&j) < 100.0, "the driver's peak holds the inner job's: {j}");
    assert!(cpu_s(&j) < 0.9, "the driver's CPU time holds the inner job's: {j}");
}
