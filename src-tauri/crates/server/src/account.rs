//! Sign-in routes (`/auth/login`, `/auth/callback`, `POST /auth/logout`), who am I (`/api/me`),
//! and user administration for Admins (`/api/users`, `/api/audit`). The decisions are
//! [`dsmon_auth`]'s; these handlers move cookies and map errors.

use axum::extract::{Extension, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use dsmon_app::AppError;
use dsmon_auth::{AuthError, Role};

use super::access::{self, Caller, SameOrigin};
use super::defence::Client;
use super::{ApiError, AppState, ErrorBody};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(callback))
        .routes(routes!(logout))
        .routes(routes!(nonce))
        .routes(routes!(token))
        .routes(routes!(signed_out))
        .routes(routes!(me))
        .routes(routes!(users))
        .routes(routes!(change_user))
        .routes(routes!(audit))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A small server-made page (sign-in outcomes, "not authorized"), in the UI's style, without script.
pub fn message_page(
    status: StatusCode,
    title: &str,
    text: &str,
    link: Option<(&str, &str)>,
) -> Response {
    let link = link
        .map(|(href, label)| {
            format!(
                "<p><a class=\"button\" href=\"{}\">{}</a></p>",
                escape(href),
                escape(label)
            )
        })
        .unwrap_or_default();
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta name=\"color-scheme\" content=\"light dark\"><title>{t} · dsmon</title>\
<link rel=\"icon\" href=\"/favicon.png\"><link rel=\"stylesheet\" href=\"/style.css\"></head>\
<body><header class=\"top\"><a class=\"brand\" href=\"/\">dsmon</a></header>\
<main class=\"message\" id=\"message\"><h1>{t}</h1><p>{x}</p>{link}</main></body></html>",
        t = escape(title),
        x = escape(text),
    );
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct LoginQuery {
    /// Where to go after signing in: a path on this site (else `/`).
    next: Option<String>,
}

/// Starts a sign-in: a redirect to the provider (authorization code + PKCE).
///
/// A browser route, not JSON: it sets the login cookie and answers 303 to the provider (without
/// `[auth]`: straight to `next`); 503 with an HTML page when the provider cannot be reached or too
/// many sign-ins are in progress.
#[utoipa::path(get, path = "/auth/login", tag = "auth", params(LoginQuery),
    responses(
        (status = 303, description = "to the provider's authorization endpoint", headers(("location" = String), ("set-cookie" = String))),
        (status = 503, description = "sign-in unavailable (an HTML page)", body = String, content_type = "text/html"),
    ),
    extensions(("x-dsmon-role" = json!("public"))))]
async fn login(
    State(s): State<AppState>,
    client: Option<Extension<Client>>,
    Query(q): Query<LoginQuery>,
) -> Response {
    let next = dsmon_auth::safe_next(q.next.as_deref().unwrap_or("/"));
    let Some(auth) = s.app.auth() else {
        // A local tool has nobody to sign in.
        return Redirect::to(&next).into_response();
    };
    let client = client.map_or_else(|| Client(None).key(), |Extension(c)| c.key());
    match auth.begin(&next, &client).await {
        Ok(started) => {
            let cookie = s.cookies.set(s.cookies.login, Some(&started.state), 600);
            (
                [(header::SET_COOKIE, cookie)],
                Redirect::to(started.url.as_str()),
            )
                .into_response()
        }
        Err(AuthError::Busy) => message_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Too many sign-ins in progress",
            "Too many sign-ins are in progress on this dsmon right now. Try again in a few minutes.",
            Some(("/auth/login", "Try again")),
        ),
        Err(e) => {
            // The provider's error chain (DNS, TLS details) is for the log, not for whoever asks.
            tracing::error!(error = %e, "cannot start a sign-in");
            message_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in is unavailable",
                "The sign-in provider cannot be reached. Try again in a moment.",
                Some(("/auth/login", "Try again")),
            )
        }
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct CallbackQuery {
    /// The state of the sign-in (must match the login cookie).
    state: Option<String>,
    /// The provider's authorization code.
    code: Option<String>,
    /// The provider's error, when it refused.
    error: Option<String>,
}

