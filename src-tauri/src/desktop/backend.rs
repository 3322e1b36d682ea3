//! Where the desktop app's data comes from, with the caller's role checked in Rust before anything
//! is returned: `Local` runs the same collector, store, live poller and sign-in code as
//! `dsmon serve` inside the app; `Remote` asks a `dsmon serve` server with a bearer session
//! obtained by exchanging the desktop's ID token, and that server's roles apply. Nothing here knows
//! Tauri: the commands in `commands.rs` are thin over it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::watch;

use crate::auth::loopback;
use crate::auth::oidc::Oidc;
use crate::auth::{Auth, AuthError, Caller, Role, UserChange};
use crate::collector::Collector;
use crate::config::{Config, DesktopMode};
use crate::export;
use crate::history::{self, HistoryQuery, DEFAULT_POINTS};
use crate::live::LiveSnapshot;
use crate::store::Store;

/// Every error a desktop command can return, serialised for the page as
/// `{"kind": "...", "message": "..."}`.
#[derive(Debug, Clone, thiserror::Error, Serialize)]
#[serde(tag = "kind", content = "message", rename_all = "snake_case")]
pub enum DesktopError {
    #[error("not signed in")]
    NotSignedIn,
    /// Signed in, but the role does not allow it.
    #[error("{0}")]
    Forbidden(String),
    /// Signed in at the provider, but this identity has no role here.
    #[error("{0}")]
    NotAuthorized(String),
    #[error("{0}")]
    BadRequest(String),
    /// The configuration file does not load; the Settings page can fix it.
    #[error("{0}")]
    Config(String),
    /// The sign-in provider, the browser or the remote server failed.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl DesktopError {
    fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "desktop command failed");
        Self::Internal(e.to_string())
    }
}

impl From<AuthError> for DesktopError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::NotAuthorized(_) | AuthError::Blocked(_) | AuthError::Unverified(_) => {
                Self::NotAuthorized(e.to_string())
            }
            AuthError::UnknownUser(_) | AuthError::ConfigAdmin(_) => {
                Self::BadRequest(e.to_string())
            }
            AuthError::Db(_) | AuthError::Poisoned => Self::internal(e),
            other => Self::Unavailable(other.to_string()),
        }
    }
}

/// Who is signed in, as the page's `me()` expects it (the server's `/api/me` plus the desktop's
/// mode).
#[derive(Debug, Clone, Serialize)]
pub struct Me {
    pub email: Option<String>,
    pub name: Option<String>,
    pub role: Role,
    /// False when no sign-in is configured (a single-user local tool).
    pub auth: bool,
    pub desktop: bool,
    /// "local" or "remote".
    pub mode: &'static str,
    pub server: Option<String>,
}

/// The history page's parameters, as `/api/history` takes them.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct HistoryArgs {
    pub from: Option<String>,
    pub to: Option<String>,
    pub points: Option<usize>,
    #[serde(default)]
    pub node: Vec<String>,
}

pub struct Local {
    pub cfg: Config,
    reader: Arc<Mutex<Store>>,
    pub live: watch::Receiver<Arc<LiveSnapshot>>,
    auth: Option<Arc<Auth>>,
    stop: watch::Sender<bool>,
    logger: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

pub struct Remote {
    pub cfg: Config,
    pub base: url::Url,
    pub http: reqwest::Client,
    oidc: Oidc,
    stop: watch::Sender<bool>,
}

// Boxed variants: the configuration and the OpenID Connect client are large.
pub enum Backend {
    Local(Box<Local>),
    Remote(Box<Remote>),
    /// The configuration does not load: only the Settings page works.
    Broken(String),
}

/// The session of whoever signed in to this app (local: a session of the app's own database;
/// remote: the server's bearer session). Kept in memory only.
pub type Session = Arc<Mutex<Option<String>>>;

fn session_of(s: &Session) -> Option<String> {
    s.lock().ok().and_then(|g| g.clone())
}

fn set_session(s: &Session, v: Option<String>) {
    if let Ok(mut g) = s.lock() {
        *g = v;
    }
}

impl Backend {
    /// Starts the backend `cfg` asks for (local: collector, logger and live poller begin now).
    pub fn start(cfg: Config) -> Self {
        match Self::try_start(cfg) {
            Ok(b) => b,
            Err(e) => Backend::Broken(e.to_string()),
        }
    }

