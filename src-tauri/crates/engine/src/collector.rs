//! Polls the agents of the current node set concurrently (each under its own time budget), keeps
//! each node's state (pending / up / down) in one place, and logs one row per node per tick to the
//! store (the loop is in [`crate::logger`]).

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::task::JoinSet;
use tokio::time::Instant;

use dsmon_config::{CollectorConfig, Config, NodeConfig};
use dsmon_core::{Clock, Metrics, Row, SystemClock};
use dsmon_netdata::{AgentInfo, NetdataError, Window};
use dsmon_store::{RowQuery, SampleStore, SharedSamples, StoreError};

use crate::events::{NodeEvent, NodeStateChanged, PollDone, TickLogged};
use crate::registry::{Change, Node, NodeRegistry};
use crate::state::NodeLive;

#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    #[error(transparent)]
    Netdata(#[from] NetdataError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T> = std::result::Result<T, CollectorError>;

/// The outcome of polling one node once. The error stays typed (a timeout and a refused connection
/// are told apart) until it is written as a row's error text.
#[derive(Debug, Clone)]
pub struct Reading {
    pub node: String,
    pub result: std::result::Result<Metrics, NetdataError>,
    pub elapsed: Duration,
}

/// What `dsmon check` learns about one node.
#[derive(Debug, Clone)]
pub struct Probe {
    pub node: String,
    pub url: String,
    pub info: std::result::Result<AgentInfo, NetdataError>,
    pub metrics: std::result::Result<Metrics, NetdataError>,
}

/// One logging tick's outcome.
#[derive(Debug, Clone)]
pub struct TickReport {
    /// End of the interval the rows average (Unix seconds).
    pub ts: i64,
    /// The nodes polled this time (those without a row for `ts` yet).
    pub readings: Vec<Reading>,
    /// Rows newly written.
    pub written: usize,
    /// Monitored nodes that already had a row for `ts` and were not polled again.
    pub already_logged: usize,
    pub elapsed: Duration,
}

impl TickReport {
    pub(crate) fn emit(&self) {
        TickLogged {
            ts: self.ts,
            written: self.written,
            already_logged: self.already_logged,
            down: self.readings.iter().filter(|r| r.is_down()).count(),
            not_yet: self.readings.iter().filter(|r| r.is_not_yet()).count(),
            elapsed: self.elapsed,
        }
        .emit();
    }
}

impl Reading {
    /// Not monitored yet: the interval ended before the agent's first point, and (once the
    /// tick's rows are made) the node had never been logged. Such a reading makes no row.
    pub fn is_not_yet(&self) -> bool {
        matches!(self.result, Err(NetdataError::NotYet { .. }))
    }

    /// The node gave no data: a NULL row with the reason.
    pub fn is_down(&self) -> bool {
        self.result.is_err() && !self.is_not_yet()
    }

    /// The row this reading makes at tick `ts` (`None`: not monitored yet, no row).
    pub fn row(&self, ts: i64) -> Option<Row> {
        if self.is_not_yet() {
            return None;
        }
        Some(Row {
            ts,
            node: self.node.clone(),
            metrics: self.result.as_ref().ok().copied(),
            error: self.result.as_ref().err().map(|e| e.to_string()),
        })
    }
}

/// Node events buffered per subscriber before a slow one misses some.
const EVENT_BUFFER: usize = 4096;

pub struct Collector {
    registry: NodeRegistry,
    pub(crate) settings: CollectorConfig,
    pub(crate) clock: Arc<dyn Clock>,
    /// Every monitored node's state: the one place it is worked out.
    states: Mutex<HashMap<String, NodeLive>>,
    /// Made at the first subscription: the channel allocates its whole ring of [`EVENT_BUFFER`]
    /// slots at once (some 450 KB), which `dsmon serve`, where nobody subscribes, never needs.
    /// Until then an event has nobody to go to, as with a channel that has no receiver.
    events: OnceLock<broadcast::Sender<NodeEvent>>,
    /// Whether logging ticks update node state. Off when a live poller, which sees the nodes far
    /// more often, is the one that decides.
    ticks_track_state: AtomicBool,
}

impl Collector {
    pub fn new(cfg: &Config) -> Result<Self> {
        Self::with_clock(cfg, Arc::new(SystemClock))
    }

    /// With another wall clock (tests step it).
    pub fn with_clock(cfg: &Config, clock: Arc<dyn Clock>) -> Result<Self> {
        let registry = NodeRegistry::new(&cfg.nodes, cfg.collector.connect_timeout())?;
        let states = registry
            .current()
            .names()
            .map(|n| (n.to_string(), NodeLive::pending(n)))
            .collect();
        Ok(Self {
            registry,
            settings: cfg.collector.clone(),
            clock,
            states: Mutex::new(states),
            events: OnceLock::new(),
            ticks_track_state: AtomicBool::new(true),
        })
    }

    /// Lets logging ticks stop updating node state: the live poller does it.
    pub fn leave_state_to_live_poller(&self) {
        self.ticks_track_state.store(false, Ordering::Relaxed);
    }

    pub fn settings(&self) -> &CollectorConfig {
        &self.settings
    }

    pub fn registry(&self) -> &NodeRegistry {
        &self.registry
    }

    /// The node events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<NodeEvent> {
        self.events
            .get_or_init(|| broadcast::channel(EVENT_BUFFER).0)
            .subscribe()
    }

    pub(crate) fn publish(&self, event: NodeEvent) {
        // No subscriber is fine: nobody is listening.
        if let Some(events) = self.events.get() {
            let _ = events.send(event);
        }
    }

    /// The names of the nodes monitored now, in configuration order.
    pub fn node_names(&self) -> Vec<String> {
        self.registry
            .current()
            .names()
            .map(str::to_string)
            .collect()
    }

    /// Monitors `nodes` from now on: new ones start pending, removed ones are forgotten (their
    /// history stays), unchanged ones keep their state and connections.
    pub fn replace_nodes(&self, nodes: &[NodeConfig]) -> Result<Change> {
        let change = self.registry.replace(nodes)?;
        if let Ok(mut states) = self.states.lock() {
            for name in &change.removed {
                states.remove(name);
            }
            for name in &change.added {
                states.insert(name.clone(), NodeLive::pending(name));
            }
        }
        if !change.added.is_empty() {
            tracing::info!(nodes = ?change.added, "nodes added");
            self.publish(NodeEvent::Added {
                nodes: change.added.clone(),
            });
        }
        if !change.removed.is_empty() {
            tracing::info!(nodes = ?change.removed, "nodes removed");
            self.publish(NodeEvent::Removed {
                nodes: change.removed.clone(),
            });
        }
        Ok(change)
    }

    /// Where a monitored node's own Netdata dashboard is: its agent's URL (a streaming parent's
    /// `/host/<name>/` for a node reached through one), scheme, host, port and path only — no
    /// credentials, query or fragment. `None` for a node not monitored now.
    pub fn dashboard_url(&self, name: &str) -> Option<String> {
        let set = self.registry.current();
        let node = set.nodes.iter().find(|n| n.config.name == name)?;
        Some(node.agent.dashboard_url())
    }

    /// Every monitored node as the live view shows it, in configuration order.
    pub fn nodes_live(&self) -> Vec<NodeLive> {
        let set = self.registry.current();
        let states = self.states.lock().ok();
        set.nodes
            .iter()
            .map(|node| {
                let name = node.config.name.as_str();
                let mut live = states
                    .as_ref()
                    .and_then(|s| s.get(name).cloned())
                    .unwrap_or_else(|| NodeLive::pending(name));
                live.tags.clone_from(&node.config.tags);
                live
            })
            .collect()
    }

    /// Applies a reading to its node's state; a change is logged, counted and published.
    pub fn observe(&self, reading: &Reading) {
        let now = self.clock.unix_secs();
        let change = match self.states.lock() {
            Ok(mut states) => states
                .get_mut(&reading.node)
                .and_then(|n| n.apply(reading, now)),
            Err(_) => None,
        };
        if let Some(c) = change {
            NodeStateChanged(&c).emit();
            self.publish(NodeEvent::StateChanged(c));
        }
    }

    /// Polls the given nodes (all when `only` is `None`) concurrently; each costs at most
    /// `timeout`. Readings come back in configuration order.
    pub async fn poll(&self, window: Window, only: Option<&HashSet<String>>) -> Vec<Reading> {
        let budget = self.settings.timeout;
        let set = self.registry.current();
        let mut tasks = JoinSet::new();
        let mut out: Vec<(usize, Reading)> = Vec::new();
        for (i, node) in set.nodes.iter().enumerate() {
            if only.is_some_and(|o| !o.contains(&node.config.name)) {
                continue;
            }
            if let Some(e) = self.registry.held_down(&node.config.name) {
                out.push((i, held_reading(&node.config.name, e)));
                continue;
            }
            let node = node.clone();
            tasks.spawn(async move { (i, poll_node(&node, window, budget).await) });
        }
        out.reserve(tasks.len());
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(r) => out.push(r),
                // A poll task cannot panic on agent input; if one did, its node has no reading.
                Err(e) => tracing::error!(error = %e, "poll task failed"),
            }
        }
        out.sort_by_key(|(i, _)| *i);
        let readings: Vec<Reading> = out.into_iter().map(|(_, r)| r).collect();
        if self.ticks_track_state.load(Ordering::Relaxed) {
            readings.iter().for_each(|r| self.observe(r));
        }
        readings
    }

    /// Probes each node once: its version and its latest values.
    pub async fn probe(&self) -> Vec<Probe> {
        let budget = self.settings.timeout;
        let set = self.registry.current();
        let probes = set.nodes.iter().map(|node| async move {
            let agent = &node.agent;
            if let Some(e) = self.registry.held_down(&node.config.name) {
                return Probe {
                    node: node.config.name.clone(),
                    url: agent.url().to_string(),
                    info: Err(e.clone()),
                    metrics: Err(e),
                };
            }
            let both = async { tokio::join!(agent.info(), agent.metrics(Window::Latest)) };
            let (info, metrics) = match tokio::time::timeout(budget, both).await {
                Ok(both) => both,
                Err(_) => (
                    Err(NetdataError::Timeout(budget)),
                    Err(NetdataError::Timeout(budget)),
                ),
            };
            Probe {
                node: node.config.name.clone(),
                url: agent.url().to_string(),
                info,
                metrics,
            }
        });
        futures_util::future::join_all(probes).await
    }

    /// Logs the tick ending at `ts`: polls every monitored node that has no row for `ts` yet for
    /// its average over the interval, and writes their rows in one transaction.
    pub async fn log_tick(&self, store: &SharedSamples, ts: i64) -> Result<TickReport> {
        let start = Instant::now();
        let (rows, mut report) = self.poll_tick(store, ts).await?;
        if !rows.is_empty() {
            report.written = with_store(store, move |s| s.insert_rows(&rows)).await?;
        }
        report.elapsed = start.elapsed();
        report.emit();
        Ok(report)
    }

    /// Polls the nodes that have no row for `ts` yet: their rows (not written) and the report.
    pub(crate) async fn poll_tick(
        &self,
        store: &SharedSamples,
        ts: i64,
    ) -> Result<(Vec<Row>, TickReport)> {
        let start = Instant::now();
        let logged = with_store(store, move |s| s.nodes_logged_at(ts)).await?;
        let names = self.node_names();
        let missing: HashSet<String> = names
            .iter()
            .filter(|n| !logged.contains(*n))
            .cloned()
            .collect();
        let readings = if missing.is_empty() {
            Vec::new()
        } else {
            let window = Window::Average {
                end: ts,
                secs: self.settings.log_interval.as_secs(),
            };
            self.poll(window, Some(&missing)).await
        };
        let readings = self.decide_not_yet(store, ts, readings).await?;
        let rows: Vec<Row> = readings.iter().filter_map(|r| r.row(ts)).collect();
        let report = TickReport {
            ts,
            written: 0,
            already_logged: names.len() - missing.len(),
            elapsed: start.elapsed(),
            readings,
        };
        Ok((rows, report))
    }
}

