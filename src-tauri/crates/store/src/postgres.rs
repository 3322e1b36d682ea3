//! PostgreSQL as the shared store: [`SampleStore`], [`AuthStore`] and [`AlertStore`] on one
//! database that several `dsmon serve` may use at once.
//!
//! The client is the synchronous `postgres` crate (the blocking face of `tokio-postgres`): the
//! store traits block and their callers already run them on tokio's blocking pool, so a blocking
//! client fits without a runtime handle threaded through every call. Its binary protocol sends
//! arrays as parameters, which makes a tick's write a handful of set-based statements
//! (`INSERT ... SELECT * FROM unnest($1, $2, ...)`): one round trip per table, never one per row.
//! TLS is rustls (ring) only. Connections come from a small blocking pool ([`PgDatabase`]).
//!
//! The schema comes from the numbered files of `migrations/postgres/`, applied at start under an
//! advisory lock (two instances starting together migrate once); a database whose schema is newer
//! than this dsmon knows is refused and left as it is.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, LazyLock, Mutex};
use std::time::{Duration, Instant};

use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;
use postgres::{Client, Config, GenericClient, NoTls};

use dsmon_core::{Identity, Metrics, Role, Row, METRICS};

use crate::alert_db::{AlertEventRecord, AlertStateRecord, DeliveryRecord, SilenceRecord};
use crate::auth_db::{
    role_of_text, ApiTokenRecord, AuditEntry, Claim, Rebind, SessionRecord, UserRecord,
    API_TOKEN_COLUMNS,
};
use crate::{
    AlertStore, AuthStore, PendingCaps, PendingPut, Period, Result, RowQuery, SampleStore,
    StoreError, AUDIT_COLLAPSE_SECS, ROLLUPS,
};

include!(concat!(env!("OUT_DIR"), "/pg_migrations.rs"));

/// Advisory lock keys (`pg_advisory_xact_lock`): dsmon's own numbers, "dsmon" in ASCII plus one.
const MIGRATE_LOCK: i64 = 0x6473_6d6f_6e01;
const PENDING_LOCK: i64 = 0x6473_6d6f_6e02;

/// How long a caller waits for a free connection of the pool before giving up.
const POOL_WAIT: Duration = Duration::from_secs(10);
/// How long connecting may take (the server unreachable fails within this).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs blocking database work from any thread. The `postgres` client drives each call on a
/// runtime of its own, which tokio refuses on a thread that is running async tasks: on a worker
/// of a multi-threaded runtime the work runs in `block_in_place` (as a SQLite call there simply
/// blocks). Callers are meant to use the blocking pool; this keeps a stray call from an async
/// task from panicking.
fn sync<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// Where and how to reach the database.
#[derive(Clone)]
pub struct PgOptions {
    /// `postgres://user@host[:port]/database[?options]`.
    pub url: String,
    /// The password (read from `[storage] password_file`), if the server asks for one.
    pub password: Option<String>,
    /// PEM file of the certificate authorities the server's certificate must chain to; given, the
    /// connection must be TLS (rustls).
    pub ca_file: Option<PathBuf>,
    /// Connections held at most.
    pub pool_size: usize,
}

impl std::fmt::Debug for PgOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgOptions")
            .field("url", &redact_url(&self.url))
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("ca_file", &self.ca_file)
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

/// The URL without its password (if one was written into it), for logs and messages.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<not a postgres:// URL>".to_string();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    // The query may carry `password=`: it is dropped with its value.
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let kept: Vec<&str> = query
                .split('&')
                .filter(|kv| !kv.to_ascii_lowercase().starts_with("password="))
                .collect();
            if kept.is_empty() {
                path.to_string()
            } else {
                format!("{path}?{}", kept.join("&"))
            }
        }
        None => tail.to_string(),
    };
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// The TLS side of connecting.
#[derive(Clone)]
enum Tls {
    None,
    Rustls(tokio_postgres_rustls::MakeRustlsConnect),
}

/// A blocking pool of connections to one database.
struct Pool {
    config: Config,
    tls: Tls,
    /// The redacted URL, for messages.
    label: String,
    size: usize,
    state: Mutex<PoolState>,
    freed: Condvar,
    /// Bumped when an error says the server may have gone (a restart, a cut connection): every
    /// connection handed out before is dropped when it comes back instead of being reused.
    generation: AtomicU64,
}

struct PoolState {
    /// Idle connections, each with the generation it was handed out in.
    idle: Vec<(Client, u64)>,
    /// Connections handed out or idle.
    open: usize,
}

/// A connection taken from the pool; it goes back when dropped (unless it broke).
struct Conn<'a> {
    client: Option<Client>,
    generation: u64,
    pool: &'a Pool,
}

impl std::ops::Deref for Conn<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.client.as_ref().expect("present until dropped")
    }
}

impl std::ops::DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.client.as_mut().expect("present until dropped")
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        let mut st = match self.pool.state.lock() {
            Ok(st) => st,
            Err(p) => p.into_inner(),
        };
        if client.is_closed() || self.generation != self.pool.generation.load(Ordering::SeqCst) {
            st.open = st.open.saturating_sub(1);
            drop(st);
            self.pool.freed.notify_one();
            // Closing a client blocks on its own runtime.
            sync(|| drop(client));
        } else {
            st.idle.push((client, self.generation));
            drop(st);
            self.pool.freed.notify_one();
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let idle = match self.state.get_mut() {
            Ok(st) => std::mem::take(&mut st.idle),
            Err(p) => std::mem::take(&mut p.into_inner().idle),
        };
        // Closing the clients blocks on their runtimes: not on a thread driving async tasks.
        sync(|| drop(idle));
    }
}

impl Pool {
    fn connect_one(&self) -> Result<Client> {
        let started = Instant::now();
        let client = match &self.tls {
            Tls::None => self.config.connect(NoTls),
            Tls::Rustls(t) => self.config.connect(t.clone()),
        }
        .map_err(|source| StoreError::PgConnect {
            url: self.label.clone(),
            source,
        })?;
        tracing::debug!(url = %self.label, elapsed = ?started.elapsed(), "connected to PostgreSQL");
        Ok(client)
    }

    fn get(&self) -> Result<Conn<'_>> {
        let deadline = Instant::now() + POOL_WAIT;
        let mut st = self.state.lock().map_err(|_| StoreError::Poisoned)?;
        loop {
            let generation = self.generation.load(Ordering::SeqCst);
            if let Some((c, g)) = st.idle.pop() {
                if c.is_closed() || g != generation {
                    st.open = st.open.saturating_sub(1);
                    sync(|| drop(c));
                    continue;
                }
                return Ok(Conn {
                    client: Some(c),
                    generation,
                    pool: self,
                });
            }
            if st.open < self.size {
                st.open += 1;
                drop(st);
                return match self.connect_one() {
                    Ok(c) => Ok(Conn {
                        client: Some(c),
                        generation,
                        pool: self,
                    }),
                    Err(e) => {
                        if let Ok(mut st) = self.state.lock() {
                            st.open = st.open.saturating_sub(1);
                        }
                        self.freed.notify_one();
                        Err(e)
                    }
                };
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(StoreError::PoolTimeout {
                    url: self.label.clone(),
                    size: self.size,
                });
            }
            st = self
                .freed
                .wait_timeout(st, deadline - now)
                .map_err(|_| StoreError::Poisoned)?
                .0;
        }
    }

    fn err(&self) -> impl Fn(postgres::Error) -> StoreError + '_ {
        move |source| {
            let e = StoreError::Pg {
                url: self.label.clone(),
                source,
            };
            if e.is_unavailable() {
                self.generation.fetch_add(1, Ordering::SeqCst);
            }
            e
        }
    }
}

/// A PostgreSQL database brought up to date: hands out the three stores, which share its pool.
#[derive(Clone)]
pub struct PgDatabase {
    pool: Arc<Pool>,
}

impl std::fmt::Debug for PgDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgDatabase")
            .field("url", &self.pool.label)
            .finish()
    }
}