    fn try_start(cfg: Config) -> Result<Self, DesktopError> {
        let (stop, stop_rx) = watch::channel(false);
        match cfg.desktop.clone() {
            DesktopMode::Local => {
                let collector =
                    Collector::new(&cfg).map_err(|e| DesktopError::Config(e.to_string()))?;
                let store = Store::open(&cfg.storage.path)
                    .map_err(|e| DesktopError::Config(e.to_string()))?;
                let reader = Store::open(&cfg.storage.path)
                    .map_err(|e| DesktopError::Config(e.to_string()))?;
                let auth = match &cfg.auth {
                    Some(a) => Some(Arc::new(
                        Auth::new(a.clone(), &cfg.storage.path)
                            .map_err(|e| DesktopError::Config(e.to_string()))?,
                    )),
                    None => None,
                };
                let collector = Arc::new(collector);
                collector.leave_state_to_live_poller();
                let live = crate::live::spawn(Arc::clone(&collector), stop_rx.clone());
                let store = Arc::new(Mutex::new(store));
                let logger =
                    tokio::spawn(async move { collector.run_logger(store, stop_rx).await });
                tracing::info!(
                    nodes = cfg.nodes.len(),
                    database = %cfg.storage.path.display(),
                    "desktop app: local collector started"
                );
                Ok(Backend::Local(Box::new(Local {
                    cfg,
                    reader: Arc::new(Mutex::new(reader)),
                    live,
                    auth,
                    stop,
                    logger: Mutex::new(Some(logger)),
                })))
            }
            DesktopMode::Remote(base) => {
                let a = cfg.auth.as_ref().ok_or_else(|| {
                    DesktopError::Config("remote mode needs [auth] (the desktop client)".into())
                })?;
                let oidc = Oidc::new(a).map_err(|e| DesktopError::Config(e.to_string()))?;
                let http = reqwest::Client::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .map_err(DesktopError::internal)?;
                tracing::info!(server = %base, "desktop app: remote mode");
                Ok(Backend::Remote(Box::new(Remote {
                    cfg,
                    base,
                    http,
                    oidc,
                    stop,
                })))
            }
        }
    }

    /// Stops the collector (finishing a tick in progress) or the remote stream.
    pub async fn stop(&self) {
        match self {
            Backend::Local(l) => {
                let _ = l.stop.send(true);
                let logger = l.logger.lock().ok().and_then(|mut g| g.take());
                if let Some(h) = logger {
                    let _ = tokio::time::timeout(Duration::from_secs(30), h).await;
                }
            }
            Backend::Remote(r) => {
                let _ = r.stop.send(true);
            }
            Backend::Broken(_) => {}
        }
    }

    pub fn stopped(&self) -> Option<watch::Receiver<bool>> {
        match self {
            Backend::Local(l) => Some(l.stop.subscribe()),
            Backend::Remote(r) => Some(r.stop.subscribe()),
            Backend::Broken(_) => None,
        }
    }

    /// The local caller with the role resolved now (as `dsmon serve` does per request).
    fn local_caller(l: &Local, session: &Session) -> Result<Caller, DesktopError> {
        match &l.auth {
            None => Ok(Caller {
                email: "local".into(),
                name: None,
                role: Role::Admin,
            }),
            Some(auth) => {
                let token = session_of(session).ok_or(DesktopError::NotSignedIn)?;
                match auth.session(&token)? {
                    Some(c) => Ok(c),
                    None => {
                        set_session(session, None);
                        Err(DesktopError::NotSignedIn)
                    }
                }
            }
        }
    }

