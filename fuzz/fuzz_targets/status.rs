//! A job's `status` file: whatever bytes are in it, reading never panics,
//! and what reads as an end writes back as a line that reads the same.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Some(end) = bgrun::store::End::parse(&text) {
        let again = bgrun::store::End::parse(&end.line()).expect("a written status reads back");
        assert_eq!(again.state, end.state);
        assert_eq!(again.outcome, end.outcome);
    }
});