fn tls_config(ca_file: Option<&PathBuf>) -> Result<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
                .map_err(|e| StoreError::PgConfig(format!("{}: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(StoreError::PgConfig(format!(
                    "{}: no PEM certificate in it",
                    path.display()
                )));
            }
            for c in certs {
                roots
                    .add(c)
                    .map_err(|e| StoreError::PgConfig(format!("{}: {e}", path.display())))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for c in found.certs {
                // A system certificate rustls cannot use is skipped, as browsers do.
                let _ = roots.add(c);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::PgConfig(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

impl PgDatabase {
    /// Connects, applies the migrations not applied yet (refusing a newer schema), and keeps up to
    /// `pool_size` connections.
    pub fn connect(opts: &PgOptions) -> Result<Self> {
        sync(|| Self::connect_now(opts))
    }

    fn connect_now(opts: &PgOptions) -> Result<Self> {
        let label = redact_url(&opts.url);
        let mut config = Config::from_str(&opts.url).map_err(|_| {
            StoreError::PgConfig(format!(
                "{label}: not a PostgreSQL URL (postgres://user@host[:port]/database)"
            ))
        })?;
        if let Some(pw) = &opts.password {
            config.password(pw.as_bytes());
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("dsmon");
        }
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(10));
        let tls = match (&opts.ca_file, config.get_ssl_mode()) {
            (Some(ca), _) => {
                config.ssl_mode(postgres::config::SslMode::Require);
                Tls::Rustls(tokio_postgres_rustls::MakeRustlsConnect::new(tls_config(
                    Some(ca),
                )?))
            }
            (None, postgres::config::SslMode::Require) => Tls::Rustls(
                tokio_postgres_rustls::MakeRustlsConnect::new(tls_config(None)?),
            ),
            // Prefer (the default) without a CA file: plain, as on a loopback or a socket.
            (None, _) => {
                config.ssl_mode(postgres::config::SslMode::Disable);
                Tls::None
            }
        };
        let pool = Arc::new(Pool {
            config,
            tls,
            label,
            size: opts.pool_size.max(1),
            state: Mutex::new(PoolState {
                idle: Vec::new(),
                open: 0,
            }),
            freed: Condvar::new(),
            generation: AtomicU64::new(0),
        });
        let db = Self { pool };
        db.migrate()?;
        Ok(db)
    }

    /// The redacted URL.
    pub fn label(&self) -> &str {
        &self.pool.label
    }

    /// The schema version of the database (the number of the last migration applied).
    pub fn schema_version(&self) -> Result<i64> {
        sync(|| self.schema_version_now())
    }

    fn schema_version_now(&self) -> Result<i64> {
        let mut c = self.pool.get()?;
        let row = c
            .query_one(
                "SELECT coalesce(max(version), 0)::int8 FROM dsmon_schema",
                &[],
            )
            .map_err(self.pool.err())?;
        row.try_get(0).map_err(self.pool.err())
    }

    fn migrate(&self) -> Result<()> {
        let pool = &self.pool;
        let mut c = pool.get()?;
        let mut tx = c.transaction().map_err(pool.err())?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK])
            .map_err(pool.err())?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS dsmon_schema (
                 version    integer PRIMARY KEY,
                 name       text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .map_err(pool.err())?;
        let found: i64 = tx
            .query_one(
                "SELECT coalesce(max(version), 0)::int8 FROM dsmon_schema",
                &[],
            )
            .and_then(|r| r.try_get(0))
            .map_err(pool.err())?;
        if found > PG_MIGRATIONS.len() as i64 {
            // Rolled back: the newer database is left exactly as it was.
            return Err(StoreError::PgTooNew {
                url: pool.label.clone(),
                found,
                supported: PG_MIGRATIONS.len(),
            });
        }
        for (i, (name, sql)) in PG_MIGRATIONS.iter().enumerate().skip(found as usize) {
            tracing::info!(url = %pool.label, migration = name, "applying migration");
            tx.batch_execute(sql)
                .map_err(|source| StoreError::PgMigrate {
                    url: pool.label.clone(),
                    name: name.to_string(),
                    source,
                })?;
            tx.execute(
                "INSERT INTO dsmon_schema (version, name) VALUES ($1, $2)",
                &[&(i as i32 + 1), name],
            )
            .map_err(pool.err())?;
        }
        tx.commit().map_err(pool.err())
    }

    /// A sample store on this database.
    pub fn samples(&self) -> PgStore {
        PgStore {
            pool: self.pool.clone(),
            node_ids: HashMap::new(),
        }
    }

    /// The sign-in state on this database.
    pub fn auth(&self) -> PgAuthStore {
        PgAuthStore {
            pool: self.pool.clone(),
        }
    }

    /// The alerts' state on this database.
    pub fn alerts(&self) -> PgAlertStore {
        PgAlertStore {
            pool: self.pool.clone(),
        }
    }
}

// ---- leadership ----------------------------------------------------------------------------

/// The advisory lock key of the instance that logs ticks and sends notifications.
const LEADER_LOCK: i64 = 0x6473_6d6f_6e10;

/// Leadership among the instances on one database: a session-level advisory lock
/// (`pg_try_advisory_lock`) held on a connection of its own, outside the pool. The lock lives as
/// long as that session: when the holder dies (even by kill -9) the server ends the session and
/// another instance's next [`PgLeaderLock::poll`] takes it. Server-side TCP keepalives on the
/// session make a holder whose machine vanished (no FIN/RST) lose it within about 15 s.
pub struct PgLeaderLock {
    pool: Arc<Pool>,
    client: Option<Client>,
    held: bool,
}

impl PgLeaderLock {
    /// Not the leader yet: [`PgLeaderLock::poll`] tries.
    pub fn new(db: &PgDatabase) -> Self {
        Self {
            pool: db.pool.clone(),
            client: None,
            held: false,
        }
    }

    /// Whether this instance is the leader now: checks that a held lock's session is alive, or
    /// tries to take the lock. Errors (the server unreachable) count as not leading.
    pub fn poll(&mut self) -> bool {
        sync(|| match self.poll_now() {
            Ok(held) => held,
            Err(e) => {
                if self.held {
                    tracing::warn!(error = %e, "leader lock lost");
                } else {
                    tracing::debug!(error = %e, "leader lock not taken");
                }
                self.held = false;
                if let Some(c) = self.client.take() {
                    drop(c);
                }
                false
            }
        })
    }

    fn poll_now(&mut self) -> Result<bool> {
        let err = self.pool.err();
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.held = false;
            let mut c = self.pool.connect_one()?;
            // The server notices a vanished holder by keepalives: idle 5 s, then 3 probes 3 s
            // apart.
            c.batch_execute(
                "SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 3; \
                 SET tcp_keepalives_count = 3; SET application_name = 'dsmon leader lock'",
            )
            .map_err(&err)?;
            self.client = Some(c);
        }
        let Some(c) = self.client.as_mut() else {
            return Ok(false);
        };
        if self.held {
            c.is_valid(Duration::from_secs(3)).map_err(&err)?;
            return Ok(true);
        }
        self.held = c
            .query_one("SELECT pg_try_advisory_lock($1)", &[&LEADER_LOCK])
            .and_then(|r| r.try_get(0))
            .map_err(&err)?;
        Ok(self.held)
    }

    /// Gives the lock up (at a clean stop, so another instance takes over at once).
    pub fn release(&mut self) {
        sync(|| {
            if let Some(mut c) = self.client.take() {
                if self.held {
                    let _ = c.execute("SELECT pg_advisory_unlock($1)", &[&LEADER_LOCK]);
                }
            }
            self.held = false;
        })
    }
}

// ---- copying a SQLite history in (dsmon migrate) ---------------------------------------------

