//! A real OpenID Connect provider for the sign-in tests: npm `oidc-provider` run from
//! `tests/oidc/provider.mjs` (dependencies installed by `npm ci --prefix src-tauri/tests/oidc`), and
//! a client that signs in through it with plain HTTP and a cookie jar, as a browser would.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use reqwest::header::{HeaderMap, LOCATION, ORIGIN, SET_COOKIE};
use reqwest::redirect::Policy;
use reqwest::{Client, StatusCode};

use super::{signal, Dsmon, Serve};

pub const CLIENT_ID: &str = "dsmon-test";
pub const CLIENT_SECRET: &str = "test-client-secret-0123456789";
/// The desktop app's client ("Desktop app" at Google): loopback redirects on any port.
pub const DESKTOP_CLIENT_ID: &str = "dsmon-desktop-test";
pub const DESKTOP_CLIENT_SECRET: &str = "desktop-secret-not-confidential";

/// The provider, stopped on drop.
pub struct Provider {
    child: Child,
    pub issuer: String,
}

fn provider_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oidc")
}

impl Provider {
    /// Starts the provider with the server's client, whose redirect URI is `redirect`, and the
    /// desktop app's client.
    pub fn start(redirect: &str) -> Self {
        Self::start_as(redirect, "native")
    }

    /// The same for a client of OpenID Connect `application_type` `kind`: "native" allows http
    /// loopback redirect URIs on any port; "web" allows an https one on 127.0.0.1 (behind a proxy).
    pub fn start_as(redirect: &str, kind: &str) -> Self {
        let dir = provider_dir();
        assert!(
            dir.join("node_modules/oidc-provider").exists(),
            "run `npm ci --prefix src-tauri/tests/oidc` first (scripts/test.sh does)"
        );
        let settings = serde_json::json!({
            "clients": [{
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "redirect_uris": [redirect],
                "application_type": kind,
            }, {
                "client_id": DESKTOP_CLIENT_ID,
                "client_secret": DESKTOP_CLIENT_SECRET,
                "redirect_uris": ["http://127.0.0.1/callback"],
            }]
        });
        let mut child = Command::new("node")
            .arg(dir.join("provider.mjs"))
            .arg(settings.to_string())
            .current_dir(&dir)
            .stdout(Stdio::piped())
            .stderr(
                std::fs::File::create(
                    std::env::temp_dir()
                        .join(format!("dsmon-oidc-provider-{}.log", std::process::id())),
                )
                .map(Stdio::from)
                .unwrap_or_else(|_| Stdio::null()),
            )
            .spawn()
            .expect("node provider.mjs");
        let mut line = String::new();
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        out.read_line(&mut line).expect("provider's first line");
        // oidc-provider also writes notices to stdout: keep draining it (a closed pipe kills node).
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        let issuer = line
            .trim()
            .strip_prefix("issuer=")
            .unwrap_or_else(|| panic!("provider said {line:?}"))
            .to_string();
        Self { child, issuer }
    }

    /// Arms a one-shot change of the next ID token (see provider.mjs).
    pub async fn tamper(&self, change: serde_json::Value) {
        let r = Client::new()
            .post(format!("{}/test/tamper", self.issuer))
            .json(&change)
            .send()
            .await
            .expect("tamper");
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
    }

    /// An ID token for the account `login`, issued to `aud` and signed by `key` ("published",
    /// "new": a key published from now on, "unknown": a key never published; see provider.mjs).
    pub async fn mint(&self, login: &str, aud: &str, key: &str) -> String {
        self.mint_with(login, aud, key, serde_json::json!({})).await
    }

    /// The same with these `claims` added or overwritten (e.g. `{"nonce": "..."}`).
    pub async fn mint_with(
        &self,
        login: &str,
        aud: &str,
        key: &str,
        claims: serde_json::Value,
    ) -> String {
        let r = Client::new()
            .post(format!("{}/test/mint", self.issuer))
            .json(&serde_json::json!({ "login": login, "aud": aud, "key": key, "claims": claims }))
            .send()
            .await
            .expect("mint");
        assert_eq!(r.status(), StatusCode::OK);
        let v: serde_json::Value = r.json().await.expect("mint JSON");
        v["id_token"].as_str().expect("id_token").to_string()
    }

