//! The shell completions and the man pages, generated from the clap
//! definitions in src/cli/. The first test of the `assets` module compares
//! them with the committed files, and with `BGRUN_BLESS=1` writes them
//! ([`write_all`]).
//!
//! - Completions: clap_complete writes the static part (options,
//!   subcommands). Where a job id or name goes ([`JOB_ARGS`]), the scripts
//!   call `runs --complete-ids=WHICH`, which prints the ids and names of
//!   the jobs that command can act on (`active`: running or queued, for
//!   `job stop` and `job wait`; `ended`, for `runrm` and `job retry`;
//!   `all` elsewhere), one a line: bash through a wrapper function registered after clap's, zsh
//!   as the `_arguments` action of that position, fish as one more
//!   `complete` line. Where `--on` takes destinations, the scripts call
//!   `runs --complete-hosts` (`local`, `all`, RUN_HOSTS, the `Host` names
//!   of ~/.ssh/config), after the last comma of a list. Everything added is checked against clap's output
//!   here, so a change in clap_complete fails the generator, not the user.
//! - Man pages: clap_mangen writes NAME, SYNOPSIS, DESCRIPTION, OPTIONS and
//!   the subcommand list; this adds the notes and examples of each
//!   command's `after_help`, EXIT STATUS, ENVIRONMENT, FILES (the store
//!   layout, taken from the header of src/store/mod.rs) and SEE ALSO.
//!
//! Output is deterministic (no dates), so it can be compared byte for byte.

use bgrun::cli;
use bgrun::store::State;
use bgrun::Exit;
use clap::{Arg, Command, CommandFactory};
use clap_complete::Shell;
use clap_mangen::roff::{bold, italic, roman, Inline, Roff};
use clap_mangen::Man;
use std::path::Path;

/// The command the completion scripts run for job ids and names, followed
/// by `=WHICH`.
const IDS_COMMAND: &str = "runs --complete-ids";

/// Where a job id or name goes: (command, subcommand, argument id, which
/// jobs the command can act on: the value of `--complete-ids`).
const JOB_ARGS: [(&str, Option<&str>, &str, &str); 7] = [
    ("runlog", None, "jobs", "all"),
    ("runrm", None, "jobs", "ended"),
    ("job", Some("status"), "id", "all"),
    ("job", Some("logs"), "ids", "all"),
    ("job", Some("stop"), "ids", "active"),
    ("job", Some("wait"), "ids", "active"),
    ("job", Some("retry"), "id", "ended"),
];

/// The command the completion scripts run for the destinations of `--on`:
/// `local`, `all`, the hosts of RUN_HOSTS and the `Host` names of
/// ~/.ssh/config.
const HOSTS_COMMAND: &str = "runs --complete-hosts";

/// Does the command (or one of its subcommands) take `--on`?
fn has_on(cmd: &Command) -> bool {
    let mine = |c: &Command| c.get_arguments().any(|a| a.get_long() == Some("on"));
    mine(cmd) || cmd.get_subcommands().any(mine)
}

/// The five commands, as clap defines them.
pub fn commands() -> Vec<Command> {
    vec![cli::Run::command(), cli::Runs::command(), cli::Runlog::command(), cli::Runrm::command(), cli::Job::command()]
}

/// The directories the generator owns, whole.
pub const DIRS: [&str; 2] = ["completions", "man"];

/// Every generated file: its path relative to the repository, and its text.
pub fn generate() -> Vec<(String, String)> {
    let mut files = Vec::new();
    for cmd in commands() {
        let name = cmd.get_name().to_string();
        let slots = slots(&cmd);
        files.push((format!("completions/bash/{name}"), bash(&cmd, &slots)));
        files.push((format!("completions/zsh/_{name}"), zsh(&cmd, &slots)));
        files.push((format!("completions/fish/{name}.fish"), fish(&cmd, &slots)));
        for (file, text) in man_pages(&cmd) {
            files.push((format!("man/{file}"), text));
        }
    }
    files
}

// --- completions ------------------------------------------------------------

/// One position where a job goes, with what the scripts need to know of it.
struct Slot {
    /// The `job` subcommand it belongs to, if any.
    sub: Option<String>,
    /// The argument's id in clap (the word the zsh spec names it by).
    arg: String,
    /// Whether it takes several jobs.
    many: bool,
    /// The options of the same (sub)command that take a value: the word
    /// after one of them is that value, not a job.
    value_options: Vec<String>,
    /// Which jobs to offer: `all`, `active` or `ended`.
    which: String,
}

