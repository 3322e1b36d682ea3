//! Attacks on the edge of `dsmon serve` (what it does before a request reaches a route), each
//! performed against a real `dsmon serve`, and the safe outcome:
//! - a client on the direct TLS listener that sends its headers a byte a second is cut off within
//!   ~10 s, while another client is served meanwhile;
//! - a client that sets `X-Forwarded-For` itself still meets the `/auth/*` rate limit, while a
//!   peer in `[server] trusted_proxies` gets an allowance per client it forwards;
//! - a flood of started sign-ins does not evict a real user's sign-in in progress: past the
//!   per-client cap a client's own oldest give way, past the total cap new ones get a 503.

mod harness;

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::oidc::{dsmon_with_auth, set_cookie, Agent, Provider};
use harness::serving::{connect_from, exchange, get_request};
use harness::{make_certificates, unique_dir, Dsmon, Serve};
use reqwest::StatusCode;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A TLS connection to 127.0.0.1:`port` trusting only `ca`, handshaken.
fn tls_connect(port: u16, ca: &Path) -> Tls {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).expect("CA") {
        roots.add(c.expect("CA PEM")).expect("CA");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("127.0.0.1").expect("name");
    let conn = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
    let tcp = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut s = rustls::StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock).expect("TLS handshake");
    }
    s
}

/// GET /healthz over a new TLS connection: the status, 0 when there is no answer.
fn tls_healthz(port: u16, ca: &Path) -> u16 {
    let s = tls_connect(port, ca);
    exchange(s, &get_request("/healthz", &[]))
        .map(|a| a.status)
        .unwrap_or(0)
}

