//! Defences around every route: security headers on every response, a per-client rate limit on
//! `/auth/*`, and a limit on request bodies.
//!
//! - Headers: a Content-Security-Policy that allows scripts, styles and connections from this site
//!   only (no inline script or style: the UI and the server's message pages have none), framing by
//!   nobody; `X-Content-Type-Options: nosniff`, `Referrer-Policy: same-origin`, and
//!   `Strict-Transport-Security` when the site is reached over https (the public address in
//!   `[auth] redirect_url` is https, the connection is direct TLS, or a proxy on the unix socket
//!   says so with `X-Forwarded-Proto`).
//! - Rate limit: [`AUTH_BURST`] requests to `/auth/*` at once per client, then one per
//!   [`AUTH_REFILL`]; more answer 429 JSON with `Retry-After`. The client is the TCP peer's address
//!   (an IPv6 address counts by its /64). On a unix socket the peer is the reverse proxy, so there
//!   the address it puts in `X-Real-IP` (else the last `X-Forwarded-For` entry) is the client;
//!   those headers are never trusted over TCP, where any caller could set them.
//! - Bodies: at most [`BODY_LIMIT`] bytes (the API takes small JSON bodies); more answer 413.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::serve::IncomingStream;
use axum::{Json, Router};

use super::AppState;

/// The largest request body accepted, in bytes.
pub const BODY_LIMIT: usize = 16 * 1024;
/// Requests to `/auth/*` a client may make at once.
pub const AUTH_BURST: u32 = 30;
/// After a burst, one more request to `/auth/*` per this long.
pub const AUTH_REFILL: Duration = Duration::from_secs(2);
/// Clients tracked by the rate limit before idle ones are forgotten.
const MAX_CLIENTS: usize = 10_000;

pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
pub const HSTS: &str = "max-age=31536000";

/// Who is at the other end of a connection (axum's connect info for both kinds of listener).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// A TCP client: its address is the client's.
    Tcp(IpAddr),
    /// A client over direct TLS (`[server] tls_cert`): https.
    Tls(IpAddr),
    /// The unix socket: a reverse proxy on this machine, which names the client in its headers.
    Proxy,
}

impl Connected<IncomingStream<'_, tokio::net::TcpListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        Peer::Tcp(stream.remote_addr().ip())
    }
}

impl Connected<IncomingStream<'_, super::tls::TlsListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, super::tls::TlsListener>) -> Self {
        Peer::Tls(stream.remote_addr().ip())
    }
}

impl Connected<IncomingStream<'_, tokio::net::UnixListener>> for Peer {
    fn connect_info(_: IncomingStream<'_, tokio::net::UnixListener>) -> Self {
        Peer::Proxy
    }
}

/// The defences' settings and the rate limit's state.
pub struct Defence {
    /// The public address is https.
    https: bool,
    limiter: Limiter,
}

impl Defence {
    pub fn new(state: &AppState) -> Self {
        let https = state.app.auth().is_some_and(|a| {
            a.config()
                .redirect_url
                .as_ref()
                .is_some_and(|u| u.scheme() == "https")
        });
        Self {
            https,
            limiter: Limiter::new(AUTH_BURST, AUTH_REFILL),
        }
    }

    /// `app` behind the defences.
    pub fn wrap(self, app: Router) -> Router {
        app.layer(DefaultBodyLimit::max(BODY_LIMIT))
            .layer(middleware::from_fn_with_state(Arc::new(self), guard))
    }
}

async fn guard(State(d): State<Arc<Defence>>, req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<Peer>>()
        .map(|ConnectInfo(p)| *p);
    let https = d.https
        || matches!(peer, Some(Peer::Tls(_)))
        || (peer == Some(Peer::Proxy)
            && req
                .headers()
                .get("x-forwarded-proto")
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https")));
    let mut resp = if too_large(req.headers()) {
        refusal(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than {} KiB", BODY_LIMIT / 1024),
        )
    } else if req.uri().path().starts_with("/auth/") {
        let client = client_ip(peer, req.headers());
        match d.limiter.check(client, Instant::now()) {
            Ok(()) => next.run(req).await,
            Err(retry) => {
                let mut r = refusal(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!(
                        "too many sign-in requests from this address; try again in {} s",
                        retry.as_secs()
                    ),
                );
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry.as_secs()));
                r
            }
        }
    } else {
        next.run(req).await
    };
    add_headers(resp.headers_mut(), https);
    resp
}

fn refusal(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

/// A declared body over the limit (a chunked one is cut off by `DefaultBodyLimit` when read).
fn too_large(h: &HeaderMap) -> bool {
    h.get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n > BODY_LIMIT as u64)
}

fn add_headers(h: &mut HeaderMap, https: bool) {
    let set = |h: &mut HeaderMap, name: HeaderName, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set(h, header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY);
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::REFERRER_POLICY, "same-origin");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(
        h,
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    if https {
        set(h, header::STRICT_TRANSPORT_SECURITY, HSTS);
    }
}

