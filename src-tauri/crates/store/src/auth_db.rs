//! The sign-in state on SQLite (tables of `migrations/0003_auth.sql` and `0005_auth_state.sql`):
//! users, sessions, audit, started sign-ins and exchanged tokens. A connection of its own on the
//! same file as the samples, so sign-in never waits on history reads.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use dsmon_core::{Identity, Role};

use crate::{AuthStore, StoreError};

/// A user as stored: what the provider said at the last sign-in, and what an Admin set.
#[derive(Debug, Clone)]
pub struct UserRecord {
    pub email: String,
    pub name: Option<String>,
    pub hd: Option<String>,
    /// Set by an Admin; `None`: from the configuration.
    pub role: Option<Role>,
    pub blocked: bool,
    pub first_seen: i64,
    pub last_sign_in: Option<i64>,
}

/// One audit entry.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub ts: i64,
    pub actor: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub detail: Option<String>,
}

pub struct SqliteAuthStore {
    conn: Mutex<Connection>,
}

type Result<T> = std::result::Result<T, StoreError>;

fn role_text(r: Option<Role>) -> Option<&'static str> {
    r.map(|r| match r {
        Role::Admin => "admin",
        Role::User => "user",
    })
}

fn user_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<UserRecord> {
    let role: Option<String> = r.get(3)?;
    Ok(UserRecord {
        email: r.get(0)?,
        name: r.get(1)?,
        hd: r.get(2)?,
        role: match role.as_deref() {
            Some("admin") => Some(Role::Admin),
            Some("user") => Some(Role::User),
            _ => None,
        },
        blocked: r.get::<_, i64>(4)? != 0,
        first_seen: r.get(5)?,
        last_sign_in: r.get(6)?,
    })
}

const USER_COLUMNS: &str = "email, name, hd, role, blocked, first_seen, last_sign_in";

impl SqliteAuthStore {
    /// Opens the database the store has already created and migrated.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> Result<std::sync::MutexGuard<'_, Connection>> {
        self.conn.lock().map_err(|_| StoreError::Poisoned)
    }
}

impl AuthStore for SqliteAuthStore {
    fn user(&self, email: &str) -> Result<Option<UserRecord>> {
        let c = self.conn()?;
        Ok(c.query_row(
            &format!("SELECT {USER_COLUMNS} FROM users WHERE email = ?1"),
            [email],
            user_from_row,
        )
        .optional()?)
    }

