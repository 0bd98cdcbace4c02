//! Small helpers on files that both `store` and `proc` need, so that
//! neither imports the other: opening relative to a directory without
//! following a link, reading a small file in one call with a bound,
//! publishing one by write-temp-then-rename (`write_atomic`: `store` is its
//! only caller), and the text of an I/O error with its action and path. (`openat` comes
//! from nix, the one use of it outside `proc`.)
//!
//! Every read of the store goes through `open_nofollow` or `open_in`: never
//! through a final link, never blocking on open (`O_NONBLOCK`: a FIFO
//! planted as `status` opens at once), and only a regular file is returned
//! (checked with fstat on the open file), so nothing planted in the store
//! hangs a reader or feeds it without end (`/dev/zero`).
//!
//! Every walk of the store's directories below its root goes from parent
//! to child on descriptors (`open_dir_in`: `O_NOFOLLOW|O_DIRECTORY`; then
//! `entries`, `create_new_in`, `unlink_in`, `symlink_in`, `rename_in`,
//! `write_atomic_in` on the child), so a link planted where a directory
//! should be is an error, never followed.

use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Read, Write};
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
/// component (a link planted in the store is not followed), never blocking
/// on open, and only if it is a regular file.
pub fn open_nofollow(path: &Path) -> io::Result<File> {
    let f = OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path)?;
    regular(f)
}

/// `f` if it is a regular file; else the error every reader reports.
fn regular(f: File) -> io::Result<File> {
    if f.metadata()?.is_file() {
        Ok(f)
    } else {
        Err(io::Error::new(ErrorKind::InvalidData, "not a regular file"))
    }
}

/// `path`, whole up to `max` bytes, through [`open_nofollow`]; a bigger
/// file is an error (not cut: a cut file would read as something else).
pub fn read_bounded(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    let n = read_small(open_nofollow(path)?, max, &mut buf)?.len();
    if n as u64 > max {
        return Err(io::Error::new(ErrorKind::InvalidData, format!("larger than {max} bytes")));
    }
    buf.truncate(n);
    Ok(buf)
}

/// Makes the directory `path` with mode 0700, set explicitly (mkdir(2)
/// goes through the umask, and `umask 0277` would leave a directory its
/// owner cannot write in).
pub fn make_private_dir(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new().mode(0o700).create(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
}

/// Why the job store `path` (described by `m`) cannot be trusted, if it
/// cannot: owned by another user, or writable by group or others (who could
/// then rename jobs away or plant entries); and how to fix it.
pub fn untrusted(path: &Path, m: &std::fs::Metadata) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let (me, p) = (nix::unistd::geteuid().as_raw(), path.display());
    if m.uid() != me {
        let owner = m.uid();
        return Some(format!("{p}: the job store is owned by uid {owner}, not by you (uid {me}): chown {me} {p}, or set RUN_DIR to a directory of yours"));
    }
    if m.mode() & 0o022 != 0 {
        let mode = m.mode() & 0o7777;
        return Some(format!("{p}: the job store is writable by group or others (mode {mode:o}): chmod 700 {p}"));
    }
    None
}

pub fn io_err(action: &str, path: &Path, e: io::Error) -> String {
    let msg = e.to_string();
    let msg = msg.split(" (os error").next().unwrap_or(&msg).to_lowercase();
    format!("{action} {}: {msg}", path.display())
}

/// Opens `rel` (a path relative to the directory `dir`) for reading, as
/// [`open_nofollow`] does (no final link, no blocking, a regular file only):
/// reading many files of one
/// directory, this skips the walk of the directory's own path.
pub fn open_in(dir: &File, rel: &Path) -> io::Result<File> {
    use nix::fcntl::{openat, OFlag};
    let flags = OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK;
    regular(openat(dir, rel, flags, nix::sys::stat::Mode::empty()).map(File::from).map_err(io::Error::from)?)
}

/// Publishes `bytes` as `dir/name` by write-temp-then-rename (mode 0600,
/// set explicitly whatever the umask); the temp file is removed on failure.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let dest = dir.join(name);
    let res = (|| {
        // Made new, never through a link planted at the temporary name
        // (a watcher's pid, and so that name, is in meta.json): whatever is
        // there is unlinked first, and O_EXCL refuses one planted since.
        let _ = fs::remove_file(&tmp);
        let mut f =
            OpenOptions::new().write(true).create_new(true).custom_flags(libc::O_NOFOLLOW).mode(0o600).open(&tmp)?;
        f.set_permissions(fs::Permissions::from_mode(0o600))?;
        f.write_all(bytes)?;
        fs::rename(&tmp, &dest)
    })();
    res.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_err("writing", &dest, e)
    })
}

/// What an entry of a directory is, as the directory says (no stat).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Link,
    Other,
}

