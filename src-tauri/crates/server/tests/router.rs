//! The router in-process (`tower::ServiceExt::oneshot`, no socket): every route for every kind of
//! caller, the history parameters' 400s, error bodies, headers, the Origin check on POSTs and the
//! defences. The state is real: a SQLite store in a tempdir with a few rows, a live snapshot of two
//! nodes, sign-in with a provider that is never reached (its sessions are minted with
//! `Auth::admit`). Runs in seconds, without root, agents or network.
//!
//! The defences read the connection's peer from `ConnectInfo` when a listener provides it; a
//! oneshot request has none, so it counts as a client that cannot be told (one shared rate-limit
//! allowance) and as plain http. Each request gets its own router, hence its own allowance.

use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::Router;
use serde_json::Value;
use tokio::sync::watch;
use tower::ServiceExt;

use dsmon_app::App;
use dsmon_auth::Auth;
use dsmon_core::{unix_now, Identity, Metrics, NodeState, Row};
use dsmon_engine::{LiveSnapshot, NodeLive};
use dsmon_server::AppState;
use dsmon_store::{SqliteAuthStore, SqliteStore};

const ADMIN: &str = "alice@example.com";
const USER: &str = "bob@example.org";
/// The origin of the signed-in site's pages (its `redirect_url`).
const SITE: &str = "http://127.0.0.1:8080";
/// Requests to `/auth/*` a client may make at once.
const AUTH_BURST: u32 = 30;

/// Who calls: signed out, signed in with either role, or anyone when dsmon runs without `[auth]`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Who {
    Anonymous,
    User,
    Admin,
    Local,
}
use Who::*;

const EVERYONE: [Who; 4] = [Anonymous, User, Admin, Local];

/// Headers to add to a request.
type Headers = Vec<(header::HeaderName, String)>;

/// A server's state: with `[auth]` (at `redirect` origin) or without.
struct Site {
    state: AppState,
    auth: Option<Arc<Auth>>,
    _dir: tempfile::TempDir,
    _live: watch::Sender<Arc<LiveSnapshot>>,
    _stop: watch::Sender<bool>,
}

fn node(name: &str, state: NodeState, metrics: Option<Metrics>) -> NodeLive {
    NodeLive {
        name: name.into(),
        state,
        since: Some(unix_now() - 300),
        last_seen: metrics.map(|_| unix_now()),
        last_error: metrics.is_none().then(|| "connection refused".into()),
        metrics,
        tags: Vec::new(),
    }
}

impl Site {
    fn new(redirect_origin: Option<&str>) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("dsmon.db");
        let mut store = SqliteStore::open(&db).expect("store");
        let m = Metrics {
            cpu_pct: 12.5,
            mem_pct: 40.0,
            disk_pct: 55.0,
            net_in_kbps: 8.0,
            net_out_kbps: 4.0,
        };
        let now = unix_now() / 60 * 60;
        let rows: Vec<Row> = (1..=5)
            .flat_map(|i| {
                ["alpha", "beta"].map(|n| Row {
                    ts: now - i * 60,
                    node: n.into(),
                    metrics: (n == "alpha").then_some(m),
                    error: (n == "beta").then(|| "connection refused".into()),
                })
            })
            .collect();
        store.insert_rows(&rows).expect("seed rows");
        let snapshot = LiveSnapshot {
            seq: 1,
            ts: now,
            interval_ms: 1000,
            nodes: vec![
                NodeLive {
                    tags: vec!["db".into(), "eu-west".into()],
                    ..node("alpha", NodeState::Up, Some(m))
                },
                NodeLive {
                    tags: vec!["db".into()],
                    ..node("beta", NodeState::Down, None)
                },
            ],
        };
        let (live_tx, live) = watch::channel(Arc::new(snapshot));
        let auth = redirect_origin.map(|origin| {
            let text = format!(
                "[auth]\nissuer = \"http://127.0.0.1:9\"\nclient_id = \"dsmon-test\"\nclient_secret = \"not-used-here\"\nredirect_url = \"{origin}/auth/callback\"\nadmins = [\"{ADMIN}\"]\nusers = [\"{USER}\"]\n"
            );
            let cfg = dsmon_config::parse(&text, Path::new("/tmp/router-test.toml"))
                .expect("config")
                .auth
                .expect("[auth]");
            Arc::new(Auth::new(cfg, Arc::new(SqliteAuthStore::open(&db).expect("auth db"))).expect("auth"))
        });
        let (stop_tx, shutdown) = watch::channel(false);
        let app = App::new(live, Arc::new(Mutex::new(store)), 60, auth.clone());
        let site = Site {
            state: AppState::new(app, shutdown),
            auth,
            _dir: dir,
            _live: live_tx,
            _stop: stop_tx,
        };
        if site.auth.is_some() {
            // Both are known users before any Admin changes one.
            site.session(ADMIN);
            site.session(USER);
        }
        site
    }

    /// A fresh session of `email` (one per request, so a logout ends no other request's).
    fn session(&self, email: &str) -> String {
        let id = Identity {
            sub: format!("sub-{email}"),
            email: email.into(),
            email_verified: true,
            name: Some("Test".into()),
            hd: None,
            expires_at: unix_now() + 3600,
        };
        let auth = self.auth.as_ref().expect("a site with sign-in");
        auth.admit(id, "test").expect("admitted").session
    }

    fn router(&self) -> Router {
        dsmon_server::router(self.state.clone())
    }

    async fn send(&self, req: Request<Body>) -> Answer {
        send(self.router(), req).await
    }

    async fn get(&self, who: Who, path: &str) -> Answer {
        self.send(request(self, who, "GET", path, "")).await
    }
}