fn slots(cmd: &Command) -> Vec<Slot> {
    let mut built = cmd.clone();
    built.build();
    let name = built.get_name().to_string();
    JOB_ARGS
        .iter()
        .filter(|(c, _, _, _)| *c == name)
        .map(|&(_, sub, arg, which)| {
            let owner = match sub {
                Some(s) => {
                    built.find_subcommand(s).unwrap_or_else(|| panic!("{name} has no subcommand {s} (JOB_ARGS)"))
                }
                None => &built,
            };
            let a = owner
                .get_arguments()
                .find(|a| a.get_id() == arg)
                .unwrap_or_else(|| panic!("{name} {sub:?} has no argument {arg} (JOB_ARGS)"));
            assert!(a.is_positional(), "{name} {sub:?}: {arg} is not a positional argument");
            let many = a.get_num_args().is_some_and(|n| n.max_values() > 1);
            Slot {
                sub: sub.map(String::from),
                arg: arg.to_string(),
                many,
                value_options: value_options(owner),
                which: which.to_string(),
            }
        })
        .collect()
}

fn value_options(cmd: &Command) -> Vec<String> {
    let takes_value = |a: &&Arg| !a.is_positional() && a.get_action().takes_values();
    let mut opts = Vec::new();
    for a in cmd.get_arguments().filter(takes_value) {
        opts.extend(a.get_long().map(|l| format!("--{l}")));
        opts.extend(a.get_short().map(|s| format!("-{s}")));
    }
    opts
}

fn clap_script(cmd: &Command, shell: Shell) -> String {
    let mut cmd = cmd.clone();
    let name = cmd.get_name().to_string();
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut buf);
    String::from_utf8(buf).expect("clap_complete writes UTF-8")
}

const BASH_HOSTS: &str = r#"
# --- destinations of --on (added by the assets test's generator) ---
# _bgrun_hosts: if the word being completed follows --on, offer what
# `HOSTS_COMMAND` prints (after the last comma of a list) and succeed.
_bgrun_hosts() {
    [[ ${COMP_WORDS[COMP_CWORD-1]} == --on ]] || return 1
    local cur=${COMP_WORDS[COMP_CWORD]} pre= h IFS=$'\n'
    [[ $cur == *,* ]] && pre=${cur%,*},
    COMPREPLY=()
    for h in $(HOSTS_COMMAND 2>/dev/null); do
        [[ $pre$h == "$cur"* ]] && COMPREPLY+=("$pre$h")
    done
    return 0
}

"#;

const BASH_IDS: &str = r#"
# --- job ids and names (added by the assets test's generator) ---
# _bgrun_ids WHICH FIRST MAX [OPTION...]: if the word being completed is
# where a job goes, offer the ids and names `runs --complete-ids=WHICH`
# prints (WHICH: all, active or ended: the jobs the command can act on)
# and succeed. FIRST is the index of the first word after the
# (sub)command, MAX how many jobs it takes (0: any number), the OPTIONs
# those that take a value (the word after one is not a job).
_bgrun_ids() {
    local which=$1 first=$2 max=$3 i n=0 word before
    shift 3
    (( COMP_CWORD >= first )) || return 1
    _bgrun_is_job_word "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}" "$@" || return 1
    for (( i = first; i < COMP_CWORD; i++ )); do
        word=${COMP_WORDS[i]} before=${COMP_WORDS[i-1]}
        _bgrun_is_job_word "$word" "$before" "$@" && n=$((n + 1))
    done
    (( max == 0 || n < max )) || return 1
    local IFS=$'\n'
    COMPREPLY=($(compgen -W "$(IDS_COMMAND="$which" 2>/dev/null)" -- "${COMP_WORDS[COMP_CWORD]}"))
    return 0
}

# _bgrun_is_job_word WORD BEFORE [OPTION…]: is WORD (preceded by BEFORE) a
# job rather than an option or an option's value?
_bgrun_is_job_word() {
    local word=$1 before=$2 opt
    shift 2
    [[ $word == -* || $word == = || $before == = ]] && return 1
    for opt in "$@"; do
        [[ $before == "$opt" ]] && return 1
    done
    return 0
}

