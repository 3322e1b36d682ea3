//! Sign-in for a desktop app (RFC 8252): the SYSTEM browser (Google refuses embedded webviews)
//! goes to the provider with authorization code + PKCE S256, and the provider sends it back to a
//! listener on 127.0.0.1 at an ephemeral port that this module opens for one sign-in. The listener
//! takes the one callback that carries this attempt's state, answers anything else with an error
//! page and goes on waiting, and gives up after `timeout`.

use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use tokio::sync::{mpsc, watch};

use dsmon_auth::oidc::{Oidc, Verified};
use dsmon_auth::AuthError;

/// How long the desktop app waits for the browser by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Deserialize)]
struct CallbackQuery {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// What the callback brought: the code, or the provider's error.
type Outcome = Result<String, String>;

#[derive(Clone)]
struct Listener {
    state: String,
    /// The listener's port: the Host of a callback must be this loopback address.
    port: u16,
    tx: mpsc::Sender<Outcome>,
}

fn page(status: StatusCode, title: &str, text: &str) -> Response {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    (
        status,
        Html(format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t} · dsmon</title></head>\
<body style=\"font-family:sans-serif;max-width:36em;margin:4em auto\"><h1>{t}</h1><p>{x}</p></body></html>",
            t = esc(title),
            x = esc(text)
        )),
    )
        .into_response()
}

async fn callback(
    State(l): State<Listener>,
    headers: axum::http::HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok());
    if !host.is_some_and(|h| crate::defence::loopback_host(h, Some(l.port))) {
        // A page that rebound its name to 127.0.0.1 must not reach the listener.
        tracing::warn!(
            host,
            "sign-in listener: a request for another host was refused"
        );
        return page(
            StatusCode::MISDIRECTED_REQUEST,
            "Not this address",
            "This sign-in listener answers only to its loopback address.",
        );
    }
    if q.state.as_deref() != Some(l.state.as_str()) {
        // Not this attempt (a stray or forged request): refuse it and keep waiting.
        tracing::warn!("sign-in listener: a callback without this attempt's state was ignored");
        return page(
            StatusCode::BAD_REQUEST,
            "Not this sign-in",
            "This address belongs to a dsmon sign-in in progress and was called with another state; it was ignored.",
        );
    }
    let outcome = match (q.code, q.error) {
        (_, Some(e)) => Err(match q.error_description {
            Some(d) => format!("{e}: {d}"),
            None => e,
        }),
        (Some(code), None) => Ok(code),
        (None, None) => Err("the provider sent no authorization code".into()),
    };
    let ok = outcome.is_ok();
    if l.tx.try_send(outcome).is_err() {
        return page(
            StatusCode::GONE,
            "Already used",
            "This sign-in has already been answered.",
        );
    }
    if ok {
        page(
            StatusCode::OK,
            "Back to dsmon",
            "The sign-in reached dsmon. You can close this tab and return to the app.",
        )
    } else {
        page(
            StatusCode::OK,
            "Sign-in refused",
            "The provider did not sign you in. Return to the app to try again.",
        )
    }
}

/// Runs one sign-in: opens `open(url)` (the system browser) at the provider and waits up to
/// `timeout` for it to come back to the loopback listener; then exchanges the code and verifies
/// the ID token. The token carries `nonce` (one a dsmon server issued, for the remote mode's
/// token exchange), else a random one of this attempt.
pub async fn sign_in(
    oidc: &Oidc,
    nonce: Option<&str>,
    open: impl FnOnce(&url::Url) -> Result<(), String>,
    timeout: Duration,
) -> Result<Verified, AuthError> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(|e| AuthError::Browser(format!("cannot listen on 127.0.0.1: {e}")))?;
    let port = listener
        .local_addr()
        .map_err(|e| AuthError::Browser(format!("cannot listen on 127.0.0.1: {e}")))?
        .port();
    let redirect = format!("http://127.0.0.1:{port}/callback");
    let (url, attempt) = oidc.authorize_url(Some(&redirect), nonce).await?;
    let (tx, mut rx) = mpsc::channel::<Outcome>(1);
    let app = Router::new()
        .route("/callback", get(callback))
        .with_state(Listener {
            state: attempt.state.clone(),
            port,
            tx,
        });
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let server = tokio::spawn(async move {
        let stop = async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::warn!(error = %e, "sign-in listener failed");
        }
    });
    tracing::info!(
        port,
        "waiting for the browser to come back from the sign-in provider"
    );
    let waited = match open(&url) {
        Err(e) => Err(AuthError::Browser(e)),
        Ok(()) => match tokio::time::timeout(timeout, rx.recv()).await {
            Err(_) => Err(AuthError::TimedOut(timeout)),
            Ok(None) => Err(AuthError::Browser("the sign-in listener stopped".into())),
            Ok(Some(Err(e))) => Err(AuthError::Refused(e)),
            Ok(Some(Ok(code))) => Ok(code),
        },
    };
    // The page has been answered; the listener closes (connections in flight finish first).
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
    oidc.finish(attempt, waited?).await
}

/// Opens `url` in the user's browser: the `BROWSER` environment variable (a `:`-separated list of
/// commands, `%s` standing for the URL, else the URL is appended), else `xdg-open`.
pub fn open_browser(url: &url::Url) -> Result<(), String> {
    let candidates: Vec<String> = match std::env::var("BROWSER") {
        Ok(b) if !b.trim().is_empty() => b.split(':').map(str::to_string).collect(),
        _ => vec!["xdg-open".to_string()],
    };
    let mut errors = Vec::new();
    for cmd in candidates {
        let mut words: Vec<String> = cmd.split_whitespace().map(str::to_string).collect();
        if words.is_empty() {
            continue;
        }
        if words.iter().any(|w| w.contains("%s")) {
            for w in &mut words {
                *w = w.replace("%s", url.as_str());
            }
        } else {
            words.push(url.to_string());
        }
        match std::process::Command::new(&words[0])
            .args(&words[1..])
            .stdin(std::process::Stdio::null())
            .spawn()
        {
            Ok(mut child) => {
                // Reap it whenever it ends; the browser may keep running.
                std::thread::spawn(move || child.wait());
                return Ok(());
            }
            Err(e) => errors.push(format!("{}: {e}", words[0])),
        }
    }
    Err(format!("cannot open a browser ({})", errors.join("; ")))
}