impl PgDatabase {
    /// Runs `f` in one transaction; returns its count.
    fn in_tx(
        &self,
        f: impl FnOnce(&mut postgres::Transaction<'_>) -> std::result::Result<u64, postgres::Error>,
    ) -> Result<usize> {
        sync(|| {
            let mut c = self.pool.get()?;
            let err = self.pool.err();
            let mut tx = c.transaction().map_err(&err)?;
            let n = f(&mut tx).map_err(&err)?;
            tx.commit().map_err(&err)?;
            Ok(n as usize)
        })
    }

    /// Users not there yet (by address); how many were new.
    pub(crate) fn copy_users(&self, users: &[UserRecord]) -> Result<usize> {
        self.in_tx(|tx| {
            let st = tx.prepare(&format!(
                "INSERT INTO users ({USER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                 ON CONFLICT (email) DO NOTHING"
            ))?;
            let mut n = 0;
            for u in users {
                n += tx.execute(
                    &st,
                    &[
                        &u.email,
                        &u.name,
                        &u.hd,
                        &role_text(u.role),
                        &u.blocked,
                        &u.first_seen,
                        &u.last_sign_in,
                        &u.issuer,
                        &u.sub,
                        &u.other_issuer,
                        &u.other_sub,
                        &u.other_at,
                    ],
                )?;
            }
            Ok(n)
        })
    }

    pub(crate) fn copy_sessions(&self, sessions: &[crate::migrate::SessionCopy]) -> Result<usize> {
        self.in_tx(|tx| {
            let st = tx.prepare(
                "INSERT INTO sessions (id_hash, email, created, expires, last_seen) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id_hash) DO NOTHING",
            )?;
            let mut n = 0;
            for (id, email, created, expires, last_seen) in sessions {
                n += tx.execute(&st, &[id, email, created, expires, last_seen])?;
            }
            Ok(n)
        })
    }

    /// API tokens not there yet (by the hash of their secret), with ids of this database.
    pub(crate) fn copy_api_tokens(&self, tokens: &[crate::migrate::ApiTokenCopy]) -> Result<usize> {
        self.in_tx(|tx| {
            let st = tx.prepare(
                "INSERT INTO api_tokens (hash, name, role, created, created_by, expires, last_used, revoked) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
            )?;
            let mut n = 0;
            for t in tokens {
                n += tx.execute(
                    &st,
                    &[
                        &t.hash,
                        &t.name,
                        &t.role,
                        &t.created,
                        &t.created_by,
                        &t.expires,
                        &t.last_used,
                        &t.revoked,
                    ],
                )?;
            }
            Ok(n)
        })
    }

    /// Audit entries, oldest first, unless an identical entry is there.
    pub(crate) fn copy_audit(&self, entries: &[crate::migrate::AuditCopy]) -> Result<usize> {
        self.in_tx(|tx| {
            let st = tx.prepare(
                "INSERT INTO audit (ts, actor, action, target, detail, count, last_ts) \
                 SELECT $1::int8, $2::text, $3::text, $4::text, $5::text, $6::int8, $7::int8 \
                 WHERE NOT EXISTS (SELECT 1 FROM audit WHERE ts = $1 AND action = $3 \
                   AND actor IS NOT DISTINCT FROM $2 AND target IS NOT DISTINCT FROM $4 \
                   AND detail IS NOT DISTINCT FROM $5)",
            )?;
            let mut n = 0;
            for e in entries {
                n += tx.execute(
                    &st,
                    &[
                        &e.ts, &e.actor, &e.action, &e.target, &e.detail, &e.count, &e.last_ts,
                    ],
                )?;
            }
            Ok(n)
        })
    }

    /// The alerts' tables; how many states, events, silences and deliveries were new.
    pub(crate) fn copy_alerts(
        &self,
        states: &[AlertStateRecord],
        events: &[AlertEventRecord],
        silences: &[SilenceRecord],
        deliveries: &[crate::migrate::DeliveryCopy],
    ) -> Result<(usize, usize, usize, usize)> {
        let s = self.in_tx(|tx| {
            let st = tx.prepare(&format!(
                "INSERT INTO alert_state ({STATE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (rule, node) DO NOTHING"
            ))?;
            let mut n = 0;
            for s in states {
                n += tx.execute(
                    &st,
                    &[
                        &s.rule,
                        &s.node,
                        &s.state,
                        &s.since,
                        &s.fired_at,
                        &s.value,
                        &s.last_notified,
                        &s.acked_by,
                        &s.acked_at,
                    ],
                )?;
            }
            Ok(n)
        })?;
        let e = self.in_tx(|tx| {
            let st = tx.prepare(
                "INSERT INTO alert_events (at, rule, node, severity, state, value, threshold, silenced) \
                 SELECT $1::int8, $2::text, $3::text, $4::text, $5::text, $6::float8, $7::float8, $8::bool \
                 WHERE NOT EXISTS (SELECT 1 FROM alert_events WHERE at = $1 AND rule = $2 \
                   AND node = $3 AND state = $5)",
            )?;
            let mut n = 0;
            for e in events {
                n += tx.execute(
                    &st,
                    &[
                        &e.at,
                        &e.rule,
                        &e.node,
                        &e.severity,
                        &e.state,
                        &e.value,
                        &e.threshold,
                        &e.silenced,
                    ],
                )?;
            }
            Ok(n)
        })?;
        let si = self.in_tx(|tx| {
            let st = tx.prepare(
                "INSERT INTO alert_silences (created, created_by, expires, nodes, rule, severity, comment) \
                 SELECT $1::int8, $2::text, $3::int8, $4::text, $5::text, $6::text, $7::text \
                 WHERE NOT EXISTS (SELECT 1 FROM alert_silences WHERE created = $1 AND created_by = $2 \
                   AND comment = $7 AND nodes IS NOT DISTINCT FROM $4 AND rule IS NOT DISTINCT FROM $5 \
                   AND severity IS NOT DISTINCT FROM $6)",
            )?;
            let mut n = 0;
            for s in silences {
                n += tx.execute(
                    &st,
                    &[
                        &s.created,
                        &s.created_by,
                        &s.expires,
                        &s.nodes,
                        &s.rule,
                        &s.severity,
                        &s.comment,
                    ],
                )?;
            }
            Ok(n)
        })?;
        let d = self.in_tx(|tx| {
            let st = tx.prepare(&format!(
                "INSERT INTO alert_deliveries ({}) \
                 SELECT $1::int8, $2::text, $3::text, $4::text, $5::text, $6::text, $7::bool, $8::int8, $9::text \
                 WHERE NOT EXISTS (SELECT 1 FROM alert_deliveries WHERE at = $1 AND notifier = $2 \
                   AND kind = $4 AND rule = $5 AND nodes = $6 AND answer = $9)",
                &DELIVERY_COLUMNS["id, ".len()..]
            ))?;
            let mut n = 0;
            for d in deliveries {
                n += tx.execute(
                    &st,
                    &[
                        &d.at,
                        &d.notifier,
                        &d.kind_of_notifier,
                        &d.kind,
                        &d.rule,
                        &d.nodes,
                        &d.ok,
                        &d.attempts,
                        &d.answer,
                    ],
                )?;
            }
            Ok(n)
        })?;
        Ok((s, e, si, d))
    }
}

// ---- samples -------------------------------------------------------------------------------

/// The logged rows and their roll-ups on PostgreSQL.
pub struct PgStore {
    pool: Arc<Pool>,
    node_ids: HashMap<String, i64>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("url", &self.pool.label)
            .finish()
    }
}

fn metric_list() -> String {
    METRICS.join(", ")
}

/// Parameters per tier of a roll-up upsert: node_id, ts, n_rows, n_ok, then per metric its sum and
/// its max, each an array.
const TIER_PARAMS: usize = 4 + 2 * METRICS.len();

/// The roll-up upsert of one tier as arrays from parameter `$first` on (see [`TIER_PARAMS`]), added
/// to the stored periods; `guard` is a `WHERE` on the periods, or empty.
fn rollup_upsert_sql(table: &str, first: usize, guard: &str) -> String {
    let cols: Vec<String> = METRICS
        .iter()
        .map(|m| format!("{m}_sum, {m}_max"))
        .collect();
    let arrays: Vec<String> = (0..TIER_PARAMS)
        .map(|i| {
            let ty = if i < 4 { "int8" } else { "float8" };
            format!("${}::{ty}[]", first + i)
        })
        .collect();
    let sets: Vec<String> = METRICS
        .iter()
        .map(|m| {
            format!(
                "{m}_sum = CASE WHEN excluded.{m}_sum IS NULL THEN r.{m}_sum \
                 ELSE coalesce(r.{m}_sum, 0) + excluded.{m}_sum END, \
                 {m}_max = greatest(r.{m}_max, excluded.{m}_max)"
            )
        })
        .collect();
    format!(
        "INSERT INTO {table} AS r (node_id, ts, n_rows, n_ok, {}) \
         SELECT * FROM unnest({}) {guard} \
         ON CONFLICT (node_id, ts) DO UPDATE SET n_rows = r.n_rows + excluded.n_rows, \
         n_ok = r.n_ok + excluded.n_ok, {}",
        cols.join(", "),
        arrays.join(", "),
        sets.join(", ")
    )
}

