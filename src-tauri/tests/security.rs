//! Attacks on sign-in, performed against a real OpenID Connect provider (npm oidc-provider, run by
//! the harness) and `dsmon serve`, and the safe outcome of each: an address signed in from a second
//! account (who someone is, is the account), a loop of bad callbacks against the audit log, and ID
//! tokens under made-up key ids against the provider's JWKS. One provider and one dsmon serve for
//! all of them (CI has two cores); each attack comes from loopback addresses of its own, so the
//! per-client limit on `/auth/*` stays out of the way.

mod harness;

use std::net::Ipv4Addr;
use std::time::Duration;

use harness::oidc::{
    auth_toml_with, desktop_nonce, dsmon_with_auth_toml, exchange_id_token, set_cookie, Agent,
    Provider, DESKTOP_CLIENT_ID,
};
use harness::serving::{connect_from, exchange, get_request};
use harness::{Dsmon, Serve};
use reqwest::StatusCode;
use serde_json::{json, Value};

struct Setup {
    provider: Provider,
    d: Dsmon,
    serve: Serve,
}

/// A browser on the loopback address 127.0.0.`n`.
fn agent(s: &Setup, n: u8) -> Agent {
    Agent::from_address(s.serve.port, Ipv4Addr::new(127, 0, 0, n))
}

async fn sign_in(s: &Setup, n: u8, login: &str) -> (Agent, StatusCode, String) {
    let a = agent(s, n);
    let r = a.sign_in(login).await;
    let status = r.status();
    assert_eq!(
        set_cookie(r.headers(), "dsmon_session").is_some(),
        status == StatusCode::SEE_OTHER,
        "{login}: a session exactly when signed in"
    );
    let body = r.text().await.unwrap_or_default();
    (a, status, body)
}

async fn json_get(a: &Agent, path: &str) -> (StatusCode, Value) {
    let (st, _, body) = a.get(path).await;
    (st, serde_json::from_str(&body).unwrap_or(Value::Null))
}

async fn audit(admin: &Agent) -> Vec<Value> {
    let (st, v) = json_get(admin, "/api/audit?limit=500").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v["entries"].as_array().expect("entries").clone()
}

