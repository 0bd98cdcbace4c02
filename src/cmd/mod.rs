//! The fronts, one file each (`run`, `runs`, `runlog`, `runrm`, `job` and
//! its subcommands under `job/`), and what the fronts share: `out` (the
//! only way to standard output), `resolve` (what the user typed → a job),
//! `view` (the JSON view and the one-line summary), `follow` (waiting and
//! following), `removal` (what `runrm` and `job clean` share: which jobs a
//! removal keeps, the remove-print-count loop, the sweep of leftovers),
//! `launch_args` (a launch's arguments as one checked value, the
//! environment's defaults applied), `slurm` (stopping a Slurm job); and
//! here, parsing arguments, reading the environment (which only fronts
//! do) and opening the store.

mod follow;
pub mod job;
pub(crate) mod launch_args;
pub(crate) mod out;
pub mod remote;
mod removal;
mod resolve;
pub mod run;
pub mod runlog;
pub mod runrm;
pub mod runs;
mod slurm;
mod summary;
mod view;

use crate::exit::{Exit, Fail, Res};
use crate::store::{State, Store};
use std::ffi::OsString;
use std::io::{self, IsTerminal};
use std::path::PathBuf;

use out::clean;

/// Parses a front's arguments. Usage errors become one line naming the
/// flag or argument and what it needs, exit 2; `--help` and `--version`
/// print and exit 0.
pub fn parse<T: clap::Parser>(args: Vec<OsString>) -> Res<T> {
    // Each word as clap sees it (lossy) and as it is shown (escaped).
    let words: Vec<(String, String)> =
        args.iter().skip(1).map(|a| (a.to_string_lossy().into_owned(), out::clean_os(a))).collect();
    let shown = |word: &str| words.iter().find(|(w, _)| w == word).map_or_else(|| clean(word), |(_, s)| s.clone());
    T::try_parse_from(args).map_err(|e| {
        use clap::error::ErrorKind::*;
        use clap::error::{ContextKind, ContextValue};
        let named = |kind| match e.get(kind) {
            Some(ContextValue::String(s)) => Some(s.clone()),
            Some(ContextValue::Strings(v)) => Some(v.join(", ")),
            _ => None,
        };
        // What clap found near a mistyped word (`--name` for `--nmae`),
        // if anything.
        let near = |kind| named(kind).filter(|s| !s.is_empty());
        let usage = || {
            let text = e.render().to_string();
            let line = text.lines().find_map(|l| l.trim().strip_prefix("Usage: ").map(String::from));
            line.map(|u| format!(" (usage: {u})")).unwrap_or_else(|| " (see --help)".into())
        };
        match e.kind() {
            DisplayHelp | DisplayVersion | DisplayHelpOnMissingArgumentOrSubcommand => {
                let _ = e.print();
                let code = if e.kind() == DisplayHelpOnMissingArgumentOrSubcommand { Exit::Usage } else { Exit::Ok };
                Fail::quiet(code)
            }
            MissingRequiredArgument => {
                let what = named(ContextKind::InvalidArg).unwrap_or_else(|| "an argument".into());
                Fail::new(Exit::Usage, format!("missing {}{}", clean(&what), usage()))
            }
            UnknownArgument => {
                let flag = named(ContextKind::InvalidArg).unwrap_or_default();
                // `-la` is reported as `-l`: name the word as typed.
                let typed = words
                    .iter()
                    .find(|(w, _)| w.starts_with(&flag) && w.starts_with('-'))
                    .map_or_else(|| clean(&flag), |(_, s)| s.clone());
                let front = T::command().get_name().to_string();
                // A typo gets the flag it is near; the `--` hint is only
                // for a word near no flag.
                let hint = match (near(ContextKind::SuggestedArg), front.as_str(), words.first().map(|w| w.0.as_str()))
                {
                    (Some(flag), ..) => format!("; did you mean {}?", clean(&flag)),
                    (None, "run", _) => "; to run a command starting with '-', put -- before it".into(),
                    (None, "job", Some("run")) => {
                        "; quote the whole command (job run \"ls -la\") or put -- before it".into()
                    }
                    _ => " (see --help)".into(),
                };
                Fail::new(Exit::Usage, format!("unknown flag {}{hint}", cut(&typed)))
            }
            InvalidSubcommand => {
                let word = named(ContextKind::InvalidSubcommand).unwrap_or_default();
                let hint = near(ContextKind::SuggestedSubcommand)
                    .map_or(" (see --help)".into(), |s| format!("; did you mean {}?", clean(&s)));
                Fail::new(Exit::Usage, format!("unrecognized subcommand '{}'{hint}", cut(&shown(&word))))
            }
            _ => {
                let text = e.render().to_string();
                let first = text.lines().next().unwrap_or("invalid arguments");
                let mut first = first.strip_prefix("error: ").unwrap_or(first).to_string();
                // A huge value (a 10,000-character --name) is shown cut, so
                // the error stays one readable line.
                if let Some(ContextValue::String(v)) = e.get(ContextKind::InvalidValue) {
                    first = first.replacen(v.as_str(), &cut(v), 1);
                }
                // A closed set of values (`--state`) is listed.
                if let Some(ContextValue::Strings(valid)) = e.get(ContextKind::ValidValue) {
                    if !valid.is_empty() {
                        first = format!("{first}; possible values: {}", valid.join(", "));
                    }
                }
                Fail::new(Exit::Usage, format!("{} (see --help)", clean(&first)))
            }
        }
    })
}

