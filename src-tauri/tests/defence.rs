//! The server's defences as a client meets them: security headers on every kind of response, the
//! rate limit on `/auth/*` (per TCP client, and per forwarded client behind a proxy on the unix
//! socket), and the request body limit. Against a real `dsmon serve` and a real Netdata agent.

mod harness;

use std::net::Ipv4Addr;
use std::time::Duration;

use harness::serving::{connect_from, exchange, get_request, tcp, unix, Answer, Served};
use harness::{Dsmon, Machine, NetdataAgent};

/// `[auth]` with a provider that is never reached (the tests here do not sign in).
fn auth(redirect: &str) -> String {
    format!(
        "[auth]\nissuer = \"http://127.0.0.1:9\"\nclient_id = \"dsmon-test\"\nclient_secret = \"not-used-here-0123\"\nredirect_url = \"{redirect}/auth/callback\"\nadmins = [\"alice@example.com\"]\n"
    )
}

fn assert_security_headers(what: &str, a: &Answer) {
    let csp = a
        .header("content-security-policy")
        .unwrap_or_else(|| panic!("{what}: no Content-Security-Policy\n{}", a.head));
    for want in [
        "default-src 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
    ] {
        assert!(csp.contains(want), "{what}: CSP {csp:?} lacks {want}");
    }
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{what}: {csp}"
    );
    assert_eq!(
        a.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(a.header("referrer-policy"), Some("same-origin"), "{what}");
    assert_eq!(a.header("x-frame-options"), Some("deny"), "{what}");
}

/// What the CSP would block in a page: inline scripts, inline styles, event-handler attributes.
fn assert_nothing_inline(what: &str, html: &str) {
    let lower = html.to_lowercase();
    for (i, _) in lower.match_indices("<script") {
        let tag = &lower[i..i + lower[i..].find('>').unwrap_or(0)];
        assert!(tag.contains(" src="), "{what}: an inline script: {tag}");
    }
    assert!(!lower.contains("<style"), "{what}: a <style> element");
    assert!(!lower.contains(" style="), "{what}: a style attribute");
    let handlers = [
        "onclick=",
        "onload=",
        "onerror=",
        "onsubmit=",
        "javascript:",
    ];
    for h in handlers {
        assert!(!lower.contains(h), "{what}: {h}");
    }
}

#[test]
fn every_kind_of_response_carries_the_security_headers() {
    let agent = NetdataAgent::start("alpha", Machine::STANDARD);
    let d = Dsmon::new(&format!(
        "[collector]\nlive_interval = \"500ms\"\n\n{}",
        agent.node_toml()
    ));
    let _s = Served::tcp(&d);
    let cases = [
        ("/", 200),
        ("/live", 200),
        ("/history", 200),
        ("/nodes/alpha", 200),
        ("/app.js", 200),
        ("/style.css", 200),
        ("/vendor/uPlot.esm.js", 200),
        ("/api/live", 200),
        ("/api/nodes", 200),
        ("/api/history?from=-1h", 200),
        ("/api/history?from=nonsense", 400),
        ("/api/no-such-thing", 404),
        ("/no-such-page", 404),
        ("/healthz", 200),
        ("/auth/signed-out", 200),
        ("/auth/login?next=/history", 303),
    ];
    for (path, want) in cases {
        let a = tcp(d.port, &get_request(path, &[]));
        assert_eq!(a.status, want, "GET {path}: {}", a.body);
        assert_security_headers(path, &a);
        // Plain http on loopback: no HSTS (a browser would ignore it anyway).
        assert_eq!(a.header("strict-transport-security"), None, "{path}");
    }
    // The pages themselves hold nothing the policy would block.
    assert_nothing_inline("index.html", &tcp(d.port, &get_request("/live", &[])).body);
    assert_nothing_inline(
        "the signed-out page",
        &tcp(d.port, &get_request("/auth/signed-out", &[])).body,
    );

    // The live stream: the head of a response that never ends.
    let mut c = std::net::TcpStream::connect(("127.0.0.1", d.port)).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    std::io::Write::write_all(&mut c, &get_request("/api/live/stream", &[])).expect("write");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        std::io::Read::read_exact(&mut c, &mut byte).expect("stream head");
        head.push(byte[0]);
    }
    let a = Answer {
        status: 200,
        head: String::from_utf8_lossy(&head).to_lowercase(),
        body: String::new(),
    };
    assert!(a.head.contains("text/event-stream"), "{}", a.head);
    assert_security_headers("the live stream", &a);
}

