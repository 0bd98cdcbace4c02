//! The names of a big store's jobs kept in `.cache/names`: read instead of
//! the store's directory while that has not changed, and never hiding a
//! job made, nor showing one removed, since; a file truncated, damaged,
//! planted behind a link or a FIFO is not used.

use super::*;
use std::process::Command;

/// The file systems the names are kept on (`stat -f -c %T`).
const LOCAL: [&str; 8] = ["ext2/ext3", "xfs", "btrfs", "tmpfs", "f2fs", "zfs", "bcachefs", "overlayfs"];

fn names_file(env: &Env) -> PathBuf {
    env.store.join(".cache/names")
}

/// Lists the store until a listing keeps its names anew (the store's
/// directory must have been still for 2 s first); false, the test reported
/// not run, where the store's file system is not one they are kept on.
fn kept(env: &Env) -> bool {
    let out = Command::new("stat").args(["-f", "-c", "%T"]).arg(&env.store).output().expect("stat -f");
    let fs_type = stdout(&out).trim().to_string();
    let why = format!("the test's store is on {fs_type}, where the names are never kept");
    if !need(LOCAL.contains(&fs_type.as_str()), &why, "run the tests with TMPDIR on ext4, xfs, btrfs or tmpfs") {
        return false;
    }
    let before = fs::read(names_file(env)).ok();
    wait_until(SOON, "a listing to keep the store's names", || {
        utc(env, "runs", &["-n", "1"]);
        fs::read(names_file(env)).is_ok_and(|now| Some(&now) != before.as_ref())
    });
    true
}

/// The full listing and the newest five, read from the directory (the
/// names removed first; the listing may write them again).
fn truth(env: &Env) -> (String, String) {
    let _ = fs::remove_file(names_file(env));
    (utc(env, "runs", &["--json"]), utc(env, "runs", &["-n", "5"]))
}

/// The same listings, as the store's names stand.
fn listed(env: &Env) -> (String, String) {
    (utc(env, "runs", &["--json"]), utc(env, "runs", &["-n", "5"]))
}

/// Fails, naming the listing and the first line that differs, unless
/// two pairs of listings are the same.
fn same(got: &(String, String), want: &(String, String), what: &str) {
    for (g, w, which) in [(&got.0, &want.0, "runs --json"), (&got.1, &want.1, "runs -n 5")] {
        if g != w {
            let (g, w): (Vec<&str>, Vec<&str>) = (g.lines().collect(), w.lines().collect());
            let i = g.iter().zip(&w).position(|(a, b)| a != b).unwrap_or(g.len().min(w.len()));
            let at = |v: &[&str]| v.get(i).map_or("(none)".to_string(), |l| l.chars().take(200).collect());
            panic!("{what}: {which}: {} lines, want {}; line {i} is\n{}\nnot\n{}", g.len(), w.len(), at(&g), at(&w));
        }
    }
}

/// The hash a first line of `words` (its last, the hash itself, left out)
/// and the lines `body` hold: the store's own, `store::names::hash`.
fn line_hash(words: &[String], body: &str) -> String {
    (bgrun::store::names::hash(words[..words.len() - 1].join(" ").as_bytes(), body.as_bytes()) as i64).to_string()
}

/// `text` (a names file) with the lines `drop` leaves out and its first
/// line's count and hash made right for what is left.
fn without(text: &str, drop: impl Fn(&str) -> bool) -> String {
    let (head, body) = text.split_once('\n').expect("a first line");
    let kept: String = body.lines().filter(|l| !drop(l)).map(|l| format!("{l}\n")).collect();
    let mut words: Vec<String> = head.split(' ').map(str::to_string).collect();
    let n = words.len();
    words[n - 3] = kept.lines().count().to_string();
    words[n - 1] = line_hash(&words, &kept);
    format!("{}\n{kept}", words.join(" "))
}

