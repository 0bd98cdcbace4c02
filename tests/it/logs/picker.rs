//! The `runlog` picker, driven through a real terminal: tmux runs `runlog`
//! in a detached session, the test reads the screen with `capture-pane` and
//! types with `send-keys`.

use crate::common::*;
use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

/// A tmux server of the test's own (its socket lives in the test's
/// directory), killed when dropped.
struct Tmux<'a> {
    env: &'a Env,
    socket: PathBuf,
}

impl<'a> Tmux<'a> {
    /// `None` (the test reported as not run) without tmux.
    fn new(env: &'a Env) -> Option<Tmux<'a>> {
        need_tool("tmux").then(|| Tmux { env, socket: env.root.join("tmux.sock") })
    }

    fn tmux(&self, args: &[&str]) -> Output {
        self.env.tool("tmux").arg("-S").arg(&self.socket).args(args).output().expect("running tmux")
    }

    /// Starts `runlog` in session `S`, its stdout to `OUT/sel` and its exit
    /// status to `OUT/rc` once it ends.
    fn start_runlog(&self) {
        self.start_runlog_then(false)
    }

    /// As `start_runlog`; with `hold`, the pane stays (showing what runlog
    /// wrote on the terminal) until the tmux server is killed.
    fn start_runlog_then(&self, hold: bool) {
        let out = self.env.root.display();
        let command = format!(
            "env RUN_DIR='{}' HOME='{}' NO_COLOR=1 '{}' > '{out}/sel'; echo $? > '{out}/rc.tmp'; mv '{out}/rc.tmp' '{out}/rc'{}",
            self.env.store.display(),
            self.env.home.display(),
            bin("runlog").display(),
            if hold { "; exec tail -f /dev/null" } else { "" },
        );
        let started = self.tmux(&["new-session", "-d", "-s", "S", "-x", "100", "-y", "30", &command]);
        assert!(started.status.success(), "tmux new-session: {}", stderr(&started));
    }

    fn screen(&self) -> String {
        stdout(&self.tmux(&["capture-pane", "-p", "-t", "S"]))
    }

    fn wait_screen(&self, what: &str, cond: impl Fn(&str) -> bool) {
        let mut last = String::new();
        let deadline = std::time::Instant::now() + SOON;
        while std::time::Instant::now() < deadline {
            last = self.screen();
            if cond(&last) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("timed out waiting for {what}; the screen:\n{last}");
    }

    /// Waits for the picker's prompt with all `n` jobs listed.
    fn wait_prompt(&self, n: usize) {
        let count = format!("{n} jobs, newest first");
        self.wait_screen("the picker's prompt", |s| {
            s.lines().any(|l| l.starts_with("log>")) && s.contains(&count) && rows(s).len() == n
        });
    }

    fn keys(&self, args: &[&str]) {
        let mut all = vec!["send-keys", "-t", "S"];
        all.extend_from_slice(args);
        let out = self.tmux(&all);
        assert!(out.status.success(), "tmux send-keys: {}", stderr(&out));
    }

    /// `runlog`'s exit status and what it printed, once it has ended.
    fn result(&self) -> (i32, String) {
        let rc = self.env.root.join("rc");
        wait_until(SOON, "runlog to end", || rc.exists());
        let code = std::fs::read_to_string(&rc).expect("reading rc").trim().parse().expect("an exit status");
        let sel = std::fs::read_to_string(self.env.root.join("sel")).expect("reading runlog's output");
        (code, sel)
    }
}

impl Drop for Tmux<'_> {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}

/// The job rows on the screen, top to bottom (the cursor's `>` and the
/// margin taken off): each starts with the job's state.
fn rows(screen: &str) -> Vec<&str> {
    screen
        .lines()
        .map(|l| l.trim_start_matches(['>', ' ']))
        .filter(|l| ["done ", "running ", "failed "].iter().any(|s| l.starts_with(s)))
        .collect()
}

/// Three finished jobs with different commands; their ids, oldest first.
fn three_jobs(env: &Env) -> Vec<String> {
    let ids: Vec<String> = ["apple", "zebra-kiwi", "mango"].iter().map(|w| env.start(&["echo", w])).collect();
    for id in &ids {
        env.wait_ended(id, SOON);
    }
    ids
}

#[test]
fn the_picker_selects_the_job_matching_the_filter_and_prints_its_log() {
    let env = Env::new();
    let ids = three_jobs(&env);
    let Some(tmux) = Tmux::new(&env) else { return };
    tmux.start_runlog();
    tmux.wait_prompt(3);

    tmux.keys(&["-l", "zebra"]);
    tmux.wait_screen("the filter to leave one job", |s| matches!(rows(s)[..], [row] if row.contains("zebra-kiwi")));
    // The preview: the log's tail, with the header lines readers show first.
    tmux.wait_screen("the preview with the log's header", |s| {
        s.contains("=== echo zebra-kiwi") && s.contains("=== cwd: ") && s.contains("=== started: ")
    });
    tmux.keys(&["Enter"]);

    let (code, sel) = tmux.result();
    assert_eq!(code, 0, "runlog exited with {code}; printed: {sel}");
    assert_eq!(sel, env.shown_log(&ids[1]), "runlog printed another log than the chosen job's");
    assert!(sel.contains("\nzebra-kiwi\n") && sel.contains("=== done (exit 0) after "), "{sel}");
}

#[test]
fn the_picker_lists_the_newest_job_first_right_under_the_prompt_and_no_second_counter() {
    let env = Env::new();
    let ids = three_jobs(&env);
    let Some(tmux) = Tmux::new(&env) else { return };
    tmux.start_runlog();
    tmux.wait_prompt(3);
    let screen = tmux.screen();
    let lines: Vec<&str> = screen.lines().collect();
    let prompt = lines.iter().position(|l| l.starts_with("log>")).expect("the prompt");
    let below: Vec<&str> = lines[prompt + 1..].iter().map(|l| l.trim_start_matches(['>', ' '])).collect();
    assert!(below[0].starts_with("3 jobs, newest first"), "no header under the prompt:\n{screen}");
    assert_eq!(
        below[1].split_whitespace().nth(1),
        Some(ids[2].as_str()),
        "the newest job is not first under the prompt:\n{screen}"
    );
    let order: Vec<usize> = rows(&screen)
        .iter()
        .map(|r| ids.iter().position(|id| r.split_whitespace().nth(1) == Some(id)).expect("a row"))
        .collect();
    assert_eq!(order, [2, 1, 0], "not newest first:\n{screen}");
    assert!(!screen.contains("0/0") && !screen.contains("3/3"), "a counter is shown:\n{screen}");
    tmux.keys(&["Escape"]);
    assert_eq!(tmux.result().0, 130);
}

#[test]
fn escape_in_the_picker_cancels_with_130_and_prints_nothing() {
    let env = Env::new();
    three_jobs(&env);
    let Some(tmux) = Tmux::new(&env) else { return };
    tmux.start_runlog();
    tmux.wait_prompt(3);

    tmux.keys(&["Escape"]);

    let (code, sel) = tmux.result();
    assert_eq!(code, 130);
    assert_eq!(sel, "");
}

#[test]
fn the_picker_aligns_its_columns_and_keeps_the_list_wide_on_a_100_column_terminal() {
    let env = Env::new();
    let long = "a-command-long-enough-to-be-cut-by-a-side-preview";
    let ids = [env.start(&["echo", long]), env.start(&["sh", "-c", "exit 3"]), env.start(&["--name", "x", "true"])];
    for id in &ids {
        env.wait_ended(id, SOON);
    }
    let Some(tmux) = Tmux::new(&env) else { return };
    tmux.start_runlog();
    tmux.wait_prompt(3);
    let screen = tmux.screen();
    assert!(screen.contains(long), "the list is cut (a preview beside it?):\n{screen}");
    // Ids of different lengths, yet the commands start in one column.
    let commands = [format!("echo {long}"), "sh -c 'exit 3'".to_string(), "true".to_string()];
    let columns: Vec<usize> = ids
        .iter()
        .zip(&commands)
        .map(|(id, cmd)| {
            let line = screen.lines().find(|l| l.contains(id.as_str())).expect("every job is listed");
            line.rfind(cmd.as_str()).unwrap_or_else(|| panic!("no {cmd} in {line:?}"))
        })
        .collect();
    assert!(columns.windows(2).all(|w| w[0] == w[1]), "commands not aligned ({columns:?}):\n{screen}");
    tmux.keys(&["Escape"]);
    assert_eq!(tmux.result().0, 130);
}

#[test]
fn enter_when_the_filter_matches_nothing_says_so_and_shows_no_log() {
    let env = Env::new();
    three_jobs(&env);
    let Some(tmux) = Tmux::new(&env) else { return };
    tmux.start_runlog_then(true);
    tmux.wait_prompt(3);
    tmux.keys(&["-l", "qqqxyz"]);
    tmux.wait_screen("the filter to leave nothing", |s| s.contains("log> qqqxyz") && rows(s).is_empty());
    tmux.keys(&["Enter"]);
    let (code, sel) = tmux.result();
    assert_eq!(code, 1);
    assert_eq!(sel, "");
    tmux.wait_screen("the message", |s| s.contains("no job matches 'qqqxyz'"));
}

#[test]
fn typing_a_jobs_exact_name_in_the_picker_puts_it_first_and_enter_shows_its_log() {
    let env = Env::new();
    // "b250", typed, also matches b425's row fuzzily (b…2…5…0 in its id's
    // date), and b425 is the newer.
    let ids: Vec<String> = ["b250", "b425"].iter().map(|n| env.start(&["--name", n, "true"])).collect();
    for id in &ids {
        env.wait_ended(id, SOON);
    }
    let Some(tmux) = Tmux::new(&env) else { return };
    tmux.start_runlog();
    tmux.wait_prompt(2);
    let first = |s: &str| rows(s).first().and_then(|r| r.split_whitespace().nth(1).map(str::to_string));
    assert_eq!(first(&tmux.screen()), Some(ids[1].clone()), "not newest first before typing");

    tmux.keys(&["-l", "b250"]);
    // Both rows stay (the filter is fuzzy); the typed one comes first.
    tmux.wait_screen("the filter to take the name", |s| s.contains("log> b250") && rows(s).len() == 2);
    tmux.wait_screen("the typed job first", |s| first(s).as_deref() == Some(ids[0].as_str()));
    tmux.keys(&["Enter"]);

    let (code, sel) = tmux.result();
    assert_eq!(code, 0, "runlog exited with {code}; printed: {sel}");
    assert_eq!(sel, env.shown_log(&ids[0]), "Enter showed another job's log than the one typed");
}