#[test]
fn hsts_only_when_the_site_is_reached_over_https() {
    // The public address (redirect_url) is https: every response tells browsers to stay on https.
    let d = Dsmon::new(&auth("https://monitor.example.com"));
    let s = Served::tcp(&d);
    for path in ["/healthz", "/api/live", "/auth/signed-out"] {
        let a = tcp(d.port, &get_request(path, &[]));
        assert_eq!(
            a.header("strict-transport-security"),
            Some("max-age=31536000"),
            "{path}: {}",
            a.head
        );
        assert_security_headers(path, &a);
    }
    drop(s);

    // An http public address behind a proxy on the unix socket: HSTS exactly when the proxy says
    // the request came over https.
    let d = Dsmon::new(&auth("http://127.0.0.1:8443"));
    let s = Served::unix(&d);
    let sock = s.socket.clone().expect("socket");
    let a = unix(
        &sock,
        &get_request("/healthz", &["X-Forwarded-Proto: https"]),
    );
    assert_eq!(
        a.header("strict-transport-security"),
        Some("max-age=31536000")
    );
    let a = unix(
        &sock,
        &get_request("/healthz", &["X-Forwarded-Proto: http"]),
    );
    assert_eq!(a.header("strict-transport-security"), None);
    assert_security_headers("over the socket", &a);
    drop(s);

    // The same header from a TCP client is not believed.
    let d = Dsmon::new(&auth("http://127.0.0.1:8443"));
    let _s = Served::tcp(&d);
    let a = tcp(
        d.port,
        &get_request("/healthz", &["X-Forwarded-Proto: https"]),
    );
    assert_eq!(a.status, 200);
    assert_eq!(a.header("strict-transport-security"), None);
}

const BURST: usize = 30;

/// `n` requests to a cheap `/auth/` page through `send`; the statuses.
fn burst(n: usize, mut send: impl FnMut() -> Answer) -> Vec<u16> {
    (0..n).map(|_| send().status).collect()
}

/// More requests until one is refused (a slow machine may have earned a token back meanwhile, one
/// per 2 s); that answer. Panics if none of a few is.
fn until_refused(mut send: impl FnMut() -> Answer) -> Answer {
    for _ in 0..3 {
        let a = send();
        if a.status == 429 {
            return a;
        }
        assert_eq!(a.status, 200, "{}", a.body);
    }
    panic!("no 429 after the burst");
}

#[test]
fn sign_in_routes_are_rate_limited_per_client() {
    let d = Dsmon::new("");
    let s = Served::tcp(&d);
    let from = |ip: [u8; 4], headers: &[&str]| {
        let c = connect_from(Ipv4Addr::from(ip), d.port);
        exchange(c, &get_request("/auth/signed-out", headers)).expect("exchange")
    };
    let statuses = burst(BURST, || from([127, 0, 0, 1], &[]));
    assert!(statuses.iter().all(|&c| c == 200), "{statuses:?}");

    let refused = until_refused(|| from([127, 0, 0, 1], &[]));
    assert_security_headers("429", &refused);
    let retry: u64 = refused
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("Retry-After: {}", refused.head));
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    let body: serde_json::Value = serde_json::from_str(&refused.body).expect("JSON body");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("too many")),
        "{body}"
    );

    // A forwarded-for header from a TCP client is not believed: still the same client.
    let spoofed = from(
        [127, 0, 0, 1],
        &["X-Real-IP: 203.0.113.7", "X-Forwarded-For: 203.0.113.8"],
    );
    assert_eq!(spoofed.status, 429);
    // Other routes are not limited, and another client has its own allowance.
    assert_eq!(tcp(d.port, &get_request("/api/live", &[])).status, 200);
    assert_eq!(from([127, 0, 0, 2], &[]).status, 200);

    // After Retry-After the client may come back (one request per refill).
    std::thread::sleep(Duration::from_secs(retry) + Duration::from_millis(100));
    assert_eq!(from([127, 0, 0, 1], &[]).status, 200);
    assert_eq!(from([127, 0, 0, 1], &[]).status, 429);

    let log = s.log_text();
    // One warning per episode of refusals (two here), not one per refused request, naming the
    // client (the log's start-up line names 127.0.0.1 too, as the address listened on).
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains("rate limit")).collect();
    assert_eq!(warnings.len(), 2, "{log}");
    assert!(
        warnings.iter().all(|l| l.contains("client=127.0.0.1")),
        "{log}"
    );
}

