//! `job install DEST`: this machine's bgrun put on a host without building
//! there. The binaries are linked statically where glibc's archives were
//! installed at build time (`build.rs`); one that is not is copied only to
//! a host whose glibc is as new. The five commands go to the host's
//! `~/.local/bin` (where the remote entry point looks when its PATH lacks
//! them), with the man pages and completions found here (install.sh's
//! places), as one tar stream over one ssh connection, unpacked by the
//! host's `tar`. The host's architecture (`uname -m`) must be this
//! machine's, or nothing is copied.

use super::super::out::{clean, Out};
use super::ssh_words;
use crate::exit::{Exit, Fail, Res};
use crate::remote::ssh;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

/// Unpacks the stream in the far home: one fixed command string.
const UNPACK: &str = r#"tar -x -f - -C "$HOME""#;

pub fn install(dest: &str) -> Res<Exit> {
    let words = ssh_words()?;
    let shown = clean(dest);
    let arch = plain(&words, dest, "uname -m", |_| Ok(()))?;
    let arch = String::from_utf8_lossy(&arch.stdout).trim().to_string();
    if arch != std::env::consts::ARCH {
        return Err(Fail::from(format!(
            "{shown}: its architecture is {}, this bgrun's {}: nothing copied; build bgrun there (./install.sh)",
            clean(&arch),
            std::env::consts::ARCH
        )));
    }
    let exe = std::env::current_exe().map_err(|e| format!("finding this program: {e}"))?;
    let bin = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dynamic(&exe) {
        check_glibc(&words, dest)?;
    }
    let files = files(&bin)?;
    let extra = files.len() - crate::NAMES.len();
    // Streamed: a file that cannot be read cuts the stream, and tar there
    // fails (its message is ours).
    plain(&words, dest, UNPACK, move |w| {
        for (from, to) in &files {
            let mode = if to.starts_with(".local/bin/") { 0o755 } else { 0o644 };
            std::fs::File::open(from).and_then(|f| ustar(w, to, mode, f))?;
        }
        w.write_all(&[0; 1024])
    })?;
    let mut out = Out::new();
    out.line(&format!(
        "{shown}: installed {} in ~/.local/bin ({} version {}){}",
        crate::NAMES.join(", "),
        arch,
        env!("CARGO_PKG_VERSION"),
        if extra > 0 { format!(", and {extra} man pages and completions") } else { String::new() }
    ))?;
    out.flush()?;
    Ok(Exit::Ok)
}

/// What is copied: (here, relative to the far home). The five binaries,
/// all needed; the man pages and completions where install.sh put them.
fn files(bin: &Path) -> Res<Vec<(PathBuf, String)>> {
    let mut v = Vec::new();
    for name in crate::NAMES {
        let p = bin.join(name);
        if !p.is_file() {
            return Err(Fail::from(format!("{}: not found next to this program: nothing copied", p.display())));
        }
        v.push((p, format!(".local/bin/{name}")));
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let data =
        std::env::var_os("XDG_DATA_HOME").map(PathBuf::from).or_else(|| home.as_ref().map(|h| h.join(".local/share")));
    let config =
        std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from).or_else(|| home.as_ref().map(|h| h.join(".config")));
    for name in crate::NAMES {
        let mut found =
            vec![(bin.join("../share/man/man1").join(format!("{name}.1")), format!(".local/share/man/man1/{name}.1"))];
        if let Some(d) = &data {
            found.push((
                d.join("bash-completion/completions").join(name),
                format!(".local/share/bash-completion/completions/{name}"),
            ));
            found.push((
                d.join("zsh/site-functions").join(format!("_{name}")),
                format!(".local/share/zsh/site-functions/_{name}"),
            ));
        }
        if let Some(c) = &config {
            found.push((
                c.join("fish/completions").join(format!("{name}.fish")),
                format!(".config/fish/completions/{name}.fish"),
            ));
        }
        v.extend(found.into_iter().filter(|(p, _)| p.is_file()));
    }
    if let Ok(rd) = std::fs::read_dir(bin.join("../share/man/man1")) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with("job-") && n.ends_with(".1") && n.len() < 40 {
                v.push((e.path(), format!(".local/share/man/man1/{n}")));
            }
        }
    }
    Ok(v)
}

