//! Publishing to ntfy: one JSON POST to the server root, with connect and
//! total timeouts, up to three tries with backoff on network errors and
//! 5xx answers, none on 4xx. Named `ntfy` so it never clashes with the
//! `notify` crate (file watching).
//!
//! The title and message hold emoji and any UTF-8, so they go in the JSON
//! body, never in HTTP headers. Credentials come in through [`Config`]
//! (read from the environment by the launcher) and only ever leave in the
//! `Authorization` header: never in an error message. What a failure says
//! is redacted as it will be stored and shown: after the server's JSON is
//! decoded and control characters dropped, every form of a secret (as is,
//! JSON-escaped, percent-encoded, base64) is blanked out, then the text is
//! cut to length.

use std::io::Read;
use std::time::Duration;

#[derive(Clone)]
pub struct Config {
    /// Server root, e.g. `https://ntfy.sh`.
    pub server: String,
    pub auth: Option<Auth>,
    /// Time for one try, connection included.
    pub timeout: Duration,
}

#[derive(Clone)]
pub enum Auth {
    Token(String),
    Basic(String, String),
}

impl Config {
    /// The credential that would go in clear text, if any: a token or a
    /// password sent over plain `http://` to a host that is not loopback.
    pub fn secret_in_clear(&self) -> Option<&'static str> {
        let what = match self.auth.as_ref()? {
            Auth::Token(_) => "the ntfy token (NTFY_TOKEN)",
            Auth::Basic(..) => "the ntfy password (NTFY_PASSWORD)",
        };
        let rest = self.server.get(..7).filter(|s| s.eq_ignore_ascii_case("http://")).map(|_| &self.server[7..])?;
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let host = match host.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(""),
            None => host.split(':').next().unwrap_or(""),
        };
        let loopback = host.eq_ignore_ascii_case("localhost")
            || host.to_ascii_lowercase().ends_with(".localhost")
            || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
        (!loopback).then_some(what)
    }

    /// From NTFY_SERVER, NTFY_TOKEN, NTFY_USER, NTFY_PASSWORD and
    /// NTFY_TIMEOUT as `var` gives them: the launcher's environment, or
    /// the one a queued job saved.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Config {
        Config::new(var("NTFY_SERVER"), var("NTFY_TOKEN"), var("NTFY_USER"), var("NTFY_PASSWORD"), var("NTFY_TIMEOUT"))
    }

    /// From the values of NTFY_SERVER, NTFY_TOKEN, NTFY_USER,
    /// NTFY_PASSWORD and NTFY_TIMEOUT (seconds), read by the caller.
    pub fn new(
        server: Option<String>,
        token: Option<String>,
        user: Option<String>,
        password: Option<String>,
        timeout: Option<String>,
    ) -> Config {
        let nonempty = |v: Option<String>| v.filter(|s| !s.is_empty());
        let auth = match (nonempty(token), nonempty(user), password) {
            (Some(t), _, _) => Some(Auth::Token(t)),
            (None, Some(u), p) => Some(Auth::Basic(u, p.unwrap_or_default())),
            _ => None,
        };
        let secs = timeout.and_then(|t| t.parse::<u64>().ok()).filter(|&t| t > 0).unwrap_or(10);
        Config {
            server: nonempty(server).unwrap_or_else(|| "https://ntfy.sh".into()),
            auth,
            timeout: Duration::from_secs(secs.min(300)),
        }
    }
}

pub struct Message {
    pub topic: String,
    pub title: String,
    pub message: String,
    pub priority: u8,
    pub tags: Vec<String>,
}

/// Publishes `msg`; on failure, the reason (with the HTTP status if there
/// was one), never a credential.
pub fn publish(cfg: &Config, msg: &Message) -> Result<(), String> {
    let body = serde_json::json!({
        "topic": msg.topic,
        "title": msg.title,
        "message": msg.message,
        "priority": msg.priority,
        "tags": msg.tags,
    })
    .to_string();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(cfg.timeout))
        .timeout_connect(Some(cfg.timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let url = format!("{}/", cfg.server.trim_end_matches('/'));
    let mut last = String::new();
    for attempt in 0..3u32 {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(500 << attempt));
        }
        let mut req = agent.post(&url).header("Content-Type", "application/json");
        match &cfg.auth {
            Some(Auth::Token(t)) => req = req.header("Authorization", format!("Bearer {t}")),
            Some(Auth::Basic(u, p)) => {
                req = req.header("Authorization", format!("Basic {}", base64(format!("{u}:{p}").as_bytes())))
            }
            None => {}
        }
        match req.send(body.as_bytes()) {
            Ok(resp) if resp.status().is_success() => return Ok(()),
            Ok(resp) => {
                let status = resp.status().as_u16();
                let mut text = String::new();
                let _ = resp.into_body().into_reader().take(4096).read_to_string(&mut text);
                let error = ntfy_error(&text).map(|e| shown(cfg, &e));
                last = format!("HTTP {status}{}", error.map(|e| format!(": {e}")).unwrap_or_default());
                if status < 500 {
                    return Err(last);
                }
            }
            Err(e) => last = describe(cfg, &e),
        }
    }
    Err(last)
}

