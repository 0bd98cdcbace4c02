//! bgrun: run commands in the background so they survive the terminal, and
//! find out how they went.
//!
//! One library, five names. `main` only routes: the basename of `argv[0]`
//! picks the front (`run`, `runs`, `runlog`, `runrm`, `job`), the front
//! returns an [`Exit`] or a [`Fail`], and `main` prints `NAME: error`
//! (through `cmd::out`, which escapes control characters) and turns it
//! into the process's exit status (`exit`: every status, in one enum).
//! Nothing else here touches the system: the process's set-up before
//! `main` is `proc`'s, and the picker's interface is `picker`'s.

pub mod cli;
mod cmd;
mod exit;
mod files;
mod launch;
pub mod ntfy;
mod picker;
mod proc;
mod queue;
mod remote;
mod slurm;
mod state;
pub mod store;
mod watch;

pub use exit::{Exit, Fail, Res};
pub use picker::{PickRow, Picker};

use std::ffi::OsString;

pub const NAMES: [&str; 5] = ["run", "runs", "runlog", "runrm", "job"];

/// The entry point of every binary, called as C's `main`: std's runtime
/// set-up is skipped (it costs a launch about a tenth of a millisecond:
/// reading /proc/self/maps for the main thread's stack guard, and a
/// signal stack that every watcher would keep). What of it matters is done
/// first (`proc::set_up_std`: descriptors 0 to 2 open, SIGPIPE ignored),
/// and stdout is flushed before returning.
pub fn start(picker: Option<Picker>) -> std::ffi::c_int {
    proc::set_up_std();
    let code = main(picker);
    let _ = std::io::Write::flush(&mut std::io::stdout());
    code
}

/// Routes on `argv[0]`.
fn main(picker: Option<Picker>) -> i32 {
    remote::take_serving();
    let mut args: Vec<OsString> = std::env::args_os().collect();
    let mut name = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !NAMES.contains(&name.as_str()) {
        // Called by another name (say `bgrun runs`): take the next word.
        match args.get(1).map(|a| a.to_string_lossy().into_owned()) {
            Some(next) if NAMES.contains(&next.as_str()) => {
                args.remove(0);
                name = next;
            }
            _ => {
                cmd::out::warn(&format!(
                    "bgrun: called as '{name}'; call it as one of {} (a link of that name works)",
                    NAMES.join(", ")
                ));
                return Exit::Usage as i32;
            }
        }
    }
    // The batch step of a Slurm job, run by Slurm on the node through any
    // of the five names: hidden from every help.
    if args.get(1).is_some_and(|a| a == launch::STEP_WORD) {
        return watch::slurm_step::main(&args[2..], cmd::launch_args::ntfy_config("job", None));
    }
    // The far side of `--on DEST` and `DEST:ID`: hidden too.
    if args.get(1).is_some_and(|a| a == remote::SERVE_WORD) {
        return cmd::remote::serve::main();
    }
    let result = match name.as_str() {
        "run" => cmd::run::main(args),
        "runs" => cmd::runs::main(args),
        "runlog" => cmd::runlog::main(args, picker),
        "runrm" => cmd::runrm::main(args),
        _ => cmd::job::main(args),
    };
    match result {
        Ok(code) => code as i32,
        Err(fail) => {
            if !fail.msg.is_empty() {
                cmd::out::warn(&format!("{name}: {}", fail.msg));
            }
            fail.code as i32
        }
    }
}