/// Finishes a sign-in at the provider's redirect: the session cookie and a redirect to `next`.
///
/// A browser route, not JSON: refusals are HTML pages saying why (403 no role or blocked, 400 a
/// bad or replayed state, 502 the provider failed).
#[utoipa::path(get, path = "/auth/callback", tag = "auth", params(CallbackQuery),
    responses(
        (status = 303, description = "signed in: the session cookie, and to `next`", headers(("location" = String), ("set-cookie" = String))),
        (status = 400, description = "a bad, expired or replayed sign-in (an HTML page)", body = String, content_type = "text/html"),
        (status = 403, description = "not authorized: no role, blocked, unverified or another account (an HTML page)", body = String, content_type = "text/html"),
        (status = 502, description = "the provider failed (an HTML page)", body = String, content_type = "text/html"),
    ),
    extensions(("x-dsmon-role" = json!("public"))))]
async fn callback(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let Some(auth) = s.app.auth() else {
        return Redirect::to("/").into_response();
    };
    let clear_login = s.cookies.set(s.cookies.login, None, 0);
    // The session this browser still holds ends with a successful sign-in (a new id replaces it).
    let result = auth
        .finish(
            q.state.as_deref(),
            access::cookie(&headers, s.cookies.login).as_deref(),
            q.code.as_deref(),
            q.error.as_deref(),
            access::cookie(&headers, s.cookies.session).as_deref(),
        )
        .await;
    match result {
        Ok(signed) => {
            let session = s.cookies.set(
                s.cookies.session,
                Some(&signed.session),
                signed.expires_in.as_secs(),
            );
            let mut r = Redirect::to(&signed.next).into_response();
            let h = r.headers_mut();
            for c in [clear_login, session] {
                if let Ok(v) = c.parse() {
                    h.append(header::SET_COOKIE, v);
                }
            }
            r
        }
        Err(e) => {
            let (status, title, link) = match &e {
                AuthError::NotAuthorized(_)
                | AuthError::Blocked(_)
                | AuthError::Unverified(_)
                | AuthError::OtherAccount { .. } => (
                    StatusCode::FORBIDDEN,
                    "Not authorized",
                    ("/auth/login", "Sign in with another account"),
                ),
                AuthError::Provider(_) => (
                    StatusCode::BAD_GATEWAY,
                    "Sign-in is unavailable",
                    ("/auth/login", "Try again"),
                ),
                AuthError::Db(_) | AuthError::Poisoned => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Sign-in failed",
                    ("/auth/login", "Try again"),
                ),
                _ => (
                    StatusCode::BAD_REQUEST,
                    "Sign-in failed",
                    ("/auth/login", "Sign in again"),
                ),
            };
            let text = match &e {
                AuthError::NotAuthorized(_) => format!("{e}. Ask an administrator for access."),
                AuthError::Db(_) | AuthError::Poisoned => {
                    tracing::error!(error = %e, "sign-in failed");
                    "An internal error occurred (see the server log).".to_string()
                }
                // The provider's error chain (DNS, TLS details) is for the log only.
                AuthError::Provider(_) => {
                    tracing::error!(error = %e, "sign-in failed at the provider");
                    "The sign-in provider cannot be reached. Try again in a moment.".to_string()
                }
                _ => e.to_string(),
            };
            let mut r = message_page(status, title, &text, Some(link));
            if let Ok(v) = clear_login.parse() {
                r.headers_mut().append(header::SET_COOKIE, v);
            }
            r
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
struct SignedOut {
    signed_out: bool,
}

/// Ends the caller's session (server-side) and clears its cookie; without one, only the cookie.
#[utoipa::path(post, path = "/auth/logout", tag = "auth",
    responses(
        (status = 200, body = SignedOut),
        (status = 403, description = "a cookie-carrying request without this site's `Origin`", body = ErrorBody),
    ),
    extensions(("x-dsmon-role" = json!("public"))))]
