//! The HTTP adapter of `dsmon serve` (axum): health, node states, live snapshots (JSON and
//! Server-Sent Events), history (JSON buckets and raw CSV) and the UI's files. Handlers only parse
//! the request, call the core (`live`, `history`, `export`) and map its errors; bad input is a 400
//! with `{"error": "..."}`. Every route states the role it needs through an extractor from
//! [`access`]; sign-in and user administration are in [`account`].

mod access;
mod account;
mod defence;
mod tls;

pub use access::{Access, AdminCaller, ViewerCaller};

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::{Stream, StreamExt};
use serde::Serialize;
use tokio::sync::watch;
use tokio_stream::wrappers::WatchStream;

use crate::auth::Auth;
use crate::collector::format_ts;
use crate::config::{Listen, ServerConfig};
use crate::export::{self, ExportError};
use crate::history::{self, HistoryError, HistoryQuery, DEFAULT_POINTS};
use crate::live::LiveSnapshot;
use crate::store::{RowQuery, Store};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {listen}: {source}")]
    Bind {
        listen: String,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Socket { path: PathBuf, reason: String },
    #[error("the HTTP server failed: {0}")]
    Serve(std::io::Error),
    #[error("{path}: TLS: {reason}")]
    Tls { path: PathBuf, reason: String },
}

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub live: watch::Receiver<Arc<LiveSnapshot>>,
    /// A read connection of its own, so history queries never wait on the logger's writes.
    pub reader: Arc<Mutex<Store>>,
    pub configured: Arc<Vec<String>>,
    pub log_interval: i64,
    pub shutdown: watch::Receiver<bool>,
    /// Sign-in; `None`: a single-user local tool where every request is Admin.
    pub auth: Option<Arc<Auth>>,
}

pub fn router(state: AppState) -> Router {
    let defence = defence::Defence::new(&state);
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/api/nodes", get(nodes))
        .route("/api/live", get(live))
        .route("/api/live/stream", get(live_stream))
        .route("/api/history", get(history_json))
        .route("/api/history.csv", get(history_csv))
        .merge(account::routes())
        .fallback(static_file)
        .with_state(state);
    defence.wrap(app)
}

/// A bound listener, ready to serve.
pub enum Bound {
    Tcp(tokio::net::TcpListener),
    Tls(tls::TlsListener),
    Unix(tokio::net::UnixListener, PathBuf),
}

/// Binds `[server] listen` (before anything else starts, so a taken address fails fast). A unix
/// socket is created mode 0660; with `tls_cert`/`tls_key` the TCP address serves https.
pub async fn bind(server: &ServerConfig) -> Result<Bound, ServerError> {
    let listen = &server.listen;
    if let (Some(files), Listen::Tcp(addr)) = (&server.tls, listen) {
        let first = tls::load(files)?;
        let tcp = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind {
                listen: listen.to_string(),
                source,
            })?;
        return tls::TlsListener::start(tcp, files.clone(), first).map(Bound::Tls);
    }
    match listen {
        Listen::Tcp(addr) => tokio::net::TcpListener::bind(addr)
            .await
            .map(Bound::Tcp)
            .map_err(|source| ServerError::Bind {
                listen: listen.to_string(),
                source,
            }),
        Listen::Unix(path) => Ok(Bound::Unix(bind_unix(path)?, path.clone())),
    }
}

/// Serves until `state.shutdown` turns true; a unix socket is removed at the end.
pub async fn serve(bound: Bound, state: AppState) -> Result<(), ServerError> {
    let mut stop = state.shutdown.clone();
    let app = router(state).into_make_service_with_connect_info::<defence::Peer>();
    let graceful = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    match bound {
        Bound::Tcp(l) => axum::serve(l, app)
            .with_graceful_shutdown(graceful)
            .await
            .map_err(ServerError::Serve),
        Bound::Tls(l) => axum::serve(l, app)
            .with_graceful_shutdown(graceful)
            .await
            .map_err(ServerError::Serve),
        Bound::Unix(l, path) => {
            let r = axum::serve(l, app)
                .with_graceful_shutdown(graceful)
                .await
                .map_err(ServerError::Serve);
            let _ = std::fs::remove_file(&path);
            r
        }
    }
}

