//! The last test binary cargo runs (they run in the order of their names,
//! and the library has no doc-tests): prints how many tests of this
//! `cargo test` run were not run, and why, each with the command that
//! would let it run (see `common::need`). One test is one record however
//! long its reason. It has no libtest harness (Cargo.toml), so its output
//! always shows, last. Under `BGRUN_TEST_ALL=1` a test that was not run
//! fails this too.

mod common;

use std::process::ExitCode;

fn main() -> ExitCode {
    let dir = common::not_run_dir();
    let records = common::not_run_records(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    let tests = if records.len() == 1 { "test" } else { "tests" };
    println!("\n{} {tests} not run{}", records.len(), if records.is_empty() { "" } else { ":" });
    if records.is_empty() {
        return ExitCode::SUCCESS;
    }
    for record in &records {
        println!("  {record}");
    }
    if common::all_must_run() {
        println!("BGRUN_TEST_ALL is set: every test must run");
        return ExitCode::FAILURE;
    }
    println!("(set BGRUN_TEST_ALL=1 to make this a failure, as CI does)\n");
    ExitCode::SUCCESS
}
