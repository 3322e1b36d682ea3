//! Who may do what. Sign-in with an OpenID Connect provider (Google by default), the mapping of a
//! verified identity to a role, server-side sessions, user administration and the audit log. This
//! is the one place where a role is decided; the server and the desktop app only ask it.
//!
//! Who someone is: the provider account, (issuer, `sub`), as OpenID Connect Core 5.7 says and as
//! Grafana (`user_auth` by the account's id, no lookup by email unless
//! `oauth_allow_insecure_email_lookup`) and Kubernetes (`--oidc-username-claim` `sub` by default,
//! prefixed with the issuer) key it. The address
//! is what roles are given to (the configuration names addresses), so the first sign-in binds an
//! address to its account, and a later sign-in with the same address from another account is
//! refused and audited until an Admin re-binds the address to it.
//!
//! Rules: configuration admins are always Admin (they cannot be blocked or demoted, so nobody is
//! locked out); a blocked user is refused, and a block follows the account to its other
//! addresses; a role set by an Admin wins over the configuration's `users`; `users` matches an
//! exact email or `*@domain` against the verified `hd` claim. A `*@domain` entry makes `domain` a
//! Google Workspace domain: an exact address of it (in `admins` or `users`) then matches only an
//! account of that Workspace (`hd` = domain), since Google is not authoritative for that address
//! on an account outside it. An identity whose email the provider has not verified is refused.
//! Roles are resolved again on every request, so a change applies at once.

mod offline;
pub mod oidc;
pub mod tokens;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use serde::Serialize;
use sha2::Digest;

use dsmon_config::{AuthConfig, UserRule};
pub use dsmon_core::{Caller, Identity, Role};
use dsmon_store::auth_db::{AuditEntry, Rebind, SessionRecord, UserRecord};
use dsmon_store::{AuthStore, PendingCaps, PendingPut, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the sign-in provider is unavailable: {0}")]
    Provider(String),
    #[error("the sign-in provider refused: {0}")]
    Refused(String),
    #[error("this sign-in attempt is unknown, expired or already used; please sign in again")]
    UnknownAttempt,
    #[error("this sign-in was not started in this browser; please sign in again")]
    StateMismatch,
    #[error("the ID token was rejected: {0}")]
    InvalidToken(String),
    #[error("{0}: the provider has not verified this email address")]
    Unverified(String),
    #[error("{0} is not authorized to use this dsmon")]
    NotAuthorized(String),
    #[error("{0} is blocked")]
    Blocked(String),
    /// The address is bound to another account of the provider than the one signing in.
    #[error("{email} is bound to another account; if this account now holds the address, an Admin can re-bind it on the users page")]
    OtherAccount {
        email: String,
        /// The account signing in, and the one the address is bound to (subject ids).
        sub: String,
        bound_sub: String,
    },
    #[error("no other account has tried to sign in as {0}: there is nothing to re-bind it to")]
    NothingToRebind(String),
    #[error(
        "an API token named {0:?} exists already (names are never reused, also of revoked tokens)"
    )]
    TokenNameTaken(String),
    #[error("no API token {0}")]
    UnknownToken(i64),
    #[error("no user {0} has signed in")]
    UnknownUser(String),
    #[error("{0} is an admin in the configuration file; change it there")]
    ConfigAdmin(String),
    #[error("sign-in storage failed: {0}")]
    Db(#[from] StoreError),
    #[error("sign-in state lock poisoned")]
    Poisoned,
    /// As many sign-ins as are kept at once are in progress: new ones wait until some finish or
    /// expire (none in progress is dropped for them).
    #[error("too many sign-ins are in progress; try again in a few minutes")]
    Busy,
    #[error("the browser sign-in failed: {0}")]
    Browser(String),
    #[error("the sign-in was not finished in the browser within {}", humantime::format_duration(*.0))]
    TimedOut(Duration),
}

impl AuthError {
    /// Whether the fault is the caller's (a refusal or a stale/forged request) rather than ours.
    pub fn is_refusal(&self) -> bool {
        !matches!(
            self,
            Self::Provider(_) | Self::Db(_) | Self::Poisoned | Self::Browser(_)
        )
    }
}

/// Result of this module.
pub type Result<T> = std::result::Result<T, AuthError>;

/// A user as the users page shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UserView {
    pub email: String,
    pub name: Option<String>,
    /// The role in effect (`None`: not authorized).
    pub role: Option<Role>,
    /// Where it comes from: "config" (admins/users lists), "admin" (set on the users page), "none".
    #[schema(value_type = String)]
    pub role_source: &'static str,
    pub config_admin: bool,
    pub blocked: bool,
    pub first_seen: i64,
    pub last_sign_in: Option<i64>,
    /// When another account last tried to sign in with this address and was refused (the address
    /// is bound to the account that first signed in with it); `{"rebind": true}` binds it to that
    /// account.
    pub other_account_at: Option<i64>,
}