/// A response, its body read unless it is an event stream (which does not end).
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

async fn send(router: Router, req: Request<Body>) -> Answer {
    let resp = router.oneshot(req).await.expect("infallible");
    let (parts, body) = resp.into_parts();
    let streaming = parts
        .headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let body = if streaming {
        String::new()
    } else {
        let bytes = axum::body::to_bytes(body, 1 << 20).await.expect("body");
        String::from_utf8_lossy(&bytes).into_owned()
    };
    Answer {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    }
}

/// The request `who` makes: the session as a cookie, the site's own Origin on a POST.
fn request(site: &Site, who: Who, method: &str, path: &str, body: &str) -> Request<Body> {
    let mut r = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, "localhost");
    match who {
        User => {
            r = r.header(
                header::COOKIE,
                format!("a=1; dsmon_session={}", site.session(USER)),
            )
        }
        Admin => {
            r = r.header(
                header::COOKIE,
                format!("dsmon_session={}", site.session(ADMIN)),
            )
        }
        Anonymous | Local => {}
    }
    if method == "POST" || method == "DELETE" {
        let origin = if who == Local {
            "http://localhost"
        } else {
            SITE
        };
        r = r.header(header::ORIGIN, origin);
    }
    r.body(Body::from(body.to_string())).expect("request")
}

/// The error kind each status stands for (`status_of`'s mapping, read backwards).
fn kind_of(status: u16) -> &'static str {
    match status {
        400 => "bad_request",
        401 => "not_signed_in",
        403 => "forbidden",
        404 => "not_found",
        409 => "conflict",
        502 => "unavailable",
        503 => "config",
        _ => "internal",
    }
}