#[test]
fn behind_the_proxy_on_the_unix_socket_the_forwarded_client_is_limited() {
    let d = Dsmon::new(&auth("https://monitor.example.com"));
    let s = Served::unix(&d);
    let sock = s.socket.clone().expect("socket");
    let as_client = |ip: &str| {
        let h = format!("X-Real-IP: {ip}");
        unix(
            &sock,
            &get_request("/auth/signed-out", &[&h, "X-Forwarded-Proto: https"]),
        )
    };
    let statuses = burst(BURST, || as_client("198.51.100.1"));
    assert!(statuses.iter().all(|&c| c == 200), "{statuses:?}");
    until_refused(|| as_client("198.51.100.1"));
    assert_eq!(as_client("198.51.100.2").status, 200);
    // Without X-Real-IP, the last X-Forwarded-For entry (the one the proxy added) is the client.
    let xff = unix(
        &sock,
        &get_request(
            "/auth/signed-out",
            &["X-Forwarded-For: 198.51.100.2, 198.51.100.1"],
        ),
    );
    assert_eq!(xff.status, 429);
}

#[test]
fn oversized_request_bodies_are_refused() {
    let d = Dsmon::new("");
    let _s = Served::tcp(&d);
    let origin = format!("Origin: http://127.0.0.1:{}", d.port);
    let post = |headers: &str, body: &[u8]| {
        let mut r = format!(
            "POST /api/users/bob@example.org HTTP/1.0\r\nHost: 127.0.0.1:{}\r\n{origin}\r\nContent-Type: application/json\r\n{headers}\r\n",
            d.port
        )
        .into_bytes();
        r.extend_from_slice(body);
        tcp(d.port, &r)
    };

    // Declared too large: refused before the body is read.
    let a = post("Content-Length: 1048576\r\n", b"");
    assert_eq!(a.status, 413, "{}", a.body);
    assert_security_headers("413", &a);
    let body: serde_json::Value = serde_json::from_str(&a.body).expect("JSON");
    assert!(body["error"].as_str().is_some_and(|e| e.contains("16 KiB")));

    // Too large in fact, sent chunked without a length: cut off while it is read.
    let big = vec![b' '; 20 * 1024];
    let mut chunked = format!("{:x}\r\n", big.len()).into_bytes();
    chunked.extend_from_slice(&big);
    chunked.extend_from_slice(b"\r\n0\r\n\r\n");
    let a = tcp(d.port, &{
        let mut r = format!(
            "POST /api/users/bob@example.org HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n{origin}\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n",
            d.port
        )
        .into_bytes();
        r.extend_from_slice(&chunked);
        r
    });
    assert_eq!(a.status, 413, "{}", a.body);

    // A body of ordinary size goes through to the handler (which, without [auth], has no users).
    let small = br#"{"role": "user"}"#;
    let a = post(&format!("Content-Length: {}\r\n", small.len()), small);
    assert_eq!(a.status, 404, "{}", a.body);
}
