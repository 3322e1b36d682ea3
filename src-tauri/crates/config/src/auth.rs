//! `[auth]`: OpenID Connect sign-in and who gets which role. The client secret never appears in a
//! message.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::{de_duration, is_loopback, KeyError};

/// `[auth]`: OpenID Connect sign-in (Google by default) and who gets which role.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthConfig {
    /// The provider; every endpoint comes from its discovery document.
    pub issuer: Url,
    pub client_id: String,
    pub client_secret: Secret,
    /// Where the provider sends the browser back to `dsmon serve`; its path is `/auth/callback`.
    /// Required by `dsmon serve`; the desktop app signs in through a loopback address of its own.
    pub redirect_url: Option<Url>,
    /// `dsmon serve` only: the client id of the desktop app. ID tokens issued to it may be
    /// exchanged at `POST /auth/token` for a session (the desktop app's remote mode).
    pub desktop_client_id: Option<String>,
    /// Always Admin (lowercased emails); cannot be blocked or demoted from the users page.
    pub admins: Vec<String>,
    /// Users by exact email, or `*@domain` matched against the verified `hd` claim.
    pub users: Vec<UserRule>,
    /// The absolute lifetime of a session: it ends this long after its sign-in, however much it
    /// is used (default 12h).
    pub session_ttl: Duration,
    /// A session not used for this long ends (default 1h; an open live view counts as use).
    pub session_idle: Duration,
    /// How long a sign-in is trusted without the provider confirming the account again (default
    /// 1h, as long as a Google ID token lives). dsmon keeps no refresh token, so the confirmation
    /// is a new sign-in: past this, the API answers 401 and pages send the browser to sign in, which
    /// a suspended or deleted account at the provider cannot pass.
    pub recheck: Duration,
    /// Budget for each request to the provider.
    pub timeout: Duration,
    /// How long audit entries are kept (default 400 days).
    pub audit_retention: Duration,
}

/// An entry of `[auth] users`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserRule {
    Email(String),
    /// `*@domain`: a Google Workspace domain, matched against the ID token's `hd` claim.
    Domain(String),
}

/// A secret that never shows in logs, `Debug` output or error messages.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Self {
        Self(s)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// `[auth]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAuth {
    issuer: Option<String>,
    client_id: String,
    client_secret: Option<String>,
    client_secret_file: Option<PathBuf>,
    redirect_url: Option<String>,
    desktop_client_id: Option<String>,
    #[serde(default)]
    admins: Vec<String>,
    #[serde(default)]
    users: Vec<String>,
    #[serde(default, deserialize_with = "de_duration")]
    session_ttl: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    session_idle: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    recheck: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    timeout: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    audit_retention: Option<Duration>,
}

fn err(key: &str, message: impl Into<String>) -> KeyError {
    KeyError::at("auth", key, message)
}

/// Checks `[auth]`; a relative `client_secret_file` is taken relative to `base_dir`.
pub(crate) fn validate(a: RawAuth, base_dir: &Path) -> Result<AuthConfig, KeyError> {
    let issuer = issuer(a.issuer.as_deref().unwrap_or("https://accounts.google.com"))?;
    let client_id = a.client_id.trim().to_string();
    if client_id.is_empty() {
        return Err(err("client_id", "must not be empty"));
    }
    let client_secret = client_secret(a.client_secret, a.client_secret_file, base_dir)?;
    let redirect_url = a.redirect_url.as_deref().map(redirect_url).transpose()?;
    let desktop_client_id = match a.desktop_client_id.as_deref().map(str::trim) {
        Some("") => return Err(err("desktop_client_id", "must not be empty")),
        Some(id) => Some(id.to_string()),
        None => None,
    };
    let admins = admins(&a.admins)?;
    let users = users(&a.users)?;
    // Seconds are allowed (tests use them); a session needs at least one.
    let session_ttl = a.session_ttl.unwrap_or(Duration::from_secs(12 * 3600));
    if session_ttl < Duration::from_secs(1) || session_ttl > Duration::from_secs(90 * 86_400) {
        return Err(err("session_ttl", "must be between 1s and 90d"));
    }
    let session_idle = a.session_idle.unwrap_or(Duration::from_secs(3600));
    if session_idle < Duration::from_secs(1) || session_idle > Duration::from_secs(90 * 86_400) {
        return Err(err("session_idle", "must be between 1s and 90d"));
    }
    let recheck = a.recheck.unwrap_or(Duration::from_secs(3600));
    if recheck < Duration::from_secs(1) || recheck > Duration::from_secs(7 * 86_400) {
        return Err(err(
            "recheck",
            "must be between 1s and 7d: a suspended account keeps its session this long",
        ));
    }
    let timeout = a.timeout.unwrap_or(Duration::from_secs(10));
    if timeout < Duration::from_millis(100) || timeout > Duration::from_secs(60) {
        return Err(err("timeout", "must be between 100ms and 60s"));
    }
    let audit_retention = a
        .audit_retention
        .unwrap_or(Duration::from_secs(400 * 86_400));
    if audit_retention < Duration::from_secs(86_400) {
        return Err(err("audit_retention", "must be at least 1d"));
    }
    Ok(AuthConfig {
        issuer,
        client_id,
        client_secret: Secret::new(client_secret),
        redirect_url,
        desktop_client_id,
        admins,
        users,
        session_ttl,
        session_idle,
        recheck,
        timeout,
        audit_retention,
    })
}