#[tokio::test]
async fn every_route_answers_every_kind_of_caller() {
    let signed = Site::new(Some(SITE));
    let local = Site::new(None);
    const CHANGE: &str = r#"{"blocked": false}"#;
    const TOKEN: &str = r#"{"id_token": "not-a-token"}"#;
    const SILENCE: &str = r#"{"rule": "x", "expires": "1h", "comment": "c"}"#;
    const ACK: &str = r#"{"rule": "x", "node": "y"}"#;
    // (method, path, body, [Anonymous, User, Admin, Local])
    let routes: &[(&str, &str, &str, [u16; 4])] = &[
        ("GET", "/healthz", "", [200, 200, 200, 200]),
        ("GET", "/api/me", "", [401, 200, 200, 200]),
        ("GET", "/api/nodes", "", [401, 200, 200, 200]),
        ("GET", "/api/live", "", [401, 200, 200, 200]),
        ("GET", "/api/live/stream", "", [401, 200, 200, 200]),
        ("GET", "/api/history?from=-1h", "", [401, 403, 200, 200]),
        ("GET", "/api/history.csv?from=-1h", "", [401, 403, 200, 200]),
        ("GET", "/api/users", "", [401, 403, 200, 404]),
        (
            "POST",
            "/api/users/bob@example.org",
            CHANGE,
            [401, 403, 200, 404],
        ),
        ("GET", "/api/audit", "", [401, 403, 200, 404]),
        // Alerts: what fires now is live data (every role); the rest is the Admin's. This site
        // runs no alert rules: reads answer empty, changes 404 ("alerts are not running here").
        ("GET", "/api/alerts", "", [401, 200, 200, 200]),
        (
            "GET",
            "/api/alerts/history?from=-1h",
            "",
            [401, 403, 200, 200],
        ),
        ("GET", "/api/alerts/deliveries", "", [401, 403, 200, 200]),
        ("GET", "/api/alerts/config", "", [401, 403, 200, 200]),
        ("GET", "/api/alerts/silences", "", [401, 403, 200, 200]),
        (
            "POST",
            "/api/alerts/silences",
            SILENCE,
            [401, 403, 404, 404],
        ),
        ("DELETE", "/api/alerts/silences/1", "", [401, 403, 404, 404]),
        ("DELETE", "/api/alerts/silences/x", "", [401, 403, 400, 400]),
        ("POST", "/api/alerts/ack", ACK, [401, 403, 404, 404]),
        (
            "POST",
            "/api/alerts/notifiers/x/test",
            "",
            [401, 403, 404, 404],
        ),
        (
            "GET",
            "/api/alerts/history?limit=0",
            "",
            [401, 403, 400, 400],
        ),
        ("GET", "/api/nope", "", [404, 404, 404, 404]),
        // With [auth], only with the metrics token (none configured here; see `metrics_*`).
        ("GET", "/metrics", "", [404, 404, 404, 200]),
        // The provider (port 9) refuses the connection: sign-in is unavailable.
        ("GET", "/auth/login?next=/live", "", [503, 503, 503, 303]),
        ("GET", "/auth/callback", "", [400, 400, 400, 303]),
        ("POST", "/auth/logout", "", [200, 200, 200, 200]),
        // No `desktop_client_id`: the server takes no desktop sign-in.
        ("POST", "/auth/token", TOKEN, [401, 401, 401, 404]),
        ("POST", "/auth/token", "{", [400, 400, 400, 404]),
        ("POST", "/auth/nonce", "", [401, 401, 401, 404]),
        ("GET", "/auth/signed-out", "", [200, 200, 200, 200]),
        ("GET", "/auth/nope", "", [404, 404, 404, 404]),
        ("GET", "/", "", [303, 200, 200, 200]),
        ("GET", "/index.html", "", [303, 200, 200, 200]),
        ("GET", "/live", "", [303, 200, 200, 200]),
        ("GET", "/nodes/x", "", [303, 200, 200, 200]),
        ("GET", "/history?from=-6h", "", [303, 403, 200, 200]),
        ("GET", "/users", "", [303, 403, 200, 200]),
        ("GET", "/audit", "", [303, 403, 200, 200]),
        ("GET", "/alerts", "", [303, 403, 200, 200]),
        ("GET", "/app.js", "", [200, 200, 200, 200]),
        ("GET", "/vendor/uPlot.min.css", "", [200, 200, 200, 200]),
        ("GET", "/favicon.png", "", [200, 200, 200, 200]),
        ("GET", "/nope.js", "", [404, 404, 404, 404]),
    ];
    let mut failures = Vec::new();
    for &(method, path, body, want) in routes {
        for (who, want) in EVERYONE.into_iter().zip(want) {
            let site = if who == Local { &local } else { &signed };
            let a = site.send(request(site, who, method, path, body)).await;
            let case = format!("{who:?} {method} {path}");
            if a.status != want {
                failures.push(format!("{case}: {} (want {want}) {}", a.status, a.body));
                continue;
            }
            check_answer(&case, path, &a);
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// What every answer of its kind carries, beyond its status.
fn check_answer(case: &str, path: &str, a: &Answer) {
    assert!(
        a.header("content-security-policy")
            .contains("default-src 'self'"),
        "{case}: CSP"
    );
    assert_eq!(a.header("x-content-type-options"), "nosniff", "{case}");
    assert_eq!(a.header("strict-transport-security"), "", "{case}: http");
    if path.starts_with("/api/") || path.starts_with("/auth/") {
        // An event stream is revalidated (axum's SSE answer), everything else never stored.
        let want = match a.header("content-type") {
            "text/event-stream" => "no-cache",
            _ => "no-store",
        };
        assert_eq!(a.header("cache-control"), want, "{case}");
    }
    let json = a.header("content-type").starts_with("application/json");
    if a.status >= 400 && (path.starts_with("/api/") || json) {
        let body = a.json();
        assert!(body["error"].is_string(), "{case}: {body}");
        assert_eq!(body["kind"], kind_of(a.status), "{case}: {body}");
    }
    let page = dsmon_app::page_role(path.split('?').next().unwrap_or(path)).is_some();
    match a.status {
        303 if page => {
            let next = path
                .replace('/', "%2F")
                .replace('?', "%3F")
                .replace('=', "%3D");
            assert_eq!(
                a.header("location"),
                format!("/auth/login?next={next}"),
                "{case}"
            );
        }
        403 if page => {
            assert!(a.body.contains("Not authorized"), "{case}: {}", a.body);
            assert!(a.body.contains(USER), "{case}: names the caller");
        }
        200 if page => {
            assert_eq!(
                a.header("content-type"),
                "text/html; charset=utf-8",
                "{case}"
            );
            assert_eq!(a.header("cache-control"), "no-store", "{case}");
            assert!(a.body.contains("<script"), "{case}: the UI's index.html");
        }
        200 => {
            let want = match path.rsplit('.').next() {
                Some("js") => "text/javascript; charset=utf-8",
                Some("css") => "text/css; charset=utf-8",
                Some("png") => "image/png",
                _ => return,
            };
            assert_eq!(a.header("content-type"), want, "{case}");
        }
        _ => {}
    }
}

/// `key` of each element of the array `v`.
fn each<'a>(v: &'a Value, key: &str) -> Vec<&'a str> {
    let items = v.as_array().unwrap_or_else(|| panic!("not an array: {v}"));
    items.iter().filter_map(|i| i[key].as_str()).collect()
}

#[tokio::test]
async fn answers_carry_the_callers_data() {
    let signed = Site::new(Some(SITE));
    let local = Site::new(None);
    for (site, who, email, role, auth) in [
        (&signed, User, Some(USER), "user", true),
        (&signed, Admin, Some(ADMIN), "admin", true),
        (&local, Local, None, "admin", false),
    ] {
        let me = site.get(who, "/api/me").await.json();
        assert_eq!(me["email"].as_str(), email, "{me}");
        assert_eq!(
            (me["role"].as_str(), me["auth"].as_bool()),
            (Some(role), Some(auth))
        );
    }

    let nodes = local.get(Local, "/api/nodes").await.json();
    assert_eq!(each(&nodes, "name"), ["alpha", "beta"]);
    assert_eq!(each(&nodes, "state"), ["up", "down"]);
    let live = local.get(Local, "/api/live").await.json();
    assert_eq!(live["nodes"][0]["metrics"]["cpu_pct"], 12.5, "{live}");
    let stream = local.get(Local, "/api/live/stream").await;
    assert_eq!(stream.header("content-type"), "text/event-stream");

    let h = local
        .get(Local, "/api/history?from=-1h&node=alpha")
        .await
        .json();
    assert_eq!(each(&h["nodes"], "name"), ["alpha"], "{h}");
    assert!(h["nodes"][0]["availability"].as_f64() > Some(0.0), "{h}");
    // Repeated keys are all kept.
    let csv = local
        .get(Local, "/api/history.csv?from=-1h&node=alpha&node=beta")
        .await;
    assert!(csv.header("content-type").starts_with("text/csv"));
    assert!(csv
        .header("content-disposition")
        .contains("dsmon-history.csv"));
    let rows: Vec<&str> = csv.body.lines().skip(1).collect();
    assert_eq!(rows.len(), 10, "every seeded row: {}", csv.body);
    assert!(rows.iter().any(|l| l.contains("alpha")) && rows.iter().any(|l| l.contains("beta")));

    let users = signed.get(Admin, "/api/users").await.json();
    let emails = each(&users, "email");
    assert!(emails.contains(&ADMIN) && emails.contains(&USER), "{users}");
    let audit = signed.get(Admin, "/api/audit?limit=5").await.json();
    assert!(!each(&audit["entries"], "action").is_empty(), "{audit}");
    let a = signed.get(Admin, "/api/audit?limit=0").await;
    assert_eq!(
        (a.status, a.json()["kind"].as_str()),
        (400, Some("bad_request"))
    );
}

/// `?tag=` (repeatable: every tag) on the node list, the live view, its stream, the alerts and
/// history; `group=1` makes one history line of the nodes selected.
#[tokio::test]
async fn tags_filter_every_answer_and_a_group_is_one_history_line() {
    let site = Site::new(None);
    let nodes = site.get(Local, "/api/nodes").await.json();
    assert_eq!(
        nodes[0]["tags"],
        serde_json::json!(["db", "eu-west"]),
        "{nodes}"
    );
    assert_eq!(nodes[1]["tags"], serde_json::json!(["db"]), "{nodes}");
    for (query, want) in [
        ("", &["alpha", "beta"][..]),
        ("?tag=db", &["alpha", "beta"]),
        ("?tag=eu-west", &["alpha"]),
        ("?tag=db&tag=eu-west", &["alpha"]),
        ("?tag=eu-west&tag=web", &[]),
        ("?tag=nope", &[]),
    ] {
        let nodes = site.get(Local, &format!("/api/nodes{query}")).await.json();
        assert_eq!(each(&nodes, "name"), want, "/api/nodes{query}");
        let live = site.get(Local, &format!("/api/live{query}")).await.json();
        assert_eq!(each(&live["nodes"], "name"), want, "/api/live{query}");
        assert_eq!(live["seq"], 1, "the snapshot itself: {live}");
        let sep = if query.is_empty() { "?" } else { "&" };
        let h = site
            .get(Local, &format!("/api/history{query}{sep}from=-1h"))
            .await
            .json();
        assert_eq!(each(&h["nodes"], "name"), want, "history{query}: {h}");
    }
    let stream = site.get(Local, "/api/live/stream?tag=db").await;
    assert_eq!(stream.header("content-type"), "text/event-stream");
    let alerts = site.get(Local, "/api/alerts?tag=db").await;
    assert_eq!(alerts.status, 200, "{}", alerts.body);

    // The group of tag db: alpha answered at 12.5 % CPU, beta never (down): one line, alpha's
    // average and peak, availability over both nodes' rows.
    let h = site
        .get(Local, "/api/history?from=-1h&tag=db&group=1")
        .await
        .json();
    assert_eq!(h["group"]["name"], "db", "{h}");
    assert_eq!(h["group"]["nodes"], serde_json::json!(["alpha", "beta"]));
    assert_eq!(each(&h["nodes"], "name"), ["db"]);
    let line = &h["nodes"][0];
    let avg: Vec<f64> = line["metrics"]["cpu_pct"]["avg"]
        .as_array()
        .expect("avg")
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    assert!(!avg.is_empty() && avg.iter().all(|v| *v == 12.5), "{line}");
    assert_eq!(line["availability"], 0.5, "{line}");
    let none = site
        .get(Local, "/api/history?from=-1h&tag=nope&group=1")
        .await
        .json();
    assert_eq!(each(&none["nodes"], "name"), Vec::<&str>::new(), "{none}");
    assert!(!none["t"].as_array().expect("t").is_empty(), "{none}");

    let csv = site
        .get(Local, "/api/history.csv?from=-1h&tag=eu-west")
        .await;
    let rows: Vec<&str> = csv.body.lines().skip(1).collect();
    assert_eq!(rows.len(), 5, "alpha's rows: {}", csv.body);
    assert!(rows.iter().all(|l| l.contains(",alpha,")), "{}", csv.body);
    let csv = site.get(Local, "/api/history.csv?from=-1h&tag=nope").await;
    assert_eq!(
        (csv.status, csv.body.as_str()),
        (
            200,
            "ts,node,cpu_pct,mem_pct,disk_pct,net_in_kbps,net_out_kbps,error\n"
        )
    );
}

#[tokio::test]
async fn bad_history_parameters_are_a_400_naming_the_problem() {
    let site = Site::new(Some(SITE));
    for (path, expect) in [
        ("/api/history?from=now&to=-1h", "is after"),
        ("/api/history?from=tomorrowish", "is not a time"),
        (
            "/api/history?from=-1h&points=0",
            "points must be between 1 and 5000",
        ),
        (
            "/api/history?from=-1h&points=5001",
            "points must be between 1 and 5000",
        ),
        (
            "/api/history?from=-1h&points=many",
            "points must be between 1 and 5000",
        ),
        ("/api/history?from=-1h&node=nope", "unknown node \"nope\""),
        (
            "/api/history?from=-1h&colour=red",
            "unknown parameter \"colour\"",
        ),
        ("/api/history.csv?from=now&to=-1h", "is after"),
        (
            "/api/history.csv?from=-1h&node=nope",
            "unknown node \"nope\"",
        ),
        (
            "/api/history.csv?from=-1h&points=5",
            "points does not apply",
        ),
        ("/api/history?tag=a/b", "tag \"a/b\": a tag is 1 to 64"),
        ("/api/history?tag=db&group=yes", "group must be 1 or 0"),
        ("/api/history.csv?tag=db&group=1", "group does not apply"),
        ("/api/live?tag=", "a tag is 1 to 64"),
        (
            "/api/nodes?tag=db&colour=red",
            "unknown parameter \"colour\"",
        ),
        ("/api/alerts?tag=%C3%A9", "a tag is 1 to 64"),
        ("/api/live/stream?tag=a%20b", "a tag is 1 to 64"),
    ] {
        let a = site.get(Admin, path).await;
        assert_eq!(a.status, 400, "{path}: {}", a.body);
        assert_eq!(a.header("cache-control"), "no-store", "{path}");
        let body = a.json();
        assert_eq!(body["kind"], "bad_request", "{path}: {body}");
        let e = body["error"].as_str().unwrap_or_default();
        assert!(e.contains(expect), "{path}: want {expect:?} in {body}");
    }
}

#[tokio::test]
async fn posts_from_a_browser_need_this_sites_origin() {
    let signed = Site::new(Some(SITE));
    let local = Site::new(None);
    let post = |site: &Site, path: &str, headers: &[(header::HeaderName, String)]| {
        let mut r = Request::builder()
            .method("POST")
            .uri(path)
            .header(header::HOST, "localhost");
        for (k, v) in headers {
            r = r.header(k, v);
        }
        let body = if path.starts_with("/api/users/") {
            r#"{"blocked": false}"#
        } else {
            ""
        };
        let req = r.body(Body::from(body)).expect("request");
        let router = site.router();
        async move { send(router, req).await }
    };
    for path in ["/auth/logout", "/api/users/bob@example.org"] {
        let cookie = || {
            (
                header::COOKIE,
                format!("dsmon_session={}", signed.session(ADMIN)),
            )
        };
        let bearer = || {
            (
                header::AUTHORIZATION,
                format!("Bearer {}", signed.session(ADMIN)),
            )
        };
        let origin = |o: &str| (header::ORIGIN, o.to_string());
        let cases: Vec<(&str, &Site, Headers, u16)> = vec![
            ("cookie, no Origin", &signed, vec![cookie()], 403),
            (
                "cookie, foreign Origin",
                &signed,
                vec![cookie(), origin("http://evil.example")],
                403,
            ),
            (
                "cookie, Host's origin",
                &signed,
                vec![cookie(), origin("http://localhost")],
                403,
            ),
            (
                "cookie, same origin",
                &signed,
                vec![cookie(), origin(SITE)],
                200,
            ),
            ("bearer, no Origin", &signed, vec![bearer()], 200),
            (
                "bearer and cookie, no Origin",
                &signed,
                vec![bearer(), cookie()],
                403,
            ),
            ("local, no Origin", &local, vec![], 403),
            (
                "local, foreign Origin",
                &local,
                vec![origin("http://evil.example")],
                403,
            ),
            (
                "local, Host's origin",
                &local,
                vec![origin("http://localhost")],
                if path.starts_with("/api/") { 404 } else { 200 },
            ),
        ];
        for (what, site, headers, want) in cases {
            let a = post(site, path, &headers).await;
            assert_eq!(a.status, want, "{path}: {what}: {}", a.body);
            if want == 403 {
                let body = a.json();
                assert_eq!(body["kind"], "forbidden", "{path}: {what}");
                assert!(
                    body["error"]
                        .as_str()
                        .unwrap_or_default()
                        .contains("cross-site"),
                    "{path}: {what}: {body}"
                );
            }
        }
    }
    // The desktop app's token exchange carries no ambient credential: no Origin needed.
    let a = post(&signed, "/auth/token", &[]).await;
    assert_eq!(a.status, 400, "{}", a.body);
}

#[tokio::test]
async fn sessions_come_as_a_bearer_token_or_the_cookie() {
    let site = Site::new(Some(SITE));
    let me = |headers: Headers| {
        let mut r = Request::builder().uri("/api/me");
        for (k, v) in headers {
            r = r.header(k, v);
        }
        let router = site.router();
        let req = r.body(Body::empty()).expect("request");
        async move { send(router, req).await }
    };
    let (admin, user) = (site.session(ADMIN), site.session(USER));
    let cases = [
        (
            vec![(header::AUTHORIZATION, format!("Bearer {user}"))],
            Some(USER),
        ),
        (
            vec![(header::COOKIE, format!("x=1; dsmon_session={admin}; y=2"))],
            Some(ADMIN),
        ),
        // The bearer token wins over the cookie.
        (
            vec![
                (header::AUTHORIZATION, format!("Bearer {user}")),
                (header::COOKIE, format!("dsmon_session={admin}")),
            ],
            Some(USER),
        ),
        (
            vec![(header::AUTHORIZATION, "Bearer not-a-session".into())],
            None,
        ),
        (
            vec![(header::AUTHORIZATION, format!("Basic {admin}"))],
            None,
        ),
        (
            vec![(header::COOKIE, format!("dsmon_session_old={admin}"))],
            None,
        ),
        (vec![(header::COOKIE, "dsmon_session=".into())], None),
    ];
    for (headers, want) in cases {
        let what = format!("{headers:?}");
        let a = me(headers).await;
        match want {
            Some(email) => {
                assert_eq!(a.status, 200, "{what}: {}", a.body);
                assert_eq!(a.json()["email"], email, "{what}");
            }
            None => assert_eq!(a.status, 401, "{what}: {}", a.body),
        }
    }
    // A session signed out is over.
    let token = site.session(USER);
    let out = Request::builder()
        .method("POST")
        .uri("/auth/logout")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .expect("request");
    let a = site.send(out).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.header("set-cookie").starts_with("dsmon_session=;"));
    let a = me(vec![(header::AUTHORIZATION, format!("Bearer {token}"))]).await;
    assert_eq!(a.status, 401);
}

