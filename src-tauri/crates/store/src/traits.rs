//! What dsmon needs from a store, as traits: [`SampleStore`] for the logged rows, their roll-ups
//! and the history read from them; [`AuthStore`] for the sign-in state (users, sessions, the audit
//! log, started sign-ins, exchanged tokens). SQLite implements both ([`crate::SqliteStore`],
//! [`crate::SqliteAuthStore`]); a new backend implements them and passes the same conformance suite
//! ([`crate::conformance`]).
//!
//! The methods block: callers on an async runtime run them on its blocking pool.

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};

use dsmon_core::{Identity, Role, Row};

use crate::alert_db::{AlertEventRecord, AlertStateRecord, DeliveryRecord, SilenceRecord};
use crate::auth_db::{ApiTokenRecord, AuditEntry, Claim, Rebind, SessionRecord, UserRecord};
use crate::{Period, Result, RowQuery};

/// The logged rows: one per node per tick, and the roll-up tiers kept up to date with them.
pub trait SampleStore: Send {
    /// Writes rows in one transaction (all or nothing). A (node, ts) already present is left as it
    /// is. Returns how many rows were new; the roll-ups count exactly those.
    fn insert_rows(&mut self, rows: &[Row]) -> Result<usize>;

    /// Names of the nodes that already have a row at `ts`.
    fn nodes_logged_at(&self, ts: i64) -> Result<HashSet<String>>;

    /// Every node that has ever been logged, by name.
    fn node_names(&self) -> Result<Vec<String>>;

    /// The newest tick logged for any node.
    fn latest_ts(&self) -> Result<Option<i64>>;

    /// Node ids by name (names not in the store are left out).
    fn node_ids(&self, names: &[String]) -> Result<Vec<(String, i64)>>;

    /// Calls `f` for each row matching `q`, in (ts, node) order, without holding them all in
    /// memory, until `f` breaks.
    fn scan_rows(&self, q: &RowQuery, f: &mut dyn FnMut(Row) -> ControlFlow<()>) -> Result<()>;

    /// The stored periods of the given nodes with `from <= ts < to`, in (node, ts) order, from the
    /// raw rows (`rollup = None`, each row a period of one) or a roll-up tier of
    /// [`crate::ROLLUPS`].
    fn scan_periods(
        &self,
        node_ids: &[i64],
        from: i64,
        to: i64,
        rollup: Option<&str>,
        f: &mut dyn FnMut(i64, &Period),
    ) -> Result<()>;

    /// A health check of the store ("ok" when healthy).
    fn check(&self) -> Result<String>;

    /// Rows logged at one tick, by node name.
    fn rows_at(&self, ts: i64) -> Result<Vec<Row>> {
        let mut out = Vec::new();
        let q = RowQuery {
            from: ts,
            to: ts,
            nodes: vec![],
        };
        self.scan_rows(&q, &mut |r| {
            out.push(r);
            ControlFlow::Continue(())
        })?;
        Ok(out)
    }
}

/// A sample store shared between threads (the logger's writer, the application's reader).
pub type SharedSamples = Arc<Mutex<dyn SampleStore>>;

/// The sign-in state. Methods take `&self`: implementations synchronise inside.
pub trait AuthStore: Send + Sync {
    fn user(&self, email: &str) -> Result<Option<UserRecord>>;

    /// Every user, the most recently signed-in first.
    fn users(&self) -> Result<Vec<UserRecord>>;

    /// Checks a verified identity's account (`issuer`, `id.sub`) against its address, atomically:
    /// a new address is bound to this account (first seen `now`), as is an address not bound yet;
    /// an address bound to this account has its name and `hd` updated. An address bound to
    /// another account is left as it is, except that this account is remembered as the one an
    /// Admin may re-bind it to. Called at every sign-in attempt, also ones refused later, so an
    /// Admin can see and admit who tried.
    fn claim_user(&self, id: &Identity, issuer: &str, now: i64) -> Result<Claim>;

    /// Stamps a successful sign-in.
    fn stamp_sign_in(&self, email: &str, now: i64) -> Result<()>;

    /// Binds `email` to the last other account that tried it (see [`AuthStore::claim_user`]) and
    /// ends the address's sessions.
    fn rebind(&self, email: &str) -> Result<Rebind>;

    /// Binds every address not bound yet (rows from before accounts were bound) to `issuer` and
    /// the `sub` of its last sign-in; returns how many.
    fn bind_unbound(&self, issuer: &str) -> Result<usize>;

    /// Sets (`None`: clears) the role an Admin gave; false when there is no such user. A change of
    /// the role ends the user's sessions (a privilege change gets a new session id, by a new
    /// sign-in); setting the role it already has changes nothing.
    fn set_role(&self, email: &str, role: Option<Role>) -> Result<bool>;

    /// Blocks or unblocks; blocking also ends the user's sessions. False when no such user.
    fn set_blocked(&self, email: &str, blocked: bool) -> Result<bool>;

    /// A new session (by the hash of its id), made by a sign-in at `now` (its user authenticated
    /// then; last used then) and ending at `expires`; expired sessions go at the same time.
    fn create_session(&self, id_hash: &str, email: &str, now: i64, expires: i64) -> Result<()>;

    /// A session not past its `expires`, with its user, when it was made and last used. Whether
    /// it is idle or due for a re-check is the caller's decision.
    fn session_user(&self, id_hash: &str, now: i64) -> Result<Option<SessionRecord>>;

    /// Records that the session was used at `now` (its last use never goes back).
    fn touch_session(&self, id_hash: &str, now: i64) -> Result<()>;

    fn delete_session(&self, id_hash: &str) -> Result<()>;

