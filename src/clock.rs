//! The wall clock as the pipeline counts it: unix seconds (f64). Incident times, capture times and
//! delivery schedules are all on it; one place, so that no stage reaches into another for a clock.

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
}
