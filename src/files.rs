//! Small helpers on files that both `store` and `proc` need, so that
//! neither imports the other: opening relative to a directory without
//! following a link, reading a small file in one call with a bound, and
//! the text of an I/O error with its action and path. (`openat` comes
//! from nix, the one use of it outside `proc`.)

use std::fs::{File, OpenOptions};
use std::io::{self, ErrorKind, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The open file `f`, whole up to `max` bytes (one byte more shows that it
/// is bigger). Usually one read(2): `buf` (kept from one call to the next)
/// is made big enough for a job's small files, and a short read of a
/// regular file is its end.
pub fn read_small(mut f: File, max: u64, buf: &mut Vec<u8>) -> io::Result<&[u8]> {
    let first = (max + 1).min(64 * 1024) as usize;
    if buf.len() < first {
        buf.resize(first, 0);
    }
    let n = loop {
        match f.read(&mut buf[..first]) {
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            r => break r?,
        }
    };
    if n < first {
        return Ok(&buf[..n]);
    }
    buf.truncate(first);
    f.take(max + 1 - first as u64).read_to_end(buf)?;
    Ok(&buf[..])
}

/// Opens `path` for reading, never through a symbolic link in its last
/// component (a link planted in the store is not followed).
pub fn open_nofollow(path: &Path) -> io::Result<File> {
    OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(path)
}

pub fn io_err(action: &str, path: &Path, e: io::Error) -> String {
    let msg = e.to_string();
    let msg = msg.split(" (os error").next().unwrap_or(&msg).to_lowercase();
    format!("{action} {}: {msg}", path.display())
}

/// Opens `rel` (a path relative to the directory `dir`) for reading,
/// without following a final symbolic link: reading many files of one
/// directory, this skips the walk of the directory's own path.
pub fn open_in(dir: &File, rel: &Path) -> io::Result<File> {
    use nix::fcntl::{openat, OFlag};
    let flags = OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW;
    openat(dir, rel, flags, nix::sys::stat::Mode::empty()).map(File::from).map_err(io::Error::from)
}
