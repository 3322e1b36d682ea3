//! The alerts' outcomes as typed events: each `emit()` writes its log line and bumps its counter
//! in [`counters()`] (which `/metrics` and tests read).

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::model::NoticeKind;

#[derive(Default)]
pub struct Counters {
    /// Polls evaluated against the rules.
    pub evaluations: AtomicU64,
    pub fired: AtomicU64,
    pub resolved: AtomicU64,
    pub repeated: AtomicU64,
    /// Notifications not delivered: silenced or in a maintenance window.
    pub muted: AtomicU64,
    /// Grouped notifications sent under storm control.
    pub grouped: AtomicU64,
    pub deliveries_ok: AtomicU64,
    pub deliveries_failed: AtomicU64,
    pub store_failures: AtomicU64,
    /// Node events the alerts fell behind on (skipped).
    pub lagged: AtomicU64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CountersSnapshot {
    pub evaluations: u64,
    pub fired: u64,
    pub resolved: u64,
    pub repeated: u64,
    pub muted: u64,
    pub grouped: u64,
    pub deliveries_ok: u64,
    pub deliveries_failed: u64,
    pub store_failures: u64,
    pub lagged: u64,
}

static COUNTERS: std::sync::LazyLock<Counters> = std::sync::LazyLock::new(Counters::default);

pub fn counters() -> &'static Counters {
    &COUNTERS
}

impl Counters {
    pub fn snapshot(&self) -> CountersSnapshot {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CountersSnapshot {
            evaluations: g(&self.evaluations),
            fired: g(&self.fired),
            resolved: g(&self.resolved),
            repeated: g(&self.repeated),
            muted: g(&self.muted),
            grouped: g(&self.grouped),
            deliveries_ok: g(&self.deliveries_ok),
            deliveries_failed: g(&self.deliveries_failed),
            store_failures: g(&self.store_failures),
            lagged: g(&self.lagged),
        }
    }
}

/// What happened in the alerts.
pub enum AlertEvent<'a> {
    Notice {
        rule: &'a str,
        node: &'a str,
        kind: NoticeKind,
        muted: bool,
    },
    Grouped {
        rule: &'a str,
        nodes: usize,
    },
    Delivered {
        notifier: &'a str,
        ok: bool,
        attempts: u32,
    },
    StoreFailed {
        error: String,
    },
    Lagged {
        skipped: u64,
    },
}

impl AlertEvent<'_> {
    pub fn emit(self) {
        let c = counters();
        let bump = |a: &AtomicU64| {
            a.fetch_add(1, Ordering::Relaxed);
        };
        match self {
            Self::Notice {
                rule,
                node,
                kind,
                muted,
            } => {
                match kind {
                    NoticeKind::Firing => bump(&c.fired),
                    NoticeKind::Resolved => bump(&c.resolved),
                    NoticeKind::Repeat => bump(&c.repeated),
                    NoticeKind::Test => {}
                }
                if muted {
                    bump(&c.muted);
                    tracing::info!(
                        rule,
                        node,
                        state = kind.as_str(),
                        "alert {} (silenced: recorded, not delivered)",
                        kind.as_str()
                    );
                } else {
                    tracing::info!(rule, node, state = kind.as_str(), "alert {}", kind.as_str());
                }
            }
            Self::Grouped { rule, nodes } => {
                bump(&c.grouped);
                tracing::info!(rule, nodes, "storm control: one grouped notification");
            }
            Self::Delivered {
                notifier,
                ok,
                attempts,
            } => {
                if ok {
                    bump(&c.deliveries_ok);
                    tracing::debug!(notifier, attempts, "notification delivered");
                } else {
                    bump(&c.deliveries_failed);
                    tracing::warn!(
                        notifier,
                        attempts,
                        "notification failed (see the delivery log)"
                    );
                }
            }
            Self::StoreFailed { error } => {
                bump(&c.store_failures);
                tracing::error!(%error, "alerts: cannot write to the store");
            }
            Self::Lagged { skipped } => {
                c.lagged.fetch_add(skipped, Ordering::Relaxed);
                tracing::warn!(skipped, "alerts fell behind the node events: polls skipped");
            }
        }
    }
}