/// A change an Admin makes on the users page: `{"role": "admin" | "user" | null}` (null: back to
/// the configuration), `{"blocked": bool}` and/or `{"rebind": true}` (bind the address to the
/// account that last tried it) — as `POST /api/users/EMAIL` and the desktop app's `change_user`
/// command take it.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserChange {
    /// `null`: back to the configuration's role; absent: unchanged.
    #[serde(default, deserialize_with = "some_or_null")]
    #[schema(value_type = Option<Role>)]
    pub role: Option<Option<Role>>,
    pub blocked: Option<bool>,
    #[serde(default)]
    pub rebind: bool,
}

fn some_or_null<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Option<Role>>, D::Error> {
    <Option<Role> as serde::Deserialize>::deserialize(d).map(Some)
}

impl UserChange {
    /// Parses a change from JSON; the message says what is expected.
    pub fn parse(json: &[u8]) -> std::result::Result<Self, String> {
        let change: Self = serde_json::from_slice(json).map_err(|e| {
            format!(
                "expected {{\"role\": \"admin\" | \"user\" | null, \"blocked\": true | false, \"rebind\": true}}: {e}"
            )
        })?;
        if change.role.is_none() && change.blocked.is_none() && !change.rebind {
            return Err("nothing to change: give role, blocked and/or rebind".into());
        }
        Ok(change)
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    pub total: i64,
    pub offset: i64,
    pub limit: i64,
}

/// A finished sign-in: the new session's cookie value and where the browser goes next.
pub struct SignedIn {
    pub session: String,
    pub caller: Caller,
    pub next: String,
    pub expires_in: Duration,
}

/// A started sign-in: where to send the browser, and the state to bind to it (a cookie).
pub struct Started {
    pub url: url::Url,
    pub state: String,
}

/// How long a started sign-in may take, and how many may be pending at once: in total, and per
/// client (past that, the client's own oldest give way).
const ATTEMPT_TTL: Duration = Duration::from_secs(600);
pub const MAX_ATTEMPTS: usize = 10_000;
pub const MAX_ATTEMPTS_PER_CLIENT: usize = 20;

/// How long a desktop sign-in's nonce ([`Auth::issue_nonce`]) may wait for its ID token.
pub const NONCE_TTL: Duration = Duration::from_secs(600);

/// Old audit entries are deleted at most this often (seconds), as entries are written.
const PRUNE_EVERY: i64 = 3600;

/// A started sign-in as the store keeps it (any instance on the same store can finish it).
#[derive(serde::Serialize, serde::Deserialize)]
struct Pending {
    nonce: String,
    pkce_verifier: String,
    redirect: String,
    next: String,
}

/// Sign-in: the provider, the role rules and the sign-in state in the store. Shared as
/// `Arc<Auth>`: the methods that touch the store from async code move that work to the blocking
/// pool.
pub struct Auth {
    cfg: AuthConfig,
    oidc: oidc::Oidc,
    db: Arc<dyn AuthStore>,
    log: Arc<AuditLog>,
    /// Sessions the database confirmed lately, for while it cannot be reached.
    recent: offline::Recent,
}

/// The audit log: each entry in the store and as a tracing event; entries older than
/// `[auth] audit_retention` deleted at most once an hour as entries are written.
struct AuditLog {
    db: Arc<dyn AuthStore>,
    retention: Duration,
    /// When old entries were last deleted (Unix seconds; 0: not yet since start).
    last_prune: AtomicI64,
}

impl AuditLog {
    /// Writes an entry. A failed write is logged, not passed on: it must not turn a refusal into
    /// a success or the reverse.
    fn write(&self, actor: Option<&str>, action: &str, target: Option<&str>, detail: Option<&str>) {
        let t = now();
        let count = match self.db.audit(t, actor, action, target, detail) {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, action, "cannot write the audit log");
                1
            }
        };
        // A repeat counted into an earlier entry is logged at 10, 100, 1000... so that a loop of
        // bad requests does not fill the system log either.
        let notable = count == 1
            || count
                .checked_ilog10()
                .is_some_and(|p| 10i64.pow(p) == count);
        match action {
            _ if !notable => tracing::debug!(actor, action, target, detail, count, "audit"),
            "sign_in_refused" | "access_denied" => {
                tracing::warn!(actor, action, target, detail, count, "audit")
            }
            _ => tracing::info!(actor, action, target, detail, count, "audit"),
        }
        self.prune(t);
    }

    fn prune(&self, t: i64) {
        let last = self.last_prune.load(Ordering::Relaxed);
        // One writer prunes; the others go on.
        if t - last < PRUNE_EVERY
            || self
                .last_prune
                .compare_exchange(last, t, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let before = t.saturating_sub(self.retention.as_secs().try_into().unwrap_or(i64::MAX));
        match self.db.prune_audit(before) {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                deleted = n,
                "audit entries older than the retention deleted"
            ),
            Err(e) => tracing::error!(error = %e, "cannot delete old audit entries"),
        }
    }
}

