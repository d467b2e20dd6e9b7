//! What to do after an attempt: done, retry (when), or give up.

use std::time::Duration;

use rand::Rng;

/// The result of one delivery attempt.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// 2xx: the city system has it.
    Delivered {
        /// HTTP status.
        status: u16,
    },
    /// 408, 429, 5xx, a redirect (3xx: never followed, the endpoint must be corrected), a
    /// timeout or a connection error: try again, the incident stays in the outbox.
    Retry {
        /// HTTP status, if there was a response.
        status: Option<u16>,
        /// What happened.
        error: String,
        /// The server's `Retry-After`, if it sent one.
        retry_after: Option<Duration>,
    },
    /// Any other status: the city system refuses this body; retrying will not help (dead letter).
    Refused {
        /// HTTP status.
        status: u16,
        /// What happened (with the start of the response body).
        error: String,
    },
}

impl Outcome {
    /// The `result` label of `dumpwatch_delivery_attempts_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Delivered { .. } => "delivered",
            Outcome::Retry {
                status: Some(_), ..
            } => "retry_status",
            Outcome::Retry { status: None, .. } => "retry_network",
            Outcome::Refused { .. } => "dead_letter",
        }
    }
}

/// Classifies a response status (with its `Retry-After` and the start of its body).
pub fn classify(status: u16, retry_after: Option<Duration>, body_start: &str) -> Outcome {
    let error = || {
        let text = body_start.trim();
        if text.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}: {text}")
        }
    };
    match status {
        200..=299 => Outcome::Delivered { status },
        300..=399 | 408 | 429 | 500..=599 => Outcome::Retry {
            status: Some(status),
            error: error(),
            retry_after,
        },
        _ => Outcome::Refused {
            status,
            error: error(),
        },
    }
}

/// Parses a `Retry-After` value: delay seconds or an HTTP date (relative to `now`).
pub fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The longest `Retry-After` honoured: a server asking for more is retried after an hour.
pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(3600);

/// Backoff settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    /// Ceiling of the first retry's delay.
    pub initial: Duration,
    /// Largest delay.
    pub max: Duration,
}

impl Backoff {
    /// The delay before the next attempt after `attempts` failed ones (1 = the first failed):
    /// exponential with full jitter (uniform between 0 and `initial × 2^(attempts-1)`, capped at
    /// `max`), or exactly the server's `Retry-After` when it sent one (up to
    /// [`RETRY_AFTER_CAP`]).
    pub fn delay(&self, attempts: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(told) = retry_after {
            return told.min(RETRY_AFTER_CAP);
        }
        let exp = attempts.saturating_sub(1).min(30);
        let ceiling = self
            .initial
            .saturating_mul(1u32 << exp.min(31))
            .min(self.max);
        let jitter: f64 = rand::rng().random_range(0.0..=1.0);
        ceiling.mul_f64(jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified() {
        assert_eq!(classify(201, None, ""), Outcome::Delivered { status: 201 });
        for s in [301, 302, 303, 307, 308, 408, 429, 500, 502, 503] {
            assert!(
                matches!(classify(s, None, ""), Outcome::Retry { .. }),
                "{s}"
            );
        }
        for s in [400, 401, 403, 404, 409, 413, 422] {
            assert!(
                matches!(classify(s, None, ""), Outcome::Refused { .. }),
                "{s}"
            );
        }
        let Outcome::Refused { error, .. } = classify(400, None, " missing field `camera` ") else {
            unreachable!()
        };
        assert_eq!(error, "HTTP 400: missing field `camera`");
    }

    #[test]
    fn retry_after_is_seconds_or_a_date() {
        let now = httpdate::parse_http_date("Mon, 23 Nov 2026 10:00:00 GMT").unwrap();
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Mon, 23 Nov 2026 10:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Mon, 23 Nov 2026 09:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn backoff_is_jittered_exponential_and_honours_retry_after() {
        let b = Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
        };
        for attempts in 1..=12 {
            let ceiling = Duration::from_secs(1u64 << (attempts - 1)).min(b.max);
            for _ in 0..50 {
                assert!(b.delay(attempts, None) <= ceiling);
            }
        }
        // Full jitter: the delays spread over the range.
        let delays: Vec<Duration> = (0..200).map(|_| b.delay(6, None)).collect();
        assert!(delays.iter().any(|d| *d < Duration::from_secs(8)));
        assert!(delays.iter().any(|d| *d > Duration::from_secs(24)));
        assert_eq!(
            b.delay(1, Some(Duration::from_secs(5))),
            Duration::from_secs(5)
        );
        // The server's wish beats the backoff's ceiling, up to an hour.
        assert_eq!(
            b.delay(1, Some(Duration::from_secs(600))),
            Duration::from_secs(600)
        );
        assert_eq!(
            b.delay(1, Some(Duration::from_secs(86_400))),
            RETRY_AFTER_CAP
        );
    }
}
