//! The embedded job picker's interface: what the one binary that links
//! skim (`runlog`) hands to the router, and the rows `runlog` gives it.
//! The picker itself is `pick.rs`, compiled into that binary alone.

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
