//! The remote entry point (`runs __bgrun-remote`, hidden): what the far
//! side of `--on DEST` and `DEST:ID` runs. It answers with its header
//! before reading anything (so a caller of another protocol learns it),
//! reads the request from stdin, and runs the front asked for as a child,
//! in this host's store, with the caller's ntfy settings in its
//! environment and [`remote::ON_VAR`] naming the destination its ids are
//! qualified with. The child's output goes straight back over the
//! connection; the child is killed if the connection ends first
//! (`proc::wait_tethered`).

use super::super::out::{warn, Out};
use crate::exit::Exit;
use crate::remote::{self, proto};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

pub fn main() -> i32 {
    let mut out = Out::new();
    if out.bytes(proto::header().as_bytes()).and_then(|_| out.flush()).is_err() {
        return Exit::Error as i32;
    }
    drop(out);
    let req = match proto::Request::read(&mut std::io::stdin().lock()) {
        Ok(r) => r,
        Err(e) => {
            warn(&format!("bgrun remote entry point: {e}"));
            return Exit::Usage as i32;
        }
    };
    if !crate::NAMES.contains(&req.front.as_str()) {
        warn(&format!("bgrun remote entry point: no front '{}'", req.front.escape_debug()));
        return Exit::Usage as i32;
    }
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            warn(&format!("bgrun remote entry point: finding this program: {e}"));
            return Exit::Error as i32;
        }
    };
    // Only the ntfy settings travel: nothing else of the caller's
    // environment is taken (PATH, LD_*: this host's own).
    let vars = req.vars.iter().filter(|(k, _)| k.to_str().is_some_and(|k| k.starts_with("NTFY_")));
    let child = Command::new(exe)
        .arg0(&req.front)
        .args(&req.args)
        .env(remote::ON_VAR, &req.on)
        .envs(vars.map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .spawn();
    match child.and_then(crate::proc::wait_tethered) {
        Ok(code) => code,
        Err(e) => {
            warn(&format!("bgrun remote entry point: running {}: {e}", req.front));
            Exit::Error as i32
        }
    }
}
