//! Session lifetimes against a real OpenID Connect provider and `dsmon serve`, by the real clock:
//! the idle timeout, the absolute lifetime, the re-check with the provider (a new sign-in, which a
//! suspended account cannot pass), a role change ending the sessions, and a new sign-in in the same
//! browser ending the old session. One provider; two servers, because the absolute lifetime and
//! the re-check both count from the sign-in and one configuration shows only the shorter.

mod harness;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use harness::oidc::{auth_toml, dsmon_with_auth_toml, set_cookie, Agent, Provider};
use harness::{Dsmon, Serve};
use reqwest::header::COOKIE;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// A dsmon signing in with `p`, with these extra `[auth]` keys.
fn serve(p: &Provider, keys: &str) -> (Dsmon, Serve) {
    dsmon_with_auth_toml("", |d| format!("{}{keys}", auth_toml(d, &p.issuer)))
}

/// A browser (on the loopback address 127.0.0.`n`) signed in as `login`, and its session id.
async fn signed_in(s: &Serve, n: u8, login: &str) -> (Agent, String) {
    let a = Agent::from_address(s.port, Ipv4Addr::new(127, 0, 0, n));
    let id = sign_in_again(&a, login).await;
    (a, id)
}

/// Signs `a` in (again) as `login`; the new session id.
async fn sign_in_again(a: &Agent, login: &str) -> String {
    let r = a.sign_in(login).await;
    let cookie = set_cookie(r.headers(), "dsmon_session");
    let status = r.status();
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "sign-in of {login}: {}",
        r.text().await.unwrap_or_default()
    );
    let cookie = cookie.expect("a session cookie");
    let value = cookie.split(';').next().and_then(|c| c.split_once('='));
    value.expect("name=value").1.to_string()
}

