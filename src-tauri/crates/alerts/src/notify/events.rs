//! Delivery outcomes as events: each `emit()` writes its log line and bumps the process-wide
//! counters that `/metrics` reads through [`delivery_counters`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

/// The notifier types, in the order the counters report them.
pub const TYPES: [&str; 8] = [
    "email",
    "webhook",
    "slack",
    "discord",
    "teams",
    "ntfy",
    "alertmanager",
    "desktop",
];

struct Counts {
    sent: AtomicU64,
    failed: AtomicU64,
    failed_attempts: AtomicU64,
    skipped: AtomicU64,
}

impl Counts {
    const fn new() -> Self {
        Self {
            sent: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            failed_attempts: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
        }
    }
}

static COUNTERS: [Counts; 8] = [const { Counts::new() }; 8];

fn counts(notifier_type: &str) -> &'static Counts {
    let i = TYPES
        .iter()
        .position(|t| *t == notifier_type)
        .unwrap_or(TYPES.len() - 1);
    &COUNTERS[i]
}

/// One notifier type's numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TypeCounts {
    #[serde(rename = "type")]
    pub notifier_type: &'static str,
    /// Notifications delivered.
    pub sent: u64,
    /// Notifications given up on (after every try, or refused for good).
    pub failed: u64,
    /// Single tries that failed (retried or not).
    pub failed_attempts: u64,
    /// Not sent at all: desktop notifications where there is no desktop (`dsmon serve`).
    pub skipped: u64,
}

/// The delivery counters at one moment, one entry per type in [`TYPES`] order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliverySnapshot {
    pub by_type: Vec<TypeCounts>,
}

impl DeliverySnapshot {
    pub fn get(&self, notifier_type: &str) -> Option<&TypeCounts> {
        self.by_type
            .iter()
            .find(|c| c.notifier_type == notifier_type)
    }
}

/// The process's delivery counters.
pub fn delivery_counters() -> DeliverySnapshot {
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    DeliverySnapshot {
        by_type: TYPES
            .iter()
            .zip(&COUNTERS)
            .map(|(t, c)| TypeCounts {
                notifier_type: t,
                sent: get(&c.sent),
                failed: get(&c.failed),
                failed_attempts: get(&c.failed_attempts),
                skipped: get(&c.skipped),
            })
            .collect(),
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Where a delivery goes, for the log lines.
pub(crate) struct Target<'a> {
    pub notifier: &'a str,
    pub notifier_type: &'static str,
    pub rule: &'a str,
    pub kind: &'static str,
    pub nodes: usize,
}

/// One try failed.
pub(crate) struct AttemptFailed<'a> {
    pub target: &'a Target<'a>,
    pub attempt: u32,
    pub of: u32,
    pub answer: &'a str,
    /// The pause before the next try, if there is one.
    pub retry_in: Option<Duration>,
}

impl AttemptFailed<'_> {
    pub fn emit(self) {
        bump(&counts(self.target.notifier_type).failed_attempts);
        let t = self.target;
        match self.retry_in {
            Some(d) => tracing::warn!(
                notifier = t.notifier,
                r#type = t.notifier_type,
                rule = t.rule,
                kind = t.kind,
                nodes = t.nodes,
                attempt = self.attempt,
                of = self.of,
                answer = self.answer,
                retry_in_ms = d.as_millis() as u64,
                "notification delivery failed, retrying"
            ),
            None => tracing::warn!(
                notifier = t.notifier,
                r#type = t.notifier_type,
                rule = t.rule,
                kind = t.kind,
                nodes = t.nodes,
                attempt = self.attempt,
                of = self.of,
                answer = self.answer,
                "notification delivery failed"
            ),
        }
    }
}

/// The delivery's outcome.
pub(crate) struct Delivered<'a> {
    pub target: &'a Target<'a>,
    pub outcome: &'a crate::model::DeliveryOutcome,
    pub skipped: bool,
}

impl Delivered<'_> {
    pub fn emit(self) {
        let c = counts(self.target.notifier_type);
        let t = self.target;
        let o = self.outcome;
        if self.skipped {
            bump(&c.skipped);
            tracing::debug!(
                notifier = t.notifier, r#type = t.notifier_type, rule = t.rule, kind = t.kind,
                answer = %o.answer, "notification skipped"
            );
        } else if o.ok {
            bump(&c.sent);
            tracing::info!(
                notifier = t.notifier, r#type = t.notifier_type, rule = t.rule, kind = t.kind,
                nodes = t.nodes, attempts = o.attempts, answer = %o.answer,
                "notification delivered"
            );
        } else {
            bump(&c.failed);
            tracing::error!(
                notifier = t.notifier, r#type = t.notifier_type, rule = t.rule, kind = t.kind,
                nodes = t.nodes, attempts = o.attempts, answer = %o.answer,
                "notification not delivered, giving up"
            );
        }
    }
}
