//! Who may do what. Sign-in with an OpenID Connect provider (Google by default), the mapping of a
//! verified identity to a role, server-side sessions, user administration and the audit log. This
//! is the one place where a role is decided; the server and the desktop app only ask it.
//!
//! Rules: configuration admins are always Admin (they cannot be blocked or demoted, so nobody is
//! locked out); a blocked user is refused; a role set by an Admin wins over the configuration's
//! `users`; `users` matches an exact email or `*@domain` against the verified `hd` claim. An
//! identity whose email the provider has not verified is refused. Roles are resolved again on every
//! request, so a change applies at once.

pub mod oidc;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use serde::Serialize;
use sha2::Digest;

use dsmon_config::{AuthConfig, UserRule};
pub use dsmon_core::{Caller, Identity, Role};
use dsmon_store::auth_db::{AuditEntry, UserRecord};
use dsmon_store::{AuthStore, StoreError};

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
    #[error("no user {0} has signed in")]
    UnknownUser(String),
    #[error("{0} is an admin in the configuration file; change it there")]
    ConfigAdmin(String),
    #[error("sign-in storage failed: {0}")]
    Db(#[from] StoreError),
    #[error("sign-in state lock poisoned")]
    Poisoned,
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
#[derive(Debug, Clone, Serialize)]
pub struct UserView {
    pub email: String,
    pub name: Option<String>,
    /// The role in effect (`None`: not authorized).
    pub role: Option<Role>,
    /// Where it comes from: "config" (admins/users lists), "admin" (set on the users page), "none".
    pub role_source: &'static str,
    pub config_admin: bool,
    pub blocked: bool,
    pub first_seen: i64,
    pub last_sign_in: Option<i64>,
}

/// A change an Admin makes on the users page: `{"role": "admin" | "user" | null}` (null: back to
/// the configuration) and/or `{"blocked": bool}` — as `POST /api/users/EMAIL` and the desktop app's
/// `change_user` command take it.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserChange {
    #[serde(default, deserialize_with = "some_or_null")]
    pub role: Option<Option<Role>>,
    pub blocked: Option<bool>,
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
                "expected {{\"role\": \"admin\" | \"user\" | null, \"blocked\": true | false}}: {e}"
            )
        })?;
        if change.role.is_none() && change.blocked.is_none() {
            return Err("nothing to change: give role and/or blocked".into());
        }
        Ok(change)
    }
}

#[derive(Debug, Clone, Serialize)]
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

/// How long a started sign-in may take, and how many may be pending at once.
const ATTEMPT_TTL: Duration = Duration::from_secs(600);
const MAX_ATTEMPTS: usize = 10_000;

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

