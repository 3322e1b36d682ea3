//! The HTTP adapter of `dsmon serve` (axum): routes over the application layer ([`dsmon_app`]),
//! [`AppError`] mapped to HTTP once ([`ApiError`]), tower layers ([`defence`]), direct TLS and the
//! UI's files. A handler takes the caller ([`access::Caller`]), calls the application layer and
//! maps its answer; it decides nothing itself. Sign-in routes are in [`account`].

mod access;
mod account;
mod alerts;
mod conn;
mod defence;
pub mod loopback;
mod metrics;
mod openapi;
mod streams;
mod tls;
mod tokens;

pub use access::Caller;
pub use metrics::{bind_metrics, metrics_router, serve_metrics, MetricsBound};
pub use openapi::{openapi, ROLE};

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Json, Router};
use futures_util::{Stream, StreamExt};
use serde::Serialize;
use tokio::sync::watch;
use tokio_stream::wrappers::WatchStream;
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use dsmon_app::{App, AppError, ErrorKind, HistoryRequest, NodeFilter, NodeStatus};
use dsmon_config::{Listen, Secret, ServerConfig};
use dsmon_engine::LiveSnapshot;
use dsmon_store::history::History;

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

/// What the handlers share: the application layer, the shutdown signal, and the server's own
/// settings (cookie names, the bound port, the live stream caps).
#[derive(Clone)]
pub struct AppState {
    pub app: App,
    pub shutdown: watch::Receiver<bool>,
    pub(crate) cookies: access::Cookies,
    /// The TCP port served (without sign-in, the Host header must name it, if it names one).
    pub(crate) port: Option<u16>,
    pub(crate) streams: Arc<streams::StreamLimits>,
    /// TCP peers whose `X-Forwarded-For` / `X-Real-IP` name the client (`[server] trusted_proxies`).
    pub(crate) trusted_proxies: Arc<[ipnet::IpNet]>,
    /// The bearer token `/metrics` needs on this listener (`[server] metrics_token_file`).
    pub(crate) metrics_token: Option<Secret>,
}

impl AppState {
    pub fn new(app: App, shutdown: watch::Receiver<bool>) -> Self {
        let https = app.auth().is_some_and(|a| {
            a.config()
                .redirect_url
                .as_ref()
                .is_some_and(|u| u.scheme() == "https")
        });
        Self {
            app,
            shutdown,
            cookies: access::Cookies::new(https),
            port: None,
            streams: Arc::new(streams::StreamLimits::new(
                streams::PER_SESSION,
                streams::TOTAL,
            )),
            trusted_proxies: Arc::from(Vec::new()),
            metrics_token: None,
        }
    }

    /// `/metrics` needs this bearer token (`None`: served only without `[auth]`).
    pub fn with_metrics_token(mut self, token: Option<Secret>) -> Self {
        self.metrics_token = token;
        self
    }

    /// Believes `X-Forwarded-For` / `X-Real-IP` from these TCP peers.
    pub fn with_trusted_proxies(mut self, nets: &[ipnet::IpNet]) -> Self {
        self.trusted_proxies = Arc::from(nets);
        self
    }

    /// Serving on this TCP port.
    pub fn on_port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Other live stream caps (per session, in total).
    pub fn with_stream_limits(mut self, per_session: usize, total: usize) -> Self {
        self.streams = Arc::new(streams::StreamLimits::new(per_session, total));
        self
    }
}

/// Every route of the main listener, each from its handler's `#[utoipa::path]` (which gives its
/// method and path): the router and the OpenAPI document ([`openapi`]) are built from this one
/// list. A route is added as `.routes(routes!(handler))`, never with a plain `.route(..)`
/// (`tests/router.rs` fails on one the document does not have).
fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::base())
        .routes(routes!(healthz))
        .routes(routes!(openapi::openapi_json))
        .routes(routes!(nodes))
        .routes(routes!(live))
        .routes(routes!(live_stream))
        .routes(routes!(history_json))
        .routes(routes!(history_csv))
        .merge(account::routes())
        .merge(alerts::routes())
        .merge(tokens::routes())
        .merge(metrics::routes())
}