fn now() -> i64 {
    dsmon_core::unix_now()
}

/// The stored form of a session id.
fn hash_session(token: &str) -> String {
    sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The store key of a desktop sign-in's nonce: kept with the started web sign-ins, which are
/// keyed by a bare hash, so the prefix keeps the two apart (a web sign-in's state cannot take a
/// nonce out, nor the reverse).
fn nonce_key(nonce: &str) -> String {
    format!("desktop-nonce:{}", hash_session(nonce))
}

/// A new random identifier (a session id, a nonce): 256 bits, URL-safe base64.
fn random_id() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| AuthError::Provider(format!("no randomness for an identifier: {e}")))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// `next` if it is a path on this site, else `/`.
pub fn safe_next(next: &str) -> String {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.chars().any(|c| c.is_control() || c == '\\');
    if ok {
        next.to_string()
    } else {
        "/".to_string()
    }
}

/// Whether an exact address of the configuration may match an identity with this `hd`: an
/// address in a Workspace domain of the configuration (a `*@domain` entry of `users`) only when
/// the account is of that Workspace.
fn address_matches(cfg: &AuthConfig, email: &str, hd: Option<&str>) -> bool {
    let domain = email.rsplit_once('@').map(|(_, d)| d);
    let workspace = cfg
        .users
        .iter()
        .any(|r| matches!(r, UserRule::Domain(d) if Some(d.as_str()) == domain));
    !workspace || hd == domain
}

/// Whether `email` (with this `hd`) is an admin of the configuration.
pub fn is_config_admin(cfg: &AuthConfig, email: &str, hd: Option<&str>) -> bool {
    cfg.admins.iter().any(|a| a == email) && address_matches(cfg, email, hd)
}

/// The role of an identity under the configuration and what Admins set; `Err` is why none.
pub fn resolve_role(
    cfg: &AuthConfig,
    email: &str,
    hd: Option<&str>,
    record: Option<&UserRecord>,
) -> std::result::Result<(Role, &'static str), AuthError> {
    if is_config_admin(cfg, email, hd) {
        return Ok((Role::Admin, "config"));
    }
    if record.is_some_and(|r| r.blocked) {
        return Err(AuthError::Blocked(email.to_string()));
    }
    if let Some(role) = record.and_then(|r| r.role) {
        return Ok((role, "admin"));
    }
    let listed = cfg.users.iter().any(|rule| match rule {
        UserRule::Email(e) => e == email && address_matches(cfg, email, hd),
        UserRule::Domain(d) => hd == Some(d.as_str()),
    });
    if listed {
        Ok((Role::User, "config"))
    } else {
        Err(AuthError::NotAuthorized(email.to_string()))
    }
}

impl Auth {
    /// Sign-in over `store` (already created and migrated).
    pub fn new(cfg: AuthConfig, store: Arc<dyn AuthStore>) -> Result<Self> {
        let oidc = oidc::Oidc::new(&cfg)?;
        // Addresses from before accounts were bound: bound to the account of their last sign-in
        // (the state an Admin has seen), at the configured provider, which issued it.
        let n = store.bind_unbound(oidc.issuer())?;
        if n > 0 {
            tracing::info!(
                users = n,
                issuer = oidc.issuer(),
                "addresses bound to the account of their last sign-in"
            );
        }
        Ok(Self {
            log: Arc::new(AuditLog {
                db: Arc::clone(&store),
                retention: cfg.audit_retention,
                last_prune: AtomicI64::new(0),
            }),
            oidc,
            db: store,
            cfg,
            recent: offline::Recent::default(),
        })
    }

    pub fn config(&self) -> &AuthConfig {
        &self.cfg
    }

    /// The OpenID Connect client (the desktop app runs its own loopback sign-in with it).
    pub fn oidc(&self) -> &oidc::Oidc {
        &self.oidc
    }

    /// A sign-in's outcome, its refusal (if any) audited, naming the identity when it is known.
    fn audited(&self, r: Result<SignedIn>, via: &str) -> Result<SignedIn> {
        if let Err(e) = &r {
            self.audit_refusal(e, via);
        }
        r
    }

