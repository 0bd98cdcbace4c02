//! `.cache/names`: the job directories' names and inode numbers as the
//! store's root last held them, so that a listing of a big store that has
//! not changed since reads one small file instead of the directory (at
//! 100,000 entries, `getdents` alone takes about 30 ms here). A cache: the
//! root's directory stays the truth, and the file is never needed.
//!
//! It is trusted only while the root is exactly as it was when the file
//! was written: the same device, inode number, modification and change
//! times (to the nanosecond), link count and size (`Stamp`). Any entry
//! made, removed or renamed in the root moves its modification time. It is
//! written only by a listing that read the root whole while none of these
//! moved, and only once the root's times are two seconds old or more:
//! a change within the clock's granularity of the last one (the times
//! would not move; git's "racily clean" entries) can then no longer go
//! unseen. Only for a root of 1,000 jobs or more (below that, reading the
//! directory is cheap), holding only job directories with plain names
//! (no old scripts' files, links or damaged entries, whose listing needs
//! more than their names), and on a local file system: on a network one,
//! the root's times may be another machine's clock, or cached.
//!
//! The first line is `bgrun-names 1` and the stamp, the number of names,
//! whether the store has queues and a hash of the lines that follow, one
//! `INODE TAB ID` a job: a file truncated, damaged or of another store is
//! not used (the listing reads the directory, and writes it again). It
//! lives in `.cache/` because writing it in the root would move the root's
//! time it is checked against.

use super::Store;
use crate::files;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, Read, Write as _};
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, SystemTime};

/// The directory of the store's caches, and this one's name in it.
pub const CACHE: &str = ".cache";
const NAMES: &str = "names";

const FORMAT: &str = "bgrun-names 1";

/// Below this many jobs a listing reads the directory.
pub const FROM: usize = 1000;

/// The largest file read (about 1.5 million names).
const MAX: u64 = 64 << 20;

/// How old the root's times must be before its names are written.
const SETTLED: Duration = Duration::from_secs(2);

/// What the root's directory was when it was read.
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub struct Stamp([i64; 8]);

impl Stamp {
    /// The stamp of the open root, if it is on a file system whose times
    /// can be trusted (local: see the top).
    pub fn of(root: &File) -> Option<Stamp> {
        if !local(root) {
            return None;
        }
        let m = root.metadata().ok()?;
        let n = |v: u64| v as i64;
        Some(Stamp([
            n(m.dev()),
            n(m.ino()),
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec(),
            n(m.nlink()),
            n(m.size()),
        ]))
    }

    /// Are the root's times old enough that a change now would move them?
    fn settled(&self) -> bool {
        let Ok(now) = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH) else { return false };
        let latest = self.0[2].max(self.0[4]);
        latest >= 0 && now.as_secs() as i64 - latest > SETTLED.as_secs() as i64
    }
}

/// A local file system, where a directory's times are this machine's
/// clock and never cached: ext2/3/4, XFS, Btrfs, tmpfs, F2FS, ZFS,
/// bcachefs, overlayfs.
fn local(root: &File) -> bool {
    const KNOWN: [i64; 8] =
        [0xEF53, 0x5846_5342, 0x9123_683E, 0x0102_1994, 0xF2F5_2010, 0x2FC1_2FC1, 0xCA45_1A4E, 0x794C_7630];
    nix::sys::statfs::fstatfs(root)
        .is_ok_and(|s| KNOWN.contains(&((s.filesystem_type().0 as u64 & 0xFFFF_FFFF) as i64)))
}

/// The names a cache gives: the jobs' names and inode numbers, in the
/// order of the file, and whether the store has queues.
pub struct Names {
    pub ids: Vec<String>,
    pub inos: Vec<u64>,
    pub queues: bool,
}

/// A hash of the file's first line (without the hash) and its lines, a
/// word at a time: enough to tell a damaged file (not a planted one: the
/// store is its owner's).
pub fn hash(head: &[u8], body: &[u8]) -> u64 {
    let mix = |h: u64, w: u64| (h ^ w).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29);
    [head, body].iter().fold(0xcbf2_9ce4_8422_2325, |h, part| {
        let words = part.chunks_exact(8);
        let tail = words.remainder();
        let h =
            words.fold(mix(h, part.len() as u64), |h, w| mix(h, u64::from_le_bytes(w.try_into().unwrap_or_default())));
        tail.iter().fold(h, |h, &b| mix(h, u64::from(b)))
    })
}

/// Is it worth keeping the names `ids` of a root read while it was
/// `stamp` (see the top)?
pub fn worth_keeping(stamp: &Stamp, ids: &[String]) -> bool {
    ids.len() >= FROM && stamp.settled()
}

