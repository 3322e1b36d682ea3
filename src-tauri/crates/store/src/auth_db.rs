//! The sign-in state on SQLite (tables of `migrations/0003_auth.sql`, `0005_auth_state.sql`,
//! `0006_account_binding_audit_bounds.sql`, `0007_session_activity.sql` and `0010_api_tokens.sql`):
//! users, sessions, audit, started sign-ins, exchanged tokens and API tokens. A connection of its own on the
//! same file as the samples, so sign-in never waits on history reads.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;

use dsmon_core::{Identity, Role};

use crate::{AuthStore, PendingCaps, PendingPut, StoreError, AUDIT_COLLAPSE_SECS};

/// A user as stored: an address, the provider account it is bound to, what the provider said at
/// the last sign-in, and what an Admin set.
#[derive(Debug, Clone)]
pub struct UserRecord {
    pub email: String,
    /// The provider of the bound account; `None`: not bound yet (a row from before accounts were
    /// bound, bound when dsmon starts or at the next sign-in).
    pub issuer: Option<String>,
    /// The bound account's subject id at `issuer`.
    pub sub: String,
    pub name: Option<String>,
    pub hd: Option<String>,
    /// Set by an Admin; `None`: from the configuration.
    pub role: Option<Role>,
    pub blocked: bool,
    pub first_seen: i64,
    pub last_sign_in: Option<i64>,
    /// The last other account that tried to sign in with this address (refused), which an Admin
    /// may re-bind the address to, and when.
    pub other_issuer: Option<String>,
    pub other_sub: Option<String>,
    pub other_at: Option<i64>,
}

/// A sign-in's account checked against the address it signs in with ([`AuthStore::claim_user`]).
#[derive(Debug, Clone)]
pub struct Claim {
    /// The address's record after the claim.
    pub record: UserRecord,
    /// True: the address is bound to this account (it was already, or it is now as the first to
    /// sign in with it). False: it is bound to another account; this one is remembered in the
    /// record's `other_*` for an Admin's re-bind, and nothing else changed.
    pub bound: bool,
    /// Another address bound to the same account that an Admin blocked, if any: a block follows
    /// the account, not only the address.
    pub blocked_as: Option<String>,
}

/// A session as stored ([`AuthStore::session_user`]).
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub user: UserRecord,
    /// When the sign-in that made it happened: the last time the provider confirmed the account.
    pub authenticated: i64,
    /// When it was last used.
    pub last_seen: i64,
    /// Its absolute end.
    pub expires: i64,
}

/// The outcome of [`AuthStore::rebind`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rebind {
    /// Re-bound from the account `from` to the account `to` (subject ids); its sessions ended.
    Done { from: String, to: String },
    /// No such address.
    UnknownUser,
    /// No other account has tried this address since it was bound: nothing to re-bind to.
    NoOtherAccount,
}

/// One audit entry. Repeated refusals from no known actor are one entry seen `count` times, first
/// at `ts` and last at `last_seen`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    pub ts: i64,
    pub actor: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub detail: Option<String>,
    pub count: i64,
    pub last_seen: i64,
}

/// An API token as stored and listed (its secret's hash is never read back).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ApiTokenRecord {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub created: i64,
    /// The Admin who made it.
    pub created_by: String,
    /// `None`: never.
    pub expires: Option<i64>,
    /// Recorded at most once a minute.
    pub last_used: Option<i64>,
    pub revoked: Option<i64>,
}

/// The columns [`api_token_from_row`] reads, in its order.
pub(crate) const API_TOKEN_COLUMNS: &str =
    "id, name, role, created, created_by, expires, last_used, revoked";

/// The stored text of a role, and back.
pub(crate) fn role_of_text(s: &str) -> Option<Role> {
    match s {
        "admin" => Some(Role::Admin),
        "user" => Some(Role::User),
        _ => None,
    }
}

fn api_token_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ApiTokenRecord> {
    let role: String = r.get(2)?;
    Ok(ApiTokenRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        // The table's CHECK allows these two only; anything else would get the lesser role.
        role: role_of_text(&role).unwrap_or(Role::User),
        created: r.get(3)?,
        created_by: r.get(4)?,
        expires: r.get(5)?,
        last_used: r.get(6)?,
        revoked: r.get(7)?,
    })
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
        issuer: r.get(7)?,
        sub: r.get(8)?,
        other_issuer: r.get(9)?,
        other_sub: r.get(10)?,
        other_at: r.get(11)?,
    })
}

