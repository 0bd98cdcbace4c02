//! The completions in completions/ and the man pages in man/: they are
//! what the clap definitions generate now, each script loads in its real
//! shell and completes the ids of the jobs in the store, and every page
//! renders without a warning.
//!
//! The generator is `generate.rs`, run by the first test here, in the
//! manner of rust-analyzer's sourcegen tests: it fails when the committed
//! files differ from what the clap definitions generate, and with
//! `BGRUN_BLESS=1` it writes them instead. A test, not a binary or an
//! example, so that clap_complete and clap_mangen stay dev-dependencies,
//! out of the five binaries, and the check and the generation are one
//! code path.
//!
//! ```text
//! BGRUN_BLESS=1 cargo test --locked --test it assets   # rewrites completions/ and man/
//! ```

mod generate;

use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const REGENERATE: &str = "BGRUN_BLESS=1 cargo test --locked --test it assets";

/// Is this run to rewrite the generated files (`BGRUN_BLESS=1`)?
fn blessing() -> bool {
    std::env::var_os("BGRUN_BLESS").is_some_and(|v| v != "0" && !v.is_empty())
}

/// The directory of the built binaries, first on PATH, so the scripts'
/// `runs --complete-ids` runs the binary under test.
fn path_with_binaries() -> String {
    let dir = bin("runs").parent().expect("a binary is in a directory").to_path_buf();
    let rest = std::env::var("PATH").unwrap_or_default();
    format!("{}:{rest}", dir.display())
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())) {
        let path = entry.expect("reading a directory entry").path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// Completes the last word of `words` with the bash completion of
/// `words[0]` from completions/bash, as bash does on TAB: through the
/// function `complete -p` names. Returns the candidates.
fn bash_complete(env: &Env, words: &[&str]) -> Vec<String> {
    let script = r#"
        source "$1"; shift
        COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 ))
        COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
        fn=$(complete -p "$1" | sed -E 's/.* -F ([^ ]+) .*/\1/')
        "$fn" "$1" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
        printf '%s\n' "${COMPREPLY[@]}"
    "#;
    let file = repo().join(format!("completions/bash/{}", words[0]));
    let out = env
        .tool("bash")
        .arg("-c")
        .arg(script)
        .arg("bash")
        .arg(file)
        .args(words)
        .env("PATH", path_with_binaries())
        .output()
        .expect("running bash");
    ok(&out, &format!("bash completing {words:?}"));
    stdout(&out).lines().map(String::from).collect()
}

fn two_jobs(env: &Env) -> (String, String) {
    let a = env.start(&["--name", "alpha", "true"]);
    let b = env.start(&["--name", "beta", "true"]);
    (a, b)
}

/// The text of a roff section (`.SH NAME` up to the next `.SH`), its
/// escapes undone enough to read: `\-` → `-`, fonts dropped.
fn roff_section(page: &str, name: &str) -> String {
    let head = if name.contains(' ') { format!(".SH \"{name}\"\n") } else { format!(".SH {name}\n") };
    let start = page.find(&head).unwrap_or_else(|| panic!("no {name} section"));
    let body = &page[start + head.len()..];
    let end = body.find("\n.SH ").map_or(body.len(), |e| e + 1);
    let mut text = body[..end].replace("\\-", "-").replace("\\*(Aq", "'");
    for font in ["\\fB", "\\fR", "\\fI", "\\fP"] {
        text = text.replace(font, "");
    }
    text
}