    /// Suspends (`true`) or restores the account `login` at the provider (see provider.mjs).
    pub async fn refuse(&self, login: &str, refused: bool) {
        let r = Client::new()
            .post(format!("{}/test/refuse", self.issuer))
            .json(&serde_json::json!({ "login": login, "refused": refused }))
            .send()
            .await
            .expect("refuse");
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
    }

    /// How many times the provider's JWKS has been fetched.
    pub async fn jwks_fetches(&self) -> u64 {
        let v: serde_json::Value = Client::new()
            .get(format!("{}/test/counters", self.issuer))
            .send()
            .await
            .expect("counters")
            .json()
            .await
            .expect("counters JSON");
        v["jwks"].as_u64().expect("jwks count")
    }

    pub fn kill(&mut self) {
        signal(self.child.id(), libc::SIGKILL);
        let _ = self.child.wait();
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        signal(self.child.id(), libc::SIGTERM);
        let _ = self.child.wait();
    }
}

/// The `[auth]` section for a dsmon on `d.port` signing in with `issuer`.
pub fn auth_toml(d: &Dsmon, issuer: &str) -> String {
    auth_toml_with(
        d,
        issuer,
        &["alice@example.com"],
        &[
            "bob@example.org",
            "dave@example.org",
            "eve@example.org",
            "*@corp.example",
        ],
    )
}

