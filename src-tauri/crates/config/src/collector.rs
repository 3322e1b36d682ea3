//! `[collector]`: how often nodes are logged and polled live, and the budget of one poll.

use std::time::Duration;

use serde::Deserialize;

use crate::{de_duration, KeyError};

#[derive(Debug, Clone, PartialEq)]
pub struct CollectorConfig {
    /// One logged row per node per interval, stamped at wall-clock multiples of it.
    pub log_interval: Duration,
    /// Live polling period.
    pub live_interval: Duration,
    /// Budget for one node's whole poll (all its requests).
    pub timeout: Duration,
}

impl CollectorConfig {
    /// Connect timeout: at most one second, and never more than the whole budget.
    pub fn connect_timeout(&self) -> Duration {
        self.timeout.min(Duration::from_secs(1))
    }
}

impl Default for CollectorConfig {
    fn default() -> Self {
        Self {
            log_interval: Duration::from_secs(600),
            live_interval: Duration::from_secs(2),
            timeout: Duration::from_secs(3),
        }
    }
}

/// `[collector]` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCollector {
    #[serde(default, deserialize_with = "de_duration")]
    log_interval: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    live_interval: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    timeout: Option<Duration>,
}

fn err(key: &str, message: impl Into<String>) -> KeyError {
    KeyError::at("collector", key, message)
}

/// Checks `[collector]`, filling in the defaults.
pub(crate) fn validate(raw: RawCollector) -> Result<CollectorConfig, KeyError> {
    let defaults = CollectorConfig::default();
    let collector = CollectorConfig {
        log_interval: raw.log_interval.unwrap_or(defaults.log_interval),
        live_interval: raw.live_interval.unwrap_or(defaults.live_interval),
        timeout: raw.timeout.unwrap_or(defaults.timeout),
    };
    let whole_seconds = |d: Duration| d.subsec_nanos() == 0 && d.as_secs() >= 1;
    if !whole_seconds(collector.log_interval) {
        return Err(err(
            "log_interval",
            "must be a whole number of seconds, at least 1s",
        ));
    }
    if collector.log_interval > Duration::from_secs(86_400) {
        return Err(err("log_interval", "must be at most 24h"));
    }
    if collector.live_interval < Duration::from_millis(100) {
        return Err(err("live_interval", "must be at least 100ms"));
    }
    if collector.timeout < Duration::from_millis(10) {
        return Err(err("timeout", "must be at least 10ms"));
    }
    if collector.timeout >= collector.log_interval {
        return Err(err(
            "timeout",
            format!(
                "must be shorter than collector.log_interval ({} >= {})",
                humantime::format_duration(collector.timeout),
                humantime::format_duration(collector.log_interval)
            ),
        ));
    }
    Ok(collector)
}
