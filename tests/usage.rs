//! What a job used (peak memory, CPU time) and the cap on its log
//! (`--log-max`), with real processes. The allocating and CPU-burning jobs
//! are python3 one-liners (their figures are known); without python3 those
//! tests are reported as not run.

mod common;

use common::*;
use serde_json::Value;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::process::Stdio;
use std::time::Duration;

const SOON: Duration = Duration::from_secs(60);
const MIB: f64 = 1024.0 * 1024.0;

/// Allocates and touches 200 MiB, then burns 1 s of CPU time.
const ALLOC_AND_BURN: &str = "import time\n\
b = bytearray(200 << 20)\n\
for i in range(0, len(b), 4096): b[i] = 1\n\
t = time.process_time()\n\
while time.process_time() - t < 1.0: pass\n";

/// Waits until the job has ended and what it used is recorded: in
/// `meta.json`, a moment after its end is visible (status first).
fn wait_used(env: &Env, id: &str) -> Value {
    env.wait_ended(id, SOON);
    let mut j = Value::Null;
    wait_until(SOON, "what the job used in meta.json", || {
        j = env.job(id);
        !j["max_rss_kib"].is_null()
    });
    j
}

/// Waits until the job's watcher has exited: its last trim of a capped
/// log comes after meta.json.
fn wait_watcher_gone(env: &Env, id: &str) {
    let meta = std::fs::read(env.job_dir(id).join("meta.json")).expect("reading meta.json");
    let meta: Value = serde_json::from_slice(&meta).expect("meta.json is JSON");
    let watcher = meta["watcher_pid"].as_i64().expect("a watcher pid");
    wait_until(SOON, "the watcher to exit", || !pid_alive(watcher));
}

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

/// Writes `mib` MiB of numbered 128-byte lines, one MiB at a time, 20 ms
/// apart (about 20 MiB/s: a job that is chatty, not a disk benchmark).
fn writer(mib: u32) -> String {
    format!(
        "import sys, time\n\
         for c in range({mib}):\n\
         \x20   sys.stdout.write(''.join('line %09d %s\\n' % (c * 8192 + i, 'x' * 113) for i in range(8192)))\n\
         \x20   sys.stdout.flush()\n\
         \x20   time.sleep(0.04)\n"
    )
}

/// Checks a reader's output of a capped log: no NUL, the header first,
/// numbered lines that only jump where a marker says output was dropped,
/// and the last line and the footer at the end.
fn check_capped_output(text: &[u8], last: u64) {
    assert!(!text.contains(&0), "a NUL byte in the output");
    let text = String::from_utf8_lossy(text);
    let (mut prev, mut after_marker, mut markers) = (None::<u64>, false, 0);
    for line in text.lines() {
        if line.starts_with("=== bgrun: ") {
            assert!(line.contains(" of output dropped here (--log-max 10.0 MiB)"), "{line}");
            markers += 1;
            after_marker = true;
            continue;
        }
        let Some(n) = line.strip_prefix("line ").and_then(|l| l.get(..9)).and_then(|n| n.parse::<u64>().ok()) else {
            continue;
        };
        match prev {
            Some(p) if !after_marker => assert_eq!(n, p + 1, "a gap with no marker before line {n}"),
            Some(p) => assert!(n > p, "line {n} after line {p}"),
            None => {}
        }
        prev = Some(n);
        after_marker = false;
    }
    assert!(markers >= 1, "no marker where output was dropped");
    assert_eq!(prev, Some(last), "the last line");
    assert!(text.lines().last().is_some_and(|l| l.starts_with("=== done (exit 0)")), "no footer");
}

