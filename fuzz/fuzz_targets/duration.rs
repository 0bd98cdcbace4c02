//! `--timeout` / `--older-than`: any text either parses to at most 100
//! years or is refused with a message naming it; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match bgrun::cli::parse_duration(text) {
        Ok(d) => {
            assert!(d.as_secs() <= 100 * 365 * 86_400, "{text:?} gave {d:?}");
            assert!(text.bytes().all(|b| b.is_ascii_digit() || b"dhms".contains(&b)), "{text:?} was accepted");
        }
        Err(msg) => assert!(!msg.is_empty()),
    }
});
