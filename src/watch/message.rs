//! What a notification says: success or failure at a glance in the
//! title; the command, duration, use, host and id in the body; on failure
//! the log's last lines as a terminal shows them, within ntfy's size for a
//! text message.

use crate::ntfy;
use crate::store::{self, End, Meta, State};

/// The ntfy message: success or failure at a glance in the title; the
/// command, duration, host and id in the body, and on failure the last
/// lines of the log.
pub fn message(meta: &Meta, topic: &str, end: &End, secs: f64, tail: &[u8]) -> ntfy::Message {
    let short = cut(&meta.command, 80);
    let ok = end.state == State::Done;
    let title = match end.state {
        // A job that never left its queue says why (`after …: failed`).
        _ if meta.is_queued() => format!("❌ {short} {}", store::describe_end(end)),
        State::Done => format!("✅ {short} finished"),
        State::Timeout => format!("❌ {short} timed out ({})", store::describe_outcome(end.outcome)),
        State::Stopped => format!("❌ {short} stopped ({})", store::describe_outcome(end.outcome)),
        _ => format!("❌ {short} {} ({})", end.state.as_str(), store::describe_outcome(end.outcome)),
    };
    let mut message = format!("{short}\nDuration: {}", store::human_duration(secs));
    if let Some(u) = meta.usage() {
        message.push_str(&format!("\nUsed: {}", u.describe()));
    }
    message.push_str(&format!("\nHost: {}\nJob: {}", meta.host, meta.id));
    if !ok {
        let text = tail_text(tail, MAX_MESSAGE.saturating_sub(message.len() + 2));
        if !text.is_empty() {
            message.push_str("\n\n");
            message.push_str(&text);
        }
    }
    ntfy::Message {
        topic: topic.to_string(),
        title,
        message,
        priority: if ok { 3 } else { 4 },
        tags: vec![if ok { "white_check_mark" } else { "x" }.to_string(), meta.host.clone()],
    }
}

/// ntfy shows a message of up to 4096 bytes as text; a longer one arrives
/// as an attachment (`attachment.txt`) instead.
const MAX_MESSAGE: usize = 4096;

/// The log's last lines as a terminal shows them (a line redrawn with `\r`,
/// such as a progress bar, in its last state), without control characters,
/// the newest that fit in `budget` bytes; an overlong last line keeps its end.
fn tail_text(tail: &[u8], budget: usize) -> String {
    let text = String::from_utf8_lossy(tail);
    let mut kept: Vec<String> = Vec::new();
    let mut used = 0;
    // The watcher's own notes (`=== bgrun: …`) are not the job's output.
    for line in text.trim_end().lines().rev().filter(|l| !l.starts_with("=== bgrun: ")) {
        let shown = line.split('\r').rfind(|s| !s.is_empty()).unwrap_or("");
        let shown: String = shown.chars().filter(|c| !c.is_control() || *c == '\t').collect();
        let cost = shown.len() + usize::from(!kept.is_empty());
        if used + cost <= budget {
            used += cost;
            kept.push(shown);
            continue;
        }
        if kept.is_empty() {
            let mut start = shown.len().saturating_sub(budget.saturating_sub('…'.len_utf8()));
            while !shown.is_char_boundary(start) {
                start += 1;
            }
            kept.push(format!("…{}", &shown[start..]));
        }
        break;
    }
    kept.reverse();
    kept.join("\n")
}

/// `s` cut to `max` characters, with `…` where it was cut.
fn cut(s: &str, max: usize) -> String {
    let one_line: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if one_line.chars().count() <= max {
        return one_line;
    }
    let mut t: String = one_line.chars().take(max - 1).collect();
    t.push('…');
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_shows_redrawn_lines_in_their_last_state_within_the_budget() {
        let log = "compiling\nstep 1\rstep 2\rstep 3\r\nerror: boom\n\n";
        assert_eq!(tail_text(log.as_bytes(), 100), "compiling\nstep 3\nerror: boom");
        assert_eq!(tail_text(log.as_bytes(), 18), "step 3\nerror: boom");
    }

    #[test]
    fn an_overlong_last_line_keeps_its_end_cut_on_a_character() {
        let log = format!("{}é: the end\n", "é".repeat(5000));
        let text = tail_text(log.as_bytes(), 100);
        assert!(text.len() <= 100, "{} bytes", text.len());
        assert!(text.starts_with('…') && text.ends_with("é: the end"), "{text}");
    }
}