/// Every tier's upsert as one statement's common table expressions, the first tier's arrays from
/// parameter `$first` on.
fn rollup_ctes(first: usize, guard: &str) -> String {
    ROLLUPS
        .iter()
        .enumerate()
        .map(|(k, (table, _))| {
            format!(
                "t{k} AS ({})",
                rollup_upsert_sql(table, first + k * TIER_PARAMS, guard)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// One write in one statement (prepared and run: two round trips, where a statement per table
/// took fourteen): the rows into `samples` (`$1`-`$8`, returning the keys that were new) and, only
/// when every row of the batch was new (`$9` is the batch's length: a tick's steady state), every
/// tier's periods of the batch (from `$10` on). Data-modifying common table expressions all run,
/// whatever the final `SELECT` reads.
static WRITE_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH new AS (INSERT INTO samples (node_id, ts, {}, error) \
         SELECT * FROM unnest($1::int8[], $2::int8[], $3::float8[], $4::float8[], $5::float8[], \
         $6::float8[], $7::float8[], $8::text[]) \
         ON CONFLICT (node_id, ts) DO NOTHING RETURNING node_id, ts), \
         n AS (SELECT count(*) AS n FROM new), {} \
         SELECT node_id, ts FROM new",
        metric_list(),
        rollup_ctes(10, "WHERE (SELECT n FROM n) = $9::int8")
    )
});

/// Every tier's upsert in one statement, for a batch of which only some rows were new.
static ROLLUPS_SQL: LazyLock<String> =
    LazyLock::new(|| format!("WITH {} SELECT 1", rollup_ctes(1, "")));

/// One tier's periods of some rows, as the arrays of its upsert.
struct TierArrays {
    ids: Vec<i64>,
    ts: Vec<i64>,
    n_rows: Vec<i64>,
    n_ok: Vec<i64>,
    /// Per metric its sums, then its maxima.
    stats: Vec<Vec<Option<f64>>>,
}

impl TierArrays {
    fn params(&self) -> impl Iterator<Item = &(dyn ToSql + Sync)> {
        [
            &self.ids as &(dyn ToSql + Sync),
            &self.ts,
            &self.n_rows,
            &self.n_ok,
        ]
        .into_iter()
        .chain(self.stats.iter().map(|s| s as &(dyn ToSql + Sync)))
    }
}

/// Per tier: the rows `which` by (node, period) (a stable sort: the rows of one period are added in
/// the order given, as on SQLite), summed per period.
fn tier_arrays(
    ids: &[i64],
    ts: &[i64],
    values: &[Option<[f64; 5]>],
    which: &[usize],
) -> Vec<TierArrays> {
    let mut keyed: Vec<((i64, i64), usize)> = Vec::with_capacity(which.len());
    let mut periods: Vec<((i64, i64), Period)> = Vec::with_capacity(which.len());
    ROLLUPS
        .iter()
        .map(|(_, secs)| {
            keyed.clear();
            keyed.extend(
                which
                    .iter()
                    .map(|&i| ((ids[i], ts[i].div_euclid(*secs) * secs), i)),
            );
            keyed.sort_by_key(|(key, _)| *key);
            periods.clear();
            for &(key, i) in &keyed {
                match periods.last_mut() {
                    Some((k, d)) if *k == key => d.add_row(values[i]),
                    _ => {
                        let mut d = Period::default();
                        d.add_row(values[i]);
                        periods.push((key, d));
                    }
                }
            }
            let mut stats = Vec::with_capacity(2 * METRICS.len());
            for i in 0..METRICS.len() {
                stats.push(periods.iter().map(|(_, d)| d.sum[i]).collect());
                stats.push(periods.iter().map(|(_, d)| d.max[i]).collect());
            }
            TierArrays {
                ids: periods.iter().map(|((id, _), _)| *id).collect(),
                ts: periods.iter().map(|((_, t), _)| *t).collect(),
                n_rows: periods.iter().map(|(_, d)| d.n_rows).collect(),
                n_ok: periods.iter().map(|(_, d)| d.n_ok).collect(),
                stats,
            }
        })
        .collect()
}

impl PgStore {
    fn write(&mut self, tx: &mut postgres::Transaction<'_>, rows: &[Row]) -> Result<usize> {
        let err = self.pool.err();
        // Nodes not seen yet, in order of first appearance.
        let mut seen = HashSet::new();
        let missing: Vec<&str> = rows
            .iter()
            .map(|r| r.node.as_str())
            .filter(|n| !self.node_ids.contains_key(*n) && seen.insert(*n))
            .collect();
        if !missing.is_empty() {
            tx.execute(
                "INSERT INTO nodes (name) SELECT n FROM unnest($1::text[]) WITH ORDINALITY AS u(n, i) \
                 ORDER BY i ON CONFLICT (name) DO NOTHING",
                &[&missing],
            )
            .map_err(&err)?;
            for r in tx
                .query(
                    "SELECT id, name FROM nodes WHERE name = ANY($1)",
                    &[&missing],
                )
                .map_err(&err)?
            {
                self.node_ids
                    .insert(r.try_get(1).map_err(&err)?, r.try_get(0).map_err(&err)?);
            }
        }
        let ids = rows
            .iter()
            .map(|r| {
                self.node_ids
                    .get(&r.node)
                    .copied()
                    .ok_or_else(|| StoreError::PgConfig(format!("node {:?} has no id", r.node)))
            })
            .collect::<Result<Vec<i64>>>()?;

        // Raw rows, as arrays, and the roll-ups of the whole batch in case every row is new.
        let ts: Vec<i64> = rows.iter().map(|r| r.ts).collect();
        let values: Vec<Option<[f64; 5]>> = rows
            .iter()
            .map(|r| r.metrics.as_ref().map(Metrics::values))
            .collect();
        let columns: Vec<Vec<Option<f64>>> = (0..METRICS.len())
            .map(|i| values.iter().map(|v| v.map(|v| v[i])).collect())
            .collect();
        let errors: Vec<Option<&str>> = rows.iter().map(|r| r.error.as_deref()).collect();
        let all: Vec<usize> = (0..rows.len()).collect();
        let tiers = tier_arrays(&ids, &ts, &values, &all);
        let batch = rows.len() as i64;
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&ids, &ts];
        params.extend(columns.iter().map(|c| c as &(dyn ToSql + Sync)));
        params.push(&errors);
        params.push(&batch);
        params.extend(tiers.iter().flat_map(TierArrays::params));
        let inserted = tx.query(WRITE_SQL.as_str(), &params).map_err(&err)?;
        if inserted.len() == rows.len() {
            // Every row new: its roll-ups are written.
            return Ok(rows.len());
        }

        // Some rows were there already: the roll-ups of the new ones alone. A returned
        // (node_id, ts) is the first row of the batch with that key.
        let mut first: HashMap<(i64, i64), usize> = HashMap::new();
        for i in 0..rows.len() {
            first.entry((ids[i], ts[i])).or_insert(i);
        }
        let mut new = Vec::with_capacity(inserted.len());
        for r in &inserted {
            let key: (i64, i64) = (r.try_get(0).map_err(&err)?, r.try_get(1).map_err(&err)?);
            if let Some(&i) = first.get(&key) {
                new.push(i);
            }
        }
        if new.is_empty() {
            return Ok(0);
        }
        new.sort_unstable();
        let tiers = tier_arrays(&ids, &ts, &values, &new);
        let params: Vec<&(dyn ToSql + Sync)> = tiers.iter().flat_map(TierArrays::params).collect();
        tx.execute(ROLLUPS_SQL.as_str(), &params).map_err(&err)?;
        Ok(new.len())
    }

    fn ids_of(&self, c: &mut Client, names: &[String]) -> Result<Vec<(String, i64)>> {
        let err = self.pool.err();
        let rows = c
            .query("SELECT name, id FROM nodes WHERE name = ANY($1)", &[&names])
            .map_err(&err)?;
        let mut found: HashMap<String, i64> = HashMap::with_capacity(rows.len());
        for r in rows {
            found.insert(r.try_get(0).map_err(&err)?, r.try_get(1).map_err(&err)?);
        }
        // In the order asked.
        Ok(names
            .iter()
            .filter_map(|n| found.get(n).map(|id| (n.clone(), *id)))
            .collect())
    }
}

/// Rows per statement of a large batch (an import): one statement's arrays stay a few MB.
const BATCH_ROWS: usize = 20_000;

impl SampleStore for PgStore {
    fn insert_rows(&mut self, rows: &[Row]) -> Result<usize> {
        sync(|| {
            if rows.is_empty() {
                return Ok(0);
            }
            let pool = self.pool.clone();
            let mut c = pool.get()?;
            let result = (|| {
                let mut tx = c.transaction().map_err(pool.err())?;
                let mut new = 0;
                for chunk in rows.chunks(BATCH_ROWS) {
                    new += self.write(&mut tx, chunk)?;
                }
                tx.commit().map_err(pool.err())?;
                Ok(new)
            })();
            if result.is_err() {
                // Ids handed out inside the rolled-back transaction may not exist.
                self.node_ids.clear();
            }
            result
        })
    }

    fn nodes_logged_at(&self, ts: i64) -> Result<HashSet<String>> {
        sync(|| {
            let mut c = self.pool.get()?;
            let err = self.pool.err();
            c.query(
                "SELECT n.name FROM samples s JOIN nodes n ON n.id = s.node_id WHERE s.ts = $1",
                &[&ts],
            )
            .map_err(&err)?
            .iter()
            .map(|r| r.try_get(0).map_err(&err))
            .collect()
        })
    }

    fn node_names(&self) -> Result<Vec<String>> {
        sync(|| {
            let mut c = self.pool.get()?;
            let err = self.pool.err();
            c.query("SELECT name FROM nodes ORDER BY name COLLATE \"C\"", &[])
                .map_err(&err)?
                .iter()
                .map(|r| r.try_get(0).map_err(&err))
                .collect()
        })
    }

    fn latest_ts(&self) -> Result<Option<i64>> {
        sync(|| {
            let mut c = self.pool.get()?;
            let err = self.pool.err();
            c.query_one("SELECT max(ts) FROM samples", &[])
                .and_then(|r| r.try_get(0))
                .map_err(err)
        })
    }