    /// The local caller if it has `need`; a refusal is audited like the server's.
    fn require(
        l: &Local,
        session: &Session,
        need: Role,
        what: &str,
    ) -> Result<Caller, DesktopError> {
        let c = Self::local_caller(l, session)?;
        if need == Role::Admin && c.role != Role::Admin {
            if let Some(auth) = &l.auth {
                auth.denied(&c, what);
            }
            return Err(DesktopError::Forbidden(format!(
                "{what} needs the Admin role; {} is a User",
                c.email
            )));
        }
        Ok(c)
    }

    /// Whether anybody with a role is signed in (the live events are sent only then).
    pub fn may_view(&self, session: &Session) -> bool {
        match self {
            Backend::Local(l) => Self::local_caller(l, session).is_ok(),
            Backend::Remote(_) => session_of(session).is_some(),
            Backend::Broken(_) => false,
        }
    }

    pub async fn me(&self, session: &Session) -> Result<Me, DesktopError> {
        match self {
            Backend::Local(l) => {
                let c = Self::local_caller(l, session)?;
                Ok(Me {
                    email: l.auth.as_ref().map(|_| c.email),
                    name: c.name,
                    role: c.role,
                    auth: l.auth.is_some(),
                    desktop: true,
                    mode: "local",
                    server: None,
                })
            }
            Backend::Remote(r) => {
                let v = r.get(session, "/api/me").await?;
                let role = serde_json::from_value::<Role>(v["role"].clone())
                    .map_err(|e| DesktopError::Unavailable(format!("the server's /api/me: {e}")))?;
                Ok(Me {
                    email: v["email"].as_str().map(str::to_string),
                    name: v["name"].as_str().map(str::to_string),
                    role,
                    auth: true,
                    desktop: true,
                    mode: "remote",
                    server: Some(r.base.to_string()),
                })
            }
            Backend::Broken(e) => Err(DesktopError::Config(e.clone())),
        }
    }

    pub async fn live(&self, session: &Session) -> Result<Value, DesktopError> {
        match self {
            Backend::Local(l) => {
                Self::require(l, session, Role::User, "the live view")?;
                let snap = l.live.borrow().clone();
                serde_json::to_value(&*snap).map_err(DesktopError::internal)
            }
            Backend::Remote(r) => r.get(session, "/api/live").await,
            Backend::Broken(e) => Err(DesktopError::Config(e.clone())),
        }
    }

    pub async fn history(
        &self,
        session: &Session,
        args: HistoryArgs,
    ) -> Result<Value, DesktopError> {
        match self {
            Backend::Local(l) => {
                Self::require(l, session, Role::Admin, "history")?;
                let (from, to) = export::history_range(
                    args.from.as_deref(),
                    args.to.as_deref(),
                    chrono::Utc::now(),
                )
                .map_err(|e| DesktopError::BadRequest(e.to_string()))?;
                let q = HistoryQuery {
                    from,
                    to,
                    points: args.points.unwrap_or(DEFAULT_POINTS),
                    nodes: args.node,
                };
                let reader = Arc::clone(&l.reader);
                let configured: Vec<String> = l.cfg.nodes.iter().map(|n| n.name.clone()).collect();
                let log_interval = l.cfg.collector.log_interval.as_secs() as i64;
                tokio::task::spawn_blocking(move || {
                    let store = reader
                        .lock()
                        .map_err(|_| DesktopError::internal("reader lock poisoned"))?;
                    let h =
                        history::query(&store, &q, &configured, log_interval).map_err(
                            |e| match e {
                                history::HistoryError::Store(e) => DesktopError::internal(e),
                                other => DesktopError::BadRequest(other.to_string()),
                            },
                        )?;
                    serde_json::to_value(&h).map_err(DesktopError::internal)
                })
                .await
                .map_err(DesktopError::internal)?
            }
            Backend::Remote(r) => {
                let query = {
                    let mut q = url::form_urlencoded::Serializer::new(String::new());
                    if let Some(f) = &args.from {
                        q.append_pair("from", f);
                    }
                    if let Some(t) = &args.to {
                        q.append_pair("to", t);
                    }
                    if let Some(p) = args.points {
                        q.append_pair("points", &p.to_string());
                    }
                    for n in &args.node {
                        q.append_pair("node", n);
                    }
                    q.finish()
                };
                r.get(session, &format!("/api/history?{query}")).await
            }
            Backend::Broken(e) => Err(DesktopError::Config(e.clone())),
        }
    }

