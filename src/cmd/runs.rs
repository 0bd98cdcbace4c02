//! `runs`: one line per job, newest last; `--json` for programs.

use super::out::{warn, Out};
use super::parse;
use super::resolve::load_all;
use super::view::{summary, view};
use crate::{cli, Exit, Res};
use std::ffi::OsString;

pub fn main(args: Vec<OsString>) -> Res<Exit> {
    let a: cli::Runs = parse(args)?;
    if a.complete_ids {
        return complete_ids();
    }
    let store = super::store()?;
    let jobs = load_all(&store, "runs")?;
    let mut out = Out::new();
    if a.json {
        let views: Vec<_> = jobs.iter().map(|(j, s)| view(j, *s)).collect();
        out.json(&views)?;
    } else if jobs.is_empty() {
        warn(&format!("no jobs in {}", store.root().display()));
    } else {
        for (job, state) in &jobs {
            let line = summary(&out, job, *state);
            out.painted(&line)?;
        }
    }
    out.flush()?;
    Ok(Exit::Ok)
}

/// `runs --complete-ids`, for the shell completions: every job id, then
/// every distinct name, one a line (a name with a space is left out: the
/// shells would split it). Quiet on any trouble (it runs under a
/// prompt) and fast: no liveness checks.
fn complete_ids() -> Res<Exit> {
    let Ok(store) = super::store() else { return Ok(Exit::Ok) };
    let Ok((jobs, _damaged)) = store.list() else { return Ok(Exit::Ok) };
    let mut out = Out::new();
    let mut names: Vec<&str> = jobs.iter().map(|j| j.meta.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let words = jobs.iter().map(|j| j.id.as_str()).chain(names);
    for word in words.filter(|w| !w.is_empty() && !w.chars().any(|c| c.is_control() || c.is_whitespace())) {
        out.line(word)?;
    }
    out.flush()?;
    Ok(Exit::Ok)
}
