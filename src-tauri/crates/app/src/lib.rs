//! dsmon's application layer: every use case once — who am I, the live view, node states,
//! history (JSON buckets and raw CSV), users, a user's change, the audit log, API tokens — each
//! taking the caller's [`Access`] and checking its role here, and only here. The HTTP server and the desktop
//! app are adapters over it: they find out who is calling, call a method, and map [`AppError`]'s
//! kind once.
//!
//! Blocking work (SQLite, the sign-in tables) runs on tokio's blocking pool, never on an async
//! worker thread.

pub mod alerts;
mod error;
pub mod metrics;
mod request;
pub mod tokens;

pub use error::{AppError, ErrorKind, Result};
pub use request::{HistoryRequest, NodeFilter, Request};

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use dsmon_auth::{AuditPage, Auth, UserChange, UserView};
use dsmon_core::{format_ts, Caller, NodeState, Role};
use dsmon_engine::LiveSnapshot;
use dsmon_store::export::{self, Format};
use dsmon_store::history::{self, History};
use dsmon_store::{SampleStore, SharedSamples};

/// Who is calling, as the adapter found out.
#[derive(Debug, Clone, PartialEq)]
pub enum Who {
    /// No `[auth]`: the single local user, treated as Admin.
    Local,
    Anonymous,
    Signed(Caller),
    /// An API token (`Authorization: Bearer dsmon_...`): acts with its role as `token:NAME`, on
    /// the API only (no UI page, no token administration).
    Token(Caller),
}

/// The caller of a request and what it came through (a path, a desktop command), which the audit
/// log names when the request is refused.
#[derive(Debug, Clone, PartialEq)]
pub struct Access {
    pub who: Who,
    pub via: String,
}

impl Access {
    pub fn new(who: Who, via: impl Into<String>) -> Self {
        Self {
            who,
            via: via.into(),
        }
    }

    pub fn role(&self) -> Option<Role> {
        match &self.who {
            Who::Local => Some(Role::Admin),
            Who::Anonymous => None,
            Who::Signed(c) | Who::Token(c) => Some(c.role),
        }
    }

    /// The caller as the core sees it (the local user is "local").
    pub fn caller(&self) -> Option<Caller> {
        match &self.who {
            Who::Local => Some(Caller::local()),
            Who::Anonymous => None,
            Who::Signed(c) | Who::Token(c) => Some(c.clone()),
        }
    }
}

/// The role a UI page needs (`None`: not a page, e.g. a script or an image, which hold no data).
pub fn page_role(path: &str) -> Option<Role> {
    let path = path.trim_start_matches('/');
    let first = path.split('/').next().unwrap_or("");
    match first {
        "" | "index.html" | "live" => Some(Role::User),
        "nodes" if path.len() > "nodes/".len() => Some(Role::User),
        "history" | "users" | "audit" | "alerts" | "tokens" => Some(Role::Admin),
        _ => None,
    }
}

/// Who am I: `GET /api/me` and the desktop app's header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Me {
    pub email: Option<String>,
    pub name: Option<String>,
    pub role: Role,
    /// False when dsmon runs without sign-in (a single-user local tool).
    pub auth: bool,
}

/// One node's state (`GET /api/nodes`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NodeStatus {
    pub name: String,
    pub state: NodeState,
    pub since: Option<String>,
    pub last_seen: Option<String>,
    pub last_error: Option<String>,
    /// The node's own Netdata dashboard (its agent URL, or its parent's `/host/<name>/`), scheme,
    /// host, port and path only; every role may follow it (the agent decides whom it answers).
    pub dashboard: Option<String>,
    /// Its tags, sorted, without duplicates.
    pub tags: Vec<String>,
}

/// `snap` with only the nodes `filter` lets through (the same snapshot when it lets all through).
pub fn filtered(snap: Arc<LiveSnapshot>, filter: &NodeFilter) -> Arc<LiveSnapshot> {
    if filter.is_empty() {
        return snap;
    }
    let mut only = (*snap).clone();
    only.nodes.retain(|n| filter.matches(&n.tags));
    Arc::new(only)
}

