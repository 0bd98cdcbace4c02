//! The `job` front's definitions: its subcommands and their flags.

use super::*;

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
