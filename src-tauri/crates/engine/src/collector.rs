//! Polls every configured agent concurrently (each under its own time budget), tracks node state
//! (pending / up / down) and logs one row per node per tick to the store.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dsmon_core::{format_ts, tick_at_or_before, unix_now, Metrics, NodeState, Row};

use tokio::sync::watch;
use tokio::task::JoinSet;

use dsmon_config::{CollectorConfig, Config};
use dsmon_netdata::{Agent, AgentInfo, ClientPool, NetdataError, Window};
use dsmon_store::{SampleStore, SharedSamples, StoreError};

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

/// The outcome of polling one node once.
#[derive(Debug, Clone)]
pub struct Reading {
    pub node: String,
    pub result: std::result::Result<Metrics, String>,
    pub elapsed: Duration,
}

/// What `dsmon check` learns about one node.
#[derive(Debug, Clone)]
pub struct Probe {
    pub node: String,
    pub url: String,
    pub info: std::result::Result<AgentInfo, String>,
    pub metrics: std::result::Result<Metrics, String>,
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
    /// Configured nodes that already had a row for `ts` and were not polled again.
    pub already_logged: usize,
    pub elapsed: Duration,
}

pub struct Collector {
    agents: Vec<Agent>,
    settings: CollectorConfig,
    states: Mutex<HashMap<String, NodeState>>,
    /// Whether logging ticks update node state (and log its changes). Off when a live poller,
    /// which sees the nodes far more often, is the one that decides.
    ticks_track_state: std::sync::atomic::AtomicBool,
}

impl Collector {
    pub fn new(cfg: &Config) -> Result<Self> {
        let mut pool = ClientPool::new(cfg.collector.connect_timeout())?;
        let agents = cfg
            .nodes
            .iter()
            .map(|n| pool.agent(n))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let states = agents
            .iter()
            .map(|a| (a.name().to_string(), NodeState::Pending))
            .collect();
        Ok(Self {
            agents,
            settings: cfg.collector.clone(),
            states: Mutex::new(states),
            ticks_track_state: std::sync::atomic::AtomicBool::new(true),
        })
    }