#[test]
fn the_kept_names_of_a_big_store_never_hide_a_job_made_or_show_one_removed_since_nor_are_used_damaged() {
    let env = Env::new();
    let tmpl = ended_template(&env, "tmpl");
    let ids = plant_many(&env, &tmpl, "s", 1200);
    if !kept(&env) {
        return;
    }
    let saved = fs::read_to_string(names_file(&env)).expect("the names");
    assert_eq!(saved.lines().count(), 1 + 1 + 1200, "the first line, the template and the planted jobs");
    let first = listed(&env);
    same(&first, &truth(&env), "the listings from the names and from the directory");
    // That listing of a still directory kept its names again.
    assert!(fs::read_to_string(names_file(&env)).expect("the names, kept again") == saved, "kept again otherwise");

    // Used while the directory has not moved: a job left out of a file
    // made right for the rest is not listed (a planted file is the store
    // owner's doing).
    let hidden = &ids[1199];
    let planted = without(&saved, |l| l.ends_with(&format!("\t{hidden}")));
    write(&names_file(&env), &planted);
    let (json, newest) = listed(&env);
    assert!(!json.contains(hidden) && !newest.contains(hidden), "the names are not read");

    // Damaged in any way: not used. Truncated at a line's end or within
    // one, a byte changed, a line more, through a link, a FIFO.
    let mut damaged = vec![
        saved[..saved.len() / 2].to_string(),
        saved[..saved.len() - 1].to_string(),
        saved.replacen(&format!("\t{hidden}"), &format!("\t{}", &ids[3]), 1),
        format!("{saved}1\tghost_20250101_000000\n"),
        planted.replacen("bgrun-names 1", "bgrun-names 2", 1),
    ];
    let cut = saved.rfind(&format!("\t{hidden}")).expect("the hidden job's line");
    damaged.push(saved[..saved[..cut].rfind('\n').expect("a line") + 1].to_string());
    for (i, text) in damaged.iter().enumerate() {
        write(&names_file(&env), text);
        same(&listed(&env), &first, &format!("damaged names #{i}"));
    }
    let elsewhere = env.root.join("names-elsewhere");
    write(&elsewhere, &planted);
    fs::remove_file(names_file(&env)).expect("rm");
    symlink(&elsewhere, names_file(&env)).expect("planting a link");
    same(&listed(&env), &first, "names behind a link");
    fs::remove_file(names_file(&env)).expect("rm");
    let fifo = Command::new("mkfifo").arg(names_file(&env)).status().expect("mkfifo");
    assert!(fifo.success());
    same(&listed(&env), &first, "a FIFO at the names");
    fs::remove_file(names_file(&env)).expect("rm");

    // Stale: a job made, a job removed, a job replaced under its id, each
    // seen at once with the names of before put back.
    let stale = |what: &str| {
        let want = truth(&env);
        write(&names_file(&env), &saved);
        same(&listed(&env), &want, what);
        want
    };
    let made = env.start(&["--name", "made", "true"]);
    env.wait_ended(&made, SOON);
    let (json, newest) = stale("a job made since");
    assert!(json.contains(&made) && newest.contains(&made));
    let out = env.run("runrm", &[&ids[1199], &made]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (json, _) = stale("jobs removed since");
    assert!(!json.contains(&ids[1199]) && !json.contains(&made));
    let moved = env.root.join("moved");
    fs::rename(env.store.join(&ids[1198]), &moved).expect("moving a job away");
    plant(&moved, &env.store, ids[1198].as_ref(), |m| m["command"] = "replaced".into());
    let (json, newest) = stale("a job replaced since");
    assert!(json.contains("\"command\":\"replaced\"") && newest.contains("replaced"));

    // Kept again once still, and giving the same answers.
    assert!(kept(&env));
    let now = listed(&env);
    same(&now, &truth(&env), "kept again");
}

#[test]
fn runs_n_and_lookups_by_name_or_prefix_from_the_kept_names_give_a_full_listings_answers() {
    let env = Env::new();
    // 1,000 seconds of jobs of four names, some seconds holding two jobs
    // whose suffixes are not in their start order, damaged and foreign
    // entries among the newest.
    let names = crowded_store(&env, 1000, true);
    if !kept(&env) {
        return;
    }
    let mut words: Vec<&str> = names.clone();
    words.extend(["a_20250101_00000", "c_b_20250101_00011", "b_20250101_000", "zz", "a_20250101_000000", "foreign"]);
    check_against_full_listing(&env, &words);
    let out = env.run("job", &["status", "b_20250101_000"]);
    assert!(
        stderr(&out).contains("'b_20250101_000' matches 180 jobs: b_20250101_000957, b_20250101_000953"),
        "{}",
        stderr(&out)
    );
}

// --- hostile: found attacking the names' cache ---------------------------------

/// `text` (a names file) with its first line's word `i` from the end
/// replaced by `v` (the lines, and so the hash, left as they are).
fn head_word(text: &str, i: usize, v: &str) -> String {
    let (head, body) = text.split_once('\n').expect("a first line");
    let mut words: Vec<String> = head.split(' ').map(str::to_string).collect();
    let n = words.len();
    words[n - i] = v.to_string();
    format!("{}\n{body}", words.join(" "))
}

#[test]
fn a_names_file_whose_queues_flag_is_damaged_is_not_used() {
    let env = Env::new();
    crowded_store(&env, 1000, true);
    let late = plant_late(&env);
    if !kept(&env) {
        return;
    }
    let saved = fs::read_to_string(names_file(&env)).expect("the names");
    assert!(saved.lines().next().is_some_and(|h| h.split(' ').rev().nth(1) == Some("1")), "queues kept");
    assert!(utc(&env, "runs", &["-n", "1"]).contains(late), "from the names as written");
    // One byte of the first line damaged (1 -> 0): the lines, and their
    // hash, are intact.
    write(&names_file(&env), &head_word(&saved, 2, "0"));
    let newest = utc(&env, "runs", &["-n", "1"]);
    assert!(newest.contains(late), "a damaged names file was used: runs -n 1 hides {late}:\n{newest}");
}

/// `text` (a names file) with `lines` put first and its first line's count
/// and hash made right: what a file planted with care holds.
fn with_first(text: &str, lines: &[&str]) -> String {
    let (head, body) = text.split_once('\n').expect("a first line");
    let body: String = lines.iter().map(|l| format!("{l}\n")).collect::<String>() + body;
    let mut words: Vec<String> = head.split(' ').map(str::to_string).collect();
    let n = words.len();
    words[n - 3] = body.lines().count().to_string();
    words[n - 1] = line_hash(&words, &body);
    format!("{}\n{body}", words.join(" "))
}

#[test]
fn a_names_file_never_names_a_job_outside_the_store() {
    let env = Env::new();
    let tmpl = ended_template(&env, "tmpl");
    plant_many(&env, &tmpl, "s", 1000);
    // Another store's job, beside this store.
    let other = env.root.join("other");
    fs::create_dir_all(&other).expect("mkdir");
    let far = "far_20250101_000000";
    plant(&tmpl, &other, far.as_ref(), |m| m["name"] = "far".into());
    if !kept(&env) {
        return;
    }
    let saved = fs::read_to_string(names_file(&env)).expect("the names");
    // No directory entry's name holds a '/': a line naming one is not
    // a job of this store, planted or not (a planted file may hide a job,
    // never invent one).
    let abs = format!("1\t{}", other.join(far).display());
    for (i, line) in [abs.as_str(), "1\t../other/far_20250101_000000"].iter().enumerate() {
        write(&names_file(&env), &with_first(&saved, &[line]));
        let all = utc(&env, "runs", &[]);
        assert!(!all.contains(far), "#{i}: a job outside the store listed:\n{}", last_lines(&all, 3));
        let out = env.run("job", &["status", "far"]);
        assert!(!stdout(&out).contains(far), "#{i}: job status found a job outside the store: {}", stdout(&out));
    }
}

#[test]
fn a_names_file_of_another_format_is_not_used() {
    let env = Env::new();
    let tmpl = ended_template(&env, "tmpl");
    let ids = plant_many(&env, &tmpl, "s", 1000);
    if !kept(&env) {
        return;
    }
    let saved = fs::read_to_string(names_file(&env)).expect("the names");
    let hidden = &ids[999];
    // A file of a later format ("bgrun-names 12"), which this version
    // cannot know the lines of: here, the newest job left out.
    let later =
        without(&saved, |l| l.ends_with(&format!("\t{hidden}"))).replacen("bgrun-names 1 ", "bgrun-names 12 ", 1);
    write(&names_file(&env), &later);
    let all = utc(&env, "runs", &[]);
    assert!(all.contains(hidden.as_str()), "a names file of format 12 was read as format 1: {hidden} hidden");
}

#[test]
fn the_temporary_files_of_listings_killed_while_keeping_the_names_do_not_pile_up() {
    let env = Env::new();
    let tmpl = ended_template(&env, "tmpl");
    plant_many(&env, &tmpl, "s", 1000);
    if !kept(&env) {
        return;
    }
    // What a listing killed while it wrote the names leaves (its pid is
    // gone), untouched for a day.
    // (A `.new-summary.PID` in the root, as older versions left it, was
    // swept by runrm as a `.new-*` leftover; in `.cache/` it is not.)
    let lefts = [env.store.join(".cache/.names.4194300.tmp"), env.store.join(".cache/.new-summary.4194301")];
    for left in &lefts {
        write(left, "partial");
        let status = Command::new("touch").args(["-d", "1 day ago"]).arg(left).status().expect("touch");
        assert!(status.success());
    }
    for args in [&["-n", "1"][..], &["--json"][..], &[][..]] {
        env.run("runs", args);
    }
    let out = env.run("runrm", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    for left in &lefts {
        assert!(!left.exists(), "a day-old {} is never removed (listings, runrm's sweep)", left.display());
    }
}