/// Could `id` be the name of a job directory of the root? (Never a path
/// elsewhere, however the file was made.)
fn entry_name(id: &str) -> bool {
    !id.is_empty() && !id.starts_with('.') && !id.contains(['/', '\0'])
}

impl Store {
    /// The names cached for the root as `stamp` says it is now, if the
    /// cache holds them.
    pub fn cached_names(&self, root: &File, stamp: &Stamp) -> Option<Names> {
        let dir = files::open_dir_in(root, CACHE).ok()?;
        let file = files::open_in(&dir, NAMES.as_ref()).ok()?;
        let len = file.metadata().ok().filter(|m| m.is_file() && m.len() <= MAX)?.len();
        // The first line, then the rest only if the stamp is the root's.
        let mut r = std::io::BufReader::new(file.take(MAX));
        let mut head = Vec::new();
        (&mut r).take(512).read_until(b'\n', &mut head).ok()?;
        let head = std::str::from_utf8(head.strip_suffix(b"\n")?).ok()?;
        let (hashed, sum) = head.rsplit_once(' ')?;
        let mut words = hashed.strip_prefix(FORMAT)?.strip_prefix(' ')?.split(' ');
        let mut number = || words.next()?.parse::<i64>().ok();
        let mut got = [0i64; 8];
        for v in &mut got {
            *v = number()?;
        }
        let (count, queues) = (number()?, number()?);
        if got != stamp.0 || number().is_some() || !(0..=1).contains(&queues) {
            return None;
        }
        let mut body = Vec::with_capacity(len as usize);
        r.read_to_end(&mut body).ok()?;
        if sum.parse::<i64>().ok()? != hash(hashed.as_bytes(), &body) as i64 || body.last().is_some_and(|&b| b != b'\n')
        {
            return None;
        }
        let body = std::str::from_utf8(&body).ok()?;
        let count = usize::try_from(count).ok().filter(|&c| c <= body.len() / 3)?;
        let mut names = Names { ids: Vec::with_capacity(count), inos: Vec::with_capacity(count), queues: queues == 1 };
        // `INODE TAB ID NEWLINE`, by hand: this is most of a listing's time.
        let (b, mut at) = (body.as_bytes(), 0);
        while at < b.len() {
            let (mut ino, start) = (0u64, at);
            while let Some(&d @ b'0'..=b'9') = b.get(at) {
                ino = ino.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
                at += 1;
            }
            if at == start || b.get(at) != Some(&b'\t') {
                return None;
            }
            let end = at + 1 + b[at + 1..].iter().position(|&c| c == b'\n')?;
            let id = &body[at + 1..end];
            if !entry_name(id) {
                return None;
            }
            names.inos.push(ino);
            names.ids.push(id.to_string());
            at = end + 1;
        }
        (names.ids.len() == count).then_some(names)
    }

    /// Keeps `ids` (with their inode numbers) as the names of the root
    /// read while it was `stamp`, if that is settled (see the top); a cache
    /// that cannot be written is left unwritten.
    pub fn save_names(&self, root: &File, stamp: &Stamp, ids: &[String], inos: &[u64], queues: bool) {
        if !worth_keeping(stamp, ids) || ids.iter().any(|id| id.contains(['\n', '\t']) || !entry_name(id)) {
            return;
        }
        // Making `.cache` moves the root's times: its names are kept next time.
        let dir = match files::open_dir_in(root, CACHE) {
            Ok(dir) => dir,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let _ = files::make_dir_in(root, CACHE);
                return;
            }
            Err(_) => return,
        };
        let mut body = String::with_capacity(ids.len() * 32);
        for (id, ino) in ids.iter().zip(inos) {
            let _ = writeln!(body, "{ino}\t{id}");
        }
        let mut head = FORMAT.to_string();
        for v in stamp.0 {
            let _ = write!(head, " {v}");
        }
        let _ = write!(head, " {} {}", ids.len(), u8::from(queues));
        let sum = hash(head.as_bytes(), body.as_bytes()) as i64;
        let _ = writeln!(head, " {sum}");
        let tmp = format!(".{NAMES}.{}.tmp", std::process::id());
        let _ = files::unlink_in(&dir, &tmp);
        let res = files::create_new_in(&dir, &tmp)
            .and_then(|mut f| f.write_all(head.as_bytes()).and_then(|()| f.write_all(body.as_bytes())))
            .and_then(|()| files::rename_in(&dir, &tmp, NAMES));
        if res.is_err() {
            let _ = files::unlink_in(&dir, &tmp);
        }
    }
}
