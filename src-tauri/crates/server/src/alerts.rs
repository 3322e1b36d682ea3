//! Alert routes: what is firing now for every role, and for Admins the history, the delivery log,
//! the rules, silences, acknowledgements and a test send. Each handler takes the caller, calls
//! the application layer and maps its error.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;

use dsmon_app::alerts::AlertHistoryRequest;

use super::access::{Caller, SameOrigin};
use super::{ApiError, AppState, QueryPairs};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/alerts", get(now))
        .route("/api/alerts/history", get(history))
        .route("/api/alerts/deliveries", get(deliveries))
        .route("/api/alerts/config", get(config))
        .route("/api/alerts/silences", get(silences).post(create_silence))
        .route("/api/alerts/silences/{id}", delete(expire_silence))
        .route("/api/alerts/ack", post(acknowledge))
        .route("/api/alerts/notifiers/{name}/test", post(test_notifier))
}

async fn now(c: Caller, State(s): State<AppState>, q: QueryPairs) -> Result<Response, ApiError> {
    Ok(Json(s.app.alerts_matching(&c.0, &super::node_filter(q)?)?).into_response())
}

async fn history(
    c: Caller,
    State(s): State<AppState>,
    q: QueryPairs,
) -> Result<Response, ApiError> {
    let axum_extra::extract::Query(pairs) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let req = AlertHistoryRequest::from_pairs(pairs);
    Ok(Json(s.app.alert_history(&c.0, req).await?).into_response())
}

#[derive(Deserialize)]
struct Limit {
    limit: Option<usize>,
}

async fn deliveries(
    c: Caller,
    State(s): State<AppState>,
    q: Result<Query<Limit>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    Ok(Json(s.app.alert_deliveries(&c.0, q.limit).await?).into_response())
}

async fn config(c: Caller, State(s): State<AppState>) -> Result<Response, ApiError> {
    Ok(Json(s.app.alert_config(&c.0)?).into_response())
}

async fn silences(c: Caller, State(s): State<AppState>) -> Result<Response, ApiError> {
    Ok(Json(s.app.silences(&c.0).await?).into_response())
}

async fn create_silence(
    c: Caller,
    _: SameOrigin,
    State(s): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    Ok(Json(s.app.create_silence(&c.0, &body).await?).into_response())
}

async fn expire_silence(
    c: Caller,
    _: SameOrigin,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(s.app.expire_silence(&c.0, &id).await?).into_response())
}

async fn acknowledge(
    c: Caller,
    _: SameOrigin,
    State(s): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    Ok(Json(s.app.acknowledge(&c.0, &body).await?).into_response())
}

async fn test_notifier(
    c: Caller,
    _: SameOrigin,
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(s.app.test_notifier(&c.0, &name).await?).into_response())
}
