//! What is submitted to Slurm and recorded is exactly the job: a path
//! holding `%` reaches Slurm as is; another cluster and arrays are
//! refused; a second batch step never runs the command again; a stopped
//! job is `stopped` however it ends; an empty squeue answer is never an
//! end that the step's true one cannot replace.

use super::*;

/// `job __slurm-step STORE ID`, as Slurm runs a batch step.
fn step_again(c: &Cluster, id: &str) -> std::process::Output {
    let store = c.store.to_str().expect("a UTF-8 store");
    c.run("job", &["__slurm-step", store, id])
}

#[test]
fn a_percent_in_the_stores_path_reaches_slurm_as_is_and_a_backslash_is_refused() {
    if !slurm_here() {
        return;
    }
    let mut c = cluster();
    c.env.store = c.env.root.join("store%u%j%%");
    let (id, _) = c.submit(&["echo", "landed"]);
    let j = c.wait_state(&id, "done", SOON);
    assert_eq!(j["exit_code"], 0, "{j}");
    assert!(c.log(&id).contains("landed"), "the output went elsewhere: {:?}", c.log(&id));
    let strays: Vec<_> = std::fs::read_dir(&c.env.root)
        .expect("reading the test directory")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("store") && !n.ends_with("%u%j%%"))
        .collect();
    assert!(strays.is_empty(), "Slurm expanded the path: {strays:?}");

    c.env.store = c.env.root.join("back\\slash");
    let out = c.run("run", &["--slurm", "true"]);
    one_line_error(&out, 1, &["backslash", &c.store.display().to_string()], "a store path with a backslash");
    let left = std::fs::read_dir(&c.store).map(|rd| rd.flatten().filter(|e| e.file_name() != ".ids").count());
    assert_eq!(left.unwrap_or(0), 0, "a refused submission left a job");
}

#[test]
fn another_cluster_and_job_arrays_are_refused_naming_the_flag_and_nothing_is_submitted() {
    if !slurm_here() {
        return;
    }
    let c = cluster();
    for (sbatch, flag) in [
        ("--clusters=gpu", "--clusters=gpu"),
        ("--qos=normal -M gpu", "-M"),
        ("--clu gpu", "--clu"),
        ("--array=1-3", "--array=1-3"),
        ("-a 1-2", "-a"),
        ("-va1", "-va1"),
    ] {
        let out = c.run("run", &["--slurm", "--sbatch", sbatch, "true"]);
        one_line_error(&out, 2, &["--sbatch", flag], &format!("--sbatch {sbatch:?}"));
    }
    let out = c.cmd("run").env("SBATCH_CLUSTERS", "gpu").args(["--slurm", "true"]).output().expect("running run");
    one_line_error(&out, 1, &["SBATCH_CLUSTERS"], "SBATCH_CLUSTERS set");
    let left = std::fs::read_dir(&c.store).map(|rd| rd.flatten().filter(|e| e.file_name() != ".ids").count());
    assert_eq!(left.unwrap_or(0), 0, "a refused submission left a job");
}

#[test]
fn a_second_batch_step_of_a_job_never_runs_its_command_again() {
    if !slurm_here() {
        return;
    }
    let c = cluster();
    let (id, _) = c.submit(&["sh", "-c", "echo ran; exec sleep 300"]);
    c.wait_output(&id, "ran\n");
    // A second step while the first runs (an array task, a requeue).
    let out = step_again(&c, &id);
    assert_eq!(out.status.code(), Some(1), "a second step: {}", stderr(&out));
    assert!(stderr(&out).contains("another step"), "{}", stderr(&out));
    // The first step dies without recording (its node failed): a step
    // started again finds the job begun and does not run it.
    let first = wait_for_step(&id);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(first), nix::sys::signal::SIGKILL).expect("killing the step");
    wait_until(SOON, "the first step to be gone", || !pid_alive(i64::from(first)));
    let out = step_again(&c, &id);
    assert_eq!(out.status.code(), Some(1), "a step started again: {}", stderr(&out));
    assert!(stderr(&out).contains("earlier step"), "{}", stderr(&out));
    assert_eq!(c.log(&id).matches("ran\n").count(), 1, "the command ran again: {}", c.log(&id));
    assert!(!c.job_dir(&id).join("status").exists() || c.job_json(&id)["state"] != "done");
    let _ = c.job(&["stop", &id]);
}

