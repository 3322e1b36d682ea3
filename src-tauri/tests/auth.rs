//! Sign-in and roles against a real OpenID Connect provider (npm oidc-provider, run by the
//! harness) and `dsmon serve`: who may reach what (API and pages), every way a sign-in must be
//! refused, sessions, logout, user administration taking effect at once, the audit log, and
//! cross-site requests. dsmon has no test switch: the provider is configured like Google, and the
//! bad tokens are minted by the provider with its real key (see tests/oidc/provider.mjs).

mod harness;

use std::time::{Duration, Instant};

use harness::oidc::{
    desktop_nonce, dsmon_with_auth, exchange_id_token, loopback_redirect, set_cookie, Agent,
    Provider, CLIENT_SECRET, DESKTOP_CLIENT_ID, DESKTOP_CLIENT_SECRET,
};
use harness::{Dsmon, Serve};
use reqwest::header::LOCATION;
use reqwest::StatusCode;
use serde_json::json;

/// A provider and a dsmon signing in with it.
struct Setup {
    provider: Provider,
    d: Dsmon,
    serve: Serve,
}

fn setup() -> Setup {
    // A native client: the provider accepts this loopback redirect URI on any port (RFC 8252 7.3).
    let provider = Provider::start("http://127.0.0.1/auth/callback");
    let (d, serve) = dsmon_with_auth("", &provider.issuer);
    Setup { provider, d, serve }
}

fn agent(s: &Setup) -> Agent {
    Agent::new(s.serve.port)
}

async fn signed_in(s: &Setup, email: &str) -> Agent {
    let a = agent(s);
    let r = a.sign_in(email).await;
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "sign-in of {email}: {}",
        r.text().await.unwrap_or_default()
    );
    a
}

async fn me(a: &Agent) -> (StatusCode, serde_json::Value) {
    let (s, _, body) = a.get("/api/me").await;
    (
        s,
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
    )
}

async fn audit(a: &Agent) -> Vec<serde_json::Value> {
    let (s, _, body) = a.get("/api/audit?limit=500").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    v["entries"].as_array().expect("entries").clone()
}