"#;

/// The bash script: clap's, then (for commands that take jobs) the id
/// helpers and a wrapper, registered in place of clap's function.
fn bash(cmd: &Command, slots: &[Slot]) -> String {
    let name = cmd.get_name();
    let mut s = clap_script(cmd, Shell::Bash);
    if slots.is_empty() && !has_on(cmd) {
        return s;
    }
    let clap_fn = format!("_{name}");
    assert!(s.contains(&format!("\n    complete -F {clap_fn} ")), "clap's bash script for {name} changed shape");
    if has_on(cmd) {
        s.push_str(&BASH_HOSTS.replace("HOSTS_COMMAND", HOSTS_COMMAND));
    }
    if !slots.is_empty() {
        s.push_str(&BASH_IDS.replace("IDS_COMMAND", IDS_COMMAND));
    }
    let call = |first: usize, slot: &Slot| {
        let mut c = format!("_bgrun_ids {} {first} {}", slot.which, if slot.many { 0 } else { 1 });
        for o in &slot.value_options {
            c.push(' ');
            c.push_str(o);
        }
        c
    };
    s.push_str(&format!("_bgrun_{name}() {{\n"));
    if has_on(cmd) {
        s.push_str("    _bgrun_hosts && return 0\n");
    }
    if slots.iter().all(|sl| sl.sub.is_none()) {
        for slot in slots {
            s.push_str(&format!("    {} && return 0\n", call(1, slot)));
        }
    } else {
        s.push_str("    case ${COMP_WORDS[1]} in\n");
        for slot in slots {
            let sub = slot.sub.as_deref().expect("all slots of a command with subcommands are in one");
            s.push_str(&format!("        {sub}) {} && return 0 ;;\n", call(2, slot)));
        }
        s.push_str("    esac\n");
    }
    s.push_str(&format!("    {clap_fn} \"$@\"\n}}\n"));
    s.push_str(&format!("complete -F _bgrun_{name} -o bashdefault -o default {name}\n"));
    s
}

const ZSH_HOSTS: &str = r#"# Destinations of --on (added by the assets test's generator).
(( $+functions[_bgrun_hosts] )) ||
_bgrun_hosts() {
    local -a hosts
    hosts=(${(f)"$(_call_program hosts HOSTS_COMMAND 2>/dev/null)"})
    _values -s , 'destination' $hosts
}

"#;

const ZSH_IDS: &str = r#"# Job ids and names (added by the assets test's generator).
# _bgrun_ids WHICH: the jobs the command can act on (all, active, ended);
# _arguments puts its own options (-J ...) before WHICH, so it is the last.
(( $+functions[_bgrun_ids] )) ||
_bgrun_ids() {
    local -a ids expl
    ids=(${(f)"$(_call_program job-ids IDS_COMMAND=${@[-1]} 2>/dev/null)"})
    _wanted job-ids expl 'job id or name' compadd -a ids
}

"#;

/// The zsh script: clap's, with the job positions' action set to
/// `_bgrun_ids`, defined before the script's last block (which runs when
/// the file is autoloaded from fpath).
fn zsh(cmd: &Command, slots: &[Slot]) -> String {
    let name = cmd.get_name();
    let s = clap_script(cmd, Shell::Zsh);
    if slots.is_empty() && !has_on(cmd) {
        return s;
    }
    let mut hosts = 0;
    let mut replaced = 0;
    let mut out = String::new();
    // The subcommand whose arguments follow: clap writes `(stop)` before
    // them (and again, with no arguments, in the `help` part after).
    let mut sub: Option<&str> = None;
    for line in s.split_inclusive('\n') {
        let word = line.trim();
        if let Some(w) = word.strip_prefix('(').and_then(|w| w.strip_suffix(')')) {
            sub = Some(w);
        }
        let spec = line.trim_start_matches(['\'', '*', ':']);
        let slot = slots.iter().find(|sl| {
            (sl.sub.is_none() || sl.sub.as_deref() == sub)
                && (spec.starts_with(&format!("{} -- ", sl.arg)) || spec.starts_with(&format!("{}:", sl.arg)))
        });
        match slot {
            _ if line.starts_with("'--on=[") && line.ends_with(":_default' \\\n") => {
                out.push_str(&line.replace(":_default' \\\n", ":_bgrun_hosts' \\\n"));
                hosts += 1;
            }
            Some(slot) if line.starts_with('\'') && line.ends_with(":_default' \\\n") => {
                out.push_str(&line.replace(":_default' \\\n", &format!(":_bgrun_ids {}' \\\n", slot.which)));
                replaced += 1;
            }
            _ => out.push_str(line),
        }
    }
    assert_eq!(replaced, slots.len(), "clap's zsh script for {name}: job positions not found where expected");
    let last = format!("if [ \"$funcstack[1]\" = \"_{name}\" ]; then");
    let at = out.find(&last).unwrap_or_else(|| panic!("clap's zsh script for {name} changed shape"));
    assert_eq!(hosts > 0, has_on(cmd), "clap's zsh script for {name}: --on not found where expected");
    if !slots.is_empty() {
        out.insert_str(at, &ZSH_IDS.replace("IDS_COMMAND", IDS_COMMAND));
    }
    if hosts > 0 {
        out.insert_str(at, &ZSH_HOSTS.replace("HOSTS_COMMAND", HOSTS_COMMAND));
    }
    out
}

