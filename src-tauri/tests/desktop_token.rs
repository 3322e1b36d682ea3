//! The desktop token exchange is bound to the server (`POST /auth/nonce`, then `POST /auth/token`):
//! the desktop client is public (shared by every copy of the app and every dsmon server), so a
//! correctly signed ID token of it is accepted only when it carries a nonce THIS server issued and
//! has not seen used — kept in the store, so it holds across a restart. Tokens are minted by the
//! real provider with its real key (`/test/mint` in tests/oidc/provider.mjs).

mod harness;

use reqwest::StatusCode;
use serde_json::{json, Value};

use harness::oidc::{
    desktop_nonce, dsmon_with_auth, exchange_id_token, Provider, DESKTOP_CLIENT_ID,
};
use harness::Serve;

async fn exchange(port: u16, id_token: &str) -> (StatusCode, Value) {
    exchange_id_token(&reqwest::Client::new(), port, id_token).await
}

/// A desktop ID token for `login` with these claims, signed by the provider's published key.
async fn token(p: &Provider, login: &str, claims: Value) -> String {
    p.mint_with(login, DESKTOP_CLIENT_ID, "published", claims)
        .await
}

fn refused(st: StatusCode, body: &Value, why: &str) {
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{body}");
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains(why)),
        "expected {why:?}: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desktop_tokens_need_a_nonce_this_server_issued_once_across_restarts() {
    let provider = Provider::start("http://127.0.0.1/auth/callback");
    let (d, serve) = dsmon_with_auth("", &provider.issuer);
    let port = serve.port;

    // Correctly signed for the desktop client, but never asked for by this server.
    let bare = token(&provider, "alice@example.com", json!({})).await;
    let (st, body) = exchange(port, &bare).await;
    refused(st, &body, "no nonce");
    let foreign = token(
        &provider,
        "alice@example.com",
        json!({ "nonce": "issued-by-another-server" }),
    )
    .await;
    let (st, body) = exchange(port, &foreign).await;
    refused(st, &body, "not issued by this server");

    // The nonce route: a fresh 256-bit value each time.
    let n1 = desktop_nonce(port).await;
    assert!(n1.len() >= 43, "{n1}");
    assert_ne!(n1, desktop_nonce(port).await);

    // With a nonce this server issued: a session under the server's roles.
    let good = token(&provider, "alice@example.com", json!({ "nonce": n1 })).await;
    let (st, body) = exchange(port, &good).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["role"], "admin", "{body}");
    let session = body["session"].as_str().expect("session");
    let me = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/api/me"))
        .bearer_auth(session)
        .send()
        .await
        .expect("GET /api/me");
    assert_eq!(me.status(), StatusCode::OK);

    // The same token again, and another token with the same nonce: refused.
    let (st, body) = exchange(port, &good).await;
    refused(st, &body, "already exchanged");
    let again = token(&provider, "bob@example.org", json!({ "nonce": n1 })).await;
    let (st, body) = exchange(port, &again).await;
    refused(st, &body, "already used");

    // A nonce issued, the server restarted: the nonce's token is taken once after the restart,
    // and still refused after another one.
    let n2 = desktop_nonce(port).await;
    serve.stop();
    let serve = Serve::start(&d);
    let later = token(&provider, "bob@example.org", json!({ "nonce": n2 })).await;
    let (st, body) = exchange(port, &later).await;
    assert_eq!(
        st,
        StatusCode::OK,
        "an issued nonce survives a restart: {body}"
    );
    assert_eq!(body["role"], "user", "{body}");
    serve.stop();
    let _serve = Serve::start(&d);
    let (st, body) = exchange(port, &later).await;
    refused(st, &body, "already exchanged");
    // (Another account each time: the same claims in the same second make the same token.)
    let replay = token(&provider, "carol@corp.example", json!({ "nonce": n2 })).await;
    let (st, body) = exchange(port, &replay).await;
    refused(st, &body, "already used");
    // The nonce used before both restarts stays used too.
    let old = token(&provider, "dave@example.org", json!({ "nonce": n1 })).await;
    let (st, body) = exchange(port, &old).await;
    refused(st, &body, "already used");
}
