//! The command-line definitions of the five fronts; `value` holds the pure
//! parsers of what users type (durations, names, topics, JSON context). No
//! I/O here: the same definitions feed `--help`, the completions and the man
//! pages.

mod value;

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

const JOB_EXAMPLES: &str = "\
Examples:
  job run \"pytest tests/\"
  job run \"make build\" --name build --timeout 30m
  job run \"pytest\" --key \"test-$(git rev-parse HEAD)\" --wait
  job list --status failed
  job logs build --tail
  job wait build --timeout 5m
  job queue gpu --slots 2

Exit codes: 0 success, 1 failure (job failed, killed, stopped, timed out or
lost; unknown job), 2 usage error, 124 job wait --timeout ran out (job still
running), 126 command not executable, 127 command not found.";

#[derive(Parser, Debug)]
#[command(
    name = "job",
    version,
    about = "Run and manage background jobs",
    after_help = JOB_EXAMPLES,
    subcommand_required = true,
    arg_required_else_help = true
)]
pub struct Job {
    #[command(subcommand)]
    pub cmd: JobCmd,
}

// Parsed once per process: the size of `Run` costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum JobCmd {
    /// Start a background job (prints its id)
    #[command(
        // CMD is required unless given as the value of --notify, which
        // clap's own usage line cannot say.
        override_usage = "job run [OPTIONS] <CMD>...",
        after_help = "Examples:\n  job run \"pytest tests/\"\n  job run \"make build\" --name build --timeout 30m\n  job run \"./deploy.sh\" --context '{\"pr\": 123}'\n  job run \"pytest\" --key \"test-$(git rev-parse HEAD)\" --wait"
    )]
    Run(JobRun),
    /// List jobs of this project (--all: every job)
    #[command(
        after_help = "Examples:\n  job list\n  job list --all --status failed\n  job list --json | jq -r '.[].id'"
    )]
    List(JobList),
    /// Show a job's details, or the system status with no ID
    #[command(after_help = "Examples:\n  job status\n  job status build\n  job status build --json")]
    Status(JobStatus),
    /// Show a job's output
    #[command(
        after_help = "Examples:\n  job logs build\n  job logs build --tail\n  job logs build --tail 100\n  job logs build --follow\n  job logs --follow tests lint"
    )]
    Logs(JobLogs),
    /// Stop jobs: SIGTERM to everything they started, then SIGKILL
    #[command(after_help = "Examples:\n  job stop build\n  job stop build --force\n  job stop tests lint")]
    Stop(JobStop),
    /// Block until jobs end (exit 0 success, 1 failure, 124 timeout)
    #[command(after_help = "Examples:\n  job wait build\n  job wait build --timeout 5m\n  job wait tests lint types")]
    Wait(JobWait),
    /// Start a job again with the same command and settings
    #[command(after_help = "Examples:\n  job retry build\n  job retry build --wait")]
    Retry(JobRetry),
    /// Remove old finished jobs
    #[command(
        after_help = "Examples:\n  job clean                    # finished more than 7 days ago\n  job clean --older-than 1d\n  job clean --all --dry-run"
    )]
    Clean(JobClean),
    /// List queues, or set one's width, pause or resume it
    #[command(
        after_help = "Examples:\n  job queue                    # every queue on this host\n  job queue gpu                # its running and queued jobs\n  job queue gpu --slots 2\n  job queue gpu --pause\n  job queue gpu --resume"
    )]
    Queue(JobQueue),
    /// Put this machine's bgrun on a host over ssh, in its ~/.local/bin (same architecture only)
    #[command(after_help = "Copies the five commands to DEST's ~/.local/bin (replacing what is there), and the\n\
man pages and completions found here, through one ssh connection (tar on the far side).\n\
Refused when DEST's architecture (uname -m) is not this machine's.\n\n\
Examples:\n  job install gpu1\n  job install me@build-server")]
    Install(JobInstall),
}

#[derive(Args, Debug)]
pub struct JobInstall {
    /// The host: anything ssh takes (a Host of ~/.ssh/config, host, user@host)
    #[arg(value_name = "DEST", value_parser = crate::remote::parse_dest)]
    pub dest: String,
}

