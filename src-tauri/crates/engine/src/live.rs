//! The live view's data: ONE poller per process polls every node at `live_interval` and publishes a
//! snapshot that any number of viewers read (no viewer ever adds load on the agents).
//!
//! Each node is polled by its own task, so a hung node (which holds its poll for the whole
//! `timeout`) never delays the others; a snapshot is published once every node has answered for the
//! round, or when the round's time is up, with the newest value each node has.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};

use dsmon_core::{unix_now, Metrics, NodeState};
use dsmon_netdata::Window;

use crate::collector::{Collector, Reading};

/// One node as the live view shows it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
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
}

/// Every node's latest state, published once per live interval.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
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
    let nodes: Vec<NodeLive> = collector
        .node_names()
        .map(|name| NodeLive {
            name: name.to_string(),
            state: NodeState::Pending,
            since: None,
            last_seen: None,
            last_error: None,
            metrics: None,
        })
        .collect();
    let state = Arc::new(Mutex::new(nodes.clone()));
    let (tx, rx) = watch::channel(Arc::new(LiveSnapshot {
        seq: 0,
        ts: unix_now(),
        interval_ms: interval.as_millis() as u64,
        nodes,
    }));
    let (done_tx, done_rx) = mpsc::unbounded_channel::<(u64, usize)>();
    let start = Instant::now();

    for i in 0..collector.node_count() {
        let collector = Arc::clone(&collector);
        let state = Arc::clone(&state);
        let done = done_tx.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval_at(start, interval);
            // A node slower than the interval skips rounds rather than queueing them.
            ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
            loop {
                let round = tokio::select! {
                    t = ticker.tick() => round_of(start, t, interval),
                    _ = shutdown.changed() => return,
                };
                if *shutdown.borrow() {
                    return;
                }
                let Some(reading) = collector.poll_node(i, Window::Latest).await else {
                    return;
                };
                collector.observe(std::slice::from_ref(&reading));
                if let Ok(mut nodes) = state.lock() {
                    apply(&mut nodes[i], &reading, unix_now());
                }
                let _ = done.send((round, i));
            }
        });
    }
    drop(done_tx);
    tokio::spawn(publish(
        collector.node_count(),
        interval,
        start,
        state,
        tx,
        done_rx,
        shutdown,
    ));
    rx
}

fn round_of(start: Instant, t: Instant, interval: Duration) -> u64 {
    (t.duration_since(start).as_nanos() / interval.as_nanos().max(1)) as u64
}

