//! API token routes (Admins): list, create (the answer holds the secret, once), revoke. Each
//! handler takes the caller, calls the application layer and maps its error.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use dsmon_app::tokens::TokenList;
use dsmon_auth::tokens::{NewToken, NewTokenBody};
use dsmon_store::auth_db::ApiTokenRecord;

use super::access::{Caller, SameOrigin};
use super::{ApiError, AppState, ErrorBody};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(revoke))
}

/// Every API token (revoked ones too), newest first; never a secret or its hash. A signed-in
/// Admin or an Admin token.
#[utoipa::path(get, path = "/api/tokens", tag = "tokens",
    responses((status = 200, body = TokenList)),
    extensions(("x-dsmon-role" = json!("admin"))))]
async fn list(c: Caller, State(s): State<AppState>) -> Result<Response, ApiError> {
    Ok(Json(s.app.tokens(&c.0).await?).into_response())
}

/// Makes a token; the answer holds its secret, shown this once. A signed-in Admin only (not a
/// token: a leaked token cannot mint others).
#[utoipa::path(post, path = "/api/tokens", tag = "tokens", request_body = NewTokenBody,
    responses(
        (status = 201, description = "the token and its secret", body = NewToken),
        (status = 400, description = "a bad name, role or expiry (in the past), or an unknown field", body = ErrorBody),
        (status = 409, description = "a token of that name exists (names are never reused)", body = ErrorBody),
    ),
    extensions(("x-dsmon-role" = json!("admin"))))]
async fn create(
    c: Caller,
    _: SameOrigin,
    State(s): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let token = s.app.create_token(&c.0, &body).await?;
    Ok((StatusCode::CREATED, Json(token)).into_response())
}

/// Revokes a token: it answers 401 from now on. A signed-in Admin only.
#[utoipa::path(delete, path = "/api/tokens/{id}", tag = "tokens",
    params(("id" = i64, Path, description = "the token's id")),
    responses(
        (status = 200, description = "the token, revoked", body = ApiTokenRecord),
        (status = 400, description = "an id that is not a number", body = ErrorBody),
        (status = 404, description = "no such token", body = ErrorBody),
    ),
    extensions(("x-dsmon-role" = json!("admin"))))]
async fn revoke(
    c: Caller,
    _: SameOrigin,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(s.app.revoke_token(&c.0, &id).await?).into_response())
}