    fn node_ids(&self, names: &[String]) -> Result<Vec<(String, i64)>> {
        sync(|| {
            let mut c = self.pool.get()?;
            self.ids_of(&mut c, names)
        })
    }

    fn scan_rows(&self, q: &RowQuery, f: &mut dyn FnMut(Row) -> ControlFlow<()>) -> Result<()> {
        sync(|| {
            let mut c = self.pool.get()?;
            let err = self.pool.err();
            let ids: Vec<i64> = self
                .ids_of(&mut c, &q.nodes)?
                .into_iter()
                .map(|(_, id)| id)
                .collect();
            let filter = if q.nodes.is_empty() {
                "cardinality($3::int8[]) >= 0"
            } else {
                "s.node_id = ANY($3)"
            };
            let sql = format!(
            "SELECT s.ts, n.name, s.cpu_pct, s.mem_pct, s.disk_pct, s.net_in_kbps, s.net_out_kbps, s.error \
             FROM samples s JOIN nodes n ON n.id = s.node_id \
             WHERE s.ts BETWEEN $1 AND $2 AND {filter} ORDER BY s.ts, n.name COLLATE \"C\""
        );
            let params: [&(dyn ToSql + Sync); 3] = [&q.from, &q.to, &ids];
            let mut it = c.query_raw(&sql, params).map_err(&err)?;
            while let Some(r) = it.next().map_err(&err)? {
                let mut values = [None; 5];
                for (i, v) in values.iter_mut().enumerate() {
                    *v = r.try_get(2 + i).map_err(&err)?;
                }
                let row = Row {
                    ts: r.try_get(0).map_err(&err)?,
                    node: r.try_get(1).map_err(&err)?,
                    metrics: Metrics::from_options(values),
                    error: r.try_get(7).map_err(&err)?,
                };
                if f(row).is_break() {
                    break;
                }
            }
            Ok(())
        })
    }

    fn scan_periods(
        &self,
        node_ids: &[i64],
        from: i64,
        to: i64,
        rollup: Option<&str>,
        f: &mut dyn FnMut(i64, &Period),
    ) -> Result<()> {
        sync(|| {
            if node_ids.is_empty() {
                return Ok(());
            }
            let sql = match rollup {
            None => format!(
                "SELECT node_id, ts, 1::int8, (cpu_pct IS NOT NULL)::int4::int8, {m}, {m} FROM samples \
                 WHERE node_id = ANY($1) AND ts >= $2 AND ts < $3",
                m = metric_list()
            ),
            Some(t) => {
                if !ROLLUPS.iter().any(|(name, _)| *name == t) {
                    return Err(StoreError::PgConfig(format!("no roll-up tier {t:?}")));
                }
                format!(
                    "SELECT node_id, ts, n_rows, n_ok, {}, {} FROM {t} \
                     WHERE node_id = ANY($1) AND ts >= $2 AND ts < $3",
                    METRICS.map(|m| format!("{m}_sum")).join(", "),
                    METRICS.map(|m| format!("{m}_max")).join(", "),
                )
            }
        };
            let mut c = self.pool.get()?;
            let err = self.pool.err();
            let params: [&(dyn ToSql + Sync); 3] = [&node_ids, &from, &to];
            // Unordered, so the planner may read the table's pages once (a bitmap or sequential
            // scan) rather than every period's page through the index; ordered here by (node, ts),
            // the order SQLite hands them out in (sums of a bucket then add up identically).
            let mut it = c.query_raw(&sql, params).map_err(&err)?;
            let mut periods: Vec<(i64, Period)> = Vec::new();
            while let Some(r) = it.next().map_err(&err)? {
                let mut p = Period {
                    ts: r.try_get(1).map_err(&err)?,
                    n_rows: r.try_get(2).map_err(&err)?,
                    n_ok: r.try_get(3).map_err(&err)?,
                    ..Period::default()
                };
                for i in 0..METRICS.len() {
                    p.sum[i] = r.try_get(4 + i).map_err(&err)?;
                    p.max[i] = r.try_get(4 + METRICS.len() + i).map_err(&err)?;
                }
                periods.push((r.try_get(0).map_err(&err)?, p));
            }
            periods.sort_unstable_by_key(|(node, p)| (*node, p.ts));
            for (node, p) in &periods {
                f(*node, p);
            }
            Ok(())
        })
    }

    fn check(&self) -> Result<String> {
        sync(|| {
            let mut c = self.pool.get()?;
            c.query_one("SELECT 'ok'::text", &[])
                .and_then(|r| r.try_get(0))
                .map_err(self.pool.err())
        })
    }
}

// ---- sign-in state -------------------------------------------------------------------------

/// The sign-in state on PostgreSQL: every instance on the database sees the same users,
/// sessions, started sign-ins and used tokens.
pub struct PgAuthStore {
    pool: Arc<Pool>,
}

const USER_COLUMNS: &str = "email, name, hd, role, blocked, first_seen, last_sign_in, issuer, sub, other_issuer, other_sub, other_at";

fn role_text(r: Option<Role>) -> Option<&'static str> {
    r.map(|r| match r {
        Role::Admin => "admin",
        Role::User => "user",
    })
}

fn user_from_row(r: &postgres::Row) -> std::result::Result<UserRecord, postgres::Error> {
    let role: Option<String> = r.try_get(3)?;
    Ok(UserRecord {
        email: r.try_get(0)?,
        name: r.try_get(1)?,
        hd: r.try_get(2)?,
        role: match role.as_deref() {
            Some("admin") => Some(Role::Admin),
            Some("user") => Some(Role::User),
            _ => None,
        },
        blocked: r.try_get(4)?,
        first_seen: r.try_get(5)?,
        last_sign_in: r.try_get(6)?,
        issuer: r.try_get(7)?,
        sub: r.try_get(8)?,
        other_issuer: r.try_get(9)?,
        other_sub: r.try_get(10)?,
        other_at: r.try_get(11)?,
    })
}