#[tokio::test]
async fn sign_in_routes_are_rate_limited_and_bodies_bounded() {
    let site = Site::new(Some(SITE));
    let router = site.router();
    let get = |path: &str| Request::get(path).body(Body::empty()).expect("request");
    for i in 0..AUTH_BURST {
        let a = send(router.clone(), get("/auth/signed-out")).await;
        assert_eq!(a.status, 200, "request {i}");
    }
    let a = send(router.clone(), get("/auth/signed-out")).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS.as_u16());
    let retry: u64 = a.header("retry-after").parse().expect("Retry-After");
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    assert!(a.json()["error"]
        .as_str()
        .unwrap_or_default()
        .contains("too many"));
    assert_eq!(a.header("x-frame-options"), "DENY");
    // Other routes are not limited.
    assert_eq!(send(router.clone(), get("/api/live")).await.status, 401);

    let big = Request::post("/api/users/bob@example.org")
        .header(header::CONTENT_LENGTH, "1048576")
        .body(Body::empty())
        .expect("request");
    let a = send(router, big).await;
    assert_eq!(a.status, 413);
    assert!(a.json()["error"]
        .as_str()
        .unwrap_or_default()
        .contains("16 KiB"));
}

#[tokio::test]
async fn hsts_only_when_the_public_address_is_https() {
    for (site, hsts) in [
        (Site::new(Some("https://monitor.example.com")), true),
        (Site::new(Some(SITE)), false),
        (Site::new(None), false),
    ] {
        for path in ["/healthz", "/api/nope", "/app.js"] {
            let a = site
                .send(Request::get(path).body(Body::empty()).expect("request"))
                .await;
            let want = if hsts { "max-age=31536000" } else { "" };
            assert_eq!(a.header("strict-transport-security"), want, "{path}");
        }
    }
}