    fn audit_refusal(&self, e: &AuthError, via: &str) {
        match e {
            AuthError::Unverified(who) | AuthError::NotAuthorized(who) | AuthError::Blocked(who) => {
                self.audit(
                    Some(who),
                    "sign_in_refused",
                    Some(who),
                    Some(&format!("{e} ({via})")),
                )
            }
            // Not the address's owner: no known actor, the address as the target.
            AuthError::OtherAccount {
                email,
                sub,
                bound_sub,
            } => self.audit(
                None,
                "sign_in_refused",
                Some(email),
                Some(&format!(
                    "{email} is bound to the account {bound_sub}; refused the account {sub} of {} ({via})",
                    self.oidc.issuer()
                )),
            ),
            _ => self.audit(None, "sign_in_refused", None, Some(&format!("{e} ({via})"))),
        }
    }

    /// Writes an audit entry and the matching tracing event. A failed audit write is logged, not
    /// passed on: it must not turn a refusal into a success or the reverse.
    pub fn audit(
        &self,
        actor: Option<&str>,
        action: &str,
        target: Option<&str>,
        detail: Option<&str>,
    ) {
        self.log.write(actor, action, target, detail);
    }

    /// Starts a sign-in of `client` (its address as the rate limit sees it) that will return to
    /// `next` (a same-site path). [`AuthError::Busy`] when [`MAX_ATTEMPTS`] are pending.
    pub async fn begin(&self, next: &str, client: &str) -> Result<Started> {
        let (url, attempt) = self.oidc.authorize_url(None, None).await?;
        let pending = Pending {
            nonce: attempt.nonce,
            pkce_verifier: attempt.pkce_verifier,
            redirect: attempt.redirect.to_string(),
            next: safe_next(next),
        };
        let data = serde_json::to_string(&pending)
            .map_err(|e| AuthError::Provider(format!("cannot keep the sign-in: {e}")))?;
        let (db, key, t) = (Arc::clone(&self.db), hash_session(&attempt.state), now());
        let expires = t + ATTEMPT_TTL.as_secs() as i64;
        let client = client.to_string();
        let caps = PendingCaps {
            per_client: MAX_ATTEMPTS_PER_CLIENT,
            total: MAX_ATTEMPTS,
        };
        match blocking(move || db.put_pending(&key, &data, &client, t, expires, caps)).await? {
            PendingPut::Kept => Ok(Started {
                url,
                state: attempt.state,
            }),
            PendingPut::Full => {
                tracing::warn!(
                    cap = MAX_ATTEMPTS,
                    "sign-in refused: too many sign-ins in progress"
                );
                Err(AuthError::Busy)
            }
        }
    }

    /// Finishes a sign-in from the provider's redirect: `state` and `code` (or `error`) from the
    /// query, `browser_state` from the cookie set by [`Auth::begin`]. Every refusal is audited.
    /// `replaced` is the session this browser still holds, if any: a new sign-in in a browser ends
    /// it (whoever it was of), so the old cookie value is worth nothing even if copied.
    pub async fn finish(
        &self,
        state: Option<&str>,
        browser_state: Option<&str>,
        code: Option<&str>,
        provider_error: Option<&str>,
        replaced: Option<&str>,
    ) -> Result<SignedIn> {
        let r = self
            .finish_inner(state, browser_state, code, provider_error)
            .await;
        if let (Ok(signed), Some(old)) = (&r, replaced.filter(|t| !t.is_empty())) {
            let (db, key) = (Arc::clone(&self.db), hash_session(old));
            blocking(move || db.delete_session(&key)).await?;
            tracing::debug!(email = %signed.caller.email, "a new sign-in ended this browser's previous session");
        }
        self.audited(r, "web")
    }

    /// Admits a verified identity that signed in elsewhere (the desktop app's loopback sign-in):
    /// the same role rules, session and audit as a web sign-in. Refusals are audited. Blocks: call
    /// it off the async threads.
    pub fn admit(&self, id: Identity, via: &str) -> Result<SignedIn> {
        self.audited(self.admit_inner(id, "/".into(), via), via)
    }

    /// The desktop client whose ID tokens this server exchanges (`[auth] desktop_client_id`).
    fn desktop_client(&self) -> Result<&str> {
        self.cfg.desktop_client_id.as_deref().ok_or_else(|| {
            AuthError::Refused(
                "this server accepts no desktop sign-in ([auth] desktop_client_id is not set)"
                    .into(),
            )
        })
    }

