//! The deployment as shipped: Debian's nginx running `deploy/nginx/dsmon.conf` (only its paths,
//! ports and name replaced) with a throw-away certificate, in front of `dsmon serve` on a unix
//! socket configured from `deploy/dsmon.toml`, signing in through a real OpenID Connect provider,
//! with a real Netdata agent. Pages, the API, the live stream and sign-in cookies must all work
//! through the proxy.

mod harness;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use harness::oidc::{set_cookie, Agent, Provider, CLIENT_ID, CLIENT_SECRET};
use harness::serving::Served;
use harness::{free_port, Dsmon, Machine, NetdataAgent};
use reqwest::header::{LOCATION, STRICT_TRANSPORT_SECURITY};
use reqwest::redirect::Policy;
use reqwest::{Client, StatusCode};

fn repo_file(rel: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `text` with every `(from, to)` replaced; each `from` must be there (so a change to the shipped
/// file that this test no longer understands fails here, not silently).
fn substitute(what: &str, mut text: String, pairs: &[(&str, String)]) -> String {
    for (from, to) in pairs {
        assert!(text.contains(from), "{what} no longer contains {from:?}");
        text = text.replace(from, to);
    }
    text
}

/// nginx in the foreground with its own prefix, logs and pid file in `dir`; stopped on drop.
struct Nginx {
    child: Child,
    dir: PathBuf,
    http: u16,
    https: u16,
}

impl Nginx {
    /// Runs the shipped site for `sock`, with the certificate in `tls` (harness::make_certificates).
    fn start(dir: &Path, sock: &Path, tls: &Path) -> Self {
        assert!(
            Path::new("/usr/sbin/nginx").exists(),
            "nginx is not installed (scripts/setup-debian.sh installs it)"
        );
        let (http, https) = (free_port(), free_port());
        let webroot = dir.join("www");
        std::fs::create_dir_all(&webroot).expect("webroot");
        let site = substitute(
            "deploy/nginx/dsmon.conf",
            repo_file("deploy/nginx/dsmon.conf"),
            &[
                ("    listen [::]:80;\n", String::new()),
                ("    listen [::]:443 ssl http2;\n", String::new()),
                ("listen 80;", format!("listen 127.0.0.1:{http};")),
                (
                    "listen 443 ssl http2;",
                    format!("listen 127.0.0.1:{https} ssl http2;"),
                ),
                (
                    "/etc/letsencrypt/live/monitor.example.com/fullchain.pem",
                    tls.join("cert.pem").display().to_string(),
                ),
                (
                    "/etc/letsencrypt/live/monitor.example.com/privkey.pem",
                    tls.join("key.pem").display().to_string(),
                ),
                ("monitor.example.com", "127.0.0.1".into()),
                ("/run/dsmon/dsmon.sock", sock.display().to_string()),
                ("/var/www/letsencrypt", webroot.display().to_string()),
            ],
        );
        std::fs::write(dir.join("site.conf"), site).expect("site");
        let d = dir.display();
        // One process (no master/worker split): it runs as the test's user, who can reach the
        // socket; in production the workers are www-data in group dsmon (deploy/dsmon.sysusers).
        let main = format!(
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
             events {{ worker_connections 2048; }}\n\
             http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/tmp/body;\n  proxy_temp_path {d}/tmp/proxy;\n\
               fastcgi_temp_path {d}/tmp/fastcgi;\n  uwsgi_temp_path {d}/tmp/uwsgi;\n  scgi_temp_path {d}/tmp/scgi;\n\
               include {d}/site.conf;\n}}\n"
        );
        std::fs::create_dir_all(dir.join("tmp")).expect("tmp");
        std::fs::write(dir.join("nginx.conf"), main).expect("nginx.conf");
        let child = Command::new("/usr/sbin/nginx")
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let n = Self {
            child,
            dir: dir.to_path_buf(),
            http,
            https,
        };
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", https)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "nginx did not start; error.log:\n{}",
                n.error_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        n
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    fn base(&self) -> String {
        format!("https://127.0.0.1:{}", self.https)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the nginx we started.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

/// A cookie-keeping client that trusts the test CA, as a browser with it installed would.
fn browser(ca: &Path, base: String) -> Agent {
    let pem = std::fs::read(ca).expect("CA");
    let http = Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("CA PEM"))
        .build()
        .expect("client");
    Agent { http, base }
}

/// Reads `n` events from the live stream; their ids and when each arrived.
async fn stream_events(a: &Agent, n: usize) -> Vec<(u64, Instant)> {
    let r = a
        .http
        .get(format!("{}/api/live/stream", a.base))
        .send()
        .await
        .expect("stream");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()[reqwest::header::CONTENT_TYPE]
        .to_str()
        .is_ok_and(|v| v.starts_with("text/event-stream")));
    let mut r = r;
    let (mut text, mut events) = (String::new(), Vec::new());
    while events.len() < n {
        let chunk = tokio::time::timeout(Duration::from_secs(5), r.chunk())
            .await
            .expect("an event within 5 s")
            .expect("chunk")
            .expect("stream open");
        text.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = text.find("\n\n") {
            let event: String = text.drain(..end + 2).collect();
            if let Some(id) = event
                .lines()
                .find_map(|l| l.strip_prefix("id:"))
                .and_then(|v| v.trim().parse().ok())
            {
                events.push((id, Instant::now()));
            }
        }
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_api_stream_and_sign_in_work_through_nginx() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let agent = NetdataAgent::start("alpha", Machine::STANDARD);
    let d = Dsmon::new("");
    let tls_ca = harness::make_certificates(&d.dir);
    let tls = tls_ca.parent().expect("tls dir").to_path_buf();
    let sock = d.dir.join("dsmon.sock");
    let nginx_dir = d.dir.join("nginx");
    std::fs::create_dir_all(&nginx_dir).expect("nginx dir");
    let nginx = Nginx::start(&nginx_dir, &sock, &tls);
    let base = nginx.base();
    let provider = Provider::start_as(&format!("{base}/auth/callback"), "web");

    // deploy/dsmon.toml, pointed at this test's directory, provider and agent.
    std::fs::write(d.dir.join("client_secret"), CLIENT_SECRET).expect("secret");
    let sample = repo_file("deploy/dsmon.toml");
    let nodes_at = sample
        .find("[[nodes]]")
        .expect("deploy/dsmon.toml has [[nodes]]");
    let config = substitute(
        "deploy/dsmon.toml",
        sample[..nodes_at].to_string(),
        &[
            ("/var/lib/dsmon/dsmon.sqlite3", d.db.display().to_string()),
            ("/run/dsmon/dsmon.sock", sock.display().to_string()),
            (
                "/run/credentials/dsmon.service/client_secret",
                d.dir.join("client_secret").display().to_string(),
            ),
            ("https://accounts.google.com", provider.issuer.clone()),
            ("1234-abc.apps.googleusercontent.com", CLIENT_ID.into()),
            ("https://monitor.example.com", base.clone()),
            ("live_interval = \"2s\"", "live_interval = \"500ms\"".into()),
        ],
    ) + &agent.node_toml();
    std::fs::write(&d.config, config).expect("config");
    let served = Served::on_socket(&d, &sock);

    let a = browser(&tls_ca, base.clone());

    // Plain http is sent to https.
    let r = a
        .http
        .get(format!("http://127.0.0.1:{}/live?x=1", nginx.http))
        .send()
        .await
        .expect("http");
    assert_eq!(r.status(), StatusCode::MOVED_PERMANENTLY);
    assert_eq!(r.headers()[LOCATION], "https://127.0.0.1/live?x=1");

    // Over https: dsmon answers, with one HSTS header and dsmon's own security headers.
    let r = a
        .http
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(r.status(), StatusCode::OK);
    let hsts: Vec<_> = r
        .headers()
        .get_all(STRICT_TRANSPORT_SECURITY)
        .iter()
        .collect();
    assert_eq!(hsts, ["max-age=31536000"], "exactly one HSTS header");
    assert!(r.headers()["content-security-policy"]
        .to_str()
        .is_ok_and(|v| v.contains("frame-ancestors 'none'")));

    // Anonymous: the API says 401, a page sends the browser to sign in.
    let (status, _, _) = a.get("/api/live").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, h, _) = a.get("/live").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(h[LOCATION], "/auth/login?next=%2Flive");

    // Sign in through nginx: over https the session cookie carries the __Host- prefix (Secure,
    // Path=/, no Domain: no sibling subdomain or http page can plant or shadow it), HttpOnly,
    // SameSite=Lax.
    let r = a.sign_in("alice@example.com").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{:?}", r.headers());
    assert_eq!(r.headers()[LOCATION], "/live");
    let cookie = set_cookie(r.headers(), "__Host-dsmon_session").expect("session cookie");
    assert!(!cookie.contains("Domain"), "{cookie}");
    for attr in ["; Secure", "; HttpOnly", "; SameSite=Lax", "; Path=/"] {
        assert!(cookie.contains(attr), "{attr} missing: {cookie}");
    }
    let (status, _, body) = a.get("/api/me").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let me: serde_json::Value = serde_json::from_str(&body).expect("me");
    assert_eq!(me["email"], "alice@example.com");
    assert_eq!(me["role"], "admin");

    // Pages and their files.
    for (path, kind) in [
        ("/live", "text/html"),
        ("/history", "text/html"),
        ("/nodes/alpha", "text/html"),
        ("/app.js", "text/javascript"),
        ("/style.css", "text/css"),
    ] {
        let (status, h, body) = a.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(
            h[reqwest::header::CONTENT_TYPE]
                .to_str()
                .is_ok_and(|v| v.starts_with(kind)),
            "{path}: {h:?}"
        );
        assert!(!body.is_empty(), "{path}");
    }

    // The API: the agent is up with its values.
    let start = Instant::now();
    let live = loop {
        let (status, _, body) = a.get("/api/live").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("live JSON");
        if v["nodes"][0]["state"] == "up" {
            break v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "alpha not up: {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    harness::assert_close("cpu", &live["nodes"][0]["metrics"]["cpu_pct"], 40.0, 0.5);
    let (status, _, body) = a.get("/api/history?from=-1h").await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The live stream: each snapshot comes through as it is made (500 ms apart), none held back.
    let events = stream_events(&a, 4).await;
    let ids: Vec<u64> = events.iter().map(|e| e.0).collect();
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "{ids:?}");
    for w in events.windows(2) {
        let gap = w[1].1 - w[0].1;
        assert!(
            gap > Duration::from_millis(200) && gap < Duration::from_millis(1200),
            "events should arrive one per live interval, got a gap of {gap:?}"
        );
    }

    // Sign out (this site's Origin): the session is gone.
    let (status, body) = a.post("/auth/logout", serde_json::json!({}), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, _) = a.get("/api/me").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The rate limit counts the client nginx names (X-Real-IP), and a client cannot name another.
    let mut refused = None;
    for i in 0..40 {
        let r = a
            .http
            .get(format!("{base}/auth/signed-out"))
            .header("X-Real-IP", format!("198.51.100.{i}"))
            .send()
            .await
            .expect("signed-out");
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(i);
            break;
        }
        assert_eq!(r.status(), StatusCode::OK);
    }
    let refused = refused.expect("the /auth/ rate limit applies behind nginx");
    assert!(
        (25..=30).contains(&refused),
        "refused after {refused} requests (30 allowed, minus this test's sign-in)"
    );

    // nginx's own limit stops a large body before dsmon sees it.
    let r = a
        .http
        .post(format!("{base}/api/users/bob@example.org"))
        .header("Origin", base.clone())
        .body(vec![b' '; 100 * 1024])
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);

    let log = served.log_text();
    assert!(!log.contains("ERROR"), "dsmon logged errors:\n{log}");
    drop(served);
    assert!(!sock.exists(), "the socket is removed when dsmon stops");
    drop(nginx);
}