// ---- /metrics ------------------------------------------------------------------------------

const METRICS_TOKEN: &str = "metrics-token-0123456789abcdef";
/// What Prometheus 2.42 sends.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

fn metrics_request(host: &str, headers: &[(header::HeaderName, &str)]) -> Request<Body> {
    let mut r = Request::get("/metrics").header(header::HOST, host);
    for (name, value) in headers {
        r = r.header(name, *value);
    }
    r.body(Body::empty()).expect("request")
}

/// The exposition's node lines are the live snapshot's: alpha up with values, beta down without.
fn check_exposition(case: &str, a: &Answer, content_type: &str) {
    assert_eq!(a.status, 200, "{case}: {}", a.body);
    assert_eq!(a.header("content-type"), content_type, "{case}");
    assert_eq!(a.header("cache-control"), "no-store", "{case}");
    for line in [
        "dsmon_node_up{node=\"alpha\"} 1\n",
        "dsmon_node_up{node=\"beta\"} 0\n",
        "dsmon_node_cpu_ratio{node=\"alpha\"} 0.125\n",
        "dsmon_node_network_receive_bits_per_second{node=\"alpha\"} 8000.0\n",
    ] {
        assert!(a.body.contains(line), "{case}: {line:?} in\n{}", a.body);
    }
    assert!(
        !a.body.contains("dsmon_node_cpu_ratio{node=\"beta\"}"),
        "{case}"
    );
}