const FISH_HOSTS: &str = "# Destinations of --on (added by the assets test's generator): what
# `HOSTS_COMMAND` prints, after the last comma of a list.
function __bgrun_hosts
    set -l pre (commandline -ct | string replace -r '^--on=' '' | string replace -r '[^,]*$' '')
    for h in (HOSTS_COMMAND 2>/dev/null)
        echo $pre$h
    end
end
";

/// The fish script: clap's (with the destinations of `--on`), then a line
/// offering job ids and names where a job goes.
fn fish(cmd: &Command, slots: &[Slot]) -> String {
    let name = cmd.get_name();
    let mut s = clap_script(cmd, Shell::Fish);
    if has_on(cmd) {
        let mut found = 0;
        s = s
            .split_inclusive('\n')
            .map(|l| match l.contains(" -l on -d ") && l.ends_with(" -r\n") {
                true => {
                    found += 1;
                    l.replace(" -r\n", " -r -f -a \"(__bgrun_hosts)\"\n")
                }
                false => l.to_string(),
            })
            .collect();
        assert!(found > 0, "clap's fish script for {name}: --on not found where expected");
        s.push_str(&FISH_HOSTS.replace("HOSTS_COMMAND", HOSTS_COMMAND));
    }
    if slots.is_empty() {
        return s;
    }
    s.push_str("# Job ids and names (added by the assets test's generator).\n");
    // One line for each set of jobs offered, with the subcommands it is for.
    let mut groups: Vec<&str> = slots.iter().map(|sl| sl.which.as_str()).collect();
    groups.sort_unstable();
    groups.dedup();
    for which in groups {
        let mine: Vec<&Slot> = slots.iter().filter(|sl| sl.which == which).collect();
        let subs: Vec<&str> = mine.iter().filter_map(|sl| sl.sub.as_deref()).collect();
        let mut condition = String::new();
        if !subs.is_empty() {
            let helper = format!("__fish_{name}_using_subcommand");
            assert!(s.contains(&format!("function {helper}\n")), "clap's fish script for {name} changed shape");
            condition = format!("{helper} {}", subs.join(" "));
        }
        // The word after an option that takes a value is that value.
        let mut value_options: Vec<&str> =
            mine.iter().flat_map(|sl| sl.value_options.iter().map(String::as_str)).collect();
        value_options.sort_unstable();
        value_options.dedup();
        if !value_options.is_empty() {
            if !condition.is_empty() {
                condition.push_str("; and ");
            }
            condition.push_str(&format!("not __fish_prev_arg_in {}", value_options.join(" ")));
        }
        let condition = if condition.is_empty() { String::new() } else { format!(" -n \"{condition}\"") };
        s.push_str(&format!("complete -c {name}{condition} -f -a \"({IDS_COMMAND}={which} 2>/dev/null)\"\n"));
    }
    s
}

// --- man pages ---------------------------------------------------------------

