//! What the alerts part talks about: an alert's state, a notification, a delivery.

use serde::{Deserialize, Serialize};

pub use dsmon_config::alerts::{Direction, Metric, Severity};

/// The state of one (rule, node) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    /// The condition does not hold.
    Ok,
    /// The condition holds, not yet for the rule's `for`.
    Pending,
    /// The condition has held for `for`: notified.
    Firing,
    /// The node gives no value for the metric (it is down, or pending): neither ok nor firing.
    NoData,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Pending => "pending",
            Self::Firing => "firing",
            Self::NoData => "no_data",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ok" => Self::Ok,
            "pending" => Self::Pending,
            "firing" => Self::Firing,
            "no_data" => Self::NoData,
            _ => return None,
        })
    }
}

/// Why a notification is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// The alert started firing.
    Firing,
    /// A firing alert resolved.
    Resolved,
    /// Still firing: the rule's `repeat` came round.
    Repeat,
    /// "Send test" from the Alerts page or `dsmon alerts test`.
    Test,
}

impl NoticeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Firing => "firing",
            Self::Resolved => "resolved",
            Self::Repeat => "repeat",
            Self::Test => "test",
        }
    }

    /// The alert's state as receivers see it: "resolved" for a resolve, else "firing".
    pub fn state(self) -> &'static str {
        match self {
            Self::Resolved => "resolved",
            _ => "firing",
        }
    }
}

/// One node's alert inside a notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoticeItem {
    pub node: String,
    /// The value that made it fire (or resolve); `None` for `down` / `stale`. For
    /// `disk_full_in`, seconds until full.
    pub value: Option<f64>,
    /// When the alert started firing (Unix seconds).
    pub since: i64,
    /// When it resolved (Unix seconds), for a resolve.
    pub ended: Option<i64>,
    /// The node's page in dsmon, when `alerts.public_url` is known.
    pub url: Option<String>,
}

/// A notification: one rule, one kind, one node — or, under storm control, several nodes of the
/// same rule at once (`items.len() > 1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub kind: NoticeKind,
    pub rule: String,
    pub metric: Metric,
    pub severity: Severity,
    pub direction: Direction,
    pub threshold: f64,
    pub items: Vec<NoticeItem>,
    /// When it was made (Unix seconds).
    pub at: i64,
    /// dsmon's own address (`alerts.public_url`), for links.
    pub public_url: Option<String>,
}

impl Notification {
    /// A one-line summary: `cpu high firing on web-1: cpu_pct 93.2 (above 90)`, or for a group
    /// `cpu high firing on 15 nodes: web-1, web-2, ...`.
    pub fn summary(&self) -> String {
        let state = self.kind.state();
        let test = if self.kind == NoticeKind::Test {
            "[test] "
        } else {
            ""
        };
        match self.items.as_slice() {
            [one] => format!(
                "{test}{} {state} on {}: {}",
                self.rule,
                one.node,
                self.describe_value(one.value)
            ),
            many => {
                let names: Vec<&str> = many.iter().take(10).map(|i| i.node.as_str()).collect();
                let more = if many.len() > 10 { ", ..." } else { "" };
                format!(
                    "{test}{} {state} on {} nodes: {}{more}",
                    self.rule,
                    many.len(),
                    names.join(", ")
                )
            }
        }
    }

    /// `cpu_pct 93.2 (above 90)`, `down`, `disk full in 5h 12m (below 24h)`.
    pub fn describe_value(&self, value: Option<f64>) -> String {
        match (self.metric, value) {
            (Metric::Down, _) => "node down".into(),
            (Metric::Stale, _) => "data stale".into(),
            (Metric::DiskFullIn, v) => format!(
                "disk full in {} (below {})",
                v.map_or("?".into(), human_secs),
                human_secs(self.threshold)
            ),
            (m, v) => format!(
                "{} {} ({} {})",
                m.as_str(),
                v.map_or("?".into(), |v| format!("{v:.1}")),
                match self.direction {
                    Direction::Above => "above",
                    Direction::Below => "below",
                },
                self.threshold
            ),
        }
    }
}

/// `5h 12m` for seconds.
pub fn human_secs(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    let (d, h, m) = (s / 86_400, (s % 86_400) / 3600, (s % 3600) / 60);
    match (d, h, m) {
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

/// What one delivery of a notification to a notifier came to (the delivery log's row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryOutcome {
    pub ok: bool,
    /// Tries made (1 when the first one worked).
    pub attempts: u32,
    /// The receiver's answer (`250 OK`, `HTTP 200`, ...) or the last error; never a secret.
    pub answer: String,
}
