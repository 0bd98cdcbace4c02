//! The store's files read directly: meta.json, planted job directories,
//! hidden leftovers, whole files.

use super::*;
use bgrun::store::{End, Meta};
use serde_json::Value;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Every name in a directory, hidden ones included, sorted (none if it does
/// not exist).
pub fn entries(dir: &Path) -> Vec<OsString> {
    let mut v: Vec<OsString> = match fs::read_dir(dir) {
        Ok(rd) => rd.flatten().map(|e| e.file_name()).collect(),
        Err(_) => vec![],
    };
    v.sort();
    v
}

/// Every hidden entry anywhere under the store: what a half-done write,
/// launch or removal would leave.
pub fn hidden_leftovers(store: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![store.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if e.file_name().as_bytes().first() == Some(&b'.') && e.file_name() != ".keys" {
                found.push(p.clone());
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(p);
            }
        }
    }
    found
}

/// Checks a job's files are whole: meta.json reads as a Meta naming the
/// job, and status (if any) reads as an end.
pub fn assert_whole(dir: &Path) {
    let id = dir.file_name().expect("a job directory").to_string_lossy().into_owned();
    match fs::read(dir.join("meta.json")) {
        Ok(bytes) => {
            let m: Meta = serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("{id}/meta.json is half-written: {e}: {}", String::from_utf8_lossy(&bytes)));
            assert_eq!(m.id, id, "{id}/meta.json names another job");
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => panic!("reading {id}/meta.json: {e}"),
    }
    match fs::read_to_string(dir.join("status")) {
        Ok(text) => assert!(End::parse(&text).is_some(), "{id}/status is half-written: {text:?}"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => panic!("reading {id}/status: {e}"),
    }
}

/// A copy of the job directory `from` under the name `id` in `store`,
/// with `edit` applied to its meta.json.
pub fn plant(from: &Path, store: &Path, id: &OsStr, edit: impl FnOnce(&mut Value)) -> PathBuf {
    let to = store.join(id);
    fs::create_dir(&to).expect("making a planted job directory");
    for e in fs::read_dir(from).expect("reading a job directory").flatten() {
        fs::copy(e.path(), to.join(e.file_name())).expect("copying a job file");
    }
    let mut m = meta_at(&to);
    m["id"] = Value::String(id.to_string_lossy().into_owned());
    edit(&mut m);
    fs::write(to.join("meta.json"), serde_json::to_vec_pretty(&m).expect("JSON")).expect("writing meta.json");
    to
}

/// A job's meta.json, parsed.
pub fn meta(env: &Env, id: &str) -> Value {
    meta_at(&env.job_dir(id))
}

/// The meta.json in a job directory, parsed.
pub fn meta_at(dir: &Path) -> Value {
    serde_json::from_slice(&fs::read(dir.join("meta.json")).expect("reading meta.json")).expect("meta.json is JSON")
}

/// A number of meta.json or `runs --json`, as an i32.
pub fn int(v: &Value) -> i32 {
    v.as_i64().unwrap_or_else(|| panic!("not a number: {v}")) as i32
}

/// The entries of the store, hidden ones included (none if it is missing).
pub fn store_entries(env: &Env) -> Vec<String> {
    match fs::read_dir(&env.store) {
        Ok(rd) => rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => vec![],
    }
}
