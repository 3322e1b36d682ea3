//! `dsmon migrate --to postgres://...`: copies a SQLite history into a PostgreSQL database —
//! the rows (their roll-ups are built from them as they are written, exactly as on SQLite), the
//! users, their sessions, the API tokens, the audit log and the alerts' state, history, silences
//! and deliveries.
//!
//! Running it again copies nothing twice: rows are unique per (node, tick), users per address,
//! sessions per id, API tokens per secret hash (with new ids), alert states per (rule, node); audit entries, alert events, silences and
//! deliveries are copied unless an identical one is already there. Started sign-ins and used
//! tokens are short-lived and not copied.

use std::ops::ControlFlow;
use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::postgres::PgDatabase;
use crate::{AuthStore, Row, RowQuery, SampleStore, SqliteAuthStore, SqliteStore, StoreError};

/// Rows per PostgreSQL transaction while copying samples.
const ROW_BATCH: usize = 20_000;

/// What was read and what was new, per kind.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MigrateReport {
    pub rows: (usize, usize),
    pub users: (usize, usize),
    pub sessions: (usize, usize),
    pub api_tokens: (usize, usize),
    pub audit: (usize, usize),
    pub alert_states: (usize, usize),
    pub alert_events: (usize, usize),
    pub silences: (usize, usize),
    pub deliveries: (usize, usize),
}

impl std::fmt::Display for MigrateReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts = [
            ("rows", self.rows),
            ("users", self.users),
            ("sessions", self.sessions),
            ("API tokens", self.api_tokens),
            ("audit entries", self.audit),
            ("alert states", self.alert_states),
            ("alert events", self.alert_events),
            ("silences", self.silences),
            ("deliveries", self.deliveries),
        ];
        let text: Vec<String> = parts
            .iter()
            .map(|(what, (read, new))| format!("{what}: {read} read, {new} new"))
            .collect();
        f.write_str(&text.join("; "))
    }
}

type Result<T> = std::result::Result<T, StoreError>;

