//! The alerts' state on SQLite (tables of `migrations/0009_alerts.sql`): the state of every
//! (rule, node) pair, the firing history, silences and the delivery log. A connection of its own
//! on the same file as the samples (like the sign-in state), opened after [`crate::SqliteStore`]
//! has brought the schema up to date.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::{AlertStore, Result, StoreError};

/// One (rule, node) pair's state as stored. States and severities are the alerts' own words
/// (`ok`, `pending`, `firing`, `no_data`; `warning`, `critical`).
#[derive(Debug, Clone, PartialEq)]
pub struct AlertStateRecord {
    pub rule: String,
    pub node: String,
    pub state: String,
    pub since: i64,
    pub fired_at: Option<i64>,
    pub value: Option<f64>,
    pub last_notified: Option<i64>,
    pub acked_by: Option<String>,
    pub acked_at: Option<i64>,
}

/// An alert fired or resolved (the history).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertEventRecord {
    pub id: i64,
    pub at: i64,
    pub rule: String,
    pub node: String,
    pub severity: String,
    pub state: String,
    pub value: Option<f64>,
    pub threshold: f64,
    pub silenced: bool,
}

/// A silence: matching alerts are recorded but not delivered until `expires`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SilenceRecord {
    pub id: i64,
    pub created: i64,
    pub created_by: String,
    pub expires: i64,
    pub nodes: Option<String>,
    pub rule: Option<String>,
    pub severity: Option<String>,
    pub comment: String,
}

/// One delivery of a notification to a notifier.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliveryRecord {
    pub id: i64,
    pub at: i64,
    pub notifier: String,
    #[serde(rename = "type")]
    pub kind_of_notifier: String,
    pub kind: String,
    pub rule: String,
    pub nodes: Vec<String>,
    pub ok: bool,
    pub attempts: u32,
    pub answer: String,
}

/// The alert tables on SQLite.
pub struct SqliteAlertStore {
    conn: Mutex<Connection>,
}

impl SqliteAlertStore {
    /// Opens a connection to a database whose schema [`crate::SqliteStore::open`] has brought up
    /// to date.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> Result<std::sync::MutexGuard<'_, Connection>> {
        self.conn.lock().map_err(|_| StoreError::Poisoned)
    }
}

const STATE_COLUMNS: &str =
    "rule, node, state, since, fired_at, value, last_notified, acked_by, acked_at";
const EVENT_COLUMNS: &str = "id, at, rule, node, severity, state, value, threshold, silenced";
const SILENCE_COLUMNS: &str = "id, created, created_by, expires, nodes, rule, severity, comment";
const DELIVERY_COLUMNS: &str = "id, at, notifier, type, kind, rule, nodes, ok, attempts, answer";

fn event_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AlertEventRecord> {
    Ok(AlertEventRecord {
        id: r.get(0)?,
        at: r.get(1)?,
        rule: r.get(2)?,
        node: r.get(3)?,
        severity: r.get(4)?,
        state: r.get(5)?,
        value: r.get(6)?,
        threshold: r.get(7)?,
        silenced: r.get(8)?,
    })
}

fn silence_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SilenceRecord> {
    Ok(SilenceRecord {
        id: r.get(0)?,
        created: r.get(1)?,
        created_by: r.get(2)?,
        expires: r.get(3)?,
        nodes: r.get(4)?,
        rule: r.get(5)?,
        severity: r.get(6)?,
        comment: r.get(7)?,
    })
}

fn delivery_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeliveryRecord> {
    let nodes: String = r.get(6)?;
    Ok(DeliveryRecord {
        id: r.get(0)?,
        at: r.get(1)?,
        notifier: r.get(2)?,
        kind_of_notifier: r.get(3)?,
        kind: r.get(4)?,
        rule: r.get(5)?,
        nodes: nodes
            .split(',')
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .collect(),
        ok: r.get(7)?,
        attempts: r.get(8)?,
        answer: r.get(9)?,
    })
}