/// The error every walk of the store reports for a link (or anything but
/// a directory) where a directory should be: it is never followed.
fn not_a_dir(e: nix::errno::Errno) -> io::Error {
    use nix::errno::Errno;
    match e {
        Errno::ELOOP | Errno::ENOTDIR => io::Error::new(
            ErrorKind::InvalidData,
            "a symbolic link or not a directory where a directory should be; not followed",
        ),
        e => io::Error::from(e),
    }
}

/// Opens the directory `name` inside the open directory `parent`, never
/// through a link (`O_NOFOLLOW|O_DIRECTORY`): every walk of the store
/// below its root goes from parent to child this way.
pub fn open_dir_in(parent: &File, name: &str) -> io::Result<File> {
    use nix::fcntl::{openat, OFlag};
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    openat(parent, name, flags, nix::sys::stat::Mode::empty()).map(File::from).map_err(not_a_dir)
}

/// Opens the directory `path` (the store's root: a link there is the
/// user's own choice and is followed).
pub fn open_dir(path: &Path) -> io::Result<File> {
    OpenOptions::new().read(true).custom_flags(libc::O_DIRECTORY).open(path)
}

/// As [`open_dir_in`], making the directory first (mode 0700 whatever the
/// umask) if it is missing.
pub fn make_dir_in(parent: &File, name: &str) -> io::Result<File> {
    use nix::sys::stat::{fchmod, mkdirat, Mode};
    let made = match mkdirat(parent, name, Mode::S_IRWXU) {
        Ok(()) => true,
        Err(nix::errno::Errno::EEXIST) => false,
        Err(e) => return Err(e.into()),
    };
    let dir = open_dir_in(parent, name)?;
    if made {
        fchmod(&dir, Mode::S_IRWXU)?;
    }
    Ok(dir)
}

/// The entries of the open directory `dir` (not `.` nor `..`), each with
/// what it is; read through a duplicate of the descriptor.
pub fn entries(dir: &File) -> io::Result<Vec<(std::ffi::OsString, Kind)>> {
    Ok(entries_ino(dir)?.into_iter().map(|(name, kind, _)| (name, kind)).collect())
}

/// As [`entries`], each with its inode number too; what it is asked of the
/// file system where the entry does not say (an entry gone meanwhile is
/// left out).
pub fn entries_ino(dir: &File) -> io::Result<Vec<(std::ffi::OsString, Kind, u64)>> {
    use nix::dir::{Dir, Type};
    use std::os::unix::ffi::OsStrExt;
    let mut d = Dir::from_fd(dir.try_clone()?.into())?;
    let mut out = Vec::new();
    for e in d.iter() {
        let e = e?;
        let name = e.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let kind = match e.file_type() {
            Some(Type::Directory) => Kind::Dir,
            Some(Type::File) => Kind::File,
            Some(Type::Symlink) => Kind::Link,
            Some(_) => Kind::Other,
            None => match nix::sys::stat::fstatat(dir, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => Kind::Dir,
                Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFREG => Kind::File,
                Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFLNK => Kind::Link,
                Err(nix::errno::Errno::ENOENT) => continue,
                _ => Kind::Other,
            },
        };
        out.push((std::ffi::OsStr::from_bytes(name).to_os_string(), kind, e.ino()));
    }
    Ok(out)
}

