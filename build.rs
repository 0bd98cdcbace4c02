//! Links the five binaries as non-PIE executables. A position-independent
//! executable has its relocated read-only data (vtables, string tables)
//! written at start-up, so every process, and so every job's watcher,
//! carries its own private copy (about 380 KiB). Linked at a fixed address,
//! those pages stay clean and are shared by all watchers. Writes nothing.
fn main() {
    println!("cargo:rustc-link-arg-bins=-no-pie");
    println!("cargo:rerun-if-changed=build.rs");
}
