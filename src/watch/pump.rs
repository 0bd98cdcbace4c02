//! A capped job's output (`--log-max`). The job does not write into its
//! log: it writes into a pipe, and a thread of its watcher copies the pipe
//! into the log, looking at the cap (`store::cap`) after every chunk. A job
//! that writes faster than the watcher copies (a busy machine, where the
//! watcher waits for a CPU) waits on the full pipe instead of growing the
//! log, so the log passes the cap by at most one chunk whatever the load:
//! a look every few milliseconds, as before, held only while the watcher
//! got a CPU in time (under load it let a 10 MiB cap reach 155 MiB).
//! A job without a cap writes straight into its log; nothing is copied.
//!
//! While the pipe is quiet it looks at the cap every `Cap::tick` too: a
//! job may write its log by its path.
//!
//! The main thread takes the pump's lock to record the end: it first
//! copies what the job wrote before it ended (what the pipe holds), so
//! the footer comes after it; meanwhile any process of the job left
//! writing waits. The thread ends when every writer is gone.

use crate::proc;
use crate::store::{self, Cap};
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// The largest chunk copied between two looks at the cap: the most the log
/// can pass the cap by (an eighth of a smaller cap).
pub const CHUNK: u64 = 64 << 10;

/// How much one drain copies at most: what a pipe can hold (a job can
/// grow its pipe to 1 MiB), so that a drain ends though a writer goes on.
const DRAIN_MAX: u64 = 1 << 20;

pub struct Pump {
    inner: Arc<Mutex<Inner>>,
}

pub struct Inner {
    pipe: File,
    log: File,
    log_path: PathBuf,
    pub dir: PathBuf,
    pub cap: Cap,
    buf: Vec<u8>,
    /// Every writer is gone.
    eof: bool,
    /// A write or a look failed (said once in the log).
    failed: bool,
}

/// The pump held: nothing is copied meanwhile.
pub struct Held<'a>(MutexGuard<'a, Inner>);

impl Deref for Held<'_> {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl DerefMut for Held<'_> {
    fn deref_mut(&mut self) -> &mut Inner {
        &mut self.0
    }
}

impl Pump {
    /// Starts copying `pipe` into `log` (opened for appending) under `cap`,
    /// once the caller drops what this returns, after which `dir` (set
    /// through it, if the job's directory moved) is where `dropped` goes.
    pub fn start(pipe: File, log: &File, dir: &Path, cap: Cap) -> Result<(Pump, Held<'static>), String> {
        let log = log.try_clone().map_err(|e| format!("the log cap: {e}"))?;
        let poll = pipe.try_clone().map_err(|e| format!("the log cap: {e}"))?;
        let chunk = (cap.max() / 8).clamp(4096, CHUNK) as usize;
        let inner = Inner {
            pipe,
            log,
            log_path: store::log_path(dir),
            dir: dir.to_path_buf(),
            cap,
            buf: vec![0; chunk],
            eof: false,
            failed: false,
        };
        // Leaked: the watcher has one pump, for its whole life.
        let inner: &'static Arc<Mutex<Inner>> = Box::leak(Box::new(Arc::new(Mutex::new(inner))));
        let held = Held(lock(inner));
        let shared = inner.clone();
        std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(move || loop {
                let tick = lock(&shared).cap.tick();
                let readable = proc::wait_readable(&poll, tick);
                let mut g = lock(&shared);
                if readable {
                    g.copy(16);
                } else {
                    // A writer by the log's path, not through the pipe.
                    g.look();
                }
                if g.eof {
                    return;
                }
            })
            .map_err(|e| format!("the log cap: starting its thread: {e}"))?;
        Ok((Pump { inner: inner.clone() }, held))
    }

    /// Holds the pump once it has copied what the pipe holds now.
    pub fn drained(&self) -> Held<'_> {
        let mut g = Held(lock(&self.inner));
        let chunks = DRAIN_MAX / g.buf.len() as u64 + 1;
        g.copy(chunks as usize);
        g
    }
}

impl Held<'_> {
    /// Where the job's files are now (published from where it was staged).
    pub fn moved_to(&mut self, dir: &Path) {
        self.0.log_path = store::log_path(dir);
        self.0.dir = dir.to_path_buf();
        store::prepare_spare(dir);
    }
}

fn lock(m: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Inner {
    /// Writes the first `n` bytes of the buffer to the log. On a full disk
    /// (the job's own writes may fill it) the cap's drop is made first, once,
    /// and the write tried again: the newest output is kept.
    fn write(&mut self, n: usize) -> Result<(), String> {
        let (mut at, mut freed) = (0, false);
        while at < n {
            match (&self.log).write(&self.buf[at..n]) {
                Ok(k) => at += k,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) && !freed => {
                    freed = true;
                    self.cap.check(&self.log, &self.dir)?;
                }
                Err(e) => return Err(format!("writing the log: {e}")),
            }
        }
        Ok(())
    }

    /// Copies up to `chunks` chunks, looking at the cap after each; stops
    /// early when the pipe is empty or every writer is gone.
    fn copy(&mut self, chunks: usize) {
        for _ in 0..chunks {
            let n = match self.pipe.read(&mut self.buf) {
                Ok(0) => {
                    self.eof = true;
                    return;
                }
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            let wrote = self.write(n);
            if let Err(e) = wrote.and_then(|()| self.cap.check(&self.log, &self.dir)) {
                self.trouble(&e);
            }
        }
    }

    /// Looks at the cap with nothing copied: for a job that writes its log
    /// by its path (every `Cap::tick` while the pipe is quiet).
    fn look(&mut self) {
        if let Err(e) = self.cap.check(&self.log, &self.dir) {
            self.trouble(&e);
        }
    }

    /// Said once in the log (tried again at every chunk or look).
    fn trouble(&mut self, e: &str) {
        if !self.failed {
            let _ = store::append_note(&self.log, &self.log_path, &format!("{e}; trying again"));
        }
        self.failed = true;
    }
}
