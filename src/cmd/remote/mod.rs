//! The fronts' side of other hosts (`--on DEST`, `DEST:ID`): each front
//! calls one of these right after parsing its arguments, before it opens
//! the store, so nothing of a remote job is ever written here. Each
//! returns `None` when the command is this machine's (no `--on`, `--on
//! local`, an unqualified id), or when this process is itself a front run
//! for a remote call (its `--on` was the caller's). The transport and the
//! protocol are `crate::remote`'s; `serve` is the entry point the far side
//! runs; `install` puts this machine's binaries on a host (`job install`).

pub mod install;
pub mod serve;

use super::out::{clean, warn, Out};
use crate::exit::{Exit, Fail, Res};
use crate::remote::{self, proto::Request, ssh, LOCAL};
use serde_json::value::RawValue;
use std::ffi::OsString;
use std::io::Read;
use std::sync::{Arc, Mutex};

/// The most of one host's answer a listing reads.
const MAX_ANSWER: u64 = 256 << 20;

/// `RUN_SSH`, split into words as `sh` would (no expansion); `ssh`.
pub(super) fn ssh_words() -> Res<Vec<String>> {
    match super::env("RUN_SSH") {
        None => Ok(vec!["ssh".into()]),
        Some(s) => match crate::cli::parse_words(&s) {
            Ok(w) if !w.is_empty() => Ok(w),
            Ok(_) => Err(super::usage("RUN_SSH: no command in it")),
            Err(e) => Err(super::usage(format!("RUN_SSH: {e}"))),
        },
    }
}

/// The request for `front` with `args` (after the program's name): the
/// ntfy settings and secrets of this environment go with it, on the
/// connection's stdin, never in an argument.
fn request(dest: &str, front: &str, args: &[OsString]) -> Request {
    let vars = std::env::vars_os()
        .filter(|(k, v)| k.to_str().is_some_and(|k| k.starts_with("NTFY_")) && !v.is_empty())
        .collect();
    let on = if dest == LOCAL { String::new() } else { dest.to_string() };
    Request { on, front: front.to_string(), args: args.iter().skip(1).cloned().collect(), vars }
}

/// The exit status a far front ended with, as one of ours.
fn exit_of(code: i32) -> Exit {
    Exit::ALL.into_iter().find(|e| *e as i32 == code).unwrap_or(Exit::Error)
}

/// `--on DEST` of a front that acts on one host (`run`, `job run`):
/// the whole command runs there, its output streamed back.
pub fn on_one(front: &str, on: Option<&[String]>, args: &[OsString]) -> Option<Res<Exit>> {
    let on = on.filter(|_| !remote::serving())?;
    let dests = match remote::expand(on, super::env("RUN_HOSTS").as_deref()) {
        Ok(d) => d,
        Err(e) => return Some(Err(super::usage(format!("--on: {e}")))),
    };
    match dests.as_slice() {
        [d] if d == LOCAL => None,
        [d] => Some(forward(front, d, args)),
        _ => Some(Err(super::usage(format!("--on: {front} starts a job on one host; {} are several", on.join(","))))),
    }
}

/// The ids a front acts on (`runlog`, `job status|logs|stop|wait|retry`):
/// when they are `DEST:ID` (and no job here has that id or name), the
/// command runs on DEST with the ids unqualified. Ids of several hosts in
/// one command are refused.
pub fn on_ids(front: &str, ids: &[String], args: &[OsString]) -> Option<Res<Exit>> {
    if remote::serving() {
        return None;
    }
    let mut dest: Option<&str> = None;
    let mut local = false;
    for word in ids {
        match remote::split_qualified(word).filter(|_| !is_local_job(word)) {
            // Read there as a flag, never an id (no id or name starts so).
            Some((_, id)) if id.starts_with('-') => {
                return Some(Err(super::usage(format!("{}: a job's id or name cannot start with '-'", clean(word)))))
            }
            Some((d, _)) if d == LOCAL => local = true,
            Some((d, _)) if dest.is_some_and(|x| x != d) => {
                return Some(Err(super::usage(format!(
                    "jobs of several hosts ({}, {d}) in one command: give one host's jobs at a time",
                    dest.unwrap_or_default()
                ))))
            }
            Some((d, _)) => dest = Some(d),
            None => local = true,
        }
    }
    let dest = dest?;
    if local {
        return Some(Err(super::usage(format!(
            "jobs of this machine and of {dest} in one command: give one host's jobs at a time"
        ))));
    }
    // Each qualified id, as typed, becomes the far side's plain id.
    let args: Vec<OsString> = args
        .iter()
        .enumerate()
        .map(|(i, a)| match a.to_str().and_then(remote::split_qualified) {
            Some((d, id)) if i > 0 && d == dest && ids.iter().any(|w| w.as_str() == a) => id.into(),
            _ => a.clone(),
        })
        .collect();
    Some(forward(front, dest, &args))
}

