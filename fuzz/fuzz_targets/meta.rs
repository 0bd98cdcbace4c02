//! A job's `meta.json`: whatever bytes are in it, reading never panics
//! (nor overflows the stack), and what reads writes back and reads again.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(meta) = serde_json::from_slice::<bgrun::store::Meta>(data) {
        let _ = meta.started();
        let bytes = serde_json::to_vec(&meta).expect("a Meta always serializes");
        let again: bgrun::store::Meta = serde_json::from_slice(&bytes).expect("a written meta.json reads back");
        assert_eq!(again.id, meta.id);
        assert_eq!(again.argv, meta.argv);
    }
});