/// Copies everything of the SQLite database at `src` into `dst`.
pub fn sqlite_to_postgres(src: &Path, dst: &PgDatabase) -> Result<MigrateReport> {
    // Brings an older SQLite file up to date first (as any dsmon start would).
    let rows_src = SqliteStore::open_existing(src)?;
    let mut report = MigrateReport::default();

    // Rows, in time order, a batch per transaction.
    let mut samples = dst.samples();
    let mut batch: Vec<Row> = Vec::with_capacity(ROW_BATCH);
    let mut failed: Option<StoreError> = None;
    let all = RowQuery {
        from: i64::MIN,
        to: i64::MAX,
        nodes: vec![],
    };
    SampleStore::scan_rows(&rows_src, &all, &mut |row| {
        batch.push(row);
        if batch.len() >= ROW_BATCH {
            report.rows.0 += batch.len();
            match samples.insert_rows(&batch) {
                Ok(n) => report.rows.1 += n,
                Err(e) => {
                    failed = Some(e);
                    return ControlFlow::Break(());
                }
            }
            batch.clear();
        }
        ControlFlow::Continue(())
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    report.rows.0 += batch.len();
    report.rows.1 += samples.insert_rows(&batch)?;
    tracing::info!(rows = report.rows.0, new = report.rows.1, "rows copied");

    let conn = Connection::open_with_flags(src, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let auth = SqliteAuthStore::open(src)?;
    let users = auth.users()?;
    report.users = (users.len(), dst.copy_users(&users)?);

    let sessions = query_all(
        &conn,
        "SELECT id_hash, email, created, expires, last_seen FROM sessions",
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
    )?;
    report.sessions = (sessions.len(), dst.copy_sessions(&sessions)?);

    let tokens = query_all(
        &conn,
        "SELECT hash, name, role, created, created_by, expires, last_used, revoked
         FROM api_tokens ORDER BY id",
        |r| {
            Ok(ApiTokenCopy {
                hash: r.get(0)?,
                name: r.get(1)?,
                role: r.get(2)?,
                created: r.get(3)?,
                created_by: r.get(4)?,
                expires: r.get(5)?,
                last_used: r.get(6)?,
                revoked: r.get(7)?,
            })
        },
    )?;
    report.api_tokens = (tokens.len(), dst.copy_api_tokens(&tokens)?);

    let audit = query_all(
        &conn,
        "SELECT ts, actor, action, target, detail, count, last_ts FROM audit ORDER BY id",
        |r| {
            Ok(AuditCopy {
                ts: r.get(0)?,
                actor: r.get(1)?,
                action: r.get(2)?,
                target: r.get(3)?,
                detail: r.get(4)?,
                count: r.get(5)?,
                last_ts: r.get(6)?,
            })
        },
    )?;
    report.audit = (audit.len(), dst.copy_audit(&audit)?);

    let states = query_all(
        &conn,
        "SELECT rule, node, state, since, fired_at, value, last_notified, acked_by, acked_at FROM alert_state",
        |r| {
            Ok(crate::alert_db::AlertStateRecord {
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
        },
    )?;
    let events = query_all(
        &conn,
        "SELECT id, at, rule, node, severity, state, value, threshold, silenced FROM alert_events ORDER BY id",
        |r| {
            Ok(crate::alert_db::AlertEventRecord {
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
        },
    )?;
    let silences = query_all(
        &conn,
        "SELECT id, created, created_by, expires, nodes, rule, severity, comment FROM alert_silences ORDER BY id",
        |r| {
            Ok(crate::alert_db::SilenceRecord {
                id: r.get(0)?,
                created: r.get(1)?,
                created_by: r.get(2)?,
                expires: r.get(3)?,
                nodes: r.get(4)?,
                rule: r.get(5)?,
                severity: r.get(6)?,
                comment: r.get(7)?,
            })
        },
    )?;
    let deliveries = query_all(
        &conn,
        "SELECT at, notifier, type, kind, rule, nodes, ok, attempts, answer FROM alert_deliveries ORDER BY id",
        |r| {
            Ok(DeliveryCopy {
                at: r.get(0)?,
                notifier: r.get(1)?,
                kind_of_notifier: r.get(2)?,
                kind: r.get(3)?,
                rule: r.get(4)?,
                nodes: r.get(5)?,
                ok: r.get(6)?,
                attempts: r.get(7)?,
                answer: r.get(8)?,
            })
        },
    )?;
    let (s, e, si, d) = dst.copy_alerts(&states, &events, &silences, &deliveries)?;
    report.alert_states = (states.len(), s);
    report.alert_events = (events.len(), e);
    report.silences = (silences.len(), si);
    report.deliveries = (deliveries.len(), d);
    Ok(report)
}

fn query_all<T>(
    c: &Connection,
    sql: &str,
    f: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    let mut st = c.prepare(sql)?;
    let rows = st.query_map([], f)?;
    Ok(rows.collect::<rusqlite::Result<Vec<T>>>()?)
}

/// An audit entry as copied (its id is the target's own).
pub(crate) struct AuditCopy {
    pub ts: i64,
    pub actor: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub detail: Option<String>,
    pub count: i64,
    pub last_ts: Option<i64>,
}

/// A delivery as stored (nodes comma-separated).
pub(crate) struct DeliveryCopy {
    pub at: i64,
    pub notifier: String,
    pub kind_of_notifier: String,
    pub kind: String,
    pub rule: String,
    pub nodes: String,
    pub ok: bool,
    pub attempts: i64,
    pub answer: String,
}

/// An API token as stored (its id is the target's own).
pub(crate) struct ApiTokenCopy {
    pub hash: String,
    pub name: String,
    pub role: String,
    pub created: i64,
    pub created_by: String,
    pub expires: Option<i64>,
    pub last_used: Option<i64>,
    pub revoked: Option<i64>,
}

/// A session as stored: id hash, email, created, expires, last seen.
pub(crate) type SessionCopy = (String, String, i64, i64, i64);