#[test]
fn a_job_writing_200_mib_under_log_max_10m_stays_within_the_bound_and_readers_see_a_marker() {
    if !need_tool("python3") {
        return;
    }
    let env = Env::new();
    let gate = env.root.join("gate");
    let script = env.root.join("write.py");
    write(&script, &writer(200));
    let cmd = format!("while [ ! -e {g} ]; do sleep 0.02; done; python3 {s}", g = gate.display(), s = script.display());
    let id = env.start(&["--log-max", "10M", &cmd]);
    // A follower started before the cap hits, and slow: its pipe is read
    // only once the job has ended, so the output it has not read yet is
    // dropped under it meanwhile.
    let mut follower = env.cmd("runlog").arg(&id).stdout(Stdio::piped()).spawn().expect("starting runlog");
    let mut pipe = follower.stdout.take().expect("runlog's stdout");
    let (go, wait_go) = std::sync::mpsc::channel::<()>();
    let reader = std::thread::spawn(move || {
        let _ = wait_go.recv();
        let mut all = Vec::new();
        let _ = pipe.read_to_end(&mut all);
        all
    });
    write(&gate, "");

    // Disk use, sampled while it runs: the cap, plus what the job writes
    // while the watcher waits for its tick (50 ms) and for a CPU: 8 MiB
    // is 400 ms at this pace, for a loaded machine.
    let log = env.job_dir(&id).join("log");
    let bound = 10 * 1024 * 1024 + 8 * 1024 * 1024;
    let (mut most, mut samples) = (0, 0);
    wait_until(SOON, "the job to end", || {
        let used = std::fs::metadata(&log).map_or(0, |m| m.blocks() * 512);
        most = most.max(used);
        samples += 1;
        env.job_dir(&id).join("status").exists()
    });
    assert!(samples > 20, "only {samples} samples");
    assert!(most <= bound, "the log took {:.1} MiB on disk (bound {:.1} MiB)", most as f64 / MIB, bound as f64 / MIB);
    let j = wait_used(&env, &id);
    wait_watcher_gone(&env, &id);
    assert_eq!(j["state"], "done", "{j}");
    assert_eq!(j["log_max"], 10 << 20);
    let written = j["log_bytes"].as_u64().expect("log_bytes");
    assert!(written >= 200 << 20, "log_bytes {written}");

    let last = 200 * 8192 - 1;
    let _ = go.send(());
    let followed = reader.join().expect("the reading thread");
    let status = follower.wait().expect("waiting for runlog");
    assert!(status.success(), "runlog exited with {status}");
    check_capped_output(&followed, last);

    let whole = env.run("runlog", &[&id, "--no-follow"]);
    check_capped_output(&whole.stdout, last);
    let text = stdout(&whole);
    assert!(text.lines().nth(3).is_some_and(|l| l.starts_with("=== bgrun: ")), "the marker after the header");
    assert!(whole.stdout.len() < 11 << 20, "runlog printed {} bytes", whole.stdout.len());

    let tail = stdout(&env.run("runlog", &[&id, "--tail", "3"]));
    let lines: Vec<&str> = tail.lines().collect();
    assert_eq!(lines.len(), 3, "{tail}");
    assert!(lines[0].starts_with(&format!("line {:09} ", last - 1)), "{tail}");
    assert!(lines[1].starts_with(&format!("line {last:09} ")), "{tail}");
    assert!(lines[2].starts_with("=== done (exit 0)"), "{tail}");

    let status = env.run("job", &["status", &id, "--json"]);
    let v: Value = serde_json::from_slice(&status.stdout).expect("job status --json");
    let dropped = v["log_dropped"].as_u64().expect("log_dropped");
    let size = v["log_size"].as_u64().expect("log_size");
    assert!(dropped > 180 << 20 && size <= 10 << 20, "dropped {dropped}, kept {size}");
}

