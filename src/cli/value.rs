//! The pure parsers of what users type: durations, sizes, job names, ntfy
//! topics, keys and the JSON of `--context`. Each has a fuzz target.

use serde_json::value::RawValue;
use std::time::Duration;

/// The longest duration accepted anywhere: 100 years.
const MAX_SECS: u64 = 100 * 365 * 86_400;

/// Parses `30s`, `5m`, `1h30m`, `2d`, `90` (seconds): whole numbers with the
/// units d, h, m, s, in that order. No signs, no fractions.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("'{s}' is not a duration (use forms like 30s, 5m, 1h30m, 2d)");
    if s.is_empty() {
        return Err(bad());
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        let n: u64 = s.parse().map_err(|_| bad())?;
        return check_max(n, s);
    }
    let (mut total, mut num, mut last_rank) = (0u64, None::<u64>, 0u8);
    for c in s.chars() {
        if let Some(d) = c.to_digit(10) {
            let n = num.unwrap_or(0).checked_mul(10).and_then(|n| n.checked_add(d as u64));
            num = Some(n.ok_or_else(|| format!("'{s}' is too long a duration"))?);
            continue;
        }
        let (unit, rank) = match c {
            'd' => (86_400, 1),
            'h' => (3_600, 2),
            'm' => (60, 3),
            's' => (1, 4),
            _ => return Err(bad()),
        };
        let n = num.take().ok_or_else(bad)?;
        if rank <= last_rank {
            return Err(bad());
        }
        last_rank = rank;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("'{s}' is too long a duration"))?;
    }
    if num.is_some() {
        return Err(bad());
    }
    check_max(total, s)
}

fn check_max(secs: u64, s: &str) -> Result<Duration, String> {
    if secs > MAX_SECS {
        return Err(format!("'{s}' is too long a duration (at most 100 years)"));
    }
    Ok(Duration::from_secs(secs))
}

/// A job name: what `--name` takes and ids are made of.
pub fn parse_name(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("a name cannot be empty".into());
    }
    if s == "." || s == ".." {
        return Err(format!("'{s}' cannot be a name"));
    }
    if s.starts_with('-') {
        return Err("a name cannot start with '-'".into());
    }
    if s.contains('/') {
        return Err("a name cannot contain '/'".into());
    }
    if s.contains('\0') {
        return Err("a name cannot contain a NUL byte".into());
    }
    if s.chars().any(char::is_control) {
        return Err("a name cannot contain control characters".into());
    }
    if s.len() > 100 {
        return Err(format!("a name is at most 100 bytes (this one is {})", s.len()));
    }
    Ok(s.to_string())
}

/// An ntfy topic: `[-_A-Za-z0-9]{1,64}`, as ntfy itself requires.
pub fn parse_topic(s: &str) -> Result<String, String> {
    let ok = !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!("'{}' is not an ntfy topic (1 to 64 of A-Z a-z 0-9 - _)", s.escape_debug()))
    }
}

/// How deep a context may nest: `runs --json` shows it two levels down,
/// and common JSON readers give up at 128 levels (serde_json) or so.
const CONTEXT_DEPTH: usize = 64;

/// `--context`: any JSON value, kept verbatim.
pub fn parse_context(s: &str) -> Result<Box<RawValue>, String> {
    if s.len() > 1 << 20 {
        return Err(format!("context is at most 1 MiB of JSON (this is {} bytes)", s.len()));
    }
    let depth = json_depth(s);
    if depth > CONTEXT_DEPTH {
        return Err(format!("context is nested {depth} deep; at most {CONTEXT_DEPTH}"));
    }
    serde_json::from_str::<Box<RawValue>>(s).map_err(|e| format!("not JSON: {e}"))
}

/// The deepest nesting of arrays and objects in JSON text (strings skipped).
fn json_depth(s: &str) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for b in s.bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// The smallest `--log-max` (64 KiB): below it the few blocks a punch
/// leaves would be most of the log.
pub const LOG_MAX_MIN: u64 = 64 << 10;

