//! Wall-clock time: the [`Clock`] the engine reads (injected, so the logger's handling of clock
//! steps is testable without libfaketime), tick arithmetic and formatting.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The wall clock, as seen by code that must cope with it being stepped (NTP, suspend).
pub trait Clock: Send + Sync + 'static {
    /// Time since the Unix epoch (zero if the clock is before it).
    fn now(&self) -> Duration;

    fn unix_secs(&self) -> i64 {
        self.now().as_secs() as i64
    }

    fn unix_secs_f64(&self) -> f64 {
        self.now().as_secs_f64()
    }
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
    }
}

/// Now, in Unix seconds, by the system clock.
pub fn unix_now() -> i64 {
    SystemClock.unix_secs()
}

/// The newest tick at or before `now`: a multiple of `interval` seconds since the Unix epoch.
pub fn tick_at_or_before(now: i64, interval: u64) -> i64 {
    now - now.rem_euclid(interval.max(1) as i64)
}

/// RFC 3339 UTC, seconds precision: `2026-11-24T16:20:00Z`.
pub fn format_ts(ts: i64) -> String {
    chrono::DateTime::from_timestamp(ts, 0)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| ts.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_align_to_wall_clock_multiples() {
        assert_eq!(tick_at_or_before(1_795_526_037, 600), 1_795_525_800);
        assert_eq!(tick_at_or_before(1_795_525_800, 600), 1_795_525_800);
        assert_eq!(tick_at_or_before(7, 5), 5);
        assert_eq!(tick_at_or_before(-1, 5), -5);
        assert_eq!(format_ts(1_795_525_800), "2026-11-24T13:10:00Z");
    }
}
