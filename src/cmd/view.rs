//! How a job is shown: the JSON view (`runs --json`, `job list --json`),
//! a stable interface documented in docs/json.md (fields are only ever
//! added), and the one-line summary of the listings.

use super::out::{clean, Out};
use crate::state;
use crate::store::{self, Job, State};
use serde::Serialize;
use serde_json::value::RawValue;

#[derive(Serialize)]
pub struct NotifyView {
    pub topic: String,
    pub state: String,
    pub error: Option<String>,
}

/// One job as `runs --json` and `job list --json` print it: a stable
/// interface, documented in docs/json.md.
#[derive(Serialize)]
pub struct View<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub state: State,
    pub exit_code: Option<i32>,
    pub signal: Option<String>,
    pub pid: Option<i32>,
    pub command: &'a str,
    pub argv: &'a [String],
    pub cwd: &'a str,
    pub project: &'a str,
    pub host: &'a str,
    pub user: &'a str,
    pub started_at: &'a str,
    pub ended_at: Option<String>,
    pub duration_s: Option<f64>,
    pub log: String,
    pub key: Option<&'a str>,
    pub context: Option<&'a RawValue>,
    pub timeout_s: Option<u64>,
    pub notify: Option<NotifyView>,
    pub max_rss_kib: Option<u64>,
    pub cpu_user_s: Option<f64>,
    pub cpu_sys_s: Option<f64>,
    pub log_bytes: Option<u64>,
    pub log_max: Option<u64>,
    pub queue: Option<&'a str>,
    pub slot: Option<u32>,
    pub after: &'a [String],
    pub queued_at: Option<&'a str>,
    /// Why a job that never ran ended as it did (`skipped`, `stopped`);
    /// for a Slurm job, Slurm's words: why it waits (`Priority`,
    /// `Resources`…), or how Slurm ended it when its step could not record.
    pub reason: Option<String>,
    /// "local" or "slurm".
    pub backend: &'a str,
    pub slurm_job_id: Option<u64>,
    /// The node a Slurm job runs or ran on (also its `host`).
    pub node: Option<&'a str>,
    /// An ended job whose watcher stays for processes of the job that
    /// still run (`state::lingering`).
    pub lingering: bool,
    /// The host it was asked on (`--on DEST`); absent for this machine's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on: Option<&'static str>,
}

pub fn view(job: &Job, state: State) -> View<'_> {
    let m = &job.meta;
    let (exit_code, signal) = match job.end.as_ref().map(|e| e.outcome) {
        Some(store::Outcome::Exited(c)) => (Some(c), None),
        Some(store::Outcome::Signaled(s)) => (None, Some(store::signal_name(s))),
        Some(store::Outcome::NotRun) | Some(store::Outcome::Unknown) | None => (None, None),
    };
    let slurm = job.slurm.as_ref();
    let node = slurm.and_then(|s| s.node.as_deref());
    View {
        id: &job.id,
        name: &m.name,
        state,
        exit_code,
        signal,
        pid: m.pid,
        command: &m.command,
        argv: &m.argv,
        cwd: &m.cwd,
        project: &m.project,
        host: node.unwrap_or(&m.host),
        user: &m.user,
        started_at: &m.started_at,
        ended_at: job.end.as_ref().map(|e| e.ended_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, false)),
        duration_s: duration(job, state),
        log: job.log().display().to_string(),
        key: m.key.as_deref(),
        context: m.context.as_deref(),
        timeout_s: m.timeout_s,
        notify: notify_view(job, state),
        max_rss_kib: m.max_rss_kib,
        cpu_user_s: m.cpu_user_s,
        cpu_sys_s: m.cpu_sys_s,
        log_bytes: m.log_bytes,
        log_max: m.log_max,
        queue: m.queue.as_deref(),
        slot: m.slot,
        after: &m.after,
        queued_at: m.queued_at.as_deref(),
        reason: reason(job, state),
        backend: if job.is_slurm() { "slurm" } else { "local" },
        slurm_job_id: slurm.and_then(|s| s.id),
        node,
        lingering: lingering(job),
        on: crate::remote::on(),
    }
}

/// Does the ended job's watcher stay for processes of the job that still
/// run? Asked of /proc only for a capped job (the only kind whose watcher
/// stays), so a listing pays nothing for the others.
pub fn lingering(job: &Job) -> bool {
    job.end.is_some() && state::lingering(job, &crate::proc::boot_id())
}

/// What the text views add to an ended job's state while processes of the
/// job still run.
pub const LINGERING: &str = " (processes still running)";

