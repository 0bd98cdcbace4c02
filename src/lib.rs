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

/// One row of the picker: what is shown and matched, and the preview text:
/// the log's tail, after the header lines where it reaches the log's start
/// (none for a log that holds its own header).
pub struct PickRow {
    pub line: String,
    pub preview: std::path::PathBuf,
    pub header: Option<String>,
}

pub const NAMES: [&str; 5] = ["run", "runs", "runlog", "runrm", "job"];

/// The entry point of every binary, called as C's `main`: std's runtime
/// set-up is skipped (it costs a launch about a tenth of a millisecond:
/// reading /proc/self/maps for the main thread's stack guard, and a
/// signal stack that every watcher would keep). What of it matters is done
/// here: descriptors 0 to 2 are open (on /dev/null if the caller closed
/// them, so that no file of the store ever becomes our stdout), SIGPIPE is
/// ignored (a closed pipe is an error to handle, not a death), and stdout
/// is flushed before returning.
pub fn start(picker: Option<Picker>) -> std::ffi::c_int {
    open_std_fds();
    // SAFETY: setting a signal's disposition to ignored.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let code = main(picker);
    let _ = std::io::Write::flush(&mut std::io::stdout());
    code
}

/// Opens /dev/null on any of descriptors 0 to 2 that is closed (one poll,
/// as std's runtime does).
fn open_std_fds() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd { fd, events: 0, revents: 0 });
    // SAFETY: poll on a valid array, no timeout.
    if unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) } <= 0 {
        return;
    }
    for p in fds.iter().filter(|p| p.revents & libc::POLLNVAL != 0) {
        // SAFETY: opening /dev/null; the lowest free descriptor is `p.fd`,
        // since the ones below it are open by now.
        let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        if fd >= 0 && fd != p.fd {
            // SAFETY: closing the descriptor just opened.
            unsafe { libc::close(fd) };
        }
    }
}

/// Routes on `argv[0]`.
fn main(picker: Option<Picker>) -> i32 {
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
        return step::main(&args[2..], cmd::ntfy_config("job", None));
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