/// `/api/me` with the browser's cookies: status and role.
async fn me(a: &Agent) -> (StatusCode, Value) {
    let (st, _, body) = a.get("/api/me").await;
    (st, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// `/api/me` with only this session id, as someone who copied the cookie would send it.
async fn me_with(s: &Serve, id: &str) -> StatusCode {
    reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/api/me", s.port))
        .header(COOKIE, format!("dsmon_session={id}"))
        .send()
        .await
        .expect("GET /api/me")
        .status()
}

/// Uses the session every second until `until` after `from`: the seconds elapsed at each answer
/// that was not 200, and the last answer.
async fn use_every_second(a: &Agent, from: Instant, until: Duration) -> Vec<(f64, StatusCode)> {
    let mut out = Vec::new();
    while from.elapsed() < until {
        out.push((from.elapsed().as_secs_f64(), me(a).await.0));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    out
}

/// Whether the audit log (read by a fresh Admin session) has `action` with `needle` in it.
async fn audited(s: &Serve, n: u8, action: &str, needle: &str) -> bool {
    let (admin, _) = signed_in(s, n, "alice@example.com").await;
    let (st, _, body) = admin.get("/api/audit?limit=500").await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let v: Value = serde_json::from_str(&body).expect("audit JSON");
    v["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .any(|e| e["action"] == action && e.to_string().contains(needle))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_end_idle_at_their_end_at_a_recheck_on_role_change_and_on_a_new_sign_in() {
    // A native client: the provider accepts this loopback redirect URI on any port.
    let provider = Provider::start("http://127.0.0.1/auth/callback");
    // Idle 3 s and an absolute end at 6 s (the re-check at its default, an hour).
    let (_d1, lifetimes) = serve(&provider, "session_idle = \"3s\"\nsession_ttl = \"6s\"\n");
    // A re-check at 4 s (the absolute end at its default, 12 hours).
    let (_d2, recheck) = serve(&provider, "session_idle = \"3s\"\nrecheck = \"4s\"\n");
    tokio::join!(
        idle_and_absolute(&lifetimes),
        a_recheck_needs_a_new_sign_in(&provider, &recheck),
    );
    role_change_and_new_sign_in(&lifetimes).await;
}

async fn idle_and_absolute(s: &Serve) {
    let (busy, _) = signed_in(s, 2, "bob@example.org").await;
    let start = Instant::now();
    let (idle, _) = signed_in(s, 3, "dave@example.org").await;
    let answers = use_every_second(&busy, start, Duration::from_millis(7500)).await;
    // The session's times are whole seconds: it lives past 5 s after its sign-in, but not 6 s.
    let alive: Vec<_> = answers.iter().filter(|(t, _)| *t < 4.8).collect();
    assert!(
        alive.iter().all(|(_, st)| *st == StatusCode::OK),
        "a session used every second lives past the idle timeout (3 s): {answers:?}"
    );
    assert!(alive.iter().any(|(t, _)| *t > 3.5), "{answers:?}");
    assert!(
        answers
            .iter()
            .filter(|(t, _)| *t > 6.5)
            .all(|(_, st)| *st == StatusCode::UNAUTHORIZED),
        "but not past its absolute lifetime (6 s): {answers:?}"
    );
    assert_eq!(
        me(&idle).await.0,
        StatusCode::UNAUTHORIZED,
        "a session unused for 7 s (idle timeout 3 s)"
    );

    // Idle alone: signed in, unused for 4 s, gone (its absolute end is 2 s further).
    let (idle, _) = signed_in(s, 3, "dave@example.org").await;
    assert_eq!(me(&idle).await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(me(&idle).await.0, StatusCode::UNAUTHORIZED, "idle for 4 s");
    assert!(audited(s, 4, "session_ended", "not used for 3s").await);
}

async fn a_recheck_needs_a_new_sign_in(p: &Provider, s: &Serve) {
    let (bob, first) = signed_in(s, 2, "bob@example.org").await;
    let start = Instant::now();
    let answers = use_every_second(&bob, start, Duration::from_millis(5500)).await;
    assert!(
        answers
            .iter()
            .filter(|(t, _)| *t < 2.8)
            .all(|(_, st)| *st == StatusCode::OK),
        "{answers:?}"
    );
    assert!(
        answers
            .iter()
            .filter(|(t, _)| *t > 4.5)
            .all(|(_, st)| *st == StatusCode::UNAUTHORIZED),
        "past the re-check (4 s), a session in use every second answers 401: {answers:?}"
    );
    assert_eq!(me_with(s, &first).await, StatusCode::UNAUTHORIZED);
    // ... until the user signs in again: the provider confirms the account.
    let second = sign_in_again(&bob, "bob@example.org").await;
    assert_ne!(first, second);
    assert_eq!(me(&bob).await.0, StatusCode::OK);
    assert!(audited(s, 4, "session_ended", "[auth] recheck").await);

    // Suspended at the provider: the session lasts until the re-check, then no new sign-in.
    p.refuse("bob@example.org", true).await;
    assert_eq!(me(&bob).await.0, StatusCode::OK, "not before the re-check");
    tokio::time::sleep(Duration::from_millis(4500)).await;
    assert_eq!(me(&bob).await.0, StatusCode::UNAUTHORIZED);
    let r = bob.sign_in("bob@example.org").await;
    assert_ne!(
        r.status(),
        StatusCode::SEE_OTHER,
        "a suspended account signed in"
    );
    assert!(set_cookie(r.headers(), "dsmon_session").is_none());
    let page = r.text().await.unwrap_or_default();
    assert!(page.contains("access_denied"), "{page}");
    assert_eq!(me(&bob).await.0, StatusCode::UNAUTHORIZED);
    p.refuse("bob@example.org", false).await;
}

async fn role_change_and_new_sign_in(s: &Serve) {
    // An Admin promotes a User: the User's session ends; a new sign-in has the new role.
    let (admin, _) = signed_in(s, 4, "alice@example.com").await;
    let (bob, old) = signed_in(s, 2, "bob@example.org").await;
    assert_eq!(me(&bob).await.1["role"], "user");
    let (st, body) = admin
        .post("/api/users/bob@example.org", json!({"role": "admin"}), None)
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(
        me_with(s, &old).await,
        StatusCode::UNAUTHORIZED,
        "the session id from before the role change"
    );
    let new = sign_in_again(&bob, "bob@example.org").await;
    assert_ne!(old, new);
    assert_eq!(me(&bob).await.1["role"], "admin");
    // Demoted (back to the configuration): the Admin session ends too.
    let (st, _) = admin
        .post("/api/users/bob@example.org", json!({"role": null}), None)
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(me_with(s, &new).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        bob.get("/api/history?from=-1h").await.0,
        StatusCode::UNAUTHORIZED,
        "no Admin reads with the old id"
    );

    // A new sign-in in the same browser ends the old session, as the same or another account.
    let first = sign_in_again(&bob, "bob@example.org").await;
    let second = sign_in_again(&bob, "bob@example.org").await;
    assert_ne!(first, second);
    assert_eq!(me_with(s, &first).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me_with(s, &second).await, StatusCode::OK);
    // Another account signing in, in a browser that holds that session.
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let base = format!("http://127.0.0.1:{}", s.port);
    jar.add_cookie_str(
        &format!("dsmon_session={second}; Path=/"),
        &base.parse().expect("URL"),
    );
    let other = Agent {
        http: reqwest::Client::builder()
            .cookie_provider(jar)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        base,
    };
    assert_eq!(me(&other).await.1["email"], "bob@example.org");
    sign_in_again(&other, "dave@example.org").await;
    assert_eq!(me(&other).await.1["email"], "dave@example.org");
    assert_eq!(
        me_with(s, &second).await,
        StatusCode::UNAUTHORIZED,
        "a sign-in as another account in that browser ended it"
    );
}