pub fn router(state: AppState) -> Router {
    let defence = defence::Defence::new(&state);
    let (app, _) = routes().split_for_parts();
    let app = app
        // The routes' answers (the API's data, sign-in outcomes) are never cached; the fallback
        // serves the UI's files, which may be, and sets it for its pages and errors itself.
        .route_layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .fallback(static_file)
        .with_state(state);
    defence.wrap(app)
}

/// A bound listener, ready to serve.
pub struct Bound {
    listener: Listener,
    /// `[server] max_connections` (TCP).
    max_connections: usize,
}

enum Listener {
    Tcp(tokio::net::TcpListener, Option<tls::Tls>),
    Unix(tokio::net::UnixListener, PathBuf),
}

/// Binds `[server] listen` (before anything else starts, so a taken address fails fast). A unix
/// socket is created mode 0660; with `tls_cert`/`tls_key` the TCP address serves https.
pub async fn bind(server: &ServerConfig) -> Result<Bound, ServerError> {
    let listen = &server.listen;
    let listener = match listen {
        Listen::Tcp(addr) => {
            // The certificate is read before the port is taken: a broken one fails first.
            let first = server.tls.as_ref().map(tls::load).transpose()?;
            let tcp = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| ServerError::Bind {
                    listen: listen.to_string(),
                    source,
                })?;
            let tls = match (first, &server.tls) {
                (Some(first), Some(files)) => {
                    let local = tcp.local_addr().map_err(ServerError::Serve)?;
                    Some(tls::Tls::start(files.clone(), first, local))
                }
                _ => None,
            };
            Listener::Tcp(tcp, tls)
        }
        Listen::Unix(path) => Listener::Unix(bind_unix(path)?, path.clone()),
    };
    Ok(Bound {
        listener,
        max_connections: server.max_connections,
    })
}

/// Serves until `state.shutdown` turns true; a unix socket is removed at the end.
pub async fn serve(bound: Bound, state: AppState) -> Result<(), ServerError> {
    let mut stop = state.shutdown.clone();
    match bound.listener {
        Listener::Tcp(tcp, tls) => {
            conn::serve(tcp, tls, router(state), bound.max_connections, stop).await;
            Ok(())
        }
        Listener::Unix(l, path) => {
            let app = router(state).into_make_service_with_connect_info::<defence::Peer>();
            let graceful = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
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

/// A failed request: its status and `{"error": message, "kind": kind}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    kind: ErrorKind,
    message: String,
}

/// The one mapping of the application layer's error kinds to HTTP.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::NotSignedIn => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden | ErrorKind::NotAuthorized => StatusCode::FORBIDDEN,
        ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::TooMany => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Config | ErrorKind::DatabaseUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Unavailable => StatusCode::BAD_GATEWAY,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        Self {
            status: status_of(e.kind),
            kind: e.kind,
            message: e.message,
        }
    }
}

impl ApiError {
    fn bad_request(message: impl Into<String>) -> Self {
        AppError::bad_request(message).into()
    }
    fn internal(e: impl std::fmt::Display) -> Self {
        AppError::internal(e).into()
    }
}

/// The body of every JSON error answer (4xx, 5xx).
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for a person.
    pub error: String,
    /// What kind of failure, for a program (the status says the same).
    pub kind: ErrorKind,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.message,
            kind: self.kind,
        };
        let mut r = (
            self.status,
            [(header::CACHE_CONTROL, "no-store")],
            Json(body),
        )
            .into_response();
        if self.kind == ErrorKind::DatabaseUnavailable {
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
        }
        r
    }
}

fn not_found() -> ApiError {
    AppError::new(ErrorKind::NotFound, "no such page").into()
}

// ---- handlers ------------------------------------------------------------------------------

/// `ok` while the server runs (for a process manager or a load balancer).
#[utoipa::path(get, path = "/healthz", tag = "server",
    responses((status = 200, description = "`ok`", body = String, content_type = "text/plain")),
    extensions(("x-dsmon-role" = json!("public"))))]
async fn healthz() -> &'static str {
    "ok"
}

/// Each configured node's state (`tag`: only the nodes having every tag given).
#[utoipa::path(get, path = "/api/nodes", tag = "live", params(NodeFilter),
    responses(
        (status = 200, body = Vec<NodeStatus>),
        (status = 400, description = "a bad tag or an unknown parameter", body = ErrorBody),
    ),
    extensions(("x-dsmon-role" = json!("user"))))]