fn audit_rows(d: &Dsmon) -> i64 {
    let c = rusqlite::Connection::open(&d.db).expect("open the database");
    c.query_row("SELECT count(*) FROM audit", [], |r| r.get(0))
        .expect("count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attacks_on_identity_audit_log_and_keys_fail() {
    let provider = Provider::start("http://127.0.0.1/auth/callback");
    let issuer = provider.issuer.clone();
    // mallory@corp.example is an admin by address, but *@corp.example makes corp.example a
    // Workspace domain, and Mallory's account is not of that Workspace (no hd claim).
    let (d, serve) = dsmon_with_auth_toml("", |d| {
        auth_toml_with(
            d,
            &issuer,
            &["alice@example.com", "mallory@corp.example"],
            &["bob@example.org", "*@corp.example"],
        )
    });
    let s = Setup { provider, d, serve };
    let admin = an_address_is_bound_to_the_account_that_first_signed_in(&s).await;
    a_loop_of_bad_callbacks_adds_one_counted_entry(&s, &admin).await;
    unknown_key_ids_fetch_the_keys_again_at_most_once_a_minute(&s).await;
    live_streams_beyond_the_cap_are_refused(&admin).await;
}

/// One session holds as many live streams as it may (8); the next is a 429 with the reason, and a
/// closed stream gives its place back.
async fn live_streams_beyond_the_cap_are_refused(admin: &Agent) {
    let url = format!("{}/api/live/stream", admin.base);
    let open = || {
        admin
            .http
            .get(&url)
            .header("accept", "text/event-stream")
            .send()
    };
    let mut held = Vec::new();
    for i in 0..8 {
        let r = open().await.expect("stream");
        assert_eq!(r.status(), StatusCode::OK, "stream {i}");
        held.push(r);
    }
    let r = open().await.expect("ninth");
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let v: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(v["kind"], "too_many", "{v}");
    assert!(
        v["error"].as_str().is_some_and(|e| e.contains("at most 8")),
        "{v}"
    );
    held.pop();
    let mut again = None;
    for _ in 0..50 {
        let r = open().await.expect("again");
        if r.status() == StatusCode::OK {
            again = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(again.is_some(), "a closed stream gives its place back");
}

/// Without sign-in every caller is the local Admin, so a web page that rebinds its own name to
/// 127.0.0.1 (DNS rebinding) must get nothing: only loopback Host names are answered.
#[test]
fn no_auth_mode_answers_only_loopback_hosts() {
    // The node's name is a spreadsheet formula: the CSV export must not hand it over as one.
    let d = Dsmon::new(
        "[[nodes]]\nname = \"=HYPERLINK(\\\"http://evil.example\\\")\"\nurl = \"http://127.0.0.1:9\"\n",
    );
    let serve = Serve::start(&d);
    let port = serve.port;
    let ask = |host: &str, path: &str| {
        let req = format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n");
        exchange(connect_from(Ipv4Addr::LOCALHOST, port), req.as_bytes()).expect("answer")
    };
    for (host, path) in [
        ("evil.example", "/api/history.csv?from=-1h"),
        (&format!("evil.example:{port}") as &str, "/api/live"),
        ("127.0.0.1.nip.io", "/"),
        (&format!("127.0.0.1:{}", port + 1), "/api/me"),
    ] {
        let a = ask(host, path);
        assert_eq!(a.status, 421, "Host {host} {path}: {}", a.body);
        assert!(!a.body.contains("n1"), "no data for Host {host}");
    }
    for host in ["127.0.0.1", &format!("localhost:{port}") as &str, "[::1]"] {
        assert_eq!(ask(host, "/api/live").status, 200, "Host {host}");
    }
    // Health checks of any kind still get their "ok".
    assert_eq!(ask("monitor.internal", "/healthz").status, 200);

    // The first tick (the node does not answer) is logged at start; in the CSV its name and its
    // error text cannot start a formula.
    let start = std::time::Instant::now();
    let csv = loop {
        let a = ask("127.0.0.1", "/api/history.csv?from=-1h");
        assert_eq!(a.status, 200, "{}", a.body);
        if a.body.lines().count() > 1 || start.elapsed() > Duration::from_secs(10) {
            break a.body;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let row = csv.lines().nth(1).expect("a logged row");
    let cells: Vec<&str> = row.split(',').collect();
    assert!(
        cells[1].starts_with("\"'=HYPERLINK") || cells[1].starts_with("'=HYPERLINK"),
        "the name is neutralised: {row}"
    );
    assert!(
        cells
            .iter()
            .all(|c| !c.trim_start_matches('"').starts_with(['=', '+', '-', '@'])),
        "no cell starts a formula: {row}"
    );
}

/// Item 3: the same verified address from another account (another `sub`) is refused and
/// audited; an Admin re-binds the address, and then only the new account gets in.
async fn an_address_is_bound_to_the_account_that_first_signed_in(s: &Setup) -> Agent {
    let (bob, st, body) = sign_in(s, 2, "bob@example.org").await;
    assert_eq!(st, StatusCode::SEE_OTHER, "{body}");
    // The attack: a second account that carries the same verified address.
    let (_, st, body) = sign_in(s, 3, "bob@example.org#2").await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body.contains("bob@example.org is bound to another account") && body.contains("re-bind"),
        "{body}"
    );
    assert_eq!(json_get(&bob, "/api/me").await.1["role"], "user");
    // An admin address of a Workspace domain, from an account outside the Workspace.
    let (_, st, body) = sign_in(s, 4, "mallory@corp.example").await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body.contains("mallory@corp.example is not authorized"),
        "{body}"
    );

    let (admin, st, body) = sign_in(s, 5, "alice@example.com").await;
    assert_eq!(st, StatusCode::SEE_OTHER, "{body}");
    let refused = audit(&admin)
        .await
        .into_iter()
        .find(|e| e["action"] == "sign_in_refused" && e["target"] == "bob@example.org")
        .expect("the refusal is audited");
    let detail = refused["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("bound to the account sub-bob-example-org;")
            && detail.contains("refused the account sub-bob-example-org-2"),
        "{refused}"
    );
    assert!(
        refused["actor"].is_null(),
        "not the address's owner: {refused}"
    );
    let (_, users) = json_get(&admin, "/api/users").await;
    let row = |users: &Value, email: &str| {
        users
            .as_array()
            .and_then(|l| l.iter().find(|u| u["email"] == email).cloned())
            .unwrap_or_else(|| panic!("{email} listed: {users}"))
    };
    assert!(row(&users, "bob@example.org")["other_account_at"].is_i64());
    let mallory = row(&users, "mallory@corp.example");
    assert!(
        mallory["role"].is_null() && mallory["config_admin"] == false,
        "{mallory}"
    );

    // Only an Admin re-binds, and only to an account that tried.
    let (st, _) = bob
        .post("/api/users/bob@example.org", json!({"rebind": true}), None)
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, body) = admin
        .post(
            "/api/users/alice@example.com",
            json!({"rebind": true}),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
    assert!(body.contains("nothing to re-bind"), "{body}");
    let (st, body) = admin
        .post("/api/users/bob@example.org", json!({"rebind": true}), None)
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    // The account the address was bound to loses its session, and then its access.
    assert_eq!(bob.get("/api/me").await.0, StatusCode::UNAUTHORIZED);
    let (bob2, st, body) = sign_in(s, 3, "bob@example.org#2").await;
    assert_eq!(st, StatusCode::SEE_OTHER, "{body}");
    let (_, me) = json_get(&bob2, "/api/me").await;
    assert_eq!(
        (&me["email"], &me["role"]),
        (&json!("bob@example.org"), &json!("user"))
    );
    let (_, st, body) = sign_in(s, 2, "bob@example.org").await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{body}");
    let entries = audit(&admin).await;
    assert!(
        entries.iter().any(|e| e["action"] == "rebound"
            && e["actor"] == "alice@example.com"
            && e["target"] == "bob@example.org"
            && e["detail"]
                .as_str()
                .is_some_and(|d| d.contains("to the account sub-bob-example-org-2"))),
        "{entries:?}"
    );
    admin
}

/// Item 5: 2000 callbacks with a made-up state, from 100 clients: one audit entry that counts
/// them, not 2000 rows.
async fn a_loop_of_bad_callbacks_adds_one_counted_entry(s: &Setup, admin: &Agent) {
    const CLIENTS: u8 = 100;
    const EACH: usize = 20;
    let before = audit_rows(&s.d);
    let port = s.serve.port;
    let statuses = tokio::task::spawn_blocking(move || {
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..4u8)
                .map(|w| {
                    scope.spawn(move || {
                        let mut statuses = Vec::new();
                        for c in (0..CLIENTS).filter(|c| c % 4 == w) {
                            let from = Ipv4Addr::new(127, 0, 1, c + 1);
                            for _ in 0..EACH {
                                let a = exchange(
                                    connect_from(from, port),
                                    &get_request("/auth/callback?state=x&code=y", &[]),
                                )
                                .expect("callback");
                                statuses.push(a.status);
                            }
                        }
                        statuses
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().expect("worker"))
                .collect::<Vec<u16>>()
        })
    })
    .await
    .expect("the loop");
    assert_eq!(statuses.len(), 2000);
    assert!(statuses.iter().all(|&c| c == 400), "{statuses:?}");
    let added = audit_rows(&s.d) - before;
    assert!(
        (1..=3).contains(&added),
        "2000 bad callbacks added {added} audit rows"
    );
    let entries = audit(admin).await;
    let counted = entries
        .iter()
        .find(|e| {
            e["action"] == "sign_in_refused"
                && e["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains("unknown, expired or already used"))
        })
        .unwrap_or_else(|| panic!("{entries:?}"));
    assert_eq!(counted["count"], 2000, "{counted}");
    assert!(counted["actor"].is_null());
    assert!(
        counted["last_seen"].as_i64() >= counted["ts"].as_i64(),
        "{counted}"
    );
}

async fn exchange_token(from: u8, port: u16, id_token: String) -> (StatusCode, Value) {
    let http = reqwest::Client::builder()
        .local_address(std::net::IpAddr::V4(Ipv4Addr::new(127, 0, 2, from)))
        .build()
        .expect("client");
    exchange_id_token(&http, port, &id_token).await
}

/// Item 6: ID tokens under key ids the provider never published make dsmon fetch the provider's
/// keys once (concurrent ones share the fetch), not once each; a token signed by a key the
/// provider really rotated in verifies after that fetch.
async fn unknown_key_ids_fetch_the_keys_again_at_most_once_a_minute(s: &Setup) {
    let port = s.serve.port;
    let before = s.provider.jwks_fetches().await;
    // A real rotation at the provider: a new key, published from now on (the token carries a
    // nonce this server issued, as the desktop app's tokens do).
    let rotated = s
        .provider
        .mint_with(
            "alice@example.com",
            DESKTOP_CLIENT_ID,
            "new",
            json!({ "nonce": desktop_nonce(port).await }),
        )
        .await;
    let mut forged = Vec::new();
    for _ in 0..20 {
        forged.push(
            s.provider
                .mint("alice@example.com", DESKTOP_CLIENT_ID, "unknown")
                .await,
        );
    }
    // Ten at once, from ten clients.
    let batch = forged[..10]
        .iter()
        .enumerate()
        .map(|(i, t)| exchange_token(i as u8 + 1, port, t.clone()));
    for (st, body) in futures_util::future::join_all(batch).await {
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{body}");
    }
    let (st, body) = exchange_token(20, port, rotated).await;
    assert_eq!(st, StatusCode::OK, "the rotated-in key verifies: {body}");
    assert_eq!(body["role"], "admin");
    // Ten more, one after the other: the keys were fetched less than a minute ago.
    for t in &forged[10..] {
        let (st, body) = exchange_token(21, port, t.clone()).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{body}");
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|e| e.contains("does not publish")),
            "{body}"
        );
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        s.provider.jwks_fetches().await - before,
        1,
        "20 unknown key ids and one rotation: one fetch of the keys"
    );
}