    /// Lets logging ticks stop updating node state: the live poller does it.
    pub fn leave_state_to_live_poller(&self) {
        self.ticks_track_state
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn settings(&self) -> &CollectorConfig {
        &self.settings
    }

    pub fn node_count(&self) -> usize {
        self.agents.len()
    }

    /// Polls node number `i` once under the node budget.
    pub async fn poll_node(&self, i: usize, window: Window) -> Option<Reading> {
        let agent = self.agents.get(i)?;
        Some(poll_agent(agent, window, self.settings.timeout).await)
    }

    pub fn node_names(&self) -> impl Iterator<Item = &str> {
        self.agents.iter().map(Agent::name)
    }

    pub fn state_of(&self, node: &str) -> NodeState {
        self.states
            .lock()
            .ok()
            .and_then(|s| s.get(node).copied())
            .unwrap_or(NodeState::Pending)
    }

    /// Polls the given nodes (all when `only` is `None`) concurrently; each costs at most `timeout`.
    /// Readings come back in configuration order.
    pub async fn poll(&self, window: Window, only: Option<&HashSet<String>>) -> Vec<Reading> {
        let budget = self.settings.timeout;
        let mut set = JoinSet::new();
        for (i, agent) in self.agents.iter().enumerate() {
            if only.is_some_and(|o| !o.contains(agent.name())) {
                continue;
            }
            let agent = agent.clone();
            set.spawn(async move { (i, poll_agent(&agent, window, budget).await) });
        }
        let mut out: Vec<(usize, Reading)> = Vec::with_capacity(set.len());
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok(r) => out.push(r),
                // A poll task cannot panic on agent input; if one did, its node simply has no reading.
                Err(e) => tracing::error!(error = %e, "poll task failed"),
            }
        }
        out.sort_by_key(|(i, _)| *i);
        let readings: Vec<Reading> = out.into_iter().map(|(_, r)| r).collect();
        if self
            .ticks_track_state
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            self.observe(&readings);
        }
        readings
    }

    /// Records each node's new state and logs the transitions.
    pub fn observe(&self, readings: &[Reading]) {
        let Ok(mut states) = self.states.lock() else {
            return;
        };
        for r in readings {
            let new = if r.result.is_ok() {
                NodeState::Up
            } else {
                NodeState::Down
            };
            let old = states
                .insert(r.node.clone(), new)
                .unwrap_or(NodeState::Pending);
            if old == new {
                continue;
            }
            match &r.result {
                Ok(_) => tracing::info!(node = %r.node, from = ?old, "node up"),
                Err(e) => tracing::warn!(node = %r.node, from = ?old, error = %e, "node down"),
            }
        }
    }

    /// Probes each node once: its version and its latest values.
    pub async fn probe(&self) -> Vec<Probe> {
        let budget = self.settings.timeout;
        let mut set = JoinSet::new();
        for (i, agent) in self.agents.iter().enumerate() {
            let agent = agent.clone();
            set.spawn(async move {
                let both = async { tokio::join!(agent.info(), agent.metrics(Window::Latest)) };
                let (info, metrics) = match tokio::time::timeout(budget, both).await {
                    Ok((i, m)) => (i.map_err(|e| e.to_string()), m.map_err(|e| e.to_string())),
                    Err(_) => {
                        let e = NetdataError::Timeout(budget).to_string();
                        (Err(e.clone()), Err(e))
                    }
                };
                (
                    i,
                    Probe {
                        node: agent.name().to_string(),
                        url: agent.url().to_string(),
                        info,
                        metrics,
                    },
                )
            });
        }
        let mut out = Vec::with_capacity(set.len());
        while let Some(joined) = set.join_next().await {
            if let Ok(p) = joined {
                out.push(p);
            }
        }
        out.sort_by_key(|(i, _)| *i);
        out.into_iter().map(|(_, p)| p).collect()
    }

    /// Logs the tick ending at `ts`: polls every configured node that has no row for `ts` yet for
    /// its average over the interval, and writes their rows in one transaction.
    pub async fn log_tick(&self, store: &SharedSamples, ts: i64) -> Result<TickReport> {
        let start = Instant::now();
        let (rows, mut report) = self.poll_tick(store, ts).await?;
        if !rows.is_empty() {
            report.written = with_store(store, move |s| s.insert_rows(&rows)).await?;
        }
        report.elapsed = start.elapsed();
        log_report(&report);
        Ok(report)
    }

    /// Polls the nodes that have no row for `ts` yet: their rows (not written) and the report.
    async fn poll_tick(&self, store: &SharedSamples, ts: i64) -> Result<(Vec<Row>, TickReport)> {
        let start = Instant::now();
        let logged = with_store(store, move |s| s.nodes_logged_at(ts)).await?;
        let missing: HashSet<String> = self
            .node_names()
            .filter(|n| !logged.contains(*n))
            .map(str::to_string)
            .collect();
        let already_logged = self.agents.len() - missing.len();
        let readings = if missing.is_empty() {
            Vec::new()
        } else {
            let window = Window::Average {
                end: ts,
                secs: self.settings.log_interval.as_secs(),
            };
            self.poll(window, Some(&missing)).await
        };
        let rows: Vec<Row> = readings
            .iter()
            .map(|r| Row {
                ts,
                node: r.node.clone(),
                metrics: r.result.as_ref().ok().copied(),
                error: r.result.as_ref().err().cloned(),
            })
            .collect();
        let report = TickReport {
            ts,
            written: 0,
            already_logged,
            elapsed: start.elapsed(),
            readings,
        };
        Ok((rows, report))
    }

    /// The logging loop of `dsmon serve`: logs the newest tick at once if it is missing (after a
    /// restart), then one tick at every wall-clock multiple of the log interval, until `shutdown`
    /// turns true. A tick in progress (its poll and its write) always finishes.
    ///
    /// When a write fails (a full disk, a read-only or locked database) the rows are kept in memory
    /// ([`MAX_HELD_ROWS`] at most), the write is tried again every few seconds, and they are
    /// written, oldest first, as soon as the database takes them: no tick is lost.
    pub async fn run_logger(&self, store: SharedSamples, mut shutdown: watch::Receiver<bool>) {
        let interval = self.settings.log_interval.as_secs();
        let mut next = tick_at_or_before(unix_now(), interval);
        let mut held = Held::default();
        // The wall clock and the monotonic clock at the last tick's end: when the wall clock moved
        // further than the monotonic one, it was stepped (or the machine slept).
        let mut anchor = (wall_secs(), Instant::now());
        loop {
            // Wait for `next` by the wall clock, re-reading it at least every few seconds so that a
            // clock step (NTP, suspend) is noticed.
            loop {
                if *shutdown.borrow() {
                    held.flush(&store).await;
                    held.report_lost();
                    return;
                }
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default();
                let target = Duration::from_secs(next.max(0) as u64);
                if now >= target {
                    break;
                }
                // A clock stepped back by more than an interval: continue with the newest tick
                // (ticks already logged are not polled again) instead of waiting for the old one.
                let newest = tick_at_or_before(now.as_secs() as i64, interval);
                if newest + (interval as i64) < next {
                    tracing::warn!(
                        back_secs = next - interval as i64 - newest,
                        "clock stepped back: continuing with the newest tick"
                    );
                    next = newest;
                    break;
                }
                let wait = (target - now).min(HELD_RETRY);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.changed() => {}
                }
                held.flush(&store).await;
            }
            let start = Instant::now();
            match self.poll_tick(&store, next).await {
                Ok((rows, mut report)) => {
                    held.push(rows);
                    if let Some(written) = held.flush(&store).await {
                        report.written = written;
                        report.elapsed = start.elapsed();
                        log_report(&report);
                    } else {
                        tracing::warn!(
                            tick = %format_ts(next),
                            held = held.rows.len(),
                            "tick kept in memory: the database does not take writes"
                        );
                    }
                }
                Err(e) => tracing::error!(tick = %format_ts(next), error = %e, "tick not logged"),
            }
            let now = wall_secs();
            let stepped = now - anchor.0 - anchor.1.elapsed().as_secs_f64() > interval as f64;
            anchor = (now, Instant::now());
            let newest = tick_at_or_before(now as i64, interval);
            let following = next + interval as i64;
            let behind = (newest - following) / interval as i64;
            if newest <= following {
                next = following;
            } else if stepped || behind >= MAX_CATCH_UP {
                tracing::warn!(
                    skipped = behind,
                    "clock jumped or the process was suspended: skipping to the newest tick"
                );
                next = newest;
            } else {
                // The ticks took longer than the interval (a loaded machine, slow agents): log the
                // ones that passed in the meantime too, each over its own interval.
                tracing::warn!(
                    behind,
                    "ticks are late: catching up (the agents still have those intervals)"
                );
                next = following;
            }
        }
    }
}

