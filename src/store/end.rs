//! How a job ended, as its `status` file says it: the state, the outcome
//! of its process, and when; and the words every front uses for them.

use chrono::{DateTime, FixedOffset};
use serde::Serialize;

/// How a job ended, as the watcher recorded it in `status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Running,
    Done,
    Failed,
    Killed,
    Stopped,
    Timeout,
    Lost,
    /// No end recorded, and it ran on another host or in another pid
    /// namespace, where its processes cannot be seen from here.
    Elsewhere,
    /// Waiting in a queue, or for the jobs named by `--after`: no process;
    /// or a Slurm job that Slurm has not started yet.
    Queued,
    /// Never run: a job it was to run `--after` did not end `done`.
    Skipped,
}

impl State {
    /// Every state, in the order listings and help show them; help, man
    /// pages, README and `--state` are checked against it.
    pub const ALL: [State; 10] = [
        State::Running,
        State::Queued,
        State::Done,
        State::Failed,
        State::Killed,
        State::Stopped,
        State::Timeout,
        State::Lost,
        State::Skipped,
        State::Elsewhere,
    ];

    /// The state of this name (`running`, `done`, …), as `as_str` writes it.
    pub fn from_name(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Done => "done",
            State::Failed => "failed",
            State::Killed => "killed",
            State::Stopped => "stopped",
            State::Timeout => "timeout",
            State::Lost => "lost",
            State::Elsewhere => "elsewhere",
            State::Queued => "queued",
            State::Skipped => "skipped",
        }
    }
    /// Running, or waiting to start: never removed, and listed with the
    /// running jobs.
    pub fn is_active(self) -> bool {
        matches!(self, State::Running | State::Queued)
    }
    /// Has the job ended (as far as can be told from here)?
    pub fn ended(self) -> bool {
        !matches!(self, State::Running | State::Queued | State::Elsewhere)
    }
    fn parse(s: &str) -> Option<State> {
        Some(match s {
            "done" => State::Done,
            "failed" => State::Failed,
            "killed" => State::Killed,
            "stopped" => State::Stopped,
            "timeout" => State::Timeout,
            "skipped" => State::Skipped,
            // Recorded only from Slurm's words (see `state`).
            "lost" => State::Lost,
            _ => return None,
        })
    }
}

/// How the job's process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Exited(i32),
    Signaled(i32),
    /// It never ran: stopped while queued, or skipped.
    NotRun,
    /// Ended out of bgrun's sight (Slurm ended it before its step could
    /// record how): the reason says what is known.
    Unknown,
}

#[derive(Clone, Debug)]
pub struct End {
    pub state: State,
    pub outcome: Outcome,
    pub ended_at: DateTime<FixedOffset>,
    /// Why a job that never ran ended so (one line, after the time in
    /// `status`): "after build_…: failed (exit 2)", "stopped while queued";
    /// for an end recorded from Slurm's words, those words (`Slurm:
    /// CANCELLED`).
    pub reason: Option<String>,
}

/// How a reader's record of a Slurm job its squeue answer no longer named
/// starts: an answer that may be a controller's hiccup, so the record is
/// provisional (`End::provisional`): a later true answer, or the step's
/// own end, replaces it.
pub const FORGOTTEN: &str = "Slurm no longer knows job";

impl End {
    /// Recorded by a reader from an absence in squeue's answer (see
    /// `FORGOTTEN`): the one end that a later one may replace.
    pub fn provisional(&self) -> bool {
        self.outcome == Outcome::Unknown && self.reason.as_deref().is_some_and(|r| r.contains(FORGOTTEN))
    }

    pub fn line(&self) -> String {
        let (kind, n) = match self.outcome {
            Outcome::Exited(c) => ("exit", c),
            Outcome::Signaled(s) => ("signal", s),
            Outcome::NotRun => ("none", 0),
            Outcome::Unknown => ("unknown", 0),
        };
        let reason = match &self.reason {
            Some(r) => format!(" {}", one_line(r)),
            None => String::new(),
        };
        format!(
            "{} {kind} {n} {}{reason}\n",
            self.state.as_str(),
            self.ended_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, false)
        )
    }

    pub fn parse(text: &str) -> Option<End> {
        let mut w = text.split_ascii_whitespace();
        let state = State::parse(w.next()?)?;
        let kind = w.next()?;
        let n: i32 = w.next()?.parse().ok()?;
        let ended_at = DateTime::parse_from_rfc3339(w.next()?).ok()?;
        let rest: Vec<&str> = w.collect();
        let outcome = match kind {
            "exit" => Outcome::Exited(n),
            "signal" => Outcome::Signaled(n),
            "none" => Outcome::NotRun,
            "unknown" => Outcome::Unknown,
            _ => return None,
        };
        // Only a job that never ran, or whose end Slurm told, says why.
        if !rest.is_empty() && !matches!(outcome, Outcome::NotRun | Outcome::Unknown) {
            return None;
        }
        let reason = (!rest.is_empty()).then(|| rest.join(" "));
        Some(End { state, outcome, ended_at, reason })
    }
}

/// `done (exit 0)`, `failed (exit 2)`, `killed (SIGKILL)`, `timeout (SIGTERM)`,
/// `skipped (after build_…: failed (exit 2))`…
pub fn describe_end(end: &End) -> String {
    match &end.reason {
        Some(r) => format!("{} ({r})", end.state.as_str()),
        None => format!("{} ({})", end.state.as_str(), describe_outcome(end.outcome)),
    }
}