/// A word shown in an error, cut at 40 characters (a 100 KB mistyped flag
/// stays one readable line).
fn cut(word: &str) -> String {
    match word.char_indices().nth(40) {
        Some((i, _)) => format!("{}…", &word[..i]),
        None => word.to_string(),
    }
}

pub fn usage(msg: impl Into<String>) -> Fail {
    Fail::new(Exit::Usage, msg)
}

pub fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The store, from RUN_DIR / XDG_DATA_HOME / HOME, its owner and modes
/// checked; nothing else (a front that should start what the queues owe
/// says so: `queue::catch_up`). A relative RUN_DIR is taken from the
/// working directory (the watcher leaves it, so the store's path must not
/// depend on it).
pub fn open_store() -> Res<Store> {
    let store =
        Store::from_env(std::env::var_os("RUN_DIR"), std::env::var_os("XDG_DATA_HOME"), std::env::var_os("HOME"))?;
    let store = if store.root().is_absolute() { store } else { Store::at(current_dir()?.join(store.root())) };
    store.check()?;
    Ok(store)
}

/// Starts what the queues owe (`queue::catch_up`); a queue whose lock
/// another command holds past a short wait is left to a later command,
/// and the front says so in one line.
pub fn catch_up(store: &Store, front: &str) {
    for q in crate::queue::catch_up(store) {
        let which = if q.is_empty() { "the queue of --after jobs".to_string() } else { format!("queue {q}") };
        out::warn(&format!("{front}: {which} is busy (another command holds its lock): not starting its jobs now"));
    }
}

pub fn current_dir() -> Res<PathBuf> {
    std::env::current_dir().map_err(|e| Fail::from(format!("reading the working directory: {e}")))
}

/// The newest `n` of `jobs` (oldest first), or all of them: `-n/--last`.
pub fn last<T>(mut jobs: Vec<T>, n: Option<usize>) -> Vec<T> {
    if let Some(n) = n {
        jobs.drain(..jobs.len().saturating_sub(n));
    }
    jobs
}

/// Exit status for a job's end: 0 if it succeeded, else 1.
pub fn exit_for(state: State) -> Exit {
    if state == State::Done {
        Exit::Ok
    } else {
        Exit::Error
    }
}

/// Is stdin/stderr a terminal (where a picker can run)?
pub fn interactive() -> bool {
    io::stdin().is_terminal() && io::stderr().is_terminal()
}