    fn users(&self) -> Result<Vec<UserRecord>> {
        let c = self.conn()?;
        let mut st = c.prepare(&format!(
            "SELECT {USER_COLUMNS} FROM users ORDER BY last_sign_in IS NULL, last_sign_in DESC, email"
        ))?;
        let rows = st.query_map([], user_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Records a verified identity (at every sign-in attempt, also refused ones, so an Admin can
    /// grant a role to someone who tried); `signed_in` also stamps the last sign-in.
    fn upsert_user(&self, id: &Identity, now: i64, signed_in: bool) -> Result<()> {
        let c = self.conn()?;
        c.execute(
            "INSERT INTO users (email, sub, name, hd, first_seen, last_sign_in)
             VALUES (?1, ?2, ?3, ?4, ?5, CASE WHEN ?6 THEN ?5 END)
             ON CONFLICT(email) DO UPDATE SET sub = ?2, name = ?3, hd = ?4,
                 last_sign_in = CASE WHEN ?6 THEN ?5 ELSE last_sign_in END",
            params![id.email, id.sub, id.name, id.hd, now, signed_in],
        )?;
        Ok(())
    }

    fn set_role(&self, email: &str, role: Option<Role>) -> Result<bool> {
        let c = self.conn()?;
        Ok(c.execute(
            "UPDATE users SET role = ?2 WHERE email = ?1",
            params![email, role_text(role)],
        )? == 1)
    }

    /// Blocks or unblocks; blocking also ends the user's sessions.
    fn set_blocked(&self, email: &str, blocked: bool) -> Result<bool> {
        let mut c = self.conn()?;
        let tx = c.transaction()?;
        let n = tx.execute(
            "UPDATE users SET blocked = ?2 WHERE email = ?1",
            params![email, blocked],
        )?;
        if blocked {
            tx.execute("DELETE FROM sessions WHERE email = ?1", [email])?;
        }
        tx.commit()?;
        Ok(n == 1)
    }

    fn create_session(&self, id_hash: &str, email: &str, now: i64, expires: i64) -> Result<()> {
        let c = self.conn()?;
        // Expired sessions go whenever a new one is made.
        c.execute("DELETE FROM sessions WHERE expires <= ?1", [now])?;
        c.execute(
            "INSERT INTO sessions (id_hash, email, created, expires) VALUES (?1, ?2, ?3, ?4)",
            params![id_hash, email, now, expires],
        )?;
        Ok(())
    }

    /// The user behind a live session.
    fn session_user(&self, id_hash: &str, now: i64) -> Result<Option<UserRecord>> {
        let c = self.conn()?;
        Ok(c.query_row(
            &format!(
                "SELECT {} FROM sessions s JOIN users u ON u.email = s.email
                 WHERE s.id_hash = ?1 AND s.expires > ?2",
                USER_COLUMNS
                    .split(", ")
                    .map(|c| format!("u.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            params![id_hash, now],
            user_from_row,
        )
        .optional()?)
    }

    fn delete_session(&self, id_hash: &str) -> Result<()> {
        self.conn()?
            .execute("DELETE FROM sessions WHERE id_hash = ?1", [id_hash])?;
        Ok(())
    }

    fn delete_sessions_of(&self, email: &str) -> Result<()> {
        self.conn()?
            .execute("DELETE FROM sessions WHERE email = ?1", [email])?;
        Ok(())
    }

    fn audit(
        &self,
        now: i64,
        actor: Option<&str>,
        action: &str,
        target: Option<&str>,
        detail: Option<&str>,
    ) -> Result<()> {
        self.conn()?.execute(
            "INSERT INTO audit (ts, actor, action, target, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![now, actor, action, target, detail],
        )?;
        Ok(())
    }

    /// A page of the audit log, newest first, and the total number of entries.
    fn audit_page(&self, offset: i64, limit: i64) -> Result<(Vec<AuditEntry>, i64)> {
        let c = self.conn()?;
        let total: i64 = c.query_row("SELECT count(*) FROM audit", [], |r| r.get(0))?;
        let mut st = c.prepare(
            "SELECT id, ts, actor, action, target, detail FROM audit ORDER BY id DESC LIMIT ?1 OFFSET ?2",
        )?;
        let rows = st.query_map([limit, offset], |r| {
            Ok(AuditEntry {
                id: r.get(0)?,
                ts: r.get(1)?,
                actor: r.get(2)?,
                action: r.get(3)?,
                target: r.get(4)?,
                detail: r.get(5)?,
            })
        })?;
        Ok((rows.collect::<rusqlite::Result<_>>()?, total))
    }

    fn put_pending(
        &self,
        key_hash: &str,
        data: &str,
        now: i64,
        expires: i64,
        cap: usize,
    ) -> Result<()> {
        let mut c = self.conn()?;
        let tx = c.transaction()?;
        tx.execute("DELETE FROM pending_logins WHERE expires <= ?1", [now])?;
        let count: i64 = tx.query_row("SELECT count(*) FROM pending_logins", [], |r| r.get(0))?;
        let over = count + 1 - cap as i64;
        if over > 0 {
            // Under a flood of started sign-ins, the oldest attempts give way.
            tx.execute(
                "DELETE FROM pending_logins WHERE key_hash IN
                 (SELECT key_hash FROM pending_logins ORDER BY created, rowid LIMIT ?1)",
                [over],
            )?;
        }
        tx.execute(
            "INSERT OR REPLACE INTO pending_logins (key_hash, data, created, expires)
             VALUES (?1, ?2, ?3, ?4)",
            params![key_hash, data, now, expires],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn take_pending(&self, key_hash: &str, now: i64) -> Result<Option<String>> {
        let c = self.conn()?;
        Ok(c.query_row(
            "DELETE FROM pending_logins WHERE key_hash = ?1 RETURNING data, expires",
            [key_hash],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)),
        )
        .optional()?
        .filter(|(_, expires)| *expires > now)
        .map(|(data, _)| data))
    }

    fn mark_used(&self, token_hash: &str, now: i64, expires: i64) -> Result<bool> {
        let mut c = self.conn()?;
        let tx = c.transaction()?;
        tx.execute("DELETE FROM used_tokens WHERE expires < ?1", [now])?;
        let n = tx.execute(
            "INSERT INTO used_tokens (token_hash, expires) VALUES (?1, ?2)
             ON CONFLICT(token_hash) DO NOTHING",
            params![token_hash, expires],
        )?;
        tx.commit()?;
        Ok(n == 1)
    }
}
