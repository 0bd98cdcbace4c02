//! What a job is called and how its command is shown and checked: the
//! default name (a script's, a shell string's program), the project, the
//! display form of an argv, and the refusal of a shell string whose first
//! word is no command.

use crate::exit::{Exit, Fail, Res};
use crate::proc;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

/// The project a directory belongs to: its git top level, else itself.
pub fn project_of(dir: &Path) -> PathBuf {
    let mut d = Some(dir);
    while let Some(p) = d {
        if p.join(".git").exists() {
            return p.to_path_buf();
        }
        d = p.parent();
    }
    dir.to_path_buf()
}

/// The default job name: the command's basename without its extension; for
/// an interpreter running a script (`python train.py`), the script's; for a
/// shell running a string (`sh -c 'python train.py'`), as [`shell_name`].
pub fn default_name(argv: &[OsString]) -> String {
    let base = |a: &OsStr| {
        let b = Path::new(a).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        match b.rsplit_once('.') {
            Some((stem, _)) if !stem.is_empty() => stem.to_string(),
            _ => b,
        }
    };
    let Some(first) = argv.first() else { return "job".into() };
    let prog = Path::new(first).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let interpreter = ["python", "python3", "node", "bash", "sh", "zsh", "ruby", "perl", "deno", "bun"]
        .iter()
        .any(|i| prog == *i || (prog.starts_with("python3.") && *i == "python3"));
    if let Some(text) = shell_c_string(&prog, argv).filter(|t| !t.trim().is_empty()) {
        return shell_name(&text);
    }
    if interpreter {
        if let Some(script) = argv.get(1).filter(|a| !a.to_string_lossy().starts_with('-')) {
            return base(script);
        }
    }
    let b = base(first);
    if b.is_empty() {
        "job".into()
    } else {
        b
    }
}

/// The string a shell runs with `-c` (also `-ec`, `-lc`, `-x -c`, past
/// `-o OPTION`, `+e` and `--`), when `prog` is sh, bash, zsh or dash.
fn shell_c_string(prog: &str, argv: &[OsString]) -> Option<String> {
    if !["sh", "bash", "zsh", "dash"].contains(&prog) {
        return None;
    }
    let mut has_c = false;
    let mut words = argv[1..].iter().map(|a| a.to_string_lossy());
    while let Some(a) = words.next() {
        if a == "--" {
            // The end of the options: the string, if any, is next.
            return words.next().filter(|_| has_c).map(|s| s.into_owned());
        }
        match a.strip_prefix('-').or_else(|| a.strip_prefix('+')) {
            Some(long) if long.starts_with('-') && long.len() > 1 => {} // --norc, --login
            Some(flags) if !flags.starts_with(['-', '+']) && !flags.is_empty() => {
                has_c |= a.starts_with('-') && flags.contains('c');
                if flags.contains('o') {
                    words.next(); // -o pipefail, +o errexit
                }
            }
            _ => return has_c.then(|| a.into_owned()),
        }
    }
    None
}