#[test]
fn a_stopped_slurm_job_that_handles_sigterm_and_exits_by_itself_is_stopped_every_time() {
    if !slurm_here() {
        return;
    }
    let c = cluster();
    let script = "trap 'echo Terminated; exit 143' TERM; echo up; while :; do sleep 0.1; done";
    for round in 0..4 {
        let (id, _) = c.submit(&["--name", &format!("trap{round}"), "sh", "-c", script]);
        c.wait_output(&id, "up\n");
        let out = c.job(&["stop", &id]);
        assert!(out.status.success(), "job stop, round {round}: {}", stderr(&out));
        let j = c.wait_state(&id, "stopped", SOON);
        assert_ne!(j["state"], "failed", "round {round}: {j}");
    }
    // The race made certain: the stop is requested and the job has exited
    // 143 before the step hears of either (it reaps the job first).
    let gate = c.root.join("gate");
    let script = format!(
        "echo up; while [ ! -s {g} ]; do sleep 0.05; done; d=$(cat {g}); printf term > $d/.stop.tmp; mv $d/.stop.tmp $d/stop; exit 143",
        g = gate.display()
    );
    let (id, _) = c.submit(&["--name", "selfstop", "sh", "-c", &script]);
    c.wait_output(&id, "up\n");
    write(&c.root.join("gate.tmp"), &c.job_dir(&id).display().to_string());
    std::fs::rename(c.root.join("gate.tmp"), &gate).expect("opening the gate");
    let j = c.wait_ended(&id, SOON);
    assert_eq!(j["state"], "stopped", "{j}");
    assert_eq!(j["exit_code"], 143, "the step recorded how the job ended: {j}");
}

#[test]
fn an_empty_squeue_answer_is_never_an_end_that_the_jobs_true_one_cannot_replace() {
    if !slurm_here() {
        return;
    }
    let c = cluster();
    let fake = c.root.join("fake-bin");
    std::fs::create_dir(&fake).expect("making the fake squeue's directory");
    write(&fake.join("squeue"), "#!/bin/sh\nexit 0\n");
    std::fs::set_permissions(fake.join("squeue"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", fake.display(), std::env::var("PATH").unwrap_or_default());
    let (id, sid) = c.submit(&["--sbatch", "--hold", "sh", "-c", "echo ran; exit 3"]);
    c.wait_state(&id, "queued", SOON);
    // The controller's hiccup: squeue answers, naming no job.
    let out = c.cmd("runs").env("PATH", &path).output().expect("running runs");
    assert!(out.status.success(), "{}", stderr(&out));
    let j = c.job_json(&id);
    assert_eq!(j["state"], "queued", "the real answer corrects the empty one: {j}");
    release(sid);
    let j = c.wait_state(&id, "failed", SOON);
    assert_eq!(j["exit_code"], 3, "the step's true end replaced the provisional one: {j}");
    assert!(c.log(&id).contains("ran\n"), "{}", c.log(&id));
}

#[test]
fn readers_racing_to_record_a_slurm_jobs_end_record_it_once() {
    if !slurm_here() {
        return;
    }
    let c = cluster();
    for round in 0..3 {
        let (id, sid) = c.submit(&["--sbatch", "--hold", "--name", &format!("race{round}"), "true"]);
        c.wait_state(&id, "queued", SOON);
        let out = Command::new("scancel").arg(sid.to_string()).output().expect("running scancel");
        assert!(out.status.success(), "{}", stderr(&out));
        wait_until(SOON, "Slurm to cancel the job", || squeue_state(sid) == "CANCELLED");
        // Eight readers at once, each of which may record the end.
        let readers: Vec<_> = (0..8)
            .map(|i| {
                let mut cmd = c.cmd(if i % 2 == 0 { "runs" } else { "job" });
                if i % 2 == 1 {
                    cmd.args(["status", &id]);
                }
                cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
                cmd.spawn().expect("starting a reader")
            })
            .collect();
        for mut r in readers {
            r.wait().expect("waiting for a reader");
        }
        let status = std::fs::read_to_string(c.job_dir(&id).join("status")).expect("the end is recorded");
        assert_eq!(status.lines().count(), 1, "round {round}: {status:?}");
        assert!(status.starts_with("stopped unknown 0 "), "round {round}: {status}");
        assert_eq!(
            c.log(&id).matches("=== stopped").count(),
            1,
            "round {round}: the end recorded twice: {}",
            c.log(&id)
        );
        let left: Vec<_> = std::fs::read_dir(c.job_dir(&id))
            .expect("the job directory")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".status."))
            .collect();
        assert!(left.is_empty(), "round {round}: temporary records left: {left:?}");
    }
}

