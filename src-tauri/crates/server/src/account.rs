//! Sign-in routes (`/auth/login`, `/auth/callback`, `POST /auth/logout`), who am I (`/api/me`),
//! and user administration for Admins (`/api/users`, `/api/audit`). The decisions are
//! [`dsmon_auth`]'s; these handlers move cookies and map errors.

use axum::extract::{Extension, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use dsmon_app::AppError;
use dsmon_auth::{AuthError, Role};

use super::access::{self, Caller, SameOrigin};
use super::defence::Client;
use super::{ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/auth/login", get(login))
        .route("/auth/callback", get(callback))
        .route("/auth/logout", post(logout))
        .route("/auth/nonce", post(nonce))
        .route("/auth/token", post(token))
        .route("/auth/signed-out", get(signed_out))
        .route("/api/me", get(me))
        .route("/api/users", get(users))
        .route("/api/users/{email}", post(change_user))
        .route("/api/audit", get(audit))
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

#[derive(Deserialize)]
struct LoginQuery {
    next: Option<String>,
}

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

#[derive(Deserialize)]
struct CallbackQuery {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
}

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
        Json(serde_json::json!({ "signed_out": true })),
    )
        .into_response()
}

#[derive(Serialize)]
struct NonceResponse {
    nonce: String,
    expires_in: u64,
}

/// `POST /auth/nonce`: the desktop app's remote mode asks for a one-time nonce before it signs in
/// at the provider, and puts it in its authorization request; `/auth/token` then takes only an ID
/// token carrying a nonce issued here.
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
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    id_token: String,
}

#[derive(Serialize)]
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

async fn signed_out() -> Response {
    message_page(
        StatusCode::OK,
        "Signed out",
        "You are signed out of dsmon.",
        Some(("/auth/login", "Sign in")),
    )
}

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

async fn users(c: Caller, State(s): State<AppState>) -> Result<Response, ApiError> {
    Ok(Json(s.app.users(&c.0).await?).into_response())
}

async fn change_user(
    c: Caller,
    _: SameOrigin,
    State(s): State<AppState>,
    Path(email): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    Ok(Json(s.app.change_user(&c.0, &email, &body).await?).into_response())
}

#[derive(Deserialize)]
struct AuditQuery {
    offset: Option<i64>,
    limit: Option<i64>,
}

async fn audit(
    c: Caller,
    State(s): State<AppState>,
    q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    Ok(Json(s.app.audit(&c.0, q.offset, q.limit).await?).into_response())
}
