//! Who is calling, and whether they may: the session cookie is looked up in [`crate::auth`] (which
//! resolves the role on every request), and extractors refuse what the role does not allow —
//! `/api/*` with a JSON 401/403, pages with a redirect to sign-in or the "not authorized" page.
//! Refusals of signed-in callers are audited. Without `[auth]` every request is the local Admin.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use crate::auth::{Caller, Role};

use super::{ApiError, AppState};

pub const SESSION_COOKIE: &str = "dsmon_session";
pub const LOGIN_COOKIE: &str = "dsmon_login";

/// The caller of a request.
#[derive(Debug, Clone)]
pub enum Access {
    /// No `[auth]`: the single local user, treated as Admin.
    Local,
    Anonymous,
    Signed(Caller),
}

impl Access {
    pub fn role(&self) -> Option<Role> {
        match self {
            Access::Local => Some(Role::Admin),
            Access::Anonymous => None,
            Access::Signed(c) => Some(c.role),
        }
    }

    /// The caller as the core sees it (the local user is "local").
    pub fn caller(&self) -> Option<Caller> {
        match self {
            Access::Local => Some(Caller {
                email: "local".into(),
                name: None,
                role: Role::Admin,
            }),
            Access::Anonymous => None,
            Access::Signed(c) => Some(c.clone()),
        }
    }
}

/// A cookie's value from the request headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
}

/// The `Authorization: Bearer` token (the desktop app's remote mode sends its session so).
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// The session of a request: a bearer token, else the session cookie.
pub fn session_token(headers: &HeaderMap) -> Option<&str> {
    bearer(headers).or_else(|| cookie(headers, SESSION_COOKIE).filter(|t| !t.is_empty()))
}

/// Resolves the caller of a request.
pub async fn access(headers: &HeaderMap, s: &AppState) -> Result<Access, ApiError> {
    let Some(auth) = &s.auth else {
        return Ok(Access::Local);
    };
    let Some(token) = session_token(headers) else {
        return Ok(Access::Anonymous);
    };
    let (auth, token) = (auth.clone(), token.to_string());
    let caller = tokio::task::spawn_blocking(move || auth.session(&token))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    Ok(caller.map_or(Access::Anonymous, Access::Signed))
}

fn api_refusal(status: StatusCode, message: &str) -> Response {
    ApiError {
        status,
        message: message.into(),
    }
    .into_response()
}

/// Checks `need` for an `/api/` request.
async fn require_api(parts: &Parts, s: &AppState, need: Role) -> Result<Access, Response> {
    let a = access(&parts.headers, s)
        .await
        .map_err(IntoResponse::into_response)?;
    match (&a, a.role()) {
        (_, None) => Err(api_refusal(
            StatusCode::UNAUTHORIZED,
            "sign in first (/auth/login)",
        )),
        (Access::Signed(c), Some(Role::User)) if need == Role::Admin => {
            deny(s, c, parts.uri.path());
            Err(api_refusal(
                StatusCode::FORBIDDEN,
                "this needs the Admin role",
            ))
        }
        _ => Ok(a),
    }
}

fn deny(s: &AppState, c: &Caller, what: &str) {
    if let Some(auth) = &s.auth {
        auth.denied(c, what);
    }
}

/// Checks `need` for a page: anonymous callers are sent to sign in (and back here after), callers
/// without the role get the "not authorized" page.
pub async fn require_page(parts: &mut Parts, s: &AppState, need: Role) -> Result<Access, Response> {
    let a = access(&parts.headers, s)
        .await
        .map_err(IntoResponse::into_response)?;
    match (&a, a.role()) {
        (_, None) => {
            let here = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            let next: String = url::form_urlencoded::byte_serialize(here.as_bytes()).collect();
            Err(Redirect::to(&format!("/auth/login?next={next}")).into_response())
        }
        (Access::Signed(c), Some(Role::User)) if need == Role::Admin => {
            deny(s, c, parts.uri.path());
            Err(super::account::message_page(
                StatusCode::FORBIDDEN,
                "Not authorized",
                &format!(
                    "You are signed in as {} with the User role, which shows the live view only. This page is for Admins.",
                    c.email
                ),
                Some(("/live", "Go to the live view")),
            ))
        }
        _ => Ok(a),
    }
}

/// The role a UI page needs, or `None` when the path is not a page.
pub fn page_role(path: &str) -> Option<Role> {
    let first = path.split('/').next().unwrap_or("");
    match first {
        "" | "index.html" | "live" => Some(Role::User),
        "nodes" if path.len() > "nodes/".len() => Some(Role::User),
        "history" | "users" | "audit" => Some(Role::Admin),
        _ => None,
    }
}

/// Any signed-in caller (User or Admin).
pub struct ViewerCaller(pub Access);
/// An Admin.
pub struct AdminCaller(pub Access);

impl FromRequestParts<AppState> for ViewerCaller {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Response> {
        require_api(parts, s, Role::User).await.map(ViewerCaller)
    }
}

impl FromRequestParts<AppState> for AdminCaller {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Response> {
        require_api(parts, s, Role::Admin).await.map(AdminCaller)
    }
}

/// The origin browsers send with this site's own requests: the redirect URL's origin when sign-in
/// is configured (the public address, also behind a proxy), else this request's Host.
fn expected_origin(parts: &Parts, s: &AppState) -> Option<String> {
    match &s.auth {
        Some(a) => a
            .config()
            .redirect_url
            .as_ref()
            .map(|u| u.origin().ascii_serialization()),
        None => parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(|h| format!("http://{h}")),
    }
}

/// Refuses a state-changing request that does not come from this site's own pages: its `Origin`
/// header must be this site's origin (browsers always send it with a POST). A request that
/// authenticates with a bearer token carries no ambient credential a foreign site could borrow,
/// so it needs no Origin.
pub struct SameOrigin;

impl FromRequestParts<AppState> for SameOrigin {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Response> {
        if bearer(&parts.headers).is_some() && cookie(&parts.headers, SESSION_COOKIE).is_none() {
            return Ok(SameOrigin);
        }
        let origin = parts
            .headers
            .get(header::ORIGIN)
            .and_then(|o| o.to_str().ok());
        match (origin, expected_origin(parts, s)) {
            (Some(o), Some(want)) if o == want => Ok(SameOrigin),
            (got, _) => {
                tracing::warn!(
                    origin = got,
                    path = parts.uri.path(),
                    "cross-site request refused"
                );
                Err(api_refusal(
                    StatusCode::FORBIDDEN,
                    "cross-site request refused (the Origin header is missing or not this site)",
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_and_their_roles() {
        assert_eq!(page_role(""), Some(Role::User));
        assert_eq!(page_role("live"), Some(Role::User));
        assert_eq!(page_role("nodes/node1"), Some(Role::User));
        assert_eq!(page_role("history"), Some(Role::Admin));
        assert_eq!(page_role("users"), Some(Role::Admin));
        assert_eq!(page_role("audit"), Some(Role::Admin));
        assert_eq!(page_role("app.js"), None);
        assert_eq!(page_role("vendor/uPlot.min.css"), None);
        assert_eq!(page_role("nodes/"), None);
    }

    #[test]
    fn cookies_are_found_by_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; dsmon_session=abc; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, LOGIN_COOKIE), None);
        assert_eq!(session_token(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, "Bearer xyz".parse().unwrap());
        assert_eq!(session_token(&h), Some("xyz"));
        h.insert(header::AUTHORIZATION, "Basic xyz".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }
}