    /// `POST /auth/nonce`: a nonce for one desktop sign-in with this server. The app puts it in
    /// its authorization request, so the provider writes it into the ID token, and
    /// [`Auth::exchange_id_token`] takes only tokens carrying a nonce issued here and not used
    /// yet. Kept in the store (any instance on it can take it; it survives a restart) for
    /// [`NONCE_TTL`], with the started web sign-ins and under the same caps (per `client`, the
    /// caller's address as the rate limit sees it, and in total).
    pub async fn issue_nonce(&self, client: &str) -> Result<String> {
        self.desktop_client()?;
        let nonce = random_id()?;
        let (db, key, t) = (Arc::clone(&self.db), nonce_key(&nonce), now());
        let expires = t + NONCE_TTL.as_secs() as i64;
        let client = client.to_string();
        let caps = PendingCaps {
            per_client: MAX_ATTEMPTS_PER_CLIENT,
            total: MAX_ATTEMPTS,
        };
        match blocking(move || db.put_pending(&key, "desktop nonce", &client, t, expires, caps))
            .await?
        {
            PendingPut::Kept => Ok(nonce),
            PendingPut::Full => Err(AuthError::Busy),
        }
    }

    /// `POST /auth/token`: exchanges an ID token the desktop app obtained for its own client
    /// (`[auth] desktop_client_id`) for a session of this server. The token must carry a nonce
    /// this server issued ([`Auth::issue_nonce`]); each token and each nonce is taken once.
    pub async fn exchange_id_token(&self, raw: &str) -> Result<SignedIn> {
        let r = self.exchange_inner(raw).await;
        self.audited(r, "desktop token exchange")
    }

    async fn exchange_inner(&self, raw: &str) -> Result<SignedIn> {
        let audience = self.desktop_client()?;
        let (id, nonce) = self.oidc.verify_foreign(raw, audience).await?;
        let (db, key, t) = (Arc::clone(&self.db), hash_session(raw.trim()), now());
        let expires = id.expires_at;
        if !blocking(move || db.mark_used(&key, t, expires)).await? {
            return Err(AuthError::InvalidToken(
                "this ID token was already exchanged".into(),
            ));
        }
        // Single use: the nonce is taken out whatever happens next.
        let (db, key) = (Arc::clone(&self.db), nonce_key(&nonce));
        if blocking(move || db.take_pending(&key, t)).await?.is_none() {
            return Err(AuthError::InvalidToken(
                "its nonce was not issued by this server, has expired or was already used (the token was meant for another server, or is replayed); sign in again from the app".into(),
            ));
        }
        self.admit_blocking(id, "/".into(), "desktop").await
    }

    /// [`Auth::admit_inner`] on the blocking pool.
    async fn admit_blocking(
        &self,
        id: Identity,
        next: String,
        via: &'static str,
    ) -> Result<SignedIn> {
        let (cfg, db, log) = (
            self.cfg.clone(),
            Arc::clone(&self.db),
            Arc::clone(&self.log),
        );
        let issuer = self.oidc.issuer().to_string();
        tokio::task::spawn_blocking(move || admit_with(&cfg, &issuer, &*db, &log, id, next, via))
            .await
            .map_err(|e| AuthError::Provider(format!("sign-in task failed: {e}")))?
    }

    async fn finish_inner(
        &self,
        state: Option<&str>,
        browser_state: Option<&str>,
        code: Option<&str>,
        provider_error: Option<&str>,
    ) -> Result<SignedIn> {
        let state = state.ok_or(AuthError::UnknownAttempt)?;
        // Single use: the attempt is taken out whatever happens next.
        let (db, key, t) = (Arc::clone(&self.db), hash_session(state), now());
        let data = blocking(move || db.take_pending(&key, t))
            .await?
            .ok_or(AuthError::UnknownAttempt)?;
        let pending: Pending =
            serde_json::from_str(&data).map_err(|_| AuthError::UnknownAttempt)?;
        if browser_state != Some(state) {
            return Err(AuthError::StateMismatch);
        }
        if let Some(e) = provider_error {
            return Err(AuthError::Refused(e.to_string()));
        }
        let code = code.ok_or_else(|| AuthError::Refused("no authorization code".into()))?;
        let attempt = oidc::Attempt::resume(
            state.to_string(),
            pending.nonce,
            pending.pkce_verifier,
            &pending.redirect,
        )?;
        let id = self.oidc.finish(attempt, code.to_string()).await?.identity;
        self.admit_blocking(id, pending.next, "web").await
    }

    fn admit_inner(&self, id: Identity, next: String, via: &str) -> Result<SignedIn> {
        admit_with(
            &self.cfg,
            self.oidc.issuer(),
            &*self.db,
            &self.log,
            id,
            next,
            via,
        )
    }