/// Does `dir` hold any entry? Reads only up to the first.
pub fn has_entries(dir: &File) -> io::Result<bool> {
    let mut d = nix::dir::Dir::from_fd(dir.try_clone()?.into())?;
    for e in d.iter() {
        let name = e?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Removes the entry `name` (not a directory; a link as a name) of `dir`.
pub fn unlink_in(dir: &File, name: &str) -> io::Result<()> {
    Ok(nix::unistd::unlinkat(dir, name, nix::unistd::UnlinkatFlags::NoRemoveDir)?)
}

/// The target of the link `name` in `dir`.
pub fn read_link_in(dir: &File, name: &str) -> io::Result<std::ffi::OsString> {
    Ok(nix::fcntl::readlinkat(dir, name)?)
}

/// Makes the link `name` in `dir`, pointing at `target`.
pub fn symlink_in(target: &str, dir: &File, name: &str) -> io::Result<()> {
    Ok(nix::unistd::symlinkat(target, dir, name)?)
}

/// Renames `from` to `to`, both in `dir` (replacing `to`).
pub fn rename_in(dir: &File, from: &str, to: &str) -> io::Result<()> {
    Ok(nix::fcntl::renameat(dir, from, dir, to)?)
}

/// Makes the new empty file `name` in `dir` (mode 0600 whatever the
/// umask); `AlreadyExists` if it is there, never through a link.
pub fn create_new_in(dir: &File, name: &str) -> io::Result<File> {
    use nix::fcntl::{openat, OFlag};
    use nix::sys::stat::{fchmod, Mode};
    let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let f = File::from(openat(dir, name, flags, Mode::S_IRUSR | Mode::S_IWUSR)?);
    fchmod(&f, Mode::S_IRUSR | Mode::S_IWUSR)?;
    Ok(f)
}

/// As [`write_atomic`], into the open directory `dir` (named `dir_path`
/// in errors): never through a link in the directory's path.
pub fn write_atomic_in(dir: &File, dir_path: &Path, name: &str, bytes: &[u8]) -> Result<(), String> {
    let tmp = format!(".{name}.{}.tmp", std::process::id());
    let _ = unlink_in(dir, &tmp);
    let res = create_new_in(dir, &tmp).and_then(|mut f| f.write_all(bytes)).and_then(|()| rename_in(dir, &tmp, name));
    res.map_err(|e| {
        let _ = unlink_in(dir, &tmp);
        io_err("writing", &dir_path.join(name), e)
    })
}

/// Opens (making it if missing, mode 0600) the file `name` in `dir` for
/// reading and writing, never through a link: a lock file.
pub fn open_rw_in(dir: &File, name: &str) -> io::Result<File> {
    use nix::fcntl::{openat, OFlag};
    use nix::sys::stat::{fchmod, Mode};
    let flags = OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let f = File::from(openat(dir, name, flags, Mode::S_IRUSR | Mode::S_IWUSR)?);
    fchmod(&f, Mode::S_IRUSR | Mode::S_IWUSR)?;
    Ok(f)
}

/// Removes the directory `name` in `parent` and everything in it, never
/// following a link, however deep it goes: no recursion and two open
/// directories at a time. A subdirectory that is not empty has its
/// entries moved up into the top directory (under fresh names) and is then
/// removed, until the top is empty (a tree planted thousands of levels
/// deep would take the recursive way past the descriptor limit or the
/// stack). Returns the bytes the removed entries held on the disk (their
/// blocks), or the first error that stops it.
pub fn remove_tree_in(parent: &File, name: &str, freed: &mut u64) -> io::Result<()> {
    use nix::errno::Errno;
    use nix::sys::stat::fstatat;
    use nix::unistd::{unlinkat, UnlinkatFlags};
    let top = open_dir_in(parent, name)?;
    // What an entry frees: its blocks, unless another link keeps them.
    let blocks = |st: nix::sys::stat::FileStat| {
        let last = st.st_nlink <= 1 || st.st_mode & libc::S_IFMT == libc::S_IFDIR;
        if last {
            st.st_blocks.max(0) as u64 * 512
        } else {
            0
        }
    };
    let size_of =
        |entry: &std::ffi::OsStr| fstatat(&top, entry, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW).map_or(0, blocks);
    let own = nix::sys::stat::fstat(&top).map_or(0, blocks);
    let mut fresh = 0u64;
    loop {
        let list = entries(&top)?;
        if list.is_empty() {
            break;
        }
        // Only files listed, all removed: the directory is empty unless a
        // file came meanwhile (then the removal of the top fails, and the
        // caller tries again).
        let mut only_files = true;
        for (entry, kind) in list {
            let entry = entry.as_os_str();
            if kind != Kind::Dir {
                let size = size_of(entry);
                match unlinkat(&top, entry, UnlinkatFlags::NoRemoveDir) {
                    Ok(()) => *freed += size,
                    Err(Errno::ENOENT) => {}
                    // Listed as a file, a directory now: taken next round.
                    Err(Errno::EISDIR) => only_files = false,
                    Err(e) => return Err(e.into()),
                }
                continue;
            }
            only_files = false;
            let size = size_of(entry);
            match unlinkat(&top, entry, UnlinkatFlags::RemoveDir) {
                Ok(()) => {
                    *freed += size;
                    continue;
                }
                Err(Errno::ENOENT) => continue,
                Err(Errno::ENOTEMPTY | Errno::EEXIST) => {}
                Err(e) => return Err(e.into()),
            }
            let sub = match nix::fcntl::openat(
                &top,
                entry,
                nix::fcntl::OFlag::O_RDONLY
                    | nix::fcntl::OFlag::O_DIRECTORY
                    | nix::fcntl::OFlag::O_NOFOLLOW
                    | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            ) {
                Ok(fd) => File::from(fd),
                Err(Errno::ENOENT) => continue,
                Err(e) => return Err(e.into()),
            };
            for (child, _) in entries(&sub)? {
                loop {
                    fresh += 1;
                    let up = format!(".up-{fresh}");
                    let flags = nix::fcntl::RenameFlags::RENAME_NOREPLACE;
                    match nix::fcntl::renameat2(&sub, child.as_os_str(), &top, up.as_str(), flags) {
                        Ok(()) | Err(Errno::ENOENT) => break,
                        Err(Errno::EEXIST) => continue,
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        if only_files {
            break;
        }
    }
    match unlinkat(parent, name, UnlinkatFlags::RemoveDir) {
        Ok(()) => {
            *freed += own;
            Ok(())
        }
        Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
