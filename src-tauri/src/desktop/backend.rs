//! Where the desktop app's data comes from. `Local` runs the same engine, store and application
//! layer as `dsmon serve` inside the app; `Remote` asks a `dsmon serve` server with a bearer
//! session obtained by exchanging the desktop's ID token, and that server's roles apply. Both
//! answer the same [`Request`]s with the same [`AppError`] kinds; every role check is the
//! application layer's (here or on the server). Nothing here knows Tauri: the commands in
//! `commands.rs` are thin over it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::watch;

use dsmon_app::{App, AppError, ErrorKind, HistoryRequest, Request, Who};
use dsmon_auth::oidc::Oidc;
use dsmon_auth::Auth;
use dsmon_config::settings::{Settings, SettingsView};
use dsmon_config::{Config, DesktopMode};
use dsmon_core::Role;
use dsmon_engine::{Collector, LiveSnapshot};
use dsmon_server::loopback;
use dsmon_store::{SqliteAuthStore, SqliteStore};

pub type Result<T> = std::result::Result<T, AppError>;

/// The configuration does not load (the Settings page can fix it).
pub(super) fn config_error(e: impl std::fmt::Display) -> AppError {
    AppError::new(ErrorKind::Config, e.to_string())
}

/// Who is signed in, as the page's `me()` expects it: the server's `/api/me` plus the desktop's
/// mode.
#[derive(Debug, Clone, Serialize)]
pub struct Me {
    #[serde(flatten)]
    pub me: dsmon_app::Me,
    pub desktop: bool,
    /// "local" or "remote".
    pub mode: &'static str,
    pub server: Option<String>,
}