    /// The caller behind a session cookie, with the role resolved now; `None` when the session is
    /// unknown or past its absolute end, idle for `[auth] session_idle`, signed in longer ago than
    /// `[auth] recheck` (the provider must confirm the account again: a new sign-in), or its user
    /// is blocked or no longer in any role (the session then ends). A live session is marked used.
    ///
    /// While the database cannot be reached, a session it confirmed within the last
    /// [`offline::GRACE`] still counts (the live view goes on); others fail with the database's
    /// "unavailable" error.
    pub fn session(&self, token: &str) -> Result<Option<Caller>> {
        let (h, t) = (hash_session(token), now());
        match self.session_checked(&h, t) {
            Ok(caller) => {
                self.recent.confirmed(&h, caller.as_ref(), t);
                Ok(caller)
            }
            Err(AuthError::Db(e)) if e.is_unavailable() => match self.recent.get(&h, t) {
                Some(caller) => {
                    tracing::debug!(email = %caller.email, "database unreachable: a session it confirmed lately still counts");
                    Ok(Some(caller))
                }
                None => Err(AuthError::Db(e)),
            },
            Err(e) => Err(e),
        }
    }

    /// The caller of session `h` at `t`, as the database says.
    fn session_checked(&self, h: &str, t: i64) -> Result<Option<Caller>> {
        let h = h.to_string();
        let Some(s) = self.db.session_user(&h, t)? else {
            return Ok(None);
        };
        if let Some(why) = self.lapsed(&s, t) {
            self.db.delete_session(&h)?;
            self.audit(
                Some(&s.user.email),
                "session_ended",
                Some(&s.user.email),
                Some(&why),
            );
            return Ok(None);
        }
        let u = s.user;
        match resolve_role(&self.cfg, &u.email, u.hd.as_deref(), Some(&u)) {
            Ok((role, _)) => {
                self.db.touch_session(&h, t)?;
                Ok(Some(Caller {
                    email: u.email,
                    name: u.name,
                    role,
                }))
            }
            Err(e) => {
                self.db.delete_sessions_of(&u.email)?;
                self.audit(
                    Some(&u.email),
                    "session_ended",
                    Some(&u.email),
                    Some(&e.to_string()),
                );
                Ok(None)
            }
        }
    }

    /// Why a session within its absolute end must end at `t`: idle too long, or signed in too
    /// long ago for the provider's word to count (see [`AuthConfig::recheck`]).
    fn lapsed(&self, s: &SessionRecord, t: i64) -> Option<String> {
        let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        if t.saturating_sub(s.authenticated) >= secs(self.cfg.recheck) {
            return Some(format!(
                "signed in more than {} ago ([auth] recheck): the provider must confirm the account at a new sign-in",
                humantime::format_duration(self.cfg.recheck)
            ));
        }
        if t.saturating_sub(s.last_seen) >= secs(self.cfg.session_idle) {
            return Some(format!(
                "not used for {} ([auth] session_idle)",
                humantime::format_duration(self.cfg.session_idle)
            ));
        }
        None
    }

    pub fn logout(&self, token: &str, caller: Option<&Caller>) -> Result<()> {
        let h = hash_session(token);
        self.recent.confirmed(&h, None, now());
        self.db.delete_session(&h)?;
        if let Some(c) = caller {
            self.audit(Some(&c.email), "sign_out", None, None);
        }
        Ok(())
    }

    /// Records that `caller` was refused `what` (a path or command).
    pub fn denied(&self, caller: &Caller, what: &str) {
        self.audit(
            Some(&caller.email),
            "access_denied",
            Some(what),
            Some(&format!("role {}", caller.role.as_str())),
        );
    }

    pub fn users(&self) -> Result<Vec<UserView>> {
        Ok(self
            .db
            .users()?
            .into_iter()
            .map(|u| {
                let config_admin = is_config_admin(&self.cfg, &u.email, u.hd.as_deref());
                // Blocked users show the role they would have, beside the block.
                let unblocked = UserRecord {
                    blocked: false,
                    ..u.clone()
                };
                let (role, role_source) =
                    match resolve_role(&self.cfg, &u.email, u.hd.as_deref(), Some(&unblocked)) {
                        Ok((r, s)) => (Some(r), s),
                        Err(_) => (None, "none"),
                    };
                UserView {
                    email: u.email,
                    name: u.name,
                    role,
                    role_source,
                    config_admin,
                    blocked: u.blocked,
                    first_seen: u.first_seen,
                    last_sign_in: u.last_sign_in,
                    other_account_at: u.other_at,
                }
            })
            .collect())
    }

    fn changeable(&self, email: &str) -> Result<String> {
        let email = email.trim().to_lowercase();
        let Some(u) = self.db.user(&email)? else {
            return Err(if self.cfg.admins.contains(&email) {
                AuthError::ConfigAdmin(email)
            } else {
                AuthError::UnknownUser(email)
            });
        };
        if is_config_admin(&self.cfg, &email, u.hd.as_deref()) {
            return Err(AuthError::ConfigAdmin(email));
        }
        Ok(email)
    }