#[tokio::test]
async fn metrics_without_auth_answer_on_loopback_only() {
    let site = Site::new(None);
    for host in ["localhost", "127.0.0.1:8080", "[::1]"] {
        let a = site.send(metrics_request(host, &[])).await;
        check_exposition(host, &a, "text/plain; version=0.0.4; charset=utf-8");
    }
    let a = site
        .send(metrics_request(
            "localhost",
            &[(header::ACCEPT, PROMETHEUS_ACCEPT)],
        ))
        .await;
    check_exposition(
        "OpenMetrics",
        &a,
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
    );
    assert!(a.body.ends_with("# EOF\n"));
    // A page that rebinds its name to 127.0.0.1 gets nothing.
    let a = site.send(metrics_request("evil.example", &[])).await;
    assert_eq!(a.status, 421, "{}", a.body);
    assert!(a.json()["error"].is_string());
}

#[tokio::test]
async fn metrics_with_auth_need_the_metrics_token() {
    let site = Site::new(Some(SITE));
    let mut with_token = Site::new(Some(SITE));
    with_token.state = with_token
        .state
        .clone()
        .with_metrics_token(Some(dsmon_config::Secret::new(METRICS_TOKEN.into())));
    let admin = format!("dsmon_session={}", with_token.session(ADMIN));
    let admin_bearer = format!("Bearer {}", with_token.session(ADMIN));
    let wrong = format!("Bearer {METRICS_TOKEN}x");
    let right = format!("Bearer {METRICS_TOKEN}");
    let basic = format!("Basic {METRICS_TOKEN}");
    let refused: [(&str, Vec<(header::HeaderName, &str)>); 5] = [
        ("no token", vec![]),
        (
            "a wrong token",
            vec![(header::AUTHORIZATION, wrong.as_str())],
        ),
        (
            "not a bearer",
            vec![(header::AUTHORIZATION, basic.as_str())],
        ),
        ("an Admin's cookie", vec![(header::COOKIE, admin.as_str())]),
        (
            "an Admin's session as bearer",
            vec![(header::AUTHORIZATION, admin_bearer.as_str())],
        ),
    ];
    for (case, headers) in &refused {
        let a = with_token
            .send(metrics_request("monitor.example.com", headers))
            .await;
        assert_eq!(a.status, 401, "{case}: {}", a.body);
        assert_eq!(a.json()["kind"], "not_signed_in", "{case}");
        assert!(
            a.json()["error"]
                .as_str()
                .is_some_and(|e| e.contains("metrics_token_file") && !e.contains(METRICS_TOKEN)),
            "{case}: {}",
            a.body
        );
        assert_eq!(
            a.header("www-authenticate"),
            "Bearer realm=\"dsmon metrics\"",
            "{case}"
        );
        assert!(!a.body.contains("dsmon_node"), "{case}");
    }
    let a = with_token
        .send(metrics_request(
            "monitor.example.com",
            &[(header::AUTHORIZATION, right.as_str())],
        ))
        .await;
    check_exposition("the token", &a, "text/plain; version=0.0.4; charset=utf-8");
    assert_eq!(a.header("x-content-type-options"), "nosniff");

    // Without a token configured, not even the token's holder (or an Admin) gets it here.
    for headers in [
        vec![(header::AUTHORIZATION, right.as_str())],
        vec![(header::COOKIE, admin.as_str())],
    ] {
        let a = site.send(metrics_request("localhost", &headers)).await;
        assert_eq!(a.status, 404, "{}", a.body);
        assert!(a.json()["error"]
            .as_str()
            .is_some_and(|e| e.contains("metrics_listen")));
    }
}