#[test]
fn log_max_and_run_log_max_take_binary_sizes_and_refuse_bad_ones_naming_the_source() {
    let env = Env::new();
    let out = env.cmd("run").args(["--log-max", "5x", "true"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--log-max") && stderr(&out).contains("'5x' is not a size"), "{}", stderr(&out));
    let out = env.cmd("job").args(["run", "--log-max", "1K", "true"]).output().expect("job run");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--log-max") && stderr(&out).contains("too small"), "{}", stderr(&out));
    let out = env.cmd("run").env("RUN_LOG_MAX", "lots").args(["true"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.starts_with("run: RUN_LOG_MAX: 'lots' is not a size") && err.lines().count() == 1, "{err}");
    assert!(!env.store.exists() || std::fs::read_dir(&env.store).map_or(0, |d| d.count()) == 0, "something started");

    let out = env.cmd("run").env("RUN_LOG_MAX", "1M").args(["--name", "dflt", "true"]).output().expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    let out =
        env.cmd("job").env("RUN_LOG_MAX", "1M").args(["run", "--name", "none", "--log-max", "0", "true"]).output();
    assert!(out.expect("job run").status.success());
    let jobs = env.jobs();
    let by = |name: &str| jobs.iter().find(|j| j["name"] == name).unwrap_or_else(|| panic!("no job {name}")).clone();
    assert_eq!(by("dflt")["log_max"], 1 << 20, "RUN_LOG_MAX is the default");
    assert!(by("none")["log_max"].is_null(), "--log-max 0 is no cap");
    env.wait_ended(by("dflt")["id"].as_str().expect("an id"), SOON);

    let out = env.run("job", &["retry", "dflt"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let again = stdout(&out).trim().to_string();
    assert_eq!(env.job(&again)["log_max"], 1 << 20, "job retry keeps the cap");
}

/// A filesystem mounted for a test (inside [`isolated`]'s namespaces),
/// unmounted when dropped.
struct Mount(std::path::PathBuf);

impl Mount {
    fn new(at: &std::path::Path, fstype: &str) -> Mount {
        std::fs::create_dir_all(at).expect("making the mount point");
        let out = std::process::Command::new("mount").args(["-t", fstype, "none"]).arg(at).output().expect("mount");
        assert!(out.status.success(), "mount -t {fstype} {}: {}", at.display(), stderr(&out));
        Mount(at.to_path_buf())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).output();
    }
}

#[test]
fn a_filesystem_that_cannot_punch_holes_is_refused_at_launch_and_tmpfs_is_capped() {
    if !isolated("mounting a ramfs and a tmpfs", false) {
        return;
    }
    let mut env = Env::new();
    // ramfs has no fallocate at all: refused, nothing started.
    let ram = Mount::new(&env.root.join("ram"), "ramfs");
    env.store = ram.0.join("store");
    let out = env.run("run", &["--log-max", "1M", "true"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with("run: cannot cap the log at 1.0 MiB (--log-max, RUN_LOG_MAX): the filesystem of "),
        "{err}"
    );
    assert!(err.contains(" cannot punch holes in a file") && err.lines().count() == 1, "{err}");
    let left: Vec<_> = std::fs::read_dir(&env.store).expect("the store").flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "left in the store: {left:?}");

    // tmpfs punches holes (it cannot collapse a range, which is not needed).
    let tmp = Mount::new(&env.root.join("tmp"), "tmpfs");
    env.store = tmp.0.join("store");
    let cmd = "i=0; while [ $i -lt 40 ]; do head -c 1048576 /dev/zero | tr '\\0' x; echo; sleep 0.02; i=$((i+1)); done; echo last";
    let id = env.start(&["--log-max", "1M", cmd]);
    let j = env.wait_ended(&id, SOON);
    assert_eq!(j["state"], "done", "{j}");
    wait_watcher_gone(&env, &id);
    let blocks = std::fs::metadata(env.job_dir(&id).join("log")).expect("the log").blocks();
    assert!(blocks * 512 <= 1 << 20, "the log takes {blocks} blocks on tmpfs");
    let tail = stdout(&env.run("runlog", &[&id, "--no-follow", "--tail", "2"]));
    assert!(tail.starts_with("last\n=== done (exit 0)"), "{tail}");
    let whole = env.run("runlog", &[&id, "--no-follow"]);
    assert!(!whole.stdout.contains(&0), "a NUL byte in runlog's output");
    assert_eq!(stdout(&whole).lines().filter(|l| l.starts_with("=== bgrun: ")).count(), 1, "one marker");
    drop(tmp);
    drop(ram);
}

#[test]
fn job_logs_of_several_capped_jobs_shows_each_marker_and_no_nul() {
    let env = Env::new();
    // 3 MiB of numbered lines each, under a 256 KiB cap.
    let cmd = "i=0; while [ $i -lt 30000 ]; do printf 'line %09d %090d\\n' $i 0; i=$((i+1)); done; echo last";
    let ids: Vec<String> =
        ["a", "b"].iter().map(|n| env.start(&["--name", n, "--log-max", "256K", "sh", "-c", cmd])).collect();
    for id in &ids {
        wait_used(&env, id);
        wait_watcher_gone(&env, id);
        assert!(env.job_dir(id).join("dropped").exists(), "{id}: nothing was dropped");
    }
    let out = env.run("job", &["logs", &ids[0], &ids[1]]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!out.stdout.contains(&0), "a NUL byte in job logs' output");
    let text = stdout(&out);
    for name in ["a", "b"] {
        let lines: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix(&format!("{name} | "))).collect();
        let markers = lines.iter().filter(|l| l.starts_with("=== bgrun: ")).count();
        assert_eq!(markers, 1, "{name}: {markers} markers");
        assert!(lines.contains(&"last"), "{name}: no last line");
        let tail = stdout(&env.run("job", &["logs", &ids[0], &ids[1], "--tail", "2"]));
        assert!(tail.contains(&format!("{name} | last\n")), "{tail}");
    }
}