fn user_of(
    c: &mut impl GenericClient,
    email: &str,
    lock: bool,
) -> std::result::Result<Option<UserRecord>, postgres::Error> {
    let sql = format!(
        "SELECT {USER_COLUMNS} FROM users WHERE email = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    c.query_opt(&sql, &[&email])?
        .as_ref()
        .map(user_from_row)
        .transpose()
}

impl AuthStore for PgAuthStore {
    fn user(&self, email: &str) -> Result<Option<UserRecord>> {
        sync(|| {
            let mut c = self.pool.get()?;
            user_of(&mut *c, email, false).map_err(self.pool.err())
        })
    }

    fn users(&self) -> Result<Vec<UserRecord>> {
        sync(|| {
            let mut c = self.pool.get()?;
            let err = self.pool.err();
            c.query(
                &format!(
                    "SELECT {USER_COLUMNS} FROM users \
                 ORDER BY last_sign_in IS NULL, last_sign_in DESC, email COLLATE \"C\""
                ),
                &[],
            )
            .map_err(&err)?
            .iter()
            .map(|r| user_from_row(r).map_err(&err))
            .collect()
        })
    }

    fn claim_user(&self, id: &Identity, issuer: &str, now: i64) -> Result<Claim> {
        sync(|| {
            let mut c = self.pool.get()?;
            let err = self.pool.err();
            let mut tx = c.transaction().map_err(&err)?;
            // A new address is inserted and bound; an existing one is locked for the decision, so
            // two first sign-ins with one address (from two instances) cannot both bind it.
            let inserted = tx
                .execute(
                    "INSERT INTO users (email, issuer, sub, name, hd, first_seen) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (email) DO NOTHING",
                    &[&id.email, &issuer, &id.sub, &id.name, &id.hd, &now],
                )
                .map_err(&err)?
                == 1;
            let bound = if inserted {
                true
            } else {
                let u = user_of(&mut tx, &id.email, true).map_err(&err)?;
                match u {
                    Some(u)
                        if u.issuer.is_none()
                            || (u.issuer.as_deref() == Some(issuer) && u.sub == id.sub) =>
                    {
                        tx.execute(
                        "UPDATE users SET issuer = $2, sub = $3, name = $4, hd = $5 WHERE email = $1",
                        &[&id.email, &issuer, &id.sub, &id.name, &id.hd],
                    )
                    .map_err(&err)?;
                        true
                    }
                    _ => {
                        tx.execute(
                        "UPDATE users SET other_issuer = $2, other_sub = $3, other_at = $4 WHERE email = $1",
                        &[&id.email, &issuer, &id.sub, &now],
                    )
                    .map_err(&err)?;
                        false
                    }
                }
            };
            let blocked_as = if bound {
                tx.query_opt(
                "SELECT email FROM users WHERE issuer = $1 AND sub = $2 AND email <> $3 AND blocked \
                 ORDER BY email COLLATE \"C\" LIMIT 1",
                &[&issuer, &id.sub, &id.email],
            )
            .map_err(&err)?
            .map(|r| r.try_get(0))
            .transpose()
            .map_err(&err)?
            } else {
                None
            };
            let record = user_of(&mut tx, &id.email, false)
                .map_err(&err)?
                .ok_or_else(|| StoreError::PgConfig(format!("{}: user vanished", id.email)))?;
            tx.commit().map_err(&err)?;
            Ok(Claim {
                record,
                bound,
                blocked_as,
            })
        })
    }

    fn stamp_sign_in(&self, email: &str, now: i64) -> Result<()> {
        sync(|| {
            let mut c = self.pool.get()?;
            c.execute(
                "UPDATE users SET last_sign_in = $2 WHERE email = $1",
                &[&email, &now],
            )
            .map_err(self.pool.err())?;
            Ok(())
        })
    }

    fn rebind(&self, email: &str) -> Result<Rebind> {
        sync(|| {
            let mut c = self.pool.get()?;
            let err = self.pool.err();
            let mut tx = c.transaction().map_err(&err)?;
            let Some(u) = user_of(&mut tx, email, true).map_err(&err)? else {
                return Ok(Rebind::UnknownUser);
            };
            let (Some(issuer), Some(sub)) = (u.other_issuer, u.other_sub) else {
                return Ok(Rebind::NoOtherAccount);
            };
            tx.execute(
                "UPDATE users SET issuer = $2, sub = $3, other_issuer = NULL, other_sub = NULL, \
             other_at = NULL WHERE email = $1",
                &[&email, &issuer, &sub],
            )
            .map_err(&err)?;
            tx.execute("DELETE FROM sessions WHERE email = $1", &[&email])
                .map_err(&err)?;
            tx.commit().map_err(&err)?;
            Ok(Rebind::Done {
                from: u.sub,
                to: sub,
            })
        })
    }

    fn bind_unbound(&self, issuer: &str) -> Result<usize> {
        sync(|| {
            let mut c = self.pool.get()?;
            let n = c
                .execute(
                    "UPDATE users SET issuer = $1 WHERE issuer IS NULL",
                    &[&issuer],
                )
                .map_err(self.pool.err())?;
            Ok(n as usize)
        })
    }

    fn set_role(&self, email: &str, role: Option<Role>) -> Result<bool> {
        sync(|| {
            let mut c = self.pool.get()?;
            let err = self.pool.err();
            let mut tx = c.transaction().map_err(&err)?;
            let Some(u) = user_of(&mut tx, email, true).map_err(&err)? else {
                return Ok(false);
            };
            if u.role != role {
                tx.execute(
                    "UPDATE users SET role = $2 WHERE email = $1",
                    &[&email, &role_text(role)],
                )
                .map_err(&err)?;
                tx.execute("DELETE FROM sessions WHERE email = $1", &[&email])
                    .map_err(&err)?;
            }
            tx.commit().map_err(&err)?;
            Ok(true)
        })
    }

    fn set_blocked(&self, email: &str, blocked: bool) -> Result<bool> {
        sync(|| {
            let mut c = self.pool.get()?;
            let err = self.pool.err();
            let mut tx = c.transaction().map_err(&err)?;
            let n = tx
                .execute(
                    "UPDATE users SET blocked = $2 WHERE email = $1",
                    &[&email, &blocked],
                )
                .map_err(&err)?;
            if blocked {
                tx.execute("DELETE FROM sessions WHERE email = $1", &[&email])
                    .map_err(&err)?;
            }
            tx.commit().map_err(&err)?;
            Ok(n == 1)
        })
    }

    fn create_session(&self, id_hash: &str, email: &str, now: i64, expires: i64) -> Result<()> {
        sync(|| {
            let mut c = self.pool.get()?;
            let err = self.pool.err();
            c.execute("DELETE FROM sessions WHERE expires <= $1", &[&now])
                .map_err(&err)?;
            c.execute(
                "INSERT INTO sessions (id_hash, email, created, expires, last_seen) \
             VALUES ($1, $2, $3, $4, $3)",
                &[&id_hash, &email, &now, &expires],
            )
            .map_err(&err)?;
            Ok(())
        })
    }

    fn session_user(&self, id_hash: &str, now: i64) -> Result<Option<SessionRecord>> {
        sync(|| {
            let mut c = self.pool.get()?;
            let err = self.pool.err();
            let cols = USER_COLUMNS
                .split(", ")
                .map(|c| format!("u.{c}"))
                .collect::<Vec<_>>()
                .join(", ");
            let row = c
                .query_opt(
                    &format!(
                        "SELECT {cols}, s.created, s.last_seen, s.expires FROM sessions s \
                     JOIN users u ON u.email = s.email WHERE s.id_hash = $1 AND s.expires > $2"
                    ),
                    &[&id_hash, &now],
                )
                .map_err(&err)?;
            row.map(|r| {
                Ok(SessionRecord {
                    user: user_from_row(&r)?,
                    authenticated: r.try_get(12)?,
                    last_seen: r.try_get(13)?,
                    expires: r.try_get(14)?,
                })
            })
            .transpose()
            .map_err(&err)
        })
    }

    fn touch_session(&self, id_hash: &str, now: i64) -> Result<()> {
        sync(|| {
            let mut c = self.pool.get()?;
            c.execute(
                "UPDATE sessions SET last_seen = $2 WHERE id_hash = $1 AND last_seen < $2",
                &[&id_hash, &now],
            )
            .map_err(self.pool.err())?;
            Ok(())
        })
    }

    fn delete_session(&self, id_hash: &str) -> Result<()> {
        sync(|| {
            let mut c = self.pool.get()?;
            c.execute("DELETE FROM sessions WHERE id_hash = $1", &[&id_hash])
                .map_err(self.pool.err())?;
            Ok(())
        })
    }

    fn delete_sessions_of(&self, email: &str) -> Result<()> {
        sync(|| {
            let mut c = self.pool.get()?;
            c.execute("DELETE FROM sessions WHERE email = $1", &[&email])
                .map_err(self.pool.err())?;
            Ok(())
        })
    }

    fn audit(
        &self,
        now: i64,
        actor: Option<&str>,
        action: &str,
        target: Option<&str>,
        detail: Option<&str>,
    ) -> Result<i64> {
        sync(|| {
            let mut c = self.pool.get()?;
            let err = self.pool.err();
            if actor.is_none() {
                let counted = c
                    .query_opt(
                        "UPDATE audit SET count = count + 1, last_ts = $1::int8 \
                     WHERE id = (SELECT id FROM audit \
                                 WHERE actor IS NULL AND action = $2 AND ts > $1::int8 - $5::int8 \
                                   AND target IS NOT DISTINCT FROM $3::text \
                                   AND detail IS NOT DISTINCT FROM $4::text \
                                 ORDER BY ts DESC, id DESC LIMIT 1) \
                     RETURNING count",
                        &[&now, &action, &target, &detail, &AUDIT_COLLAPSE_SECS],
                    )
                    .map_err(&err)?;
                if let Some(r) = counted {
                    return r.try_get(0).map_err(&err);
                }
            }
            c.execute(
                "INSERT INTO audit (ts, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5)",
                &[&now, &actor, &action, &target, &detail],
            )
            .map_err(&err)?;
            Ok(1)
        })
    }

    fn prune_audit(&self, before: i64) -> Result<usize> {
        sync(|| {
            let mut c = self.pool.get()?;
            let n = c
                .execute("DELETE FROM audit WHERE ts < $1", &[&before])
                .map_err(self.pool.err())?;
            Ok(n as usize)
        })
    }

    fn audit_page(&self, offset: i64, limit: i64) -> Result<(Vec<AuditEntry>, i64)> {
        sync(|| {
            let mut c = self.pool.get()?;
            let err = self.pool.err();
            let total: i64 = c
                .query_one("SELECT count(*) FROM audit", &[])
                .and_then(|r| r.try_get(0))
                .map_err(&err)?;
            let rows = c
                .query(
                    "SELECT id, ts, actor, action, target, detail, count, last_ts FROM audit \
                 ORDER BY id DESC LIMIT $1 OFFSET $2",
                    &[&limit.max(0), &offset.max(0)],
                )
                .map_err(&err)?;
            let page = rows
                .iter()
                .map(|r| {
                    let ts: i64 = r.try_get(1)?;
                    Ok(AuditEntry {
                        id: r.try_get(0)?,
                        ts,
                        actor: r.try_get(2)?,
                        action: r.try_get(3)?,
                        target: r.try_get(4)?,
                        detail: r.try_get(5)?,
                        count: r.try_get(6)?,
                        last_seen: r.try_get::<_, Option<i64>>(7)?.unwrap_or(ts),
                    })
                })
                .collect::<std::result::Result<Vec<_>, postgres::Error>>()
                .map_err(&err)?;
            Ok((page, total))
        })
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
        sync(|| {
            let mut c = self.pool.get()?;
            let err = self.pool.err();
            let mut tx = c.transaction().map_err(&err)?;
            // One at a time across instances: the caps count every pending sign-in.
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PENDING_LOCK])
                .map_err(&err)?;
            tx.execute("DELETE FROM pending_logins WHERE expires <= $1", &[&now])
                .map_err(&err)?;
            // Replaced, as SQLite's INSERT OR REPLACE does (it then counts as the newest).
            tx.execute(
                "DELETE FROM pending_logins WHERE key_hash = $1",
                &[&key_hash],
            )
            .map_err(&err)?;
            let mine: i64 = tx
                .query_one(
                    "SELECT count(*) FROM pending_logins WHERE client = $1",
                    &[&client],
                )
                .and_then(|r| r.try_get(0))
                .map_err(&err)?;
            let over = mine + 1 - caps.per_client as i64;
            if over > 0 {
                tx.execute(
                    "DELETE FROM pending_logins WHERE key_hash IN \
                 (SELECT key_hash FROM pending_logins WHERE client = $1 \
                  ORDER BY created, seq LIMIT $2)",
                    &[&client, &over],
                )
                .map_err(&err)?;
            }
            let total: i64 = tx
                .query_one("SELECT count(*) FROM pending_logins", &[])
                .and_then(|r| r.try_get(0))
                .map_err(&err)?;
            if total >= caps.total as i64 {
                tx.commit().map_err(&err)?;
                return Ok(PendingPut::Full);
            }
            tx.execute(
                "INSERT INTO pending_logins (key_hash, data, created, expires, client) \
             VALUES ($1, $2, $3, $4, $5)",
                &[&key_hash, &data, &now, &expires, &client],
            )
            .map_err(&err)?;
            tx.commit().map_err(&err)?;
            Ok(PendingPut::Kept)
        })
    }

    fn take_pending(&self, key_hash: &str, now: i64) -> Result<Option<String>> {
        sync(|| {
            let mut c = self.pool.get()?;
            let err = self.pool.err();
            let row = c
                .query_opt(
                    "DELETE FROM pending_logins WHERE key_hash = $1 RETURNING data, expires",
                    &[&key_hash],
                )
                .map_err(&err)?;
            let Some(r) = row else { return Ok(None) };
            let data: String = r.try_get(0).map_err(&err)?;
            let exp: i64 = r.try_get(1).map_err(&err)?;
            Ok((exp > now).then_some(data))
        })
    }

    fn mark_used(&self, token_hash: &str, now: i64, expires: i64) -> Result<bool> {
        sync(|| {
            let mut c = self.pool.get()?;
            let err = self.pool.err();
            let mut tx = c.transaction().map_err(&err)?;
            tx.execute("DELETE FROM used_tokens WHERE expires < $1", &[&now])
                .map_err(&err)?;
            let n = tx
                .execute(
                    "INSERT INTO used_tokens (token_hash, expires) VALUES ($1, $2) \
                 ON CONFLICT (token_hash) DO NOTHING",
                    &[&token_hash, &expires],
                )
                .map_err(&err)?;
            tx.commit().map_err(&err)?;
            Ok(n == 1)
        })
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
        sync(|| {
            let mut c = self.pool.get()?;
            let err = self.pool.err();
            c.query_opt(
                &format!(
                    "INSERT INTO api_tokens (name, role, hash, created, created_by, expires) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING \
                     RETURNING {API_TOKEN_COLUMNS}"
                ),
                &[&name, &role.as_str(), &hash, &now, &created_by, &expires],
            )
            .map_err(&err)?
            .as_ref()
            .map(api_token_from_row)
            .transpose()
            .map_err(&err)
        })
    }

    fn api_tokens(&self) -> Result<Vec<ApiTokenRecord>> {
        sync(|| {
            let mut c = self.pool.get()?;
            let err = self.pool.err();
            c.query(
                &format!(
                    "SELECT {API_TOKEN_COLUMNS} FROM api_tokens ORDER BY created DESC, id DESC"
                ),
                &[],
            )
            .map_err(&err)?
            .iter()
            .map(api_token_from_row)
            .collect::<std::result::Result<_, _>>()
            .map_err(&err)
        })
    }

    fn api_token(&self, hash: &str, now: i64) -> Result<Option<ApiTokenRecord>> {
        sync(|| {
            let mut c = self.pool.get()?;
            let err = self.pool.err();
            c.query_opt(
                &format!(
                    "SELECT {API_TOKEN_COLUMNS} FROM api_tokens \
                     WHERE hash = $1 AND revoked IS NULL AND (expires IS NULL OR expires > $2)"
                ),
                &[&hash, &now],
            )
            .map_err(&err)?
            .as_ref()
            .map(api_token_from_row)
            .transpose()
            .map_err(&err)
        })
    }

    fn touch_api_token(&self, id: i64, now: i64) -> Result<()> {
        sync(|| {
            let mut c = self.pool.get()?;
            c.execute(
                "UPDATE api_tokens SET last_used = $2 \
                 WHERE id = $1 AND (last_used IS NULL OR last_used < $2)",
                &[&id, &now],
            )
            .map_err(self.pool.err())?;
            Ok(())
        })
    }

    fn revoke_api_token(&self, id: i64, now: i64) -> Result<Option<ApiTokenRecord>> {
        sync(|| {
            let mut c = self.pool.get()?;
            let err = self.pool.err();
            c.execute(
                "UPDATE api_tokens SET revoked = $2 WHERE id = $1 AND revoked IS NULL",
                &[&id, &now],
            )
            .map_err(&err)?;
            c.query_opt(
                &format!("SELECT {API_TOKEN_COLUMNS} FROM api_tokens WHERE id = $1"),
                &[&id],
            )
            .map_err(&err)?
            .as_ref()
            .map(api_token_from_row)
            .transpose()
            .map_err(&err)
        })
    }
}

