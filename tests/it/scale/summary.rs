//! The summary of ended jobs (`.cache/summary`): a cache `runs --json` reads
//! instead of every settled job's files, which never hides nor invents a
//! job, however it is damaged.

use super::*;

/// `runs --json`'s whole output (it must succeed).
fn json_text(env: &Env) -> String {
    utc(env, "runs", &["--json"])
}

/// What `runs --json` shows of the store as it is, read from every job
/// (the summary removed first; the listing writes a new one).
fn truth(env: &Env) -> String {
    let _ = fs::remove_file(env.store.join(".cache/summary"));
    json_text(env)
}

/// Fails, naming the first line that differs, unless two listings are
/// the same.
fn same(got: &str, want: &str, what: &str) {
    if got != want {
        let (g, w): (Vec<&str>, Vec<&str>) = (got.lines().collect(), want.lines().collect());
        let i = g.iter().zip(&w).position(|(a, b)| a != b).unwrap_or(g.len().min(w.len()));
        let at = |v: &[&str]| v.get(i).map_or("(none)".to_string(), |l| l.chars().take(300).collect());
        panic!("{what}: {} lines, want {}; line {i} is\n{}\nnot\n{}", g.len(), w.len(), at(&g), at(&w));
    }
}

/// The inode number of a job's directory.
fn ino(env: &Env, id: &str) -> u64 {
    std::os::unix::fs::MetadataExt::ino(&fs::metadata(env.store.join(id)).expect("a job directory"))
}

#[test]
fn a_truncated_stale_planted_or_damaged_summary_never_hides_or_invents_a_job() {
    let env = Env::new();
    let tmpl = ended_template(&env, "tmpl");
    let ids = plant_many(&env, &tmpl, "s", 1200);
    let summary = env.store.join(".cache/summary");
    let first = truth(&env);
    let saved = fs::read_to_string(&summary).expect("runs --json of 1,200 ended jobs writes a summary");
    assert!(saved.lines().count() > 1200, "{} lines", saved.lines().count());
    // Used: a line with the right inode number is taken at its word.
    let edited = saved.replacen("\"state\":\"done\"", "\"state\":\"edited\"", 1);
    write(&summary, &edited);
    assert!(json_text(&env).contains("\"state\":\"edited\""), "the summary is not read");
    let tamper = |what: &str, text: &str, want: &str| {
        write(&summary, text);
        same(&json_text(&env), want, what);
    };
    tamper("the summary as written", &saved, &first);

    // Truncated, mid-line, at several places.
    for cut in [saved.len() / 2, saved.len() - 3, 40, 0] {
        tamper(&format!("truncated to {cut} bytes"), &saved[..cut], &first);
    }
    // Damaged lines, a repeated line, lines out of order, another store's.
    let lines: Vec<&str> = saved.lines().collect();
    let mut damaged = lines.clone();
    damaged.insert(5, "garbage");
    damaged.insert(9, "s_20250101_000003\tnot a number\t1\tdone\t{}");
    damaged.insert(12, lines[12]);
    tamper("damaged lines", &(damaged.join("\n") + "\n"), &first);
    let mut swapped = lines.clone();
    swapped.swap(3, 700);
    tamper("lines out of order", &(swapped.join("\n") + "\n"), &first);
    tamper("another store's", &saved.replacen(&env.store.display().to_string(), "/elsewhere", 1), &first);
    // Planted: a job that is not there, and a line for a job that is, with
    // another inode number.
    let real = &ids[10];
    let fake = saved
        .lines()
        .find(|l| l.starts_with(&format!("{real}\t")))
        .expect("a job's line")
        .replace(&ino(&env, real).to_string(), "1")
        .replace("\"state\":\"done\"", "\"state\":\"failed\"");
    let invented = fake.replace(real, "ghost_20250101_000010");
    tamper("planted lines", &format!("{saved}{fake}\n{invented}\n"), &first);
    let link = env.root.join("summary-elsewhere");
    write(&link, &edited);
    fs::remove_file(&summary).expect("rm");
    symlink(&link, &summary).expect("planting a link");
    same(&json_text(&env), &first, "a summary that is a link");
    assert_eq!(fs::read_to_string(&link).expect("the link's target"), edited, "written through a link");
    let _ = fs::remove_file(&summary);

    // Stale: jobs removed, added, and one replaced under the same id.
    same(&truth(&env), &first, "the truth, again");
    let saved = fs::read_to_string(&summary).expect("a summary");
    let out = env.run("runrm", &[&ids[0], &ids[600]]);
    assert!(out.status.success(), "{}", stderr(&out));
    let added = plant_many(&env, &tmpl, "t", 3);
    let replaced = env.store.join(&ids[900]);
    let moved = env.root.join("moved");
    fs::rename(&replaced, &moved).expect("moving a job away");
    plant(&moved, &env.store, ids[900].as_ref(), |m| m["command"] = "replaced".into());
    let want = truth(&env);
    assert!(want.contains("\"command\":\"replaced\"") && want.contains(&added[0]) && !want.contains(&ids[600]));
    tamper("stale", &saved, &want);
    tamper("stale and truncated", &saved[..saved.len() / 3], &want);
}
