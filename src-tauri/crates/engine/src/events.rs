//! Every outcome of the engine as a typed event.
//!
//! - [`NodeEvent`]s are what other parts react to (the desktop's notifications, alerts): published
//!   on the engine's broadcast channel ([`crate::Collector::subscribe`]).
//! - Internal events (the structs below, vector's `internal_events` idea) are the engine's own
//!   outcomes — a poll, a tick, a held write, a clock step. Each `emit()` writes its log line and
//!   bumps its counters in [`counters()`], so `/metrics` and tests read numbers, never log text.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

use dsmon_core::{format_ts, Metrics, NodeState};
use dsmon_netdata::NetdataError;

/// What happened to a node.
#[derive(Debug, Clone)]
pub enum NodeEvent {
    /// A live poll finished (every `live_interval` per node).
    Polled {
        node: String,
        /// The node's tags when it was polled (alert rules scoped by tag read them).
        tags: Vec<String>,
        at: i64,
        result: Result<Metrics, NetdataError>,
    },
    /// The node's state changed (the first reading of a pending node included).
    StateChanged(StateChange),
    /// The node set changed: these nodes are monitored from now on.
    Added { nodes: Vec<String> },
    /// These nodes are no longer monitored (their history stays).
    Removed { nodes: Vec<String> },
}

/// A node's state change, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct StateChange {
    pub node: String,
    pub from: NodeState,
    pub to: NodeState,
    /// Unix seconds.
    pub at: i64,
    /// Why it is down (`None` when it came up).
    pub error: Option<String>,
}

/// Kinds of poll failure, as counted and labelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PollErrorKind {
    Refused,
    Timeout,
    Http,
    NoChart,
    BadBody,
    NoData,
    Stale,
    Request,
    CaFile,
    /// The interval ended before the agent's first point (see [`NetdataError::NotYet`]).
    NotYet,
    /// A child its Netdata parent lists as not connected (not polled).
    NotStreaming,
}

impl PollErrorKind {
    pub const ALL: [PollErrorKind; 11] = [
        Self::Refused,
        Self::Timeout,
        Self::Http,
        Self::NoChart,
        Self::BadBody,
        Self::NoData,
        Self::Stale,
        Self::Request,
        Self::CaFile,
        Self::NotYet,
        Self::NotStreaming,
    ];

    pub fn of(e: &NetdataError) -> Self {
        match e {
            NetdataError::Connect(_) => Self::Refused,
            NetdataError::Timeout(_) => Self::Timeout,
            NetdataError::Http { .. } => Self::Http,
            NetdataError::ChartNotFound { .. } => Self::NoChart,
            NetdataError::Parse { .. } => Self::BadBody,
            NetdataError::NoData { .. } => Self::NoData,
            NetdataError::Stale { .. } => Self::Stale,
            NetdataError::Request(_) => Self::Request,
            NetdataError::CaFile { .. } => Self::CaFile,
            NetdataError::NotYet { .. } => Self::NotYet,
            NetdataError::NotStreaming { .. } => Self::NotStreaming,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Refused => "refused",
            Self::Timeout => "timeout",
            Self::Http => "http",
            Self::NoChart => "no_chart",
            Self::BadBody => "bad_body",
            Self::NoData => "no_data",
            Self::Stale => "stale",
            Self::Request => "request",
            Self::CaFile => "ca_file",
            Self::NotYet => "not_yet",
            Self::NotStreaming => "not_streaming",
        }
    }
}

/// Upper bounds (seconds) of the poll duration histogram's buckets; the last is +Inf.
pub const POLL_BUCKETS: [f64; 8] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

/// The engine's counters (process-wide, like the log).
#[derive(Default)]
pub struct Counters {
    pub polls_ok: AtomicU64,
    polls_failed: [AtomicU64; 11],
    /// Poll durations: cumulative counts per [`POLL_BUCKETS`] bound, then +Inf.
    poll_buckets: [AtomicU64; 9],
    /// Sum of poll durations, microseconds.
    pub poll_micros: AtomicU64,
    pub state_changes: AtomicU64,
    pub ticks_logged: AtomicU64,
    pub rows_written: AtomicU64,
    /// Nodes a tick wrote no row for: their agent had no data yet because it did not exist (not
    /// monitored yet, so neither up nor down).
    pub rows_not_yet: AtomicU64,
    /// Rows waiting in memory for the database (a gauge).
    pub rows_held: AtomicU64,
    pub rows_dropped: AtomicU64,
    pub write_failures: AtomicU64,
    pub ticks_failed: AtomicU64,
    pub ticks_skipped: AtomicU64,
    pub clock_steps: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CountersSnapshot {
    pub polls_ok: u64,
    pub polls_failed: Vec<(PollErrorKind, u64)>,
    /// (upper bound in seconds, cumulative count); the last bound is +Inf.
    pub poll_buckets: Vec<(f64, u64)>,
    pub poll_seconds_sum: f64,
    pub state_changes: u64,
    pub ticks_logged: u64,
    pub rows_written: u64,
    pub rows_not_yet: u64,
    pub rows_held: u64,
    pub rows_dropped: u64,
    pub write_failures: u64,
    pub ticks_failed: u64,
    pub ticks_skipped: u64,
    pub clock_steps: u64,
}

static COUNTERS: std::sync::LazyLock<Counters> = std::sync::LazyLock::new(Counters::default);

/// The process's engine counters.
pub fn counters() -> &'static Counters {
    &COUNTERS
}

fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl Counters {
    pub fn snapshot(&self) -> CountersSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let bounds = POLL_BUCKETS.iter().copied().chain([f64::INFINITY]);
        CountersSnapshot {
            polls_ok: get(&self.polls_ok),
            polls_failed: PollErrorKind::ALL
                .iter()
                .zip(&self.polls_failed)
                .map(|(k, c)| (*k, get(c)))
                .collect(),
            poll_buckets: bounds
                .zip(&self.poll_buckets)
                .map(|(b, c)| (b, get(c)))
                .collect(),
            poll_seconds_sum: get(&self.poll_micros) as f64 / 1e6,
            state_changes: get(&self.state_changes),
            ticks_logged: get(&self.ticks_logged),
            rows_written: get(&self.rows_written),
            rows_not_yet: get(&self.rows_not_yet),
            rows_held: get(&self.rows_held),
            rows_dropped: get(&self.rows_dropped),
            write_failures: get(&self.write_failures),
            ticks_failed: get(&self.ticks_failed),
            ticks_skipped: get(&self.ticks_skipped),
            clock_steps: get(&self.clock_steps),
        }
    }

    /// Polls that failed with this kind of error.
    pub fn polls_failed(&self, kind: PollErrorKind) -> u64 {
        let i = PollErrorKind::ALL
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(0);
        self.polls_failed[i].load(Ordering::Relaxed)
    }
}

/// One node polled once.
pub(crate) struct PollDone<'a> {
    pub node: &'a str,
    pub elapsed: Duration,
    pub result: &'a Result<Metrics, NetdataError>,
}

impl PollDone<'_> {
    pub fn emit(self) {
        let c = counters();
        let secs = self.elapsed.as_secs_f64();
        for (bound, bucket) in POLL_BUCKETS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(&c.poll_buckets)
        {
            if secs <= bound {
                bump(bucket, 1);
            }
        }
        bump(&c.poll_micros, self.elapsed.as_micros() as u64);
        match self.result {
            Ok(_) => bump(&c.polls_ok, 1),
            Err(e) => {
                let kind = PollErrorKind::of(e);
                let i = PollErrorKind::ALL
                    .iter()
                    .position(|k| *k == kind)
                    .unwrap_or(0);
                bump(&c.polls_failed[i], 1);
                tracing::debug!(node = self.node, kind = kind.as_str(), error = %e, "poll failed");
            }
        }
    }
}

/// A node changed state.
pub(crate) struct NodeStateChanged<'a>(pub &'a StateChange);

impl NodeStateChanged<'_> {
    pub fn emit(self) {
        bump(&counters().state_changes, 1);
        let c = self.0;
        match (&c.to, &c.error) {
            (NodeState::Down, Some(e)) => {
                tracing::warn!(node = %c.node, from = ?c.from, error = %e, "node down")
            }
            _ => tracing::info!(node = %c.node, from = ?c.from, "node up"),
        }
    }
}

/// A logging tick's rows were written.
pub(crate) struct TickLogged {
    pub ts: i64,
    pub written: usize,
    pub already_logged: usize,
    /// Nodes logged as NULL rows (no answer, or an answer without data).
    pub down: usize,
    /// Nodes not monitored yet: their agent's data starts after the interval and no earlier row of
    /// theirs exists. No row is written for them.
    pub not_yet: usize,
    pub elapsed: Duration,
}

impl TickLogged {
    pub fn emit(self) {
        let c = counters();
        bump(&c.ticks_logged, 1);
        bump(&c.rows_written, self.written as u64);
        bump(&c.rows_not_yet, self.not_yet as u64);
        if self.not_yet > 0 {
            tracing::info!(
                tick = %format_ts(self.ts),
                written = self.written,
                already_logged = self.already_logged,
                down = self.down,
                not_yet = self.not_yet,
                elapsed_ms = self.elapsed.as_millis() as u64,
                "tick logged (nodes whose agents started after the interval are not monitored yet: no row)"
            );
        } else {
            tracing::info!(
                tick = %format_ts(self.ts),
                written = self.written,
                already_logged = self.already_logged,
                down = self.down,
                elapsed_ms = self.elapsed.as_millis() as u64,
                "tick logged"
            );
        }
    }
}

