//! Direct TLS without nginx (`[server] tls_cert` / `tls_key`): `dsmon serve` answers https with
//! HSTS, and a SIGHUP makes it serve a renewed certificate (a broken one is refused and the one in
//! use kept), against a real Netdata agent.

mod harness;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use harness::{make_certificates, Dsmon, Machine, NetdataAgent};
use reqwest::{Client, StatusCode};

/// A throw-away CA and a certificate for 127.0.0.1 in `dir`: (CA, certificate, key).
fn certificate(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).expect("dir");
    let ca = make_certificates(dir);
    let tls = ca.parent().expect("tls dir");
    (ca.clone(), tls.join("cert.pem"), tls.join("key.pem"))
}

/// A client that trusts `ca` only and opens a new connection for every request (so a reload shows
/// at once).
fn client(ca: &Path) -> Client {
    let pem = std::fs::read(ca).expect("CA");
    Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("PEM"))
        .tls_built_in_root_certs(false)
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client")
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on the dsmon we started.
    unsafe {
        libc::kill(child.id() as i32, sig);
    }
}

async fn until(what: &str, limit: Duration, mut f: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !f().await {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_https_with_hsts_and_reloads_the_certificate_on_sighup() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let agent = NetdataAgent::start("alpha", Machine::STANDARD);
    let d = Dsmon::new(&format!(
        "[collector]\nlive_interval = \"500ms\"\n\n{}",
        agent.node_toml()
    ));
    let (ca_a, cert_a, key_a) = certificate(&d.dir.join("a"));
    let (ca_b, cert_b, key_b) = certificate(&d.dir.join("b"));
    let (cert, key) = (d.dir.join("server-cert.pem"), d.dir.join("server-key.pem"));
    std::fs::copy(&cert_a, &cert).expect("cert");
    std::fs::copy(&key_a, &key).expect("key");
    serve_tls(&d, "server-cert.pem", "server-key.pem");

    let log = d.dir.join("serve.log");
    let mut serve = d
        .command(&["serve"])
        .stderr(Stdio::from(std::fs::File::create(&log).expect("log")))
        .spawn()
        .expect("serve");
    let base = format!("https://127.0.0.1:{}", d.port);
    let (a, b) = (client(&ca_a), client(&ca_b));
    let ok = async |c: &Client, path: &str| {
        c.get(format!("{base}{path}"))
            .send()
            .await
            .is_ok_and(|r| r.status() == StatusCode::OK)
    };
    until("https /healthz", Duration::from_secs(10), async || {
        ok(&a, "/healthz").await
    })
    .await;

    // https with the first certificate: security headers with HSTS, the UI and the live API.
    let r = a
        .get(format!("{base}/live"))
        .send()
        .await
        .expect("GET /live");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["strict-transport-security"], "max-age=31536000");
    assert!(r.headers()["content-security-policy"]
        .to_str()
        .is_ok_and(|v| v.contains("default-src 'self'")));
    until(
        "alpha up over https",
        Duration::from_secs(10),
        async || match a.get(format!("{base}/api/live")).send().await {
            Ok(r) => r
                .json::<serde_json::Value>()
                .await
                .is_ok_and(|v| v["nodes"][0]["state"] == "up"),
            Err(_) => false,
        },
    )
    .await;
    // A client that does not trust it, and plain http, get nothing.
    assert!(!ok(&b, "/healthz").await);
    let plain = harness::http_get(d.port, "/healthz");
    assert!(
        !matches!(plain, Ok((200, _))),
        "plain http on the TLS port: {plain:?}"
    );

    // A renewed certificate: in place, then SIGHUP.
    std::fs::copy(&cert_b, &cert).expect("cert");
    std::fs::copy(&key_b, &key).expect("key");
    signal(&serve, libc::SIGHUP);
    until(
        "the renewed certificate",
        Duration::from_secs(5),
        async || ok(&b, "/healthz").await,
    )
    .await;
    assert!(!ok(&a, "/healthz").await, "the old certificate is gone");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(text.contains("SIGHUP: TLS certificate reloaded"), "{text}");

    // A broken key: refused with a message naming the file (not its content), the one in use kept.
    std::fs::write(&key, "not a key\n").expect("key");
    signal(&serve, libc::SIGHUP);
    until("the refusal logged", Duration::from_secs(5), async || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("cannot reload the TLS certificate")
    })
    .await;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains("server-key.pem") && !text.contains("not a key"),
        "{text}"
    );
    assert!(
        ok(&b, "/healthz").await,
        "still serving after a failed reload"
    );

    signal(&serve, libc::SIGTERM);
    let status = serve.wait().expect("wait");
    assert_eq!(
        status.code(),
        Some(0),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

/// Adds `tls_cert` / `tls_key` (paths relative to the config) to `d`'s `[server]`.
fn serve_tls(d: &Dsmon, cert: &str, key: &str) {
    let text = std::fs::read_to_string(&d.config).expect("config");
    let listen = format!("listen = \"127.0.0.1:{}\"\n", d.port);
    std::fs::write(
        &d.config,
        text.replacen(
            &listen,
            &format!("{listen}tls_cert = \"{cert}\"\ntls_key = \"{key}\"\n"),
            1,
        ),
    )
    .expect("config");
}

#[test]
fn a_certificate_that_does_not_load_stops_serve_with_a_message() {
    let d = Dsmon::new("");
    std::fs::write(d.dir.join("cert.pem"), "garbage").expect("cert");
    std::fs::write(d.dir.join("key.pem"), "garbage").expect("key");
    let text = std::fs::read_to_string(&d.config).expect("config");
    let listen = format!("listen = \"127.0.0.1:{}\"\n", d.port);
    serve_tls(&d, "cert.pem", "key.pem");
    let r = d.run(&["serve"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("cert.pem: TLS: no PEM certificate in the file"),
        "{r:?}"
    );
    // Only one of the two keys: a configuration error (exit 2) naming the key.
    std::fs::write(
        &d.config,
        text.replacen(&listen, &format!("{listen}tls_cert = \"cert.pem\"\n"), 1),
    )
    .expect("config");
    let r = d.run(&["serve"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("server.tls_key"), "{r:?}");
}