impl Collector {
    /// A node whose agent had no data yet for the tick's interval (it started after it) is not
    /// monitored yet, unless the store holds an earlier row of it: then it was monitored, and the
    /// agent lost its data (a reinstall, a wiped database), and the reading stays a failure with
    /// Netdata's answer as its reason, exactly like any interval without data.
    async fn decide_not_yet(
        &self,
        store: &SharedSamples,
        ts: i64,
        readings: Vec<Reading>,
    ) -> Result<Vec<Reading>> {
        let candidates: Vec<String> = readings
            .iter()
            .filter(|r| r.is_not_yet())
            .map(|r| r.node.clone())
            .collect();
        if candidates.is_empty() {
            return Ok(readings);
        }
        let seen = with_store(store, move |s| {
            let mut seen = HashSet::new();
            for node in candidates {
                let q = RowQuery {
                    from: i64::MIN,
                    to: ts - 1,
                    nodes: vec![node.clone()],
                };
                s.scan_rows(&q, &mut |_| {
                    seen.insert(node.clone());
                    ControlFlow::Break(())
                })?;
            }
            Ok(seen)
        })
        .await?;
        Ok(readings
            .into_iter()
            .map(|mut r| {
                if r.is_not_yet() && seen.contains(&r.node) {
                    r.result = r.result.map_err(NetdataError::not_yet_as_no_data);
                }
                r
            })
            .collect())
    }
}