/// A tick's rows are kept in memory: the database does not take writes.
pub(crate) struct TickHeld {
    pub ts: i64,
    pub held: usize,
}

impl TickHeld {
    pub fn emit(self) {
        counters()
            .rows_held
            .store(self.held as u64, Ordering::Relaxed);
        tracing::warn!(
            tick = %format_ts(self.ts),
            held = self.held,
            "tick kept in memory: the database does not take writes"
        );
    }
}

/// Writing rows failed (`first`: the first failure of an episode).
pub(crate) struct WriteFailed<'a> {
    pub error: &'a dyn std::fmt::Display,
    pub held: usize,
    pub first: bool,
}

impl WriteFailed<'_> {
    pub fn emit(self) {
        let c = counters();
        bump(&c.write_failures, 1);
        c.rows_held.store(self.held as u64, Ordering::Relaxed);
        if self.first {
            tracing::error!(
                error = %self.error,
                rows = self.held,
                "cannot write to the database: rows kept in memory, retrying every 5 s"
            );
        } else {
            tracing::debug!(error = %self.error, rows = self.held, "database still not writable");
        }
    }
}

/// Rows kept in memory were written after failures.
pub(crate) struct HeldWritten {
    pub rows: usize,
    pub ticks: usize,
}

impl HeldWritten {
    pub fn emit(self) {
        counters().rows_held.store(0, Ordering::Relaxed);
        tracing::info!(
            rows = self.rows,
            ticks = self.ticks,
            "database writable again: the rows kept in memory are written"
        );
    }
}

/// Rows given up: the backlog was full (`stopping`: or the process stopped with them).
pub(crate) struct RowsDropped {
    pub rows: usize,
    pub kept: usize,
    pub stopping: bool,
}

impl RowsDropped {
    pub fn emit(self) {
        bump(&counters().rows_dropped, self.rows as u64);
        if self.stopping {
            tracing::error!(
                rows = self.rows,
                "stopping with rows that could not be written: they are lost"
            );
        } else {
            tracing::error!(
                dropped = self.rows,
                kept = self.kept,
                "rows kept in memory are over the limit: the oldest are given up"
            );
        }
    }
}

/// The leader lost its lock with rows not written: the next leader backfills their ticks from
/// the agents (not counted as dropped).
pub(crate) struct RowsHandedOver {
    pub rows: usize,
}

impl RowsHandedOver {
    pub fn emit(self) {
        counters().rows_held.store(0, Ordering::Relaxed);
        tracing::warn!(
            rows = self.rows,
            "no longer the leader with rows not written: whichever instance leads next backfills their ticks from the agents"
        );
    }
}

/// A tick could not be polled or written at all.
pub(crate) struct TickFailed<'a> {
    pub ts: i64,
    pub error: &'a dyn std::fmt::Display,
}

impl TickFailed<'_> {
    pub fn emit(self) {
        bump(&counters().ticks_failed, 1);
        tracing::error!(tick = %format_ts(self.ts), error = %self.error, "tick not logged");
    }
}

/// How the logger moved on after a tick that was not simply followed by the next one.
pub(crate) enum LoggerSkip {
    /// The wall clock was stepped back by this many seconds.
    ClockBack { secs: i64 },
    /// The clock jumped forward or the process was suspended: `skipped` ticks skipped.
    Jumped { skipped: i64 },
    /// Ticks took longer than the interval: `behind` ticks are caught up.
    CatchingUp { behind: i64 },
}

impl LoggerSkip {
    pub fn emit(self) {
        let c = counters();
        match self {
            LoggerSkip::ClockBack { secs } => {
                bump(&c.clock_steps, 1);
                tracing::warn!(
                    back_secs = secs,
                    "clock stepped back: continuing with the newest tick"
                );
            }
            LoggerSkip::Jumped { skipped } => {
                bump(&c.clock_steps, 1);
                bump(&c.ticks_skipped, skipped.max(0) as u64);
                tracing::warn!(
                    skipped,
                    "clock jumped or the process was suspended: skipping to the newest tick"
                );
            }
            LoggerSkip::CatchingUp { behind } => tracing::warn!(
                behind,
                "ticks are late: catching up (the agents still have those intervals)"
            ),
        }
    }
}