/// Publishes one snapshot per round: when every node has reported for it, or 90 % into the round.
async fn publish(
    count: usize,
    interval: Duration,
    start: Instant,
    state: Arc<Mutex<Vec<NodeLive>>>,
    tx: watch::Sender<Arc<LiveSnapshot>>,
    mut done: mpsc::UnboundedReceiver<(u64, usize)>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut seq = 0u64;
    let mut round = 0u64;
    let mut reported = vec![false; count];
    loop {
        let deadline = start + interval * (round as u32) + interval.mul_f64(0.9);
        let complete = loop {
            if reported.iter().all(|r| *r) {
                break true;
            }
            tokio::select! {
                msg = done.recv() => match msg {
                    Some((r, i)) if r >= round => reported[i] = true,
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
        let nodes = match state.lock() {
            Ok(n) => n.clone(),
            Err(_) => return,
        };
        seq += 1;
        let _ = tx.send(Arc::new(LiveSnapshot {
            seq,
            ts: unix_now(),
            interval_ms: interval.as_millis() as u64,
            nodes,
        }));
        if !complete {
            tracing::debug!(round, "live snapshot published with nodes still polling");
        }
        // Next round: the one after the current time (a slow round skips, never queues).
        round = round_of(start, Instant::now(), interval) + 1;
        reported.iter_mut().for_each(|r| *r = false);
        let next_start = start + interval * (round as u32);
        tokio::select! {
            _ = tokio::time::sleep_until(next_start) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Updates a node's live view with a new reading taken at `now`.
pub fn apply(node: &mut NodeLive, reading: &Reading, now: i64) {
    let new_state = if reading.result.is_ok() {
        NodeState::Up
    } else {
        NodeState::Down
    };
    if node.state != new_state {
        node.since = Some(now);
        node.state = new_state;
    }
    match &reading.result {
        Ok(m) => {
            node.metrics = Some(*m);
            node.last_seen = Some(now);
            node.last_error = None;
        }
        Err(e) => {
            node.metrics = None;
            node.last_error = Some(e.clone());
        }
    }
}

/// The notifications due for a new snapshot: a node that went down after being up, or came back
/// after being down (the first state seen of a node is not a change).
pub fn transitions<'a>(
    nodes: impl Iterator<Item = (&'a str, NodeState, Option<&'a str>)>,
    last: &mut HashMap<String, NodeState>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, state, error) in nodes {
        let before = last.insert(name.to_string(), state);
        match (before, state) {
            (Some(NodeState::Up), NodeState::Down) => out.push((
                format!("{name} is down"),
                error.unwrap_or("it does not answer").to_string(),
            )),
            (Some(NodeState::Down), NodeState::Up) => {
                out.push((format!("{name} is back up"), "it answers again".to_string()))
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(ok: bool) -> Reading {
        Reading {
            node: "n".into(),
            result: if ok {
                Ok(Metrics {
                    cpu_pct: 1.0,
                    mem_pct: 2.0,
                    disk_pct: 3.0,
                    net_in_kbps: 4.0,
                    net_out_kbps: 5.0,
                })
            } else {
                Err("connection failed: refused".into())
            },
            elapsed: Duration::ZERO,
        }
    }

    #[test]
    fn state_changes_keep_since_and_last_seen() {
        let mut n = NodeLive {
            name: "n".into(),
            state: NodeState::Pending,
            since: None,
            last_seen: None,
            last_error: None,
            metrics: None,
        };
        apply(&mut n, &reading(true), 100);
        assert_eq!(
            (n.state, n.since, n.last_seen),
            (NodeState::Up, Some(100), Some(100))
        );
        apply(&mut n, &reading(true), 102);
        assert_eq!((n.since, n.last_seen), (Some(100), Some(102)));
        apply(&mut n, &reading(false), 104);
        assert_eq!(
            (n.state, n.since, n.last_seen),
            (NodeState::Down, Some(104), Some(102))
        );
        assert_eq!(n.metrics, None);
        assert_eq!(n.last_error.as_deref(), Some("connection failed: refused"));
        apply(&mut n, &reading(false), 106);
        assert_eq!(n.since, Some(104));
    }

    #[test]
    fn notifications_only_on_real_changes() {
        let mut last = HashMap::new();
        let snap = |states: &[(&'static str, NodeState)]| -> Vec<(&'static str, NodeState, Option<&'static str>)> {
            states.iter().map(|(n, s)| (*n, *s, Some("connection refused"))).collect()
        };
        let t = |v: Vec<_>, last: &mut HashMap<_, _>| transitions(v.into_iter(), last);
        assert!(t(
            snap(&[("a", NodeState::Pending), ("b", NodeState::Down)]),
            &mut last
        )
        .is_empty());
        assert!(t(
            snap(&[("a", NodeState::Up), ("b", NodeState::Down)]),
            &mut last
        )
        .is_empty());
        let c = t(
            snap(&[("a", NodeState::Down), ("b", NodeState::Up)]),
            &mut last,
        );
        assert_eq!(
            c,
            vec![
                ("a is down".to_string(), "connection refused".to_string()),
                ("b is back up".to_string(), "it answers again".to_string())
            ]
        );
        assert!(t(
            snap(&[("a", NodeState::Down), ("b", NodeState::Up)]),
            &mut last
        )
        .is_empty());
    }
}