/// Late ticks caught up at most; further behind, the logger skips to the newest tick.
pub const MAX_CATCH_UP: i64 = 60;

fn wall_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Rows kept in memory at most while the database does not take writes (with 100 nodes and a
/// 10-minute interval, about a week).
pub const MAX_HELD_ROWS: usize = 100_000;
/// How often a write of held rows is tried again.
const HELD_RETRY: Duration = Duration::from_secs(5);

/// Rows whose write failed, oldest first.
#[derive(Default)]
struct Held {
    rows: Vec<Row>,
    /// Rows given up because the backlog was full.
    dropped: usize,
    /// The write error was logged (once per episode).
    failing: bool,
}

impl Held {
    fn push(&mut self, rows: Vec<Row>) {
        self.rows.extend(rows);
        if self.rows.len() > MAX_HELD_ROWS {
            let over = self.rows.len() - MAX_HELD_ROWS;
            self.rows.drain(..over);
            self.dropped += over;
            tracing::error!(
                dropped = over,
                kept = MAX_HELD_ROWS,
                "rows kept in memory are over the limit: the oldest are given up"
            );
        }
    }

    /// Writes every held row; the number written (new rows), or `None` while the database does
    /// not take them.
    async fn flush(&mut self, store: &SharedSamples) -> Option<usize> {
        if self.rows.is_empty() {
            return Some(0);
        }
        let attempt = self.rows.clone();
        let ticks: HashSet<i64> = attempt.iter().map(|r| r.ts).collect();
        match with_store(store, move |s| s.insert_rows(&attempt)).await {
            Ok(written) => {
                if self.failing {
                    tracing::info!(
                        rows = self.rows.len(),
                        ticks = ticks.len(),
                        "database writable again: the rows kept in memory are written"
                    );
                }
                self.rows.clear();
                self.failing = false;
                Some(written)
            }
            Err(e) => {
                if !self.failing {
                    tracing::error!(
                        error = %e,
                        rows = self.rows.len(),
                        "cannot write to the database: rows kept in memory, retrying every 5 s"
                    );
                } else {
                    tracing::debug!(error = %e, rows = self.rows.len(), "database still not writable");
                }
                self.failing = true;
                None
            }
        }
    }

    fn report_lost(&self) {
        if !self.rows.is_empty() || self.dropped > 0 {
            tracing::error!(
                rows = self.rows.len() + self.dropped,
                "stopping with rows that could not be written: they are lost"
            );
        }
    }
}

fn log_report(report: &TickReport) {
    let down = report.readings.iter().filter(|r| r.result.is_err()).count();
    tracing::info!(
        tick = %format_ts(report.ts),
        written = report.written,
        already_logged = report.already_logged,
        down,
        elapsed_ms = report.elapsed.as_millis() as u64,
        "tick logged"
    );
}

async fn poll_agent(agent: &Agent, window: Window, budget: Duration) -> Reading {
    let start = Instant::now();
    let result = match tokio::time::timeout(budget, agent.metrics(window)).await {
        Ok(Ok(m)) => Ok(m),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(NetdataError::Timeout(budget).to_string()),
    };
    Reading {
        node: agent.name().to_string(),
        result,
        elapsed: start.elapsed(),
    }
}

/// Runs a store operation off the async threads.
async fn with_store<T: Send + 'static>(
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