/// What the short `--help` leaves out: a paragraph or two for each page,
/// by the page's name (`run`, `job-run`: each says what its own command
/// does).
fn description(name: &str) -> Vec<String> {
    if name == "runs" {
        return vec![format!(
            "runs lists every job in the store, oldest first, one line each: a mark, the id, the pid, the state \
             and how long it ran, and the command. The states are {}.",
            State::ALL.map(state_meaning).join(", ")
        )];
    }
    let text: &[&str] = match name {
        "run" => &[
            "run starts CMD detached from the terminal, in its own session, so it survives a closed terminal, \
             a dropped SSH connection or a hang-up. It prints the job's id, its process id and its log's path, \
             and returns at once. The job's output (stdout and stderr) goes to its log; a watcher process \
             records how it ended (exit code or signal, and when) and, if asked, sends an ntfy notification.",
            "With several arguments, CMD is run as given, without a shell. A single argument that holds shell \
             syntax (spaces, pipes, &&) is run with sh -c.",
        ],
        "runlog" => &["runlog prints a job's log and, while the job runs, follows it until the job ends."],
        "runrm" => {
            &["runrm removes jobs from the store: their directories, logs included. It never removes a running \
             job."]
        }
        "job" => {
            &["job is the scriptable front to the same store as run, runs, runlog and runrm: it starts jobs from \
             one shell string, names them, waits for them with a timeout, and lists them per project (the git \
             top level of the directory a job was started in). Its exit status tells how the job went, so it \
             fits in scripts and CI."]
        }
        "job-run" => {
            &["job run starts CMD, one shell string, with sh -c in the current directory (several words are joined \
             with spaces), detached from the terminal, and prints the job's id alone, so that \
             id=$(job run \"make build\") works in scripts. With --key, a job that already holds the key is \
             reported instead (its id on stdout, a note on stderr) and nothing starts. With --wait, it blocks \
             until the job ends and exits as job wait does."]
        }
        "job-list" => {
            &["job list shows the jobs of this directory's project (its git top level), or with --all every job, \
             oldest first (the newest last), one line each, as runs does."]
        }
        "job-status" => {
            &["job status ID shows everything known of one job: id, name, command, state, times, pid, directories, \
             log and options. With no ID, it shows the store, the number of jobs in each state, the running jobs \
             and the ntfy settings."]
        }
        "job-logs" => &["job logs prints a job's log; --follow streams it until the job ends and then exits 0 if it \
             succeeded, 1 if not. With several jobs, each line is prefixed with its job's name."],
        "job-stop" => {
            &["job stop sends SIGTERM to everything each job started (its process group and every descendant), \
             then SIGKILL 3 seconds later (at once with --force), and returns once the job has ended, in state \
             stopped."]
        }
        "job-wait" => &["job wait blocks until every job named has ended: exit 0 if all succeeded, 1 if not, 124 if \
             --timeout ran out first (the jobs keep running)."],
        "job-retry" => &["job retry starts a new job with the command, working directory, name, timeout, context and \
             notification settings of an earlier one (not its key), and prints the new id."],
        "job-install" => &["job install DEST copies this machine's five commands to DEST's ~/.local/bin (replacing \
             what is there), with the man pages and completions found here, through one ssh connection (tar \
             unpacks them there), so that run --on DEST and DEST:ID work without building bgrun on DEST. It is \
             refused, and nothing is copied, when DEST's architecture (uname -m) is not this machine's. The \
             binaries are linked statically where glibc's archives were installed at build time; a bgrun that is \
             not is copied only to a host whose glibc is as new."],
        "job-clean" => {
            &["job clean removes jobs that ended more than 7 days ago (--older-than to change it; --all for every \
             job that is not running), printing each id removed. A running job is never removed."]
        }
        "job-queue" => &["job queue lists this host's queues: each one's width (slots), running and queued jobs, and              whether it is paused; with a NAME, its running jobs by slot and its queued jobs in order. --slots N sets              the width (default 1): a job started from the queue gets RUN_QUEUE and RUN_SLOT (0 to N-1, unique among              the queue's running jobs) in its environment. --pause starts nothing new; --resume starts again. A              change starts at once what it lets start.",
            "Jobs enter a queue with run -q NAME or job run --queue NAME, and start in the order they were queued,              with the environment and working directory they were queued with. There is no daemon: the watcher of              an ending job, job stop, job queue and every command that reads the store start what should run."],
        _ => &[],
    };
    text.iter().map(|p| p.to_string()).collect()
}