fn bind_unix(path: &std::path::Path) -> Result<tokio::net::UnixListener, ServerError> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let err = |reason: String| ServerError::Socket {
        path: path.to_path_buf(),
        reason,
    };
    match std::fs::symlink_metadata(path) {
        // A socket left by a previous run that did not stop cleanly: replace it.
        Ok(m) if m.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(err("another process is serving on this socket".into()));
            }
            std::fs::remove_file(path).map_err(|e| err(e.to_string()))?;
        }
        Ok(_) => return Err(err("exists and is not a socket".into())),
        Err(_) => {}
    }
    let l = tokio::net::UnixListener::bind(path).map_err(|e| err(e.to_string()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| err(e.to_string()))?;
    Ok(l)
}

// ---- errors --------------------------------------------------------------------------------

/// A failed request: its status and a message for `{"error": ...}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
    fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "request failed");
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: "internal error (see the server log)".into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        #[derive(Serialize)]
        struct Body {
            error: String,
        }
        (
            self.status,
            Json(Body {
                error: self.message,
            }),
        )
            .into_response()
    }
}

impl From<HistoryError> for ApiError {
    fn from(e: HistoryError) -> Self {
        match e {
            HistoryError::Store(e) => Self::internal(e),
            other => Self::bad_request(other.to_string()),
        }
    }
}

impl From<ExportError> for ApiError {
    fn from(e: ExportError) -> Self {
        match e {
            ExportError::Store(e) => Self::internal(e),
            ExportError::Io(e) => Self::internal(e),
            other => Self::bad_request(other.to_string()),
        }
    }
}

async fn not_found() -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        message: "no such page".into(),
    }
}

// ---- handlers ------------------------------------------------------------------------------

#[derive(Serialize)]
struct NodeStatus<'a> {
    name: &'a str,
    state: crate::collector::NodeState,
    since: Option<String>,
    last_seen: Option<String>,
    last_error: Option<&'a str>,
}

async fn nodes(_: ViewerCaller, State(s): State<AppState>) -> Response {
    let snap = s.live.borrow().clone();
    let body: Vec<NodeStatus<'_>> = snap
        .nodes
        .iter()
        .map(|n| NodeStatus {
            name: &n.name,
            state: n.state,
            since: n.since.map(format_ts),
            last_seen: n.last_seen.map(format_ts),
            last_error: n.last_error.as_deref(),
        })
        .collect();
    Json(body).into_response()
}

async fn live(_: ViewerCaller, State(s): State<AppState>) -> Json<Arc<LiveSnapshot>> {
    Json(s.live.borrow().clone())
}

async fn live_stream(
    _: ViewerCaller,
    State(s): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let mut stop = s.shutdown.clone();
    let stopped = async move {
        let _ = stop.wait_for(|v| *v).await;
    };
    // A stream outlives the request that opened it: its session is checked again before every
    // snapshot, so signing out, a block or a lost role ends it (the client then gets 401).
    let session = match (&s.auth, access::session_token(&headers)) {
        (Some(a), Some(t)) => Some((Arc::clone(a), t.to_string())),
        _ => None,
    };
    let events = WatchStream::new(s.live.clone())
        .take_while(move |_| {
            let ok = session
                .as_ref()
                .is_none_or(|(auth, token)| matches!(auth.session(token), Ok(Some(_))));
            std::future::ready(ok)
        })
        .map(|snap| {
            let event = Event::default()
                .event("snapshot")
                .id(snap.seq.to_string())
                .json_data(&*snap)
                .unwrap_or_else(|_| Event::default().comment("unserialisable snapshot"));
            Ok(event)
        })
        .take_until(Box::pin(stopped));
    Sse::new(events).keep_alive(KeepAlive::default())
}