fn has_entry(entries: &[serde_json::Value], action: &str, needle: &str) -> bool {
    entries
        .iter()
        .any(|e| e["action"] == action && e.to_string().contains(needle))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_and_user_sign_in_and_reach_what_their_role_allows() {
    let s = setup();

    // Anonymous: the API answers 401 JSON, pages send the browser to sign in and back.
    let anon = agent(&s);
    for path in [
        "/api/live",
        "/api/nodes",
        "/api/history",
        "/api/users",
        "/api/me",
        "/api/live/stream",
    ] {
        let (st, h, body) = anon.get(path).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{path}: {body}");
        assert!(
            h["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json"),
            "{path}"
        );
        assert!(body.contains("\"error\""), "{path}: {body}");
    }
    for (page, next) in [
        ("/history?range=7d", "%2Fhistory%3Frange%3D7d"),
        ("/", "%2F"),
        ("/users", "%2Fusers"),
    ] {
        let (st, h, _) = anon.get(page).await;
        assert_eq!(st, StatusCode::SEE_OTHER, "{page}");
        assert_eq!(
            h[LOCATION],
            format!("/auth/login?next={next}").as_str(),
            "{page}"
        );
    }
    // The UI's own files hold no data and load for anyone (the sign-in pages use the style sheet).
    assert_eq!(anon.get("/style.css").await.0, StatusCode::OK);
    assert_eq!(anon.get("/healthz").await.0, StatusCode::OK);

    // Admin: signs in, lands where it asked to go, with a session cookie as it should be.
    let admin = agent(&s);
    let cb = admin
        .login_at_provider("alice@example.com", "/history?range=7d")
        .await;
    let r = admin.callback(&cb).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[LOCATION], "/history?range=7d");
    let cookie = set_cookie(r.headers(), "dsmon_session").expect("session cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("Secure"),
        "plain http on loopback: no Secure flag: {cookie}"
    );
    let session_value = cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_string();
    assert_eq!(
        session_value.len(),
        43,
        "256 random bits, base64url: {cookie}"
    );
    let (st, v) = me(&admin).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["email"], "alice@example.com");
    assert_eq!(v["name"], "Alice Admin");
    assert_eq!(v["role"], "admin");
    for path in [
        "/api/live",
        "/api/nodes",
        "/api/history?from=-1h",
        "/api/history.csv?from=-1h",
        "/api/users",
        "/api/audit",
    ] {
        let (st, _, body) = admin.get(path).await;
        assert_eq!(st, StatusCode::OK, "admin {path}: {body}");
    }
    for page in ["/", "/live", "/history", "/users", "/audit", "/nodes/any"] {
        let (st, _, body) = admin.get(page).await;
        assert_eq!(st, StatusCode::OK, "admin {page}");
        assert!(body.contains("<main id=\"main\""), "admin {page} is the UI");
    }

    // User (exact email): live only; history and user administration refused by the backend.
    let user = signed_in(&s, "bob@example.org").await;
    let (_, v) = me(&user).await;
    assert_eq!(v["role"], "user");
    for path in ["/api/live", "/api/nodes"] {
        assert_eq!(user.get(path).await.0, StatusCode::OK, "user {path}");
    }
    for path in [
        "/api/history?from=-1h",
        "/api/history.csv",
        "/api/users",
        "/api/audit",
    ] {
        let (st, h, body) = user.get(path).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "user {path}: {body}");
        assert!(h["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"));
        assert!(body.contains("Admin"), "{body}");
    }
    for page in ["/", "/live", "/nodes/n1"] {
        assert_eq!(user.get(page).await.0, StatusCode::OK, "user {page}");
    }
    for page in ["/history", "/users", "/audit"] {
        let (st, h, body) = user.get(page).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "user {page}");
        assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
        assert!(
            body.contains("Not authorized") && body.contains("bob@example.org"),
            "{body}"
        );
    }
    // A Workspace user by its verified hd claim.
    let carol = signed_in(&s, "carol@corp.example").await;
    assert_eq!(me(&carol).await.1["role"], "user");

    // The audit log saw the sign-ins and the denials.
    let entries = audit(&admin).await;
    assert!(has_entry(&entries, "sign_in", "alice@example.com"));
    assert!(has_entry(&entries, "sign_in", "bob@example.org"));
    assert!(
        has_entry(&entries, "access_denied", "/api/history"),
        "{entries:?}"
    );
    assert!(has_entry(&entries, "access_denied", "/users"));

    // The secret never reaches a page, a response or the database. The database is in WAL mode:
    // what serve wrote lately is in the -wal file until a checkpoint, so both are read, and they
    // must hold the signed-in users (or this looks in the wrong place).
    let mut db = std::fs::read(&s.d.db).expect("db");
    let wal = s.d.db.with_file_name(format!(
        "{}-wal",
        s.d.db.file_name().expect("name").to_string_lossy()
    ));
    db.extend(std::fs::read(&wal).unwrap_or_default());
    let db = String::from_utf8_lossy(&db);
    assert!(
        db.contains("alice@example.com") && db.contains("bob@example.org"),
        "the users are in the database files read"
    );
    assert!(!db.contains(CLIENT_SECRET));
    assert!(!db.contains(&session_value), "sessions are stored hashed");

    api_tokens(&s, &admin, &user).await;
}

