//! Who is calling: the session (a bearer token, else the session cookie) is resolved by the
//! application layer, which also decides what the caller may do. This module only finds the token
//! and refuses cross-site state changes ([`SameOrigin`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use axum_extra::headers::authorization::Bearer;
use axum_extra::headers::{Authorization, HeaderMapExt};
use tokio::sync::Mutex;

use dsmon_app::{Access, App, AppError, ErrorKind};

use super::{ApiError, AppState};

pub const SESSION_COOKIE: &str = "dsmon_session";
pub const LOGIN_COOKIE: &str = "dsmon_login";

/// The cookies' names and attributes. Over https they carry the `__Host-` prefix, which browsers
/// accept only from a secure page with `Path=/` and no `Domain`, so a sibling subdomain or a plain
/// http page cannot plant or shadow them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cookies {
    pub session: &'static str,
    pub login: &'static str,
    pub https: bool,
}

impl Cookies {
    pub fn new(https: bool) -> Self {
        if https {
            Self {
                session: "__Host-dsmon_session",
                login: "__Host-dsmon_login",
                https,
            }
        } else {
            Self {
                session: SESSION_COOKIE,
                login: LOGIN_COOKIE,
                https,
            }
        }
    }

    /// `Set-Cookie` for `name` (a value, or `None` to clear it) living `max_age` seconds.
    pub fn set(&self, name: &str, value: Option<&str>, max_age: u64) -> String {
        // `__Host-` needs Path=/; over plain http the login cookie stays on /auth/.
        let path = if self.https || name == self.session {
            "/"
        } else {
            "/auth/"
        };
        let (value, max_age) = value.map_or(("", 0), |v| (v, max_age));
        let secure = if self.https { "; Secure" } else { "" };
        format!("{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}")
    }
}

/// A cookie's value from the request headers, found by its exact name (surrounding quotes
/// removed). Sent more than once (a planted duplicate beside the real one), it counts as absent:
/// there is no telling which is ours.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    let sent = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter(|pair| pair.split('=').next().map(str::trim) == Some(name))
        .count();
    if sent != 1 {
        return None;
    }
    CookieJar::from_headers(headers)
        .get(name)
        .map(|c| c.value_trimmed().to_string())
}

/// The `Authorization: Bearer` token (the desktop app's remote mode sends its session so).
pub fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .typed_get::<Authorization<Bearer>>()
        .map(|a| a.token().trim().to_string())
        .filter(|t| !t.is_empty())
}

/// The credential of a request: a bearer token (a session or an API token), else the session
/// cookie. An API token's secret counts only as a bearer token: in the cookie it is ignored.
pub fn session_token(headers: &HeaderMap, cookies: &Cookies) -> Option<String> {
    bearer(headers).or_else(|| {
        cookie(headers, cookies.session)
            .filter(|t| !t.is_empty() && !dsmon_auth::tokens::is_api_token(t))
    })
}

/// The caller of a request, as the application layer resolved it.
pub struct Caller(pub Access);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, ApiError> {
        let token = session_token(&parts.headers, &s.cookies);
        Ok(Caller(
            s.app
                .request_access(token.as_deref(), parts.method.as_str(), parts.uri.path())
                .await?,
        ))
    }
}

/// How long a live stream goes on a check of its caller before it checks again.
const RECHECK: Duration = Duration::from_secs(5);

/// A stream's caller, checked again at most every [`RECHECK`] (off the async threads, by the
/// application layer), not once per snapshot per client.
#[derive(Clone)]
pub struct Recheck {
    app: App,
    access: Arc<Access>,
    token: Option<Arc<str>>,
    /// When the caller was last found still allowed; `None` once it is not.
    last: Arc<Mutex<Option<Instant>>>,
}

impl Recheck {
    pub fn new(app: App, c: Caller, token: Option<&str>) -> Self {
        Self {
            app,
            access: Arc::new(c.0),
            token: token.map(Arc::from),
            last: Arc::new(Mutex::new(Some(Instant::now()))),
        }
    }

    pub async fn still_allowed(&self) -> bool {
        let mut last = self.last.lock().await;
        match *last {
            None => return false,
            Some(t) if t.elapsed() < RECHECK => return true,
            Some(_) => {}
        }
        let token = self.token.as_deref();
        let ok = match self.app.access(token, &self.access.via).await {
            Ok(a) => a.who == self.access.who && self.app.live(&a).is_ok(),
            Err(_) => false,
        };
        *last = ok.then(Instant::now);
        ok
    }
}

fn forbidden(message: &str) -> Response {
    ApiError::from(AppError::new(ErrorKind::Forbidden, message)).into_response()
}

/// The origin browsers send with this site's own requests: the redirect URL's origin when sign-in
/// is configured (the public address, also behind a proxy), else this request's Host.
fn expected_origin(parts: &Parts, s: &AppState) -> Option<String> {
    match s.app.auth() {
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
        if bearer(&parts.headers).is_some() && cookie(&parts.headers, s.cookies.session).is_none() {
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
                Err(forbidden(
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
    fn cookies_are_found_by_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; dsmon_session=abc; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&h, LOGIN_COOKIE), None);
        assert_eq!(cookie(&h, "dsmon_sess"), None, "exact names only");
        let plain = Cookies::new(false);
        assert_eq!(session_token(&h, &plain).as_deref(), Some("abc"));
        assert_eq!(
            session_token(&h, &Cookies::new(true)),
            None,
            "https: __Host- only"
        );
        h.insert(header::COOKIE, "dsmon_session=\"q\"".parse().unwrap());
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("q"));
        h.append(header::COOKIE, "dsmon_session=planted".parse().unwrap());
        assert_eq!(cookie(&h, SESSION_COOKIE), None, "a duplicate: neither");
        h.insert(
            header::COOKIE,
            "dsmon_session=dsmon_secret".parse().unwrap(),
        );
        assert_eq!(
            session_token(&h, &plain),
            None,
            "an API token only as a bearer token"
        );
        h.insert(header::AUTHORIZATION, "Bearer xyz".parse().unwrap());
        assert_eq!(session_token(&h, &plain).as_deref(), Some("xyz"));
        h.insert(header::AUTHORIZATION, "Bearer ".parse().unwrap());
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, "Basic xyz".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }
}
