//! The last test binary cargo runs (they run in the order of their names):
//! prints how many tests of this `cargo test` run were not run, and why,
//! each with the command that would let it run (see `common::need`). It
//! has no libtest harness (Cargo.toml), so its output always shows. Under
//! `BGRUN_TEST_ALL=1` a test that was not run fails this too.

mod common;

use std::process::ExitCode;

fn main() -> ExitCode {
    let dir = common::not_run_dir();
    let text = std::fs::read_to_string(dir.join("lines")).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    let lines: Vec<&str> = text.lines().collect();
    let tests = if lines.len() == 1 { "test" } else { "tests" };
    println!("\n{} {tests} not run{}", lines.len(), if lines.is_empty() { "" } else { ":" });
    if lines.is_empty() {
        return ExitCode::SUCCESS;
    }
    for line in &lines {
        println!("  {line}");
    }
    if common::all_must_run() {
        println!("BGRUN_TEST_ALL is set: every test must run");
        return ExitCode::FAILURE;
    }
    println!("(set BGRUN_TEST_ALL=1 to make this a failure, as CI does)\n");
    ExitCode::SUCCESS
}