#[derive(Args, Debug)]
pub struct JobQueue {
    /// The queue (none: every queue on this host)
    #[arg(value_name = "NAME", value_parser = parse_queue)]
    pub name: Option<String>,
    /// Run up to N jobs at once (RUN_SLOT is 0 to N-1); narrowing lets running jobs finish
    #[arg(long, value_name = "N", value_parser = parse_slots, requires = "name")]
    pub slots: Option<u32>,
    /// Start nothing new (running jobs go on)
    #[arg(long, requires = "name", conflicts_with = "resume")]
    pub pause: bool,
    /// Start again after --pause
    #[arg(long, requires = "name")]
    pub resume: bool,
    /// JSON output
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct JobRun {
    /// The command: one shell string, run with sh -c (several words are joined with spaces)
    #[arg(value_name = "CMD", num_args = 1.., required_unless_present = "notify")]
    pub cmd: Vec<String>,
    /// Refer to the job by this name
    #[arg(long, value_name = "NAME", value_parser = parse_name, allow_hyphen_values = true)]
    pub name: Option<String>,
    /// End the job after this long (30s, 5m, 1h30m, 2d): SIGTERM, then SIGKILL; 0: no timeout; with --slurm also its time limit
    #[arg(long, value_name = "DUR", value_parser = parse_duration, allow_hyphen_values = true)]
    pub timeout: Option<Duration>,
    /// Any JSON value, kept with the job for your own tracking
    #[arg(long, value_name = "JSON", value_parser = parse_context)]
    pub context: Option<Box<RawValue>>,
    /// Idempotency key: if a job with this key exists, print its id and start nothing
    #[arg(long, value_name = "KEY", value_parser = parse_key)]
    pub key: Option<String>,
    /// Start it on this host over ssh (a Host of ~/.ssh/config, host or user@host; local: here); prints DEST:ID
    #[arg(long, value_name = "DEST", value_parser = parse_dest)]
    pub on: Option<Dests>,
    #[command(flatten)]
    pub start: StartArgs,
    /// Wait for the job to end; exit as `job wait` does
    #[arg(long)]
    pub wait: bool,
    /// With --wait: stream the job's log while waiting
    #[arg(long)]
    pub follow: bool,
    /// Send an ntfy notification when the job ends (to TOPIC, or $NTFY_TOPIC)
    #[arg(long, value_name = "TOPIC", num_args = 0..=1, require_equals = false)]
    pub notify: Option<Option<String>>,
    /// Notify this ntfy topic when the job ends (implies --notify)
    #[arg(long, value_name = "TOPIC", value_parser = parse_topic)]
    pub topic: Option<String>,
    /// With --notify: notify only if the job ran at least this long (default $NTFY_MIN_DURATION)
    #[arg(long, value_name = "DUR", value_parser = parse_duration, allow_hyphen_values = true)]
    pub min_duration: Option<Duration>,
    #[command(flatten)]
    pub slurm: SlurmArgs,
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

#[derive(Args, Debug)]
pub struct JobList {
    /// Every job, not only this project's
    #[arg(long)]
    pub all: bool,
    /// Only jobs in this state (repeatable)
    #[arg(long, value_name = "STATE", value_parser = state_parser())]
    pub status: Vec<State>,
    /// Only the last N jobs (the newest)
    #[arg(short = 'n', long = "last", value_name = "N")]
    pub last: Option<usize>,
    /// JSON output
    #[arg(long)]
    pub json: bool,
    /// List these hosts' jobs over ssh, asked at once (ssh destinations; local: here; all: local and $RUN_HOSTS)
    #[arg(long, value_name = "DEST[,DEST...]", value_parser = parse_dests)]
    pub on: Option<Dests>,
}

#[derive(Args, Debug)]
pub struct JobStatus {
    /// The job (id, unique prefix, or name); none: the system status
    pub id: Option<String>,
    /// JSON output
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct JobLogs {
    /// The jobs (id, unique prefix, or name); several are shown with each line prefixed by its job's name
    #[arg(required = true, value_name = "ID")]
    pub ids: Vec<String>,
    /// Only the last N lines (50 if N is not given)
    #[arg(long, value_name = "N", num_args = 0..=1, default_missing_value = "50")]
    pub tail: Option<usize>,
    /// Stream new output until the job ends, then exit 0 if it succeeded, 1 if not
    #[arg(long, short = 'f')]
    pub follow: bool,
}

#[derive(Args, Debug)]
pub struct JobStop {
    /// The jobs (id, unique prefix, or name)
    #[arg(required = true, value_name = "ID")]
    pub ids: Vec<String>,
    /// SIGKILL at once, no grace period
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct JobWait {
    /// The jobs (id, unique prefix, or name); waits for all
    #[arg(required = true, value_name = "ID")]
    pub ids: Vec<String>,
    /// Give up after this long (exit 124; the jobs keep running)
    #[arg(long, value_name = "DUR", value_parser = parse_duration, allow_hyphen_values = true)]
    pub timeout: Option<Duration>,
}

#[derive(Args, Debug)]
pub struct JobRetry {
    /// The job to run again (id, unique prefix, or name)
    pub id: String,
    /// Wait for the new job to end; exit as `job wait` does
    #[arg(long)]
    pub wait: bool,
}

#[derive(Args, Debug)]
pub struct JobClean {
    /// Remove finished jobs that ended longer ago than this (default 7d)
    #[arg(long, value_name = "DUR", value_parser = parse_duration, conflicts_with = "all", allow_hyphen_values = true)]
    pub older_than: Option<Duration>,
    /// Remove every job that is not running
    #[arg(long)]
    pub all: bool,
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