/// Where a node's own Netdata dashboard is, by node name (the engine knows the agents).
pub type Dashboards = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Audit pages are at most this long.
pub const MAX_AUDIT_PAGE: i64 = 500;

/// What the use cases share. Cheap to clone.
#[derive(Clone)]
pub struct App {
    live: watch::Receiver<Arc<LiveSnapshot>>,
    /// A read connection of its own, so history queries never wait on the logger's writes.
    reader: SharedSamples,
    log_interval: i64,
    /// Sign-in; `None`: a single-user local tool where every caller is Admin.
    auth: Option<Arc<Auth>>,
    /// The alerts, when this instance evaluates them.
    alerts: Option<Arc<dsmon_alerts::Alerts>>,
    /// The nodes' dashboard links, when known.
    dashboards: Option<Dashboards>,
}

impl App {
    pub fn new(
        live: watch::Receiver<Arc<LiveSnapshot>>,
        reader: SharedSamples,
        log_interval: i64,
        auth: Option<Arc<Auth>>,
    ) -> Self {
        Self {
            live,
            reader,
            log_interval,
            auth,
            alerts: None,
            dashboards: None,
        }
    }

    /// With links to the nodes' own Netdata dashboards in `GET /api/nodes`.
    pub fn with_dashboards(mut self, dashboards: Dashboards) -> Self {
        self.dashboards = Some(dashboards);
        self
    }

    /// With the alerts this instance evaluates.
    pub fn with_alerts(mut self, alerts: Arc<dsmon_alerts::Alerts>) -> Self {
        self.alerts = Some(alerts);
        self
    }

    /// Sign-in, when configured (the server's sign-in routes and the desktop's loopback sign-in
    /// use it directly: they are how a caller comes to exist, not use cases of one).
    pub fn auth(&self) -> Option<&Arc<Auth>> {
        self.auth.as_ref()
    }

    /// The live snapshots, as they are published.
    pub fn live_updates(&self) -> watch::Receiver<Arc<LiveSnapshot>> {
        self.live.clone()
    }

    /// Resolves the caller behind a session token (a cookie or bearer value) or an API token's
    /// secret, the role as of now; `via` is what the request came through.
    pub async fn access(&self, token: Option<&str>, via: &str) -> Result<Access> {
        self.resolve(token, via, None).await
    }

    /// An HTTP request's caller ([`App::access`]); a request made with an Admin API token is
    /// audited (`token_used`, its method and path), one made with a User token is not.
    pub async fn request_access(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
    ) -> Result<Access> {
        self.resolve(token, path, Some(format!("{method} {path}")))
            .await
    }

    async fn resolve(
        &self,
        token: Option<&str>,
        via: &str,
        request: Option<String>,
    ) -> Result<Access> {
        let who = match (&self.auth, token.filter(|t| !t.is_empty())) {
            (None, _) => Who::Local,
            (Some(_), None) => Who::Anonymous,
            (Some(auth), Some(token)) => {
                let (auth, token) = (Arc::clone(auth), token.to_string());
                tokio::task::spawn_blocking(move || -> Result<Who> {
                    if dsmon_auth::tokens::is_api_token(&token) {
                        if let Some(c) = auth.api_token(&token)? {
                            if let (Role::Admin, Some(what)) = (c.role, &request) {
                                auth.audit(Some(&c.email), "token_used", Some(what), None);
                            }
                            return Ok(Who::Token(c));
                        }
                    }
                    Ok(auth.session(&token)?.map_or(Who::Anonymous, Who::Signed))
                })
                .await??
            }
        };
        Ok(Access::new(who, via))
    }

    /// The caller if it has `need`. A signed-in caller refused is audited with what the request
    /// came through; `what` names the use case in the message.
    pub fn require(&self, access: &Access, need: Role, what: &str) -> Result<Caller> {
        let Some(caller) = access.caller() else {
            return Err(AppError::new(
                ErrorKind::NotSignedIn,
                "sign in first (/auth/login)",
            ));
        };
        if caller.role.allows(need) {
            return Ok(caller);
        }
        if let Some(auth) = &self.auth {
            auth.denied(&caller, &access.via);
        }
        Err(AppError::new(
            ErrorKind::Forbidden,
            format!("{what} needs the Admin role; {} is a User", caller.email),
        ))
    }