/// Runs the fixed command `remote` on `dest`, `input` writing its stdin;
/// a failure is one line naming the host.
fn plain(
    words: &[String],
    dest: &str,
    remote: &str,
    input: impl FnOnce(&mut dyn Write) -> std::io::Result<()> + Send + 'static,
) -> Res<Output> {
    let shown = clean(dest);
    let mut c = ssh::command(words, dest, remote);
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{shown}: running ssh: {e}"))?;
    let mut stdin = child.stdin.take();
    let writer = std::thread::spawn(move || {
        if let Some(s) = stdin.as_mut() {
            let _ = input(s);
        }
    });
    let mut out = Vec::new();
    let mut err = Vec::new();
    let mut so = child.stdout.take();
    let mut se = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        if let Some(e) = se.as_mut() {
            let _ = e.take(64 * 1024).read_to_end(&mut b);
        }
        b
    });
    if let Some(o) = so.as_mut() {
        let _ = o.take(64 * 1024).read_to_end(&mut out);
    }
    err.extend(reader.join().unwrap_or_default());
    let _ = writer.join();
    let status = child.wait().map_err(|e| format!("{shown}: waiting for ssh: {e}"))?;
    let said = String::from_utf8_lossy(&err).lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").to_string();
    match status.code() {
        Some(0) => Ok(Output { status, stdout: out, stderr: err }),
        Some(255) => Err(Fail::from(format!("{shown}: cannot reach it: {}", clean(&said)))),
        _ => Err(Fail::from(format!("{shown}: '{remote}' failed there: {}", clean(&said)))),
    }
}

/// Is this executable linked dynamically (an ELF program header of type
/// PT_INTERP)? Read from its first 64 KiB.
fn dynamic(exe: &Path) -> bool {
    let mut b = Vec::new();
    if std::fs::File::open(exe).and_then(|f| f.take(64 * 1024).read_to_end(&mut b)).is_err() || b.len() < 64 {
        return true;
    }
    let u16_at = |o: usize| b.get(o..o + 2).map_or(0, |s| u16::from_le_bytes([s[0], s[1]]) as usize);
    let u64_at = |o: usize| b.get(o..o + 8).map_or(0, |s| u64::from_le_bytes(s.try_into().unwrap_or([0; 8])) as usize);
    let (phoff, size, n) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    (0..n).any(|i| b.get(phoff + i * size..phoff + i * size + 4) == Some(&3u32.to_le_bytes()[..]))
}

/// A dynamically linked bgrun goes only to a host whose glibc is at least
/// this machine's.
fn check_glibc(words: &[String], dest: &str) -> Res<()> {
    let version = |s: &[u8]| -> Option<(u32, u32)> {
        let t = String::from_utf8_lossy(s);
        let v = t.split_whitespace().last()?;
        let (a, b) = v.split_once('.')?;
        Some((a.parse().ok()?, b.trim_end_matches(|c: char| !c.is_ascii_digit()).parse().ok()?))
    };
    let here =
        std::process::Command::new("getconf").arg("GNU_LIBC_VERSION").output().ok().and_then(|o| version(&o.stdout));
    let there = plain(words, dest, "getconf GNU_LIBC_VERSION", |_| Ok(())).ok().and_then(|o| version(&o.stdout));
    match (here, there) {
        (Some(h), Some(t)) if t >= h => Ok(()),
        (h, t) => Err(Fail::from(format!(
            "{}: this bgrun is linked dynamically against glibc {}, and the host has {}: nothing copied; \
             build bgrun there (./install.sh)",
            clean(dest),
            h.map_or("?".into(), |(a, b)| format!("{a}.{b}")),
            t.map_or("none known".into(), |(a, b)| format!("glibc {a}.{b}"))
        ))),
    }
}

/// One file of a ustar archive: the header, then the data padded to 512.
fn ustar(w: &mut dyn Write, path: &str, mode: u32, file: std::fs::File) -> std::io::Result<()> {
    let len = file.metadata()?.len();
    if path.len() >= 100 {
        return Err(std::io::Error::other("a path too long for the archive"));
    }
    let mut h = [0u8; 512];
    let put = |h: &mut [u8; 512], at: usize, s: &[u8]| h[at..at + s.len()].copy_from_slice(s);
    put(&mut h, 0, path.as_bytes());
    put(&mut h, 100, format!("{mode:07o}\0").as_bytes());
    put(&mut h, 108, b"0000000\0");
    put(&mut h, 116, b"0000000\0");
    put(&mut h, 124, format!("{len:011o}\0").as_bytes());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    put(&mut h, 136, format!("{now:011o}\0").as_bytes());
    put(&mut h, 156, b"0");
    put(&mut h, 257, b"ustar\x0000");
    put(&mut h, 148, b"        ");
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    put(&mut h, 148, format!("{sum:06o}\0 ").as_bytes());
    w.write_all(&h)?;
    // Exactly the length the header says, even if the file grew meanwhile.
    let copied = std::io::copy(&mut file.take(len), w)?;
    if copied != len {
        return Err(std::io::Error::other("a file shrank while it was copied"));
    }
    w.write_all(&vec![0; (len.div_ceil(512) * 512 - len) as usize])
}
