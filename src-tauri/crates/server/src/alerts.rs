//! Alert routes: what is firing now for every role, and for Admins the history, the delivery log,
//! the rules, silences, acknowledgements and a test send. Each handler takes the caller, calls
//! the application layer and maps its error.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use dsmon_app::alerts::{
    Ack, AlertHistoryRequest, AlertsNow, ConfigView, CurrentAlert, Deliveries, DeliveryView,
    Events, NewSilence, SilenceView, Silences,
};
use dsmon_app::NodeFilter;

use super::access::{Caller, SameOrigin};
use super::{ApiError, AppState, ErrorBody, QueryPairs};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(now))
        .routes(routes!(history))
        .routes(routes!(deliveries))
        .routes(routes!(config))
        .routes(routes!(silences, create_silence))
        .routes(routes!(expire_silence))
        .routes(routes!(acknowledge))
        .routes(routes!(test_notifier))
}

/// The alerts pending or firing now (live data: every role); `tag` narrows them to nodes having
/// every tag given.
#[utoipa::path(get, path = "/api/alerts", tag = "alerts", params(NodeFilter),
    responses(
        (status = 200, body = AlertsNow),
        (status = 400, description = "a bad tag or an unknown parameter", body = ErrorBody),
    ),
    extensions(("x-dsmon-role" = json!("user"))))]
async fn now(c: Caller, State(s): State<AppState>, q: QueryPairs) -> Result<Response, ApiError> {
    Ok(Json(s.app.alerts_matching(&c.0, &super::node_filter(q)?)?).into_response())
}

/// Alerts fired and resolved, newest first (`silenced`: recorded, not delivered).
#[utoipa::path(get, path = "/api/alerts/history", tag = "alerts", params(AlertHistoryRequest),
    responses(
        (status = 200, body = Events),
        (status = 400, description = "a bad time, range, limit or an unknown parameter", body = ErrorBody),
    ),
    extensions(("x-dsmon-role" = json!("admin"))))]
async fn history(
    c: Caller,
    State(s): State<AppState>,
    q: QueryPairs,
) -> Result<Response, ApiError> {
    let axum_extra::extract::Query(pairs) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let req = AlertHistoryRequest::from_pairs(pairs);
    Ok(Json(s.app.alert_history(&c.0, req).await?).into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct Limit {
    /// At most this many, newest first.
    limit: Option<usize>,
}

/// The delivery log: what was sent where, when, how many tries, the receiver's answer.
#[utoipa::path(get, path = "/api/alerts/deliveries", tag = "alerts", params(Limit),
    responses(
        (status = 200, body = Deliveries),
        (status = 400, description = "a bad limit", body = ErrorBody),
    ),
    extensions(("x-dsmon-role" = json!("admin"))))]
async fn deliveries(
    c: Caller,
    State(s): State<AppState>,
    q: Result<Query<Limit>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    Ok(Json(s.app.alert_deliveries(&c.0, q.limit).await?).into_response())
}

/// The rules, notifiers (name, type, target) and maintenance windows (`open_now`).
#[utoipa::path(get, path = "/api/alerts/config", tag = "alerts",
    responses((status = 200, body = ConfigView)),
    extensions(("x-dsmon-role" = json!("admin"))))]
async fn config(c: Caller, State(s): State<AppState>) -> Result<Response, ApiError> {
    Ok(Json(s.app.alert_config(&c.0)?).into_response())
}

/// The silences, active and recently expired.
#[utoipa::path(get, path = "/api/alerts/silences", tag = "alerts",
    responses((status = 200, body = Silences)),
    extensions(("x-dsmon-role" = json!("admin"))))]
async fn silences(c: Caller, State(s): State<AppState>) -> Result<Response, ApiError> {
    Ok(Json(s.app.silences(&c.0).await?).into_response())
}

/// Creates a silence: at least one matcher (`nodes` glob, `rule`, `severity`), a comment, and
/// `expires` as a duration from now (`2h`) or an RFC 3339 time (audited).
#[utoipa::path(post, path = "/api/alerts/silences", tag = "alerts", request_body = NewSilence,
    responses(
        (status = 200, body = SilenceView),
        (status = 400, description = "no matcher, no comment, a bad expiry or an unknown field", body = ErrorBody),
        (status = 404, description = "alerts are not running on this instance", body = ErrorBody),
    ),
    extensions(("x-dsmon-role" = json!("admin"))))]
async fn create_silence(
    c: Caller,
    _: SameOrigin,
    State(s): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    Ok(Json(s.app.create_silence(&c.0, &body).await?).into_response())
}

/// Expires a silence now (audited).
#[utoipa::path(delete, path = "/api/alerts/silences/{id}", tag = "alerts",
    params(("id" = i64, Path, description = "the silence's id")),
    responses(
        (status = 200, description = "the silence, expired", body = SilenceView),
        (status = 400, description = "an id that is not a number", body = ErrorBody),
        (status = 404, description = "no such silence, or alerts are not running here", body = ErrorBody),
    ),
    extensions(("x-dsmon-role" = json!("admin"))))]
async fn expire_silence(
    c: Caller,
    _: SameOrigin,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(s.app.expire_silence(&c.0, &id).await?).into_response())
}

/// Acknowledges a firing alert: no repeats until it resolves (audited).
#[utoipa::path(post, path = "/api/alerts/ack", tag = "alerts", request_body = Ack,
    responses(
        (status = 200, description = "the alert, acknowledged", body = CurrentAlert),
        (status = 400, description = "not `{\"rule\", \"node\"}`", body = ErrorBody),
        (status = 404, description = "no such firing alert, or alerts are not running here", body = ErrorBody),
    ),
    extensions(("x-dsmon-role" = json!("admin"))))]
async fn acknowledge(
    c: Caller,
    _: SameOrigin,
    State(s): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    Ok(Json(s.app.acknowledge(&c.0, &body).await?).into_response())
}

/// Sends a test notification through a notifier; answers the delivery (audited).
#[utoipa::path(post, path = "/api/alerts/notifiers/{name}/test", tag = "alerts",
    params(("name" = String, Path, description = "the notifier's name")),
    responses(
        (status = 200, body = DeliveryView),
        (status = 404, description = "no such notifier, or alerts are not running here", body = ErrorBody),
    ),
    extensions(("x-dsmon-role" = json!("admin"))))]
async fn test_notifier(
    c: Caller,
    _: SameOrigin,
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(s.app.test_notifier(&c.0, &name).await?).into_response())
}