async fn logout(
    _: SameOrigin,
    c: Caller,
    State(s): State<AppState>,
    headers: HeaderMap,
) -> Response {
    if let (Some(auth), Some(token)) = (s.app.auth(), access::session_token(&headers, &s.cookies)) {
        let (auth, caller) = (auth.clone(), c.0.caller());
        let r = tokio::task::spawn_blocking(move || auth.logout(&token, caller.as_ref())).await;
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return ApiError::from(AppError::from(e)).into_response(),
            Err(e) => return ApiError::internal(e).into_response(),
        }
    }
    let clear = s.cookies.set(s.cookies.session, None, 0);
    (
        [(header::SET_COOKIE, clear)],
        Json(SignedOut { signed_out: true }),
    )
        .into_response()
}

#[derive(Serialize, utoipa::ToSchema)]
struct NonceResponse {
    nonce: String,
    expires_in: u64,
}

/// `POST /auth/nonce`: the desktop app's remote mode asks for a one-time nonce before it signs in
/// at the provider, and puts it in its authorization request; `/auth/token` then takes only an ID
/// token carrying a nonce issued here.
#[utoipa::path(post, path = "/auth/nonce", tag = "auth",
    responses(
        (status = 200, description = "a one-time nonce, valid `expires_in` seconds", body = NonceResponse),
        (status = 401, description = "this server takes no desktop sign-in (`[auth] desktop_client_id` unset)", body = ErrorBody),
        (status = 404, description = "dsmon runs without `[auth]`", body = ErrorBody),
        (status = 429, description = "too many nonces outstanding for this client", body = ErrorBody),
    ),
    extensions(("x-dsmon-role" = json!("public"))))]
async fn nonce(
    State(s): State<AppState>,
    client: Option<Extension<Client>>,
) -> Result<Response, ApiError> {
    let auth = s.app.auth().ok_or_else(no_sign_in)?;
    let client = client.map_or_else(|| Client(None).key(), |Extension(c)| c.key());
    let nonce = auth.issue_nonce(&client).await.map_err(AppError::from)?;
    Ok(Json(NonceResponse {
        nonce,
        expires_in: dsmon_auth::NONCE_TTL.as_secs(),
    })
    .into_response())
}

/// `{"id_token": "..."}`: an ID token the desktop app obtained for its own client id.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    id_token: String,
}

#[derive(Serialize, utoipa::ToSchema)]
struct TokenResponse {
    /// The session, sent back as `Authorization: Bearer ...`.
    session: String,
    email: String,
    name: Option<String>,
    role: Role,
    expires_in: u64,
}

/// `POST /auth/token`: the desktop app's remote mode exchanges its verified Google ID token (whose
/// audience is `[auth] desktop_client_id` and whose nonce came from `/auth/nonce`) once for a dsmon
/// session; the server's roles apply.
#[utoipa::path(post, path = "/auth/token", tag = "auth", request_body = TokenRequest,
    responses(
        (status = 200, description = "the session, to send as `Authorization: Bearer`", body = TokenResponse),
        (status = 400, description = "not `{\"id_token\": \"...\"}`", body = ErrorBody),
        (status = 401, description = "a bad or replayed token, a nonce this server did not issue, or no desktop sign-in configured", body = ErrorBody),
        (status = 403, description = "the identity has no role here", body = ErrorBody),
        (status = 404, description = "dsmon runs without `[auth]`", body = ErrorBody),
    ),
    extensions(("x-dsmon-role" = json!("public"))))]
