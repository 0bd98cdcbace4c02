//! The one binary that links skim: it hands the picker to the router.
#[path = "../pick.rs"]
mod pick;

fn main() -> std::process::ExitCode {
    bgrun::main(Some(pick::pick))
}
