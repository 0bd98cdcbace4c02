//! A Slurm job's launch: the job directory published whole, then sbatch;
//! Slurm's id recorded once sbatch accepted it; all undone if it refused.

use super::Launched;
use crate::exit::{Fail, Res};
use crate::store::{self, Meta, SlurmSpec, Store};
use crate::{proc, slurm};
use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

/// Submits a Slurm job: claims the key, publishes the job directory whole,
/// calls sbatch, records Slurm's id; undoes it all if sbatch refuses.
pub(super) fn submit(
    store: &Store,
    mut meta: Meta,
    mut spec: SlurmSpec,
    timeout: Option<Duration>,
    after: &[String],
) -> Res<Launched> {
    // `--after` between Slurm jobs is Slurm's own dependency: it starts the
    // job once those ended COMPLETED (exit 0), and never if one did not.
    let mut depends = Vec::new();
    for id in after {
        let job = store.get(id).ok().flatten().ok_or_else(|| format!("--after: no job '{id}'"))?;
        match job.slurm.as_ref().and_then(|s| s.id) {
            Some(n) if job.is_slurm() => depends.push(n.to_string()),
            _ => {
                return Err(Fail::from(format!(
                    "--after {id}: not a Slurm job (with --slurm, --after names Slurm jobs: Slurm waits for them)"
                )))
            }
        }
    }
    if let Some(why) = slurm::refused_option(&spec.sbatch) {
        return Err(Fail::new(crate::exit::Exit::Usage, format!("--sbatch: {why}")));
    }
    if let Some(why) = slurm::refused_env(|k| std::env::var_os(k)) {
        return Err(Fail::from(format!("--slurm: {why}")));
    }
    // Every path handed to Slurm, checked before anything is made.
    slurm::pattern_path("the job store", store.root())?;
    if meta.cwd_hex.is_some() {
        return Err(Fail::from(format!(
            "--slurm: the working directory {} is not UTF-8: Slurm cannot be given it",
            meta.cwd
        )));
    }
    meta.after = after.to_vec();
    let bin = std::env::current_exe().map_err(|e| format!("--slurm: finding this program's path: {e}"))?;
    spec.bin =
        bin.to_str().ok_or_else(|| format!("--slurm: this program's path {} is not UTF-8", bin.display()))?.to_string();
    meta.watcher_pid = Some(proc::my_pid());
    meta.watcher_start = proc::stat(proc::my_pid()).map(|s| s.start);
    meta.slurm = Some(spec.clone());
    if let Some(key) = &meta.key {
        match store.claim_key(key, &proc::pid_taken)? {
            store::Claim::Taken(id) => return Ok(Launched::Existing(id)),
            store::Claim::Mine => {}
        }
    }
    let key = meta.key.clone();
    let release = |store: &Store| {
        if let Some(key) = &key {
            store.release_key(key, &Store::pending_target());
        }
    };
    let published = store.stage(&meta).and_then(|staged| {
        let dir = store.publish(&staged, &mut meta);
        if dir.is_err() {
            store.discard(&staged);
        }
        // Closing the staged files frees the reserved status for the step.
        dir
    });
    let dir = match published {
        Ok(d) => d,
        Err(e) => {
            release(store);
            return Err(Fail::from(e));
        }
    };
    // Says whether the store is as it was: the directory gone, or not.
    let undo = |store: &Store, msg: String| {
        let left = match store.remove(&meta.id) {
            Ok(_) => "nothing was left in the store".to_string(),
            Err(e) => format!("and {} is left in the store: {e}", meta.id),
        };
        release(store);
        Err(Fail::from(format!("{msg}; {left}")))
    };
    let log = store::log_path(&dir);
    // Slurm expands `%x` in an output path: given as `%%`, checked above.
    let output = match slurm::pattern_path("the job's log", &log) {
        Ok(p) => p,
        Err(e) => return undo(store, e),
    };
    let mut args: Vec<OsString> = vec![
        format!("--job-name={}", meta.id).into(),
        format!("--output={output}").into(),
        "--open-mode=append".into(),
        // One job, one run: a job Slurm requeued (after a node failure)
        // would find its end recorded and not run again.
        "--no-requeue".into(),
        join_flag("--chdir=", Path::new(&meta.cwd)),
    ];
    if let Some(p) = &spec.partition {
        args.push(format!("--partition={p}").into());
    }
    if let Some(n) = spec.cpus {
        args.push(format!("--cpus-per-task={n}").into());
    }
    if let Some(m) = &spec.mem {
        args.push(format!("--mem={m}").into());
    }
    if let Some(n) = spec.gpus {
        args.push(format!("--gpus={n}").into());
    }
    if let Some(t) = timeout {
        // Slurm counts whole minutes; the step ends the job on the second.
        args.push(format!("--time={}", t.as_secs().div_ceil(60).max(1)).into());
    }
    if !depends.is_empty() {
        // A dependency that can no longer be met cancels the job (Slurm
        // would keep it pending for ever): it shows `skipped`.
        args.push(format!("--dependency=afterok:{}", depends.join(":")).into());
        args.push("--kill-on-invalid-dep=yes".into());
    }
    args.extend(spec.sbatch.iter().map(OsString::from));
    let step = format!(
        "exec {} {STEP_WORD} {} {}",
        slurm::sh_quote(&bin),
        slurm::sh_quote(store.root()),
        slurm::sh_quote(Path::new(&meta.id))
    );
    let slurm_id = match slurm::submit(&args, &step) {
        Ok(n) => n,
        Err(e) => return undo(store, e),
    };
    if let Err(e) = store::record_slurm_id(&dir, slurm_id) {
        let _ = slurm::cancel(slurm_id);
        return undo(store, e);
    }
    if let Some(key) = &meta.key {
        if let Err(e) = store.set_key(key, &meta.id) {
            let end = format!("could not record key: {e}");
            let _ = std::fs::OpenOptions::new().append(true).open(&log).map(|f| store::append_note(&f, &log, &end));
        }
    }
    Ok(Launched::Submitted { id: meta.id.clone(), slurm_id, log })
}

/// The hidden first argument that makes any of the five binaries the batch
/// step of a Slurm job: `BIN __slurm-step STORE ID`.
pub const STEP_WORD: &str = "__slurm-step";

fn join_flag(flag: &str, path: &Path) -> OsString {
    let mut s = OsString::from(flag);
    s.push(path.as_os_str());
    s
}
