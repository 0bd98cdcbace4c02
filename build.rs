//! How the binaries are linked; each choice costs a launch or a watcher less.
//!
//! 1. Non-PIE executables. A position-independent executable has its
//!    relocated read-only data (vtables, string tables) written at
//!    start-up, so every process, and so every job's watcher, carries its
//!    own private copy (about 380 KiB). Linked at a fixed address, those
//!    pages stay clean and are shared by all watchers.
//! 2. The unwinder linked in (libgcc_eh.a, as `gcc -static-libgcc` does),
//!    so that no process loads libgcc_s.so: one shared object less to map,
//!    relocate and initialise (its constructor runs CPUID, which traps to
//!    the hypervisor in a VM), about 0.1 ms of every launch on the
//!    benchmark's machine. Only where the C compiler has the archive
//!    (glibc targets with GCC), and not in fuzzing builds, whose C++
//!    runtime brings libgcc_s anyway; elsewhere the default stands.
//!
//! Writes nothing.
use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rustc-link-arg-bins=-no-pie");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CC");
    let gnu = std::env::var("CARGO_CFG_TARGET_ENV").is_ok_and(|e| e == "gnu");
    let fuzzing = std::env::var_os("CARGO_CFG_FUZZING").is_some();
    if gnu && !fuzzing {
        if let Some(dir) = archive_dir("libgcc_eh.a") {
            println!("cargo:rustc-link-search=native={dir}");
            println!("cargo:rustc-link-lib=static=gcc_eh");
        }
    }
}

/// The directory of one of the C compiler's own archives, if it has it.
fn archive_dir(name: &str) -> Option<String> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(cc).arg(format!("-print-file-name={name}")).output().ok()?;
    let path = String::from_utf8(out.stdout).ok()?;
    let path = Path::new(path.trim());
    // Without it, the compiler prints the bare name back.
    (out.status.success() && path.is_absolute() && path.is_file()).then(|| path.parent()?.to_str().map(String::from))?
}
