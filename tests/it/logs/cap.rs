//! The cap on a job's log (`--log-max`, `RUN_LOG_MAX`): the oldest output
//! is dropped (a hole punched from byte 0), the file stays within the
//! bound, and readers show the header, a marker and the newest output.

use super::*;
use crate::common::*;
use serde_json::Value;
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::process::Stdio;
use std::time::Duration;

const SOON: Duration = Duration::from_secs(60);
const MIB: f64 = 1024.0 * 1024.0;

/// The most a capped log passes its cap by: one chunk of its watcher's
/// copy (64 KiB) and a block or two of rounding.
const OVER: u64 = (64 << 10) + 8192;

/// Processes that keep both cores busy until dropped.
struct Busy(Vec<std::process::Child>);

impl Busy {
    fn new() -> Busy {
        Busy(
            (0..3)
                .map(|_| std::process::Command::new("sh").args(["-c", "while :; do :; done"]).spawn().expect("sh"))
                .collect(),
        )
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn a_job_writing_as_fast_as_it_can_while_every_core_is_busy_never_passes_its_cap_by_more_than_a_chunk() {
    let env = Env::new();
    let _busy = Busy::new();
    let id = env.start(&["--log-max", "1M", "sh", "-c", "head -c 300M /dev/zero | tr '\\0' y"]);
    let log = env.job_dir(&id).join("log");
    // Sampled as often as this thread gets a CPU, until the job ends.
    let (mut most, mut samples) = (0, 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !env.job_dir(&id).join("status").exists() {
        assert!(std::time::Instant::now() < deadline, "the job did not end within 120 s");
        most = most.max(fs::metadata(&log).map_or(0, |m| m.blocks() * 512));
        samples += 1;
    }
    assert!(samples > 20, "only {samples} samples");
    let bound = (1 << 20) + OVER;
    assert!(most <= bound, "the log took {most} bytes on disk under --log-max 1M (bound {bound})");
    assert_eq!(wait_used(&env, &id)["log_bytes"], 300 << 20, "the job's output was not all copied");
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
    let all: Vec<&str> = text.lines().collect();
    for (i, &line) in all.iter().enumerate() {
        if line.starts_with("=== bgrun: ") {
            assert!(line.contains(" of output dropped here (--log-max 10.0 MiB)"), "{line}");
            markers += 1;
            after_marker = true;
            continue;
        }
        // No tail of a cut line after a marker, in no reader (a follower
        // may have shown the head of a line, at the end of the log then,
        // before a marker).
        let whole = line.starts_with("=== ") || (line.starts_with("line ") && line.len() == 128);
        let before_marker = all.get(i + 1).is_some_and(|l| l.starts_with("=== bgrun: "));
        assert!(whole || before_marker, "a cut line: {line:?}");
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
fn under_log_max_the_cap_drops_output_from_byte_0_and_readers_show_header_marker_newest_output_footer() {
    let env = Env::new();
    // 16 chunks of 10,000 numbered lines (about 1.1 MiB), 100 ms apart: the
    // watcher looks every 50 ms and keeps the newest 56 KiB.
    let script = "for c in $(seq 0 15); do seq $((c * 10000)) $((c * 10000 + 9999)); sleep 0.1; done";
    let id = ended(&env, &["--log-max", "64K", "--name", "capped", "sh", "-c", script]);
    let dropped = fs::read_to_string(env.job_dir(&id).join("dropped")).expect("the dropped range");
    let (start, end) = dropped.trim().split_once(' ').expect("START END");
    assert_eq!(start, "0", "the hole starts at the log's first byte: {dropped}");
    assert!(end.parse::<u64>().expect("END") > 512 << 10, "{dropped}");

    let whole = shown(&env, "runlog", &[&id, "--no-follow"]);
    assert!(!whole.contains('\0'), "a NUL byte in the output");
    let lines: Vec<&str> = whole.lines().collect();
    assert_eq!(whole.split_inclusive('\n').take(3).collect::<String>(), env.header(&id), "the header first");
    assert!(lines[3].starts_with("=== bgrun: ") && lines[3].ends_with("of output dropped here (--log-max 64.0 KiB)"));
    // The cut falls at a line boundary: the first line after the marker is
    // a whole one.
    let numbers: Vec<u64> = lines[4..lines.len() - 1].iter().map(|l| l.parse().expect("a number")).collect();
    assert!(numbers.len() > 1000, "{} lines kept", numbers.len());
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "a gap in the newest output");
    assert_eq!(numbers.last(), Some(&159_999));
    assert!(lines[lines.len() - 1].starts_with("=== done (exit 0)"), "no footer");
    assert_eq!(shown(&env, "job", &["logs", &id]), whole);

    // The marker counts as one line; past it, the header's lines.
    let total = lines.len();
    for n in [2, total - 3, total - 2, total, total + 5] {
        let got = shown(&env, "runlog", &[&id, "--no-follow", "--tail", &n.to_string()]);
        assert_eq!(got, last_lines(&whole, n), "--tail {n}");
    }
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

    // Disk use, sampled while it runs: the cap, plus one chunk of the
    // watcher's copy (the job waits on the pipe meanwhile) and a block.
    let log = env.job_dir(&id).join("log");
    let bound = 10 * 1024 * 1024 + OVER;
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

/// The space the log takes on disk.
fn on_disk(env: &Env, id: &str) -> u64 {
    fs::metadata(env.job_dir(id).join("log")).map_or(0, |m| m.blocks() * 512)
}

#[test]
fn the_cap_holds_while_a_background_child_writes_after_the_job_ended() {
    let env = Env::new();
    // The job's own process ends at once; a background child writes 64 MiB,
    // 1 MiB at a time, after the end is recorded `done`.
    let script = "(sleep 0.3; for i in $(seq 64); do head -c 1M /dev/zero | tr '\\0' y; echo; sleep 0.01; done) &
                  echo started";
    let id = env.start(&["--log-max", "64K", "sh", "-c", script]);
    assert_eq!(env.wait_ended(&id, SOON)["state"], "done");
    let m = meta_at(&env.job_dir(&id));
    let (watcher, start) = (int(&m["watcher_pid"]), m["watcher_start"].as_u64());
    let mut peak = 0;
    let len = || fs::metadata(env.job_dir(&id).join("log")).map_or(0, |m| m.len());
    wait_until(SOON, "the background child to write its 64 MiB", || {
        peak = peak.max(on_disk(&env, &id));
        len() >= 64 << 20
    });
    wait_until(SOON, "the watcher to exit once the writer is gone", || {
        peak = peak.max(on_disk(&env, &id));
        !pid_alive(watcher.into()) || start_time(watcher) != start
    });
    let last = on_disk(&env, &id);
    assert!(last <= (64 << 10) + 8192, "the log takes {last} bytes once every writer is gone, over 64 KiB");
    // Sampled: how far past the cap it goes under load is another test's.
    assert!(peak < 32 << 20, "the log took {peak} bytes while the background child wrote, under --log-max 64K");
    let shown = shown(&env, "runlog", &[&id, "--no-follow"]);
    assert!(shown.contains("of output dropped here (--log-max 64.0 KiB)"), "{shown}");
    assert!(!shown.contains('\0'), "a NUL byte in the output");
}

#[test]
fn a_job_that_empties_its_log_after_a_drop_shows_what_it_wrote_next_and_its_footer() {
    let env = Env::new();
    // 1.1 MiB of lines under a 64 KiB cap, then the job empties its own
    // log, opened by its path (its stdout is its watcher's pipe), and
    // writes again from byte 0.
    let script = "seq 1 200000; sleep 0.5; : > \"$(echo \"$RUN_DIR\"/*/log)\"; echo after the truncation";
    let id = ended(&env, &["--log-max", "64K", "sh", "-c", script]);
    let whole = shown(&env, "runlog", &[&id, "--no-follow"]);
    assert!(whole.contains("\nafter the truncation\n=== done (exit 0)"), "{whole}");
    assert!(!whole.contains('\0') && !whole.contains("dropped here"), "{whole}");
    let tail = shown(&env, "runlog", &[&id, "--no-follow", "--tail", "2"]);
    assert!(tail.starts_with("after the truncation\n=== done"), "{tail}");
}

#[test]
fn a_job_that_rewrites_its_log_past_the_dropped_range_shows_the_new_output() {
    let env = Env::new();
    // 1.3 MiB of lines under a 1 MiB cap: about 400 KiB dropped. Then dd
    // truncates the log, opened by its path, and writes 800 KB of lines
    // from byte 0 through a descriptor of its own (not appending): past
    // the old range's end.
    let script = "seq 1 200000; sleep 0.5; \
                  seq 1000001 1100000 | dd of=\"$(echo \"$RUN_DIR\"/*/log)\" bs=64k 2>/dev/null; \
                  sleep 0.3; echo last";
    let id = ended(&env, &["--log-max", "1M", "sh", "-c", script]);
    let whole = shown(&env, "runlog", &[&id, "--no-follow"]);
    assert!(!whole.contains('\0') && !whole.contains("dropped here"), "a NUL byte or a marker in the output");
    let lines: Vec<&str> = whole.lines().collect();
    assert_eq!(lines[3], "1000001", "the rewritten log's first line is hidden");
    assert_eq!(lines[lines.len() - 3..lines.len() - 1], ["1100000", "last"]);
    assert!(lines[lines.len() - 1].starts_with("=== done (exit 0)"), "{whole:.300}");
}