fn api_token_from_row(r: &postgres::Row) -> std::result::Result<ApiTokenRecord, postgres::Error> {
    let role: String = r.try_get(2)?;
    Ok(ApiTokenRecord {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        // The table's CHECK allows these two only; anything else would get the lesser role.
        role: role_of_text(&role).unwrap_or(Role::User),
        created: r.try_get(3)?,
        created_by: r.try_get(4)?,
        expires: r.try_get(5)?,
        last_used: r.try_get(6)?,
        revoked: r.try_get(7)?,
    })
}

// ---- alerts --------------------------------------------------------------------------------

/// The alerts' state on PostgreSQL.
pub struct PgAlertStore {
    pool: Arc<Pool>,
}

const STATE_COLUMNS: &str =
    "rule, node, state, since, fired_at, value, last_notified, acked_by, acked_at";
const EVENT_COLUMNS: &str = "id, at, rule, node, severity, state, value, threshold, silenced";
const SILENCE_COLUMNS: &str = "id, created, created_by, expires, nodes, rule, severity, comment";
const DELIVERY_COLUMNS: &str = "id, at, notifier, type, kind, rule, nodes, ok, attempts, answer";

fn silence_from_row(r: &postgres::Row) -> std::result::Result<SilenceRecord, postgres::Error> {
    Ok(SilenceRecord {
        id: r.try_get(0)?,
        created: r.try_get(1)?,
        created_by: r.try_get(2)?,
        expires: r.try_get(3)?,
        nodes: r.try_get(4)?,
        rule: r.try_get(5)?,
        severity: r.try_get(6)?,
        comment: r.try_get(7)?,
    })
}

impl AlertStore for PgAlertStore {
    fn alert_states(&self) -> Result<Vec<AlertStateRecord>> {
        sync(|| {
            let mut c = self.pool.get()?;
            let err = self.pool.err();
            c.query(
                &format!(
                    "SELECT {STATE_COLUMNS} FROM alert_state \
                 ORDER BY rule COLLATE \"C\", node COLLATE \"C\""
                ),
                &[],
            )
            .map_err(&err)?
            .iter()
            .map(|r| {
                Ok(AlertStateRecord {
                    rule: r.try_get(0)?,
                    node: r.try_get(1)?,
                    state: r.try_get(2)?,
                    since: r.try_get(3)?,
                    fired_at: r.try_get(4)?,
                    value: r.try_get(5)?,
                    last_notified: r.try_get(6)?,
                    acked_by: r.try_get(7)?,
                    acked_at: r.try_get(8)?,
                })
            })
            .collect::<std::result::Result<_, postgres::Error>>()
            .map_err(&err)
        })
    }

