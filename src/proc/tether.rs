//! The remote entry point's wait: its front runs as a child, and the
//! caller's connection is its stdin. When that ends (Ctrl-C on the
//! caller's side, a dropped link) before the child does, the child is
//! killed (a follower, a waiter: never the job, which has its own session
//! and watcher). The child is unreaped until then, so its pid is its own.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::Child;

/// Waits for `child` while watching stdin; its exit status, as a shell
/// gives it (128 + N for a signal N).
pub fn wait_tethered(mut child: Child) -> io::Result<i32> {
    // SAFETY: pidfd_open with plain integers; a non-negative result is a
    // new descriptor (close-on-exec) that we own.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id() as libc::pid_t, 0) };
    // SAFETY: as above.
    let pidfd = (raw >= 0).then(|| unsafe { OwnedFd::from_raw_fd(raw as i32) });
    let mut watching = true;
    while watching {
        let mut fds = [
            libc::pollfd { fd: 0, events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: pidfd.as_ref().map_or(-1, |f| f.as_raw_fd()), events: libc::POLLIN, revents: 0 },
        ];
        // Without pidfds (Linux < 5.3), a look at the child every 100 ms.
        let timeout = if pidfd.is_some() { -1 } else { 100 };
        // SAFETY: poll on an array we own, of its length.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if n < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            break;
        }
        if fds[1].revents != 0 || (pidfd.is_none() && child.try_wait()?.is_some()) {
            break;
        }
        if fds[0].revents != 0 {
            let mut b = [0u8; 512];
            // SAFETY: reading into a buffer we own, of its length.
            let got = unsafe { libc::read(0, b.as_mut_ptr().cast(), b.len()) };
            let interrupted = got < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted;
            if got == 0 || (got < 0 && !interrupted) {
                // The connection is gone: so is whoever waited for the child.
                let _ = child.kill();
                watching = false;
            }
        }
    }
    let st = child.wait()?;
    Ok(st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0)))
}
