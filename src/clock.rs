//! The wall clock as the pipeline counts it: unix seconds (f64). Incident times, capture times and
//! delivery schedules are all on it; one place, so that no stage reaches into another for a clock.
//! UTC offsets (`+08:00`) as configured, in minutes.

use std::time::SystemTime;

/// Now, in unix seconds.
pub fn unix_now() -> f64 {
    unix_seconds(SystemTime::now())
}

/// `t` in unix seconds (0 for a time before 1970).
pub fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Parses a `+HH:MM` / `-HH:MM` offset into minutes.
pub fn parse_utc_offset(text: &str) -> Option<i32> {
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 14 && m < 60).then_some(sign * (h * 60 + m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn times_are_unix_seconds_and_none_is_negative() {
        assert_eq!(unix_seconds(UNIX_EPOCH + Duration::from_millis(1500)), 1.5);
        assert_eq!(unix_seconds(UNIX_EPOCH - Duration::from_secs(1)), 0.0);
        assert!(unix_now() > 1.7e9);
    }

    #[test]
    fn utc_offsets_are_signed_hours_and_minutes() {
        assert_eq!(parse_utc_offset("+08:00"), Some(480));
        assert_eq!(parse_utc_offset("-05:30"), Some(-330));
        assert_eq!(parse_utc_offset("08:00"), None);
        assert_eq!(parse_utc_offset("+8"), None);
    }
}
