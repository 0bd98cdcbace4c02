//! Slurm in one place: its commands (`sbatch`, `squeue`, `scancel`), each
//! run with a time limit and a bound on what is read of its output, here;
//! what its answers mean for a job's state in `states` (the rest of that
//! judgement, the record of the end and what the step holds, is
//! `state`'s). The batch step that runs a job on its node is the
//! watcher's Slurm variant (`watch::slurm_step`).
//!
//! - `submit`: `sbatch --parsable …`, the batch step being `job
//!   __slurm-step STORE ID`; returns Slurm's job id.
//! - `query`: one `squeue -h -t all -j ID,ID… -o '%i|%T|%r|%N'` for any
//!   number of jobs; a job Slurm no longer remembers is absent from it.
//! - `cancel`: `scancel ID`.

mod states;

pub use states::Row;

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a Slurm command may take before it is killed and its call
/// fails (a controller that does not answer makes them retry for minutes).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The most read of a Slurm command's stdout or stderr.
const OUTPUT_MAX: u64 = 4 << 20;

/// The Slurm commands are there (`sbatch` on PATH).
pub fn installed(path: Option<&std::ffi::OsStr>) -> bool {
    let path = path.unwrap_or(std::ffi::OsStr::new("/usr/local/bin:/usr/bin:/bin"));
    std::env::split_paths(path).any(|d| d.join("sbatch").is_file())
}

/// Submits the batch step `step` (a command line run by `sh`), with `args`
/// (resources, output, working directory) before it. Returns Slurm's job
/// id, or the one line sbatch gave as its reason.
pub fn submit(args: &[OsString], step: &str) -> Result<u64, String> {
    let mut c = Command::new("sbatch");
    c.arg("--parsable").args(args).arg("--wrap").arg(step);
    let out = call(c, "sbatch")?;
    if !out.ok {
        let why = out.why();
        // Refused is the controller's word; this is no word at all.
        if why.contains("Unable to contact slurm controller") {
            return Err(format!("sbatch could not reach Slurm's controller ({why}); the job was not submitted"));
        }
        return Err(format!("sbatch refused the job: {why}"));
    }
    let first = out.stdout.lines().next().unwrap_or("").trim();
    // `--parsable` prints "ID" or "ID;CLUSTER". A job on another cluster
    // would be asked about, and cancelled, on this one: taken back.
    let (id, cluster) = first.split_once(';').unwrap_or((first, ""));
    let id: u64 = id.parse().map_err(|_| format!("sbatch: unexpected answer {:?}", cut(first, 80)))?;
    if !cluster.is_empty() {
        let mut c = Command::new("scancel");
        c.args(["-M", cluster]).arg(id.to_string());
        let _ = call(c, "scancel");
        return Err(format!(
            "sbatch submitted to cluster {:?}: only the local cluster is supported (cancelled)",
            cut(cluster, 80)
        ));
    }
    Ok(id)
}

/// Why the `--sbatch` options `args` are refused, if they are: another
/// cluster (`-M`, `--clusters`: every later squeue and scancel would ask
/// the local one about another job) or an array (`-a`, `--array`: the
/// command would run once per task), or `-W`, `--wait` (the launch would
/// block until the job ends). Long options are matched as
/// getopt does, by any prefix.
pub fn refused_option(args: &[String]) -> Option<String> {
    const REFUSED: [(&str, char, &str); 3] = [
        ("clusters", 'M', "another cluster is not supported (squeue and scancel ask the local one)"),
        ("array", 'a', "job arrays are not supported (a job's command runs once)"),
        ("wait", 'W', "not supported: the launch returns once Slurm has the job (`job wait ID` waits for it)"),
    ];
    // sbatch's short options that take no argument (any other one takes
    // the rest of its word, or the next word).
    const NO_ARG: &str = "HhIkOQsuVvW";
    for w in args {
        if w == "--" {
            break;
        }
        if let Some(long) = w.strip_prefix("--") {
            let name = long.split('=').next().unwrap_or(long);
            if let Some((_, _, why)) = REFUSED.iter().find(|(full, _, _)| name.len() >= 3 && full.starts_with(name)) {
                return Some(format!("{w}: {why}"));
            }
        } else if let Some(shorts) = w.strip_prefix('-') {
            for c in shorts.chars() {
                if let Some((_, _, why)) = REFUSED.iter().find(|(_, s, _)| *s == c) {
                    return Some(format!("{w}: {why}"));
                }
                if !NO_ARG.contains(c) {
                    break;
                }
            }
        }
    }
    None
}

