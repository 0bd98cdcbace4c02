//! The id/name/prefix resolver: for any store and any word, the job it
//! picks really has that id, that name or that prefix, and it never picks
//! when the word is an ambiguous prefix.
#![no_main]

use bgrun::store::{has_id_shape, match_job, JobMatch};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // Lines: the word, then "id name" pairs, oldest first.
    let mut lines = text.split('\n');
    let word = lines.next().unwrap_or("");
    let jobs: Vec<(&str, &str)> = lines.map(|l| l.split_once(' ').unwrap_or((l, ""))).take(64).collect();
    match match_job(&jobs, word) {
        JobMatch::One(i) => {
            let (id, name) = jobs[i];
            if id != word {
                assert!(!jobs.iter().any(|j| j.0 == word), "an exact id was passed over");
                if name == word {
                    assert!(!jobs[i + 1..].iter().any(|j| j.1 == word), "not the newest of that name");
                } else {
                    assert!(id.starts_with(word));
                    assert!(!jobs.iter().any(|j| j.1 == word), "a name was passed over");
                    assert_eq!(jobs.iter().filter(|j| j.0.starts_with(word)).count(), 1);
                }
            }
        }
        // A word with the whole shape of an id names that id or nothing:
        // it is never taken as a prefix of a longer id (`NAME_TS_2`).
        JobMatch::NoMatch => assert!(!jobs.iter().any(|j| j.0 == word || j.1 == word
            || (j.0.starts_with(word) && !has_id_shape(word)))),
        JobMatch::Ambiguous(ix) => {
            assert!(ix.len() > 1);
            assert!(ix.iter().all(|&i| jobs[i].0.starts_with(word) && jobs[i].0 != word));
        }
    }
});
