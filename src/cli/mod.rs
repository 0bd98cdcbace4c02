//! The command-line definitions of the five fronts; `value` holds the pure
//! parsers of what users type (durations, names, topics, JSON context). No
//! I/O here: the same definitions feed `--help`, the completions and the man
//! pages.

mod job;
mod value;

pub use job::*;

pub use value::{
    parse_after, parse_context, parse_duration, parse_key, parse_mem, parse_name, parse_partition, parse_queue,
    parse_size, parse_slots, parse_topic, parse_words,
};

use crate::store::State;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand};
use serde_json::value::RawValue;
use std::ffi::OsString;
use std::sync::OnceLock;
use std::time::Duration;

/// The names of every state, joined: `running, done, …, lost`.
pub fn state_names() -> String {
    State::ALL.map(State::as_str).join(", ")
}

/// `--state`/`--status`: one of the states the code has.
fn state_parser() -> impl TypedValueParser<Value = State> {
    PossibleValuesParser::new(State::ALL.map(State::as_str))
        .map(|s| State::from_name(&s).expect("the possible values are the states' names"))
}

/// `--on`: the destinations, as typed (`crate::remote::parse_on`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dests(pub Vec<String>);

fn parse_dests(s: &str) -> Result<Dests, String> {
    crate::remote::parse_on(s).map(Dests)
}

/// `--on` of a front that starts one job: one destination.
fn parse_dest(s: &str) -> Result<Dests, String> {
    crate::remote::parse_dest(s).map(|d| Dests(vec![d]))
}

fn runs_about() -> &'static str {
    static ABOUT: OnceLock<String> = OnceLock::new();
    ABOUT.get_or_init(|| format!("List background jobs: {}", state_names()))
}

const RUN_EXAMPLES: &str = "\
Examples:
  run ./build.sh
  run python train.py --epochs 100
  run 'make && make test'          # one argument with shell syntax: sh -c
  run -n my-topic make -j8         # ntfy notification to my-topic when it ends
  run -n ./long-build.sh           # ... to $NTFY_TOPIC
  run -q gpu sh -c 'CUDA_VISIBLE_DEVICES=$RUN_SLOT python train.py'
  run --after build_20251205_163539 ./deploy.sh
  run --slurm --gpus 1 python train.py   # submit to Slurm

After -n, the next argument is the command if it names an executable (on
PATH, or a path) or is the last argument; otherwise it is the topic.
Flags go before CMD; to run a command whose name starts with '-', put --
before it. Prints: JOB-ID PID LOG-PATH (JOB-ID queued LOG-PATH while it waits;
JOB-ID slurm:SLURM-ID LOG-PATH with --slurm)";

#[derive(Parser, Debug)]
#[command(
    name = "run",
    version,
    about = "Run a command in the background, detached from the terminal",
    after_help = RUN_EXAMPLES
)]
pub struct Run {
    /// Send an ntfy notification when the job ends ($NTFY_TOPIC, or the next argument)
    #[arg(short = 'n', long = "notify")]
    pub notify: bool,
    /// Notify this ntfy topic when the job ends (implies -n)
    #[arg(long, value_name = "TOPIC", value_parser = parse_topic)]
    pub topic: Option<String>,
    /// Name the job (default: the command's basename)
    #[arg(long, value_name = "NAME", value_parser = parse_name, allow_hyphen_values = true)]
    pub name: Option<String>,
    /// With -n: notify only if the job ran at least this long (default $NTFY_MIN_DURATION)
    #[arg(long, value_name = "DUR", value_parser = parse_duration, allow_hyphen_values = true)]
    pub min_duration: Option<Duration>,
    /// Start it on this host over ssh (a Host of ~/.ssh/config, host or user@host; local: here); prints DEST:ID
    #[arg(long, value_name = "DEST", value_parser = parse_dest)]
    pub on: Option<Dests>,
    #[command(flatten)]
    pub start: StartArgs,
    #[command(flatten)]
    pub slurm: SlurmArgs,
    /// The command and its arguments, kept exactly as given
    #[arg(required = true, trailing_var_arg = true, value_name = "CMD")]
    pub cmd: Vec<OsString>,
}

#[derive(Parser, Debug)]
#[command(
    name = "runs",
    version,
    about = runs_about(),
    after_help = "Examples:\n  runs\n  runs --state failed -n 5\n  runs --project --state running\n  \
runs --json | jq '.[] | select(.state == \"failed\") | .id'"
)]
pub struct Runs {
    /// Only jobs in this state (repeatable)
    #[arg(long, value_name = "STATE", value_parser = state_parser())]
    pub state: Vec<State>,
    /// Only the last N jobs (the newest)
    #[arg(short = 'n', long = "last", value_name = "N")]
    pub last: Option<usize>,
    /// Only the jobs of this directory's project (its git top level), as `job list` shows
    #[arg(long)]
    pub project: bool,
    /// Print a JSON array, one object per job
    #[arg(long)]
    pub json: bool,
    /// List these hosts' jobs over ssh, asked at once (ssh destinations; local: here; all: local and $RUN_HOSTS)
    #[arg(long, value_name = "DEST[,DEST...]", value_parser = parse_dests)]
    pub on: Option<Dests>,
    /// For the shell completions: print the ids and names of the jobs a
    /// command can act on (all, active: running or queued, ended), one a line
    #[arg(
        long,
        hide = true,
        conflicts_with = "json",
        value_name = "WHICH",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "all"
    )]
    pub complete_ids: Option<CompleteIds>,
    /// For the shell completions: print the destinations `--on` takes
    /// (local, all, RUN_HOSTS, the Host names of ~/.ssh/config), one a line
    #[arg(long, hide = true, conflicts_with_all = ["json", "complete_ids"])]
    pub complete_hosts: bool,
}