/// A server's text as it will be stored and shown: control characters
/// dropped, every form of a credential blanked out, at most 200 characters
/// (cut after the redaction, so no part of a secret is left at the cut).
fn shown(cfg: &Config, text: &str) -> String {
    let text: String = text.chars().filter(|c| !c.is_control()).collect();
    let text = secret_forms(cfg).iter().fold(text, |t, s| t.replace(s.as_str(), "[redacted]"));
    text.chars().take(200).collect()
}

/// Every form in which a credential may come back: as is, JSON-escaped
/// (also with every non-ASCII character and `<>&` as `\uXXXX`, as Go
/// writes them), percent-encoded (either case), and base64, for the token,
/// the password and `user:password`; longest first.
fn secret_forms(cfg: &Config) -> Vec<String> {
    let secrets = match &cfg.auth {
        Some(Auth::Token(t)) => vec![t.clone()],
        Some(Auth::Basic(u, p)) if !p.is_empty() => vec![p.clone(), format!("{u}:{p}")],
        _ => vec![],
    };
    let mut forms = Vec::new();
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        let json = serde_json::to_string(s).unwrap_or_default();
        let json = json.get(1..json.len().saturating_sub(1)).unwrap_or_default().to_string();
        for upper in [false, true] {
            let hex = |n: u32, width: usize| {
                let h = format!("{n:0width$x}");
                if upper {
                    h.to_uppercase()
                } else {
                    h
                }
            };
            let mut ascii = String::new();
            for c in json.chars() {
                if c.is_ascii() && !"<>&".contains(c) {
                    ascii.push(c);
                } else {
                    for u in c.encode_utf16(&mut [0u16; 2]) {
                        ascii.push_str(&format!("\\u{}", hex(u32::from(*u), 4)));
                    }
                }
            }
            let percent: String = s
                .bytes()
                .map(|b| match b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    true => (b as char).to_string(),
                    false => format!("%{}", hex(u32::from(b), 2)),
                })
                .collect();
            forms.extend([ascii, percent]);
        }
        forms.extend([s.clone(), json, base64(s.as_bytes())]);
    }
    forms.retain(|f| !f.is_empty());
    forms.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
    forms.dedup();
    forms
}

/// ntfy's error body is `{"code":…,"http":…,"error":"…"}`: the error,
/// decoded.
fn ntfy_error(body: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    Some(v.get("error")?.as_str()?.to_string())
}

fn describe(cfg: &Config, e: &ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(_) => "timed out".into(),
        ureq::Error::HostNotFound => "host not found".into(),
        ureq::Error::ConnectionFailed => "connection failed".into(),
        ureq::Error::Io(io) => format!("network error: {}", io.kind()),
        other => shown(cfg, &other.to_string()),
    }
}

fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_credential_over_plain_http_to_a_host_that_is_not_loopback_is_in_clear() {
        let cfg = |server: &str, token: Option<&str>| {
            Config::new(Some(server.into()), token.map(String::from), None, None, None).secret_in_clear()
        };
        for server in
            ["http://ntfy.example", "HTTP://10.0.0.1:80/x", "http://u@[2001:db8::1]:8080", "http://127.0.0.1.nip.io"]
        {
            assert!(cfg(server, Some("tk")).is_some(), "{server}");
        }
        for server in [
            "https://ntfy.example",
            "http://localhost:8080",
            "http://127.0.0.5/",
            "http://[::1]:80",
            "http://a.localhost",
        ] {
            assert!(cfg(server, Some("tk")).is_none(), "{server}");
        }
        assert!(cfg("http://ntfy.example", None).is_none(), "no credential, nothing to warn about");
    }

    #[test]
    fn a_secret_at_the_cut_is_redacted_before_the_text_is_cut_and_control_characters_cannot_hide_it() {
        let cfg = Config::new(None, Some("tk_SECRETtoken".into()), None, None, None);
        let text = format!("{}tk_SECRETtoken", "x".repeat(195));
        let shown = shown(&cfg, &text);
        assert!(!shown.contains("tk_SE"), "{shown}");
        assert_eq!(shown.chars().count(), 200);
        let split = shown_of(&cfg, r"bad tk_SECRET\u0007token");
        assert!(!split.contains("SECRET"), "{split}");
    }

    /// What is kept of a JSON error body.
    fn shown_of(cfg: &Config, error_json_text: &str) -> String {
        let body = format!("{{\"error\":\"{error_json_text}\"}}");
        shown(cfg, &ntfy_error(&body).unwrap())
    }

    #[test]
    fn base64_matches_the_rfc_examples() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }
}