/// The provider's URL: https (plain http only on loopback, for tests), no query or fragment.
fn issuer(text: &str) -> Result<Url, KeyError> {
    let issuer =
        Url::parse(text.trim()).map_err(|e| err("issuer", format!("{text:?}: not a URL ({e})")))?;
    match issuer.scheme() {
        "https" => {}
        "http" if is_loopback(&issuer) => {}
        _ => {
            return Err(err(
                "issuer",
                format!(
                    "{text:?}: the issuer must use https (plain http only on loopback, for tests)"
                ),
            ))
        }
    }
    if issuer.query().is_some() || issuer.fragment().is_some() {
        return Err(err(
            "issuer",
            format!("{text:?}: an issuer has no query or fragment"),
        ));
    }
    Ok(issuer)
}

/// The secret itself or the file holding it (exactly one of them), not empty.
fn client_secret(
    secret: Option<String>,
    file: Option<PathBuf>,
    base_dir: &Path,
) -> Result<String, KeyError> {
    let secret = match (secret, file) {
        (Some(_), Some(_)) => {
            return Err(err(
                "client_secret_file",
                "give either client_secret or client_secret_file, not both",
            ))
        }
        (None, None) => {
            return Err(err(
                "client_secret_file",
                "missing: give client_secret_file (a file holding the secret) or client_secret",
            ))
        }
        (Some(s), None) => s.trim().to_string(),
        (None, Some(p)) => {
            let p = base_dir.join(p);
            std::fs::read_to_string(&p)
                .map_err(|e| {
                    err(
                        "client_secret_file",
                        format!("{}: cannot read ({e})", p.display()),
                    )
                })?
                .trim()
                .to_string()
        }
    };
    if secret.is_empty() {
        return Err(err("client_secret", "the client secret is empty"));
    }
    Ok(secret)
}

/// This server's `/auth/callback` address, https unless on loopback.
fn redirect_url(text: &str) -> Result<Url, KeyError> {
    let u = Url::parse(text.trim())
        .map_err(|e| err("redirect_url", format!("{text:?}: not a URL ({e})")))?;
    if !matches!(u.scheme(), "http" | "https") || u.path() != "/auth/callback" {
        return Err(err(
            "redirect_url",
            format!(
                "{text:?}: must be this server's http(s) address ending in /auth/callback, e.g. \"https://monitor.example.com/auth/callback\""
            ),
        ));
    }
    if u.scheme() == "http" && !is_loopback(&u) {
        return Err(err(
            "redirect_url",
            format!("{text:?}: sign-in cookies need https (plain http only on loopback)"),
        ));
    }
    Ok(u)
}

fn email_ok(e: &str) -> bool {
    let mut parts = e.splitn(2, '@');
    matches!((parts.next(), parts.next()), (Some(l), Some(d)) if !l.is_empty() && d.contains('.') && !d.contains('@') && !e.contains(char::is_whitespace))
}

/// `admins`: email addresses only, lowercased.
fn admins(list: &[String]) -> Result<Vec<String>, KeyError> {
    let mut admins = Vec::new();
    for (i, e) in list.iter().enumerate() {
        let e = e.trim().to_lowercase();
        if !email_ok(&e) || e.starts_with("*@") {
            return Err(err(
                &format!("admins[{i}]"),
                format!(
                    "{e:?}: write one email address per admin (domains are not allowed for admins)"
                ),
            ));
        }
        admins.push(e);
    }
    Ok(admins)
}

/// `users`: email addresses or `*@domain`, lowercased.
fn users(list: &[String]) -> Result<Vec<UserRule>, KeyError> {
    let mut users = Vec::new();
    for (i, e) in list.iter().enumerate() {
        let e = e.trim().to_lowercase();
        if let Some(domain) = e.strip_prefix("*@") {
            if !email_ok(&format!("x@{domain}")) {
                return Err(err(&format!("users[{i}]"), format!("{e:?}: not a domain")));
            }
            users.push(UserRule::Domain(domain.to_string()));
        } else if email_ok(&e) {
            users.push(UserRule::Email(e));
        } else {
            return Err(err(
                &format!("users[{i}]"),
                format!("{e:?}: write an email address or \"*@domain\""),
            ));
        }
    }
    Ok(users)
}