/// Why the environment (`var`) is refused for a submission, if it is: it
/// sets sbatch's cluster or array as those options would.
pub fn refused_env(var: impl Fn(&str) -> Option<OsString>) -> Option<String> {
    ["SBATCH_CLUSTERS", "SLURM_CLUSTERS", "SBATCH_ARRAY_INX", "SBATCH_WAIT"]
        .into_iter()
        .find(|k| var(k).is_some_and(|v| !v.is_empty()))
        .map(|k| format!("{k} is set: another cluster, job arrays and --wait are not supported (unset it)"))
}

/// `path` as a Slurm filename pattern: `%` doubled (Slurm would expand
/// `%u`, `%j`…); a path that is not UTF-8, or holds a backslash (which
/// makes Slurm drop every backslash), is refused naming `what`.
pub fn pattern_path(what: &str, path: &Path) -> Result<String, String> {
    let Some(text) = path.to_str() else {
        return Err(format!("--slurm: {what} {} is not UTF-8: Slurm cannot be given it", path.display()));
    };
    if text.contains('\\') {
        return Err(format!("--slurm: {what} {text} holds a backslash, which Slurm's file name patterns drop"));
    }
    Ok(text.replace('%', "%%"))
}

/// What squeue says of the jobs `ids` (one call for all of them); a job it
/// no longer remembers (finished over `MinJobAge` ago) is absent.
pub fn query(ids: &[u64]) -> Result<HashMap<u64, Row>, String> {
    let mut rows = HashMap::new();
    if ids.is_empty() {
        return Ok(rows);
    }
    // One id alone that Slurm forgot is an error ("Invalid job id
    // specified"); in a list of two or more it is merely absent.
    let mut list: Vec<String> = ids.iter().map(u64::to_string).collect();
    if list.len() == 1 {
        list.push(list[0].clone());
    }
    let mut c = Command::new("squeue");
    c.args(["-h", "-t", "all", "-o", "%i|%T|%r|%N", "-j"]).arg(list.join(","));
    let out = call(c, "squeue")?;
    if !out.ok {
        return Err(format!("squeue: {}", out.why()));
    }
    for line in out.stdout.lines() {
        let mut f = line.splitn(4, '|');
        let (Some(id), Some(state), Some(reason), Some(nodes)) = (f.next(), f.next(), f.next(), f.next()) else {
            continue;
        };
        // An array job's id is "ID_N": not ours.
        let Ok(id) = id.trim().parse::<u64>() else { continue };
        let row =
            Row { state: state.trim().to_string(), reason: reason.trim().to_string(), nodes: nodes.trim().into() };
        rows.insert(id, row);
    }
    Ok(rows)
}

/// The time left before Slurm's time limit ends the job `id` (squeue `%L`);
/// none when unlimited or unknown.
pub fn time_left(id: u64) -> Option<Duration> {
    let mut c = Command::new("squeue");
    c.args(["-h", "-o", "%L", "-j"]).arg(format!("{id},{id}"));
    let out = call_within(c, "squeue", Duration::from_secs(5)).ok()?;
    parse_slurm_time(out.stdout.lines().next()?.trim())
}

/// `[DAYS-][HOURS:]MINUTES:SECONDS`, as squeue prints a time.
fn parse_slurm_time(s: &str) -> Option<Duration> {
    let (days, rest) = match s.split_once('-') {
        Some((d, r)) => (d.parse::<u64>().ok()?, r),
        None => (0, s),
    };
    let parts: Vec<u64> = rest.split(':').map(|p| p.parse().ok()).collect::<Option<_>>()?;
    let secs = match parts[..] {
        [m, s] => m * 60 + s,
        [h, m, s] => h * 3600 + m * 60 + s,
        _ => return None,
    };
    Some(Duration::from_secs(days * 86_400 + secs))
}

/// `scancel ID`: Slurm ends the job (a pending one at once; a running one
/// gets SIGTERM, then SIGKILL after the cluster's KillWait).
pub fn cancel(id: u64) -> Result<(), String> {
    let mut c = Command::new("scancel");
    c.arg(id.to_string());
    let out = call(c, "scancel")?;
    if out.ok {
        Ok(())
    } else {
        Err(format!("scancel {id}: {}", out.why()))
    }
}