/// A request with `Authorization: Bearer token` (and no cookie, no Origin): status and body.
async fn with_token(
    s: &Setup,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> (StatusCode, String) {
    let mut req = reqwest::Client::new()
        .request(method, format!("http://127.0.0.1:{}{path}", s.serve.port))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("request");
    let st = r.status();
    (st, r.text().await.unwrap_or_default())
}

/// The database file and its WAL, as bytes read by anyone with the file would see them.
fn db_text(s: &Setup) -> String {
    let mut db = std::fs::read(&s.d.db).expect("db");
    let wal = s.d.db.with_file_name(format!(
        "{}-wal",
        s.d.db.file_name().expect("name").to_string_lossy()
    ));
    db.extend(std::fs::read(&wal).unwrap_or_default());
    String::from_utf8_lossy(&db).into_owned()
}

/// API tokens (shares the start-up of the test above): an Admin creates them, each acts with its
/// role on the API and opens no page, expiry and revocation end them (401), the store holds only
/// the secret's SHA-256, and every request with an Admin token is audited.
async fn api_tokens(s: &Setup, admin: &Agent, user: &Agent) {
    use reqwest::Method;
    let json = |b: &str| serde_json::from_str::<serde_json::Value>(b).expect("json");

    // A User may neither list nor create tokens.
    assert_eq!(user.get("/api/tokens").await.0, StatusCode::FORBIDDEN);
    let (st, body) = user
        .post("/api/tokens", json!({"name": "x", "role": "user"}), None)
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{body}");

    // Bad input: a 400 with a JSON error saying what is wrong.
    let long = "n".repeat(65);
    for (bad, says) in [
        (json!({"name": "", "role": "user"}), "empty"),
        (json!({"name": long, "role": "user"}), "at most 64"),
        (json!({"name": "x", "role": "root"}), "role must be"),
        (
            json!({"name": "x", "role": "user", "expires": "2020-01-01T00:00:00Z"}),
            "past",
        ),
    ] {
        let (st, body) = admin.post("/api/tokens", bad.clone(), None).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(
            json(&body)["error"].as_str().unwrap().contains(says),
            "{body}"
        );
    }

    // Created: the secret once, in the answer.
    let create = |name: &str, role: &str, expires: Option<&str>| {
        let body = json!({"name": name, "role": role, "expires": expires});
        async move {
            let (st, text) = admin.post("/api/tokens", body, None).await;
            assert_eq!(st, StatusCode::CREATED, "{text}");
            json(&text)
        }
    };
    let reader = create("reader", "user", Some("90d")).await;
    let ops = create("ops", "admin", None).await;
    let (reader_secret, ops_secret) = (
        reader["secret"].as_str().expect("secret").to_string(),
        ops["secret"].as_str().expect("secret").to_string(),
    );
    assert!(reader_secret.starts_with("dsmon_") && reader_secret.len() == 6 + 43);
    assert_eq!(reader["role"], "user");
    assert_eq!(reader["created_by"], "alice@example.com");
    assert!(reader["expires"].as_i64().expect("expires") > reader["created"].as_i64().unwrap());
    assert!(ops["expires"].is_null());
    let (st, body) = admin
        .post("/api/tokens", json!({"name": "ops", "role": "user"}), None)
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "a name is taken once: {body}");

    // A User token: the live view, not history or administration, and no page.
    for path in ["/api/live", "/api/nodes"] {
        let (st, body) = with_token(s, &reader_secret, Method::GET, path, None).await;
        assert_eq!(st, StatusCode::OK, "reader {path}: {body}");
    }
    let (_, me) = with_token(s, &reader_secret, Method::GET, "/api/me", None).await;
    assert_eq!(
        (json(&me)["email"].clone(), json(&me)["role"].clone()),
        (json!("token:reader"), json!("user"))
    );
    for path in [
        "/api/history?from=-1h",
        "/api/users",
        "/api/tokens",
        "/api/audit",
    ] {
        let (st, body) = with_token(s, &reader_secret, Method::GET, path, None).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "reader {path}: {body}");
    }
    // An Admin token: everything on the API, but it cannot mint or revoke tokens, nor open pages.
    for path in [
        "/api/history?from=-1h",
        "/api/users",
        "/api/tokens",
        "/api/audit",
    ] {
        let (st, body) = with_token(s, &ops_secret, Method::GET, path, None).await;
        assert_eq!(st, StatusCode::OK, "ops {path}: {body}");
    }
    let (st, body) = with_token(
        s,
        &ops_secret,
        Method::POST,
        "/api/tokens",
        Some(json!({"name": "more", "role": "admin"})),
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{body}");
    for secret in [&reader_secret, &ops_secret] {
        for page in ["/live", "/history", "/tokens"] {
            let (st, body) = with_token(s, secret, Method::GET, page, None).await;
            assert_eq!(st, StatusCode::FORBIDDEN, "{page}: {body}");
            assert!(body.contains("API tokens open the API only"), "{body}");
        }
    }

    // Only as a bearer token: in the session cookie a secret is no credential.
    let r = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/api/live", s.serve.port))
        .header(
            reqwest::header::COOKIE,
            format!("dsmon_session={ops_secret}"),
        )
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Expiry: a token made to last 3 s works, then answers 401 like an unknown session.
    let short = create("short", "user", Some("3s")).await;
    let short_secret = short["secret"].as_str().expect("secret").to_string();
    assert_eq!(
        with_token(s, &short_secret, Method::GET, "/api/live", None)
            .await
            .0,
        StatusCode::OK
    );
    let start = Instant::now();
    loop {
        let (st, body) = with_token(s, &short_secret, Method::GET, "/api/live", None).await;
        if st == StatusCode::UNAUTHORIZED {
            assert!(json(&body)["error"].is_string(), "{body}");
            break;
        }
        assert_eq!(st, StatusCode::OK, "{body}");
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the 3 s token still works"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Revoked: 401 at once; listed with the time. Unknown and malformed ids are refused.
    let id = reader["id"].as_i64().expect("id");
    let r = admin
        .http
        .delete(format!("{}/api/tokens/{id}", admin.base))
        .header(reqwest::header::ORIGIN, admin.origin())
        .send()
        .await
        .expect("DELETE");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(json(&r.text().await.unwrap())["revoked"].is_i64());
    let (st, body) = with_token(s, &reader_secret, Method::GET, "/api/live", None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "revoked: {body}");
    assert!(json(&body)["error"].is_string());
    for (path, want) in [
        ("/api/tokens/99999", StatusCode::NOT_FOUND),
        ("/api/tokens/x", StatusCode::BAD_REQUEST),
    ] {
        let (st, body) = with_token(s, &ops_secret, Method::DELETE, path, None).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "a token cannot revoke: {body}");
        let r = admin
            .http
            .delete(format!("{}{path}", admin.base))
            .header(reqwest::header::ORIGIN, admin.origin())
            .send()
            .await
            .expect("DELETE");
        assert_eq!(r.status(), want, "{path}");
    }
    let (_, _, list) = admin.get("/api/tokens").await;
    let list = json(&list);
    let tokens = list["tokens"].as_array().expect("tokens");
    let by_name = |n: &str| tokens.iter().find(|t| t["name"] == n).expect(n).clone();
    assert!(by_name("reader")["revoked"].is_i64());
    assert!(by_name("ops")["revoked"].is_null() && by_name("ops")["last_used"].is_i64());
    assert!(
        !list.to_string().contains("dsmon_"),
        "no secret in the list: {list}"
    );
    assert!(
        !list.to_string().contains("hash"),
        "no hash in the list: {list}"
    );

    // The store holds the secrets' SHA-256, never the secrets.
    let db = db_text(s);
    for secret in [&reader_secret, &ops_secret, &short_secret] {
        let secret_hash: String = <sha2::Sha256 as sha2::Digest>::digest(secret.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(
            db.contains(&secret_hash),
            "the hash is in the database files read"
        );
        assert!(!db.contains(secret.as_str()), "the secret is not");
    }

    // Audited: creation, revocation and every request with the Admin token (method and path);
    // the User token's requests are not.
    let entries = audit(admin).await;
    assert!(
        has_entry(&entries, "token_created", "token:ops"),
        "{entries:?}"
    );
    assert!(has_entry(&entries, "token_revoked", "token:reader"));
    for want in [
        "GET /api/history",
        "GET /api/users",
        "GET /api/tokens",
        "POST /api/tokens",
    ] {
        assert!(
            entries.iter().any(|e| e["action"] == "token_used"
                && e["actor"] == "token:ops"
                && e["target"] == want),
            "{want}: {entries:?}"
        );
    }
    assert!(
        !entries
            .iter()
            .any(|e| e["action"] == "token_used" && e["actor"] == "token:reader"),
        "User-token use is not audited"
    );
    assert!(has_entry(&entries, "access_denied", "token:reader"));

    // A token works only while its creator is an Admin: bob, made Admin, makes one; demoted back
    // (to the configuration's User), his token answers 401; made Admin again, it works again.
    let set_bob = |role: serde_json::Value| async move {
        let (st, body) = admin
            .post("/api/users/bob@example.org", json!({ "role": role }), None)
            .await;
        assert_eq!(st, StatusCode::OK, "{body}");
    };
    set_bob(json!("admin")).await;
    let bob = signed_in(s, "bob@example.org").await;
    let (st, body) = bob
        .post("/api/tokens", json!({"name": "bobs", "role": "user"}), None)
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    let bobs = json(&body)["secret"].as_str().expect("secret").to_string();
    let live = || with_token(s, &bobs, Method::GET, "/api/live", None);
    assert_eq!(live().await.0, StatusCode::OK);
    set_bob(serde_json::Value::Null).await;
    assert_eq!(live().await.0, StatusCode::UNAUTHORIZED, "creator demoted");
    set_bob(json!("admin")).await;
    assert_eq!(live().await.0, StatusCode::OK, "creator an Admin again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identities_outside_the_roles_are_refused_without_a_session() {
    let s = setup();
    for (email, want) in [
        ("stranger@other.org", "stranger@other.org is not authorized"),
        // *@corp.example matches the verified hd claim, not the address's domain.
        (
            "mallory@corp.example",
            "mallory@corp.example is not authorized",
        ),
        ("eve@example.org", "has not verified this email address"),
    ] {
        let a = agent(&s);
        let r = a.sign_in(email).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{email}");
        assert!(
            set_cookie(r.headers(), "dsmon_session").is_none(),
            "{email} got a session"
        );
        let body = r.text().await.unwrap();
        assert!(
            body.contains("Not authorized") && body.contains(want),
            "{email}: {body}"
        );
        assert_eq!(me(&a).await.0, StatusCode::UNAUTHORIZED);
    }
    let admin = signed_in(&s, "alice@example.com").await;
    let entries = audit(&admin).await;
    assert!(has_entry(
        &entries,
        "sign_in_refused",
        "stranger@other.org is not authorized"
    ));
    assert!(has_entry(&entries, "sign_in_refused", "has not verified"));
    // An Admin sees who tried, and can let them in.
    let (_, _, body) = admin.get("/api/users").await;
    let users: serde_json::Value = serde_json::from_str(&body).unwrap();
    let stranger = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "stranger@other.org")
        .expect("listed");
    assert!(stranger["role"].is_null());
    let (st, body) = admin
        .post(
            "/api/users/stranger@other.org",
            json!({"role": "user"}),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let a = agent(&s);
    assert_eq!(
        a.sign_in("stranger@other.org").await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(me(&a).await.1["role"], "user");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_changes_and_blocks_apply_at_once_and_are_audited() {
    let s = setup();
    let admin = signed_in(&s, "alice@example.com").await;
    let bob = signed_in(&s, "bob@example.org").await;
    assert_eq!(
        bob.get("/api/history?from=-1h").await.0,
        StatusCode::FORBIDDEN
    );

    // Promote: a role change ends the session (a privilege change gets a new session id); signed in
    // again, bob may read history.
    let (st, body) = admin
        .post("/api/users/bob@example.org", json!({"role": "admin"}), None)
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(
        bob.get("/api/history?from=-1h").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        bob.sign_in("bob@example.org").await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(bob.get("/api/history?from=-1h").await.0, StatusCode::OK);
    assert_eq!(me(&bob).await.1["role"], "admin");
    // Back to the configuration: User again (after a new sign-in).
    let (st, _) = admin
        .post("/api/users/bob@example.org", json!({"role": null}), None)
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(bob.get("/api/me").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        bob.sign_in("bob@example.org").await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        bob.get("/api/history?from=-1h").await.0,
        StatusCode::FORBIDDEN
    );

    // Block: the session ends (also an open live stream), and signing in again is refused.
    let mut stream = bob
        .http
        .get(format!("{}/api/live/stream", bob.base))
        .send()
        .await
        .expect("stream");
    assert_eq!(stream.status(), StatusCode::OK);
    let first = tokio::time::timeout(Duration::from_secs(10), stream.chunk())
        .await
        .expect("a first event")
        .expect("chunk");
    assert!(first.is_some());
    let (st, _) = admin
        .post("/api/users/bob@example.org", json!({"blocked": true}), None)
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(bob.get("/api/live").await.0, StatusCode::UNAUTHORIZED);
    let ended = tokio::time::timeout(Duration::from_secs(15), async {
        while let Ok(Some(_)) = stream.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "the blocked user's live stream kept going");
    let again = agent(&s);
    let r = again.sign_in("bob@example.org").await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("bob@example.org is blocked"));
    let (st, _) = admin
        .post(
            "/api/users/bob@example.org",
            json!({"blocked": false}),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        again.sign_in("bob@example.org").await.status(),
        StatusCode::SEE_OTHER
    );

    // Configuration admins cannot be locked out; unknown users and bad bodies are 4xx JSON.
    let (st, body) = admin
        .post(
            "/api/users/alice@example.com",
            json!({"blocked": true}),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
    assert!(body.contains("configuration file"));
    let (st, _) = admin
        .post(
            "/api/users/nobody@example.org",
            json!({"role": "user"}),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, body) = admin
        .post("/api/users/bob@example.org", json!({"role": "root"}), None)
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("\"error\""));
    // A User cannot administer.
    let (st, _) = again
        .post("/api/users/bob@example.org", json!({"role": "admin"}), None)
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);

    let entries = audit(&admin).await;
    assert!(
        has_entry(&entries, "role_changed", "\"detail\":\"admin\""),
        "{entries:?}"
    );
    assert!(has_entry(&entries, "role_changed", "from configuration"));
    assert!(has_entry(&entries, "blocked", "bob@example.org"));
    assert!(has_entry(&entries, "unblocked", "bob@example.org"));
    assert!(has_entry(
        &entries,
        "sign_in_refused",
        "bob@example.org is blocked"
    ));
    // Paging: newest first, limit and offset honoured.
    let (_, _, body) = admin.get("/api/audit?limit=2&offset=1").await;
    let p: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(p["entries"].as_array().unwrap().len(), 2);
    assert!(p["total"].as_i64().unwrap() > 3);
    assert!(p["entries"][0]["id"].as_i64() > p["entries"][1]["id"].as_i64());
    assert_eq!(
        admin.get("/api/audit?limit=0").await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        admin.get("/api/audit?offset=x").await.0,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_and_cross_site_requests() {
    let s = setup();
    let admin = signed_in(&s, "alice@example.com").await;
    // Cross-site: another Origin, or none, is refused, and changes nothing.
    let bob = signed_in(&s, "bob@example.org").await;
    for origin in ["http://evil.example", ""] {
        let (st, body) = admin
            .post(
                "/api/users/bob@example.org",
                json!({"blocked": true}),
                Some(origin),
            )
            .await;
        assert_eq!(st, StatusCode::FORBIDDEN, "origin {origin:?}: {body}");
        assert!(body.contains("cross-site"));
        let (st, _) = admin.post("/auth/logout", json!({}), Some(origin)).await;
        assert_eq!(st, StatusCode::FORBIDDEN);
    }
    assert_eq!(
        bob.get("/api/live").await.0,
        StatusCode::OK,
        "bob was not blocked"
    );
    assert_eq!(
        me(&admin).await.0,
        StatusCode::OK,
        "alice was not signed out"
    );

    // Logout ends the session on the server: the old cookie is worthless afterwards.
    let (st, _, _) = admin.get("/api/me").await;
    assert_eq!(st, StatusCode::OK);
    let raw = Agent::new(s.serve.port);
    let cookie_header = {
        // Read the session value through a fresh sign-in, to replay it by hand after logout.
        let a = agent(&s);
        let r = a.sign_in("alice@example.com").await;
        let c = set_cookie(r.headers(), "dsmon_session").unwrap();
        (a, c.split(';').next().unwrap().to_string())
    };
    let (a, cookie) = cookie_header;
    let (st, body) = a.post("/auth/logout", json!({}), None).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(me(&a).await.0, StatusCode::UNAUTHORIZED);
    let r = raw
        .http
        .get(format!("{}/api/me", raw.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "a logged-out session must not come back"
    );
    assert!(has_entry(
        &audit(&admin).await,
        "sign_out",
        "alice@example.com"
    ));
    // A forged cookie is just anonymous.
    let r = raw
        .http
        .get(format!("{}/api/me", raw.base))
        .header("cookie", "dsmon_session=forged")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_mismatch_replay_and_open_redirects_are_refused() {
    let s = setup();
    // The callback from another browser (no login cookie): refused.
    let a = agent(&s);
    let cb = a.login_at_provider("alice@example.com", "/").await;
    let other = agent(&s);
    let r = other.callback(&cb).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("not started in this browser"));
    // The attempt was single use: even the right browser cannot finish it now.
    let r = a.callback(&cb).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("unknown, expired or already used"));

    // Replay of a successful callback.
    let a = agent(&s);
    let cb = a.login_at_provider("alice@example.com", "/").await;
    assert_eq!(a.callback(&cb).await.status(), StatusCode::SEE_OTHER);
    let r = a.callback(&cb).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(set_cookie(r.headers(), "dsmon_session").is_none());

    // A made-up state.
    let (st, _, body) = a.get("/auth/callback?state=made-up&code=x").await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");

    // next= only ever leads to this site.
    for next in ["https://evil.example/", "//evil.example/x"] {
        let a = agent(&s);
        let cb = a.login_at_provider("alice@example.com", next).await;
        let r = a.callback(&cb).await;
        assert_eq!(r.headers()[LOCATION], "/", "{next}");
    }

    let admin = signed_in(&s, "alice@example.com").await;
    let entries = audit(&admin).await;
    assert!(has_entry(
        &entries,
        "sign_in_refused",
        "not started in this browser"
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_id_tokens_are_rejected_and_key_rotation_is_followed() {
    let s = setup();
    let cases = [
        (json!({"claims": {"nonce": "not-the-nonce"}}), "nonce"),
        (json!({"claims": {"aud": "someone-else"}}), "audience"),
        (json!({"claims": {"iss": "http://127.0.0.1:1"}}), "issuer"),
        (json!({"claims": {"exp_offset": -600}}), "xpired"),
        (json!({"bad_signature": true}), "ignature"),
        (
            json!({"claims": {"azp": "another-client"}}),
            "authorized party",
        ),
    ];
    for (tamper, want) in cases {
        let a = agent(&s);
        let cb = a.login_at_provider("alice@example.com", "/").await;
        s.provider.tamper(tamper.clone()).await;
        let r = a.callback(&cb).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{tamper}");
        assert!(
            set_cookie(r.headers(), "dsmon_session").is_none(),
            "{tamper}"
        );
        let body = r.text().await.unwrap();
        assert!(
            body.contains("ID token was rejected") && body.contains(want),
            "{tamper}: {body}"
        );
    }
    // Rotation: the provider publishes a new key and signs with it; dsmon, which cached the old
    // key set at its first sign-in, fetches the keys again and accepts the token.
    let a = agent(&s);
    let cb = a.login_at_provider("alice@example.com", "/").await;
    s.provider.tamper(json!({"rotate": true})).await;
    let r = a.callback(&cb).await;
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "{}",
        r.text().await.unwrap_or_default()
    );
    assert_eq!(me(&a).await.1["role"], "admin");
    // And keeps accepting tokens signed by the new key.
    assert_eq!(
        agent(&s).sign_in("bob@example.org").await.status(),
        StatusCode::SEE_OTHER
    );
    let entries = audit(&a).await;
    assert!(has_entry(&entries, "sign_in_refused", "nonce"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_down_or_slow_is_a_timely_error() {
    // Down: nothing listens at the issuer.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    // Slow: accepts connections and never answers.
    let slow = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let slow_issuer = format!("http://{}", slow.local_addr().unwrap());
    let hold = std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in slow.incoming().take(4) {
            held.push(c);
        }
        std::thread::sleep(Duration::from_secs(15));
    });
    for issuer in [down, slow_issuer] {
        let (_d, serve) = dsmon_with_auth("", &issuer);
        let a = Agent::new(serve.port);
        let t = Instant::now();
        let (st, _, body) = a.get("/auth/login?next=/").await;
        let took = t.elapsed();
        assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{issuer}: {body}");
        assert!(body.contains("Sign-in is unavailable"), "{body}");
        // The provider's error chain (connection and DNS details) is logged, not shown.
        for detail in [
            "onnection refused",
            "error sending request",
            "tcp connect",
            "timed out",
        ] {
            assert!(!body.contains(detail), "{detail:?} shown: {body}");
        }
        // The configured budget is 2 s: an answer well before a hang would be noticed.
        assert!(took < Duration::from_secs(8), "{issuer}: took {took:?}");
        // The rest of the server goes on.
        assert_eq!(a.get("/healthz").await.0, StatusCode::OK);
    }
    drop(hold);

    // A provider that goes away after dsmon discovered it: the token request fails cleanly.
    let mut s = setup();
    let a = agent(&s);
    let cb = a.login_at_provider("alice@example.com", "/").await;
    s.provider.kill();
    let r = a.callback(&cb).await;
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    assert!(r.text().await.unwrap().contains("unavailable"));
}

/// The desktop app's sign-in core: the provider's "Desktop app" client, a loopback listener on an
/// ephemeral port, `open` standing in for the system browser.
fn desktop_oidc(issuer: &str, dir: &std::path::Path) -> dsmon::auth::oidc::Oidc {
    let text = format!(
        "[auth]\nissuer = \"{issuer}\"\nclient_id = \"{DESKTOP_CLIENT_ID}\"\nclient_secret = \"{DESKTOP_CLIENT_SECRET}\"\ntimeout = \"2s\"\n"
    );
    let cfg = dsmon::config::parse(&text, &dir.join("desktop.toml")).expect("desktop config");
    dsmon::auth::oidc::Oidc::new(cfg.auth.as_ref().expect("auth")).expect("oidc")
}

/// Signs in through the loopback listener as `email`: the "browser" first sends two stray requests
/// to the listener (which must ignore them), then logs in at the provider and comes back.
async fn desktop_sign_in(
    oidc: &dsmon::auth::oidc::Oidc,
    nonce: Option<String>,
    email: &'static str,
) -> Result<dsmon::auth::oidc::Verified, dsmon::auth::AuthError> {
    let (tx, rx) = tokio::sync::oneshot::channel::<String>();
    let browser = tokio::spawn(async move {
        let url = rx.await.expect("the sign-in opened no browser");
        let a = Agent::new(0);
        let redirect = loopback_redirect(&url);
        let back = a.provider_login(url.clone(), email, &redirect).await;
        let cb = reqwest::Url::parse(&back).expect("callback url");
        assert_eq!(cb.path(), "/callback", "{back}");
        let base = format!("http://127.0.0.1:{}", cb.port().expect("port"));
        // Strays: another path, and a callback with a state that is not this attempt's.
        let stray = a
            .http
            .get(format!("{base}/favicon.ico"))
            .send()
            .await
            .expect("stray");
        assert_eq!(stray.status(), StatusCode::NOT_FOUND);
        let forged = a
            .http
            .get(format!("{base}/callback?state=forged&code=x"))
            .send()
            .await
            .expect("forged");
        assert_eq!(forged.status(), StatusCode::BAD_REQUEST);
        let r = a.http.get(&back).send().await.expect("callback");
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r
            .text()
            .await
            .unwrap_or_default()
            .contains("return to the app"));
    });
    let r = dsmon::server::loopback::sign_in(
        oidc,
        nonce.as_deref(),
        move |u| tx.send(u.to_string()).map_err(|_| "no browser".to_string()),
        Duration::from_secs(30),
    )
    .await;
    browser.await.expect("browser task");
    r
}

async fn exchange(s: &Setup, id_token: &str) -> (StatusCode, serde_json::Value) {
    exchange_id_token(&reqwest::Client::new(), s.serve.port, id_token).await
}

async fn bearer_get(s: &Setup, session: &str, path: &str) -> StatusCode {
    reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}{path}", s.serve.port))
        .bearer_auth(session)
        .send()
        .await
        .expect("GET")
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desktop_loopback_sign_in_and_id_token_exchange_for_a_bearer_session() {
    let s = setup();
    let oidc = desktop_oidc(&s.provider.issuer, &s.d.dir);

    // Admin: the loopback sign-in verifies the ID token; the server takes it once for a session.
    let alice = desktop_sign_in(
        &oidc,
        Some(desktop_nonce(s.serve.port).await),
        "alice@example.com",
    )
    .await
    .expect("desktop sign-in");
    assert_eq!(alice.identity.email, "alice@example.com");
    assert!(alice.identity.email_verified);
    let (st, body) = exchange(&s, &alice.id_token).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["role"], "admin");
    let session = body["session"].as_str().expect("session").to_string();
    assert_eq!(
        bearer_get(&s, &session, "/api/history").await,
        StatusCode::OK
    );
    assert_eq!(bearer_get(&s, &session, "/api/users").await, StatusCode::OK);
    // A bearer request needs no Origin (no ambient credential to borrow).
    let r = reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{}/api/users/nobody@example.com",
            s.serve.port
        ))
        .bearer_auth(&session)
        .json(&json!({ "blocked": true }))
        .send()
        .await
        .expect("POST");
    assert_eq!(
        r.status(),
        StatusCode::NOT_FOUND,
        "unknown user, but not refused as cross-site"
    );
    // The same ID token a second time is refused.
    let (st, body) = exchange(&s, &alice.id_token).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or("")
            .contains("already exchanged"),
        "{body}"
    );
    // Garbage and a made-up session.
    let (st, _) = exchange(&s, "not.a.token").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(
        bearer_get(&s, "made-up", "/api/live").await,
        StatusCode::UNAUTHORIZED
    );

    // User: live yes, history no — the server's roles apply to the desktop.
    let bob = desktop_sign_in(
        &oidc,
        Some(desktop_nonce(s.serve.port).await),
        "bob@example.org",
    )
    .await
    .expect("bob");
    let (st, body) = exchange(&s, &bob.id_token).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["role"], "user");
    let bob_session = body["session"].as_str().expect("session").to_string();
    assert_eq!(
        bearer_get(&s, &bob_session, "/api/live").await,
        StatusCode::OK
    );
    assert_eq!(
        bearer_get(&s, &bob_session, "/api/history").await,
        StatusCode::FORBIDDEN
    );

    // A stranger's valid token gets no session.
    let stranger = desktop_sign_in(
        &oidc,
        Some(desktop_nonce(s.serve.port).await),
        "stranger@other.org",
    )
    .await
    .expect("stranger");
    let (st, body) = exchange(&s, &stranger.id_token).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{body}");

    // A token signed by a key the provider never published fails at the desktop already.
    s.provider.tamper(json!({ "bad_signature": true })).await;
    let e = desktop_sign_in(&oidc, None, "alice@example.com")
        .await
        .err()
        .expect("refused");
    assert!(matches!(e, dsmon::auth::AuthError::InvalidToken(_)), "{e}");

    // Logout with the bearer ends the session.
    let r = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/auth/logout", s.serve.port))
        .bearer_auth(&session)
        .send()
        .await
        .expect("logout");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        bearer_get(&s, &session, "/api/live").await,
        StatusCode::UNAUTHORIZED
    );

    let admin = signed_in(&s, "alice@example.com").await;
    let entries = audit(&admin).await;
    assert!(has_entry(&entries, "sign_in", "(desktop)"), "{entries:?}");
    assert!(
        has_entry(&entries, "sign_in_refused", "stranger@other.org"),
        "{entries:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desktop_sign_in_times_out_when_the_browser_never_comes_back() {
    let provider = Provider::start("http://127.0.0.1/auth/callback");
    let dir = tempfile::tempdir().expect("tempdir");
    let oidc = desktop_oidc(&provider.issuer, dir.path());
    let t = Instant::now();
    let e = dsmon::server::loopback::sign_in(&oidc, None, |_| Ok(()), Duration::from_millis(800))
        .await
        .err()
        .expect("timed out");
    assert!(matches!(e, dsmon::auth::AuthError::TimedOut(_)), "{e}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    // A browser that cannot be opened is an error at once.
    let e = dsmon::server::loopback::sign_in(
        &oidc,
        None,
        |_| Err("no browser".into()),
        Duration::from_secs(60),
    )
    .await
    .err()
    .expect("no browser");
    assert!(e.to_string().contains("no browser"), "{e}");
}