    fn save_alerts(
        &self,
        states: &[AlertStateRecord],
        removed: &[(String, String)],
        events: &[AlertEventRecord],
    ) -> Result<()> {
        sync(|| {
            let mut c = self.pool.get()?;
            let err = self.pool.err();
            let mut tx = c.transaction().map_err(&err)?;
            if !states.is_empty() {
                let put = tx
                .prepare(&format!(
                    "INSERT INTO alert_state ({STATE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                     ON CONFLICT (rule, node) DO UPDATE SET state = $3, since = $4, fired_at = $5, \
                     value = $6, last_notified = $7, acked_by = $8, acked_at = $9"
                ))
                .map_err(&err)?;
                for s in states {
                    tx.execute(
                        &put,
                        &[
                            &s.rule,
                            &s.node,
                            &s.state,
                            &s.since,
                            &s.fired_at,
                            &s.value,
                            &s.last_notified,
                            &s.acked_by,
                            &s.acked_at,
                        ],
                    )
                    .map_err(&err)?;
                }
            }
            if !removed.is_empty() {
                let del = tx
                    .prepare("DELETE FROM alert_state WHERE rule = $1 AND node = $2")
                    .map_err(&err)?;
                for (rule, node) in removed {
                    tx.execute(&del, &[rule, node]).map_err(&err)?;
                }
            }
            if !events.is_empty() {
                let ev = tx
                .prepare(
                    "INSERT INTO alert_events (at, rule, node, severity, state, value, threshold, silenced) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .map_err(&err)?;
                for e in events {
                    tx.execute(
                        &ev,
                        &[
                            &e.at,
                            &e.rule,
                            &e.node,
                            &e.severity,
                            &e.state,
                            &e.value,
                            &e.threshold,
                            &e.silenced,
                        ],
                    )
                    .map_err(&err)?;
                }
            }
            tx.commit().map_err(&err)
        })
    }

    fn alert_events(
        &self,
        from: i64,
        to: i64,
        nodes: &[String],
        limit: usize,
    ) -> Result<Vec<AlertEventRecord>> {
        sync(|| {
            let mut c = self.pool.get()?;
            let err = self.pool.err();
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            c.query(
                &format!(
                    "SELECT {EVENT_COLUMNS} FROM alert_events WHERE at >= $1 AND at <= $2 \
                 AND (cardinality($3::text[]) = 0 OR node = ANY($3)) \
                 ORDER BY at DESC, id DESC LIMIT $4"
                ),
                &[&from, &to, &nodes, &limit],
            )
            .map_err(&err)?
            .iter()
            .map(|r| {
                Ok(AlertEventRecord {
                    id: r.try_get(0)?,
                    at: r.try_get(1)?,
                    rule: r.try_get(2)?,
                    node: r.try_get(3)?,
                    severity: r.try_get(4)?,
                    state: r.try_get(5)?,
                    value: r.try_get(6)?,
                    threshold: r.try_get(7)?,
                    silenced: r.try_get(8)?,
                })
            })
            .collect::<std::result::Result<_, postgres::Error>>()
            .map_err(&err)
        })
    }

    fn put_silence(&self, s: &SilenceRecord) -> Result<SilenceRecord> {
        sync(|| {
            let mut c = self.pool.get()?;
            let err = self.pool.err();
            let id: i64 = c
            .query_one(
                "INSERT INTO alert_silences (created, created_by, expires, nodes, rule, severity, comment) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                &[
                    &s.created,
                    &s.created_by,
                    &s.expires,
                    &s.nodes,
                    &s.rule,
                    &s.severity,
                    &s.comment,
                ],
            )
            .and_then(|r| r.try_get(0))
            .map_err(&err)?;
            Ok(SilenceRecord { id, ..s.clone() })
        })
    }

    fn expire_silence(&self, id: i64, now: i64) -> Result<Option<SilenceRecord>> {
        sync(|| {
            let mut c = self.pool.get()?;
            let err = self.pool.err();
            c.execute(
                "UPDATE alert_silences SET expires = $2 WHERE id = $1 AND expires > $2",
                &[&id, &now],
            )
            .map_err(&err)?;
            c.query_opt(
                &format!("SELECT {SILENCE_COLUMNS} FROM alert_silences WHERE id = $1"),
                &[&id],
            )
            .map_err(&err)?
            .as_ref()
            .map(silence_from_row)
            .transpose()
            .map_err(&err)
        })
    }

    fn silences(&self, expired_since: i64) -> Result<Vec<SilenceRecord>> {
        sync(|| {
            let mut c = self.pool.get()?;
            let err = self.pool.err();
            c.query(
                &format!(
                    "SELECT {SILENCE_COLUMNS} FROM alert_silences WHERE expires > $1 \
                 ORDER BY expires DESC, id DESC"
                ),
                &[&expired_since],
            )
            .map_err(&err)?
            .iter()
            .map(silence_from_row)
            .collect::<std::result::Result<_, _>>()
            .map_err(&err)
        })
    }

    fn record_delivery(&self, d: &DeliveryRecord) -> Result<i64> {
        sync(|| {
            let mut c = self.pool.get()?;
            let err = self.pool.err();
            c.query_one(
            &format!(
                "INSERT INTO alert_deliveries ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
                &DELIVERY_COLUMNS["id, ".len()..]
            ),
            &[
                &d.at,
                &d.notifier,
                &d.kind_of_notifier,
                &d.kind,
                &d.rule,
                &d.nodes.join(","),
                &d.ok,
                &i64::from(d.attempts),
                &d.answer,
            ],
        )
        .and_then(|r| r.try_get(0))
        .map_err(&err)
        })
    }

    fn deliveries(&self, limit: usize) -> Result<Vec<DeliveryRecord>> {
        sync(|| {
            let mut c = self.pool.get()?;
            let err = self.pool.err();
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            c.query(
                &format!(
                "SELECT {DELIVERY_COLUMNS} FROM alert_deliveries ORDER BY at DESC, id DESC LIMIT $1"
            ),
                &[&limit],
            )
            .map_err(&err)?
            .iter()
            .map(|r| {
                let nodes: String = r.try_get(6)?;
                let attempts: i64 = r.try_get(8)?;
                Ok(DeliveryRecord {
                    id: r.try_get(0)?,
                    at: r.try_get(1)?,
                    notifier: r.try_get(2)?,
                    kind_of_notifier: r.try_get(3)?,
                    kind: r.try_get(4)?,
                    rule: r.try_get(5)?,
                    nodes: nodes
                        .split(',')
                        .filter(|n| !n.is_empty())
                        .map(str::to_string)
                        .collect(),
                    ok: r.try_get(7)?,
                    attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                    answer: r.try_get(9)?,
                })
            })
            .collect::<std::result::Result<_, postgres::Error>>()
            .map_err(&err)
        })
    }

    fn prune_alerts(&self, before: i64) -> Result<usize> {
        sync(|| {
            let mut c = self.pool.get()?;
            let err = self.pool.err();
            let mut tx = c.transaction().map_err(&err)?;
            let mut n = 0;
            for sql in [
                "DELETE FROM alert_events WHERE at < $1",
                "DELETE FROM alert_deliveries WHERE at < $1",
                "DELETE FROM alert_silences WHERE expires < $1",
            ] {
                n += tx.execute(sql, &[&before]).map_err(&err)?;
            }
            tx.commit().map_err(&err)?;
            Ok(n as usize)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://dsmon:s3cret@db.example.com:5433/dsmon?sslmode=require"),
            "postgres://dsmon:***@db.example.com:5433/dsmon?sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://dsmon@db/dsmon?password=s3cret&connect_timeout=3"),
            "postgres://dsmon@db/dsmon?connect_timeout=3"
        );
        assert_eq!(
            redact_url("postgresql://db.example.com/dsmon"),
            "postgresql://db.example.com/dsmon"
        );
        assert!(!redact_url("host=db password=s3cret").contains("s3cret"));
        let o = PgOptions {
            url: "postgres://u:pw1@h/d".into(),
            password: Some("pw2".into()),
            ca_file: None,
            pool_size: 2,
        };
        let shown = format!("{o:?}");
        assert!(!shown.contains("pw1") && !shown.contains("pw2"), "{shown}");
    }

    #[test]
    fn migrations_are_numbered() {
        assert!(!PG_MIGRATIONS.is_empty());
        assert!(PG_MIGRATIONS[0].0.starts_with("0001_"));
    }

    #[test]
    fn bad_urls_are_refused_without_echoing_them() {
        let e = PgDatabase::connect(&PgOptions {
            url: "postgres://u:s3cret@h:notaport/d".into(),
            password: None,
            ca_file: None,
            pool_size: 1,
        })
        .expect_err("refused");
        assert!(!e.to_string().contains("s3cret"), "{e}");
    }
}
