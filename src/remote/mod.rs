//! Other hosts over SSH, with no daemon on either side: ssh is the
//! transport, and the far host's own bgrun does the work in its own store.
//!
//! - The local command (`run --on DEST …`, `runlog DEST:ID`) sends ssh one
//!   fixed command string that bash, zsh, fish and dash parse alike
//!   ([`ssh::REMOTE_COMMAND`]): it names bgrun's hidden entry point
//!   ([`SERVE_WORD`]), found on the remote PATH or in `~/.local/bin`.
//! - The entry point answers first with a header naming its protocol
//!   ([`proto::header`]), then reads the request on stdin: the front, its
//!   argument vector, the ntfy settings and secrets, each length-prefixed,
//!   so nothing is quoted for a shell and no secret is in any process's
//!   arguments.
//! - It runs the front, as a child of its own, in the far store, with its
//!   output going back over the connection; ids in that output are
//!   qualified `DEST:ID` and JSON entries carry `on` ([`qualify`], [`on`]).
//!   When the connection goes (Ctrl-C here, a dropped link) its stdin ends
//!   and the child is killed: the follower ends, never the job.
//! - `local` in `--on` is this machine, reached by the same entry point
//!   without ssh, so a listing of several hosts is built one way.
//!
//! Nothing of a remote job is written to the local store, and nothing is
//! cached: every command asks the host again.

pub mod proto;
pub mod ssh;

use std::sync::OnceLock;

/// The hidden first argument that makes any of the five names the entry
/// point of a remote call.
pub const SERVE_WORD: &str = "__bgrun-remote";

/// Set by the entry point for the front it runs: the destination its ids
/// are qualified with (empty for `local`). Read once and removed from the
/// environment before anything else, so no job inherits it.
pub const ON_VAR: &str = "BGRUN_SERVE_ON";

static ON: OnceLock<Option<String>> = OnceLock::new();

/// Takes [`ON_VAR`] out of the environment, once, at the start of the
/// process (single-threaded then).
pub fn take_serving() {
    let v = std::env::var_os(ON_VAR).map(|v| v.to_string_lossy().into_owned());
    if v.is_some() {
        std::env::remove_var(ON_VAR);
    }
    let _ = ON.set(v);
}

/// Is this process a front run for a remote call (its `--on` is then the
/// caller's, already acted on)?
pub fn serving() -> bool {
    ON.get().is_some_and(Option::is_some)
}

/// The destination this front answers for (`None` here, or for `local`).
pub fn on() -> Option<&'static str> {
    ON.get().and_then(|o| o.as_deref()).filter(|s| !s.is_empty())
}

/// A job's id as this front shows it: `DEST:ID` when it answers for DEST.
pub fn qualify(id: &str) -> String {
    match on() {
        Some(dest) => format!("{dest}:{id}"),
        None => id.to_string(),
    }
}

/// A job named as `DEST:ID` to the front that answers for DEST (`run --on
/// DEST --after DEST:ID`): `ID`. Any other word as it is.
pub fn unqualify(word: &str) -> &str {
    match (on(), split_qualified(word)) {
        (Some(me), Some((dest, id))) if dest == me => id,
        _ => word,
    }
}

/// The word that names this machine in `--on`.
pub const LOCAL: &str = "local";
/// The word that names this machine and every host of `RUN_HOSTS`.
pub const ALL: &str = "all";

/// A destination as ssh takes it (a `Host` alias, `host`, `user@host`):
/// not empty, not an option (`-oProxyCommand=…` would be one), no `:`
/// (which ends it in `DEST:ID`), `,` (which separates them), `/`,
/// whitespace or control characters.
pub fn parse_dest(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("an empty destination".into());
    }
    if s.starts_with('-') {
        return Err(format!("'{}': a destination cannot start with '-'", s.escape_debug()));
    }
    if let Some(c) = s.chars().find(|c| matches!(c, ':' | ',' | '/') || c.is_whitespace() || c.is_control()) {
        return Err(format!("'{}': a destination cannot contain {:?}", s.escape_debug(), c));
    }
    if s.len() > 255 {
        return Err(format!("a destination is at most 255 bytes (this one is {})", s.len()));
    }
    Ok(s.to_string())
}