/// Polls one node under its budget; the outcome is counted.
pub async fn poll_node(node: &Node, window: Window, budget: Duration) -> Reading {
    let start = Instant::now();
    let result = match tokio::time::timeout(budget, node.agent.metrics(window)).await {
        Ok(r) => r,
        Err(_) => Err(NetdataError::Timeout(budget)),
    };
    let elapsed = start.elapsed();
    PollDone {
        node: &node.config.name,
        elapsed,
        result: &result,
    }
    .emit();
    Reading {
        node: node.config.name.clone(),
        result,
        elapsed,
    }
}

/// The reading of a node held down (not asked): it fails at once with `error`; counted as a poll.
pub(crate) fn held_reading(node: &str, error: NetdataError) -> Reading {
    let result = Err(error);
    PollDone {
        node,
        elapsed: Duration::ZERO,
        result: &result,
    }
    .emit();
    Reading {
        node: node.to_string(),
        result,
        elapsed: Duration::ZERO,
    }
}

/// Runs a store operation off the async threads.
pub(crate) async fn with_store<T: Send + 'static>(
    store: &SharedSamples,
    f: impl FnOnce(&mut dyn SampleStore) -> std::result::Result<T, StoreError> + Send + 'static,
) -> Result<T> {
    let store = Arc::clone(store);
    tokio::task::spawn_blocking(move || {
        let mut guard = store
            .lock()
            .map_err(|_| CollectorError::Internal("store lock poisoned".into()))?;
        f(&mut *guard).map_err(CollectorError::from)
    })
    .await
    .map_err(|e| CollectorError::Internal(e.to_string()))?
}
