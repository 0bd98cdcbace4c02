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
    tail_reach(path, n, hole).map(|(at, _)| at)
}

/// As `tail_start`, and how many of the `n` lines the file lacks (none
/// unless they start at 0): those are the last lines of the header a
/// reader shows before the file (`Meta::header`), as if it were in it.
pub fn tail_reach(path: &Path, n: usize, hole: Option<(u64, u64)>) -> io::Result<(u64, usize)> {
    let mut f = open_nofollow(path)?;
    let len = f.metadata()?.len();
    let (at, found) = start_above(&mut f, len, n, hole, 0)?;
    Ok((at, n.saturating_sub(found)))
}

/// The last `lines` lines of `header` (whole lines, each with its newline).
pub fn header_tail(header: &str, lines: usize) -> &str {
    if lines == 0 {
        return "";
    }
    let body = header.strip_suffix('\n').unwrap_or(header);
    match body.rmatch_indices('\n').nth(lines - 1) {
        Some((i, _)) => &header[i + 1..],
        None => header,
    }
}

/// As `tail_start`, but never scanning below byte `floor` (returned when
/// the lines reach below it); with the number of lines found: `n` when
/// they start above `floor`, else those from `floor` on.
fn start_above(f: &mut File, len: u64, n: usize, hole: Option<(u64, u64)>, floor: u64) -> io::Result<(u64, usize)> {
    if n == 0 {
        return Ok((len, 0));
    }
    let mut seen = 0;
    // From `floor`: the lines that start after it (`seen`), and its own.
    let reached = |seen: usize| (floor, seen + usize::from(floor < len));
    let (after, before) = match hole {
        Some((s, e)) if e <= len && s < e => (e, Some(s)),
        _ => (0, None),
    };
    if let Some(at) = scan_back(f, after.max(floor), len, len, n, &mut seen)? {
        return Ok((at, n));
    }
    let Some(s) = before.filter(|_| floor < after) else { return Ok(reached(seen)) };
    // The line the hole cut; then the newline before the hole (a header's
    // last, in a log that holds one) starts the marker's line.
    if after < len {
        seen += 1;
        if seen >= n {
            return Ok((after, n));
        }
    }
    Ok(match scan_back(f, floor, s, len, n, &mut seen)? {
        Some(at) => (at, n),
        None => reached(seen),
    })
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

/// As `tail_lines`, with the header a reader shows before the file
/// (`Meta::header`; none for a log that holds its own): its last lines
/// where the tail reaches the file's start.
pub fn tail_lines_shown(
    path: &Path,
    header: Option<&str>,
    n: usize,
    max_bytes: u64,
    hole: Option<(u64, u64)>,
) -> io::Result<Vec<u8>> {
    let (tail, short) = tail_read(path, n, max_bytes, (0, u64::MAX), hole)?;
    let mut shown = header_tail(header.unwrap_or_default(), short).as_bytes().to_vec();
    shown.extend_from_slice(&tail);
    Ok(shown)
}

/// As `tail_lines`, but only of the bytes `within` (say, a log's output:
/// after its header, if it holds one, and before its footer). Reads at
/// most the last `max_bytes`, whatever the file's size.
pub fn tail_lines_after(
    path: &Path,
    n: usize,
    max_bytes: u64,
    within: (u64, u64),
    hole: Option<(u64, u64)>,
) -> io::Result<Vec<u8>> {
    tail_read(path, n, max_bytes, within, hole).map(|(tail, _)| tail)
}

/// The tail of `tail_lines_after`, and how many of the `n` lines it
/// lacks when it is the whole file (see `tail_reach`).
fn tail_read(
    path: &Path,
    n: usize,
    max_bytes: u64,
    within: (u64, u64),
    hole: Option<(u64, u64)>,
) -> io::Result<(Vec<u8>, usize)> {
    let (first, upto) = within;
    let mut f = open_nofollow(path)?;
    let len = f.metadata()?.len().min(upto);
    let floor = len.saturating_sub(max_bytes).max(first.min(len));
    let (start, found) = start_above(&mut f, len, n, hole, floor)?;
    let start = start.max(floor);
    let short = if floor == 0 { n.saturating_sub(found) } else { 0 };
    let mut ranges = vec![(start, len)];
    if let Some((s, e)) = hole.filter(|&(s, e)| start < e && s < e && e <= len) {
        ranges = vec![(start, start.max(s)), (start.max(e), len)];
    }
    let mut buf = Vec::new();
    for (from, to) in ranges {
        f.seek(SeekFrom::Start(from))?;
        (&mut f).take(to - from).read_to_end(&mut buf)?;
    }
    Ok((buf, short))
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
    fn a_tail_that_reaches_the_start_takes_the_header_lines_the_file_lacks() {
        let dir = std::env::temp_dir().join(format!("bgrun-reach-{}", std::process::id()));
        let _ = fs::create_dir_all(&dir);
        let p = dir.join("log");
        let header = "=== cmd\n=== cwd: /\n=== started: t\n";
        assert_eq!(header_tail(header, 0), "");
        assert_eq!(header_tail(header, 1), "=== started: t\n");
        assert_eq!(header_tail(header, 2), "=== cwd: /\n=== started: t\n");
        assert_eq!(header_tail(header, 3), header);
        assert_eq!(header_tail(header, 9), header);

        fs::write(&p, "one\ntwo\n=== done\n").unwrap();
        assert_eq!(tail_reach(&p, 2, None).unwrap(), (4, 0));
        assert_eq!(tail_reach(&p, 3, None).unwrap(), (0, 0), "the file's lines exactly");
        assert_eq!(tail_reach(&p, 4, None).unwrap(), (0, 1));
        assert_eq!(tail_reach(&p, 9, None).unwrap(), (0, 6));
        assert_eq!(tail_reach(&p, 0, None).unwrap(), (17, 0));
        let shown = |n, max| String::from_utf8(tail_lines_shown(&p, Some(header), n, max, None).unwrap()).unwrap();
        assert_eq!(shown(3, u64::MAX), "one\ntwo\n=== done\n");
        assert_eq!(shown(4, u64::MAX), "=== started: t\none\ntwo\n=== done\n");
        assert_eq!(shown(9, u64::MAX), format!("{header}one\ntwo\n=== done\n"));
        assert_eq!(shown(9, 4), "one\n", "cut by bytes: not the whole file, so no header");
        assert_eq!(tail_lines_shown(&p, None, 9, u64::MAX, None).unwrap(), b"one\ntwo\n=== done\n");

        fs::write(&p, "").unwrap();
        assert_eq!(tail_reach(&p, 2, None).unwrap(), (0, 2), "an empty log: the header's lines");
        fs::write(&p, "no newline").unwrap();
        assert_eq!(tail_reach(&p, 2, None).unwrap(), (0, 1));
        // Output dropped from byte 0 (the cap): the marker is one line.
        fs::write(&p, b"\0\0\0\0cut\nx\n").unwrap();
        assert_eq!(tail_reach(&p, 3, Some((0, 4))).unwrap(), (0, 0));
        assert_eq!(tail_reach(&p, 4, Some((0, 4))).unwrap(), (0, 1));
        assert_eq!(tail_reach(&p, 2, Some((0, 4))).unwrap(), (4, 0));
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
