//! The bytes of a remote call. Nothing here is parsed by a shell.
//!
//! The entry point's answer starts with one line, before it reads
//! anything: `bgrun-remote PROTOCOL VERSION`. Then the front's own output.
//! (The request starts with another word, so that a far program that
//! echoes its input, `cat`, is never taken for an answer.)
//!
//! The request, on the entry point's stdin:
//!
//! ```text
//! bgrun-request PROTOCOL\n
//! LEN\nON          the destination ids are qualified with (empty: local)
//! LEN\nFRONT       run, runs, runlog, runrm or job
//! N\n              then N arguments: LEN\nBYTES each
//! M\n              then M variables: LEN\nNAME=VALUE each
//! ```
//!
//! Every length and count is bounded, so a peer that sends garbage gets
//! an error, never a huge allocation. After the request the caller keeps
//! the stream open and sends nothing: its end is the connection's.

use std::ffi::OsString;
use std::io::{self, BufRead, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

/// Bumped whenever the request or what a front prints changes in a way
/// the other side cannot read.
pub const PROTOCOL: u32 = 1;
const MAGIC: &str = "bgrun-remote";
const ASK: &str = "bgrun-request";
/// The most one field (an argument, a variable) may take.
const MAX_FIELD: usize = 1 << 20;
/// The most arguments or variables.
const MAX_COUNT: usize = 100_000;
/// The most the whole request may take.
const MAX_TOTAL: usize = 16 << 20;

/// The entry point's first line.
pub fn header() -> String {
    format!("{MAGIC} {PROTOCOL} {}\n", env!("CARGO_PKG_VERSION"))
}

/// A header line read back: `Some((protocol, version))` if `line` is one.
pub fn parse_header(line: &str) -> Option<(u32, String)> {
    let mut w = line.trim_end().split(' ');
    if w.next()? != MAGIC {
        return None;
    }
    let p = w.next()?.parse().ok()?;
    Some((p, w.next().unwrap_or("?").to_string()))
}

/// Is `line` the first line of a request (a far program echoing it)?
pub fn is_request(line: &str) -> bool {
    line.starts_with(ASK) && line[ASK.len()..].starts_with(' ')
}

/// What the entry point is asked to run.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    pub on: String,
    pub front: String,
    pub args: Vec<OsString>,
    pub vars: Vec<(OsString, OsString)>,
}

impl Request {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = format!("{ASK} {PROTOCOL}\n").into_bytes();
        let field = |b: &mut Vec<u8>, f: &[u8]| {
            let _ = writeln!(b, "{}", f.len());
            b.extend_from_slice(f);
        };
        field(&mut b, self.on.as_bytes());
        field(&mut b, self.front.as_bytes());
        let _ = writeln!(b, "{}", self.args.len());
        for a in &self.args {
            field(&mut b, a.as_bytes());
        }
        let _ = writeln!(b, "{}", self.vars.len());
        for (k, v) in &self.vars {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            field(&mut b, &kv);
        }
        b
    }

    /// Reads one request; an error says what was wrong (another protocol,
    /// a bound passed, the stream cut short).
    pub fn read(r: &mut impl BufRead) -> Result<Request, String> {
        let mut total = 0usize;
        let first = line(r, &mut total)?;
        match first.split_once(' ') {
            Some((ASK, p)) if p == PROTOCOL.to_string() => {}
            Some((ASK, p)) => return Err(format!("the caller speaks protocol {p}, this bgrun {PROTOCOL}")),
            _ => return Err("not a bgrun request".into()),
        }
        let text = |b: Vec<u8>| String::from_utf8(b).map_err(|_| "a field is not UTF-8".to_string());
        let on = text(field(r, &mut total)?)?;
        let front = text(field(r, &mut total)?)?;
        let n = count(r, &mut total)?;
        let mut args = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            args.push(OsString::from_vec(field(r, &mut total)?));
        }
        let m = count(r, &mut total)?;
        let mut vars = Vec::with_capacity(m.min(64));
        for _ in 0..m {
            let kv = field(r, &mut total)?;
            let eq = kv.iter().position(|&c| c == b'=').filter(|&i| i > 0).ok_or("a variable without a name")?;
            vars.push((OsString::from_vec(kv[..eq].to_vec()), OsString::from_vec(kv[eq + 1..].to_vec())));
        }
        Ok(Request { on, front, args, vars })
    }
}

/// One short line (a number, the first line), without its newline.
fn line(r: &mut impl BufRead, total: &mut usize) -> Result<String, String> {
    let mut b = Vec::new();
    r.by_ref().take(64).read_until(b'\n', &mut b).map_err(|e| format!("reading the request: {e}"))?;
    if b.pop() != Some(b'\n') {
        return Err("the request was cut short".into());
    }
    *total += b.len() + 1;
    String::from_utf8(b).map_err(|_| "not a bgrun request".into())
}

fn number(r: &mut impl BufRead, total: &mut usize) -> Result<usize, String> {
    line(r, total)?.parse().map_err(|_| "a length that is not a number".to_string())
}

fn count(r: &mut impl BufRead, total: &mut usize) -> Result<usize, String> {
    let n = number(r, total)?;
    if n > MAX_COUNT {
        return Err(format!("{n} fields (at most {MAX_COUNT})"));
    }
    Ok(n)
}

fn field(r: &mut impl BufRead, total: &mut usize) -> Result<Vec<u8>, String> {
    let n = number(r, total)?;
    if n > MAX_FIELD || *total + n > MAX_TOTAL {
        return Err(format!("a request over {MAX_TOTAL} bytes, or a field over {MAX_FIELD}"));
    }
    let mut b = vec![0; n];
    io::Read::read_exact(r, &mut b).map_err(|_| "the request was cut short".to_string())?;
    *total += n;
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_comes_back_byte_for_byte() {
        let req = Request {
            on: "h1".into(),
            front: "run".into(),
            args: vec!["run".into(), "a b\n'\"$x`".into(), OsString::from_vec(vec![0xff, 0, b'\n']), "".into()],
            vars: vec![("NTFY_TOKEN".into(), "s=e\ncret".into())],
        };
        let b = req.encode();
        assert_eq!(Request::read(&mut &b[..]).unwrap(), req);
        // Cut anywhere: an error, never a panic.
        for i in 0..b.len() {
            assert!(Request::read(&mut &b[..i]).is_err(), "cut at {i}");
        }
    }

    #[test]
    fn garbage_and_other_protocols_are_refused_with_a_reason() {
        let e = |s: &[u8]| Request::read(&mut &s[..]).unwrap_err();
        assert_eq!(e(b"bgrun-request 99\n"), "the caller speaks protocol 99, this bgrun 1");
        assert_eq!(e(b"bgrun-remote 1\n"), "not a bgrun request");
        // What a far `cat` would echo is no answer.
        let req = Request { on: String::new(), front: "runs".into(), args: vec![], vars: vec![] };
        assert_eq!(parse_header(&String::from_utf8_lossy(&req.encode())), None);
        assert_eq!(e(b"hello\n"), "not a bgrun request");
        assert!(e(b"bgrun-request 1\n0\n3\nrun99999999999\n").contains("fields"));
        assert!(e(format!("bgrun-request 1\n{}\n", MAX_FIELD + 1).as_bytes()).contains("over"));
        assert_eq!(parse_header(&header()), Some((PROTOCOL, env!("CARGO_PKG_VERSION").into())));
        assert_eq!(parse_header("bgrun-remote x"), None);
    }
}