    fn local_auth(l: &Local) -> Result<&Arc<Auth>, DesktopError> {
        l.auth.as_ref().ok_or_else(|| {
            DesktopError::BadRequest("no sign-in is configured ([auth]): there are no users".into())
        })
    }

    pub async fn users(&self, session: &Session) -> Result<Value, DesktopError> {
        match self {
            Backend::Local(l) => {
                Self::require(l, session, Role::Admin, "user administration")?;
                let list = Self::local_auth(l)?.users()?;
                serde_json::to_value(list).map_err(DesktopError::internal)
            }
            Backend::Remote(r) => r.get(session, "/api/users").await,
            Backend::Broken(e) => Err(DesktopError::Config(e.clone())),
        }
    }

    /// `change`: `{"role": "admin" | "user" | null}` and/or `{"blocked": bool}`, as the server takes it.
    pub async fn change_user(
        &self,
        session: &Session,
        email: &str,
        change: Value,
    ) -> Result<Value, DesktopError> {
        match self {
            Backend::Local(l) => {
                let actor = Self::require(l, session, Role::Admin, "user administration")?;
                let auth = Self::local_auth(l)?;
                let bytes = serde_json::to_vec(&change).map_err(DesktopError::internal)?;
                let change = UserChange::parse(&bytes).map_err(DesktopError::BadRequest)?;
                serde_json::to_value(auth.change_user(&actor, email, change)?)
                    .map_err(DesktopError::internal)
            }
            Backend::Remote(r) => {
                let path = format!(
                    "/api/users/{}",
                    url::form_urlencoded::byte_serialize(email.as_bytes()).collect::<String>()
                );
                r.send(session, r.http.post(r.url(&path)?).json(&change))
                    .await
            }
            Backend::Broken(e) => Err(DesktopError::Config(e.clone())),
        }
    }

    pub async fn audit(
        &self,
        session: &Session,
        offset: i64,
        limit: i64,
    ) -> Result<Value, DesktopError> {
        match self {
            Backend::Local(l) => {
                Self::require(l, session, Role::Admin, "the audit log")?;
                if offset < 0 || !(1..=500).contains(&limit) {
                    return Err(DesktopError::BadRequest(
                        "offset must be >= 0 and limit within 1..500".into(),
                    ));
                }
                let page = Self::local_auth(l)?.audit_page(offset, limit)?;
                serde_json::to_value(page).map_err(DesktopError::internal)
            }
            Backend::Remote(r) => {
                r.get(
                    session,
                    &format!("/api/audit?offset={offset}&limit={limit}"),
                )
                .await
            }
            Backend::Broken(e) => Err(DesktopError::Config(e.clone())),
        }
    }

