//! Standard output and standard error, the only way to them: colours, the
//! escaping of terminal text, and the JSON formatter that leaves no control
//! character raw. Every line of text goes through `clean` (ids, paths,
//! topics, key names, error messages: any of them may come from a planted
//! entry); only a job's log is copied as it is. A closed pipe
//! (`runs | head`) ends the command quietly.

use crate::exit::{Exit, Fail, Res};
use serde_json::ser::{CompactFormatter, Formatter, PrettyFormatter};
use std::io::{self, IsTerminal, Write};

/// Standard output; a closed pipe (`runs | head`) ends the command quietly.
pub struct Out {
    w: io::BufWriter<io::StdoutLock<'static>>,
    pub color: bool,
}

impl Out {
    pub fn new() -> Out {
        let stdout = io::stdout();
        let color = stdout.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        Out { w: io::BufWriter::new(stdout.lock()), color }
    }
    /// One line of text, control characters escaped.
    pub fn line(&mut self, s: &str) -> Res<()> {
        self.bytes(clean(s).as_bytes())?;
        self.bytes(b"\n")
    }
    /// A line built by `view::summary`: its text parts cleaned there, and
    /// colours (`paint`) the only escape sequences in it.
    pub fn painted(&mut self, s: &str) -> Res<()> {
        self.bytes(s.as_bytes())?;
        self.bytes(b"\n")
    }
    pub fn bytes(&mut self, b: &[u8]) -> Res<()> {
        self.w.write_all(b).map_err(out_err)
    }
    /// `v` as pretty JSON and a newline, streamed (a big listing is never
    /// one string in memory).
    pub fn json(&mut self, v: &impl serde::Serialize) -> Res<()> {
        let mut ser = serde_json::Serializer::with_formatter(&mut self.w, SafeJson(PrettyFormatter::default()));
        v.serialize(&mut ser).map_err(json_err)?;
        self.bytes(b"\n")
    }
    /// A JSON array of one compact object a line (`[`, the objects each on
    /// a line of its own, `]`): what a listing of many jobs prints, each
    /// written as it comes.
    pub fn json_lines<T: serde::Serialize>(&mut self, items: impl IntoIterator<Item = T>) -> Res<()> {
        let mut first = true;
        for item in items {
            self.bytes(if first { b"[\n" } else { b",\n" })?;
            first = false;
            let mut ser = serde_json::Serializer::with_formatter(&mut self.w, SafeJson(CompactFormatter));
            item.serialize(&mut ser).map_err(json_err)?;
        }
        self.bytes(if first { b"[]\n" } else { b"\n]\n" })
    }
    pub fn flush(&mut self) -> Res<()> {
        self.w.flush().map_err(out_err)
    }
    pub fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
}

/// One compact JSON object as `json_lines` writes it, made ahead (by the
/// threads that read a listing's jobs).
pub fn json_line(v: &impl serde::Serialize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(1024);
    let mut ser = serde_json::Serializer::with_formatter(&mut bytes, SafeJson(CompactFormatter));
    // Writing into memory, of types that always serialize.
    let _ = v.serialize(&mut ser);
    bytes.shrink_to_fit();
    bytes
}

fn json_err(e: serde_json::Error) -> Fail {
    match e.io_error_kind() {
        Some(kind) => out_err(io::Error::from(kind)),
        None => Fail::from(format!("writing JSON: {e}")),
    }
}

/// JSON (pretty or compact, as `F` lays it out) in which no text holds DEL
/// or a C1 control character (U+0080 to U+009F; a terminal may take U+009B
/// for the start of an escape sequence): they are written as `\u` escapes,
/// which every JSON reader decodes to the same text. serde_json already
/// escapes C0 characters.
struct SafeJson<F>(F);

fn write_without_c1<W: ?Sized + io::Write>(w: &mut W, text: &str) -> io::Result<()> {
    let mut from = 0;
    for (i, c) in text.char_indices() {
        if ('\u{7f}'..='\u{9f}').contains(&c) {
            w.write_all(&text.as_bytes()[from..i])?;
            write!(w, "\\u{:04x}", u32::from(c))?;
            from = i + c.len_utf8();
        }
    }
    w.write_all(&text.as_bytes()[from..])
}

impl<F: Formatter> Formatter for SafeJson<F> {
    fn write_string_fragment<W: ?Sized + io::Write>(&mut self, w: &mut W, fragment: &str) -> io::Result<()> {
        write_without_c1(w, fragment)
    }
    /// A `--context` value, kept as given: outside its strings JSON is
    /// ASCII, so the same escapes are valid there.
    fn write_raw_fragment<W: ?Sized + io::Write>(&mut self, w: &mut W, fragment: &str) -> io::Result<()> {
        write_without_c1(w, fragment)
    }
    fn begin_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + io::Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + io::Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object_value(w)
    }
}

fn out_err(e: io::Error) -> Fail {
    if e.kind() == io::ErrorKind::BrokenPipe {
        Fail::quiet(Exit::Ok)
    } else {
        Fail::from(format!("writing to standard output: {e}"))
    }
}

/// One line to standard error, control characters escaped.
pub fn warn(line: &str) {
    let _ = writeln!(io::stderr().lock(), "{}", clean(line));
}

/// Text from a job (its command, its name) made safe for a terminal:
/// control characters are shown escaped, never sent.
pub fn clean(s: &str) -> String {
    if !s.chars().any(|c| c.is_control()) {
        return s.to_string();
    }
    s.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

/// A word the user typed, made safe as [`clean`] does, with the bytes that
/// are not UTF-8 shown as `\xNN` rather than lost.
pub fn clean_os(s: &std::ffi::OsStr) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut text = String::new();
    for chunk in s.as_bytes().utf8_chunks() {
        text.push_str(&clean(chunk.valid()));
        for b in chunk.invalid() {
            text.push_str(&format!("\\x{b:02x}"));
        }
    }
    text
}

/// Human-readable bytes: `512 B`, `3.4 KiB`, `12.0 MiB`.
pub use crate::store::human_bytes;