async fn nodes(
    c: Caller,
    State(s): State<AppState>,
    q: QueryPairs,
) -> Result<Json<Vec<NodeStatus>>, ApiError> {
    Ok(Json(s.app.nodes(&c.0, &node_filter(q)?)?))
}

/// The latest live snapshot: every node's state and one-second metrics (`tag`: only the nodes
/// having every tag given).
#[utoipa::path(get, path = "/api/live", tag = "live", params(NodeFilter),
    responses(
        (status = 200, body = LiveSnapshot),
        (status = 400, description = "a bad tag or an unknown parameter", body = ErrorBody),
    ),
    extensions(("x-dsmon-role" = json!("user"))))]
async fn live(
    c: Caller,
    State(s): State<AppState>,
    q: QueryPairs,
) -> Result<Json<Arc<LiveSnapshot>>, ApiError> {
    Ok(Json(s.app.live_matching(&c.0, &node_filter(q)?)?))
}

/// The live snapshots as Server-Sent Events.
///
/// One `snapshot` event per live snapshot (`id`: its `seq`, `data`: the snapshot as JSON, as
/// `GET /api/live` answers it). The caller is checked again (at most every few seconds) before a
/// snapshot goes out, so signing out, a block or a lost role ends the stream (the client then gets
/// 401 on reconnecting). A session may hold 8 streams at once, the server 2000: more answer 429.
#[utoipa::path(get, path = "/api/live/stream", tag = "live", params(NodeFilter),
    responses(
        (status = 200, description = "`event: snapshot`, `id: <seq>`, `data: <LiveSnapshot JSON>`, until the client leaves", body = String, content_type = "text/event-stream"),
        (status = 429, description = "too many streams open", body = ErrorBody),
    ),
    extensions(("x-dsmon-role" = json!("user"))))]
async fn live_stream(
    c: Caller,
    State(s): State<AppState>,
    headers: axum::http::HeaderMap,
    q: QueryPairs,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let filter = node_filter(q)?;
    s.app.live_matching(&c.0, &filter)?;
    let token = access::session_token(&headers, &s.cookies);
    let slot = s.streams.open(token.as_deref())?;
    let mut stop = s.shutdown.clone();
    let stopped = async move {
        let _ = stop.wait_for(|v| *v).await;
    };
    let recheck = access::Recheck::new(s.app.clone(), c, token.as_deref());
    let events = WatchStream::new(s.app.live_updates())
        .then(move |snap| {
            let recheck = recheck.clone();
            async move { recheck.still_allowed().await.then_some(snap) }
        })
        .take_while(|snap| std::future::ready(snap.is_some()))
        .filter_map(std::future::ready)
        .map(move |snap| dsmon_app::filtered(snap, &filter))
        .map(move |snap| {
            // The stream's place under the caps is given back when the stream is dropped.
            let _held = &slot;
            let event = Event::default()
                .event("snapshot")
                .id(snap.seq.to_string())
                .json_data(&*snap)
                .unwrap_or_else(|_| Event::default().comment("unserialisable snapshot"));
            Ok(event)
        })
        .take_until(Box::pin(stopped));
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// The query's key/value pairs in order, repeated keys kept (`node=a&node=b`).
type QueryPairs =
    Result<axum_extra::extract::Query<Vec<(String, String)>>, axum_extra::extract::QueryRejection>;

/// `?tag=...` (repeatable) of the live view, the node list and the alerts.
pub(crate) fn node_filter(q: QueryPairs) -> Result<NodeFilter, ApiError> {
    let axum_extra::extract::Query(pairs) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    Ok(NodeFilter::from_pairs(pairs))
}

fn history_request(q: QueryPairs) -> Result<HistoryRequest, ApiError> {
    let axum_extra::extract::Query(pairs) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    Ok(HistoryRequest::from_pairs(pairs))
}

/// Per node at most `points` buckets over the range: per metric average and maximum, and
/// availability (a bucket without a reachable row is `null`).
#[utoipa::path(get, path = "/api/history", tag = "history", params(HistoryRequest),
    responses(
        (status = 200, body = History),
        (status = 400, description = "a bad time, range, `points`, an unknown node or parameter", body = ErrorBody),
    ),
    extensions(("x-dsmon-role" = json!("admin"))))]