    fn delete_sessions_of(&self, email: &str) -> Result<()>;

    /// Writes an audit entry; returns how many times it has been seen. An entry without an actor
    /// that repeats the action, target and detail of one first seen less than
    /// [`crate::AUDIT_COLLAPSE_SECS`] ago is counted into that one (its count and last time seen)
    /// instead of being written again, so a loop of anonymous refusals adds no rows.
    fn audit(
        &self,
        now: i64,
        actor: Option<&str>,
        action: &str,
        target: Option<&str>,
        detail: Option<&str>,
    ) -> Result<i64>;

    /// Deletes the audit entries first seen before `before`; returns how many.
    fn prune_audit(&self, before: i64) -> Result<usize>;

    /// A page of the audit log, newest first, and the total number of entries.
    fn audit_page(&self, offset: i64, limit: i64) -> Result<(Vec<AuditEntry>, i64)>;

    /// Keeps a started sign-in (opaque `data`) of `client` (the address the rate limit sees)
    /// under `key_hash` until `expires`. Expired ones go first. Past `caps.per_client` pending for
    /// `client`, that client's own oldest give way; when `caps.total` are pending, the new one is
    /// refused ([`PendingPut::Full`]) and none of the others is touched.
    fn put_pending(
        &self,
        key_hash: &str,
        data: &str,
        client: &str,
        now: i64,
        expires: i64,
        caps: PendingCaps,
    ) -> Result<PendingPut>;

    /// Takes a started sign-in out (single use): its data, or `None` when unknown or expired.
    fn take_pending(&self, key_hash: &str, now: i64) -> Result<Option<String>>;

    /// Marks a token as used until `expires`; false when it was already used (and not expired).
    fn mark_used(&self, token_hash: &str, now: i64, expires: i64) -> Result<bool>;

    /// Stores a new API token under the hash of its secret, made by `created_by` at `now`,
    /// expiring at `expires` (`None`: never). `None` when a token of that name exists (also a
    /// revoked one: names stay unique, so the audit log's names stay unambiguous).
    fn create_api_token(
        &self,
        hash: &str,
        name: &str,
        role: Role,
        created_by: &str,
        now: i64,
        expires: Option<i64>,
    ) -> Result<Option<ApiTokenRecord>>;

    /// Every API token, revoked and expired ones too, the newest first.
    fn api_tokens(&self) -> Result<Vec<ApiTokenRecord>>;

    /// The token whose secret hashes to `hash`, when it is neither revoked nor expired at `now`.
    fn api_token(&self, hash: &str, now: i64) -> Result<Option<ApiTokenRecord>>;

    /// Records a use of the token at `now` (its last use never goes back).
    fn touch_api_token(&self, id: i64, now: i64) -> Result<()>;

    /// Revokes the token at `now` (one already revoked keeps its time); `None` when no such id.
    fn revoke_api_token(&self, id: i64, now: i64) -> Result<Option<ApiTokenRecord>>;
}

/// The alerts' state: every (rule, node) pair's state, the firing history, silences, the
/// delivery log. Methods take `&self`: implementations synchronise inside.
pub trait AlertStore: Send + Sync {
    /// Every stored (rule, node) state.
    fn alert_states(&self) -> Result<Vec<AlertStateRecord>>;

    /// In one transaction: upserts `states`, deletes the (rule, node) pairs in `removed`, and
    /// appends `events` to the history (their `id` is ignored).
    fn save_alerts(
        &self,
        states: &[AlertStateRecord],
        removed: &[(String, String)],
        events: &[AlertEventRecord],
    ) -> Result<()>;

    /// History events with `from <= at <= to` (of the given nodes; empty: all), newest first, at
    /// most `limit`.
    fn alert_events(
        &self,
        from: i64,
        to: i64,
        nodes: &[String],
        limit: usize,
    ) -> Result<Vec<AlertEventRecord>>;

    /// Stores a new silence (its `id` is ignored) and returns it with its id.
    fn put_silence(&self, s: &SilenceRecord) -> Result<SilenceRecord>;

    /// Ends a silence at `now` (one already expired keeps its expiry); `None` when no such id.
    fn expire_silence(&self, id: i64, now: i64) -> Result<Option<SilenceRecord>>;

    /// Silences that expire after `expired_since`: the active ones and the recently expired,
    /// latest expiry first.
    fn silences(&self, expired_since: i64) -> Result<Vec<SilenceRecord>>;

    /// Appends to the delivery log (its `id` is ignored); returns the new id.
    fn record_delivery(&self, d: &DeliveryRecord) -> Result<i64>;

    /// The newest `limit` deliveries, newest first.
    fn deliveries(&self, limit: usize) -> Result<Vec<DeliveryRecord>>;

    /// Deletes history events, deliveries and silences older than `before`; returns how many.
    fn prune_alerts(&self, before: i64) -> Result<usize>;
}

impl dyn SampleStore + '_ {
    /// [`SampleStore::scan_rows`] with a callback that may fail: the scan stops at the first
    /// error, which is handed back.
    pub fn for_each_row<E: From<crate::StoreError>>(
        &self,
        q: &RowQuery,
        mut f: impl FnMut(Row) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let mut failed = None;
        self.scan_rows(q, &mut |row| match f(row) {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                failed = Some(e);
                ControlFlow::Break(())
            }
        })?;
        failed.map_or(Ok(()), Err)
    }
}

/// How many sign-ins may be pending at once: per client, and in total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingCaps {
    pub per_client: usize,
    pub total: usize,
}

/// What [`AuthStore::put_pending`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PendingPut {
    Kept,
    /// `total` sign-ins are pending: this one was not kept.
    Full,
}