/// A state and what it means, for the man pages.
fn state_meaning(s: State) -> String {
    let what = match s {
        State::Running => "its process or its watcher lives",
        State::Done => "exit 0",
        State::Failed => "another exit code",
        State::Killed => "by a signal",
        State::Stopped => "by job stop",
        State::Timeout => "by job run --timeout",
        State::Lost => "the job and its watcher are gone without recording an end, as after a reboot",
        State::Queued => {
            "waiting in a queue (run -q) or for its --after jobs, with no process; or a Slurm job Slurm has not started"
        }
        State::Skipped => "never run: a job it was to run --after did not end done",
        State::Elsewhere => "started on another host or in another pid namespace and not ended: never judged from here",
    };
    format!("{} ({what})", s.as_str())
}

/// What each exit status means, for the man pages (every status the code
/// has: the match is exhaustive).
fn exit_meaning(e: Exit) -> &'static str {
    match e {
        Exit::Ok => "Success (for job wait, job logs --follow and --wait: the job succeeded).",
        Exit::Error => "An error, or the job failed, was killed, stopped, timed out or lost; an unknown job.",
        Exit::Usage => "A usage error: an unknown flag, a missing argument or a bad value; nothing was started.",
        Exit::WaitTimeout => "job wait --timeout gave up; the job is still running.",
        Exit::NotExecutable => "The command to run exists but is not executable; nothing was started.",
        Exit::NotFound => "The command to run was not found; nothing was started.",
        Exit::Cancelled => "The job picker of runlog was cancelled.",
    }
}

const ENVIRONMENT: [(&str, &str); 12] = [
    ("RUN_DIR", "The job store's directory. Default: $XDG_DATA_HOME/run, else ~/.local/share/run."),
    ("XDG_DATA_HOME", "Where the store is when RUN_DIR is not set: $XDG_DATA_HOME/run (an absolute path)."),
    ("NTFY_TOPIC", "The ntfy topic for run -n and job run --notify when none is given."),
    ("NTFY_SERVER", "The ntfy server to publish to. Default: https://ntfy.sh."),
    ("NTFY_TOKEN", "An ntfy access token (sent as a bearer token; takes precedence over NTFY_USER)."),
    ("NTFY_USER", "An ntfy user name, for basic authentication with NTFY_PASSWORD."),
    ("NTFY_PASSWORD", "The password for NTFY_USER."),
    ("NTFY_MIN_DURATION", "Notify only for jobs that ran at least this long (as --min-duration; say 2m)."),
    ("NTFY_TIMEOUT", "Seconds for one try to publish a notification (default 10, at most 300; three tries)."),
    ("NO_COLOR", "When set and not empty, output to a terminal has no colour."),
    (
        "RUN_SSH",
        "The ssh command for --on DEST and DEST:ID (default ssh), split into words as sh would: \
     RUN_SSH='ssh -F ~/.ssh/lab'.",
    ),
    ("RUN_HOSTS", "The hosts --on all names besides this machine, comma-separated: RUN_HOSTS=gpu1,gpu2."),
];

/// The store layout drawn in the header of src/store/mod.rs, in ASCII.
fn store_layout() -> Vec<String> {
    let src = include_str!("../../../src/store/mod.rs");
    let mut lines = src.lines().skip_while(|l| !l.starts_with("//! ```text")).skip(1);
    let layout: Vec<String> = lines
        .by_ref()
        .take_while(|l| !l.starts_with("//! ```"))
        .map(|l| {
            l.trim_start_matches("//!")
                .strip_prefix(' ')
                .unwrap_or("")
                .replace("├──", "|--")
                .replace("└──", "`--")
                .replace('│', "|")
        })
        .collect();
    assert!(layout.len() > 5, "src/store/mod.rs has no ```text block with the store layout in its header");
    assert!(
        layout.iter().all(|l| l.is_ascii()),
        "the store layout in src/store/mod.rs has characters the man page cannot show"
    );
    layout
}

/// A command's `after_help`, split: the example lines (after `Examples:`),
/// and the other paragraphs (notes), leaving out `Exit codes:`, which the
/// EXIT STATUS section says in full.
fn after_help(cmd: &Command) -> (Vec<String>, Vec<String>) {
    let text = cmd.get_after_help().map(|t| t.to_string()).unwrap_or_default();
    let (mut examples, mut notes) = (Vec::new(), Vec::new());
    for para in text.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
        if let Some(rest) = para.strip_prefix("Examples:") {
            examples.extend(rest.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from));
        } else if !para.starts_with("Exit codes:") {
            notes.push(para.to_string());
        }
    }
    (examples, notes)
}

