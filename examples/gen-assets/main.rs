//! Writes the shell completions (`completions/`) and the man pages (`man/`)
//! from the clap definitions in src/cli.rs:
//!
//! ```text
//! cargo run --example gen-assets            # into the repository
//! cargo run --example gen-assets -- OUTDIR  # somewhere else
//! ```
//!
//! Both directories are the generator's alone: files it no longer makes
//! are removed. tests/assets.rs fails when the committed files drift from
//! what this writes. An example, not a build script or a hidden flag, so
//! that clap_complete and clap_mangen stay out of the five binaries.

mod assets;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn main() -> ExitCode {
    let out =
        std::env::args_os().nth(1).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    match write_all(&out) {
        Ok(n) => {
            eprintln!("gen-assets: wrote {n} files under {}", out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gen-assets: {e}");
            ExitCode::FAILURE
        }
    }
}

fn write_all(out: &Path) -> Result<usize, String> {
    let files = assets::generate();
    for dir in assets::DIRS {
        remove_stale(&out.join(dir), out, &files)?;
    }
    for (rel, text) in &files {
        let path = out.join(rel);
        let parent = path.parent().expect("a generated file is inside a directory");
        std::fs::create_dir_all(parent).map_err(|e| format!("creating {}: {e}", parent.display()))?;
        if std::fs::read(&path).ok().as_deref() != Some(text.as_bytes()) {
            std::fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
        }
    }
    Ok(files.len())
}

/// Removes the files under `dir` that are not generated any more.
fn remove_stale(dir: &Path, out: &Path, files: &[(String, String)]) -> Result<(), String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("reading {}: {e}", dir.display())),
    };
    for entry in entries {
        let path = entry.map_err(|e| format!("reading {}: {e}", dir.display()))?.path();
        if path.is_dir() {
            remove_stale(&path, out, files)?;
            continue;
        }
        let rel = path.strip_prefix(out).expect("walked from under out").to_string_lossy();
        if !files.iter().any(|(f, _)| *f == rel) {
            std::fs::remove_file(&path).map_err(|e| format!("removing {}: {e}", path.display()))?;
        }
    }
    Ok(())
}