async fn token(State(s): State<AppState>, body: axum::body::Bytes) -> Result<Response, ApiError> {
    let auth = s.app.auth().ok_or_else(no_sign_in)?;
    let req: TokenRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("expected {{\"id_token\": \"...\"}}: {e}")))?;
    let signed = auth
        .exchange_id_token(&req.id_token)
        .await
        .map_err(AppError::from)?;
    Ok(Json(TokenResponse {
        session: signed.session,
        email: signed.caller.email,
        name: signed.caller.name,
        role: signed.caller.role,
        expires_in: signed.expires_in.as_secs(),
    })
    .into_response())
}

/// The "signed out" page (HTML) the UI shows after `POST /auth/logout`.
#[utoipa::path(get, path = "/auth/signed-out", tag = "auth",
    responses((status = 200, description = "an HTML page", body = String, content_type = "text/html")),
    extensions(("x-dsmon-role" = json!("public"))))]
async fn signed_out() -> Response {
    message_page(
        StatusCode::OK,
        "Signed out",
        "You are signed out of dsmon.",
        Some(("/auth/login", "Sign in")),
    )
}

/// Who am I: the caller's address, name and role (`auth`: false without `[auth]`).
#[utoipa::path(get, path = "/api/me", tag = "auth",
    responses((status = 200, body = dsmon_app::Me)),
    extensions(("x-dsmon-role" = json!("user"))))]
async fn me(c: Caller, State(s): State<AppState>) -> Result<Json<dsmon_app::Me>, ApiError> {
    Ok(Json(s.app.me(&c.0)?))
}

fn no_sign_in() -> ApiError {
    AppError::new(
        dsmon_app::ErrorKind::NotFound,
        "dsmon runs without sign-in ([auth] is not configured): there are no users",
    )
    .into()
}

/// Everyone who signed in or tried: role in effect and its source, blocked, sign-in times.
#[utoipa::path(get, path = "/api/users", tag = "users",
    responses(
        (status = 200, body = Vec<dsmon_auth::UserView>),
        (status = 404, description = "dsmon runs without `[auth]`: there are no users", body = ErrorBody),
    ),
    extensions(("x-dsmon-role" = json!("admin"))))]
async fn users(c: Caller, State(s): State<AppState>) -> Result<Response, ApiError> {
    Ok(Json(s.app.users(&c.0).await?).into_response())
}

/// Sets a user's role, blocks or unblocks, or binds the address to the account that last tried
/// it; answers the new list (audited).
#[utoipa::path(post, path = "/api/users/{email}", tag = "users",
    params(("email" = String, Path, description = "the user's address")),
    request_body = dsmon_auth::UserChange,
    responses(
        (status = 200, description = "the users after the change", body = Vec<dsmon_auth::UserView>),
        (status = 400, description = "a body that is not a change", body = ErrorBody),
        (status = 404, description = "no such user, or no `[auth]`", body = ErrorBody),
        (status = 409, description = "a role or block of a configuration admin, or a rebind with no other account", body = ErrorBody),
    ),
    extensions(("x-dsmon-role" = json!("admin"))))]
async fn change_user(
    c: Caller,
    _: SameOrigin,
    State(s): State<AppState>,
    Path(email): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    Ok(Json(s.app.change_user(&c.0, &email, &body).await?).into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct AuditQuery {
    /// Entries to skip (newest first); default 0.
    offset: Option<i64>,
    /// Entries to answer, 1..500; default 50.
    limit: Option<i64>,
}

/// The audit log, newest first, a page at a time.
#[utoipa::path(get, path = "/api/audit", tag = "users", params(AuditQuery),
    responses(
        (status = 200, body = dsmon_auth::AuditPage),
        (status = 400, description = "a bad offset or limit", body = ErrorBody),
        (status = 404, description = "dsmon runs without `[auth]`", body = ErrorBody),
    ),
    extensions(("x-dsmon-role" = json!("admin"))))]
async fn audit(
    c: Caller,
    State(s): State<AppState>,
    q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    Ok(Json(s.app.audit(&c.0, q.offset, q.limit).await?).into_response())
}