    /// Binds `email` to the account that last tried to sign in with it and was refused
    /// ([`AuthError::OtherAccount`]), as when an address changed hands or its owner's account was
    /// made anew; the sessions of the account it was bound to end. Configuration admins too: a
    /// re-bind gives no role.
    pub fn rebind(&self, actor: &Caller, email: &str) -> Result<()> {
        let email = email.trim().to_lowercase();
        match self.db.rebind(&email)? {
            Rebind::Done { from, to } => {
                self.audit(
                    Some(&actor.email),
                    "rebound",
                    Some(&email),
                    Some(&format!("from the account {from} to the account {to}")),
                );
                Ok(())
            }
            Rebind::UnknownUser => Err(AuthError::UnknownUser(email)),
            Rebind::NoOtherAccount => Err(AuthError::NothingToRebind(email)),
        }
    }

    /// Sets (or with `None` clears, back to the configuration) a user's role.
    pub fn set_role(&self, actor: &Caller, email: &str, role: Option<Role>) -> Result<()> {
        let email = self.changeable(email)?;
        self.recent.forget(&email);
        if !self.db.set_role(&email, role)? {
            return Err(AuthError::UnknownUser(email));
        }
        self.audit(
            Some(&actor.email),
            "role_changed",
            Some(&email),
            Some(role.map_or("from configuration", Role::as_str)),
        );
        Ok(())
    }

    pub fn set_blocked(&self, actor: &Caller, email: &str, blocked: bool) -> Result<()> {
        let email = self.changeable(email)?;
        self.recent.forget(&email);
        if !self.db.set_blocked(&email, blocked)? {
            return Err(AuthError::UnknownUser(email));
        }
        let action = if blocked { "blocked" } else { "unblocked" };
        self.audit(Some(&actor.email), action, Some(&email), None);
        Ok(())
    }

    /// Applies `change` by `actor` (the re-bind first, then the role, then the block); returns the
    /// new users list.
    pub fn change_user(
        &self,
        actor: &Caller,
        email: &str,
        change: UserChange,
    ) -> Result<Vec<UserView>> {
        if change.rebind {
            self.rebind(actor, email)?;
        }
        if let Some(role) = change.role {
            self.set_role(actor, email, role)?;
        }
        if let Some(b) = change.blocked {
            self.set_blocked(actor, email, b)?;
        }
        self.users()
    }

    pub fn audit_page(&self, offset: i64, limit: i64) -> Result<AuditPage> {
        let (entries, total) = self.db.audit_page(offset, limit)?;
        Ok(AuditPage {
            entries,
            total,
            offset,
            limit,
        })
    }
}

/// Admits a verified identity of `issuer`'s: its account against the address, its role under the
/// rules, a new session, the audit entry.
fn admit_with(
    cfg: &AuthConfig,
    issuer: &str,
    db: &dyn AuthStore,
    log: &AuditLog,
    id: Identity,
    next: String,
    via: &str,
) -> Result<SignedIn> {
    if !id.email_verified {
        return Err(AuthError::Unverified(id.email));
    }
    let t = now();
    // Remember every verified identity, so an Admin can see and admit who tried.
    let claim = db.claim_user(&id, issuer, t)?;
    if !claim.bound {
        return Err(AuthError::OtherAccount {
            email: id.email,
            sub: id.sub,
            bound_sub: claim.record.sub,
        });
    }
    let mut record = claim.record;
    if let Some(other) = &claim.blocked_as {
        tracing::info!(email = %id.email, blocked_as = %other, "the account is blocked under another address");
        record.blocked = true;
    }
    let (role, _) = resolve_role(cfg, &id.email, id.hd.as_deref(), Some(&record))?;
    db.stamp_sign_in(&id.email, t)?;
    let session = random_id()?;
    let ttl = cfg.session_ttl;
    db.create_session(
        &hash_session(&session),
        &id.email,
        t,
        t + ttl.as_secs() as i64,
    )?;
    log.write(
        Some(&id.email),
        "sign_in",
        None,
        Some(&format!("role {} ({via})", role.as_str())),
    );
    Ok(SignedIn {
        session,
        caller: Caller {
            email: id.email,
            name: id.name,
            role,
        },
        next,
        expires_in: ttl,
    })
}