#[test]
fn job_wait_keeps_waiting_past_an_empty_squeue_answer_and_returns_the_true_exit() {
    if !slurm_here() {
        return;
    }
    let c = cluster();
    let fake = c.root.join("fake-bin");
    std::fs::create_dir(&fake).expect("making the fake squeue's directory");
    let real = String::from_utf8(Command::new("sh").args(["-c", "command -v squeue"]).output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_string();
    let (honest, asked) = (c.root.join("honest"), c.root.join("asked"));
    // Empty answers until `honest` exists, then the real ones; each empty
    // answer leaves a line in `asked`.
    let script = format!(
        "#!/bin/sh\n[ -e '{}' ] && exec '{real}' \"$@\"\necho >> '{}'\nexit 0\n",
        honest.display(),
        asked.display()
    );
    write(&fake.join("squeue"), &script);
    std::fs::set_permissions(fake.join("squeue"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", fake.display(), std::env::var("PATH").unwrap_or_default());
    let (id, sid) = c.submit(&["--sbatch", "--hold", "sh", "-c", "echo ran; exit 3"]);
    c.wait_state(&id, "queued", SOON);
    let mut waiter = c.cmd("job").args(["wait", &id]).env("PATH", &path).spawn().expect("starting job wait");
    let status = c.job_dir(&id).join("status");
    wait_until(SOON, "the empty answer to be recorded as a provisional end", || status.exists());
    // Asked again and again after the provisional end, and still waiting.
    let answers = || std::fs::read_to_string(&asked).map_or(0, |s| s.lines().count());
    wait_until(SOON, "job wait to ask Slurm again", || answers() >= 3);
    assert!(waiter.try_wait().unwrap().is_none(), "job wait returned on the provisional end");
    std::fs::write(&honest, "").unwrap();
    release(sid);
    let deadline = std::time::Instant::now() + SOON;
    let code = loop {
        if let Some(s) = waiter.try_wait().unwrap() {
            break s.code();
        }
        assert!(std::time::Instant::now() < deadline, "job wait never returned");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(code, Some(1), "job wait reports the true failure");
    let j = c.wait_state(&id, "failed", SOON);
    assert_eq!(j["exit_code"], 3, "{j}");
}

/// A directory holding a `squeue` that answers, naming no job (a
/// controller's hiccup), and a PATH that finds it first; each answer
/// leaves a line in `asked`.
fn empty_squeue(c: &Cluster) -> (String, std::path::PathBuf) {
    let fake = c.root.join("fake-bin");
    let asked = c.root.join("asked");
    std::fs::create_dir(&fake).expect("making the fake squeue's directory");
    write(&fake.join("squeue"), &format!("#!/bin/sh\necho >> '{}'\nexit 0\n", asked.display()));
    std::fs::set_permissions(fake.join("squeue"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    (format!("{}:{}", fake.display(), std::env::var("PATH").unwrap_or_default()), asked)
}

#[test]
fn an_empty_squeue_answer_never_lets_runrm_remove_a_slurm_job_that_is_running() {
    if !slurm_here() {
        return;
    }
    let c = cluster();
    let (path, _) = empty_squeue(&c);
    let (id, sid) = c.submit(&["sh", "-c", "echo up; sleep 600"]);
    c.wait_output(&id, "up");
    for args in [vec![], vec![id.as_str()]] {
        let out = c.cmd("runrm").args(&args).env("PATH", &path).output().expect("running runrm");
        assert!(
            c.job_dir(&id).join("log").exists(),
            "runrm {args:?} removed {id} while Slurm runs it (squeue now: {}): {}{}",
            squeue_state(sid),
            stdout(&out),
            stderr(&out)
        );
    }
    assert_eq!(c.job_json(&id)["state"], "running");
}

#[test]
fn on_an_empty_squeue_answer_job_stop_and_job_wait_never_take_a_running_slurm_job_for_ended() {
    if !slurm_here() {
        return;
    }
    let c = cluster();
    let (path, asked) = empty_squeue(&c);
    let (id, sid) = c.submit(&["sh", "-c", "echo up; sleep 600"]);
    c.wait_output(&id, "up");
    let mut waiter = c.cmd("job");
    waiter.args(["wait", &id]).env("PATH", &path);
    waiter.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    let mut waiter = waiter.spawn().expect("starting job wait");
    let answers = || std::fs::read_to_string(&asked).map_or(0, |s| s.lines().count());
    let mut waited = None;
    wait_until(SOON, "job wait to ask Slurm three times or return", || {
        waited = waiter.try_wait().unwrap();
        waited.is_some() || answers() >= 3
    });
    let _ = waiter.kill();
    let _ = waiter.wait();
    assert!(waited.is_none(), "job wait returned ({waited:?}) while Slurm runs the job: {}", squeue_state(sid));
    let out = c.cmd("job").args(["stop", &id]).env("PATH", &path).output().expect("running job stop");
    let said = format!("{}{}", stdout(&out), stderr(&out));
    let said_ended = out.status.success() && said.contains("already ended");
    assert!(
        !said_ended,
        "job stop said the running job had ended and stopped nothing (squeue now: {}): {}",
        squeue_state(sid),
        said
    );
}

/// Cancels a Slurm job when dropped (the test's end, passed or not).
struct Cancel(std::path::PathBuf);

impl Drop for Cancel {
    fn drop(&mut self) {
        if let Ok(text) = std::fs::read_to_string(&self.0) {
            let id = text.trim().split(';').next().unwrap_or_default().to_string();
            if !id.is_empty() {
                let _ = Command::new("scancel").arg(id).output();
            }
        }
    }
}

/// A PATH whose `sbatch` submits, then is slow to answer (a busy
/// controller), writing the Slurm id it got into the returned file first;
/// and that file's guard, which cancels the Slurm job.
fn slow_sbatch(c: &Cluster) -> (String, std::path::PathBuf, Cancel) {
    let fake = c.root.join("fake-bin");
    std::fs::create_dir(&fake).expect("making the fake sbatch's directory");
    let real = String::from_utf8(Command::new("sh").args(["-c", "command -v sbatch"]).output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_string();
    let sid = c.root.join("sid");
    let script =
        format!("#!/bin/sh\nout=$('{real}' \"$@\") || exit $?\necho \"$out\" > '{}'\nexec sleep 600\n", sid.display());
    write(&fake.join("sbatch"), &script);
    std::fs::set_permissions(fake.join("sbatch"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", fake.display(), std::env::var("PATH").unwrap_or_default());
    (path, sid.clone(), Cancel(sid))
}

/// Starts `front args…` with `path`, and SIGKILLs it once sbatch has
/// accepted the job.
fn killed_after_sbatch(c: &Cluster, path: &str, sid: &std::path::Path, front: &str, args: &[&str]) {
    let mut launcher = c
        .cmd(front)
        .args(args)
        .env("PATH", path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starting the launcher");
    wait_until(SOON, "sbatch to accept the job", || sid.exists());
    let _ = launcher.kill();
    let _ = launcher.wait();
}

#[test]
fn a_slurm_job_whose_launcher_died_after_sbatch_accepted_it_is_never_removed_while_its_step_runs() {
    if !slurm_here() {
        return;
    }
    let c = cluster();
    // The launcher dies while sbatch is slow to answer (SIGKILL, the OOM
    // killer, a closed terminal's SIGHUP), before it could write the
    // job's `slurm_id`.
    let (path, sid, _cancel) = slow_sbatch(&c);
    killed_after_sbatch(&c, &path, &sid, "run", &["--slurm", "--name", "orphaned", "sh", "-c", "echo up; sleep 600"]);
    let id = c.jobs().iter().find_map(|j| j["id"].as_str().map(String::from)).expect("the job is listed");
    c.wait_output(&id, "up");
    let state = c.job_json(&id)["state"].clone();
    let out = c.run("runrm", &[]);
    assert!(
        c.job_dir(&id).join("log").exists(),
        "runrm removed {id} (shown {state}) while its step runs here: {}{}",
        stdout(&out),
        stderr(&out)
    );
}

#[test]
fn a_key_whose_slurm_launcher_died_after_sbatch_accepted_its_job_gives_that_job() {
    if !slurm_here() {
        return;
    }
    let c = cluster();
    let (path, sid, _cancel) = slow_sbatch(&c);
    killed_after_sbatch(&c, &path, &sid, "job", &["run", "--slurm", "--key", "sk", "echo up; sleep 600"]);
    let id = c.jobs().iter().find_map(|j| j["id"].as_str().map(String::from)).expect("the job is listed");
    c.wait_output(&id, "up");
    let out = c.run("job", &["run", "--key", "sk", "echo up; sleep 600"]);
    assert!(
        out.status.success() && stdout(&out).trim() == id,
        "the key's job {id} runs, yet job run --key said: {}{}",
        stdout(&out),
        stderr(&out)
    );
}

#[test]
fn a_slurm_job_writing_as_fast_as_it_can_never_passes_its_log_cap_by_more_than_a_local_jobs_bound() {
    if !slurm_here() {
        return;
    }
    let c = cluster();
    // A local job's log passes its cap by at most a chunk and a block
    // (logs.md, test logs::cap::a_job_writing_as_fast_as_it_can_…): its
    // output goes through its watcher. A Slurm step's job writes straight
    // into the log, and the step looks at it every few milliseconds.
    let (id, _) = c.submit(&["--log-max", "1M", "sh", "-c", "echo up; head -c 300M /dev/zero | tr '\\0' y"]);
    let (log, status) = (c.job_dir(&id).join("log"), c.job_dir(&id).join("status"));
    // (Not `wait_output`: the cap may drop "up" at once.)
    wait_until(SOON, "the job to start writing", || std::fs::metadata(&log).map_or(0, |m| m.len()) > 0);
    let (mut most, mut samples) = (0, 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !status.exists() {
        assert!(std::time::Instant::now() < deadline, "the job did not end within 120 s");
        most = most.max(std::fs::metadata(&log).map_or(0, |m| std::os::unix::fs::MetadataExt::blocks(&m) * 512));
        samples += 1;
    }
    assert!(samples > 20, "only {samples} samples");
    let bound = (1 << 20) + (64 << 10) + 8192;
    assert!(
        most <= bound,
        "the log took {most} bytes on disk under --slurm --log-max 1M (a local job's bound: {bound})"
    );
}
