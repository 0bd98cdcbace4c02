//! bgrun: run commands in the background so they survive the terminal, and
//! find out how they went.
//!
//! One library, five names. `main` only routes: the basename of `argv[0]`
//! picks the front (`run`, `runs`, `runlog`, `runrm`, `job`), the front
//! returns an [`Exit`] or a [`Fail`], and `main` prints `NAME: error`
//! (through `cmd::out`, which escapes control characters) and turns it
//! into the process's exit status. Nothing else here touches the
//! system.

pub mod cli;
mod cmd;
mod files;
mod launch;
pub mod ntfy;
mod proc;
mod queue;
mod slurm;
mod state;
mod step;
pub mod store;
mod watch;

use std::ffi::OsString;
use std::process::ExitCode;

/// Every exit status the five commands use, and nowhere else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    Error = 1,
    Usage = 2,
    WaitTimeout = 124,
    NotExecutable = 126,
    NotFound = 127,
    Cancelled = 130,
}

impl Exit {
    /// Every status, for the tables of help, man pages and README (a test
    /// checks that they list exactly these).
    pub const ALL: [Exit; 7] =
        [Exit::Ok, Exit::Error, Exit::Usage, Exit::WaitTimeout, Exit::NotExecutable, Exit::NotFound, Exit::Cancelled];
}

/// A front's failure: the status to exit with and the one-line message
/// (empty for a quiet exit, such as a closed pipe or a cancelled picker).
#[derive(Debug)]
pub struct Fail {
    pub code: Exit,
    pub msg: String,
}

impl Fail {
    pub fn new(code: Exit, msg: impl Into<String>) -> Fail {
        Fail { code, msg: msg.into() }
    }
    pub fn quiet(code: Exit) -> Fail {
        Fail { code, msg: String::new() }
    }
}

impl From<String> for Fail {
    fn from(msg: String) -> Fail {
        Fail::new(Exit::Error, msg)
    }
}

pub type Res<T> = Result<T, Fail>;

/// The embedded job picker, passed in by the one binary that links skim.
/// Given the rows (newest first) and a preview for each, and whether the
/// preview goes below the list (a terminal too narrow for both side by
/// side), it returns the index chosen, `Ok(None)` when cancelled, or an
/// error when it cannot run or Enter matched nothing.
pub type Picker = fn(rows: Vec<PickRow>, preview_below: bool) -> Result<Option<usize>, String>;

/// One row of the picker: what is shown and matched, and the preview text.
pub struct PickRow {
    pub line: String,
    pub preview: std::path::PathBuf,
}

pub const NAMES: [&str; 5] = ["run", "runs", "runlog", "runrm", "job"];

/// The entry point of every binary: route on `argv[0]`.
pub fn main(picker: Option<Picker>) -> ExitCode {
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
                return ExitCode::from(Exit::Usage as u8);
            }
        }
    }
    // The batch step of a Slurm job, run by Slurm on the node through any
    // of the five names: hidden from every help.
    if args.get(1).is_some_and(|a| a == launch::STEP_WORD) {
        return ExitCode::from(step::main(&args[2..], cmd::ntfy_config("job", None)) as u8);
    }
    let result = match name.as_str() {
        "run" => cmd::run::main(args),
        "runs" => cmd::runs::main(args),
        "runlog" => cmd::runlog::main(args, picker),
        "runrm" => cmd::runrm::main(args),
        _ => cmd::job::main(args),
    };
    match result {
        Ok(code) => ExitCode::from(code as u8),
        Err(fail) => {
            if !fail.msg.is_empty() {
                cmd::out::warn(&format!("{name}: {}", fail.msg));
            }
            ExitCode::from(fail.code as u8)
        }
    }
}