/// Which jobs `runs --complete-ids` offers: what `job stop` and `job wait`
/// can act on (`active`), what `runrm` and `job retry` can (`ended`), or
/// every job (`all`: `runlog`, `job status`, `job logs`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompleteIds {
    All,
    Active,
    Ended,
}

#[derive(Parser, Debug)]
#[command(
    name = "runlog",
    version,
    about = "Show a job's log, following it while the job runs",
    after_help = "JOB is an id, a unique prefix of one, or a name (the newest job of that name).\n\
With no JOB: the only job, or a picker when there are several (on a terminal),\n\
or the newest job (when not on a terminal). With several JOBs (or --running),\n\
each line is prefixed with its job's name, until all have ended; the exit\n\
status is then 0 only if every one succeeded.\n\n\
Examples:\n  runlog\n  runlog build --tail 20\n  runlog make_20251205_163539 --no-follow\n  \
runlog -f tests lint types\n  runlog --running"
)]
pub struct Runlog {
    /// The jobs: id, unique id prefix, or name
    #[arg(value_name = "JOB")]
    pub jobs: Vec<String>,
    /// Follow while the job runs (the default; for several jobs too)
    #[arg(short = 'f', long, conflicts_with = "no_follow")]
    pub follow: bool,
    /// Follow every running job
    #[arg(long, conflicts_with = "jobs")]
    pub running: bool,
    /// Print only the last N lines (then follow if the job runs)
    #[arg(long, value_name = "N")]
    pub tail: Option<usize>,
    /// Print and exit, even if the job is still running
    #[arg(long)]
    pub no_follow: bool,
}

#[derive(Parser, Debug)]
#[command(
    name = "runrm",
    version,
    about = "Remove finished jobs (never a running one)",
    after_help = "Examples:\n  runrm                 # every job that is not running\n  runrm --dry-run\n  runrm build_20251205_163539"
)]
pub struct Runrm {
    /// The jobs to remove (id, unique prefix, or name); default: every finished job, and what
    /// interrupted launches or removals left hidden in the store over 10 minutes ago
    pub jobs: Vec<String>,
    /// Show what would be removed, remove nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Also remove jobs with no end recorded that ran on another host or in another pid
    /// namespace (state elsewhere), which may still be running there
    #[arg(long)]
    pub force: bool,
    /// Remove on these hosts over ssh (ssh destinations; local: here; all: local and $RUN_HOSTS)
    #[arg(long, value_name = "DEST[,DEST...]", value_parser = parse_dests)]
    pub on: Option<Dests>,
}

/// When and how a job starts and what its log may take (`run` and `job run`).
#[derive(Args, Debug, Default, Clone)]
pub struct StartArgs {
    /// Cap the log's disk use at SIZE (500K, 10M, 1G; 0: none; default $RUN_LOG_MAX): the oldest output goes first
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub log_max: Option<u64>,
    /// Wait for a free slot in this queue (job queue NAME --slots N sets its width; default 1)
    #[arg(short = 'q', long, value_name = "NAME", value_parser = parse_queue)]
    pub queue: Option<String>,
    /// Start only after these jobs have ended done (skipped if one does not)
    #[arg(long, value_name = "ID[,ID...]", value_parser = parse_after, action = clap::ArgAction::Append)]
    pub after: Vec<Vec<String>>,
}

/// Submitting to Slurm instead of running here (`run` and `job run`).
#[derive(Args, Debug, Default, Clone)]
pub struct SlurmArgs {
    /// Submit the job to Slurm (sbatch) instead of running it here; the default when RUN_BACKEND=slurm
    #[arg(long)]
    pub slurm: bool,
    /// With --slurm: the partition to run in
    #[arg(long, value_name = "PARTITION", value_parser = parse_partition)]
    pub partition: Option<String>,
    /// With --slurm: CPUs for the job (sbatch --cpus-per-task)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub cpus: Option<u32>,
    /// With --slurm: memory for the job (sbatch --mem: 500M, 4G...)
    #[arg(long, value_name = "SIZE", value_parser = parse_mem)]
    pub mem: Option<String>,
    /// With --slurm: GPUs for the job (sbatch --gpus)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub gpus: Option<u32>,
    /// With --slurm: more sbatch options, as one shell-quoted string ('--qos=long --account=lab')
    #[arg(long, value_name = "ARGS", value_parser = parse_sbatch, allow_hyphen_values = true)]
    pub sbatch: Option<String>,
}

fn parse_sbatch(s: &str) -> Result<String, String> {
    parse_words(s).map(|_| s.to_string())
}