async fn history_json(
    c: Caller,
    State(s): State<AppState>,
    q: QueryPairs,
) -> Result<Response, ApiError> {
    let req = history_request(q)?;
    Ok(Json(s.app.history(&c.0, req).await?).into_response())
}

/// The raw logged rows over the range, as CSV (the columns of `dsmon export`).
#[utoipa::path(get, path = "/api/history.csv", tag = "history", params(HistoryRequest),
    responses(
        (status = 200, description = "`ts,node,cpu_pct,mem_pct,disk_pct,net_in_kbps,net_out_kbps,error`, one line per row (an attachment)", body = String, content_type = "text/csv"),
        (status = 400, description = "a bad time or range, `points`, an unknown node or parameter", body = ErrorBody),
    ),
    extensions(("x-dsmon-role" = json!("admin"))))]
async fn history_csv(
    c: Caller,
    State(s): State<AppState>,
    q: QueryPairs,
) -> Result<Response, ApiError> {
    let req = history_request(q)?;
    let body = s.app.history_csv(&c.0, req).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"dsmon-history.csv\"",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response())
}

/// The built web UI (`ui/dist`, built by `npm ci --prefix ui && npm run build --prefix ui`; the
/// build script says so when it is missing), embedded in every build.
#[derive(rust_embed::RustEmbed)]
#[folder = "../../../ui/dist"]
struct Ui;

/// The UI: its pages (`/`, `/live`, `/nodes/NAME`, and for Admins `/history`, `/users`, `/audit`)
/// are `index.html` once the application layer lets the caller see them; its scripts, styles and
/// images (built into the binary, holding no data) are public. Unknown `/api/` paths are JSON 404s.
async fn static_file(State(s): State<AppState>, req: axum::extract::Request) -> Response {
    let path = req.uri().path().trim_start_matches('/').to_string();
    if path.starts_with("api/") {
        return not_found().into_response();
    }
    if dsmon_app::page_role(&path).is_some() {
        let (parts, _) = req.into_parts();
        let token = access::session_token(&parts.headers, &s.cookies);
        let access = match s
            .app
            .request_access(token.as_deref(), parts.method.as_str(), parts.uri.path())
            .await
        {
            Ok(a) => a,
            Err(e) => return ApiError::from(e).into_response(),
        };
        return match s.app.page(&access, &path) {
            Ok(()) => html(ui_file("index.html")),
            Err(e) => page_refusal(&parts, &access, e),
        };
    }
    match Ui::get(&path) {
        Some(file) => ([(header::CONTENT_TYPE, mime(&path))], file.data).into_response(),
        None => not_found().into_response(),
    }
}

/// A page refused: anonymous callers are sent to sign in (and back here after), callers without
/// the role get the "not authorized" page.
fn page_refusal(
    parts: &axum::http::request::Parts,
    access: &dsmon_app::Access,
    e: AppError,
) -> Response {
    match e.kind {
        ErrorKind::NotSignedIn => {
            let here = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            let next: String = url::form_urlencoded::byte_serialize(here.as_bytes()).collect();
            Redirect::to(&format!("/auth/login?next={next}")).into_response()
        }
        ErrorKind::Forbidden if matches!(access.who, dsmon_app::Who::Token(_)) => {
            account::message_page(StatusCode::FORBIDDEN, "Not authorized", &e.message, None)
        }
        ErrorKind::Forbidden => account::message_page(
            StatusCode::FORBIDDEN,
            "Not authorized",
            &format!(
                "You are signed in as {} with the User role, which shows the live view only. This page is for Admins.",
                access.caller().map(|c| c.email).unwrap_or_default()
            ),
            Some(("/live", "Go to the live view")),
        ),
        _ => ApiError::from(e).into_response(),
    }
}

/// The file's MIME type by its extension; text is UTF-8.
fn mime(path: &str) -> String {
    let m = mime_guess::from_path(path).first_or_octet_stream();
    if m.type_() == mime_guess::mime::TEXT {
        format!("{m}; charset=utf-8")
    } else {
        m.to_string()
    }
}

fn ui_file(path: &str) -> std::borrow::Cow<'static, [u8]> {
    Ui::get(path).map(|f| f.data).unwrap_or_default()
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
