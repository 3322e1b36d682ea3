//! Defences around every route: security headers on every response, a per-client rate limit on
//! `/auth/*`, and a limit on request bodies.
//!
//! - Headers (tower-http's `SetResponseHeaderLayer`): a Content-Security-Policy that allows
//!   scripts, styles and connections from this site only (no inline script or style: the UI and
//!   the server's message pages have none), framing by nobody; `X-Content-Type-Options: nosniff`,
//!   `Referrer-Policy: same-origin`, and `Strict-Transport-Security` when the site is reached over
//!   https (the public address in `[auth] redirect_url` is https, the connection is direct TLS, or
//!   a proxy on the unix socket says so with `X-Forwarded-Proto`).
//! - Rate limit ([`governor`]): [`AUTH_BURST`] requests to `/auth/*` at once per client, then one
//!   per [`AUTH_REFILL`]; more answer 429 JSON with `Retry-After`. The client is the TCP peer's
//!   address (an IPv6 address counts by its /64). On the unix socket, or from a TCP peer in
//!   `[server] trusted_proxies`, the peer is a reverse proxy, so there the address it puts in
//!   `X-Real-IP` (else the right-most `X-Forwarded-For` entry that is not a trusted proxy) is the
//!   client; from any other TCP peer those headers are ignored, since any caller could set them.
//! - Bodies: at most [`BODY_LIMIT`] bytes (the API takes small JSON bodies); more answer 413.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::serve::IncomingStream;
use axum::{Json, Router};
use governor::clock::{Clock, MonotonicClock};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::{HashMapStateStore, ShrinkableKeyedStateStore};
use governor::state::StateStore;
use governor::{Quota, RateLimiter};
use ipnet::IpNet;
use tower_http::set_header::SetResponseHeaderLayer;

use dsmon_app::ErrorKind;

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

/// The headers every response carries.
const SECURITY_HEADERS: [(HeaderName, &str); 5] = [
    (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "same-origin"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    ),
];

/// Who is at the other end of a connection (axum's connect info; the TCP listener sets it itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// A TCP client: its address is the client's.
    Tcp(IpAddr),
    /// A client over direct TLS (`[server] tls_cert`): https.
    Tls(IpAddr),
    /// The unix socket: a reverse proxy on this machine, which names the client in its headers.
    Proxy,
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
    /// TCP peers whose `X-Forwarded-For` / `X-Real-IP` are believed (`[server] trusted_proxies`).
    trusted: Arc<[IpNet]>,
    /// Without sign-in (every caller is the local Admin): answer only requests whose Host is a
    /// loopback name or address (and, when it names a port, this port), so a web page that
    /// rebinds its name to 127.0.0.1 gets nothing. `Some(port)`: on; the port when known.
    loopback_only: Option<Option<u16>>,
}

/// Marks a response to a request that came over https (the HSTS layer reads it).
#[derive(Clone, Copy)]
struct ViaHttps;

impl Defence {
    pub fn new(state: &AppState) -> Self {
        Self {
            // The public address is https (worked out once, with the cookies' names).
            https: state.cookies.https,
            limiter: Limiter::new(auth_quota(), MonotonicClock),
            trusted: Arc::clone(&state.trusted_proxies),
            loopback_only: state.app.auth().is_none().then_some(state.port),
        }
    }

    /// `app` behind the defences.
    pub fn wrap(self, app: Router) -> Router {
        let mut app = app
            .layer(DefaultBodyLimit::max(BODY_LIMIT))
            .layer(middleware::from_fn_with_state(Arc::new(self), guard))
            .layer(SetResponseHeaderLayer::overriding(
                header::STRICT_TRANSPORT_SECURITY,
                |r: &Response| {
                    r.extensions()
                        .get::<ViaHttps>()
                        .map(|_| HeaderValue::from_static(HSTS))
                },
            ));
        for (name, value) in SECURITY_HEADERS {
            app = app.layer(SetResponseHeaderLayer::overriding(
                name,
                HeaderValue::from_static(value),
            ));
        }
        app
    }
}

