//! Silences (made by Admins, with an expiry) and recurring maintenance windows: while one matches,
//! an alert is still evaluated and recorded, only not delivered.

use chrono::{DateTime, Datelike, TimeZone, Utc};
use globset::{Glob, GlobMatcher};

use dsmon_config::alerts::{MaintenanceConfig, RuleConfig, Schedule};
use dsmon_store::alert_db::SilenceRecord;

/// A silence ready to match.
#[derive(Debug, Clone)]
pub struct Silence {
    pub record: SilenceRecord,
    nodes: Option<GlobMatcher>,
}

impl Silence {
    pub fn new(record: SilenceRecord) -> Result<Self, globset::Error> {
        let nodes = match &record.nodes {
            Some(g) => Some(Glob::new(g)?.compile_matcher()),
            None => None,
        };
        Ok(Self { record, nodes })
    }

    pub fn active(&self, now: i64) -> bool {
        self.record.expires > now
    }

    pub fn matches(&self, rule: &RuleConfig, node: &str) -> bool {
        self.nodes.as_ref().is_none_or(|g| g.is_match(node))
            && self.record.rule.as_ref().is_none_or(|r| *r == rule.name)
            && self
                .record
                .severity
                .as_ref()
                .is_none_or(|s| s == rule.severity.as_str())
    }
}

/// A maintenance window ready to match.
#[derive(Debug, Clone)]
pub struct Window {
    pub cfg: MaintenanceConfig,
    nodes: Vec<GlobMatcher>,
    cron: Option<croner::Cron>,
}

impl Window {
    pub fn new(cfg: MaintenanceConfig) -> Result<Self, String> {
        let nodes = cfg
            .nodes
            .iter()
            .map(|g| {
                Glob::new(g)
                    .map(|g| g.compile_matcher())
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<_, _>>()?;
        let cron = match &cfg.schedule {
            Schedule::Cron { cron, .. } => Some(
                cron.parse::<croner::Cron>()
                    .map_err(|e| format!("{cron:?}: {e}"))?,
            ),
            Schedule::Weekly { .. } => None,
        };
        Ok(Self { cfg, nodes, cron })
    }

    pub fn matches(&self, rule: &RuleConfig, node: &str) -> bool {
        (self.nodes.is_empty() || self.nodes.iter().any(|g| g.is_match(node)))
            && (self.cfg.rules.is_empty() || self.cfg.rules.contains(&rule.name))
    }

    /// Whether the window is open at `now` (Unix seconds), in its time zone.
    pub fn open(&self, now: i64) -> bool {
        let Some(utc) = DateTime::<Utc>::from_timestamp(now, 0) else {
            return false;
        };
        let local = self.cfg.timezone.from_utc_datetime(&utc.naive_utc());
        match (&self.cfg.schedule, &self.cron) {
            (Schedule::Cron { duration, .. }, Some(cron)) => cron
                .find_previous_occurrence(&local, true)
                .is_ok_and(|start| (local - start).num_seconds() < duration.as_secs() as i64),
            (Schedule::Weekly { days, start, end }, _) => {
                let t = local.time();
                let day_ok = |d: chrono::Weekday| days.is_empty() || days.contains(&d);
                if start < end {
                    day_ok(local.weekday()) && t >= *start && t < *end
                } else {
                    // Past midnight: the evening part belongs to the day it starts on.
                    (t >= *start && day_ok(local.weekday()))
                        || (t < *end && day_ok(local.weekday().pred()))
                }
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveTime;
    use dsmon_config::alerts::{Direction, Metric, Severity};
    use std::time::Duration;

    fn rule(name: &str, sev: Severity) -> RuleConfig {
        RuleConfig {
            name: name.into(),
            metric: Metric::CpuPct,
            direction: Direction::Above,
            threshold: 90.0,
            clear: 90.0,
            for_: Duration::from_secs(2),
            severity: sev,
            nodes: vec![],
            tags: vec![],
            notify: vec![],
            repeat: None,
        }
    }

    #[test]
    fn silences_match_by_glob_rule_and_severity() {
        let s = Silence::new(SilenceRecord {
            id: 1,
            created: 0,
            created_by: "a".into(),
            expires: 100,
            nodes: Some("web-*".into()),
            rule: None,
            severity: Some("warning".into()),
            comment: "deploy".into(),
        })
        .unwrap();
        assert!(s.matches(&rule("cpu", Severity::Warning), "web-1"));
        assert!(!s.matches(&rule("cpu", Severity::Critical), "web-1"));
        assert!(!s.matches(&rule("cpu", Severity::Warning), "db-1"));
        assert!(s.active(99) && !s.active(100));
    }

    #[test]
    fn weekly_windows_past_midnight_in_their_time_zone() {
        let w = Window::new(MaintenanceConfig {
            name: "w".into(),
            schedule: Schedule::Weekly {
                days: vec![chrono::Weekday::Sat],
                start: NaiveTime::from_hms_opt(22, 0, 0).unwrap(),
                end: NaiveTime::from_hms_opt(2, 0, 0).unwrap(),
            },
            timezone: chrono_tz::Europe::Berlin,
            nodes: vec![],
            rules: vec![],
        })
        .unwrap();
        // 2026-11-28 is a Saturday; Berlin is UTC+1 in November.
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().timestamp();
        assert!(w.open(at("2026-11-28T21:30:00Z")), "22:30 Saturday Berlin");
        assert!(
            w.open(at("2026-11-29T00:30:00Z")),
            "01:30 Sunday Berlin, from Saturday"
        );
        assert!(!w.open(at("2026-11-29T01:30:00Z")), "02:30 Sunday Berlin");
        assert!(!w.open(at("2026-11-27T21:30:00Z")), "a Friday");
    }

    #[test]
    fn cron_windows() {
        let w = Window::new(MaintenanceConfig {
            name: "w".into(),
            schedule: Schedule::Cron {
                cron: "0 22 * * 1-5".into(),
                duration: Duration::from_secs(7200),
            },
            timezone: chrono_tz::UTC,
            nodes: vec!["db-*".into()],
            rules: vec!["cpu".into()],
        })
        .unwrap();
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().timestamp();
        assert!(w.open(at("2026-11-30T23:00:00Z")), "Monday 23:00");
        assert!(!w.open(at("2026-12-01T00:30:00Z")), "past 2h");
        assert!(!w.open(at("2026-11-29T23:00:00Z")), "Sunday");
        assert!(w.matches(&rule("cpu", Severity::Warning), "db-1"));
        assert!(!w.matches(&rule("mem", Severity::Warning), "db-1"));
        assert!(!w.matches(&rule("cpu", Severity::Warning), "web-1"));
    }
}