pub struct Local {
    pub cfg: Config,
    pub app: App,
    /// The engine, for its node events (notifications).
    pub collector: Arc<Collector>,
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

pub use super::session::Session;

fn session_of(s: &Session) -> Option<String> {
    s.get()
}

impl Backend {
    /// Starts the backend `cfg` asks for (local: collector, logger and live poller begin now).
    pub fn start(cfg: Config) -> Self {
        let result = match cfg.desktop.clone() {
            DesktopMode::Local => Local::start(cfg).map(|l| Backend::Local(Box::new(l))),
            DesktopMode::Remote(base) => {
                Remote::start(cfg, base).map(|r| Backend::Remote(Box::new(r)))
            }
        };
        result.unwrap_or_else(|e| Backend::Broken(e.message))
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

    /// Whether anybody with a role is signed in (the live events are sent only then).
    pub async fn may_view(&self, session: &Session) -> bool {
        match self {
            Backend::Local(l) => l
                .access(session, "live")
                .await
                .is_ok_and(|a| l.app.live(&a).is_ok()),
            Backend::Remote(_) => session_of(session).is_some(),
            Backend::Broken(_) => false,
        }
    }

    /// Answers a use case: locally through the application layer, remotely through the server.
    pub async fn call(&self, session: &Session, req: Request) -> Result<Value> {
        match self {
            Backend::Local(l) => {
                let access = l.access(session, req.name()).await?;
                l.app.handle(&access, req).await
            }
            Backend::Remote(r) => r.call(session, req).await,
            Backend::Broken(e) => Err(config_error(e)),
        }
    }

    /// The raw rows of a history range as CSV (the application layer's `history_csv`: Admin
    /// only), locally or from the server's `/api/history.csv`.
    pub async fn history_csv(&self, session: &Session, req: HistoryRequest) -> Result<Vec<u8>> {
        match self {
            Backend::Local(l) => {
                let access = l.access(session, "history CSV").await?;
                l.app.history_csv(&access, req).await
            }
            Backend::Remote(r) => {
                let url = r.url(&format!("/api/history.csv?{}", req.to_query()))?;
                let resp = r.fetch(session, r.http.get(url)).await?;
                let body = resp.bytes().await.map_err(|e| r.unreachable(e))?;
                Ok(body.to_vec())
            }
            Backend::Broken(e) => Err(config_error(e)),
        }
    }

    /// The keyring entry (user) this backend's session is kept under: `local <database>` or
    /// `remote <server URL>`; `None` when there is no sign-in (local mode without `[auth]`, or
    /// the configuration does not load).
    pub fn keyring_account(&self) -> Option<String> {
        match self {
            Backend::Local(l) if l.app.auth().is_some() => {
                Some(format!("local {}", l.cfg.storage.path.display()))
            }
            Backend::Local(_) | Backend::Broken(_) => None,
            Backend::Remote(r) => Some(format!("remote {}", r.base)),
        }
    }

    /// Takes the session kept in the keyring for this backend, if any, and checks it: one the
    /// database or server no longer knows is forgotten (in the keyring too); while the server
    /// cannot be reached it is kept.
    pub async fn restore(&self, session: &Session) {
        session.bind(self.keyring_account()).await;
        if session_of(session).is_some() {
            match self.me(session).await {
                Ok(_) => tracing::info!("signed in with the session kept in the keyring"),
                Err(e) => {
                    tracing::info!(error = %e.message, "the kept session was not checked or has ended")
                }
            }
        }
    }

    pub async fn me(&self, session: &Session) -> Result<Me> {
        let me: dsmon_app::Me = serde_json::from_value(self.call(session, Request::Me).await?)
            .map_err(|e| AppError::new(ErrorKind::Unavailable, format!("/api/me: {e}")))?;
        let (mode, server) = match self {
            Backend::Remote(r) => ("remote", Some(r.base.to_string())),
            _ => ("local", None),
        };
        Ok(Me {
            me,
            desktop: true,
            mode,
            server,
        })
    }

    /// Signs in through the system browser (`open`), then: local, the app's own role rules and
    /// session; remote, the ID token is exchanged at the server for its bearer session.
    pub async fn sign_in(
        &self,
        session: &Session,
        open: impl FnOnce(&url::Url) -> std::result::Result<(), String>,
        timeout: Duration,
    ) -> Result<Me> {
        let token = match self {
            Backend::Local(l) => {
                let auth = l.sign_in_configured()?;
                let verified = loopback::sign_in(auth.oidc(), None, open, timeout).await?;
                auth.admit(verified.identity, "desktop app")?.session
            }
            Backend::Remote(r) => r.exchange(open, timeout).await?,
            Backend::Broken(e) => return Err(config_error(e)),
        };
        session.set(Some(token)).await;
        self.me(session).await
    }

    pub async fn sign_out(&self, session: &Session) -> Result<()> {
        let Some(token) = session_of(session) else {
            return Ok(());
        };
        session.set(None).await;
        match self {
            Backend::Local(l) => {
                if let Some(auth) = l.app.auth() {
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

    /// What of the settings this caller may see and change: everything for an Admin (checked by
    /// the application layer, locally or on the server) or while the file is broken (the
    /// workstation's owner, who can edit the file anyway); in remote mode while the server cannot
    /// say (not signed in, unreachable) only the connection (mode, server address), so that a
    /// wrong address stays fixable without opening the rest to whoever sits at the screen.
    pub async fn settings_scope(&self, session: &Session) -> Result<SettingsScope> {
        match self {
            Backend::Broken(_) => Ok(SettingsScope::All),
            Backend::Local(l) => {
                let access = l.access(session, "settings").await?;
                l.app
                    .may_change_settings(&access)
                    .map(|()| SettingsScope::All)
            }
            Backend::Remote(_) => match self.me(session).await {
                Ok(me) if me.me.role == Role::Admin => Ok(SettingsScope::All),
                Ok(_) => Err(AppError::new(
                    ErrorKind::Forbidden,
                    "settings need the Admin role",
                )),
                Err(e) if matches!(e.kind, ErrorKind::NotSignedIn | ErrorKind::Unavailable) => {
                    Ok(SettingsScope::Connection)
                }
                Err(e) => Err(e),
            },
        }
    }
}

/// See [`Backend::settings_scope`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingsScope {
    All,
    /// Only `mode` and `server_url`.
    Connection,
}

impl SettingsScope {
    /// What of `view` this scope shows.
    pub fn view(self, mut view: SettingsView) -> SettingsView {
        if self == SettingsScope::Connection {
            view.settings = Settings {
                mode: view.settings.mode,
                server_url: view.settings.server_url,
                ..Settings::default()
            };
        }
        view
    }

    /// The settings to write: `wanted`, or in the connection scope the file's `current` settings
    /// with only the connection taken from `wanted`.
    pub fn apply(self, wanted: Settings, current: Settings) -> Settings {
        match self {
            SettingsScope::All => wanted,
            SettingsScope::Connection => Settings {
                mode: wanted.mode,
                server_url: wanted.server_url,
                ..current
            },
        }
    }
}

impl Local {
    fn start(cfg: Config) -> Result<Self> {
        let (stop, stop_rx) = watch::channel(false);
        let collector = Collector::new(&cfg).map_err(config_error)?;
        let store = SqliteStore::open(&cfg.storage.path).map_err(config_error)?;
        let reader = SqliteStore::open(&cfg.storage.path).map_err(config_error)?;
        let auth = match &cfg.auth {
            Some(a) => {
                let db = SqliteAuthStore::open(&cfg.storage.path).map_err(config_error)?;
                Some(Arc::new(
                    Auth::new(a.clone(), Arc::new(db)).map_err(config_error)?,
                ))
            }
            None => None,
        };
        let collector = Arc::new(collector);
        collector.leave_state_to_live_poller();
        // [[parents]]: their children join the node set as they are discovered.
        let discovery =
            dsmon_engine::parents::Discovery::new(Arc::clone(&collector), &cfg.nodes, &cfg.parents)
                .map_err(config_error)?;
        Arc::new(discovery).spawn(stop_rx.clone());
        let stop_rx_alerts = stop_rx.clone();
        let live = dsmon_engine::live::spawn(Arc::clone(&collector), stop_rx.clone());
        let store: dsmon_store::SharedSamples = Arc::new(Mutex::new(store));
        let logger = {
            let collector = Arc::clone(&collector);
            tokio::spawn(async move { collector.run_logger(store, stop_rx).await })
        };
        tracing::info!(
            nodes = cfg.nodes.len(),
            database = %cfg.storage.path.display(),
            "desktop app: local collector started"
        );
        let log_interval = cfg.collector.log_interval.as_secs() as i64;
        let reader: dsmon_store::SharedSamples = Arc::new(Mutex::new(reader));
        let alerts = desktop_alerts(&cfg, &reader)?;
        tokio::spawn(Arc::clone(&alerts).run(collector.subscribe(), stop_rx_alerts));
        let app = App::new(live, reader, log_interval, auth).with_alerts(alerts);
        Ok(Self {
            cfg,
            app,
            collector,
            stop,
            logger: Mutex::new(Some(logger)),
        })
    }

    /// The signed-in caller as of now; a session that ended is forgotten.
    async fn access(&self, session: &Session, via: &str) -> Result<dsmon_app::Access> {
        let token = session_of(session);
        let access = self.app.access(token.as_deref(), via).await?;
        if token.is_some() && access.who == Who::Anonymous {
            session.set(None).await;
        }
        Ok(access)
    }

    fn sign_in_configured(&self) -> Result<&Arc<Auth>> {
        self.app.auth().ok_or_else(|| {
            AppError::bad_request("no sign-in is configured ([auth]): there are no users")
        })
    }

    pub fn live_updates(&self) -> watch::Receiver<Arc<LiveSnapshot>> {
        self.app.live_updates()
    }
}

impl Remote {
    fn start(cfg: Config, base: url::Url) -> Result<Self> {
        let a = cfg
            .auth
            .as_ref()
            .ok_or_else(|| config_error("remote mode needs [auth] (the desktop client)"))?;
        let oidc = Oidc::new(a).map_err(config_error)?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(AppError::internal)?;
        tracing::info!(server = %base, "desktop app: remote mode");
        let (stop, _) = watch::channel(false);
        Ok(Self {
            cfg,
            base,
            http,
            oidc,
            stop,
        })
    }

    fn url(&self, path: &str) -> Result<url::Url> {
        self.base
            .join(path)
            .map_err(|e| AppError::bad_request(format!("{path}: {e}")))
    }

    fn unreachable(&self, e: reqwest::Error) -> AppError {
        AppError::new(
            ErrorKind::Unavailable,
            format!("cannot reach the server {}: {e}", self.base),
        )
    }

    /// The server's route for a use case.
    async fn call(&self, session: &Session, req: Request) -> Result<Value> {
        let get =
            |path: String| async move { self.send(session, self.http.get(self.url(&path)?)).await };
        match req {
            Request::Me => get("/api/me".into()).await,
            Request::Live => get("/api/live".into()).await,
            Request::History(h) => get(format!("/api/history?{}", h.to_query())).await,
            Request::Users => get("/api/users".into()).await,
            Request::Audit { offset, limit } => {
                get(format!(
                    "/api/audit?offset={}&limit={}",
                    offset.unwrap_or(0),
                    limit.unwrap_or(50)
                ))
                .await
            }
            Request::ChangeUser { email, change } => {
                let path = format!(
                    "/api/users/{}",
                    url::form_urlencoded::byte_serialize(email.as_bytes()).collect::<String>()
                );
                self.send(session, self.http.post(self.url(&path)?).json(&change))
                    .await
            }
            Request::Alerts => get("/api/alerts".into()).await,
            Request::AlertHistory(h) => get(format!("/api/alerts/history?{}", h.to_query())).await,
            Request::AlertDeliveries { limit } => {
                get(format!(
                    "/api/alerts/deliveries?limit={}",
                    limit.unwrap_or(200)
                ))
                .await
            }
            Request::AlertConfig => get("/api/alerts/config".into()).await,
            Request::Silences => get("/api/alerts/silences".into()).await,
            Request::CreateSilence { silence } => {
                let url = self.url("/api/alerts/silences")?;
                self.send(session, self.http.post(url).json(&silence)).await
            }
            Request::ExpireSilence { id } => {
                let url = self.url(&format!("/api/alerts/silences/{id}"))?;
                self.send(session, self.http.delete(url)).await
            }
            Request::Acknowledge { rule, node } => {
                let url = self.url("/api/alerts/ack")?;
                let body = serde_json::json!({ "rule": rule, "node": node });
                self.send(session, self.http.post(url).json(&body)).await
            }
            Request::TestNotifier { name } => {
                let enc: String = url::form_urlencoded::byte_serialize(name.as_bytes()).collect();
                let url = self.url(&format!(
                    "/api/alerts/notifiers/{}/test",
                    enc.replace('+', "%20")
                ))?;
                self.send(session, self.http.post(url)).await
            }
        }
    }

    async fn send(&self, session: &Session, req: reqwest::RequestBuilder) -> Result<Value> {
        let resp = self.fetch(session, req).await?;
        Self::answer(resp).await
    }

    /// The server's successful answer to `req` sent with the session, or its error (a session
    /// the server no longer knows is forgotten).
    async fn fetch(
        &self,
        session: &Session,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response> {
        let token = session_of(session).ok_or_else(AppError::not_signed_in)?;
        let resp = req
            .bearer_auth(&token)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let e = match Self::answer(resp).await {
            Err(e) => e,
            Ok(_) => AppError::new(ErrorKind::Unavailable, "the server's answer was unexpected"),
        };
        if e.kind == ErrorKind::NotSignedIn {
            session.set(None).await;
        }
        Err(e)
    }

    /// The server's JSON answer, or its `{"error", "kind"}` as the same error.
    async fn answer(resp: reqwest::Response) -> Result<Value> {
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let message = body["error"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("the server answered {status}"));
        let kind = serde_json::from_value::<ErrorKind>(body["kind"].clone()).unwrap_or(
            match status.as_u16() {
                401 => ErrorKind::NotSignedIn,
                403 => ErrorKind::Forbidden,
                400 | 404 | 409 => ErrorKind::BadRequest,
                _ => ErrorKind::Unavailable,
            },
        );
        Err(AppError::new(kind, message))
    }

    /// Signs in at the provider with a nonce the server issued (so that the ID token is good at
    /// that server only, and once) and exchanges the token for the server's session.
    async fn exchange(
        &self,
        open: impl FnOnce(&url::Url) -> std::result::Result<(), String>,
        timeout: Duration,
    ) -> Result<String> {
        let resp = self
            .http
            .post(self.url("/auth/nonce")?)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let v = Self::answer(resp).await?;
        let nonce = v["nonce"]
            .as_str()
            .ok_or_else(|| AppError::new(ErrorKind::Unavailable, "the server sent no nonce"))?;
        let verified = loopback::sign_in(&self.oidc, Some(nonce), open, timeout).await?;
        let resp = self
            .http
            .post(self.url("/auth/token")?)
            .json(&serde_json::json!({ "id_token": verified.id_token }))
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        // At the token exchange a 403 means this identity has no role on the server.
        let v = match Self::answer(resp).await {
            Err(e) if e.kind == ErrorKind::Forbidden => {
                return Err(AppError::new(ErrorKind::NotAuthorized, e.message))
            }
            r => r?,
        };
        v["session"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| AppError::new(ErrorKind::Unavailable, "the server sent no session"))
    }
}

/// The alerts of the desktop app's local mode: the configured rules, or when there are none a
/// `node down` rule shown as a desktop notification (what the app did before alerts existed).
fn desktop_alerts(
    cfg: &Config,
    samples: &dsmon_store::SharedSamples,
) -> Result<Arc<dsmon_alerts::Alerts>> {
    use dsmon_config::alerts::{
        Direction, Metric, NotifierConfig, NotifierKind, RuleConfig, Severity,
    };
    let mut a = cfg.alerts.clone();
    if a.rules.is_empty() {
        if !a.notifiers.iter().any(|n| n.name == "desktop") {
            a.notifiers.push(NotifierConfig {
                name: "desktop".into(),
                kind: NotifierKind::Desktop,
                ca_file: None,
            });
        }
        a.rules.push(RuleConfig {
            name: "node down".into(),
            metric: Metric::Down,
            direction: Direction::Above,
            threshold: 0.0,
            clear: 0.0,
            for_: cfg.collector.live_interval.max(Duration::from_secs(5)),
            severity: Severity::Critical,
            nodes: vec![],
            tags: vec![],
            notify: vec!["desktop".into()],
            repeat: None,
        });
        a.attempts = 1;
    }
    let mut notifiers =
        dsmon_alerts::notify::Notifiers::new(&a.notifiers, a.attempts, a.retry_backoff)
            .map_err(config_error)?;
    notifiers.set_desktop(Arc::new(super::TauriNotices));
    let store = dsmon_store::SqliteAlertStore::open(&cfg.storage.path).map_err(config_error)?;
    dsmon_alerts::Alerts::new(a, Arc::new(store), Some(Arc::clone(samples)), notifiers)
        .map_err(config_error)
}