#[tokio::test]
async fn the_metrics_listener_serves_metrics_alone_on_loopback() {
    // The listener's router, over a site with sign-in and no token: no token needed there.
    let site = Site::new(Some(SITE));
    let router = || dsmon_server::metrics_router(site.state.clone(), Some(9464));
    for host in ["127.0.0.1:9464", "localhost", "[::1]:9464"] {
        let a = send(router(), metrics_request(host, &[])).await;
        check_exposition(host, &a, "text/plain; version=0.0.4; charset=utf-8");
        assert_eq!(a.header("x-content-type-options"), "nosniff");
    }
    for host in ["evil.example", "127.0.0.1:8080", "monitor.example.com"] {
        let a = send(router(), metrics_request(host, &[])).await;
        assert_eq!(a.status, 421, "{host}: {}", a.body);
        assert!(!a.body.contains("dsmon_node"));
    }
    for path in ["/api/live", "/", "/auth/login"] {
        let r = Request::get(path)
            .header(header::HOST, "127.0.0.1:9464")
            .body(Body::empty())
            .expect("request");
        let a = send(router(), r).await;
        assert_eq!(a.status, 404, "{path}: {}", a.body);
        assert_eq!(a.json()["kind"], "not_found");
    }
}

// ---- the OpenAPI document --------------------------------------------------------------------

/// Every operation of an OpenAPI document: (method, path, operation).
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let paths = doc["paths"].as_object().expect("paths");
    let mut ops = Vec::new();
    for (path, item) in paths {
        for (method, op) in item.as_object().expect("path item") {
            if ["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                ops.push((method.to_uppercase(), path.clone(), op.clone()));
            }
        }
    }
    ops
}

/// A concrete request path for a documented one (`{email}` -> a known user, others -> `1`).
fn concrete(path: &str) -> String {
    path.replace("{email}", USER)
        .split('/')
        .map(|seg| if seg.starts_with('{') { "1" } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}

/// Every `$ref` in `v`.
fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => refs(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_openapi_document_is_served_to_anyone_and_parses_as_openapi_3_1() {
    let site = Site::new(Some(SITE));
    let a = site.get(Anonymous, "/api/openapi.json").await;
    assert_eq!(a.status, 200, "public: {}", a.body);
    assert_eq!(a.header("content-type"), "application/json");
    check_answer("Anonymous GET /api/openapi.json", "/api/openapi.json", &a);
    // utoipa's own types read it back whole, and it is the document the code builds.
    let doc = a.json();
    let parsed: utoipa::openapi::OpenApi =
        serde_json::from_str(&a.body).expect("an OpenAPI document");
    assert_eq!(serde_json::to_value(&parsed).expect("json"), doc);
    assert_eq!(
        serde_json::to_value(dsmon_server::openapi()).expect("json"),
        doc
    );
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1.")),
        "{}",
        doc["openapi"]
    );
    // Every reference resolves; every JSON error answer is the one error body.
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("a reference outside the schemas: {r}"));
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "{r} is not defined"
        );
    }
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["session"]["in"], "cookie");
    assert_eq!(schemes["session"]["name"], "dsmon_session");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    for (method, path, op) in operations(&doc) {
        for (status, resp) in op["responses"].as_object().expect("responses") {
            let json = &resp["content"]["application/json"]["schema"]["$ref"];
            let error = status.starts_with('4') || status.starts_with('5');
            if error && !resp["content"]["text/html"].is_object() {
                assert_eq!(
                    json, "#/components/schemas/ErrorBody",
                    "{method} {path} {status}"
                );
            }
        }
    }
}