/// `--log-max`: a whole number of bytes, or of KiB, MiB, GiB or TiB with
/// `K`, `M`, `G`, `T` (binary units: 1K = 1024; either case); at least
/// 64K. `0` means no cap.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let bad = || format!("'{s}' is not a size (use forms like 500K, 10M, 1G)");
    let (digits, shift) = match s.as_bytes().last().map(u8::to_ascii_uppercase) {
        Some(b'K') => (&s[..s.len() - 1], 10),
        Some(b'M') => (&s[..s.len() - 1], 20),
        Some(b'G') => (&s[..s.len() - 1], 30),
        Some(b'T') => (&s[..s.len() - 1], 40),
        _ => (s, 0),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| format!("'{s}' is too large a size"))?;
    let bytes =
        n.checked_mul(1 << shift).filter(|&b| b <= 1 << 60).ok_or_else(|| format!("'{s}' is too large a size"))?;
    if bytes != 0 && bytes < LOG_MAX_MIN {
        return Err(format!("'{s}' is too small a log cap (at least 64K; 0 for none)"));
    }
    Ok(bytes)
}

/// `--key`: any text up to 100 bytes, no NUL.
pub fn parse_key(s: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > 100 || s.contains('\0') {
        return Err("a key is 1 to 100 bytes, with no NUL".into());
    }
    Ok(s.to_string())
}

/// A queue's name (`--queue`, `job queue NAME`): 1 to 64 of
/// `A-Z a-z 0-9 - _ .`, not starting with a dot; it is part of a file name.
pub fn parse_queue(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && !s.starts_with('.')
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!("'{}' is not a queue name (1 to 64 of A-Z a-z 0-9 - _ ., not starting with .)", s.escape_debug()))
    }
}

/// `--after ID[,ID…]`: the words, each to be resolved to a job later.
pub fn parse_after(s: &str) -> Result<Vec<String>, String> {
    let words: Vec<String> = s.split(',').map(str::trim).filter(|w| !w.is_empty()).map(str::to_string).collect();
    if words.is_empty() {
        return Err("--after needs a job id (ID[,ID…])".into());
    }
    Ok(words)
}

/// `--slots N`: 1 to 1024.
pub fn parse_slots(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(n) if (1..=1024).contains(&n) => Ok(n),
        _ => Err(format!("'{}' is not a number of slots (1 to 1024)", s.escape_debug())),
    }
}

/// `--mem`: what sbatch takes: a whole number with an optional unit,
/// K, M, G or T (megabytes without one).
pub fn parse_mem(s: &str) -> Result<String, String> {
    let digits = s.trim_end_matches(['K', 'M', 'G', 'T', 'k', 'm', 'g', 't']);
    let ok = !digits.is_empty()
        && digits.len() <= 12
        && s.len() - digits.len() <= 1
        && digits.bytes().all(|b| b.is_ascii_digit())
        && digits.bytes().any(|b| b != b'0');
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!("'{}' is not a memory size (use forms like 500M, 4G, 1T)", s.escape_debug()))
    }
}

/// `--partition`: one or more Slurm partition names, comma-separated.
pub fn parse_partition(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 200
        && s.split(',').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)));
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!("'{}' is not a partition name", s.escape_debug()))
    }
}

