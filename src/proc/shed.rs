//! Giving back what a waiting watcher does not use.
//!
//! A watcher is a fork of the process that launched its job (`run`, `job
//! run`, a queue's starter), with no exec: it starts out with that
//! process's memory, and once the launcher has exited, whatever the
//! launcher touched is counted as the watcher's. Once the job has run for
//! a moment (`watch::SHED_AFTER`: a job that ends sooner never pays for
//! this), the watcher calls `shed` (so does a Slurm step, for what its own
//! start-up touched), which gives back:
//!
//! 1. The heap's free pages (`malloc_trim`); the watcher has dropped what
//!    only the job needed (its command, a queued job's environment).
//! 2. Every page of the loaded files (the binary, libc, ld.so) that is
//!    still the file's own: the code and constants the launcher ran
//!    through (about 1.5 MiB) and the clean part of the relocated data.
//!    They are unmapped from this process only (MADV_DONTNEED), stay in
//!    the page cache, and fault back in, the same, when the watcher runs
//!    that code again. /proc/self/pagemap tells such a page from a private
//!    copy made when the page was written (relocations, a debugger's
//!    breakpoint), which is kept: dropping it would bring the file's bytes
//!    back. Without pagemap, none of these is dropped.
//! 3. The stack more than a page below the caller's frame: nothing below
//!    the stack pointer is live (the x86-64 red zone is 128 bytes, well
//!    inside the margin), and the launcher's deeper calls left it dirty.
//!
//! The ranges are gathered first and dropped together at the end, so that
//! little code runs, and comes back, between the drop and the wait. What
//! stays is what the process uses or cannot tell apart from it: the
//! written pages of the binary's and the libraries' data, the launcher's
//! live allocations (scattered over every page of the heap), and the stack
//! from the caller's frame up to the environment.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;

/// Gives back the heap's free pages, the pages of the loaded files that
/// are still the files' own, and the stack below this call. Never fails;
/// drops nothing it is not sure of.
pub fn shed() {
    let mut ranges =
        Ranges { page: page_size(), pagemap: File::open("/proc/self/pagemap").ok(), list: [(0, 0); 24], len: 0 };
    // First: the buffer it reads into is freed before the trim, and the
    // stack's range is never the one left out of a full list.
    if let Some((lo, hi)) = stack_below_here(ranges.page) {
        ranges.push(lo, hi);
    }
    // SAFETY: malloc_trim only gives free memory back to the kernel.
    #[cfg(target_env = "gnu")]
    unsafe {
        libc::malloc_trim(0);
    }
    // SAFETY: the callback reads only what dl_iterate_phdr passes it, and
    // `ranges` outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(file_pages), (&raw mut ranges).cast()) };
    // All at once, last: between the first and the last, no code runs but
    // this loop's and madvise's, so little comes back before the wait.
    for &(lo, hi) in &ranges.list[..ranges.len] {
        // SAFETY: each range holds pages of the loaded files that are still
        // the files' own (they come back the same), or stack pages below
        // this frame (see `stack_below_here`), where nothing is live.
        unsafe { libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_DONTNEED) };
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf only reads a configuration value.
    match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        n if n > 0 => n as usize,
        _ => 4096,
    }
}

/// The ranges to drop, gathered before any is dropped; past the 24th, the
/// rest is kept.
struct Ranges {
    page: usize,
    pagemap: Option<File>,
    list: [(usize, usize); 24],
    len: usize,
}

/// What /proc/self/pagemap says of a page (see the kernel's
/// admin-guide/mm/pagemap): present in memory, swapped out, and mapping
/// a file's page (not an anonymous copy).
const PRESENT: u64 = 1 << 63;
const SWAPPED: u64 = 1 << 62;
const FILE_PAGE: u64 = 1 << 61;

impl Ranges {
    fn push(&mut self, lo: usize, hi: usize) {
        if hi > lo && self.len < self.list.len() {
            self.list[self.len] = (lo, hi);
            self.len += 1;
        }
    }