/// The document against the router, both ways: each documented operation is routed (not the
/// fallback, not 405) and its `x-dsmon-role` is the role the route enforces; each `.route(..)`
/// in the server's sources (a route added beside `routes!`) and each endpoint of the README's
/// API table is documented.
#[tokio::test]
async fn the_openapi_document_has_every_route_with_its_role() {
    let site = Site::new(Some(SITE));
    let doc: Value = serde_json::to_value(dsmon_server::openapi()).expect("document");
    let ops = operations(&doc);
    assert!(ops.len() >= 27, "{} operations", ops.len());
    let mut failures = Vec::new();
    for (method, path, op) in &ops {
        let case = format!("{method} {path}");
        let role = op[dsmon_server::ROLE].as_str().unwrap_or("");
        let uri = concrete(path);
        let body = if method == "POST" { "{}" } else { "" };
        let ask = |who| site.send(request(&site, who, method, &uri, body));
        let (anon, user, admin) = (ask(Anonymous).await, ask(User).await, ask(Admin).await);
        if admin.status == 405 || (admin.status == 404 && admin.body.contains("no such page")) {
            failures.push(format!(
                "{case}: not routed ({} {})",
                admin.status, admin.body
            ));
            continue;
        }
        let ok = match role {
            "admin" => anon.status == 401 && user.status == 403 && admin.status != 403,
            "user" => anon.status == 401 && ![401, 403].contains(&user.status),
            // No session needed: who calls makes no difference.
            "public" | "metrics-token" => {
                anon.status == admin.status && user.status == admin.status
            }
            _ => false,
        };
        if !ok {
            failures.push(format!(
                "{case}: x-dsmon-role {role:?}, but anonymous {} user {} admin {}",
                anon.status, user.status, admin.status
            ));
        }
        let description = op["description"].as_str().unwrap_or("");
        if !description.contains("Role: ") {
            failures.push(format!("{case}: no role in its description"));
        }
    }
    let documented = |method: &str, path: &str| {
        ops.iter()
            .any(|(m, p, _)| m == method && template_matches(p, path))
    };
    // Routes added with a plain `.route(..)` (or nested) are not in the document: the server's
    // sources may have them only for documented paths (the metrics listener's `/metrics`).
    // `loopback.rs` is the desktop app's one-shot sign-in listener, not `dsmon serve`'s API.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for entry in std::fs::read_dir(&src).expect("src") {
        let file = entry.expect("entry").path();
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("?");
        if name == "loopback.rs" {
            continue;
        }
        // The code without its comments.
        let text: String = std::fs::read_to_string(&file)
            .expect("source")
            .lines()
            .map(|l| {
                if l.trim_start().starts_with("//") {
                    ""
                } else {
                    l
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let line_of = |at: usize| text[..at].lines().count();
        for call in [".nest(", ".nest_service(", ".route_service("] {
            if let Some(at) = text.find(call) {
                failures.push(format!(
                    "{name}:{}: {call} routes outside the document",
                    line_of(at)
                ));
            }
        }
        for (at, _) in text.match_indices(".route(") {
            let rest = text[at + ".route(".len()..].trim_start();
            let path = rest.strip_prefix('"').and_then(|r| r.split('"').next());
            if !path.is_some_and(|p| ops.iter().any(|(_, d, _)| d == p)) {
                failures.push(format!(
                    "{name}:{}: a route the OpenAPI document does not have (register it with `.routes(routes!(handler))`): {:?}",
                    line_of(at),
                    path
                ));
            }
        }
    }
    // The README's API table: every endpoint it names is documented, with its method.
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../README.md");
    let readme = std::fs::read_to_string(readme).expect("README.md");
    let mut named = 0;
    for row in readme.lines().filter(|l| l.starts_with("| `")) {
        let first = row.split(" | ").next().unwrap_or("");
        let mut last_path = None;
        for item in first.split('`').skip(1).step_by(2) {
            let mut words = item.split_whitespace();
            let method = words.next().unwrap_or("");
            if !["GET", "POST", "DELETE", "PUT", "PATCH"].contains(&method) {
                continue;
            }
            let path = match words.next() {
                Some(p) => p.split('?').next().unwrap_or(p).to_string(),
                None => match &last_path {
                    Some(p) => String::clone(p),
                    None => continue,
                },
            };
            last_path = Some(path.clone());
            let api = ["/api/", "/auth/", "/metrics", "/healthz"]
                .iter()
                .any(|p| path.starts_with(p));
            if !api {
                continue;
            }
            named += 1;
            if !documented(method, &path) {
                failures.push(format!("README names {method} {path}: not in the document"));
            }
        }
    }
    assert!(named >= 26, "the README's API table: {named} endpoints");
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// Whether a documented path (`/api/users/{email}`) matches a README one (`/api/users/EMAIL`).
fn template_matches(template: &str, path: &str) -> bool {
    let (a, b): (Vec<_>, Vec<_>) = (template.split('/').collect(), path.split('/').collect());
    a.len() == b.len()
        && a.iter().zip(&b).all(|(t, p)| {
            t == p
                || (t.starts_with('{')
                    && !p.is_empty()
                    && p.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        })
}