const USER_COLUMNS: &str = "email, name, hd, role, blocked, first_seen, last_sign_in, issuer, sub, other_issuer, other_sub, other_at";

fn user_of(c: &Connection, email: &str) -> rusqlite::Result<Option<UserRecord>> {
    c.query_row(
        &format!("SELECT {USER_COLUMNS} FROM users WHERE email = ?1"),
        [email],
        user_from_row,
    )
    .optional()
}

fn audit_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditEntry> {
    let ts: i64 = r.get(1)?;
    Ok(AuditEntry {
        id: r.get(0)?,
        ts,
        actor: r.get(2)?,
        action: r.get(3)?,
        target: r.get(4)?,
        detail: r.get(5)?,
        count: r.get(6)?,
        last_seen: r.get::<_, Option<i64>>(7)?.unwrap_or(ts),
    })
}

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
        Ok(user_of(&*self.conn()?, email)?)
    }

    fn users(&self) -> Result<Vec<UserRecord>> {
        let c = self.conn()?;
        let mut st = c.prepare(&format!(
            "SELECT {USER_COLUMNS} FROM users ORDER BY last_sign_in IS NULL, last_sign_in DESC, email"
        ))?;
        let rows = st.query_map([], user_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn claim_user(&self, id: &Identity, issuer: &str, now: i64) -> Result<Claim> {
        let mut c = self.conn()?;
        // Immediate: two first sign-ins with one address (from two instances) cannot both bind it.
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let bound = match user_of(&tx, &id.email)? {
            None => {
                tx.execute(
                    "INSERT INTO users (email, issuer, sub, name, hd, first_seen)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![id.email, issuer, id.sub, id.name, id.hd, now],
                )?;
                true
            }
            Some(u)
                if u.issuer.is_none()
                    || (u.issuer.as_deref() == Some(issuer) && u.sub == id.sub) =>
            {
                tx.execute(
                    "UPDATE users SET issuer = ?2, sub = ?3, name = ?4, hd = ?5 WHERE email = ?1",
                    params![id.email, issuer, id.sub, id.name, id.hd],
                )?;
                true
            }
            Some(_) => {
                tx.execute(
                    "UPDATE users SET other_issuer = ?2, other_sub = ?3, other_at = ?4 WHERE email = ?1",
                    params![id.email, issuer, id.sub, now],
                )?;
                false
            }
        };
        let blocked_as = if bound {
            tx.query_row(
                "SELECT email FROM users WHERE issuer = ?1 AND sub = ?2 AND email != ?3 AND blocked
                 ORDER BY email LIMIT 1",
                params![issuer, id.sub, id.email],
                |r| r.get(0),
            )
            .optional()?
        } else {
            None
        };
        let record = tx.query_row(
            &format!("SELECT {USER_COLUMNS} FROM users WHERE email = ?1"),
            [&id.email],
            user_from_row,
        )?;
        tx.commit()?;
        Ok(Claim {
            record,
            bound,
            blocked_as,
        })
    }

    fn stamp_sign_in(&self, email: &str, now: i64) -> Result<()> {
        self.conn()?.execute(
            "UPDATE users SET last_sign_in = ?2 WHERE email = ?1",
            params![email, now],
        )?;
        Ok(())
    }

    fn rebind(&self, email: &str) -> Result<Rebind> {
        let mut c = self.conn()?;
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let Some(u) = user_of(&tx, email)? else {
            return Ok(Rebind::UnknownUser);
        };
        let (Some(issuer), Some(sub)) = (u.other_issuer, u.other_sub) else {
            return Ok(Rebind::NoOtherAccount);
        };
        tx.execute(
            "UPDATE users SET issuer = ?2, sub = ?3, other_issuer = NULL, other_sub = NULL,
                 other_at = NULL
             WHERE email = ?1",
            params![email, issuer, sub],
        )?;
        tx.execute("DELETE FROM sessions WHERE email = ?1", [email])?;
        tx.commit()?;
        Ok(Rebind::Done {
            from: u.sub,
            to: sub,
        })
    }

    fn bind_unbound(&self, issuer: &str) -> Result<usize> {
        Ok(self.conn()?.execute(
            "UPDATE users SET issuer = ?1 WHERE issuer IS NULL",
            [issuer],
        )?)
    }

    fn set_role(&self, email: &str, role: Option<Role>) -> Result<bool> {
        let mut c = self.conn()?;
        let tx = c.transaction()?;
        let Some(u) = user_of(&tx, email)? else {
            return Ok(false);
        };
        if u.role != role {
            tx.execute(
                "UPDATE users SET role = ?2 WHERE email = ?1",
                params![email, role_text(role)],
            )?;
            tx.execute("DELETE FROM sessions WHERE email = ?1", [email])?;
        }
        tx.commit()?;
        Ok(true)
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
            "INSERT INTO sessions (id_hash, email, created, expires, last_seen)
             VALUES (?1, ?2, ?3, ?4, ?3)",
            params![id_hash, email, now, expires],
        )?;
        Ok(())
    }

    fn session_user(&self, id_hash: &str, now: i64) -> Result<Option<SessionRecord>> {
        let c = self.conn()?;
        Ok(c.query_row(
            &format!(
                "SELECT {}, s.created, s.last_seen, s.expires FROM sessions s
                 JOIN users u ON u.email = s.email
                 WHERE s.id_hash = ?1 AND s.expires > ?2",
                USER_COLUMNS
                    .split(", ")
                    .map(|c| format!("u.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            params![id_hash, now],
            |r| {
                Ok(SessionRecord {
                    user: user_from_row(r)?,
                    authenticated: r.get(12)?,
                    last_seen: r.get(13)?,
                    expires: r.get(14)?,
                })
            },
        )
        .optional()?)
    }

    fn touch_session(&self, id_hash: &str, now: i64) -> Result<()> {
        // At most one write per session per second.
        self.conn()?.execute(
            "UPDATE sessions SET last_seen = ?2 WHERE id_hash = ?1 AND last_seen < ?2",
            params![id_hash, now],
        )?;
        Ok(())
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
    ) -> Result<i64> {
        let c = self.conn()?;
        if actor.is_none() {
            let counted: Option<i64> = c
                .query_row(
                    "UPDATE audit SET count = count + 1, last_ts = ?1
                     WHERE id = (SELECT id FROM audit
                                 WHERE actor IS NULL AND action = ?2 AND ts > ?1 - ?5
                                   AND target IS ?3 AND detail IS ?4
                                 ORDER BY ts DESC, id DESC LIMIT 1)
                     RETURNING count",
                    params![now, action, target, detail, AUDIT_COLLAPSE_SECS],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(n) = counted {
                return Ok(n);
            }
        }
        c.execute(
            "INSERT INTO audit (ts, actor, action, target, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![now, actor, action, target, detail],
        )?;
        Ok(1)
    }

    fn prune_audit(&self, before: i64) -> Result<usize> {
        Ok(self
            .conn()?
            .execute("DELETE FROM audit WHERE ts < ?1", [before])?)
    }

    /// A page of the audit log, newest first, and the total number of entries.
    fn audit_page(&self, offset: i64, limit: i64) -> Result<(Vec<AuditEntry>, i64)> {
        let c = self.conn()?;
        let total: i64 = c.query_row("SELECT count(*) FROM audit", [], |r| r.get(0))?;
        let mut st = c.prepare(
            "SELECT id, ts, actor, action, target, detail, count, last_ts FROM audit
             ORDER BY id DESC LIMIT ?1 OFFSET ?2",
        )?;
        let rows = st.query_map([limit, offset], audit_from_row)?;
        Ok((rows.collect::<rusqlite::Result<_>>()?, total))
    }

    fn put_pending(
        &self,
        key_hash: &str,
        data: &str,
        client: &str,
        now: i64,
        expires: i64,
        caps: PendingCaps,
    ) -> Result<PendingPut> {
        let mut c = self.conn()?;
        let tx = c.transaction()?;
        tx.execute("DELETE FROM pending_logins WHERE expires <= ?1", [now])?;
        let mine: i64 = tx.query_row(
            "SELECT count(*) FROM pending_logins WHERE client = ?1",
            [client],
            |r| r.get(0),
        )?;
        let over = mine + 1 - caps.per_client as i64;
        if over > 0 {
            // A client's own oldest attempts give way to its newest (nobody else's do).
            tx.execute(
                "DELETE FROM pending_logins WHERE key_hash IN
                 (SELECT key_hash FROM pending_logins WHERE client = ?1
                  ORDER BY created, rowid LIMIT ?2)",
                params![client, over],
            )?;
        }
        let total: i64 = tx.query_row("SELECT count(*) FROM pending_logins", [], |r| r.get(0))?;
        if total >= caps.total as i64 {
            // Under a flood of started sign-ins, new ones are refused rather than evicting the
            // ones in progress. The per-client deletions above are kept: they are that client's.
            tx.commit()?;
            return Ok(PendingPut::Full);
        }
        tx.execute(
            "INSERT OR REPLACE INTO pending_logins (key_hash, data, created, expires, client)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![key_hash, data, now, expires, client],
        )?;
        tx.commit()?;
        Ok(PendingPut::Kept)
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

    fn create_api_token(
        &self,
        hash: &str,
        name: &str,
        role: Role,
        created_by: &str,
        now: i64,
        expires: Option<i64>,
    ) -> Result<Option<ApiTokenRecord>> {
        let c = self.conn()?;
        Ok(c.query_row(
            &format!(
                "INSERT INTO api_tokens (name, role, hash, created, created_by, expires)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(name) DO NOTHING
                 RETURNING {API_TOKEN_COLUMNS}"
            ),
            params![name, role.as_str(), hash, now, created_by, expires],
            api_token_from_row,
        )
        .optional()?)
    }

    fn api_tokens(&self) -> Result<Vec<ApiTokenRecord>> {
        let c = self.conn()?;
        let mut st = c.prepare(&format!(
            "SELECT {API_TOKEN_COLUMNS} FROM api_tokens ORDER BY created DESC, id DESC"
        ))?;
        let rows = st.query_map([], api_token_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn api_token(&self, hash: &str, now: i64) -> Result<Option<ApiTokenRecord>> {
        let c = self.conn()?;
        Ok(c.query_row(
            &format!(
                "SELECT {API_TOKEN_COLUMNS} FROM api_tokens
                 WHERE hash = ?1 AND revoked IS NULL AND (expires IS NULL OR expires > ?2)"
            ),
            params![hash, now],
            api_token_from_row,
        )
        .optional()?)
    }

    fn touch_api_token(&self, id: i64, now: i64) -> Result<()> {
        self.conn()?.execute(
            "UPDATE api_tokens SET last_used = ?2
             WHERE id = ?1 AND (last_used IS NULL OR last_used < ?2)",
            params![id, now],
        )?;
        Ok(())
    }

    fn revoke_api_token(&self, id: i64, now: i64) -> Result<Option<ApiTokenRecord>> {
        let c = self.conn()?;
        c.execute(
            "UPDATE api_tokens SET revoked = ?2 WHERE id = ?1 AND revoked IS NULL",
            params![id, now],
        )?;
        Ok(c.query_row(
            &format!("SELECT {API_TOKEN_COLUMNS} FROM api_tokens WHERE id = ?1"),
            [id],
            api_token_from_row,
        )
        .optional()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SqliteStore, MIGRATIONS};

    #[test]
    fn addresses_from_before_0006_are_bound_to_their_last_account() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db.sqlite3");
        {
            // A database of schema 5 with a user and an audit entry.
            let c = Connection::open(&path).expect("open");
            for (name, sql) in &MIGRATIONS[..5] {
                c.execute_batch(sql)
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
            }
            c.execute_batch(
                "PRAGMA user_version = 5;
                 INSERT INTO users (email, sub, first_seen, last_sign_in) VALUES ('a@x.org', 'old', 1, 2);
                 INSERT INTO audit (ts, actor, action) VALUES (3, 'a@x.org', 'sign_in');",
            )
            .expect("rows");
        }
        SqliteStore::open(&path).expect("migrate");
        let s = SqliteAuthStore::open(&path).expect("open");
        let a = s.user("a@x.org").expect("user").expect("a");
        assert_eq!((a.issuer, a.sub.as_str()), (None, "old"), "not bound yet");
        let (page, _) = s.audit_page(0, 5).expect("audit");
        assert_eq!((page[0].count, page[0].last_seen), (1, 3));
        assert_eq!(s.bind_unbound("https://idp.example").expect("bind"), 1);
        assert_eq!(s.bind_unbound("https://idp.example").expect("again"), 0);
        let id = |sub: &str| Identity {
            sub: sub.into(),
            email: "a@x.org".into(),
            email_verified: true,
            name: None,
            hd: None,
            expires_at: 0,
        };
        assert!(
            !s.claim_user(&id("new"), "https://idp.example", 10)
                .expect("claim")
                .bound
        );
        assert!(
            s.claim_user(&id("old"), "https://idp.example", 11)
                .expect("claim")
                .bound
        );
    }
}