/// The role of an identity under the configuration and what Admins set; `Err` is why none.
pub fn resolve_role(
    cfg: &AuthConfig,
    email: &str,
    hd: Option<&str>,
    record: Option<&UserRecord>,
) -> std::result::Result<(Role, &'static str), AuthError> {
    if cfg.admins.iter().any(|a| a == email) {
        return Ok((Role::Admin, "config"));
    }
    if record.is_some_and(|r| r.blocked) {
        return Err(AuthError::Blocked(email.to_string()));
    }
    if let Some(role) = record.and_then(|r| r.role) {
        return Ok((role, "admin"));
    }
    let listed = cfg.users.iter().any(|rule| match rule {
        UserRule::Email(e) => e == email,
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
        Ok(Self {
            oidc: oidc::Oidc::new(&cfg)?,
            db: store,
            cfg,
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
        let who = match e {
            AuthError::Unverified(e) | AuthError::NotAuthorized(e) | AuthError::Blocked(e) => {
                Some(e.as_str())
            }
            _ => None,
        };
        self.audit(who, "sign_in_refused", who, Some(&format!("{e} ({via})")));
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
        audit_to(&*self.db, actor, action, target, detail);
    }

    /// Starts a sign-in that will return to `next` (a same-site path).
    pub async fn begin(&self, next: &str) -> Result<Started> {
        let (url, attempt) = self.oidc.authorize_url(None).await?;
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
        blocking(move || db.put_pending(&key, &data, t, expires, MAX_ATTEMPTS)).await?;
        Ok(Started {
            url,
            state: attempt.state,
        })
    }

    /// Finishes a sign-in from the provider's redirect: `state` and `code` (or `error`) from the
    /// query, `browser_state` from the cookie set by [`Auth::begin`]. Every refusal is audited.
    pub async fn finish(
        &self,
        state: Option<&str>,
        browser_state: Option<&str>,
        code: Option<&str>,
        provider_error: Option<&str>,
    ) -> Result<SignedIn> {
        let r = self
            .finish_inner(state, browser_state, code, provider_error)
            .await;
        self.audited(r, "web")
    }

    /// Admits a verified identity that signed in elsewhere (the desktop app's loopback sign-in):
    /// the same role rules, session and audit as a web sign-in. Refusals are audited. Blocks: call
    /// it off the async threads.
    pub fn admit(&self, id: Identity, via: &str) -> Result<SignedIn> {
        self.audited(self.admit_inner(id, "/".into(), via), via)
    }

    /// `POST /auth/token`: exchanges an ID token the desktop app obtained for its own client
    /// (`[auth] desktop_client_id`) for a session of this server. Each token is taken once.
    pub async fn exchange_id_token(&self, raw: &str) -> Result<SignedIn> {
        let r = self.exchange_inner(raw).await;
        self.audited(r, "desktop token exchange")
    }

    async fn exchange_inner(&self, raw: &str) -> Result<SignedIn> {
        let audience = self.cfg.desktop_client_id.as_deref().ok_or_else(|| {
            AuthError::Refused(
                "this server accepts no desktop sign-in ([auth] desktop_client_id is not set)"
                    .into(),
            )
        })?;
        let id = self.oidc.verify_foreign(raw, audience).await?;
        let (db, key, t) = (Arc::clone(&self.db), hash_session(raw.trim()), now());
        let expires = id.expires_at;
        if !blocking(move || db.mark_used(&key, t, expires)).await? {
            return Err(AuthError::InvalidToken(
                "this ID token was already exchanged".into(),
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
        let (cfg, db) = (self.cfg.clone(), Arc::clone(&self.db));
        tokio::task::spawn_blocking(move || admit_with(&cfg, &*db, id, next, via))
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
        admit_with(&self.cfg, &*self.db, id, next, via)
    }

    /// The caller behind a session cookie, with the role resolved now; `None` when the session is
    /// unknown or expired, or its user is blocked or no longer in any role (the session then ends).
    pub fn session(&self, token: &str) -> Result<Option<Caller>> {
        let h = hash_session(token);
        let Some(u) = self.db.session_user(&h, now())? else {
            return Ok(None);
        };
        match resolve_role(&self.cfg, &u.email, u.hd.as_deref(), Some(&u)) {
            Ok((role, _)) => Ok(Some(Caller {
                email: u.email,
                name: u.name,
                role,
            })),
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

    pub fn logout(&self, token: &str, caller: Option<&Caller>) -> Result<()> {
        self.db.delete_session(&hash_session(token))?;
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
                let config_admin = self.cfg.admins.contains(&u.email);
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
                }
            })
            .collect())
    }

    fn changeable(&self, email: &str) -> Result<String> {
        let email = email.trim().to_lowercase();
        if self.cfg.admins.contains(&email) {
            return Err(AuthError::ConfigAdmin(email));
        }
        if self.db.user(&email)?.is_none() {
            return Err(AuthError::UnknownUser(email));
        }
        Ok(email)
    }

    /// Sets (or with `None` clears, back to the configuration) a user's role.
    pub fn set_role(&self, actor: &Caller, email: &str, role: Option<Role>) -> Result<()> {
        let email = self.changeable(email)?;
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
        if !self.db.set_blocked(&email, blocked)? {
            return Err(AuthError::UnknownUser(email));
        }
        let action = if blocked { "blocked" } else { "unblocked" };
        self.audit(Some(&actor.email), action, Some(&email), None);
        Ok(())
    }

    /// Applies `change` by `actor` (the role first, then the block); returns the new users list.
    pub fn change_user(
        &self,
        actor: &Caller,
        email: &str,
        change: UserChange,
    ) -> Result<Vec<UserView>> {
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

/// Admits a verified identity: its role under the rules, a new session, the audit entry.
fn admit_with(
    cfg: &AuthConfig,
    db: &dyn AuthStore,
    id: Identity,
    next: String,
    via: &str,
) -> Result<SignedIn> {
    if !id.email_verified {
        return Err(AuthError::Unverified(id.email));
    }
    let t = now();
    let record = db.user(&id.email)?;
    let resolved = resolve_role(cfg, &id.email, id.hd.as_deref(), record.as_ref());
    // Remember every verified identity, so an Admin can see and admit who tried.
    db.upsert_user(&id, t, resolved.is_ok())?;
    let (role, _) = resolved?;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| AuthError::Provider(format!("no randomness for a session id: {e}")))?;
    let session = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let ttl = cfg.session_ttl;
    db.create_session(
        &hash_session(&session),
        &id.email,
        t,
        t + ttl.as_secs() as i64,
    )?;
    audit_to(
        db,
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

/// See [`Auth::audit`].
fn audit_to(
    db: &dyn AuthStore,
    actor: Option<&str>,
    action: &str,
    target: Option<&str>,
    detail: Option<&str>,
) {
    match action {
        "sign_in_refused" | "access_denied" => {
            tracing::warn!(actor, action, target, detail, "audit")
        }
        _ => tracing::info!(actor, action, target, detail, "audit"),
    }
    if let Err(e) = db.audit(now(), actor, action, target, detail) {
        tracing::error!(error = %e, action, "cannot write the audit log");
    }
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
            name: None,
            hd: None,
            role,
            blocked,
            first_seen: 0,
            last_sign_in: None,
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