struct Output {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Output {
    /// The reason a command gave: its last line of stderr, without the
    /// `sbatch: error: ` it starts with.
    fn why(&self) -> String {
        let line = self.stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no reason given");
        let line = line.rsplit_once("error: ").map_or(line, |(_, r)| r).trim();
        cut(line, 300)
    }
}

fn call(c: Command, name: &str) -> Result<Output, String> {
    call_within(c, name, CALL_TIMEOUT)
}

/// Runs `c` with no stdin, reading at most `OUTPUT_MAX` of its stdout and
/// stderr; kills it after `limit`.
fn call_within(mut c: Command, name: &str, limit: Duration) -> Result<Output, String> {
    c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("{name}: not found on PATH (is Slurm installed here?)"),
        _ => format!("running {name}: {e}"),
    })?;
    // Each pipe is read to its end by a thread of its own; the end of both
    // (the command exited) wakes this one at once, with no polling.
    let (tx, rx) = std::sync::mpsc::channel();
    for (n, r) in [
        (0, child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>)),
        (1, child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>)),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(r) = r {
                let _ = r.take(OUTPUT_MAX).read_to_end(&mut buf);
            }
            let _ = tx.send((n, String::from_utf8_lossy(&buf).into_owned()));
        });
    }
    let deadline = Instant::now() + limit;
    let late = || format!("{name}: no answer within {} s (is the Slurm controller up?)", limit.as_secs());
    let (mut stdout, mut stderr) = (String::new(), String::new());
    for _ in 0..2 {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok((0, text)) => stdout = text,
            Ok((_, text)) => stderr = text,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(late());
            }
        }
    }
    let mut pause = Duration::from_millis(1);
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(late());
            }
            Err(e) => return Err(format!("waiting for {name}: {e}")),
        }
    };
    Ok(Output { ok: status.success(), stdout, stderr })
}

fn cut(s: &str, max: usize) -> String {
    let one: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if one.chars().count() <= max {
        return one;
    }
    let mut t: String = one.chars().take(max - 1).collect();
    t.push('…');
    t
}

/// `s` quoted for `sh` (always, so any byte is safe).
pub fn sh_quote(s: &Path) -> String {
    format!("'{}'", s.to_string_lossy().replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clusters_arrays_and_wait_are_refused_in_any_spelling_and_other_options_pass() {
        let refused = |a: &[&str]| refused_option(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>()).is_some();
        for bad in [
            &["--clusters=gpu"][..],
            &["--clusters", "gpu"],
            &["--clu=gpu"],
            &["-M", "gpu"],
            &["-Mgpu"],
            &["-vM", "gpu"],
            &["--array=1-3"],
            &["--arr", "1-3"],
            &["-a1-3"],
            &["--qos=x", "-a", "1"],
            &["--wait"],
            &["-W"],
            &["-vW"],
        ] {
            assert!(refused(bad), "{bad:?}");
        }
        let fine = [&["--qos=long", "--account=lab"][..], &["-A", "a"], &["-J", "aM"], &["-pgpu"], &["--", "-M"]];
        for ok in fine.into_iter().chain([&["--wait-all-nodes=1"][..]]) {
            assert!(!refused(ok), "{ok:?}");
        }
    }

    #[test]
    fn paths_given_to_slurm_double_percent_and_refuse_backslashes_and_non_utf8() {
        use std::os::unix::ffi::OsStrExt;
        assert_eq!(pattern_path("x", Path::new("/s/100%u/%j")).as_deref(), Ok("/s/100%%u/%%j"));
        assert!(pattern_path("x", Path::new("/s/a\\b")).is_err());
        assert!(pattern_path("x", Path::new(std::ffi::OsStr::from_bytes(b"/s/\xff"))).is_err());
    }

    #[test]
    fn slurm_times_read_as_squeue_prints_them() {
        assert_eq!(parse_slurm_time("1:00"), Some(Duration::from_secs(60)));
        assert_eq!(parse_slurm_time("2:03:04"), Some(Duration::from_secs(7384)));
        assert_eq!(parse_slurm_time("1-00:00:01"), Some(Duration::from_secs(86_401)));
        assert_eq!(parse_slurm_time("UNLIMITED"), None);
        assert_eq!(parse_slurm_time("NOT_SET"), None);
    }
}