    /// May the caller open the UI page at `path`? (Scripts, styles and images are public.)
    /// An API token opens no page: it is for scripts calling the API, and a browser holding one
    /// would be a session that never signs in again.
    pub fn page(&self, access: &Access, path: &str) -> Result<()> {
        if let (Who::Token(_), Some(_)) = (&access.who, page_role(path)) {
            return Err(AppError::new(
                ErrorKind::Forbidden,
                "API tokens open the API only, not the UI's pages",
            ));
        }
        match page_role(path) {
            Some(need) => self.require(access, need, "this page").map(|_| ()),
            None => Ok(()),
        }
    }

    pub fn me(&self, access: &Access) -> Result<Me> {
        match &access.who {
            Who::Local => Ok(Me {
                email: None,
                name: None,
                role: Role::Admin,
                auth: false,
            }),
            Who::Signed(c) | Who::Token(c) => Ok(Me {
                email: Some(c.email.clone()),
                name: c.name.clone(),
                role: c.role,
                auth: true,
            }),
            Who::Anonymous => Err(AppError::not_signed_in()),
        }
    }

    /// The newest live snapshot: every role may see it.
    pub fn live(&self, access: &Access) -> Result<Arc<LiveSnapshot>> {
        self.require(access, Role::User, "the live view")?;
        Ok(self.live.borrow().clone())
    }

    /// The newest live snapshot with only the nodes `filter` lets through.
    pub fn live_matching(&self, access: &Access, filter: &NodeFilter) -> Result<Arc<LiveSnapshot>> {
        let snap = self.live(access)?;
        filter.check()?;
        Ok(filtered(snap, filter))
    }

    pub fn nodes(&self, access: &Access, filter: &NodeFilter) -> Result<Vec<NodeStatus>> {
        let snap = self.live_matching(access, filter)?;
        Ok(snap
            .nodes
            .iter()
            .map(|n| NodeStatus {
                name: n.name.clone(),
                state: n.state,
                since: n.since.map(format_ts),
                last_seen: n.last_seen.map(format_ts),
                last_error: n.last_error.clone(),
                dashboard: self.dashboards.as_ref().and_then(|d| d(&n.name)),
                tags: n.tags.clone(),
            })
            .collect())
    }

    /// History buckets: Admin only. Tags select among the nodes monitored now (with the tags
    /// they have now); a group is one line for the nodes selected.
    pub async fn history(&self, access: &Access, req: HistoryRequest) -> Result<History> {
        self.require(access, Role::Admin, "history")?;
        let live = self.live.borrow().clone();
        let (q, none) = req.query(chrono::Utc::now(), &live.nodes)?;
        let configured: Vec<String> = live.nodes.iter().map(|n| n.name.clone()).collect();
        let log_interval = self.log_interval;
        if none {
            return Ok(history::empty(&q, log_interval)?);
        }
        self.read(move |store| Ok(history::query(store, &q, &configured, log_interval)?))
            .await
    }

    /// The raw rows of a range as CSV: Admin only. With tags, the rows of the monitored nodes
    /// having them (only the header when none has, or none has rows yet).
    pub async fn history_csv(&self, access: &Access, req: HistoryRequest) -> Result<Vec<u8>> {
        self.require(access, Role::Admin, "history")?;
        let live = self.live.borrow().clone();
        let (mut q, tagged) = req.rows(chrono::Utc::now(), &live.nodes)?;
        self.read(move |store| {
            let mut out = Vec::new();
            if let Some(tagged) = tagged {
                let known = store.node_names()?;
                q.nodes = tagged.into_iter().filter(|n| known.contains(n)).collect();
                if q.nodes.is_empty() {
                    out.extend_from_slice(export::CSV_HEADER.as_bytes());
                    out.push(b'\n');
                    return Ok(out);
                }
            }
            export::write_rows(store, &q, Format::Csv, &mut out)?;
            Ok(out)
        })
        .await
    }

    fn sign_in(&self) -> Result<&Arc<Auth>> {
        self.auth.as_ref().ok_or_else(|| {
            AppError::new(
                ErrorKind::NotFound,
                "dsmon runs without sign-in ([auth] is not configured): there are no users",
            )
        })
    }

