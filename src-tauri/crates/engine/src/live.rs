//! The live view's data: ONE poller per process polls every node at `live_interval` and publishes a
//! snapshot that any number of viewers read (no viewer ever adds load on the agents).
//!
//! Each node is polled by its own task, so a hung node (which holds its poll for the whole
//! `timeout`) never delays the others; the tasks follow the node registry (a node added while
//! running gets a task, a removed one loses it). A snapshot is published once every node has
//! answered for the round, or when the round's time is up, with the newest value each node has.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use dsmon_core::NodeState;
use dsmon_netdata::Window;

use crate::collector::{held_reading, poll_node, Collector};
use crate::events::{NodeEvent, StateChange};
use crate::registry::Node;
pub use crate::state::NodeLive;

/// Every node's latest state, published once per live interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LiveSnapshot {
    /// Increases by one per published snapshot.
    pub seq: u64,
    /// When it was published (Unix seconds).
    pub ts: i64,
    /// Live interval in milliseconds (for clients' staleness checks).
    pub interval_ms: u64,
    pub nodes: Vec<NodeLive>,
}

/// Starts the live poller; it stops when `shutdown` turns true. Returns the snapshot channel.
pub fn spawn(
    collector: Arc<Collector>,
    shutdown: watch::Receiver<bool>,
) -> watch::Receiver<Arc<LiveSnapshot>> {
    let interval = collector.settings().live_interval;
    let (tx, rx) = watch::channel(Arc::new(LiveSnapshot {
        seq: 0,
        ts: collector.clock.unix_secs(),
        interval_ms: interval.as_millis() as u64,
        nodes: collector.nodes_live(),
    }));
    let (done_tx, done_rx) = mpsc::unbounded_channel::<(u64, String)>();
    let start = Instant::now();
    let round = Round { start, interval };
    tokio::spawn(supervise(
        Arc::clone(&collector),
        round,
        done_tx,
        shutdown.clone(),
    ));
    tokio::spawn(publish(collector, round, tx, done_rx, shutdown));
    rx
}

/// The rounds of the live poller: one per interval since `start`.
#[derive(Clone, Copy)]
struct Round {
    start: Instant,
    interval: Duration,
}

impl Round {
    fn of(&self, t: Instant) -> u64 {
        (t.duration_since(self.start).as_nanos() / self.interval.as_nanos().max(1)) as u64
    }

    fn begins(&self, round: u64) -> Instant {
        self.start + self.interval * (round as u32)
    }
}

/// Keeps one polling task per node of the registry's current set.
async fn supervise(
    collector: Arc<Collector>,
    round: Round,
    done: mpsc::UnboundedSender<(u64, String)>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut sets = collector.registry().subscribe();
    let mut tasks: HashMap<String, (Node, JoinHandle<()>)> = HashMap::new();
    loop {
        let set = sets.borrow_and_update().clone();
        // Nodes gone, or with a new configuration (a new client), lose their task.
        tasks.retain(|name, (node, task)| {
            let keep = set
                .get(name)
                .is_some_and(|n| Arc::ptr_eq(&n.agent, &node.agent));
            if !keep {
                task.abort();
            }
            keep
        });
        for node in &set.nodes {
            if !tasks.contains_key(&node.config.name) {
                let task = tokio::spawn(poll_loop(
                    Arc::clone(&collector),
                    node.clone(),
                    round,
                    done.clone(),
                    shutdown.clone(),
                ));
                tasks.insert(node.config.name.clone(), (node.clone(), task));
            }
        }
        tokio::select! {
            r = sets.changed() => if r.is_err() { break },
            _ = shutdown.changed() => if *shutdown.borrow() { break },
        }
    }
    tasks.values().for_each(|(_, t)| t.abort());
}

/// Polls one node once per round until shutdown (or until its task is aborted).
async fn poll_loop(
    collector: Arc<Collector>,
    node: Node,
    round: Round,
    done: mpsc::UnboundedSender<(u64, String)>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval_at(round.start, round.interval);
    // A node slower than the interval skips rounds rather than queueing them.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let budget = collector.settings().timeout;
    loop {
        let r = tokio::select! {
            t = ticker.tick() => round.of(t),
            _ = shutdown.changed() => return,
        };
        if *shutdown.borrow() {
            return;
        }
        let reading = match collector.registry().held_down(&node.config.name) {
            Some(e) => held_reading(&node.config.name, e),
            None => poll_node(&node, Window::Latest, budget).await,
        };
        collector.observe(&reading);
        collector.publish(NodeEvent::Polled {
            node: reading.node.clone(),
            tags: node.config.tags.clone(),
            at: collector.clock.unix_secs(),
            result: reading.result,
        });
        let _ = done.send((r, node.config.name.clone()));
    }
}