/// `--on DEST[,DEST…]`: the destinations as typed (`local` and `all`
/// among them), in order, each once.
pub fn parse_on(s: &str) -> Result<Vec<String>, String> {
    if s.is_empty() {
        return Err("an empty list of destinations (local, all, or an ssh destination)".into());
    }
    let mut v: Vec<String> = Vec::new();
    for d in s.split(',') {
        let d = parse_dest(d)?;
        if !v.contains(&d) {
            v.push(d);
        }
    }
    Ok(v)
}

/// `all` → `local` and the hosts of `RUN_HOSTS` (`hosts`, as `--on`
/// takes them); each destination once, in order.
pub fn expand(dests: &[String], hosts: Option<&str>) -> Result<Vec<String>, String> {
    let mut v: Vec<String> = Vec::new();
    for d in dests {
        let more = if d == ALL {
            let mut all = vec![LOCAL.to_string()];
            if let Some(h) = hosts.filter(|h| !h.trim().is_empty()) {
                all.extend(parse_on(h.trim()).map_err(|e| format!("RUN_HOSTS: {e}"))?);
            }
            all.retain(|d| d != ALL);
            all
        } else {
            vec![d.clone()]
        };
        for d in more {
            if !v.contains(&d) {
                v.push(d);
            }
        }
    }
    Ok(v)
}

/// `DEST:ID` → (DEST, ID), when DEST is a destination and ID not empty.
pub fn split_qualified(word: &str) -> Option<(&str, &str)> {
    let (dest, id) = word.split_once(':')?;
    (parse_dest(dest).is_ok() && !id.is_empty()).then_some((dest, id))
}

/// The `Host` names of an ssh configuration's text: each word of a
/// `Host` line that is a plain destination (no pattern: `*`, `?`, `!`).
pub fn config_hosts(text: &str) -> Vec<String> {
    let mut v = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let (key, rest) = line.split_once(|c: char| c.is_whitespace() || c == '=').unwrap_or((line, ""));
        if !key.eq_ignore_ascii_case("host") {
            continue;
        }
        for w in rest.trim_start_matches(|c: char| c.is_whitespace() || c == '=').split_whitespace() {
            if !w.contains(['*', '?', '!']) && parse_dest(w).is_ok() {
                v.push(w.to_string());
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_destination_is_never_an_option_nor_holds_a_separator() {
        assert!(parse_dest("gpu1").is_ok());
        assert!(parse_dest("me@gpu1.example.org").is_ok());
        for bad in ["", "-oProxyCommand=x", "a:b", "a,b", "a b", "a/b", "a\nb"] {
            assert!(parse_dest(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_on("a,b,a").unwrap(), ["a", "b"]);
        assert!(parse_on("a,,b").is_err());
        assert!(parse_on("").is_err());
    }

    #[test]
    fn all_means_local_and_the_hosts_of_run_hosts() {
        let on = |s: &str| parse_on(s).unwrap();
        assert_eq!(expand(&on("all"), Some("h1,h2")).unwrap(), ["local", "h1", "h2"]);
        assert_eq!(expand(&on("h2,all"), Some("h1,h2")).unwrap(), ["h2", "local", "h1"]);
        assert_eq!(expand(&on("all"), None).unwrap(), ["local"]);
        assert!(expand(&on("all"), Some("h1,-x")).is_err());
    }

    #[test]
    fn the_hosts_of_an_ssh_config_are_its_host_names_not_its_patterns() {
        let text = "Host gpu1 gpu2\n  HostName 10.0.0.1\nhost=build\nHost *.lab !bad\nMatch host x\n  # Host no\n";
        assert_eq!(config_hosts(text), ["gpu1", "gpu2", "build"]);
    }

    #[test]
    fn a_qualified_id_splits_at_its_first_colon() {
        assert_eq!(split_qualified("h1:build_1"), Some(("h1", "build_1")));
        assert_eq!(split_qualified("me@h1:a:b"), Some(("me@h1", "a:b")));
        assert_eq!(split_qualified("build_1"), None);
        assert_eq!(split_qualified("h1:"), None);
        assert_eq!(split_qualified(":x"), None);
    }
}
