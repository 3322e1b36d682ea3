//! API token routes (Admins): list, create (the answer holds the secret, once), revoke. Each
//! handler takes the caller, calls the application layer and maps its error.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};

use super::access::{Caller, SameOrigin};
use super::{ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/tokens", get(list).post(create))
        .route("/api/tokens/{id}", delete(revoke))
}

async fn list(c: Caller, State(s): State<AppState>) -> Result<Response, ApiError> {
    Ok(Json(s.app.tokens(&c.0).await?).into_response())
}

async fn create(
    c: Caller,
    _: SameOrigin,
    State(s): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let token = s.app.create_token(&c.0, &body).await?;
    Ok((StatusCode::CREATED, Json(token)).into_response())
}

async fn revoke(
    c: Caller,
    _: SameOrigin,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(s.app.revoke_token(&c.0, &id).await?).into_response())
}