/// The same with these `admins` and `users`.
pub fn auth_toml_with(d: &Dsmon, issuer: &str, admins: &[&str], users: &[&str]) -> String {
    let list = |l: &[&str]| {
        l.iter()
            .map(|e| format!("\"{e}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "[auth]\nissuer = \"{issuer}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret_file = \"client_secret\"\ndesktop_client_id = \"{DESKTOP_CLIENT_ID}\"\nredirect_url = \"http://127.0.0.1:{}/auth/callback\"\nadmins = [{}]\nusers = [{}]\ntimeout = \"2s\"\n",
        d.port,
        list(admins),
        list(users)
    )
}

/// A dsmon configured with `rest` (nodes, collector) and sign-in through `issuer`, serving.
pub fn dsmon_with_auth(rest: &str, issuer: &str) -> (Dsmon, Serve) {
    dsmon_with_auth_toml(rest, |d| auth_toml(d, issuer))
}

/// A dsmon configured with `rest` and the `[auth]` section `auth` makes for it, serving.
pub fn dsmon_with_auth_toml(rest: &str, auth: impl FnOnce(&Dsmon) -> String) -> (Dsmon, Serve) {
    let d = Dsmon::new(rest);
    std::fs::write(d.dir.join("client_secret"), format!("{CLIENT_SECRET}\n")).expect("secret");
    let text = std::fs::read_to_string(&d.config).expect("config");
    std::fs::write(&d.config, format!("{text}{}", auth(&d))).expect("config");
    let s = Serve::start(&d);
    (d, s)
}

/// A nonce for one desktop sign-in from the dsmon on `port` (`POST /auth/nonce`), as the desktop
/// app's remote mode asks for it before it signs in at the provider.
pub async fn desktop_nonce(port: u16) -> String {
    let r = Client::new()
        .post(format!("http://127.0.0.1:{port}/auth/nonce"))
        .send()
        .await
        .expect("POST /auth/nonce");
    assert_eq!(r.status(), StatusCode::OK, "POST /auth/nonce");
    let v: serde_json::Value = r.json().await.expect("nonce JSON");
    v["nonce"].as_str().expect("nonce").to_string()
}

/// `POST /auth/token` `{"id_token"}` at the dsmon on `port` through `http`, as the desktop app's
/// remote mode exchanges its ID token: the status and the JSON answer (`Null` when not JSON).
pub async fn exchange_id_token(
    http: &Client,
    port: u16,
    id_token: &str,
) -> (StatusCode, serde_json::Value) {
    let r = http
        .post(format!("http://127.0.0.1:{port}/auth/token"))
        .json(&serde_json::json!({ "id_token": id_token }))
        .send()
        .await
        .expect("POST /auth/token");
    let status = r.status();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

/// The `redirect_uri` of a desktop sign-in's authorization URL: the app's loopback listener.
pub fn loopback_redirect(authorize_url: &str) -> String {
    let redirect = reqwest::Url::parse(authorize_url)
        .expect("authorization URL")
        .query_pairs()
        .find(|(k, _)| k == "redirect_uri")
        .map(|(_, v)| v.into_owned())
        .expect("redirect_uri");
    assert!(
        redirect.starts_with("http://127.0.0.1:") && redirect.ends_with("/callback"),
        "the desktop sign-in must listen on loopback: {redirect}"
    );
    redirect
}

/// A browser without a renderer: a cookie jar, redirects followed by hand.
pub struct Agent {
    pub http: Client,
    pub base: String,
}

/// What the provider's redirect back to dsmon looks like.
pub struct Callback(pub String);

impl Agent {
    pub fn new(port: u16) -> Self {
        Self::from_address(port, std::net::Ipv4Addr::LOCALHOST)
    }

    /// A browser whose connections come from the loopback address `from` (any of 127.0.0.0/8):
    /// another client for the server's per-client limits.
    pub fn from_address(port: u16, from: std::net::Ipv4Addr) -> Self {
        Self {
            http: Client::builder()
                .cookie_store(true)
                .redirect(Policy::none())
                .local_address(std::net::IpAddr::V4(from))
                .build()
                .expect("client"),
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    pub fn origin(&self) -> String {
        self.base.clone()
    }

    /// Starts a sign-in at dsmon and logs in at the provider as `email`; stops at the provider's
    /// redirect back to dsmon's callback, without following it.
    pub async fn login_at_provider(&self, email: &str, next: &str) -> Callback {
        let next: String = url::form_urlencoded::byte_serialize(next.as_bytes()).collect();
        let start = format!("{}/auth/login?next={next}", self.base);
        let stop = format!("{}/auth/callback", self.base);
        Callback(self.provider_login(start, email, &stop).await)
    }

    /// Follows redirects from `url`, logging in at the provider as `email` on the way, until the
    /// next address starts with `stop` (the client's redirect URI); returns that address.
    pub async fn provider_login(&self, mut url: String, email: &str, stop: &str) -> String {
        for _ in 0..20 {
            if url.starts_with(stop) {
                return url;
            }
            let r = self.http.get(&url).send().await.expect("GET");
            let status = r.status();
            let here = r.url().clone();
            if status.is_redirection() {
                let loc = r.headers()[LOCATION]
                    .to_str()
                    .expect("location")
                    .to_string();
                url = here.join(&loc).expect("join").to_string();
                continue;
            }
            let body = r.text().await.unwrap_or_default();
            assert_eq!(status, StatusCode::OK, "GET {url}: {body}");
            assert!(
                here.path().starts_with("/interaction/") && body.contains("name=\"email\""),
                "expected the provider's login form at {url}: {body}"
            );
            let action = here.join(&format!("{}/login", here.path())).expect("join");
            let r = self
                .http
                .post(action)
                .form(&[("email", email)])
                .send()
                .await
                .expect("POST login");
            assert!(r.status().is_redirection(), "login POST: {}", r.status());
            let loc = r.headers()[LOCATION]
                .to_str()
                .expect("location")
                .to_string();
            url = here.join(&loc).expect("join").to_string();
        }
        panic!("sign-in did not come back to dsmon");
    }

    /// Follows the callback: dsmon's answer (a redirect to `next` on success).
    pub async fn callback(&self, cb: &Callback) -> reqwest::Response {
        self.http.get(&cb.0).send().await.expect("callback")
    }

    /// Signs in as `email`; returns dsmon's answer to the callback.
    pub async fn sign_in(&self, email: &str) -> reqwest::Response {
        let cb = self.login_at_provider(email, "/live").await;
        self.callback(&cb).await
    }

    /// GET a dsmon path: status and body.
    pub async fn get(&self, path: &str) -> (StatusCode, HeaderMap, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("GET");
        let (s, h) = (r.status(), r.headers().clone());
        (s, h, r.text().await.unwrap_or_default())
    }

    /// POST JSON with this site's Origin (or `origin` when given; "" for none).
    pub async fn post(
        &self,
        path: &str,
        body: serde_json::Value,
        origin: Option<&str>,
    ) -> (StatusCode, String) {
        let mut req = self.http.post(format!("{}{path}", self.base)).json(&body);
        let origin = origin.map(str::to_string).unwrap_or_else(|| self.origin());
        if !origin.is_empty() {
            req = req.header(ORIGIN, origin);
        }
        let r = req.send().await.expect("POST");
        let s = r.status();
        (s, r.text().await.unwrap_or_default())
    }
}

/// The `Set-Cookie` header of `name`, if any.
pub fn set_cookie(h: &HeaderMap, name: &str) -> Option<String> {
    h.get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_string)
}