impl AlertStore for SqliteAlertStore {
    fn alert_states(&self) -> Result<Vec<AlertStateRecord>> {
        let c = self.conn()?;
        let mut st = c.prepare(&format!(
            "SELECT {STATE_COLUMNS} FROM alert_state ORDER BY rule, node"
        ))?;
        let rows = st.query_map([], |r| {
            Ok(AlertStateRecord {
                rule: r.get(0)?,
                node: r.get(1)?,
                state: r.get(2)?,
                since: r.get(3)?,
                fired_at: r.get(4)?,
                value: r.get(5)?,
                last_notified: r.get(6)?,
                acked_by: r.get(7)?,
                acked_at: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn save_alerts(
        &self,
        states: &[AlertStateRecord],
        removed: &[(String, String)],
        events: &[AlertEventRecord],
    ) -> Result<()> {
        let mut c = self.conn()?;
        let tx = c.transaction()?;
        {
            let mut put = tx.prepare_cached(&format!(
                "INSERT INTO alert_state ({STATE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (rule, node) DO UPDATE SET state = ?3, since = ?4, fired_at = ?5,
                   value = ?6, last_notified = ?7, acked_by = ?8, acked_at = ?9"
            ))?;
            for s in states {
                put.execute(params![
                    s.rule,
                    s.node,
                    s.state,
                    s.since,
                    s.fired_at,
                    s.value,
                    s.last_notified,
                    s.acked_by,
                    s.acked_at
                ])?;
            }
            let mut del =
                tx.prepare_cached("DELETE FROM alert_state WHERE rule = ?1 AND node = ?2")?;
            for (rule, node) in removed {
                del.execute(params![rule, node])?;
            }
            let mut ev = tx.prepare_cached(
                "INSERT INTO alert_events (at, rule, node, severity, state, value, threshold, silenced)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for e in events {
                ev.execute(params![
                    e.at,
                    e.rule,
                    e.node,
                    e.severity,
                    e.state,
                    e.value,
                    e.threshold,
                    e.silenced
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn alert_events(
        &self,
        from: i64,
        to: i64,
        nodes: &[String],
        limit: usize,
    ) -> Result<Vec<AlertEventRecord>> {
        let c = self.conn()?;
        let mut st = c.prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM alert_events WHERE at >= ?1 AND at <= ?2
             ORDER BY at DESC, id DESC"
        ))?;
        let mut out = Vec::new();
        let mut rows = st.query(params![from, to])?;
        while let Some(r) = rows.next()? {
            let e = event_from_row(r)?;
            if nodes.is_empty() || nodes.contains(&e.node) {
                out.push(e);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    fn put_silence(&self, s: &SilenceRecord) -> Result<SilenceRecord> {
        let c = self.conn()?;
        c.execute(
            "INSERT INTO alert_silences (created, created_by, expires, nodes, rule, severity, comment)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                s.created,
                s.created_by,
                s.expires,
                s.nodes,
                s.rule,
                s.severity,
                s.comment
            ],
        )?;
        Ok(SilenceRecord {
            id: c.last_insert_rowid(),
            ..s.clone()
        })
    }

    fn expire_silence(&self, id: i64, now: i64) -> Result<Option<SilenceRecord>> {
        let c = self.conn()?;
        c.execute(
            "UPDATE alert_silences SET expires = ?2 WHERE id = ?1 AND expires > ?2",
            params![id, now],
        )?;
        Ok(c.query_row(
            &format!("SELECT {SILENCE_COLUMNS} FROM alert_silences WHERE id = ?1"),
            [id],
            silence_from_row,
        )
        .optional()?)
    }

    fn silences(&self, expired_since: i64) -> Result<Vec<SilenceRecord>> {
        let c = self.conn()?;
        let mut st = c.prepare_cached(&format!(
            "SELECT {SILENCE_COLUMNS} FROM alert_silences WHERE expires > ?1
             ORDER BY expires DESC, id DESC"
        ))?;
        let rows = st.query_map([expired_since], silence_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn record_delivery(&self, d: &DeliveryRecord) -> Result<i64> {
        let c = self.conn()?;
        c.execute(
            &format!(
                "INSERT INTO alert_deliveries ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                &DELIVERY_COLUMNS["id, ".len()..]
            ),
            params![
                d.at,
                d.notifier,
                d.kind_of_notifier,
                d.kind,
                d.rule,
                d.nodes.join(","),
                d.ok,
                d.attempts,
                d.answer
            ],
        )?;
        Ok(c.last_insert_rowid())
    }

    fn deliveries(&self, limit: usize) -> Result<Vec<DeliveryRecord>> {
        let c = self.conn()?;
        let mut st = c.prepare_cached(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM alert_deliveries ORDER BY at DESC, id DESC LIMIT ?1"
        ))?;
        let rows = st.query_map([limit as i64], delivery_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn prune_alerts(&self, before: i64) -> Result<usize> {
        let c = self.conn()?;
        let a = c.execute("DELETE FROM alert_events WHERE at < ?1", [before])?;
        let b = c.execute("DELETE FROM alert_deliveries WHERE at < ?1", [before])?;
        let s = c.execute("DELETE FROM alert_silences WHERE expires < ?1", [before])?;
        Ok(a + b + s)
    }
}