/// Slurm's words on a job: why it waits, or how Slurm ended it.
fn reason(job: &Job, state: State) -> Option<String> {
    if let Some(r) = job.end.as_ref().and_then(|e| e.reason.clone()) {
        return Some(r);
    }
    let said = job.slurm.as_ref()?.said.as_ref();
    match (state, said) {
        (State::Queued, Some((_, reason))) if !reason.is_empty() => Some(reason.clone()),
        (State::Queued, None) if job.slurm.as_ref().is_some_and(|s| s.id.is_none()) => Some("submitting".into()),
        _ => None,
    }
}

fn notify_view(job: &Job, state: State) -> Option<NotifyView> {
    let topic = job.meta.notify_topic.clone()?;
    // The watcher writes `notified` before it exits: with its watcher seen
    // gone, a `notified` still missing (read again after the check) never
    // comes.
    let notified = job.notified().or_else(|| {
        // A job that never ran is notified by a detached sender of its
        // own, not by a watcher: gone once it no longer holds the log.
        let never_ran = job.end.as_ref().is_some_and(|e| e.outcome == store::Outcome::NotRun);
        let gone = state != State::Lost
            && if never_ran { !job.notifying() } else { state::watcher_gone(job, &crate::proc::boot_id()) };
        if gone {
            Some(job.notified().unwrap_or_else(|| {
                (if never_ran {
                    "failed: its sender ended before notifying"
                } else {
                    "failed: its watcher ended before notifying (watcher gone)"
                })
                .into()
            }))
        } else {
            None
        }
    });
    let (st, error) = match notified {
        Some(s) if s == "sent" => ("sent".to_string(), None),
        Some(s) if s.starts_with("skipped") => ("skipped".to_string(), s.strip_prefix("skipped: ").map(String::from)),
        Some(s) => ("failed".to_string(), Some(s.strip_prefix("failed: ").unwrap_or(&s).to_string())),
        None if state == State::Lost => ("failed".to_string(), Some("the job was lost".to_string())),
        None => ("pending".to_string(), None),
    };
    Some(NotifyView { topic, state: st, error })
}

/// Seconds the job ran (so far, if running); none if lost or never run.
pub fn duration(job: &Job, state: State) -> Option<f64> {
    let end = match (&job.end, state) {
        (Some(e), _) if e.outcome == store::Outcome::NotRun => return None,
        (Some(e), _) => e.ended_at,
        (None, State::Running) => chrono::Local::now().fixed_offset(),
        _ => return None,
    };
    Some(((end - job.started).num_milliseconds().max(0) as f64) / 1000.0)
}

/// What a queued job waits for, by id: its place in its queue ("2nd in
/// gpu") and the jobs named by `--after` that are not done yet; from a
/// listing (oldest first), with no further reads.
pub fn queue_notes(jobs: &[(Job, State)]) -> std::collections::HashMap<String, String> {
    let mut notes = std::collections::HashMap::new();
    let states: std::collections::HashMap<&str, State> = jobs.iter().map(|(j, s)| (j.id.as_str(), *s)).collect();
    let places = queue_places(jobs);
    for (j, _) in jobs.iter().filter(|(_, s)| *s == State::Queued) {
        let mut parts = Vec::new();
        if let (Some(q), Some(n)) = (&j.meta.queue, places.get(&j.id)) {
            parts.push(format!("{} in {q}", ordinal(*n)));
        }
        let pending: Vec<&str> =
            j.meta.after.iter().map(String::as_str).filter(|a| states.get(a) != Some(&State::Done)).collect();
        if !pending.is_empty() {
            parts.push(format!("after {}", pending.join(", ")));
        }
        notes.insert(j.id.clone(), parts.join(", "));
    }
    notes
}

/// Each queued job's place in its named queue (1 for the next to start),
/// by id: the order they were queued in (by the clock, whatever each
/// launch's time zone), per queue and place.
pub fn queue_places(jobs: &[(Job, State)]) -> std::collections::HashMap<String, usize> {
    let mut places = std::collections::HashMap::new();
    let mut seen: std::collections::HashMap<(&str, &str), usize> = std::collections::HashMap::new();
    let mut queued: Vec<&Job> = jobs.iter().filter(|(_, s)| *s == State::Queued).map(|(j, _)| j).collect();
    // By the instant, not the text: each launch writes its own local offset.
    let when = |j: &Job| j.meta.queued_at.as_deref().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
    queued.sort_by(|a, b| when(a).cmp(&when(b)).then_with(|| a.id.cmp(&b.id)));
    for j in queued {
        if let Some(q) = &j.meta.queue {
            let n = seen.entry((q.as_str(), j.meta.place.as_deref().unwrap_or(""))).or_insert(0);
            *n += 1;
            places.insert(j.id.clone(), *n);
        }
    }
    places
}