pub fn describe_outcome(o: Outcome) -> String {
    match o {
        Outcome::Exited(c) => format!("exit {c}"),
        Outcome::Signaled(s) => signal_name(s),
        Outcome::NotRun => "never started".into(),
        Outcome::Unknown => "exit status unknown".into(),
    }
}

/// A reason as `status` keeps it: one line of at most 200 bytes, without
/// control characters.
fn one_line(s: &str) -> String {
    let mut t: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if t.len() > 200 {
        let mut cut = 200;
        while !t.is_char_boundary(cut) {
            cut -= 1;
        }
        t.truncate(cut);
    }
    t.trim().to_string()
}

pub fn signal_name(sig: i32) -> String {
    let name = match sig {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        10 => "SIGUSR1",
        11 => "SIGSEGV",
        12 => "SIGUSR2",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        24 => "SIGXCPU",
        25 => "SIGXFSZ",
        _ => return format!("signal {sig}"),
    };
    name.to_string()
}

/// The scripts' duration form: `45s`, `3m 05s`, `2h 15m`, `1d 3h`.
pub fn human_duration(secs: f64) -> String {
    let s = if secs.is_finite() && secs > 0.0 { secs as u64 } else { 0 };
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// `512 B`, `3.1 KiB`, `212.0 MiB`, `3.1 GiB` (binary units).
pub fn human_bytes(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

/// CPU time: `0.42s`, `12.3s` under a minute, else as a duration (`2h 10m`).
pub fn human_cpu(secs: f64) -> String {
    match secs {
        s if s < 10.0 => format!("{s:.2}s"),
        s if s < 60.0 => format!("{s:.1}s"),
        s => human_duration(s),
    }
}

/// What a job's processes used, as the watcher measured it when the job
/// ended (wait4's usage of its reaped processes).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Usage {
    /// The largest peak resident set of any one process (not a sum).
    pub max_rss_kib: u64,
    pub cpu_user_s: f64,
    pub cpu_sys_s: f64,
}

impl Usage {
    /// `peak 212.0 MiB, CPU 1.02s`.
    pub fn describe(&self) -> String {
        format!("peak {}, CPU {}", human_bytes(self.max_rss_kib * 1024), human_cpu(self.cpu_user_s + self.cpu_sys_s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_the_scripts() {
        assert_eq!(human_duration(45.0), "45s");
        assert_eq!(human_duration(185.0), "3m 05s");
        assert_eq!(human_duration(8100.0), "2h 15m");
        assert_eq!(human_duration(97_200.0), "1d 3h");
    }

    #[test]
    fn usage_reads_in_binary_units_and_cpu_seconds() {
        let u = Usage { max_rss_kib: 3_250_586, cpu_user_s: 7000.0, cpu_sys_s: 800.0 };
        assert_eq!(u.describe(), "peak 3.1 GiB, CPU 2h 10m");
        assert_eq!(human_cpu(1.0234), "1.02s");
        assert_eq!(human_cpu(12.34), "12.3s");
        assert_eq!(human_bytes(512), "512 B");
    }

    #[test]
    fn a_status_line_reads_back_as_written() {
        let end = End {
            state: State::Killed,
            outcome: Outcome::Signaled(9),
            ended_at: DateTime::parse_from_rfc3339("2026-11-23T18:39:33.123+01:00").unwrap(),
            reason: None,
        };
        let back = End::parse(&end.line()).unwrap();
        assert_eq!(back.state, State::Killed);
        assert_eq!(back.outcome, Outcome::Signaled(9));
        assert_eq!(back.ended_at, end.ended_at);
        assert_eq!(back.reason, None);
    }

    #[test]
    fn an_end_recorded_from_slurms_words_keeps_them_on_one_line() {
        let end = End {
            state: State::Lost,
            outcome: Outcome::Unknown,
            ended_at: DateTime::parse_from_rfc3339("2026-11-23T18:39:33.123+01:00").unwrap(),
            reason: Some("Slurm: NODE_FAIL\n(NodeDown)".into()),
        };
        assert_eq!(end.line().lines().count(), 1);
        let back = End::parse(&end.line()).unwrap();
        assert_eq!((back.state, back.outcome), (State::Lost, Outcome::Unknown));
        assert_eq!(back.reason.as_deref(), Some("Slurm: NODE_FAIL (NodeDown)"));
        assert_eq!(describe_end(&back), "lost (Slurm: NODE_FAIL (NodeDown))");
    }

    #[test]
    fn a_skipped_status_keeps_its_reason_on_one_line() {
        let end = End {
            state: State::Skipped,
            outcome: Outcome::NotRun,
            ended_at: DateTime::parse_from_rfc3339("2026-11-23T18:39:33.123+01:00").unwrap(),
            reason: Some("after build_1: failed (exit 2)\nand more".into()),
        };
        let back = End::parse(&end.line()).unwrap();
        assert_eq!(back.state, State::Skipped);
        assert_eq!(back.outcome, Outcome::NotRun);
        assert_eq!(back.reason.as_deref(), Some("after build_1: failed (exit 2) and more"));
        assert_eq!(describe_end(&back), "skipped (after build_1: failed (exit 2) and more)");
        assert!(End::parse("done exit 0 2026-11-23T18:39:33Z trailing words").is_none());
    }

    #[test]
    fn garbage_status_is_not_a_status() {
        for s in ["", "done", "done exit x 2026", "weird exit 0 2026-11-23T18:39:33Z", "\u{0}\u{1}"] {
            assert!(End::parse(s).is_none(), "{s:?}");
        }
    }
}
