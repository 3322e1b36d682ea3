//! `GET /metrics` for Prometheus: who may scrape, and the answer's format. The exposition itself is
//! [`dsmon_app::metrics::render`].
//!
//! - On `[server] listen`: with `metrics_token_file`, only a request with `Authorization: Bearer
//!   <that token>` (compared in constant time); without a token, only when dsmon runs without
//!   `[auth]` (then the defences already limit every request to a loopback Host). Under `[auth]`
//!   without a token it is not served there (404).
//! - On `[server] metrics_listen` (a loopback address): `/metrics` alone, without a token, to
//!   requests whose Host is a loopback name (as in no-auth mode, so a web page that rebinds its
//!   name to 127.0.0.1 gets nothing).

use std::net::SocketAddr;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use sha2::{Digest, Sha256};

use dsmon_app::metrics::{ExtraCounters, Format};
use dsmon_app::{AppError, ErrorKind};
use dsmon_config::Secret;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, AppState, ServerError};

/// Connections the metrics listener serves at once (scrapers are few).
const METRICS_CONNECTIONS: usize = 64;

/// The `/metrics` route of the main router.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(on_main))
}

/// The metrics for Prometheus: OpenMetrics when `Accept` names it, else the text format 0.0.4.
///
/// On `[server] listen`: with `[server] metrics_token_file`, only with that bearer token (else
/// 401); without one, served only when dsmon runs without `[auth]` (else 404). A
/// `[server] metrics_listen` listener serves it to loopback names without a token.
#[utoipa::path(get, path = "/metrics", tag = "server",
    responses(
        (status = 200, description = "the exposition", content(
            (String = "text/plain; version=0.0.4"),
            (String = "application/openmetrics-text; version=1.0.0"),
        )),
        (status = 404, description = "under `[auth]` without a metrics token configured", body = super::ErrorBody),
    ),
    extensions(("x-dsmon-role" = json!("metrics-token"))))]
async fn on_main(State(s): State<AppState>, headers: HeaderMap) -> Response {
    match (&s.metrics_token, s.app.auth()) {
        (Some(want), _) => {
            if !super::access::bearer(&headers).is_some_and(|t| same_token(&t, want)) {
                tracing::warn!("/metrics refused: the bearer token is missing or wrong");
                return unauthorized();
            }
        }
        (None, Some(_)) => {
            return ApiError::from(AppError::new(
                ErrorKind::NotFound,
                "/metrics is not served here: set [server] metrics_token_file (a bearer token) or metrics_listen (a loopback listener)",
            ))
            .into_response()
        }
        (None, None) => {}
    }
    answer(&s, &headers).into_response()
}

/// The exposition in the format the scraper asked for.
fn answer(s: &AppState, headers: &HeaderMap) -> Result<Response, ApiError> {
    let format = negotiate(headers);
    let snapshot = s.app.live_updates().borrow().clone();
    let text = dsmon_app::metrics::render(&snapshot, &ExtraCounters::of_this_process(), format)?;
    Ok((
        [
            (header::CONTENT_TYPE, format.content_type()),
            (header::CACHE_CONTROL, "no-store"),
        ],
        text,
    )
        .into_response())
}

/// OpenMetrics when the `Accept` header names it (Prometheus does), else the classic text format.
fn negotiate(headers: &HeaderMap) -> Format {
    let open = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let media = parts.next().unwrap_or("");
            let refused = parts.any(|p| p.replace(' ', "") == "q=0");
            media.eq_ignore_ascii_case("application/openmetrics-text") && !refused
        });
    if open {
        Format::OpenMetrics
    } else {
        Format::Prometheus
    }
}

/// Whether `given` is the token, compared in constant time (over both SHA-256 digests, so neither
/// the position of a difference nor the token's length shows in the time taken).
fn same_token(given: &str, want: &Secret) -> bool {
    let a = Sha256::digest(given.as_bytes());
    let b = Sha256::digest(want.expose().as_bytes());
    let diff = a
        .iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// A 401 with the JSON error body and the scheme it wants.
fn unauthorized() -> Response {
    let mut r = ApiError::from(AppError::new(
        ErrorKind::NotSignedIn,
        "/metrics needs the metrics bearer token ([server] metrics_token_file)",
    ))
    .into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"dsmon metrics\""),
    );
    r
}

/// The router of the metrics listener on loopback port `port`: `/metrics` alone, no token.
pub fn metrics_router(state: AppState, port: Option<u16>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(
                |State(s): State<AppState>, headers: HeaderMap| async move { answer(&s, &headers) },
            ),
        )
        .fallback(|| async {
            ApiError::from(AppError::new(
                ErrorKind::NotFound,
                "this listener serves /metrics only",
            ))
        })
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            loopback_only(port, req, next)
        }))
        .with_state(state)
}

/// Answers only requests whose Host is a loopback name (with no port or `port`).
async fn loopback_only(port: Option<u16>, req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()));
    if host.is_some_and(|h| super::defence::loopback_host(h, port)) {
        let mut resp = next.run(req).await;
        resp.headers_mut().insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        return resp;
    }
    tracing::warn!(host, "metrics request for another host refused");
    (
        StatusCode::MISDIRECTED_REQUEST,
        Json(super::ErrorBody {
            error: "the metrics listener answers only to a loopback address (localhost, 127.0.0.1, [::1])".into(),
            kind: ErrorKind::BadRequest,
        }),
    )
        .into_response()
}

/// The metrics listener, bound.
pub struct MetricsBound {
    tcp: tokio::net::TcpListener,
    addr: SocketAddr,
}

impl MetricsBound {
    /// The address it listens on (with the port given for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Binds `[server] metrics_listen` (before anything else starts, so a taken port fails fast).
pub async fn bind_metrics(addr: SocketAddr) -> Result<MetricsBound, ServerError> {
    let bind_err = |source| ServerError::Bind {
        listen: format!("http://{addr} (metrics_listen)"),
        source,
    };
    let tcp = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(bind_err)?;
    let addr = tcp.local_addr().map_err(bind_err)?;
    Ok(MetricsBound { tcp, addr })
}

/// Serves `/metrics` on the metrics listener until `state.shutdown` turns true.
pub async fn serve_metrics(bound: MetricsBound, state: AppState) {
    let stop = state.shutdown.clone();
    let app = metrics_router(state, Some(bound.addr.port()));
    super::conn::serve(bound.tcp, None, app, METRICS_CONNECTIONS, stop).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        let want = Secret::new("0123456789abcdef".into());
        assert!(same_token("0123456789abcdef", &want));
        for other in [
            "",
            "0123456789abcdeF",
            "0123456789abcdef0",
            "0123456789abcde",
        ] {
            assert!(!same_token(other, &want), "{other:?}");
        }
    }

    #[test]
    fn openmetrics_when_asked_for() {
        let with = |accept: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, accept.parse().unwrap());
            negotiate(&h)
        };
        // Prometheus 2.42's Accept header.
        assert_eq!(
            with("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"),
            Format::OpenMetrics
        );
        assert_eq!(with("text/plain;version=0.0.4"), Format::Prometheus);
        assert_eq!(with("*/*"), Format::Prometheus);
        assert_eq!(
            with("application/openmetrics-text; q=0, text/plain"),
            Format::Prometheus
        );
        assert_eq!(negotiate(&HeaderMap::new()), Format::Prometheus);
    }
}