    /// Adds the pages of [lo, hi) (page-aligned) that are still the file's
    /// own: a page of the file, or none at all. A private copy, made when
    /// the page was written (relocations, a debugger's breakpoint), present
    /// or swapped out, splits the range and is kept. Without pagemap,
    /// nothing is added.
    fn push_file_pages(&mut self, lo: usize, hi: usize) {
        let Some(pagemap) = self.pagemap.take() else { return };
        let page = self.page;
        let mut buf = [0u8; 4096];
        let (mut from, mut at) = (lo, lo);
        while at < hi {
            let n = ((hi - at) / page).min(buf.len() / 8);
            let offset = (at / page * 8) as u64;
            if pagemap.read_exact_at(&mut buf[..n * 8], offset).is_err() {
                break;
            }
            for entry in buf[..n * 8].chunks_exact(8) {
                let e = u64::from_ne_bytes(entry.try_into().expect("chunks of 8 bytes"));
                if e & FILE_PAGE == 0 && e & (PRESENT | SWAPPED) != 0 {
                    self.push(from, at);
                    from = at + page;
                }
                at += page;
            }
        }
        self.push(from, at);
        self.pagemap = Some(pagemap);
    }
}

/// Adds the pages of every loaded file's segments (PT_LOAD, the part
/// backed by the file) that are still the file's own. The vDSO (a name
/// that is not a path) is left alone.
unsafe extern "C" fn file_pages(
    info: *mut libc::dl_phdr_info,
    _size: libc::size_t,
    data: *mut libc::c_void,
) -> libc::c_int {
    let ranges = &mut *data.cast::<Ranges>();
    let info = &*info;
    let name = if info.dlpi_name.is_null() { c"" } else { std::ffi::CStr::from_ptr(info.dlpi_name) };
    if !(name.is_empty() || name.to_bytes().starts_with(b"/")) {
        return 0;
    }
    let page = ranges.page;
    let phdrs = std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum));
    for ph in phdrs.iter().filter(|ph| ph.p_type == libc::PT_LOAD) {
        let from = (info.dlpi_addr as usize).wrapping_add(ph.p_vaddr as usize);
        let to = from.saturating_add(ph.p_filesz as usize);
        ranges.push_file_pages(from / page * page, to.next_multiple_of(page));
    }
    0
}

/// The part of this thread's stack that lies a page or more below the
/// caller's frame: from the start of the mapping that holds it (read from
/// /proc/self/maps, at most 64 KiB of it) to a page boundary at least a
/// page below a local of this function. None if it cannot be told.
#[inline(never)]
fn stack_below_here(page: usize) -> Option<(usize, usize)> {
    let here = std::hint::black_box(0u8);
    let sp = &raw const here as usize;
    let mut maps = Vec::with_capacity(8192);
    File::open("/proc/self/maps").ok()?.take(64 << 10).read_to_end(&mut maps).ok()?;
    let lo = maps.split(|&b| b == b'\n').find_map(|line| {
        let range = line.split(|&b| b == b' ').next()?;
        let (lo, hi) = std::str::from_utf8(range).ok()?.split_once('-')?;
        let (lo, hi) = (usize::from_str_radix(lo, 16).ok()?, usize::from_str_radix(hi, 16).ok()?);
        (lo <= sp && sp < hi).then_some(lo)
    })?;
    let hi = sp.checked_sub(page)? / page * page;
    (hi > lo).then_some((lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn shedding_keeps_what_is_live_on_the_stack_the_heap_and_in_written_data() {
        // In the binary's data segment, from the file, until written here:
        // then a private copy, which must survive.
        static WRITTEN: AtomicU64 = AtomicU64::new(1);
        WRITTEN.store(2, Ordering::Relaxed);
        let on_stack = std::hint::black_box([7u8; 512]);
        let on_heap = vec![9u64; 4096];
        shed();
        assert_eq!(WRITTEN.load(Ordering::Relaxed), 2);
        assert!(on_stack.iter().all(|&b| b == 7));
        assert!(on_heap.iter().all(|&v| v == 9));
        assert_eq!(format!("{}", on_heap.len()), "4096");
    }
}
