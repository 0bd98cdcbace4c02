//! Bounded readers of a job's log: its last lines cost what the tail is,
//! not what the file is (and the log is read only if it is a regular file,
//! never through a link); and the space a job takes on disk.

use crate::files::open_nofollow;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// Where the last `n` lines of a file start (a final newline does not
/// start an empty line). Scans back from the end in blocks, so it costs
/// what the tail is, not what the file is, in time and memory. `hole` is
/// the range dropped by the log's cap: never read, it counts as one line
/// (the marker a reader shows there, which starts at the hole's start).
pub fn tail_start(path: &Path, n: usize, hole: Option<(u64, u64)>) -> io::Result<u64> {
    let mut f = open_nofollow(path)?;
    let len = f.metadata()?.len();
    start_above(&mut f, len, n, hole, 0)
}

/// As `tail_start`, but never scanning below byte `floor` (returned when
/// the lines reach below it).
fn start_above(f: &mut File, len: u64, n: usize, hole: Option<(u64, u64)>, floor: u64) -> io::Result<u64> {
    if n == 0 {
        return Ok(len);
    }
    let mut seen = 0;
    let (after, before) = match hole {
        Some((s, e)) if e <= len && s < e => (e, Some(s)),
        _ => (0, None),
    };
    if let Some(at) = scan_back(f, after.max(floor), len, len, n, &mut seen)? {
        return Ok(at);
    }
    let Some(s) = before.filter(|_| floor < after) else { return Ok(floor) };
    // The line the hole cut; then the header's last newline starts the
    // marker's line.
    if after < len {
        seen += 1;
        if seen >= n {
            return Ok(after);
        }
    }
    Ok(scan_back(f, floor, s, len, n, &mut seen)?.unwrap_or(floor))
}

/// Scans `[from, to)` back for the newline that ends the `n`th line from
/// the end (`seen` counted already); where the line after it starts.
fn scan_back(f: &mut File, from: u64, to: u64, len: u64, n: usize, seen: &mut usize) -> io::Result<Option<u64>> {
    let mut pos = to;
    let mut chunk = vec![0u8; 64 * 1024];
    while pos > from {
        let step = (pos - from).min(chunk.len() as u64) as usize;
        pos -= step as u64;
        f.seek(SeekFrom::Start(pos))?;
        f.read_exact(&mut chunk[..step])?;
        for i in (0..step).rev() {
            let at = pos + i as u64;
            if chunk[i] == b'\n' && at + 1 < len {
                *seen += 1;
                if *seen == n {
                    return Ok(Some(at + 1));
                }
            }
        }
    }
    Ok(None)
}

/// The last `n` lines of a file, at most `max_bytes` of them (the end);
/// none of a dropped range (`hole`).
pub fn tail_lines(path: &Path, n: usize, max_bytes: u64, hole: Option<(u64, u64)>) -> io::Result<Vec<u8>> {
    tail_lines_after(path, n, max_bytes, (0, u64::MAX), hole)
}

/// As `tail_lines`, but only of the bytes `within` (say, a log's output:
/// after its header, before its footer). Reads at most the last
/// `max_bytes`, whatever the file's size.
pub fn tail_lines_after(
    path: &Path,
    n: usize,
    max_bytes: u64,
    within: (u64, u64),
    hole: Option<(u64, u64)>,
) -> io::Result<Vec<u8>> {
    let (first, upto) = within;
    let mut f = open_nofollow(path)?;
    let len = f.metadata()?.len().min(upto);
    let floor = len.saturating_sub(max_bytes).max(first.min(len));
    let start = start_above(&mut f, len, n, hole, floor)?.max(floor);
    let mut ranges = vec![(start, len)];
    if let Some((s, e)) = hole.filter(|&(s, e)| start < e && s < e && e <= len) {
        ranges = vec![(start, start.max(s)), (start.max(e), len)];
    }
    let mut buf = Vec::new();
    for (from, to) in ranges {
        f.seek(SeekFrom::Start(from))?;
        (&mut f).take(to - from).read_to_end(&mut buf)?;
    }
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
        assert_eq!(tail_lines(&p, 2, u64::MAX, None).unwrap(), b"b\nc\n");
        assert_eq!(tail_lines(&p, 9, u64::MAX, None).unwrap(), b"a\nb\nc\n");
        assert_eq!(tail_lines(&p, 0, u64::MAX, None).unwrap(), b"");
        fs::write(&p, "a\nno newline at the end").unwrap();
        assert_eq!(tail_lines(&p, 1, u64::MAX, None).unwrap(), b"no newline at the end");
        assert_eq!(tail_lines(&p, 1, 3, None).unwrap(), b"end");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_tail_never_reads_a_dropped_range_and_counts_it_as_one_line() {
        let dir = std::env::temp_dir().join(format!("bgrun-hole-{}", std::process::id()));
        let _ = fs::create_dir_all(&dir);
        let p = dir.join("log");
        // "=== h\n", then 8 dropped bytes (zeros), then "cut\nx\ny\n".
        fs::write(&p, b"=== h\n\0\0\0\0\0\0\0\0cut\nx\ny\n").unwrap();
        let hole = Some((6, 14));
        assert_eq!(tail_start(&p, 2, hole).unwrap(), 18, "within the kept output");
        assert_eq!(tail_start(&p, 3, hole).unwrap(), 14, "the line cut by the hole");
        assert_eq!(tail_start(&p, 4, hole).unwrap(), 6, "the marker: the hole's start");
        assert_eq!(tail_start(&p, 5, hole).unwrap(), 0, "into the header");
        assert_eq!(tail_lines(&p, 9, u64::MAX, hole).unwrap(), b"=== h\ncut\nx\ny\n", "no zeros");
        assert_eq!(tail_lines(&p, 4, u64::MAX, hole).unwrap(), b"cut\nx\ny\n");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_tail_reads_only_the_end_of_a_huge_file_without_newlines() {
        let dir = std::env::temp_dir().join(format!("bgrun-tail-huge-{}", std::process::id()));
        let _ = fs::create_dir_all(&dir);
        let p = dir.join("log");
        // Sparse: 64 GiB of zeros that take no space, and take many
        // seconds to scan.
        let f = File::create(&p).unwrap();
        f.set_len(1 << 36).unwrap();
        let t = std::time::Instant::now();
        let tail = tail_lines(&p, 10, 64 * 1024, None).unwrap();
        assert_eq!(tail.len(), 64 * 1024);
        assert!(t.elapsed() < std::time::Duration::from_secs(5), "took {:?}", t.elapsed());
        let _ = fs::remove_dir_all(&dir);
    }
}