/// The default name of a shell string: the program it runs, past what
/// only prepares the run: a leading `cd DIR &&` (or `;`), assignments
/// (`FOO=bar`), `time`, `exec`, `env`, `nohup`, `sudo` and their flags,
/// and grouping (`{`, `(`); for `. ./build.sh` or `source x.sh`, the
/// script's name. Then as [`default_name`] (`python train.py` → `train`).
pub fn shell_name(text: &str) -> String {
    let spaced = text.replace("&&", " ; ").replace("||", " ; ").replace([';', '|', '&'], " ; ");
    let toks: Vec<&str> = spaced
        .split_whitespace()
        .map(|t| t.trim_matches(|c| "(){}'\"".contains(c)))
        .filter(|t| !t.is_empty())
        .collect();
    let is_assignment = |t: &str| {
        t.split_once('=').is_some_and(|(k, _)| {
            !k.is_empty()
                && !k.starts_with(|c: char| c.is_ascii_digit())
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
    };
    let mut i = 0;
    let mut wrapper = false;
    // `FOO=bar env` runs env itself.
    let mut last_wrapper = None;
    while i < toks.len() {
        let t = toks[i];
        match t {
            ";" => wrapper = false,
            "cd" | "pushd" => {
                // up to the next separator: `cd sub && make` is `make`
                while i < toks.len() && toks[i] != ";" {
                    i += 1;
                }
                continue;
            }
            "time" | "exec" | "env" | "nohup" | "sudo" | "command" | "nice" => {
                wrapper = true;
                last_wrapper = Some(t);
            }
            "-u" | "-g" | "-n" if wrapper && toks[i - 1] != "env" => i += 1, // sudo -u USER, nice -n N
            _ if wrapper && t.starts_with('-') => {}
            _ if is_assignment(t) => {}
            "." | "source" => {
                return toks.get(i + 1).map_or_else(|| "job".into(), |s| default_name(&[OsString::from(s)]));
            }
            _ => {
                let words: Vec<OsString> =
                    toks[i..].iter().take_while(|w| **w != ";").take(2).map(OsString::from).collect();
                return default_name(&words);
            }
        }
        i += 1;
    }
    last_wrapper.unwrap_or("sh").into()
}

/// A command line for display: words that need it are single-quoted.
pub fn shell_join(argv: &[OsString]) -> String {
    argv.iter()
        .map(|a| {
            let s = a.to_string_lossy();
            let plain = !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%^".contains(c));
            if plain {
                s.into_owned()
            } else {
                format!("'{}'", s.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Refuses a shell string whose first word can only be a command on PATH
/// and is not there (`run 'nosuch --flag'`, `job run "nosuch"`), before
/// anything starts: exit 127, as the shell itself would.
pub fn check_shell_command(text: &str, path: Option<&OsStr>) -> Res<()> {
    match plain_first_word(text) {
        Some(word) if proc::which(OsStr::new(word), path).is_none() => Err(not_found(OsStr::new(word))),
        _ => Ok(()),
    }
}

/// Why `cmd` cannot run, as a shell says it: a path that exists but cannot
/// be executed is exit 126, anything else not found is exit 127.
pub fn not_found(cmd: &OsStr) -> Fail {
    let shown: String = cmd
        .to_string_lossy()
        .chars()
        .map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() })
        .collect();
    let p = Path::new(cmd);
    if cmd.as_encoded_bytes().contains(&b'/') && p.exists() {
        let what = if p.is_dir() { "is a directory" } else { "not executable" };
        Fail::new(Exit::NotExecutable, format!("{shown}: {what}"))
    } else {
        Fail::new(Exit::NotFound, format!("{shown}: command not found"))
    }
}

/// The first word of a shell string when it can only be a command on PATH
/// (not a builtin, keyword, assignment or anything expanded), so that a
/// typo is refused before anything starts.
fn plain_first_word(text: &str) -> Option<&str> {
    const SHELL_WORDS: &[&str] = &[
        "if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done", "case", "esac", "in", "function",
        "select", "time", "!", "{", "}", "[", "[[", ".", ":", "alias", "bg", "break", "cd", "command", "continue",
        "eval", "exec", "exit", "export", "false", "fg", "getopts", "hash", "jobs", "kill", "local", "printf", "pwd",
        "read", "readonly", "return", "set", "shift", "source", "test", "trap", "true", "type", "ulimit", "umask",
        "unalias", "unset", "wait", "echo", "let", "declare", "typeset",
    ];
    let word = text.split_whitespace().next()?;
    let plain = word.chars().all(|c| c.is_alphanumeric() || "-_./+@%,:".contains(c));
    (plain && !SHELL_WORDS.contains(&word)).then_some(word)
}

/// The program for `sh -c`.
pub fn shell() -> Res<PathBuf> {
    proc::which(OsStr::new("sh"), std::env::var_os("PATH").as_deref())
        .or_else(|| Some(PathBuf::from("/bin/sh")).filter(|p| proc::is_executable(p)))
        .ok_or_else(|| Fail::new(Exit::NotFound, "sh: command not found"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_strings_are_named_after_the_program_they_run_not_what_prepares_it() {
        for (text, name) in [
            ("cd sub && make", "make"),
            ("cd sub; make -j8", "make"),
            ("FOO=bar env", "env"),
            ("FOO=bar make", "make"),
            ("{ echo a; }", "echo"),
            ("(cd a && cargo build)", "cargo"),
            (". ./build.sh", "build"),
            ("source ~/deploy.sh prod", "deploy"),
            ("time python train.py --epochs 3", "train"),
            ("sudo -u bob make install", "make"),
            ("env -i A=b nohup ./x.sh", "x"),
            ("exec ./serve", "serve"),
            ("make && make test", "make"),
            ("pytest tests/", "pytest"),
        ] {
            assert_eq!(shell_name(text), name, "{text}");
        }
    }

    #[test]
    fn a_shell_running_a_string_is_named_after_the_program_in_the_string() {
        let argv = |words: &[&str]| words.iter().map(OsString::from).collect::<Vec<_>>();
        for (words, name) in [
            (&["sh", "-c", "python train.py --lr 0.1"][..], "train"),
            (&["bash", "-c", "cd sub && make -j8"], "make"),
            (&["/usr/bin/zsh", "-lc", "./serve --port 80"], "serve"),
            (&["dash", "-e", "-c", "FOO=1 cargo build"], "cargo"),
            (&["bash", "-c"], "bash"),
            (&["sh", "script.sh", "-c"], "script"),
            (&["bash", "--norc", "-c", "pytest"], "pytest"),
            (&["bash", "-c", "--", "python3 -c 1"], "python3"),
            (&["bash", "-o", "pipefail", "-c", "make | tee log"], "make"),
            (&["bash", "-euo", "pipefail", "+x", "-c", "cargo test"], "cargo"),
            (&["bash", "+e", "-c", "pytest"], "pytest"),
            (&["sh", "-c", ""], "sh"),
            (&["bash", "-c", "  "], "bash"),
            (&["bash", "-c", "--"], "bash"),
        ] {
            assert_eq!(default_name(&argv(words)), name, "{words:?}");
        }
    }
}
