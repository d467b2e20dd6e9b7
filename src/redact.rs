//! Keeping credentials out of logs, errors and metrics.

use std::fmt;

/// Displays a URL without its user name and password (`rtsp://cam1.local/stream`), for logs and
/// errors. Cameras get credentials from environment variables, but an operator may still paste a
/// URL with `user:pass@` into `dumpwatch probe`.
pub struct Redacted<'a>(pub &'a url::Url);

impl fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.username().is_empty() && self.0.password().is_none() {
            return write!(f, "{}", self.0);
        }
        let mut clean = self.0.clone();
        // Both setters only fail for URLs that cannot have credentials at all.
        let _ = clean.set_username("");
        let _ = clean.set_password(None);
        write!(f, "{clean}")
    }
}

/// Removes every occurrence of `secret` from `text` (for messages of third-party errors that might
/// echo a password back).
pub fn scrub(text: &str, secret: Option<&str>) -> String {
    match secret {
        Some(s) if !s.is_empty() => text.replace(s, "***"),
        _ => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_removed() {
        let url = url::Url::parse("rtsp://admin:hunter2@10.1.2.3:554/Streaming/101").unwrap();
        let shown = Redacted(&url).to_string();
        assert_eq!(shown, "rtsp://10.1.2.3:554/Streaming/101");
        assert!(!shown.contains("hunter2"));
    }

    #[test]
    fn scrub_hides_secrets() {
        assert_eq!(
            scrub("bad password hunter2", Some("hunter2")),
            "bad password ***"
        );
        assert_eq!(scrub("nothing", Some("")), "nothing");
    }
}