    pub async fn users(&self, access: &Access) -> Result<Vec<UserView>> {
        self.require(access, Role::Admin, "user administration")?;
        let auth = Arc::clone(self.sign_in()?);
        Ok(tokio::task::spawn_blocking(move || auth.users()).await??)
    }

    /// `change`: the JSON an Admin sends (`{"role": ..., "blocked": ..., "rebind": true}`). The
    /// re-bind (an address bound to the account that last tried it, see
    /// [`dsmon_auth::AuthError::OtherAccount`]) is audited like the other changes.
    pub async fn change_user(
        &self,
        access: &Access,
        email: &str,
        change: &[u8],
    ) -> Result<Vec<UserView>> {
        let actor = self.require(access, Role::Admin, "user administration")?;
        let auth = Arc::clone(self.sign_in()?);
        let change = UserChange::parse(change).map_err(AppError::bad_request)?;
        let email = email.to_string();
        Ok(tokio::task::spawn_blocking(move || auth.change_user(&actor, &email, change)).await??)
    }

    pub async fn audit(
        &self,
        access: &Access,
        offset: Option<i64>,
        limit: Option<i64>,
    ) -> Result<AuditPage> {
        self.require(access, Role::Admin, "the audit log")?;
        let auth = Arc::clone(self.sign_in()?);
        let (offset, limit) = (offset.unwrap_or(0), limit.unwrap_or(50));
        if offset < 0 || !(1..=MAX_AUDIT_PAGE).contains(&limit) {
            return Err(AppError::bad_request(format!(
                "offset must be >= 0 and limit within 1..{MAX_AUDIT_PAGE}"
            )));
        }
        Ok(tokio::task::spawn_blocking(move || auth.audit_page(offset, limit)).await??)
    }

    /// Whether `access` may change the desktop app's settings: Admins only.
    pub fn may_change_settings(&self, access: &Access) -> Result<()> {
        self.require(access, Role::Admin, "settings").map(|_| ())
    }

    /// Answers a [`Request`] as JSON (the desktop app's commands go through here).
    pub async fn handle(&self, access: &Access, req: Request) -> Result<serde_json::Value> {
        fn json<T: Serialize>(v: T) -> Result<serde_json::Value> {
            serde_json::to_value(v).map_err(AppError::internal)
        }
        match req {
            Request::Me => json(self.me(access)?),
            Request::Live => json(&*self.live(access)?),
            Request::History(h) => json(self.history(access, h).await?),
            Request::Users => json(self.users(access).await?),
            Request::ChangeUser { email, change } => {
                let bytes = serde_json::to_vec(&change).map_err(AppError::internal)?;
                json(self.change_user(access, &email, &bytes).await?)
            }
            Request::Audit { offset, limit } => json(self.audit(access, offset, limit).await?),
            Request::Alerts => json(self.alerts_now(access)?),
            Request::AlertHistory(h) => json(self.alert_history(access, h).await?),
            Request::AlertDeliveries { limit } => json(self.alert_deliveries(access, limit).await?),
            Request::AlertConfig => json(self.alert_config(access)?),
            Request::Silences => json(self.silences(access).await?),
            Request::CreateSilence { silence } => {
                let bytes = serde_json::to_vec(&silence).map_err(AppError::internal)?;
                json(self.create_silence(access, &bytes).await?)
            }
            Request::ExpireSilence { id } => {
                json(self.expire_silence(access, &id.to_string()).await?)
            }
            Request::Acknowledge { rule, node } => {
                let bytes =
                    serde_json::to_vec(&alerts::Ack { rule, node }).map_err(AppError::internal)?;
                json(self.acknowledge(access, &bytes).await?)
            }
            Request::TestNotifier { name } => json(self.test_notifier(access, &name).await?),
        }
    }

    /// Runs a read on the reader connection, off the async threads.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn SampleStore) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let reader = Arc::clone(&self.reader);
        tokio::task::spawn_blocking(move || {
            let store = reader
                .lock()
                .map_err(|_| AppError::internal("reader lock poisoned"))?;
            f(&*store)
        })
        .await?
    }
}
