//! `runs`: one line per job, newest last; `--json` for programs.

use super::{load_all, parse, summary, view, Out};
use crate::{cli, Exit, Res};
use std::ffi::OsString;

pub fn main(args: Vec<OsString>) -> Res<Exit> {
    let a: cli::Runs = parse(args)?;
    let store = super::store()?;
    let jobs = load_all(&store, "runs")?;
    let mut out = Out::new();
    if a.json {
        let views: Vec<_> = jobs.iter().map(|(j, s)| view(j, *s)).collect();
        let text = serde_json::to_string_pretty(&views).map_err(|e| format!("writing JSON: {e}"))?;
        out.line(&text)?;
    } else if jobs.is_empty() {
        eprintln!("no jobs in {}", store.root().display());
    } else {
        for (job, state) in &jobs {
            let line = summary(&out, job, *state);
            out.line(&line)?;
        }
    }
    out.flush()?;
    Ok(Exit::Ok)
}