    /// Signs in through the system browser (`open`), then: local, the app's own role rules and
    /// session; remote, the ID token is exchanged at the server for its bearer session.
    pub async fn sign_in(
        &self,
        session: &Session,
        open: impl FnOnce(&url::Url) -> Result<(), String>,
        timeout: Duration,
    ) -> Result<Me, DesktopError> {
        match self {
            Backend::Local(l) => {
                let auth = Self::local_auth(l)?;
                let verified = loopback::sign_in(auth.oidc(), open, timeout).await?;
                let signed = auth.admit(verified.identity, "desktop app")?;
                set_session(session, Some(signed.session));
            }
            Backend::Remote(r) => {
                let verified = loopback::sign_in(&r.oidc, open, timeout).await?;
                let resp = r
                    .http
                    .post(r.url("/auth/token")?)
                    .json(&serde_json::json!({ "id_token": verified.id_token }))
                    .send()
                    .await
                    .map_err(|e| r.unreachable(e))?;
                // At the token exchange a 403 means this identity has no role on the server.
                let v = match Remote::answer(resp).await {
                    Err(DesktopError::Forbidden(m)) => return Err(DesktopError::NotAuthorized(m)),
                    r => r?,
                };
                let token = v["session"].as_str().ok_or_else(|| {
                    DesktopError::Unavailable("the server sent no session".into())
                })?;
                set_session(session, Some(token.to_string()));
            }
            Backend::Broken(e) => return Err(DesktopError::Config(e.clone())),
        }
        self.me(session).await
    }

    pub async fn sign_out(&self, session: &Session) -> Result<(), DesktopError> {
        let Some(token) = session_of(session) else {
            return Ok(());
        };
        set_session(session, None);
        match self {
            Backend::Local(l) => {
                if let Some(auth) = &l.auth {
                    let caller = auth.session(&token)?;
                    auth.logout(&token, caller.as_ref())?;
                }
            }
            Backend::Remote(r) => {
                let req = r.http.post(r.url("/auth/logout")?).bearer_auth(&token);
                if let Err(e) = req.send().await {
                    tracing::warn!(error = %e, "could not tell the server about the sign-out");
                }
            }
            Backend::Broken(_) => {}
        }
        Ok(())
    }

    /// Whether settings may be changed by this caller: an Admin, or anyone when there is no
    /// sign-in or the file is broken (the workstation's owner, who can edit the file anyway).
    pub async fn may_change_settings(&self, session: &Session) -> Result<(), DesktopError> {
        match self {
            Backend::Broken(_) => Ok(()),
            Backend::Local(l) => Self::require(l, session, Role::Admin, "settings").map(|_| ()),
            Backend::Remote(_) => match self.me(session).await {
                Ok(me) if me.role == Role::Admin => Ok(()),
                Ok(_) => Err(DesktopError::Forbidden(
                    "settings need the Admin role".into(),
                )),
                // Not signed in to the server (or it is down): the workstation's settings
                // (e.g. a wrong server address) must stay fixable.
                Err(DesktopError::NotSignedIn) | Err(DesktopError::Unavailable(_)) => Ok(()),
                Err(e) => Err(e),
            },
        }
    }
}

impl Remote {
    fn url(&self, path: &str) -> Result<url::Url, DesktopError> {
        self.base
            .join(path)
            .map_err(|e| DesktopError::BadRequest(format!("{path}: {e}")))
    }

    fn unreachable(&self, e: reqwest::Error) -> DesktopError {
        DesktopError::Unavailable(format!("cannot reach the server {}: {e}", self.base))
    }

    async fn get(&self, session: &Session, path: &str) -> Result<Value, DesktopError> {
        self.send(session, self.http.get(self.url(path)?)).await
    }

    async fn send(
        &self,
        session: &Session,
        req: reqwest::RequestBuilder,
    ) -> Result<Value, DesktopError> {
        let token = session_of(session).ok_or(DesktopError::NotSignedIn)?;
        let resp = req
            .bearer_auth(&token)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let r = Self::answer(resp).await;
        if matches!(r, Err(DesktopError::NotSignedIn)) {
            set_session(session, None);
        }
        r
    }

    /// The server's JSON answer, or its `{"error"}` as the matching error.
    async fn answer(resp: reqwest::Response) -> Result<Value, DesktopError> {
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let msg = body["error"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("the server answered {status}"));
        Err(match status.as_u16() {
            401 => DesktopError::NotSignedIn,
            403 => DesktopError::Forbidden(msg),
            400 | 404 | 409 => DesktopError::BadRequest(msg),
            _ => DesktopError::Unavailable(msg),
        })
    }
}
