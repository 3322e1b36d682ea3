//! The HTTP side of the webhook, chat, ntfy and Alertmanager notifiers: one client per notifier
//! (trusting its `ca_file` besides the system roots), a POST, and what came of it.

use std::path::Path;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use url::Url;

use super::text;
use super::Attempt;

/// The whole request, connect included.
pub const TIMEOUT: Duration = Duration::from_secs(10);
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How much of a refusal's body goes into the answer.
const BODY_CHARS: usize = 200;
/// How much of a body is read at most.
const BODY_BYTES: usize = 4096;

/// A request ready to be posted (built once, sent on every try).
#[derive(Debug, Clone)]
pub struct Request {
    pub url: Url,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Request {
    /// A JSON body.
    pub fn json(url: Url, body: &serde_json::Value) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Self {
            url,
            headers,
            body: serde_json::to_vec(body).unwrap_or_default(),
        }
    }

    /// Adds a header; a value that cannot be a header (control characters) is an error.
    pub fn header(&mut self, name: &'static str, value: &str) -> Result<(), String> {
        let v = HeaderValue::from_str(value)
            .map_err(|_| format!("header {name}: the value is not a valid header value"))?;
        self.headers.insert(HeaderName::from_static(name), v);
        Ok(())
    }

    /// Adds a header whose value is a credential: never printed by reqwest's Debug.
    pub fn secret_header(&mut self, name: HeaderName, value: &str) -> Result<(), String> {
        let mut v = HeaderValue::from_str(value)
            .map_err(|_| format!("header {name}: the credential is not a valid header value"))?;
        v.set_sensitive(true);
        self.headers.insert(name, v);
        Ok(())
    }
}

/// An HTTP client for one notifier.
pub fn client(ca_file: Option<&Path>) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .user_agent(concat!("dsmon/", env!("CARGO_PKG_VERSION")))
        .timeout(TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        // A receiver that redirects gets a failure with its status, not a re-sent (or, for
        // 301/302, silently dropped) body.
        .redirect(reqwest::redirect::Policy::none());
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|e| format!("ca_file {}: {e}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "ca_file {}: no PEM certificate in the file",
                path.display()
            ));
        }
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    b.build().map_err(|e| error_chain(&e))
}

/// POSTs `req`: a 2xx is delivered; 408, 425, 429 and 5xx and transport errors are worth another
/// try; any other status is refused for good (a 400 or 404 will not change by retrying).
pub async fn post(client: &reqwest::Client, req: &Request) -> Attempt {
    let sent = client
        .post(req.url.clone())
        .headers(req.headers.clone())
        .body(req.body.clone())
        .send()
        .await;
    let mut resp = match sent {
        Ok(r) => r,
        Err(e) => {
            return Attempt::Retry(format!(
                "{}: {}",
                text::origin(&req.url),
                error_chain(&e.without_url())
            ))
        }
    };
    let status = resp.status();
    let mut body = Vec::new();
    while body.len() < BODY_BYTES {
        match resp.chunk().await {
            Ok(Some(c)) => body.extend_from_slice(&c),
            _ => break,
        }
    }
    let code = status.as_u16();
    if status.is_success() {
        return Attempt::Done(format!("HTTP {code}"));
    }
    let text = String::from_utf8_lossy(&body);
    let text = text::one_line(text.trim());
    let answer = if text.is_empty() {
        format!("HTTP {code}")
    } else {
        format!("HTTP {code}: {}", text::truncate(&text, BODY_CHARS))
    };
    if status.is_server_error() || matches!(code, 408 | 425 | 429) {
        Attempt::Retry(answer)
    } else {
        Attempt::GiveUp(answer)
    }
}

/// An error and its causes, `a: b: c`, without repeats.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut src = e.source();
    while let Some(s) = src {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        src = s.source();
    }
    parts.join(": ")
}