/// [`AUTH_BURST`] at once, then one per [`AUTH_REFILL`].
fn auth_quota() -> Quota {
    let burst = NonZeroU32::new(AUTH_BURST).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(AUTH_REFILL)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
}

impl Defence {
    /// A 421 for a request whose Host is not this loopback server's (no-auth mode only).
    /// `/healthz` (which says only "ok") stays open to health checkers of any kind.
    fn misdirected(&self, req: &Request) -> Option<Response> {
        let port = self.loopback_only?;
        if req.uri().path() == "/healthz" {
            return None;
        }
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri().authority().map(|a| a.as_str()));
        if host.is_some_and(|h| loopback_host(h, port)) {
            return None;
        }
        tracing::warn!(
            host,
            "request for another host refused (no sign-in: loopback only)"
        );
        Some(refusal(
            StatusCode::MISDIRECTED_REQUEST,
            ErrorKind::BadRequest,
            "this dsmon runs without sign-in and answers only to a loopback address \
             (localhost, 127.0.0.1, [::1])"
                .into(),
        ))
    }
}

/// Whether a Host header names this machine's loopback: `localhost`, an address in 127.0.0.0/8
/// or `[::1]`, with no port or `port`.
pub fn loopback_host(host: &str, port: Option<u16>) -> bool {
    let host = host.trim();
    let (name, given) = match host.rsplit_once(':') {
        Some((n, p)) if !n.ends_with(':') && (n.starts_with('[') || !n.contains(':')) => {
            (n, Some(p))
        }
        _ => (host, None),
    };
    let port_ok = match (given, port) {
        (None, _) => true,
        (Some(g), Some(p)) => g.parse::<u16>() == Ok(p),
        (Some(g), None) => g.parse::<u16>().is_ok(),
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    let name_ok = name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    port_ok && name_ok
}

/// The client of a request as the rate limit sees it (see [`client_ip`]); the sign-in handler
/// counts pending sign-ins by it.
#[derive(Debug, Clone, Copy)]
pub struct Client(pub Option<IpAddr>);

impl Client {
    /// The client's key: its address (an IPv6 one by its /64), or "unknown".
    pub fn key(&self) -> String {
        self.0
            .map_or_else(|| "unknown".to_string(), |ip| bucket_key(ip).to_string())
    }
}

async fn guard(State(d): State<Arc<Defence>>, mut req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<Peer>>()
        .map(|ConnectInfo(p)| *p);
    let client = client_ip(peer, req.headers(), &d.trusted);
    req.extensions_mut().insert(Client(client));
    let https = d.https
        || matches!(peer, Some(Peer::Tls(_)))
        || (peer.is_some_and(|p| from_proxy(p, &d.trusted))
            && req
                .headers()
                .get("x-forwarded-proto")
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https")));
    let mut resp = if let Some(refused) = d.misdirected(&req) {
        refused
    } else if too_large(req.headers()) {
        refusal(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::BadRequest,
            format!("the request body is larger than {} KiB", BODY_LIMIT / 1024),
        )
    } else if req.uri().path().starts_with("/auth/") {
        match d.limiter.check(client) {
            Ok(()) => next.run(req).await,
            Err(retry) => {
                let mut r = refusal(
                    StatusCode::TOO_MANY_REQUESTS,
                    ErrorKind::TooMany,
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
    if https {
        resp.extensions_mut().insert(ViaHttps);
    }
    resp
}

/// A refusal with the API's error body (`ErrorBody`).
fn refusal(status: StatusCode, kind: ErrorKind, message: String) -> Response {
    let body = super::ErrorBody {
        error: message,
        kind,
    };
    (status, Json(body)).into_response()
}

/// A declared body over the limit (a chunked one is cut off by `DefaultBodyLimit` when read).
fn too_large(h: &HeaderMap) -> bool {
    h.get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n > BODY_LIMIT as u64)
}

/// Whether `peer` is a proxy whose headers name the client: the unix socket, or a TCP peer in
/// `[server] trusted_proxies`.
fn from_proxy(peer: Peer, trusted: &[IpNet]) -> bool {
    match peer {
        Peer::Proxy => true,
        Peer::Tcp(ip) | Peer::Tls(ip) => is_trusted(ip, trusted),
    }
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    let ip = ip.to_canonical();
    trusted.iter().any(|n| n.contains(&ip))
}

/// The client's address: the TCP peer; or, when the peer is a proxy ([`from_proxy`]), the
/// address it reports: `X-Real-IP`, else the right-most `X-Forwarded-For` entry that is not
/// itself a trusted proxy (the entries left of it could be written by anyone). From any other
/// peer those headers are ignored. `None` when it cannot be told (all such requests share one
/// allowance).
fn client_ip(peer: Option<Peer>, h: &HeaderMap, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = peer?;
    let peer_ip = match peer {
        Peer::Tcp(ip) | Peer::Tls(ip) => Some(ip.to_canonical()),
        Peer::Proxy => None,
    };
    if !from_proxy(peer, trusted) {
        return peer_ip;
    }
    let real_ip = h
        .get("x-real-ip")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<IpAddr>().ok())
        .map(|ip| ip.to_canonical())
        .filter(|ip| !is_trusted(*ip, trusted));
    real_ip.or_else(|| forwarded_for(h, trusted)).or(peer_ip)
}

/// The right-most `X-Forwarded-For` entry (over all its header lines) that is not a trusted proxy.
/// The walk from the right stops at an entry that is not an address; then, or when every entry is
/// a trusted proxy, the last trusted one passed (`None` if none).
fn forwarded_for(h: &HeaderMap, trusted: &[IpNet]) -> Option<IpAddr> {
    let mut entries = Vec::new();
    for v in h.get_all("x-forwarded-for") {
        entries.extend(v.to_str().ok()?.split(','));
    }
    let mut leftmost = None;
    for item in entries.iter().rev() {
        let Ok(ip) = item.trim().parse::<IpAddr>() else {
            break;
        };
        let ip = ip.to_canonical();
        if !is_trusted(ip, trusted) {
            return Some(ip);
        }
        leftmost = Some(ip);
    }
    leftmost
}

/// The key of requests whose client cannot be told, and of newcomers while the table is full.
const SHARED: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);

/// The per-client rate limit: governor's GCRA over [`Clients`].
struct Limiter<C: Clock = MonotonicClock> {
    limiter: RateLimiter<IpAddr, Clients, C, NoOpMiddleware<C::Instant>>,
    clock: C,
    /// Clients refused since they were last let through, so that a run of refusals is logged
    /// once (governor keeps no per-client data of ours; this set holds only refused clients).
    refused: Mutex<HashSet<IpAddr>>,
}

impl<C: Clock + Clone> Limiter<C> {
    fn new(quota: Quota, clock: C) -> Self {
        Self {
            limiter: RateLimiter::new(quota, Clients::default(), clock.clone()),
            clock,
            refused: Mutex::new(HashSet::new()),
        }
    }

    /// Lets one request of `client` through, or says how long until one may come.
    fn check(&self, client: Option<IpAddr>) -> Result<(), Duration> {
        let key = client.map_or(SHARED, bucket_key);
        if self.limiter.len() >= MAX_CLIENTS {
            // Forget the clients whose allowance is whole again before newcomers are turned to
            // the shared one.
            self.limiter.retain_recent();
        }
        let result = self
            .limiter
            .check_key(&key)
            .map(|_| ())
            .map_err(|n| wait_secs(n.wait_time_from(self.clock.now())));
        self.log_refusal(key, result.is_err());
        result
    }

    /// Logs the first refusal of a run of them (of one client); a request let through ends it.
    fn log_refusal(&self, key: IpAddr, refused_now: bool) {
        // A poisoned lock only costs the log line.
        let Ok(mut refused) = self.refused.lock() else {
            return;
        };
        if !refused_now {
            refused.remove(&key);
            return;
        }
        if refused.len() >= MAX_CLIENTS {
            refused.clear();
        }
        if refused.insert(key) {
            tracing::warn!(client = %key, "rate limit: too many requests to /auth/*, refusing for now");
        }
    }
}

/// A wait as whole seconds for `Retry-After`, at least one.
fn wait_secs(wait: Duration) -> Duration {
    Duration::from_secs(wait.as_secs_f64().ceil().max(1.0) as u64)
}

/// governor's keyed state in a `HashMap`, bounded: while [`MAX_CLIENTS`] clients are tracked, a
/// client not among them shares the allowance of [`SHARED`] (governor itself never refuses a new
/// key, so a flood of addresses would grow its table without end).
#[derive(Default)]
struct Clients(HashMapStateStore<IpAddr>);

impl StateStore for Clients {
    type Key = IpAddr;

    fn measure_and_replace<T, F, E>(&self, key: &IpAddr, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let key = {
            let map = self.0.lock();
            if map.len() >= MAX_CLIENTS && !map.contains_key(key) {
                SHARED
            } else {
                *key
            }
        };
        self.0.measure_and_replace(&key, f)
    }
}

impl ShrinkableKeyedStateStore<IpAddr> for Clients {
    fn retain_recent(&self, drop_below: Nanos) {
        self.0.retain_recent(drop_below)
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
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

    #[test]
    fn loopback_hosts_only() {
        for ok in [
            "localhost",
            "LOCALHOST:8080",
            "127.0.0.1",
            "127.0.0.1:8080",
            "127.1.2.3:8080",
            "[::1]",
            "[::1]:8080",
        ] {
            assert!(loopback_host(ok, Some(8080)), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "10.0.0.1:8080",
            "127.0.0.1:8081",
            "[::2]:8080",
            "",
        ] {
            assert!(!loopback_host(bad, Some(8080)), "{bad}");
        }
    }
    use governor::clock::FakeRelativeClock;

    fn ip(s: &str) -> Option<IpAddr> {
        s.parse().ok()
    }

    fn limiter(burst: u32, refill: Duration) -> (Limiter<FakeRelativeClock>, FakeRelativeClock) {
        let quota = Quota::with_period(refill)
            .expect("a refill period")
            .allow_burst(NonZeroU32::new(burst).expect("a burst"));
        let clock = FakeRelativeClock::default();
        (Limiter::new(quota, clock.clone()), clock)
    }

    #[test]
    fn burst_then_one_per_refill_per_client() {
        let (l, clock) = limiter(3, Duration::from_secs(2));
        for _ in 0..3 {
            assert!(l.check(ip("10.0.0.1")).is_ok());
        }
        assert_eq!(
            l.check(ip("10.0.0.1")),
            Err(Duration::from_secs(2)),
            "the fourth at once waits one refill"
        );
        // Another client has its own allowance.
        assert!(l.check(ip("10.0.0.2")).is_ok());
        // One request back after a refill period, not two.
        clock.advance(Duration::from_secs(2));
        assert!(l.check(ip("10.0.0.1")).is_ok());
        assert!(l.check(ip("10.0.0.1")).is_err());
        // Full again after long enough, and never more than the burst.
        clock.advance(Duration::from_secs(3600));
        for _ in 0..3 {
            assert!(l.check(ip("10.0.0.1")).is_ok());
        }
        assert!(l.check(ip("10.0.0.1")).is_err());
    }

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_v4_as_v4() {
        let (l, _clock) = limiter(1, Duration::from_secs(60));
        assert!(l.check(ip("2001:db8:1:2::1")).is_ok());
        assert!(l.check(ip("2001:db8:1:2::ffff")).is_err());
        assert!(l.check(ip("2001:db8:1:3::1")).is_ok());
        assert!(l.check(ip("192.0.2.7")).is_ok());
        assert!(l.check(ip("::ffff:192.0.2.7")).is_err());
    }

    #[test]
    fn idle_clients_are_forgotten_when_the_table_is_full() {
        let (l, clock) = limiter(2, Duration::from_millis(10));
        for i in 0..MAX_CLIENTS as u32 {
            let _ = l.check(Some(IpAddr::V4(i.into())));
        }
        assert_eq!(l.limiter.len(), MAX_CLIENTS);
        clock.advance(Duration::from_secs(1));
        assert!(l.check(ip("203.0.113.9")).is_ok());
        assert_eq!(l.limiter.len(), 1);
    }

    #[test]
    fn newcomers_share_one_allowance_while_the_table_is_full_of_active_clients() {
        let (l, _clock) = limiter(2, Duration::from_secs(60));
        for i in 0..MAX_CLIENTS as u32 {
            let _ = l.check(Some(IpAddr::V4(i.into())));
        }
        // Every tracked client is still active: the newcomers share the allowance of SHARED.
        assert!(l.check(ip("203.0.113.9")).is_ok());
        assert!(l.check(ip("203.0.113.10")).is_ok());
        assert!(l.check(ip("203.0.113.11")).is_err());
        assert_eq!(
            l.limiter.len(),
            MAX_CLIENTS + 1,
            "the tracked ones and the shared one"
        );
    }

    #[test]
    fn the_proxy_names_the_client_only_on_the_unix_socket() {
        let mut h = HeaderMap::new();
        h.insert("x-real-ip", HeaderValue::from_static("198.51.100.4"));
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("10.9.9.9, 198.51.100.5"),
        );
        assert_eq!(client_ip(Some(Peer::Proxy), &h, &[]), ip("198.51.100.4"));
        let tcp = Peer::Tcp("127.0.0.1".parse().unwrap_or(IpAddr::V4(0.into())));
        assert_eq!(client_ip(Some(tcp), &h, &[]), ip("127.0.0.1"));
        h.remove("x-real-ip");
        assert_eq!(client_ip(Some(Peer::Proxy), &h, &[]), ip("198.51.100.5"));
        h.clear();
        assert_eq!(client_ip(Some(Peer::Proxy), &h, &[]), None);
        assert_eq!(client_ip(None, &h, &[]), None);
    }

    #[test]
    fn forwarded_headers_only_from_trusted_tcp_peers() {
        let trusted: Vec<IpNet> = ["10.0.0.0/8", "127.0.0.2/32"]
            .iter()
            .filter_map(|t| t.parse().ok())
            .collect();
        let peer = |s: &str| s.parse().ok().map(Peer::Tcp);
        let mut h = HeaderMap::new();
        h.append(
            "x-forwarded-for",
            HeaderValue::from_static("203.0.113.1, 198.51.100.7"),
        );
        h.append("x-forwarded-for", HeaderValue::from_static("10.1.2.3"));
        // From an untrusted peer the headers are ignored.
        assert_eq!(client_ip(peer("192.0.2.9"), &h, &trusted), ip("192.0.2.9"));
        // From a trusted one: the right-most entry that is not a trusted proxy.
        assert_eq!(
            client_ip(peer("127.0.0.2"), &h, &trusted),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_ip(peer("::ffff:10.0.0.1"), &h, &trusted),
            ip("198.51.100.7"),
            "a mapped IPv4 peer counts as IPv4"
        );
        // X-Real-IP first; a garbled chain falls back to the peer.
        h.insert("x-real-ip", HeaderValue::from_static("198.51.100.8"));
        assert_eq!(
            client_ip(peer("10.0.0.1"), &h, &trusted),
            ip("198.51.100.8")
        );
        h.remove("x-real-ip");
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("junk, 10.0.0.5"),
        );
        assert_eq!(client_ip(peer("10.0.0.1"), &h, &trusted), ip("10.0.0.5"));
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("10.0.0.5, junk"),
        );
        assert_eq!(client_ip(peer("10.0.0.1"), &h, &trusted), ip("10.0.0.1"));
    }
}