/// Is `word` an id, a name or an id prefix of a job in this machine's
/// store (read only)? Then `DEST:ID` is taken as that job.
fn is_local_job(word: &str) -> bool {
    let Ok(store) = super::open_store() else { return false };
    if matches!(store.get(word), Ok(Some(_)) | Err(_)) {
        return true;
    }
    let Ok((jobs, _)) = store.list() else { return false };
    let keys: Vec<(&str, &str)> = jobs.iter().map(|j| (j.id.as_str(), j.meta.name.as_str())).collect();
    !matches!(crate::store::match_job(&keys, word), crate::store::JobMatch::NoMatch)
}

/// Runs `front` with `args` on `dest`, streaming its output here as it
/// comes (a follower's too); its stderr lines are prefixed `DEST: `.
fn forward(front: &str, dest: &str, args: &[OsString]) -> Res<Exit> {
    let words = ssh_words()?;
    let req = request(dest, front, args);
    let label = dest.to_string();
    let mut s = ssh::call(&words, dest, &req, move |l| warn(&format!("{label}: {l}")))
        .map_err(|t| Fail::from(t.line(&clean(dest))))?;
    let mut out = Out::new();
    let mut b = vec![0u8; 64 * 1024];
    loop {
        match s.out.read(&mut b) {
            Ok(0) => break,
            Ok(n) => {
                out.bytes(&b[..n])?;
                out.flush()?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let (status, said) = s.finish();
    ended(dest, status, said)
}

/// The far front's exit status, or what ended the call.
fn ended(dest: &str, status: Option<std::process::ExitStatus>, said: Option<String>) -> Res<Exit> {
    match status.and_then(|s| s.code()) {
        Some(255) => Err(Fail::from(format!(
            "{}: the connection was lost{}; whatever runs there goes on",
            clean(dest),
            said.map(|s| format!(" ({})", clean(&s))).unwrap_or_default()
        ))),
        Some(c) => Ok(exit_of(c)),
        None => Err(Fail::quiet(Exit::Cancelled)),
    }
}

/// What one host answered a listing.
struct Answer {
    dest: String,
    out: Vec<u8>,
    err: Vec<String>,
    result: Res<Exit>,
}

/// `--on DEST[,DEST…]` of a front that lists or removes (`runs`, `job
/// list`, `runrm`, `job clean`): every host is asked at once, one
/// connection each; the answers are printed in the order given (JSON
/// arrays joined into one; a removal's lines prefixed `DEST: `). A host
/// that fails is one line; the others are still printed, and the exit
/// status is then 1.
pub fn on_many(front: &str, on: Option<&[String]>, args: &[OsString], json: bool) -> Option<Res<Exit>> {
    let on = on.filter(|_| !remote::serving())?;
    let dests = match remote::expand(on, super::env("RUN_HOSTS").as_deref()) {
        Ok(d) => d,
        Err(e) => return Some(Err(super::usage(format!("--on: {e}")))),
    };
    if dests == [LOCAL] {
        return None;
    }
    Some(gather(front, &dests, args, json))
}

fn gather(front: &str, dests: &[String], args: &[OsString], json: bool) -> Res<Exit> {
    let words = ssh_words()?;
    let removal = front == "runrm" || (front == "job" && args.get(1).is_some_and(|a| a == "clean"));
    let answers: Vec<Answer> = std::thread::scope(|scope| {
        let asks: Vec<_> = dests.iter().map(|d| scope.spawn(|| ask(&words, front, d, args))).collect();
        asks.into_iter().zip(dests).map(|(h, d)| h.join().unwrap_or_else(|_| Answer::failed(d, "lost"))).collect()
    });
    let mut out = Out::new();
    let mut code = Exit::Ok;
    let mut entries: Vec<Box<RawValue>> = Vec::new();
    for a in answers {
        for l in &a.err {
            warn(&format!("{}: {l}", clean(&a.dest)));
        }
        match a.result {
            Ok(c) if json && !a.out.is_empty() => match serde_json::from_slice::<Vec<Box<RawValue>>>(&a.out) {
                Ok(v) => {
                    entries.extend(v);
                    code = worse(code, c);
                }
                Err(e) => {
                    warn(&format!("{front}: {}: the answer is not a JSON array: {e}", clean(&a.dest)));
                    code = Exit::Error;
                }
            },
            // A removal's lines (`removed ID`) name no host: each gets its own.
            Ok(c) if removal && a.dest != LOCAL => {
                for line in a.out.split_inclusive(|&b| b == b'\n') {
                    out.bytes(format!("{}: ", clean(&a.dest)).as_bytes())?;
                    out.bytes(line)?;
                }
                code = worse(code, c);
            }
            Ok(c) => {
                out.bytes(&a.out)?;
                code = worse(code, c);
            }
            Err(f) => {
                out.flush()?;
                warn(&format!("{front}: {}", f.msg));
                code = Exit::Error;
            }
        }
    }
    if json {
        out.json_lines(entries.iter())?;
    }
    out.flush()?;
    Ok(code)
}

fn worse(a: Exit, b: Exit) -> Exit {
    if a == Exit::Ok {
        b
    } else {
        a
    }
}

impl Answer {
    fn failed(dest: &str, msg: &str) -> Answer {
        Answer { dest: dest.into(), out: Vec::new(), err: Vec::new(), result: Err(Fail::from(msg.to_string())) }
    }
}

/// One host's whole answer to a listing.
fn ask(words: &[String], front: &str, dest: &str, args: &[OsString]) -> Answer {
    let req = request(dest, front, args);
    let err = Arc::new(Mutex::new(Vec::new()));
    let sink = err.clone();
    // At most 1,000 lines kept of what a host says on stderr.
    let live = move |l: &str| {
        if let Ok(mut v) = sink.lock() {
            if v.len() < 1000 {
                v.push(l.to_string());
            }
        }
    };
    let mut s = match ssh::call(words, dest, &req, live) {
        Ok(s) => s,
        Err(t) => return Answer::failed(dest, &t.line(&clean(dest))),
    };
    let mut out = Vec::new();
    let read = (&mut s.out).take(MAX_ANSWER).read_to_end(&mut out);
    let (status, said) = s.finish();
    let mut result = ended(dest, status, said);
    if let Err(e) = read {
        result = Err(Fail::from(format!("{}: reading its answer: {e}", clean(dest))));
    }
    let err = err.lock().map(|v| v.clone()).unwrap_or_default();
    Answer { dest: dest.into(), out, err, result }
}

/// `runs --complete-hosts`, for the shell completions: `local`, `all`,
/// the hosts of RUN_HOSTS, then the `Host` names of ~/.ssh/config (not
/// its patterns), one a line, each once. Quiet on any trouble.
pub fn complete_hosts() -> Res<Exit> {
    let mut hosts: Vec<String> = vec![LOCAL.into(), remote::ALL.into()];
    if let Some(h) = super::env("RUN_HOSTS") {
        hosts.extend(remote::parse_on(h.trim()).unwrap_or_default());
    }
    if let Some(home) = std::env::var_os("HOME") {
        let mut text = String::new();
        let config = std::path::Path::new(&home).join(".ssh/config");
        if let Ok(f) = std::fs::File::open(config) {
            let _ = f.take(1 << 20).read_to_string(&mut text);
        }
        hosts.extend(remote::config_hosts(&text));
    }
    let mut out = Out::new();
    let mut seen = Vec::new();
    for h in hosts {
        if !seen.contains(&h) {
            out.line(&h)?;
            seen.push(h);
        }
    }
    out.flush()?;
    Ok(Exit::Ok)
}