/// The client's address: the TCP peer, or behind the proxy on the unix socket the address it
/// reports. `None` when it cannot be told (all such requests share one allowance).
fn client_ip(peer: Option<Peer>, h: &HeaderMap) -> Option<IpAddr> {
    match peer? {
        Peer::Tcp(ip) | Peer::Tls(ip) => Some(ip),
        Peer::Proxy => {
            let header_ip = |name: &str, last: bool| {
                let v = h.get(name)?.to_str().ok()?;
                let item = if last { v.rsplit(',').next()? } else { v };
                item.trim().parse::<IpAddr>().ok()
            };
            header_ip("x-real-ip", false).or_else(|| header_ip("x-forwarded-for", true))
        }
    }
}

/// A token bucket per client.
struct Limiter {
    burst: f64,
    refill: Duration,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
    /// Whether the refusal was logged since the bucket last had tokens (one log line per episode).
    logged: bool,
}

impl Limiter {
    fn new(burst: u32, refill: Duration) -> Self {
        Self {
            burst: f64::from(burst),
            refill,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `client`, or says how long until one is there.
    fn check(&self, client: Option<IpAddr>, now: Instant) -> Result<(), Duration> {
        const SHARED: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
        let mut key = client.map_or(SHARED, bucket_key);
        let Ok(mut buckets) = self.buckets.lock() else {
            // A poisoned lock must not lock everyone out of signing in.
            return Ok(());
        };
        if buckets.len() >= MAX_CLIENTS && !buckets.contains_key(&key) {
            let (burst, refill) = (self.burst, self.refill.as_secs_f64());
            buckets
                .retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() / refill < burst);
            if buckets.len() >= MAX_CLIENTS {
                // Too many active clients at once: the newcomers share one allowance.
                key = SHARED;
            }
        }
        let b = buckets.entry(key).or_insert(Bucket {
            tokens: self.burst,
            at: now,
            logged: false,
        });
        let refilled = now.duration_since(b.at).as_secs_f64() / self.refill.as_secs_f64();
        b.tokens = (b.tokens + refilled).min(self.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            b.logged = false;
            return Ok(());
        }
        if !b.logged {
            b.logged = true;
            tracing::warn!(client = %key, "rate limit: too many requests to /auth/*, refusing for now");
        }
        let wait = (1.0 - b.tokens) * self.refill.as_secs_f64();
        Err(Duration::from_secs(wait.ceil().max(1.0) as u64))
    }
}

/// IPv6 clients count by their /64 (one host usually has a whole /64 to pick addresses from).
fn bucket_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        s.parse().ok()
    }

    #[test]
    fn burst_then_one_per_refill_per_client() {
        let l = Limiter::new(3, Duration::from_secs(2));
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.check(ip("10.0.0.1"), t0).is_ok());
        }
        assert_eq!(
            l.check(ip("10.0.0.1"), t0),
            Err(Duration::from_secs(2)),
            "the fourth at once waits one refill"
        );
        // Another client has its own allowance.
        assert!(l.check(ip("10.0.0.2"), t0).is_ok());
        // One token back after a refill period, not two.
        let t1 = t0 + Duration::from_secs(2);
        assert!(l.check(ip("10.0.0.1"), t1).is_ok());
        assert!(l.check(ip("10.0.0.1"), t1).is_err());
        // Full again after long enough, and never more than the burst.
        let t2 = t1 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert!(l.check(ip("10.0.0.1"), t2).is_ok());
        }
        assert!(l.check(ip("10.0.0.1"), t2).is_err());
    }

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_v4_as_v4() {
        let l = Limiter::new(1, Duration::from_secs(60));
        let t = Instant::now();
        assert!(l.check(ip("2001:db8:1:2::1"), t).is_ok());
        assert!(l.check(ip("2001:db8:1:2::ffff"), t).is_err());
        assert!(l.check(ip("2001:db8:1:3::1"), t).is_ok());
        assert!(l.check(ip("192.0.2.7"), t).is_ok());
        assert!(l.check(ip("::ffff:192.0.2.7"), t).is_err());
    }

    #[test]
    fn idle_clients_are_forgotten_when_the_table_is_full() {
        let l = Limiter::new(2, Duration::from_millis(10));
        let t = Instant::now();
        for i in 0..MAX_CLIENTS as u32 {
            let _ = l.check(Some(IpAddr::V4(i.into())), t);
        }
        assert_eq!(l.buckets.lock().map(|b| b.len()).unwrap_or(0), MAX_CLIENTS);
        let later = t + Duration::from_secs(1);
        assert!(l.check(ip("203.0.113.9"), later).is_ok());
        assert_eq!(l.buckets.lock().map(|b| b.len()).unwrap_or(0), 1);
    }

    #[test]
    fn the_proxy_names_the_client_only_on_the_unix_socket() {
        let mut h = HeaderMap::new();
        h.insert("x-real-ip", HeaderValue::from_static("198.51.100.4"));
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("10.9.9.9, 198.51.100.5"),
        );
        assert_eq!(client_ip(Some(Peer::Proxy), &h), ip("198.51.100.4"));
        let tcp = Peer::Tcp("127.0.0.1".parse().unwrap_or(IpAddr::V4(0.into())));
        assert_eq!(client_ip(Some(tcp), &h), ip("127.0.0.1"));
        h.remove("x-real-ip");
        assert_eq!(client_ip(Some(Peer::Proxy), &h), ip("198.51.100.5"));
        h.clear();
        assert_eq!(client_ip(Some(Peer::Proxy), &h), None);
        assert_eq!(client_ip(None, &h), None);
    }
}