pub fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// A job's one-line summary: mark, id, pid, state and how long (and for an
/// ended job its peak memory), command.
pub fn summary(out: &Out, job: &Job, state: State) -> String {
    summary_noted(out, job, state, "")
}

/// The summary with, for a queued job, what it waits for (`queue_notes`).
pub fn summary_noted(out: &Out, job: &Job, state: State, note: &str) -> String {
    let (mark, color) = match state {
        State::Running => ("●", "32"),
        State::Queued => ("◌", "36"),
        State::Done => ("○", "2"),
        State::Failed | State::Killed | State::Timeout => ("✗", "31"),
        State::Stopped | State::Skipped => ("■", "33"),
        State::Lost => ("?", "33"),
        State::Elsewhere => ("◌", "36"),
    };
    let what = match (&job.end, state) {
        (Some(_), State::Done) => "done".to_string() + if lingering(job) { LINGERING } else { "" },
        (Some(e), _) => store::describe_end(e) + if lingering(job) { LINGERING } else { "" },
        (None, State::Elsewhere) => format!("elsewhere on {}", clean(&job.meta.host)),
        (None, State::Queued) if job.is_slurm() => match reason(job, state) {
            Some(r) => format!("queued ({r})"),
            None => "queued".into(),
        },
        (None, State::Queued) if !note.is_empty() => format!("queued {}", clean(note)),
        (None, s) => s.as_str().to_string(),
    };
    let took = duration(job, state).map(|d| format!(" {}", store::human_duration(d))).unwrap_or_default();
    let peak = job.meta.max_rss_kib.filter(|_| job.end.is_some()).map(|k| format!(" {}", short_bytes(k * 1024)));
    // Nothing is due while the job runs: the pending mark comes after its end.
    let notified = match notify_view(job, state).map(|n| n.state) {
        Some(s) if s == "sent" => " ✉",
        Some(s) if s == "failed" => " ✉✗",
        Some(s) if s == "pending" && !matches!(state, State::Running | State::Queued) => " ✉…",
        _ => "",
    };
    // A queued job, or one that ended without running, has no pid yet.
    let never = job.meta.queued_at.is_some();
    let pid = match &job.slurm {
        Some(s) => {
            let on = s.node.as_deref().map(|n| format!(" on {}", clean(n))).unwrap_or_default();
            format!("Slurm: {}{on}", s.id.map_or("-".into(), |i| i.to_string()))
        }
        None => format!(
            "PID: {}",
            job.meta.pid.map(|p| p.to_string()).unwrap_or_else(|| if never { "-" } else { "?" }.into())
        ),
    };
    format!(
        "{} {} ({pid}) - {}{took}{}{notified}  {}",
        out.paint(color, mark),
        clean(&crate::remote::qualify(&job.id)),
        out.paint(color, &what),
        peak.unwrap_or_default(),
        clean(&job.meta.command)
    )
}

/// The one-line summary of a job of the old run scripts: running (its pid
/// lives, with the right start time) or ended with no known exit code.
pub fn legacy_summary(out: &Out, l: &store::Legacy, running: bool) -> String {
    let pid = l.pid.map_or_else(|| "?".to_string(), |p| p.to_string());
    let what = if running {
        let secs = (chrono::Local::now().fixed_offset() - l.started).num_seconds().max(0) as f64;
        format!("{} {}", out.paint("32", "running"), store::human_duration(secs))
    } else {
        out.paint("2", "ended, exit code unknown")
    };
    let mark = if running { out.paint("32", "●") } else { out.paint("2", "·") };
    format!("{mark} {} (PID: {pid}) - {what}  {}  (old run script)", clean(&l.id), clean(&l.command))
}

/// Bytes in four characters or so, for the listing: `812K`, `212M`, `3.1G`.
fn short_bytes(n: u64) -> String {
    let units = ["B", "K", "M", "G", "T"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if v < 10.0 && i > 0 {
        format!("{v:.1}{}", units[i])
    } else {
        format!("{v:.0}{}", units[i])
    }
}

/// Why a job in state `elsewhere` cannot be judged from here.
pub fn elsewhere(job: &Job) -> String {
    format!("no end recorded, and it ran on {} (another host or pid namespace), where it may still run", job.meta.host)
}