/// The page of a command and one for each of its subcommands:
/// (file name, text).
fn man_pages(cmd: &Command) -> Vec<(String, String)> {
    let mut cmd = cmd.clone().disable_help_subcommand(true);
    cmd.build();
    let mut pages = vec![(format!("{}.1", cmd.get_name()), man_page(&cmd, None))];
    for sub in cmd.get_subcommands() {
        let title = sub.get_display_name().expect("a built subcommand has a display name");
        pages.push((format!("{title}.1"), man_page(sub, Some(&cmd))));
    }
    pages
}

/// The preamble the roff crate puts before every piece it renders: kept
/// once, at the top of the page.
const ROFF_PREAMBLE: &str = ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";

/// The SYNOPSIS: the command's own name (`job run` for the page
/// job-run), then every option with its value, then the arguments; a
/// required one in <>, a repeatable one followed by `...`. (clap_mangen's
/// leaves option values out.)
fn synopsis(cmd: &Command, own: &str) -> Roff {
    let mut parts: Vec<Inline> = vec![bold(own.replace('-', " "))];
    for a in cmd.get_arguments().filter(|a| !a.is_hide_set() && !a.is_positional()) {
        let mut flag = Vec::new();
        flag.extend(a.get_short().map(|c| format!("-{c}")));
        flag.extend(a.get_long().map(|l| format!("--{l}")));
        parts.push(roman(" ["));
        for (i, f) in flag.iter().enumerate() {
            if i > 0 {
                parts.push(roman("|"));
            }
            parts.push(bold(f.as_str()));
        }
        if a.get_action().takes_values() {
            let value = a.get_value_names().and_then(|v| v.first()).map_or("VALUE".to_string(), |v| v.to_string());
            let optional = a.get_num_args().is_some_and(|n| n.min_values() == 0);
            parts.push(roman(if optional { " [" } else { " " }));
            parts.push(italic(value));
            if optional {
                parts.push(roman("]"));
            }
        }
        parts.push(roman("]"));
    }
    for a in cmd.get_arguments().filter(|a| !a.is_hide_set() && a.is_positional()) {
        let value = a.get_value_names().and_then(|v| v.first()).map_or(a.get_id().to_string(), |v| v.to_string());
        // job run's CMD is required unless given as --notify's value,
        // which clap cannot say.
        let required = a.is_required_set() || a.get_id() == "cmd";
        let many = a.get_num_args().is_some_and(|n| n.max_values() > 1);
        parts.push(roman(if required { " <" } else { " [" }));
        parts.push(italic(value));
        parts.push(roman(if required { ">" } else { "]" }));
        if many {
            parts.push(roman("..."));
        }
    }
    if cmd.has_subcommands() {
        parts.push(roman(" "));
        parts.push(italic("COMMAND"));
    }
    let mut r = Roff::new();
    r.control("SH", ["SYNOPSIS"]);
    r.text(parts);
    r
}