#[test]
fn slow_headers_on_the_tls_listener_are_cut_off_while_others_are_served() {
    let certs = unique_dir("edge-certs");
    let ca = make_certificates(&certs);
    let tls = ca.parent().expect("tls dir");
    let d = Dsmon::new(&format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"\n",
        tls.join("cert.pem").display(),
        tls.join("key.pem").display()
    ));
    let child = d
        .command(&["serve"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("serve");
    let _serve = Serve {
        child,
        port: d.port,
    };
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", d.port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "serve did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(tls_healthz(d.port, &ca), 200);

    // The attack: a request head, a byte a second, never finished.
    let mut slow = tls_connect(d.port, &ca);
    slow.sock
        .set_read_timeout(Some(Duration::from_millis(900)))
        .expect("timeout");
    let head =
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let began = Instant::now();
    let mut served_meanwhile = 0;
    let mut cut_off = None;
    for byte in head.iter().cycle().take(20) {
        let open = slow.write_all(&[*byte]).and_then(|()| slow.flush()).is_ok()
            && match slow.read(&mut [0u8; 512]) {
                Err(e) => matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
                // An answer (an error page) or the end: the server gave up on it.
                Ok(_) => false,
            };
        if !open {
            cut_off = Some(began.elapsed());
            break;
        }
        // Another client is served while the slow one holds its connection.
        if tls_healthz(d.port, &ca) == 200 {
            served_meanwhile += 1;
        }
    }
    let cut_off = cut_off.expect("the slow client was still connected after 20 s");
    assert!(
        cut_off >= Duration::from_secs(8) && cut_off <= Duration::from_secs(15),
        "cut off after {cut_off:?}, not ~10 s"
    );
    assert!(
        served_meanwhile >= 5,
        "others were served {served_meanwhile} times meanwhile"
    );
    assert_eq!(tls_healthz(d.port, &ca), 200, "and after");
}

/// GET /auth/login from the loopback address `from` with extra header lines: the status.
fn auth_from(from: Ipv4Addr, port: u16, headers: &[&str]) -> u16 {
    let s = connect_from(from, port);
    exchange(s, &get_request("/auth/login", headers))
        .expect("HTTP")
        .status
}

#[test]
fn forwarded_addresses_count_only_from_trusted_proxies() {
    let d = Dsmon::new("trusted_proxies = [\"127.0.0.2/32\"]\n");
    let s = Serve::start(&d);
    // A client on 127.0.0.3 names another address of its own in every request.
    let spoofer = Ipv4Addr::new(127, 0, 0, 3);
    let statuses: Vec<u16> = (0..35)
        .map(|i| {
            let fake = format!("203.0.113.{i}");
            auth_from(
                spoofer,
                s.port,
                &[
                    &format!("X-Forwarded-For: {fake}"),
                    &format!("X-Real-IP: {fake}"),
                ],
            )
        })
        .collect();
    assert!(
        statuses[..30].iter().all(|&st| st != 429),
        "the burst: {statuses:?}"
    );
    assert!(
        statuses[30..].iter().filter(|&&st| st == 429).count() >= 4,
        "spoofed forwarded addresses do not escape the limit: {statuses:?}"
    );
    // The trusted proxy forwards two clients: each has its own allowance (together more than
    // one client's burst), and the first is limited once its own burst is spent.
    let proxy = Ipv4Addr::new(127, 0, 0, 2);
    let via = |client: &str| auth_from(proxy, s.port, &[&format!("X-Forwarded-For: {client}")]);
    for client in ["198.51.100.1", "198.51.100.2"] {
        let ok = (0..30).filter(|_| via(client) != 429).count();
        assert_eq!(ok, 30, "{client}: its own burst");
    }
    assert_eq!(
        via("198.51.100.1"),
        429,
        "the first client's burst is spent"
    );
    // The right-most untrusted entry counts: a client cannot prepend its way out.
    assert_eq!(
        via("192.0.2.1, 198.51.100.1"),
        429,
        "prepended entries are ignored"
    );
}

fn pending(d: &Dsmon, client: Option<&str>) -> i64 {
    let c = rusqlite::Connection::open(&d.db).expect("open the database");
    match client {
        Some(cl) => c.query_row(
            "SELECT count(*) FROM pending_logins WHERE client = ?1",
            [cl],
            |r| r.get(0),
        ),
        None => c.query_row("SELECT count(*) FROM pending_logins", [], |r| r.get(0)),
    }
    .expect("count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_started_sign_ins_evicts_no_real_one() {
    let provider = Provider::start("http://127.0.0.1/auth/callback");
    let (d, serve) = dsmon_with_auth("", &provider.issuer);
    // Alice starts signing in and is at the provider.
    let alice = Agent::from_address(serve.port, Ipv4Addr::new(127, 0, 0, 20));
    let callback = alice.login_at_provider("alice@example.com", "/live").await;

    // The attack. Over HTTP from one address: past 20 pending, its own oldest give way.
    let attacker = Agent::from_address(serve.port, Ipv4Addr::new(127, 0, 0, 21));
    for _ in 0..25 {
        let (st, _, _) = attacker.get("/auth/login").await;
        assert_eq!(st, StatusCode::SEE_OTHER);
    }
    assert_eq!(pending(&d, Some("127.0.0.21")), 20, "the per-client cap");
    // From many addresses (a botnet; the rate limit would take hours over HTTP): written straight
    // into the SQLite file, up to the total cap of 10 000.
    {
        let mut c = rusqlite::Connection::open(&d.db).expect("open");
        let tx = c.transaction().expect("tx");
        let now = harness::unix_now() as i64;
        let room = 10_000 - pending(&d, None);
        for i in 0..room {
            tx.execute(
                "INSERT INTO pending_logins (key_hash, data, created, expires, client)
                 VALUES (?1, '{}', ?2, ?3, ?4)",
                rusqlite::params![
                    format!("flood-{i}"),
                    now,
                    now + 600,
                    format!("10.{}.{}.1", i / 250, i % 250)
                ],
            )
            .expect("insert");
        }
        tx.commit().expect("commit");
    }
    assert_eq!(pending(&d, None), 10_000);

    // A new sign-in is refused with a page that says why, rather than evicting one in progress.
    let bob = Agent::from_address(serve.port, Ipv4Addr::new(127, 0, 0, 22));
    let (st, _, body) = bob.get("/auth/login").await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("Too many sign-ins in progress"), "{body}");
    assert_eq!(pending(&d, None), 10_000, "nothing evicted");

    // Alice's sign-in, started before the flood, finishes.
    let r = alice.callback(&callback).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "alice signed in");
    assert!(set_cookie(r.headers(), "dsmon_session").is_some());
    let (st, _, me) = alice.get("/api/me").await;
    assert_eq!(st, StatusCode::OK, "{me}");
    assert!(me.contains("alice@example.com"), "{me}");

    // Her place is free again: Bob signs in through the provider.
    let r = bob.sign_in("bob@example.org").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "bob signed in");
    drop(provider);
}
