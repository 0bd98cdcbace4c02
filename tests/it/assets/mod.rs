//! The completions in completions/ and the man pages in man/: they are
//! what the clap definitions generate now, each script loads in its real
//! shell (what it completes: `completion.rs`), and every page renders
//! without a warning, in the POSIX locale too. The examples the docs show
//! print what they show: `examples.rs`.
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

mod completion;
mod examples;
mod generate;

use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

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
fn every_man_page_renders_in_the_posix_locale_without_a_warning() {
    if !need_tool("man") {
        return;
    }
    let mut pages = Vec::new();
    files_under(&repo().join("man"), &mut pages);
    for page in pages {
        let roff = std::fs::read(&page).expect("reading a man page");
        assert!(roff.is_ascii(), "{} is not ASCII", page.display());
        let out = Command::new("man")
            .arg("--warnings")
            .arg("-l")
            .arg(&page)
            .env("MANWIDTH", "80")
            .env("MANPAGER", "cat")
            .env_remove("LANG")
            .env_remove("LANGUAGE")
            .env("LC_ALL", "C")
            .output()
            .expect("running man");
        ok(&out, &format!("LC_ALL=C man --warnings -l {}", page.display()));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.trim().is_empty(), "LC_ALL=C man -l {} warns:\n{err}", page.display());
        assert!(!stdout(&out).contains('\u{fffd}'), "{} renders a replacement character", page.display());
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
