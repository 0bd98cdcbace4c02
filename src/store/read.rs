//! Bounded readers of a job's log: its last lines cost what the tail is,
//! not what the file is (and the log is read only if it is a regular file,
//! never through a link); and the space a job takes on disk.

use crate::files::open_nofollow;
use std::fs;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// Where the last `n` lines of a file start (a final newline does not
/// start an empty line). Scans back from the end in blocks, so it costs
/// what the tail is, not what the file is, in time and memory.
pub fn tail_start(path: &Path, n: usize) -> io::Result<u64> {
    let mut f = open_nofollow(path)?;
    let len = f.metadata()?.len();
    if n == 0 {
        return Ok(len);
    }
    let mut pos = len;
    let mut seen = 0;
    let mut chunk = vec![0u8; 64 * 1024];
    while pos > 0 {
        let step = pos.min(chunk.len() as u64) as usize;
        pos -= step as u64;
        f.seek(SeekFrom::Start(pos))?;
        f.read_exact(&mut chunk[..step])?;
        for i in (0..step).rev() {
            let at = pos + i as u64;
            if chunk[i] == b'\n' && at + 1 < len {
                seen += 1;
                if seen == n {
                    return Ok(at + 1);
                }
            }
        }
    }
    Ok(0)
}

/// The last `n` lines of a file, at most `max_bytes` of them (the end).
pub fn tail_lines(path: &Path, n: usize, max_bytes: u64) -> io::Result<Vec<u8>> {
    tail_lines_after(path, n, max_bytes, 0)
}

/// As `tail_lines`, but nothing before byte `first` (say, a log's header).
pub fn tail_lines_after(path: &Path, n: usize, max_bytes: u64, first: u64) -> io::Result<Vec<u8>> {
    let start = tail_start(path, n)?;
    let mut f = open_nofollow(path)?;
    let len = f.metadata()?.len();
    let start = start.max(len.saturating_sub(max_bytes)).max(first.min(len));
    f.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::new();
    f.take(len - start).read_to_end(&mut buf)?;
    Ok(buf)
}

pub fn disk_usage(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = fs::symlink_metadata(path) else { return 0 };
    let own = m.blocks() * 512;
    if !m.is_dir() {
        return own;
    }
    let Ok(rd) = fs::read_dir(path) else { return own };
    own + rd.flatten().map(|e| disk_usage(&e.path())).sum::<u64>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_count_whole_lines_and_respect_the_byte_cap() {
        let dir = std::env::temp_dir().join(format!("bgrun-tail-{}", std::process::id()));
        let _ = fs::create_dir_all(&dir);
        let p = dir.join("log");
        fs::write(&p, "a\nb\nc\n").unwrap();
        assert_eq!(tail_lines(&p, 2, u64::MAX).unwrap(), b"b\nc\n");
        assert_eq!(tail_lines(&p, 9, u64::MAX).unwrap(), b"a\nb\nc\n");
        assert_eq!(tail_lines(&p, 0, u64::MAX).unwrap(), b"");
        fs::write(&p, "a\nno newline at the end").unwrap();
        assert_eq!(tail_lines(&p, 1, u64::MAX).unwrap(), b"no newline at the end");
        assert_eq!(tail_lines(&p, 1, 3).unwrap(), b"end");
        let _ = fs::remove_dir_all(&dir);
    }
}