/// Query parameters shared by the history endpoints: `from`, `to`, `points`, `node` (repeatable).
struct HistoryParams {
    from: i64,
    to: i64,
    points: Option<String>,
    nodes: Vec<String>,
}

fn parse_params(raw: Option<String>) -> Result<HistoryParams, ApiError> {
    let now = chrono::Utc::now();
    let (mut from, mut to, mut points, mut nodes) = (None, None, None, Vec::new());
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match &*k {
            "from" => from = Some(v.into_owned()),
            "to" => to = Some(v.into_owned()),
            "points" => points = Some(v.into_owned()),
            "node" => nodes.push(v.into_owned()),
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown parameter {other:?}"
                )))
            }
        }
    }
    let (from, to) = export::history_range(from.as_deref(), to.as_deref(), now)?;
    Ok(HistoryParams {
        from,
        to,
        points,
        nodes,
    })
}

async fn history_json(
    _: AdminCaller,
    State(s): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let p = parse_params(raw)?;
    let points = match p.points {
        None => DEFAULT_POINTS,
        Some(text) => text
            .trim()
            .parse::<usize>()
            .map_err(|_| ApiError::from(HistoryError::Points(text.clone())))?,
    };
    let q = HistoryQuery {
        from: p.from,
        to: p.to,
        points,
        nodes: p.nodes,
    };
    let reader = Arc::clone(&s.reader);
    let configured = Arc::clone(&s.configured);
    let h = tokio::task::spawn_blocking(move || {
        let store = reader
            .lock()
            .map_err(|_| ApiError::internal("reader lock poisoned"))?;
        history::query(&store, &q, &configured, s.log_interval).map_err(ApiError::from)
    })
    .await
    .map_err(ApiError::internal)??;
    Ok(Json(h).into_response())
}

async fn history_csv(
    _: AdminCaller,
    State(s): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let p = parse_params(raw)?;
    if p.points.is_some() {
        return Err(ApiError::bad_request(
            "points does not apply to the raw rows of history.csv",
        ));
    }
    let q = RowQuery {
        from: p.from,
        to: p.to,
        nodes: p.nodes,
    };
    let reader = Arc::clone(&s.reader);
    let body = tokio::task::spawn_blocking(move || {
        let store = reader
            .lock()
            .map_err(|_| ApiError::internal("reader lock poisoned"))?;
        let mut out = Vec::new();
        export::write_rows(&store, &q, export::Format::Csv, &mut out)?;
        Ok::<_, ApiError>(out)
    })
    .await
    .map_err(ApiError::internal)??;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"dsmon-history.csv\"",
            ),
        ],
        body,
    )
        .into_response())
}

mod ui {
    include!(concat!(env!("OUT_DIR"), "/ui_files.rs"));
}

/// The UI: its pages (`/`, `/live`, `/nodes/NAME`, and for Admins `/history`, `/users`, `/audit`)
/// are `index.html` after the caller's role is checked; its scripts, styles and images (built into
/// the binary, holding no data) are public. Unknown `/api/` paths are JSON 404s.
async fn static_file(State(s): State<AppState>, req: axum::extract::Request) -> Response {
    let path = req.uri().path().trim_start_matches('/').to_string();
    if path.starts_with("api/") {
        return not_found().await.into_response();
    }
    if let Some(need) = access::page_role(&path) {
        let (mut parts, _) = req.into_parts();
        if let Err(refusal) = access::require_page(&mut parts, &s, need).await {
            return refusal;
        }
        return html(ui_file("index.html"));
    }
    match ui::UI_FILES.iter().find(|(p, _)| *p == path) {
        Some((p, body)) => ([(header::CONTENT_TYPE, mime(p))], *body).into_response(),
        None => not_found().await.into_response(),
    }
}

fn mime(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "png" => "image/png",
        "svg" => "image/svg+xml",
        "json" => "application/json",
        _ => "application/octet-stream",
    }
}

fn ui_file(path: &str) -> &'static [u8] {
    ui::UI_FILES
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, b)| *b)
        .unwrap_or(b"")
}

fn html(body: impl IntoResponse) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}
