//! A node's state, worked out in one place: each reading (a live poll, or a logging tick when no
//! live poller runs) is applied to the node's [`NodeLive`], which says whether its state changed.

use serde::{Deserialize, Serialize};

use dsmon_core::{Metrics, NodeState};

use crate::collector::Reading;
use crate::events::StateChange;

/// One node as the live view shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NodeLive {
    pub name: String,
    pub state: NodeState,
    /// When the node entered its current state (Unix seconds); `None` while pending.
    pub since: Option<i64>,
    /// Last successful poll (Unix seconds).
    pub last_seen: Option<i64>,
    /// Why the last poll failed (`None` when it succeeded).
    pub last_error: Option<String>,
    /// Latest one-second values; `None` while down or pending.
    pub metrics: Option<Metrics>,
    /// The node's tags (sorted, no duplicates), as configured now.
    #[serde(default)]
    pub tags: Vec<String>,
}

impl NodeLive {
    /// A node not polled yet.
    pub fn pending(name: &str) -> Self {
        Self {
            name: name.to_string(),
            state: NodeState::Pending,
            since: None,
            last_seen: None,
            last_error: None,
            metrics: None,
            tags: Vec::new(),
        }
    }

    /// Applies a reading taken at `now`; the state change it made, if any.
    ///
    /// A "not yet" reading (the interval ended before the agent's first point: a logging tick
    /// right after the agent started) says nothing about the node now: it changes nothing.
    pub fn apply(&mut self, reading: &Reading, now: i64) -> Option<StateChange> {
        if reading.is_not_yet() {
            return None;
        }
        let new_state = if reading.result.is_ok() {
            NodeState::Up
        } else {
            NodeState::Down
        };
        let change = (self.state != new_state).then(|| StateChange {
            node: self.name.clone(),
            from: self.state,
            to: new_state,
            at: now,
            error: reading.result.as_ref().err().map(|e| e.to_string()),
        });
        if change.is_some() {
            self.since = Some(now);
            self.state = new_state;
        }
        match &reading.result {
            Ok(m) => {
                self.metrics = Some(*m);
                self.last_seen = Some(now);
                self.last_error = None;
            }
            Err(e) => {
                self.metrics = None;
                self.last_error = Some(e.to_string());
            }
        }
        change
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsmon_netdata::NetdataError;
    use std::time::Duration;

    fn reading(ok: bool) -> Reading {
        Reading {
            node: "n".into(),
            result: if ok {
                Ok(Metrics::from_values([1.0, 2.0, 3.0, 4.0, 5.0]))
            } else {
                Err(NetdataError::Connect("refused".into()))
            },
            elapsed: Duration::ZERO,
        }
    }

    #[test]
    fn state_changes_keep_since_and_last_seen() {
        let mut n = NodeLive::pending("n");
        let c = n.apply(&reading(true), 100).expect("pending -> up");
        assert_eq!(
            (c.from, c.to, c.error),
            (NodeState::Pending, NodeState::Up, None)
        );
        assert_eq!(
            (n.state, n.since, n.last_seen),
            (NodeState::Up, Some(100), Some(100))
        );
        assert!(n.apply(&reading(true), 102).is_none(), "no change");
        assert_eq!((n.since, n.last_seen), (Some(100), Some(102)));
        let c = n.apply(&reading(false), 104).expect("up -> down");
        assert_eq!(c.error.as_deref(), Some("connection failed: refused"));
        assert_eq!(
            (n.state, n.since, n.last_seen),
            (NodeState::Down, Some(104), Some(102))
        );
        assert_eq!(n.metrics, None);
        assert_eq!(n.last_error.as_deref(), Some("connection failed: refused"));
        assert!(n.apply(&reading(false), 106).is_none());
        assert_eq!(n.since, Some(104));
    }

    #[test]
    fn a_not_yet_reading_changes_nothing() {
        let not_yet = Reading {
            node: "n".into(),
            result: Err(NetdataError::NotYet {
                chart: "system.cpu".into(),
                first_entry: 200,
            }),
            elapsed: Duration::ZERO,
        };
        let mut n = NodeLive::pending("n");
        assert!(n.apply(&not_yet, 100).is_none());
        assert_eq!(n, NodeLive::pending("n"), "still pending, not down");
        n.apply(&reading(true), 101);
        assert!(n.apply(&not_yet, 102).is_none());
        assert_eq!(n.state, NodeState::Up);
    }
}