/// Publishes one snapshot per round: when every node has reported for it, or 90 % into the round.
async fn publish(
    collector: Arc<Collector>,
    round: Round,
    tx: watch::Sender<Arc<LiveSnapshot>>,
    mut done: mpsc::UnboundedReceiver<(u64, String)>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut seq = 0u64;
    let mut current = 0u64;
    let mut reported: HashSet<String> = HashSet::new();
    loop {
        let deadline = round.begins(current) + round.interval.mul_f64(0.9);
        let complete = loop {
            let set = collector.registry().current();
            if set.names().all(|n| reported.contains(n)) {
                break true;
            }
            tokio::select! {
                msg = done.recv() => match msg {
                    Some((r, name)) if r >= current => { reported.insert(name); }
                    Some(_) => {}
                    None => return,
                },
                _ = tokio::time::sleep_until(deadline) => break false,
                _ = shutdown.changed() => return,
            }
        };
        if *shutdown.borrow() {
            return;
        }
        seq += 1;
        let _ = tx.send(Arc::new(LiveSnapshot {
            seq,
            ts: collector.clock.unix_secs(),
            interval_ms: round.interval.as_millis() as u64,
            nodes: collector.nodes_live(),
        }));
        if !complete {
            tracing::debug!(
                round = current,
                "live snapshot published with nodes still polling"
            );
        }
        // Next round: the one after the current time (a slow round skips, never queues).
        current = round.of(Instant::now()) + 1;
        reported.clear();
        tokio::select! {
            _ = tokio::time::sleep_until(round.begins(current)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// The state changes between the snapshots a viewer saw (`last`, updated) and a new one, for
/// viewers that only see snapshots (the desktop app in remote mode). The first state seen of a
/// node is not a change.
pub fn changes_between(
    last: &mut HashMap<String, NodeState>,
    snap: &LiveSnapshot,
) -> Vec<StateChange> {
    let mut out = Vec::new();
    for n in &snap.nodes {
        if let Some(before) = last.insert(n.name.clone(), n.state) {
            if before != n.state {
                out.push(StateChange {
                    node: n.name.clone(),
                    from: before,
                    to: n.state,
                    at: snap.ts,
                    error: n.last_error.clone(),
                });
            }
        }
    }
    out
}

/// The desktop notification for a state change: a node that went down after being up, or came
/// back after being down (title, body).
pub fn notification(c: &StateChange) -> Option<(String, String)> {
    match (c.from, c.to) {
        (NodeState::Up, NodeState::Down) => Some((
            format!("{} is down", c.node),
            c.error
                .clone()
                .unwrap_or_else(|| "it does not answer".to_string()),
        )),
        (NodeState::Down, NodeState::Up) => Some((
            format!("{} is back up", c.node),
            "it answers again".to_string(),
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(states: &[(&str, NodeState)]) -> LiveSnapshot {
        LiveSnapshot {
            seq: 1,
            ts: 100,
            interval_ms: 1000,
            nodes: states
                .iter()
                .map(|(n, s)| NodeLive {
                    state: *s,
                    last_error: Some("connection refused".into()),
                    ..NodeLive::pending(n)
                })
                .collect(),
        }
    }

    #[test]
    fn notifications_only_on_real_changes() {
        let mut last = HashMap::new();
        let notes = |s: &LiveSnapshot, last: &mut HashMap<_, _>| -> Vec<(String, String)> {
            changes_between(last, s)
                .iter()
                .filter_map(notification)
                .collect()
        };
        let first = snap(&[("a", NodeState::Pending), ("b", NodeState::Down)]);
        assert!(notes(&first, &mut last).is_empty());
        let up = snap(&[("a", NodeState::Up), ("b", NodeState::Down)]);
        assert!(notes(&up, &mut last).is_empty(), "pending -> up is no news");
        let flip = snap(&[("a", NodeState::Down), ("b", NodeState::Up)]);
        assert_eq!(
            notes(&flip, &mut last),
            vec![
                ("a is down".to_string(), "connection refused".to_string()),
                ("b is back up".to_string(), "it answers again".to_string())
            ]
        );
        assert!(notes(&flip, &mut last).is_empty());
    }
}