fn man_page(cmd: &Command, parent: Option<&Command>) -> String {
    let top = parent.unwrap_or(cmd);
    let version = top.get_version().unwrap_or_default();
    let man = Man::new(cmd.clone()).source(format!("bgrun {version}")).manual("bgrun manual");
    let mut page = String::new();
    let mut put = |render: &dyn Fn(&mut Vec<u8>) -> std::io::Result<()>| {
        let mut buf = Vec::new();
        render(&mut buf).expect("rendering into memory cannot fail");
        let text = String::from_utf8(buf).expect("clap_mangen writes UTF-8");
        let text = if page.is_empty() { text.as_str() } else { text.strip_prefix(ROFF_PREAMBLE).unwrap_or(&text) };
        page.push_str(text);
    };
    put(&|w| man.render_title(w));
    put(&|w| man.render_name_section(w));
    let own = cmd.get_display_name().unwrap_or(cmd.get_name()).to_string();
    put(&|w| synopsis(cmd, &own).to_writer(w));
    put(&|w| man.render_description_section(w));
    let (examples, notes) = after_help(cmd);
    let mut desc = Roff::new();
    for para in description(&own).into_iter().chain(notes) {
        desc.control("PP", []);
        desc.text([roman(para.lines().collect::<Vec<_>>().join(" "))]);
    }
    put(&|w| desc.to_writer(w));
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        put(&|w| man.render_options_section(w));
    }
    if cmd.has_subcommands() {
        put(&|w| man.render_subcommands_section(w));
    }
    let mut r = Roff::new();
    r.control("SH", ["EXIT STATUS"]);
    for code in Exit::ALL {
        r.control("TP", []).text([bold((code as u8).to_string())]).text([roman(exit_meaning(code))]);
    }
    r.control("SH", ["ENVIRONMENT"]);
    for (var, what) in ENVIRONMENT {
        r.control("TP", []).text([bold(var)]).text([roman(what)]);
    }
    r.control("SH", ["FILES"]);
    r.text([roman(
        "Each job is one directory in the store; its name is the job's id. Files are published whole \
         (written under a temporary name, then renamed); only the log is appended to.",
    )]);
    r.control("PP", []).control("RS", ["4"]).control("nf", []);
    for line in store_layout() {
        r.text([roman(line)]);
    }
    r.control("fi", []).control("RE", []);
    if !examples.is_empty() {
        r.control("SH", ["EXAMPLES"]);
        r.control("RS", ["4"]).control("nf", []);
        for line in &examples {
            r.text([roman(line.as_str())]);
        }
        r.control("fi", []).control("RE", []);
    }
    r.control("SH", ["SEE ALSO"]);
    let own = own.as_str();
    let mut see: Vec<String> =
        ["run", "runs", "runlog", "runrm", "job"].iter().filter(|n| **n != own).map(|n| format!("{n}(1)")).collect();
    if let Some(p) = parent {
        see.extend(
            p.get_subcommands().filter_map(|s| s.get_display_name()).filter(|n| *n != own).map(|n| format!("{n}(1)")),
        );
    }
    r.text([roman(see.join(", "))]);
    put(&|w| r.to_writer(w));
    ascii(&page)
}

/// The page in ASCII, so that it renders in the POSIX locale (`LANG`
/// unset, as on many servers) where troff knows no `…`: each character
/// the help texts use is spelled in ASCII; any other is refused here, so
/// that a new one is given its spelling rather than a warning in man.
fn ascii(page: &str) -> String {
    let mut out = String::with_capacity(page.len());
    for c in page.chars() {
        match c {
            _ if c.is_ascii() => out.push(c),
            '…' => out.push_str("..."),
            '—' => out.push_str("\\-\\-"),
            '–' => out.push_str("\\-"),
            '→' => out.push_str("\\->"),
            '≠' => out.push_str("!="),
            '≤' => out.push_str("<="),
            '≥' => out.push_str(">="),
            '‘' | '’' => out.push('\''),
            '“' | '”' => out.push_str("\\(dq"),
            _ => panic!("the man pages have no ASCII spelling of {c:?}: add one in generate.rs's `ascii`"),
        }
    }
    out
}

// --- writing them ------------------------------------------------------------

/// Writes every generated file under `out` (the repository), and removes
/// the files under [`DIRS`] that are not generated any more: both
/// directories are the generator's alone. A file already as generated is
/// left untouched. Returns how many files are generated.
pub fn write_all(out: &Path, files: &[(String, String)]) -> Result<usize, String> {
    for dir in DIRS {
        remove_stale(&out.join(dir), out, files)?;
    }
    for (rel, text) in files {
        let path = out.join(rel);
        let parent = path.parent().expect("a generated file is inside a directory");
        std::fs::create_dir_all(parent).map_err(|e| format!("creating {}: {e}", parent.display()))?;
        if std::fs::read(&path).ok().as_deref() != Some(text.as_bytes()) {
            std::fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
        }
    }
    Ok(files.len())
}

/// Removes the files under `dir` that are not generated any more.
fn remove_stale(dir: &Path, out: &Path, files: &[(String, String)]) -> Result<(), String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("reading {}: {e}", dir.display())),
    };
    for entry in entries {
        let path = entry.map_err(|e| format!("reading {}: {e}", dir.display()))?.path();
        if path.is_dir() {
            remove_stale(&path, out, files)?;
            continue;
        }
        let rel = path.strip_prefix(out).expect("walked from under out").to_string_lossy();
        if !files.iter().any(|(f, _)| *f == rel) {
            std::fs::remove_file(&path).map_err(|e| format!("removing {}: {e}", path.display()))?;
        }
    }
    Ok(())
}