/// `--sbatch 'RAW ARGS'`: words as `sh` splits them (single and double
/// quotes, backslash), with no expansion.
pub fn parse_words(s: &str) -> Result<Vec<String>, String> {
    if s.len() > 64 * 1024 {
        return Err("at most 64 KiB".into());
    }
    let (mut words, mut cur, mut in_word) = (Vec::new(), String::new(), false);
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err(format!("unmatched ' in '{}'", s.escape_debug())),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => cur.push(c),
                            Some(c) => {
                                cur.push('\\');
                                cur.push(c);
                            }
                            None => return Err(format!("unmatched \" in '{}'", s.escape_debug())),
                        },
                        Some(c) => cur.push(c),
                        None => return Err(format!("unmatched \" in '{}'", s.escape_debug())),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') | None => {}
                    Some(c) => cur.push(c),
                }
            }
            c if c.is_control() => return Err("a control character in the options".into()),
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sbatch_options_split_as_the_shell_splits_them() {
        assert_eq!(
            parse_words("--qos=long  --comment 'a b' \"c \\\"d\"").unwrap(),
            ["--qos=long", "--comment", "a b", "c \"d"]
        );
        assert_eq!(parse_words("").unwrap(), Vec::<String>::new());
        assert!(parse_words("'open").is_err());
        assert!(parse_words("\"open").is_err());
    }

    #[test]
    fn memory_sizes_and_partitions_are_what_sbatch_takes() {
        for s in ["500M", "4G", "1024", "1t"] {
            assert!(parse_mem(s).is_ok(), "{s}");
        }
        for s in ["", "0", "4GB", "-1G", "1.5G", "G"] {
            assert!(parse_mem(s).is_err(), "{s}");
        }
        assert!(parse_partition("debug,gpu").is_ok());
        for s in ["", "a b", "a,,b", "x;y"] {
            assert!(parse_partition(s).is_err(), "{s}");
        }
    }

    #[test]
    fn durations_in_every_documented_form_parse() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
    }

    #[test]
    fn bad_durations_are_refused() {
        for s in ["", "5x", "-5m", "1.5h", "m", "5m1h", "99999999999d", "1h1h", "5 m"] {
            assert!(parse_duration(s).is_err(), "{s} was accepted");
        }
    }

    #[test]
    fn sizes_take_binary_units_and_refuse_the_rest() {
        assert_eq!(parse_size("10M"), Ok(10 << 20));
        assert_eq!(parse_size("500k"), Ok(500 << 10));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("2T"), Ok(2 << 40));
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("0"), Ok(0));
        for s in ["", "M", "10MB", "1.5G", "-1M", "10 M", "1K", "65535", "99999999999999999999", "9999999999T"] {
            assert!(parse_size(s).is_err(), "{s:?} was accepted");
        }
    }

    #[test]
    fn names_that_would_escape_the_store_are_refused() {
        for s in ["", ".", "..", "a/b", "a\0b", &"x".repeat(10_000), "--", "-x"] {
            assert!(parse_name(s).is_err(), "{s:?} was accepted");
        }
        assert!(parse_name("build").is_ok() && parse_name("a-b").is_ok());
    }

    #[test]
    fn contexts_nested_deeper_than_readers_go_are_refused() {
        let nest = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(parse_context(&nest(64)).is_ok());
        assert!(parse_context(&nest(65)).is_err());
        assert!(parse_context(&"[".repeat(100_000)).is_err());
        let brackets_in_a_string = format!(r#"{{"a":"{}\\\"]"}}"#, "[".repeat(70));
        assert!(parse_context(&brackets_in_a_string).is_ok(), "{brackets_in_a_string}");
    }

    #[test]
    fn queue_names_that_would_escape_their_directory_are_refused() {
        for s in ["", ".", "..", ".hidden", "a/b", "a@b", "a b", &"q".repeat(65)] {
            assert!(parse_queue(s).is_err(), "{s:?} was accepted");
        }
        assert_eq!(parse_queue("gpu-0.a_b"), Ok("gpu-0.a_b".into()));
        assert_eq!(parse_after("a, b,,c"), Ok(vec!["a".into(), "b".into(), "c".into()]));
        assert!(parse_after(",").is_err());
        for s in ["0", "1025", "-1", "x"] {
            assert!(parse_slots(s).is_err(), "{s:?} was accepted");
        }
    }

    #[test]
    fn topics_follow_ntfy_rules() {
        assert!(parse_topic("my-topic_1").is_ok());
        for s in ["", "a b", "ü", &"x".repeat(65)] {
            assert!(parse_topic(s).is_err(), "{s:?} was accepted");
        }
    }
}
