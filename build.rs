//! How the binaries are linked; each choice costs a launch or a watcher less.
//!
//! 1. Statically, where the C library's archives are installed (glibc's
//!    libc.a: Debian's libc6-dev, which the C compiler needs anyway; Fedora's
//!    glibc-static): no dynamic loader runs at start (no libc.so to map,
//!    relocate and initialise: about 0.15 ms of every launch on the
//!    benchmark's machine), and a job's watcher keeps no private copy of
//!    libc's and ld.so's relocated data (about 40 KiB of its PSS). glibc's
//!    name services for users and hosts (`files`, `dns`) are built in; any
//!    other NSS module named in /etc/nsswitch.conf is loaded from the
//!    system's glibc, which must then be the version built against
//!    (reinstall after a glibc upgrade).
//!    rustc links std's C libraries with `-Bdynamic -lc …` unless the whole
//!    build is `crt-static` (which would also reach the build scripts and
//!    proc-macros, loaded as shared objects): so this script gives the
//!    linker a directory searched first that holds only their archives
//!    (`libgcc_s` is the unwinder's, libgcc_eh.a), and `-static`. Where
//!    libc.a is missing, the build is dynamic, as below.
//! 2. Non-PIE executables. A position-independent executable has its
//!    relocated read-only data (vtables, string tables) written at
//!    start-up, so every process, and so every job's watcher, carries its
//!    own private copy (about 380 KiB). Linked at a fixed address, those
//!    pages stay clean and are shared by all watchers.
//! 3. Dynamic or not, the unwinder linked in (libgcc_eh.a, as `gcc
//!    -static-libgcc` does), so that no process loads libgcc_s.so: one
//!    shared object less to map, relocate and initialise (its constructor
//!    runs CPUID, which traps to the hypervisor in a VM).
//!
//! Only where the C compiler has the archives (glibc targets with GCC), and
//! not in fuzzing builds, whose C++ runtime brings libgcc_s anyway;
//! elsewhere the default stands. Writes only in OUT_DIR.
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rustc-link-arg-bins=-no-pie");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CC");
    let gnu = std::env::var("CARGO_CFG_TARGET_ENV").is_ok_and(|e| e == "gnu");
    let fuzzing = std::env::var_os("CARGO_CFG_FUZZING").is_some();
    if !gnu || fuzzing {
        return;
    }
    let Some(eh) = archive("libgcc_eh.a") else { return };
    if let Some(dir) = archives_dir(&eh) {
        println!("cargo:rustc-link-search=native={}", dir.display());
        println!("cargo:rustc-link-arg=-static");
        // Every executable of the package, tests too: what runs in the
        // tests is what is installed.
        println!("cargo:rustc-link-arg=-no-pie");
    }
    println!("cargo:rustc-link-search=native={}", eh.parent().unwrap_or(Path::new("/")).display());
    println!("cargo:rustc-link-lib=static=gcc_eh");
}

/// OUT_DIR/static, holding links to the archives of the C libraries std
/// names (`-lc`, `-lm`, …), if every one of them is installed.
fn archives_dir(eh: &Path) -> Option<PathBuf> {
    let libc = archive("libc.a")?;
    let from = libc.parent()?;
    let dir = PathBuf::from(std::env::var_os("OUT_DIR")?).join("static");
    std::fs::create_dir_all(&dir).ok()?;
    let mut links = vec![("libgcc_s.a".to_string(), eh.to_path_buf())];
    for lib in ["c", "m", "rt", "pthread", "dl", "util"] {
        let name = format!("lib{lib}.a");
        let target = from.join(&name);
        if !target.is_file() {
            return None;
        }
        links.push((name, target));
    }
    for (name, target) in links {
        let link = dir.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&target, &link).ok()?;
    }
    Some(dir)
}

/// One of the C compiler's archives, if it has it.
fn archive(name: &str) -> Option<PathBuf> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(cc).arg(format!("-print-file-name={name}")).output().ok()?;
    let path = String::from_utf8(out.stdout).ok()?;
    let path = PathBuf::from(path.trim());
    // Without it, the compiler prints the bare name back.
    (out.status.success() && path.is_absolute() && path.is_file()).then_some(path)
}