/// The words in backticks of `text`.
fn backticked(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

#[test]
fn the_committed_completions_and_man_pages_are_what_the_clap_definitions_generate() {
    let generated = generate::generate();
    if blessing() {
        let n = generate::write_all(&repo(), &generated).unwrap_or_else(|e| panic!("{e}"));
        eprintln!("BGRUN_BLESS: wrote {n} files under completions/ and man/");
    }
    let mut problems = Vec::new();
    for (rel, text) in &generated {
        match std::fs::read(repo().join(rel)) {
            Ok(bytes) if bytes == text.as_bytes() => {}
            Ok(_) => problems.push(format!("{rel} differs")),
            Err(e) => problems.push(format!("{rel} cannot be read: {e}")),
        }
    }
    for dir in generate::DIRS {
        let mut found = Vec::new();
        files_under(&repo().join(dir), &mut found);
        for path in found {
            let rel = path.strip_prefix(repo()).expect("under the repository").to_string_lossy().into_owned();
            if !generated.iter().any(|(g, _)| *g == rel) {
                problems.push(format!("{rel} is not generated any more"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "completions/ and man/ have drifted from src/cli/:\n  {}\nRegenerate them with `{REGENERATE}` and commit the result.",
        problems.join("\n  ")
    );
    for name in NAMES {
        for file in [
            format!("completions/bash/{name}"),
            format!("completions/zsh/_{name}"),
            format!("completions/fish/{name}.fish"),
            format!("man/{name}.1"),
        ] {
            assert!(generated.iter().any(|(g, _)| *g == file), "{file} is not generated");
        }
    }
    for sub in ["run", "list", "status", "logs", "stop", "wait", "retry", "clean", "queue"] {
        let file = format!("man/job-{sub}.1");
        assert!(generated.iter().any(|(g, _)| *g == file), "{file} is not generated");
    }
}

#[test]
fn every_completion_script_loads_in_its_shell_without_a_word_on_stderr() {
    if !need_tools(&["bash", "zsh", "fish"]) {
        return;
    }
    let env = Env::new();
    let dump = env.root.join("zcompdump");
    for name in NAMES {
        let bash = repo().join(format!("completions/bash/{name}"));
        let out = env
            .tool("bash")
            .arg("-c")
            .arg(r#"source "$1" && complete -p "$2""#)
            .arg("bash")
            .arg(&bash)
            .arg(name)
            .output()
            .expect("running bash");
        ok(&out, &format!("bash loading {}", bash.display()));
        assert!(stdout(&out).contains(&format!(" {name}\n")), "{} registers no completion for {name}", bash.display());

        let zsh = repo().join(format!("completions/zsh/_{name}"));
        let script = r#"autoload -U compinit && compinit -u -d "$1" && source "$2" && print -r -- "$_comps[$3]""#;
        let out = env
            .tool("zsh")
            .arg("-fc")
            .arg(script)
            .arg("zsh")
            .arg(&dump)
            .arg(&zsh)
            .arg(name)
            .output()
            .expect("running zsh");
        ok(&out, &format!("zsh loading {}", zsh.display()));
        assert_eq!(stdout(&out).trim(), format!("_{name}"), "{} registers no completion for {name}", zsh.display());

        let fish = repo().join(format!("completions/fish/{name}.fish"));
        let out = env
            .tool("fish")
            .arg("--no-config")
            .arg("-c")
            .arg("source $argv[1]; and complete -c $argv[2]")
            .arg(&fish)
            .arg(name)
            .output()
            .expect("running fish");
        ok(&out, &format!("fish loading {}", fish.display()));
        assert!(stdout(&out).contains("-l help"), "{} completes no options for {name}", fish.display());
    }
}

#[test]
fn zsh_finds_every_completion_through_fpath_as_an_installed_copy_would_be() {
    if !need_tool("zsh") {
        return;
    }
    let env = Env::new();
    let script = r#"fpath=("$1" $fpath); autoload -U compinit && compinit -u -d "$2" && print -r -- $_comps[run] $_comps[runs] $_comps[runlog] $_comps[runrm] $_comps[job]"#;
    let out = env
        .tool("zsh")
        .arg("-fc")
        .arg(script)
        .arg("zsh")
        .arg(repo().join("completions/zsh"))
        .arg(env.root.join("zcompdump"))
        .output()
        .expect("running zsh");
    ok(&out, "zsh compinit with completions/zsh in fpath");
    assert_eq!(stdout(&out).trim(), "_run _runs _runlog _runrm _job");
}

#[test]
fn completing_runlog_in_bash_offers_the_ids_and_names_of_the_jobs_in_the_store() {
    if !need_tool("bash") {
        return;
    }
    let env = Env::new();
    let (a, b) = two_jobs(&env);
    let mut got = bash_complete(&env, &["runlog", ""]);
    got.sort();
    let mut want = vec![a.clone(), b.clone(), "alpha".to_string(), "beta".to_string()];
    want.sort();
    assert_eq!(got, want);
    assert_eq!(bash_complete(&env, &["runlog", "be"]), vec![b.clone(), "beta".to_string()]);
    // A word where no job goes gets clap's completions, not jobs.
    let after_tail = bash_complete(&env, &["runlog", "--tail", ""]);
    assert!(!after_tail.contains(&a), "the value of --tail was completed with job ids: {after_tail:?}");
    assert!(bash_complete(&env, &["runlog", "--"]).contains(&"--no-follow".to_string()));
    let after_one = bash_complete(&env, &["runlog", &a, ""]);
    assert!(after_one.contains(&b), "runlog follows several jobs, yet no second was offered: {after_one:?}");
}

#[test]
fn completing_runrm_and_the_job_subcommands_in_bash_offers_job_ids() {
    if !need_tool("bash") {
        return;
    }
    let env = Env::new();
    let (a, b) = two_jobs(&env);
    for words in [
        &["runrm", &a, ""][..],
        &["job", "logs", ""],
        &["job", "status", ""],
        &["job", "stop", &a, ""],
        &["job", "wait", "--timeout", "5m", ""],
        &["job", "retry", ""],
    ] {
        let got = bash_complete(&env, words);
        assert!(
            got.contains(&a) && got.contains(&b) && got.contains(&"alpha".to_string()),
            "{words:?} offered {got:?}"
        );
    }
    let subcommands = bash_complete(&env, &["job", ""]);
    assert!(
        subcommands.contains(&"logs".to_string()) && !subcommands.contains(&a),
        "job <TAB> offered {subcommands:?}"
    );
    let run_options = bash_complete(&env, &["job", "run", "--"]);
    assert!(run_options.contains(&"--timeout".to_string()), "job run --<TAB> offered {run_options:?}");
}

#[test]
fn completing_job_ids_in_fish_offers_the_jobs_in_the_store() {
    if !need_tool("fish") {
        return;
    }
    let env = Env::new();
    let (a, b) = two_jobs(&env);
    let complete = |line: &str| {
        let name = line.split(' ').next().expect("a command line has a word");
        let file = repo().join(format!("completions/fish/{name}.fish"));
        let out = env
            .tool("fish")
            .arg("--no-config")
            .arg("-c")
            .arg("source $argv[1]; and complete -C $argv[2]")
            .arg(file)
            .arg(line)
            .env("PATH", path_with_binaries())
            .output()
            .expect("running fish");
        ok(&out, &format!("fish completing '{line}'"));
        stdout(&out).lines().map(|l| l.split('\t').next().unwrap_or_default().to_string()).collect::<Vec<_>>()
    };
    for line in ["runlog ", "runrm ", "job logs ", "job stop alpha "] {
        let got = complete(line);
        assert!(got.contains(&a) && got.contains(&b) && got.contains(&"beta".to_string()), "'{line}' offered {got:?}");
    }
    let mut narrowed = complete("runlog al");
    narrowed.sort();
    assert_eq!(narrowed, vec!["alpha".to_string(), a.clone()]);
    let after_tail = complete("runlog --tail ");
    assert!(!after_tail.contains(&a), "the value of --tail was completed with job ids: {after_tail:?}");
    assert!(!complete("job ").contains(&a), "job <TAB> offered job ids");
}

/// zsh's completion only runs in an interactive shell, so this types into
/// one, in tmux, and reads the listing off the screen.
#[test]
fn completing_runlog_in_zsh_lists_the_jobs_in_the_store() {
    if !need_tools(&["zsh", "tmux"]) {
        return;
    }
    let env = Env::new();
    let (a, b) = two_jobs(&env);
    let zdotdir = env.root.join("zdotdir");
    std::fs::create_dir_all(&zdotdir).expect("creating ZDOTDIR");
    let rc = format!(
        "fpath=({} $fpath)\nautoload -U compinit && compinit -u -d {}\nPS1='ready> '\n",
        repo().join("completions/zsh").display(),
        env.root.join("zcompdump").display()
    );
    crate::common::write(&zdotdir.join(".zshrc"), &rc);
    let socket = format!("bgrun-assets-{}", std::process::id());
    let tmux = |args: &[&str]| env.tool("tmux").arg("-L").arg(&socket).args(args).output().expect("running tmux");
    let shell = format!(
        "env PATH='{}' RUN_DIR='{}' ZDOTDIR='{}' zsh -i",
        path_with_binaries(),
        env.store.display(),
        zdotdir.display()
    );
    let out = tmux(&["new-session", "-d", "-s", "z", "-x", "150", "-y", "40", &shell]);
    ok(&out, "tmux new-session");
    let screen = || stdout(&tmux(&["capture-pane", "-p", "-t", "z"]));
    let result = std::panic::catch_unwind(|| {
        wait_until(Duration::from_secs(20), "the zsh prompt", || screen().contains("ready>"));
        tmux(&["send-keys", "-t", "z", "-l", "runlog "]);
        tmux(&["send-keys", "-t", "z", "Tab"]);
        wait_until(Duration::from_secs(20), "zsh to list the jobs", || {
            let s = screen();
            s.contains(&a) && s.contains(&b)
        });
    });
    let last = screen();
    tmux(&["kill-server"]);
    if result.is_err() {
        panic!("zsh did not list {a} and {b}; the screen:\n{last}");
    }
}

#[test]
fn runs_complete_ids_prints_nothing_and_succeeds_without_a_store() {
    let env = Env::new();
    let out = env.run("runs", &["--complete-ids"]);
    ok(&out, "runs --complete-ids with no store");
    assert_eq!(stdout(&out), "");
    let (a, _) = two_jobs(&env);
    let out = env.run("runs", &["--complete-ids"]);
    assert!(stdout(&out).lines().any(|l| l == a), "runs --complete-ids printed {:?}", stdout(&out));
    let help = stdout(&env.run("runs", &["--help"]));
    assert!(!help.contains("complete-ids"), "the hidden flag shows in runs --help");
}

#[test]
fn every_man_page_renders_at_80_columns_without_a_warning() {
    if !need_tool("man") {
        return;
    }
    let mut pages = Vec::new();
    files_under(&repo().join("man"), &mut pages);
    assert!(pages.len() >= 13, "man/ holds {} pages", pages.len());
    for page in pages {
        let out = Command::new("man")
            .arg("--warnings")
            .arg("-l")
            .arg(&page)
            .env("MANWIDTH", "80")
            .env("MANPAGER", "cat")
            .env("LC_ALL", "C.UTF-8")
            .output()
            .expect("running man");
        ok(&out, &format!("man --warnings -l {}", page.display()));
        let text = stdout(&out);
        for section in ["SYNOPSIS", "DESCRIPTION", "EXIT STATUS", "ENVIRONMENT", "FILES", "EXAMPLES", "SEE ALSO"] {
            assert!(text.contains(&format!("\n{section}\n")), "{} has no {section} section", page.display());
        }
        for word in ["RUN_DIR", "NTFY_TOPIC", "NO_COLOR", "meta.json", "124"] {
            assert!(text.contains(word), "{} does not mention {word}", page.display());
        }
    }
}

#[test]
fn each_man_page_has_the_synopsis_and_description_of_the_command_it_names() {
    let mut pages = Vec::new();
    files_under(&repo().join("man"), &mut pages);
    let commands = generate::commands();
    for page in pages {
        let file = page.file_name().and_then(|n| n.to_str()).expect("a page name").to_string();
        let name = file.strip_suffix(".1").expect("a section 1 page");
        let (top, sub) = name.split_once('-').map_or((name, None), |(t, s)| (t, Some(s)));
        let top_cmd = commands.iter().find(|c| c.get_name() == top).unwrap_or_else(|| panic!("{file}: no command"));
        let cmd = match sub {
            Some(s) => top_cmd.find_subcommand(s).unwrap_or_else(|| panic!("{file}: no subcommand {s}")),
            None => top_cmd,
        };
        let words = name.replace('-', " ");
        let text = std::fs::read_to_string(&page).expect("reading a page");
        let synopsis = roff_section(&text, "SYNOPSIS");
        assert!(synopsis.trim_start().starts_with(&format!("{words} ")), "{file}: SYNOPSIS is {synopsis:?}");
        for a in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
            if let Some(long) = a.get_long() {
                assert!(synopsis.contains(&format!("--{long}")), "{file}: SYNOPSIS lacks --{long}: {synopsis}");
            }
            let value = a.get_value_names().and_then(|v| v.first()).map(|v| v.to_string());
            if let Some(v) = value.filter(|_| a.get_action().takes_values()) {
                assert!(synopsis.contains(&v), "{file}: SYNOPSIS lacks {v}: {synopsis}");
            }
        }
        let description = roff_section(&text, "DESCRIPTION");
        let about = cmd.get_about().map(|a| a.to_string()).unwrap_or_default();
        let mut paras = description.split(".PP\n").map(str::trim);
        assert_eq!(paras.next(), Some(about.as_str()), "{file}: DESCRIPTION does not open with its command's about");
        let first = paras.next().unwrap_or_default();
        assert!(first.starts_with(&format!("{words} ")), "{file}: DESCRIPTION is not about {words}: {first}");
    }
}

#[test]
fn the_states_and_exit_codes_listed_in_help_man_pages_and_readme_are_those_of_the_code() {
    use bgrun::store::State;
    use bgrun::Exit;
    let env = Env::new();
    let states: Vec<&str> = State::ALL.iter().map(|s| s.as_str()).collect();
    let codes: Vec<String> = Exit::ALL.iter().map(|e| (*e as u8).to_string()).collect();
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("reading README.md");

    // README: the States bullet, the JSON table's state row, --status.
    let bullet = readme.split("\n- States: ").nth(1).and_then(|r| r.split("\n- ").next()).expect("a States bullet");
    let mut listed: Vec<&str> = Vec::new();
    for w in backticked(bullet).into_iter().filter(|w| w.chars().all(|c| c.is_ascii_lowercase())) {
        if !listed.contains(&w) {
            listed.push(w);
        }
    }
    assert_eq!(listed, states, "README's States bullet");
    let row = readme.lines().find(|l| l.starts_with("| `state` |")).expect("a state row in README");
    assert_eq!(backticked(row)[1..], states[..], "README's state row");
    let status =
        readme.split("`--status` takes").nth(1).and_then(|r| r.split(['.', ';']).next()).expect("--status takes");
    assert_eq!(backticked(status), states, "README on --status");

    // Help: runs (its about), runs --state and job list --status.
    let help = stdout(&env.run("runs", &["--help"]));
    let about = help.lines().next().and_then(|l| l.strip_prefix("List background jobs: ")).expect("runs's about");
    assert_eq!(about.split(", ").collect::<Vec<_>>(), states, "runs --help");
    for (front, args) in [("runs", vec!["--help"]), ("job", vec!["list", "--help"])] {
        let help = stdout(&env.run(front, &args));
        let values = help.split("[possible values: ").nth(1).and_then(|r| r.split(']').next()).expect("values");
        assert_eq!(values.split(", ").collect::<Vec<_>>(), states, "{front} {args:?}");
    }
    // Man: runs.1 names every state.
    let runs_page = std::fs::read_to_string(repo().join("man/runs.1")).expect("reading man/runs.1");
    for s in &states {
        assert!(roff_section(&runs_page, "DESCRIPTION").contains(&format!("{s} (")), "man runs lacks {s}");
    }

    // Exit codes: README's table and every man page's EXIT STATUS are the
    // code's; those job --help names are among them.
    let table = readme.split("### Exit codes").nth(1).expect("an exit code table in README");
    let table: Vec<String> = table
        .lines()
        .skip_while(|l| !l.starts_with("| code"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| l.split('|').nth(1).unwrap_or_default().trim().to_string())
        .collect();
    assert_eq!(table, codes, "README's exit codes");
    let mut pages = Vec::new();
    files_under(&repo().join("man"), &mut pages);
    for page in pages {
        let text = std::fs::read_to_string(&page).expect("reading a page");
        let section = roff_section(&text, "EXIT STATUS");
        let listed: Vec<String> = section
            .lines()
            .zip(section.lines().skip(1))
            .filter(|(a, _)| *a == ".TP")
            .map(|(_, c)| c.to_string())
            .collect();
        assert_eq!(listed, codes, "{}: EXIT STATUS", page.display());
    }
    let help = stdout(&env.run("job", &["--help"]));
    let para = help.split("Exit codes:").nth(1).expect("job --help lists exit codes");
    for word in para.split(|c: char| !c.is_ascii_digit()).filter(|w| !w.is_empty()) {
        assert!(codes.iter().any(|c| c == word), "job --help names exit code {word}, which the code does not have");
    }
}