/// Runs store work on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::result::Result<T, StoreError> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| AuthError::Provider(format!("sign-in task failed: {e}")))?
        .map_err(AuthError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> AuthConfig {
        let text = "[auth]\nissuer = \"http://127.0.0.1:9\"\nclient_id = \"c\"\nclient_secret = \"s\"\nredirect_url = \"http://127.0.0.1:8080/auth/callback\"\nadmins = [\"alice@example.com\"]\nusers = [\"bob@example.org\", \"*@corp.example\"]\n";
        dsmon_config::parse(text, std::path::Path::new("/tmp/t.toml"))
            .expect("config")
            .auth
            .expect("auth")
    }

    fn rec(email: &str, role: Option<Role>, blocked: bool) -> UserRecord {
        UserRecord {
            email: email.into(),
            issuer: Some("http://127.0.0.1:9".into()),
            sub: "s".into(),
            name: None,
            hd: None,
            role,
            blocked,
            first_seen: 0,
            last_sign_in: None,
            other_issuer: None,
            other_sub: None,
            other_at: None,
        }
    }

    #[test]
    fn roles_from_configuration_and_admin_choices() {
        let c = cfg();
        let r = |e: &str, hd: Option<&str>, u: Option<&UserRecord>| {
            resolve_role(&c, e, hd, u)
                .map(|(r, _)| r)
                .map_err(|e| e.to_string())
        };
        assert_eq!(r("alice@example.com", None, None), Ok(Role::Admin));
        // A configuration admin can be neither blocked nor demoted.
        let blocked_alice = rec("alice@example.com", Some(Role::User), true);
        assert_eq!(
            r("alice@example.com", None, Some(&blocked_alice)),
            Ok(Role::Admin)
        );
        assert_eq!(r("bob@example.org", None, None), Ok(Role::User));
        // *@domain matches the verified hd claim, not the address's suffix.
        assert_eq!(
            r("carol@corp.example", Some("corp.example"), None),
            Ok(Role::User)
        );
        assert!(r("mallory@corp.example", None, None)
            .unwrap_err()
            .contains("not authorized"));
        assert!(r("stranger@other.org", Some("other.org"), None).is_err());
        // Set by an Admin.
        let promoted = rec("stranger@other.org", Some(Role::User), false);
        assert_eq!(
            r("stranger@other.org", None, Some(&promoted)),
            Ok(Role::User)
        );
        let admin = rec("bob@example.org", Some(Role::Admin), false);
        assert_eq!(r("bob@example.org", None, Some(&admin)), Ok(Role::Admin));
        let blocked = rec("bob@example.org", None, true);
        assert!(r("bob@example.org", None, Some(&blocked))
            .unwrap_err()
            .contains("blocked"));
    }

    #[test]
    fn exact_addresses_of_a_workspace_domain_need_its_hd() {
        let text = "[auth]\nissuer = \"http://127.0.0.1:9\"\nclient_id = \"c\"\nclient_secret = \"s\"\nadmins = [\"boss@corp.example\", \"alice@example.com\"]\nusers = [\"*@corp.example\", \"pat@corp.example\", \"bob@example.org\"]\n";
        let c = dsmon_config::parse(text, std::path::Path::new("/tmp/t.toml"))
            .expect("config")
            .auth
            .expect("auth");
        let r = |e: &str, hd: Option<&str>| resolve_role(&c, e, hd, None).map(|(r, _)| r).ok();
        assert_eq!(
            r("boss@corp.example", Some("corp.example")),
            Some(Role::Admin)
        );
        // The same address on an account outside the Workspace: neither admin nor user.
        assert_eq!(r("boss@corp.example", None), None);
        assert_eq!(r("boss@corp.example", Some("other.example")), None);
        assert!(!is_config_admin(&c, "boss@corp.example", None));
        assert_eq!(r("pat@corp.example", None), None);
        // Addresses of other domains are matched as before.
        assert_eq!(r("alice@example.com", None), Some(Role::Admin));
        assert_eq!(r("bob@example.org", None), Some(Role::User));
    }

    #[test]
    fn user_changes_parse() {
        let c = UserChange::parse(br#"{"rebind": true}"#).expect("rebind");
        assert!(c.rebind && c.role.is_none() && c.blocked.is_none());
        let c = UserChange::parse(br#"{"role": null}"#).expect("role");
        assert_eq!(c.role, Some(None));
        assert!(!c.rebind);
        for bad in [
            &br#"{}"#[..],
            br#"{"rebind": false}"#,
            br#"{"rebind": "yes"}"#,
            br#"{"x": 1}"#,
        ] {
            assert!(
                UserChange::parse(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next("/history?range=7d"), "/history?range=7d");
        for bad in [
            "https://evil.example/",
            "//evil.example/x",
            "/\\evil.example",
            "history",
            "",
            "/a\nb",
        ] {
            assert_eq!(safe_next(bad), "/", "{bad:?}");
        }
    }

    #[test]
    fn sessions_are_stored_hashed() {
        let h = hash_session("abc");
        assert_eq!(h.len(), 64);
        assert_ne!(h, "abc");
    }
}
