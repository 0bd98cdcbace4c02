//! `--log-max` / `RUN_LOG_MAX`: any text either parses to 0 or a size of
//! 64 KiB to 1 EiB, or is refused with a message naming it; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match bgrun::cli::parse_size(text) {
        Ok(n) => {
            assert!(n == 0 || (64 << 10..=1 << 60).contains(&n), "{text:?} gave {n}");
            assert!(text.bytes().all(|b| b.is_ascii_digit() || b"kKmMgGtT".contains(&b)), "{text:?} was accepted");
        }
        Err(msg) => assert!(msg.contains(text) || text.is_empty()),
    }
});
