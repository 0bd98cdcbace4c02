//! The job picker: the only file that imports skim. Cancelling (Esc,
//! Ctrl-C) is a quiet exit 130, decided by the caller.
//!
//! The rows come newest first and are shown so: the prompt at the top,
//! the newest job right under it (skim's reverse layout). Skim's info line
//! is hidden (its second counter, the cursor's row and horizontal scroll,
//! meant nothing to a reader); a header says how many jobs and the order.
//!
//! Typing sorts the rows by how well they match, best first, so that a
//! job's exact name comes first and Enter opens it (among `b250`
//! and `b425`, `b250` matches both fuzzily). An empty query matches every
//! row equally and skim breaks ties by input order: newest first. The
//! header's count is of all the jobs, not of the rows a filter leaves.

use bgrun::PickRow;
use skim::prelude::*;
use std::path::PathBuf;

struct Row {
    line: String,
    log: PathBuf,
    header: Option<String>,
}

impl SkimItem for Row {
    fn text(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.line)
    }
    fn preview(&self, ctx: PreviewContext) -> ItemPreview {
        let n = ctx.height.max(10);
        let hole = self.log.parent().and_then(bgrun::store::read_dropped);
        let tail =
            bgrun::store::tail_lines_shown(&self.log, self.header.as_deref(), n, 256 * 1024, hole).unwrap_or_default();
        ItemPreview::Text(String::from_utf8_lossy(&tail).into_owned())
    }
}

pub fn pick(rows: Vec<PickRow>, preview_below: bool) -> Result<Option<usize>, String> {
    let lines: Vec<String> = rows.iter().map(|r| r.line.clone()).collect();
    let items: Vec<Row> = rows.into_iter().map(|r| Row { line: r.line, log: r.preview, header: r.header }).collect();
    let layout = if preview_below { "down:50%" } else { "right:50%" };
    let n = rows_len(&lines);
    let opts = SkimOptionsBuilder::default()
        .prompt("log> ".to_string())
        .preview(String::new())
        .preview_window(layout)
        .reverse(true)
        .no_info(true)
        .header(format!("{n}, newest first; type to filter (best match first), Enter shows the log, Esc cancels"))
        .build()
        .map_err(|e| e.to_string())?;
    let out = Skim::run_items(opts, items).map_err(|e| e.to_string())?;
    if out.is_abort {
        return Ok(None);
    }
    let Some(chosen) = out.selected_items.first().map(|m| m.item.text().into_owned()) else {
        return Err(format!("no job matches '{}'; nothing to show", out.query));
    };
    Ok(lines.iter().position(|l| *l == chosen))
}

/// "1 job", "33 jobs".
fn rows_len(lines: &[String]) -> String {
    match lines.len() {
        1 => "1 job".to_string(),
        n => format!("{n} jobs"),
    }
}
