//! The TOML configuration: where it is found, how it is parsed, and every check made on it before
//! anything runs. A bad file is reported once, naming the file and the key, and nothing is written.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

pub mod settings;
use serde::Deserialize;

/// The file name looked for in the working directory, then in the platform config directory.
pub const DEFAULT_FILE_NAME: &str = "dsmon.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no configuration file found (looked for {tried}); pass --config PATH or copy dsmon.example.toml")]
    NotFound { tried: String },
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: {key}: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
}

pub type Result<T> = std::result::Result<T, ConfigError>;

/// A validated configuration. Paths inside it are absolute (relative ones in the file are taken
/// relative to the file's directory).
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this came from.
    pub path: PathBuf,
    pub collector: CollectorConfig,
    pub storage: StorageConfig,
    pub server: ServerConfig,
    pub nodes: Vec<NodeConfig>,
    /// Sign-in; `None` makes dsmon a single-user local tool (loopback TCP only, everyone is Admin).
    pub auth: Option<AuthConfig>,
    /// `[desktop]`: where the desktop app takes its data from (ignored by the other commands).
    pub desktop: DesktopMode,
}

/// `[desktop] mode`: the desktop app's own collector and database, or a `dsmon serve` server.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DesktopMode {
    /// Poll `[[nodes]]` and log to `[storage] path` inside the app.
    #[default]
    Local,
    /// Show the data of the `dsmon serve` at this address (`server_url`), with its roles.
    Remote(Url),
}

/// `[auth]`: OpenID Connect sign-in (Google by default) and who gets which role.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthConfig {
    /// The provider; every endpoint comes from its discovery document.
    pub issuer: Url,
    pub client_id: String,
    pub client_secret: Secret,
    /// Where the provider sends the browser back to `dsmon serve`; its path is `/auth/callback`.
    /// Required by `dsmon serve`; the desktop app signs in through a loopback address of its own.
    pub redirect_url: Option<Url>,
    /// `dsmon serve` only: the client id of the desktop app. ID tokens issued to it may be
    /// exchanged at `POST /auth/token` for a session (the desktop app's remote mode).
    pub desktop_client_id: Option<String>,
    /// Always Admin (lowercased emails); cannot be blocked or demoted from the users page.
    pub admins: Vec<String>,
    /// Users by exact email, or `*@domain` matched against the verified `hd` claim.
    pub users: Vec<UserRule>,
    pub session_ttl: Duration,
    /// Budget for each request to the provider.
    pub timeout: Duration,
}

/// An entry of `[auth] users`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserRule {
    Email(String),
    /// `*@domain`: a Google Workspace domain, matched against the ID token's `hd` claim.
    Domain(String),
}

/// A secret that never shows in logs, `Debug` output or error messages.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Self {
        Self(s)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Where `dsmon serve` answers HTTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    Tcp(std::net::SocketAddr),
    /// A unix socket (for a reverse proxy on the same machine), created mode 0660.
    Unix(PathBuf),
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Tcp(a) => write!(f, "http://{a}"),
            Listen::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub listen: Listen,
    /// `tls_cert` / `tls_key`: serve https on the TCP address directly (re-read on SIGHUP).
    pub tls: Option<TlsFiles>,
}

/// A PEM certificate chain and its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: Listen::Tcp(std::net::SocketAddr::from(([127, 0, 0, 1], 8080))),
            tls: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CollectorConfig {
    /// One logged row per node per interval, stamped at wall-clock multiples of it.
    pub log_interval: Duration,
    /// Live polling period.
    pub live_interval: Duration,
    /// Budget for one node's whole poll (all its requests).
    pub timeout: Duration,
}

impl CollectorConfig {
    /// Connect timeout: at most one second, and never more than the whole budget.
    pub fn connect_timeout(&self) -> Duration {
        self.timeout.min(Duration::from_secs(1))
    }
}

impl Default for CollectorConfig {
    fn default() -> Self {
        Self {
            log_interval: Duration::from_secs(600),
            live_interval: Duration::from_secs(2),
            timeout: Duration::from_secs(3),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct StorageConfig {
    pub path: PathBuf,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NodeConfig {
    pub name: String,
    /// Base URL of the agent; may carry a path prefix (a proxy, or a streaming parent's `/host/NAME`).
    pub url: Url,
    /// Mount point whose disk use is reported.
    pub disk: String,
    /// Network interface; `None` means all physical interfaces (`system.net`).
    pub interface: Option<String>,
    /// Extra CA certificate (PEM) trusted for this agent's https.
    pub ca_file: Option<PathBuf>,
}

// ---- the file as written -------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    collector: RawCollector,
    #[serde(default)]
    storage: RawStorage,
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    nodes: Vec<RawNode>,
    auth: Option<RawAuth>,
    desktop: Option<RawDesktop>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDesktop {
    mode: Option<String>,
    server_url: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    issuer: Option<String>,
    client_id: String,
    client_secret: Option<String>,
    client_secret_file: Option<PathBuf>,
    redirect_url: Option<String>,
    desktop_client_id: Option<String>,
    #[serde(default)]
    admins: Vec<String>,
    #[serde(default)]
    users: Vec<String>,
    #[serde(default, deserialize_with = "de_duration")]
    session_ttl: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    timeout: Option<Duration>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCollector {
    #[serde(default, deserialize_with = "de_duration")]
    log_interval: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    live_interval: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    timeout: Option<Duration>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    path: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    name: String,
    url: String,
    disk: Option<String>,
    interface: Option<String>,
    ca_file: Option<PathBuf>,
}

fn de_duration<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Duration>, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// Parses a human duration such as `10m`, `2s`, `500ms`, `1h 30m`.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        format!("invalid duration {text:?} ({e}); write e.g. \"10m\", \"2s\" or \"500ms\"")
    })
}

// ---- finding and loading -------------------------------------------------------------------

/// Where the configuration is looked for when `--config` is not given.
pub fn default_locations() -> Vec<PathBuf> {
    let mut v = vec![PathBuf::from(DEFAULT_FILE_NAME)];
    if let Some(dir) = dirs::config_dir() {
        v.push(dir.join("dsmon").join(DEFAULT_FILE_NAME));
    }
    v
}

/// The platform data directory's default database path.
pub fn default_storage_path() -> PathBuf {
    dirs::data_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("dsmon")
        .join("dsmon.sqlite3")
}

/// Finds the file (the explicit one, or the first default location that exists) and loads it.
pub fn locate_and_load(explicit: Option<&Path>) -> Result<Config> {
    match explicit {
        Some(p) => load(p),
        None => {
            let candidates = default_locations();
            match candidates.iter().find(|p| p.is_file()) {
                Some(p) => load(p),
                None => Err(ConfigError::NotFound {
                    tried: candidates
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                }),
            }
        }
    }
}

pub fn load(path: &Path) -> Result<Config> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

/// Parses and validates `text` as if read from `path` (used for messages and relative paths).
pub fn parse(text: &str, path: &Path) -> Result<Config> {
    let raw = parse_raw(text, path)?;
    validate(raw, path)
}

fn parse_raw(text: &str, path: &Path) -> Result<RawConfig> {
    let de = toml::Deserializer::parse(text).map_err(|e| syntax_error(text, path, &e))?;
    serde_path_to_error::deserialize::<_, RawConfig>(de).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        if key.is_empty() || key == "." {
            syntax_error(text, path, &inner)
        } else {
            ConfigError::Invalid {
                path: path.to_path_buf(),
                key,
                message: inner.message().to_string(),
            }
        }
    })
}

fn syntax_error(text: &str, path: &Path, e: &toml::de::Error) -> ConfigError {
    let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
    ConfigError::Syntax {
        path: path.to_path_buf(),
        line,
        column,
        message: e.message().trim().to_string(),
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn validate(raw: RawConfig, path: &Path) -> Result<Config> {
    let invalid = |key: String, message: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        key,
        message,
    };
    let base_dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let base_dir = std::path::absolute(&base_dir).unwrap_or(base_dir);

    let defaults = CollectorConfig::default();
    let collector = CollectorConfig {
        log_interval: raw.collector.log_interval.unwrap_or(defaults.log_interval),
        live_interval: raw
            .collector
            .live_interval
            .unwrap_or(defaults.live_interval),
        timeout: raw.collector.timeout.unwrap_or(defaults.timeout),
    };
    let whole_seconds = |d: Duration| d.subsec_nanos() == 0 && d.as_secs() >= 1;
    if !whole_seconds(collector.log_interval) {
        return Err(invalid(
            "collector.log_interval".into(),
            "must be a whole number of seconds, at least 1s".into(),
        ));
    }
    if collector.log_interval > Duration::from_secs(86_400) {
        return Err(invalid(
            "collector.log_interval".into(),
            "must be at most 24h".into(),
        ));
    }
    if collector.live_interval < Duration::from_millis(100) {
        return Err(invalid(
            "collector.live_interval".into(),
            "must be at least 100ms".into(),
        ));
    }
    if collector.timeout < Duration::from_millis(10) {
        return Err(invalid(
            "collector.timeout".into(),
            "must be at least 10ms".into(),
        ));
    }
    if collector.timeout >= collector.log_interval {
        return Err(invalid(
            "collector.timeout".into(),
            format!(
                "must be shorter than collector.log_interval ({} >= {})",
                humantime::format_duration(collector.timeout),
                humantime::format_duration(collector.log_interval)
            ),
        ));
    }

    let storage = StorageConfig {
        path: match raw.storage.path {
            Some(p) if p.as_os_str().is_empty() => {
                return Err(invalid("storage.path".into(), "must not be empty".into()))
            }
            Some(p) => base_dir.join(p),
            None => default_storage_path(),
        },
    };

    let auth = match raw.auth {
        Some(a) => {
            Some(validate_auth(a, &base_dir).map_err(|(k, m)| invalid(format!("auth.{k}"), m))?)
        }
        None => None,
    };

    let mut server = match raw.server.listen {
        None => ServerConfig::default(),
        Some(text) => ServerConfig {
            listen: parse_listen(&text, &base_dir)
                .map_err(|m| invalid("server.listen".into(), m))?,
            tls: None,
        },
    };
    server.tls = validate_tls(
        raw.server.tls_cert,
        raw.server.tls_key,
        &server.listen,
        &base_dir,
    )
    .map_err(|(k, m)| invalid(format!("server.{k}"), m))?;
    if auth.is_none() {
        match &server.listen {
            Listen::Tcp(a) if a.ip().is_loopback() => {}
            Listen::Tcp(a) => {
                return Err(invalid(
                    "server.listen".into(),
                    format!("\"{a}\" is not a loopback address: without [auth] (sign-in) dsmon is a single-user local tool and serves only on loopback"),
                ))
            }
            Listen::Unix(_) => {
                return Err(invalid(
                    "server.listen".into(),
                    "a unix socket is for a reverse proxy, which could expose dsmon beyond this machine: configure [auth] (sign-in) first, or listen on loopback".into(),
                ))
            }
        }
    }

    let mut names = HashSet::new();
    let mut nodes = Vec::with_capacity(raw.nodes.len());
    for (i, n) in raw.nodes.into_iter().enumerate() {
        let key = |field: &str| format!("nodes[{i}].{field}");
        let name = n.name.trim().to_string();
        if name.is_empty() {
            return Err(invalid(key("name"), "must not be empty".into()));
        }
        if name.len() > 128 || name.chars().any(|c| c.is_control() || c == ',') {
            return Err(invalid(
                key("name"),
                format!("{name:?}: at most 128 characters, no commas or control characters"),
            ));
        }
        if !names.insert(name.clone()) {
            return Err(invalid(
                key("name"),
                format!("duplicate node name {name:?}"),
            ));
        }
        let url = parse_node_url(&n.url).map_err(|m| invalid(key("url"), m))?;
        let disk = n.disk.unwrap_or_else(|| "/".to_string());
        if !disk.starts_with('/') {
            return Err(invalid(
                key("disk"),
                format!("{disk:?}: must be an absolute mount point such as \"/\" or \"/data\""),
            ));
        }
        let interface = match n.interface {
            Some(s) if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c == '/') => {
                return Err(invalid(
                    key("interface"),
                    format!("{s:?}: not an interface name"),
                ))
            }
            other => other,
        };
        let ca_file = match n.ca_file {
            Some(p) => {
                let p = base_dir.join(p);
                if url.scheme() != "https" {
                    return Err(invalid(
                        key("ca_file"),
                        "only meaningful with an https url".into(),
                    ));
                }
                if !p.is_file() {
                    return Err(invalid(
                        key("ca_file"),
                        format!("{}: no such file", p.display()),
                    ));
                }
                Some(p)
            }
            None => None,
        };
        nodes.push(NodeConfig {
            name,
            url,
            disk,
            interface,
            ca_file,
        });
    }

    let desktop = validate_desktop(raw.desktop.unwrap_or_default(), auth.is_some())
        .map_err(|(k, m)| invalid(format!("desktop.{k}"), m))?;

    Ok(Config {
        path: path.to_path_buf(),
        collector,
        storage,
        server,
        nodes,
        auth,
        desktop,
    })
}

fn is_loopback(u: &Url) -> bool {
    match u.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Checks `[desktop]`; an error is (key under `desktop.`, message).
fn validate_desktop(
    d: RawDesktop,
    has_auth: bool,
) -> std::result::Result<DesktopMode, (String, String)> {
    let err = |k: &str, m: String| (k.to_string(), m);
    match d.mode.as_deref().map(str::trim).unwrap_or("local") {
        "local" => {
            if d.server_url.is_some() {
                return Err(err("server_url", "only used with mode = \"remote\"".into()));
            }
            Ok(DesktopMode::Local)
        }
        "remote" => {
            let text = d.server_url.as_deref().map(str::trim).unwrap_or("");
            if text.is_empty() {
                return Err(err(
                    "server_url",
                    "mode = \"remote\" needs the server's address, e.g. \"https://monitor.example.com\"".into(),
                ));
            }
            let u = Url::parse(text)
                .map_err(|e| err("server_url", format!("{text:?}: not a URL ({e})")))?;
            let scheme_ok = u.scheme() == "https" || (u.scheme() == "http" && is_loopback(&u));
            if !scheme_ok
                || u.query().is_some()
                || u.fragment().is_some()
                || !u.username().is_empty()
            {
                return Err(err(
                    "server_url",
                    format!("{text:?}: must be an https address without query or credentials (plain http only on loopback)"),
                ));
            }
            if !has_auth {
                return Err(err(
                    "mode",
                    "remote mode signs in to the server: configure [auth] with the desktop client"
                        .into(),
                ));
            }
            Ok(DesktopMode::Remote(u))
        }
        other => Err(err(
            "mode",
            format!("{other:?}: write \"local\" or \"remote\""),
        )),
    }
}

/// Checks `[auth]`; an error is (key under `auth.`, message). The secret never appears in a message.
fn validate_auth(a: RawAuth, base_dir: &Path) -> std::result::Result<AuthConfig, (String, String)> {
    let err = |k: &str, m: String| (k.to_string(), m);
    let issuer_text = a.issuer.as_deref().unwrap_or("https://accounts.google.com");
    let issuer = Url::parse(issuer_text.trim())
        .map_err(|e| err("issuer", format!("{issuer_text:?}: not a URL ({e})")))?;
    let loopback = is_loopback;
    match issuer.scheme() {
        "https" => {}
        "http" if loopback(&issuer) => {}
        _ => {
            return Err(err(
                "issuer",
                format!("{issuer_text:?}: the issuer must use https (plain http only on loopback, for tests)"),
            ))
        }
    }
    if issuer.query().is_some() || issuer.fragment().is_some() {
        return Err(err(
            "issuer",
            format!("{issuer_text:?}: an issuer has no query or fragment"),
        ));
    }
    let client_id = a.client_id.trim().to_string();
    if client_id.is_empty() {
        return Err(err("client_id", "must not be empty".into()));
    }
    let client_secret = match (a.client_secret, a.client_secret_file) {
        (Some(_), Some(_)) => {
            return Err(err(
                "client_secret_file",
                "give either client_secret or client_secret_file, not both".into(),
            ))
        }
        (None, None) => {
            return Err(err(
                "client_secret_file",
                "missing: give client_secret_file (a file holding the secret) or client_secret"
                    .into(),
            ))
        }
        (Some(s), None) => s.trim().to_string(),
        (None, Some(p)) => {
            let p = base_dir.join(p);
            std::fs::read_to_string(&p)
                .map_err(|e| {
                    err(
                        "client_secret_file",
                        format!("{}: cannot read ({e})", p.display()),
                    )
                })?
                .trim()
                .to_string()
        }
    };
    if client_secret.is_empty() {
        return Err(err("client_secret", "the client secret is empty".into()));
    }
    let redirect_url = match a.redirect_url.as_deref() {
        None => None,
        Some(text) => {
            let u = Url::parse(text.trim())
                .map_err(|e| err("redirect_url", format!("{text:?}: not a URL ({e})")))?;
            if !matches!(u.scheme(), "http" | "https") || u.path() != "/auth/callback" {
                return Err(err(
                    "redirect_url",
                    format!(
                        "{text:?}: must be this server's http(s) address ending in /auth/callback, e.g. \"https://monitor.example.com/auth/callback\""
                    ),
                ));
            }
            if u.scheme() == "http" && !loopback(&u) {
                return Err(err(
                    "redirect_url",
                    format!("{text:?}: sign-in cookies need https (plain http only on loopback)"),
                ));
            }
            Some(u)
        }
    };
    let desktop_client_id = match a.desktop_client_id.as_deref().map(str::trim) {
        Some("") => return Err(err("desktop_client_id", "must not be empty".into())),
        Some(id) => Some(id.to_string()),
        None => None,
    };
    let email_ok = |e: &str| {
        let mut parts = e.splitn(2, '@');
        matches!((parts.next(), parts.next()), (Some(l), Some(d)) if !l.is_empty() && d.contains('.') && !d.contains('@') && !e.contains(char::is_whitespace))
    };
    let mut admins = Vec::new();
    for (i, e) in a.admins.iter().enumerate() {
        let e = e.trim().to_lowercase();
        if !email_ok(&e) || e.starts_with("*@") {
            return Err(err(
                &format!("admins[{i}]"),
                format!(
                    "{e:?}: write one email address per admin (domains are not allowed for admins)"
                ),
            ));
        }
        admins.push(e);
    }
    let mut users = Vec::new();
    for (i, e) in a.users.iter().enumerate() {
        let e = e.trim().to_lowercase();
        if let Some(domain) = e.strip_prefix("*@") {
            if !email_ok(&format!("x@{domain}")) {
                return Err(err(&format!("users[{i}]"), format!("{e:?}: not a domain")));
            }
            users.push(UserRule::Domain(domain.to_string()));
        } else if email_ok(&e) {
            users.push(UserRule::Email(e));
        } else {
            return Err(err(
                &format!("users[{i}]"),
                format!("{e:?}: write an email address or \"*@domain\""),
            ));
        }
    }
    let session_ttl = a.session_ttl.unwrap_or(Duration::from_secs(12 * 3600));
    if session_ttl < Duration::from_secs(60) || session_ttl > Duration::from_secs(90 * 86_400) {
        return Err(err("session_ttl", "must be between 1m and 90d".into()));
    }
    let timeout = a.timeout.unwrap_or(Duration::from_secs(10));
    if timeout < Duration::from_millis(100) || timeout > Duration::from_secs(60) {
        return Err(err("timeout", "must be between 100ms and 60s".into()));
    }
    Ok(AuthConfig {
        issuer,
        client_id,
        client_secret: Secret::new(client_secret),
        redirect_url,
        desktop_client_id,
        admins,
        users,
        session_ttl,
        timeout,
    })
}

/// `tls_cert` and `tls_key`: both or neither, existing files, on a TCP address (behind a proxy on a
/// unix socket, the proxy terminates TLS).
fn validate_tls(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    listen: &Listen,
    base_dir: &Path,
) -> std::result::Result<Option<TlsFiles>, (String, String)> {
    let (cert, key) = match (cert, key) {
        (None, None) => return Ok(None),
        (Some(c), Some(k)) => (base_dir.join(c), base_dir.join(k)),
        (Some(_), None) => return Err(("tls_key".into(), "tls_cert needs tls_key too".into())),
        (None, Some(_)) => return Err(("tls_cert".into(), "tls_key needs tls_cert too".into())),
    };
    if let Listen::Unix(_) = listen {
        return Err((
            "tls_cert".into(),
            "TLS is for a TCP listen address; on a unix socket the reverse proxy terminates TLS"
                .into(),
        ));
    }
    for (k, p) in [("tls_cert", &cert), ("tls_key", &key)] {
        if !p.is_file() {
            return Err((k.into(), format!("{}: no such file", p.display())));
        }
    }
    Ok(Some(TlsFiles { cert, key }))
}

fn parse_listen(text: &str, base_dir: &Path) -> std::result::Result<Listen, String> {
    if let Some(path) = text.strip_prefix("unix:") {
        if path.is_empty() {
            return Err(
                "\"unix:\" needs a socket path, e.g. \"unix:/run/dsmon/dsmon.sock\"".into(),
            );
        }
        return Ok(Listen::Unix(base_dir.join(path)));
    }
    let addr: std::net::SocketAddr = text
        .parse()
        .map_err(|_| format!("{text:?}: write an address and port such as \"127.0.0.1:8080\", or \"unix:/path/to.sock\""))?;
    Ok(Listen::Tcp(addr))
}

fn parse_node_url(text: &str) -> std::result::Result<Url, String> {
    let url = Url::parse(text.trim()).map_err(|e| format!("{text:?}: not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{text:?}: scheme must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{text:?}: has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(format!(
            "{text:?}: must not carry a query, fragment or credentials"
        ));
    }
    Ok(url)
}

impl Config {
    /// The embedded defaults: no nodes, the default intervals and database path.
    pub fn defaults() -> Self {
        Self {
            path: PathBuf::from("(defaults)"),
            collector: CollectorConfig::default(),
            storage: StorageConfig {
                path: default_storage_path(),
            },
            server: ServerConfig::default(),
            nodes: Vec::new(),
            auth: None,
            desktop: DesktopMode::Local,
        }
    }

    /// Warnings worth printing at start: the configuration works but may not do what is meant.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.nodes.is_empty() {
            w.push(format!("{}: no [[nodes]] configured", self.path.display()));
        }
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Config> {
        parse(text, Path::new("/etc/dsmon/test.toml"))
    }

    fn err(text: &str) -> String {
        match p(text) {
            Ok(_) => panic!("expected an error for {text}"),
            Err(e) => e.to_string(),
        }
    }

    const NODE: &str = "[[nodes]]\nname = \"n1\"\nurl = \"http://10.0.0.1:19999\"\n";

    #[test]
    fn defaults_and_relative_paths() {
        let c = p(&format!("[storage]\npath = \"db/x.sqlite3\"\n{NODE}")).unwrap();
        assert_eq!(c.collector, CollectorConfig::default());
        assert_eq!(c.storage.path, PathBuf::from("/etc/dsmon/db/x.sqlite3"));
        assert_eq!(c.nodes[0].disk, "/");
        assert_eq!(c.nodes[0].interface, None);
        assert_eq!(c.nodes[0].url.as_str(), "http://10.0.0.1:19999/");
    }

    #[test]
    fn example_file_is_valid() {
        let text = include_str!("../../../../dsmon.example.toml");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), "x").unwrap();
        let c = parse(text, &dir.path().join("dsmon.toml")).unwrap();
        assert_eq!(c.collector.log_interval, Duration::from_secs(600));
        assert!(!c.nodes.is_empty());
    }

    #[test]
    fn durations() {
        let c =
            p("[collector]\nlog_interval = \"5s\"\nlive_interval = \"500ms\"\ntimeout = \"1s\"\n")
                .unwrap();
        assert_eq!(c.collector.log_interval, Duration::from_secs(5));
        assert_eq!(c.collector.live_interval, Duration::from_millis(500));
        assert_eq!(c.collector.connect_timeout(), Duration::from_secs(1));
        let e = err("[collector]\ntimeout = \"3x\"\n");
        assert!(
            e.starts_with("/etc/dsmon/test.toml: collector.timeout: invalid duration \"3x\""),
            "{e}"
        );
    }

    #[test]
    fn timeout_must_be_below_log_interval() {
        let e = err("[collector]\nlog_interval = \"5s\"\ntimeout = \"5s\"\n");
        assert!(
            e.contains("collector.timeout: must be shorter than collector.log_interval"),
            "{e}"
        );
    }

    #[test]
    fn unknown_keys_name_the_key() {
        let e = err("[collector]\nlog_intervall = \"5s\"\n");
        assert!(
            e.contains("test.toml") && e.contains("log_intervall"),
            "{e}"
        );
        let e = err(&format!("{NODE}port = 3\n"));
        assert!(e.contains("nodes[0]") && e.contains("port"), "{e}");
        let e = err("[colector]\n");
        assert!(e.contains("colector"), "{e}");
    }

    #[test]
    fn duplicate_names_and_bad_urls() {
        let e = err(&format!("{NODE}{NODE}"));
        assert!(
            e.contains("nodes[1].name: duplicate node name \"n1\""),
            "{e}"
        );
        let e = err("[[nodes]]\nname = \"a\"\nurl = \"10.0.0.1:19999\"\n");
        assert!(e.contains("nodes[0].url"), "{e}");
        let e = err("[[nodes]]\nname = \"a\"\nurl = \"ftp://10.0.0.1\"\n");
        assert!(
            e.contains("nodes[0].url") && e.contains("http or https"),
            "{e}"
        );
        let e = err("[[nodes]]\nname = \"a\"\nurl = \"http://10.0.0.1\"\ndisk = \"data\"\n");
        assert!(e.contains("nodes[0].disk"), "{e}");
        let e = err("[[nodes]]\nurl = \"http://10.0.0.1\"\n");
        assert!(e.contains("name"), "{e}");
    }

    const AUTH: &str = "[auth]\nissuer = \"http://127.0.0.1:9\"\nclient_id = \"dsmon\"\nclient_secret = \"s3cret-value\"\nredirect_url = \"https://monitor.example.com/auth/callback\"\n";

    #[test]
    fn listen_addresses() {
        assert_eq!(p("").unwrap().server, ServerConfig::default());
        let c = p(&format!(
            "[server]\nlisten = \"unix:run/dsmon.sock\"\n{AUTH}"
        ))
        .unwrap();
        assert_eq!(
            c.server.listen,
            Listen::Unix(PathBuf::from("/etc/dsmon/run/dsmon.sock"))
        );
        let c = p("[server]\nlisten = \"[::1]:9000\"\n").unwrap();
        assert_eq!(c.server.listen.to_string(), "http://[::1]:9000");
        let e = err("[server]\nlisten = \"localhost\"\n");
        assert!(e.contains("server.listen"), "{e}");
    }

    #[test]
    fn tls_files_both_existing_and_on_tcp() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["c.pem", "k.pem"] {
            std::fs::write(dir.path().join(f), "x").unwrap();
        }
        let path = dir.path().join("dsmon.toml");
        let parse_here = |server: &str| parse(&format!("[server]\n{server}\n{AUTH}"), &path);
        let c = parse_here("tls_cert = \"c.pem\"\ntls_key = \"k.pem\"").unwrap();
        assert_eq!(
            c.server.tls,
            Some(TlsFiles {
                cert: dir.path().join("c.pem"),
                key: dir.path().join("k.pem")
            })
        );
        let e = parse_here("tls_cert = \"c.pem\"").unwrap_err().to_string();
        assert!(
            e.contains("server.tls_key: tls_cert needs tls_key too"),
            "{e}"
        );
        let e = parse_here("tls_cert = \"c.pem\"\ntls_key = \"nope.pem\"")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("server.tls_key") && e.contains("no such file"),
            "{e}"
        );
        let e =
            parse_here("listen = \"unix:/run/x.sock\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"")
                .unwrap_err()
                .to_string();
        assert!(
            e.contains("server.tls_cert: TLS is for a TCP listen address"),
            "{e}"
        );
    }

    #[test]
    fn without_auth_only_loopback_tcp() {
        let e = err("[server]\nlisten = \"0.0.0.0:8080\"\n");
        assert!(
            e.contains("server.listen: \"0.0.0.0:8080\" is not a loopback address"),
            "{e}"
        );
        let e = err("[server]\nlisten = \"unix:/run/dsmon/dsmon.sock\"\n");
        assert!(
            e.contains("server.listen: a unix socket") && e.contains("[auth]"),
            "{e}"
        );
        // With sign-in configured any address is allowed.
        let c = p(&format!("[server]\nlisten = \"0.0.0.0:8080\"\n{AUTH}")).unwrap();
        assert_eq!(c.server.listen.to_string(), "http://0.0.0.0:8080");
    }

    #[test]
    fn desktop_section() {
        assert_eq!(p("").unwrap().desktop, DesktopMode::Local);
        let c = p(&format!(
            "[desktop]\nmode = \"remote\"\nserver_url = \"https://monitor.example.com\"\n{AUTH}"
        ))
        .unwrap();
        assert_eq!(
            c.desktop,
            DesktopMode::Remote(Url::parse("https://monitor.example.com").unwrap())
        );
        // The desktop app signs in on a loopback address of its own: no redirect_url needed.
        let no_redirect = AUTH.replace(
            "redirect_url = \"https://monitor.example.com/auth/callback\"\n",
            "",
        );
        assert!(p(&no_redirect)
            .unwrap()
            .auth
            .unwrap()
            .redirect_url
            .is_none());
        for (text, want) in [
            ("[desktop]\nmode = \"remote\"\n", "desktop.server_url"),
            ("[desktop]\nmode = \"cloud\"\n", "desktop.mode"),
            (
                "[desktop]\nmode = \"remote\"\nserver_url = \"http://monitor.example.com\"\n",
                "desktop.server_url",
            ),
            (
                "[desktop]\nserver_url = \"https://monitor.example.com\"\n",
                "desktop.server_url",
            ),
        ] {
            let e = err(&format!("{text}{AUTH}"));
            assert!(e.contains(want), "{text}: {e}");
        }
        // Remote mode needs sign-in.
        let e = err("[desktop]\nmode = \"remote\"\nserver_url = \"https://m.example.com\"\n");
        assert!(e.contains("desktop.mode") && e.contains("[auth]"), "{e}");
    }

    #[test]
    fn auth_section() {
        let c = p(&format!("{AUTH}admins = [\"Alice@Example.com\"]\nusers = [\"bob@example.org\", \"*@corp.example\"]\n")).unwrap();
        let a = c.auth.unwrap();
        assert_eq!(a.admins, vec!["alice@example.com".to_string()]);
        assert_eq!(
            a.users,
            vec![
                UserRule::Email("bob@example.org".into()),
                UserRule::Domain("corp.example".into())
            ]
        );
        assert_eq!(a.session_ttl, Duration::from_secs(12 * 3600));
        assert!(!format!("{a:?}").contains("s3cret-value"));
        // Google by default.
        let c = p(&AUTH.replace("issuer = \"http://127.0.0.1:9\"\n", "")).unwrap();
        assert_eq!(
            c.auth.unwrap().issuer.as_str(),
            "https://accounts.google.com/"
        );

        let bad = [
            (
                "issuer = \"http://127.0.0.1:9\"",
                "issuer = \"http://idp.example.com\"",
                "auth.issuer",
            ),
            (
                "client_id = \"dsmon\"",
                "client_id = \" \"",
                "auth.client_id",
            ),
            (
                "client_secret = \"s3cret-value\"",
                "",
                "auth.client_secret_file: missing",
            ),
            (
                "client_secret = \"s3cret-value\"",
                "client_secret = \"x\"\nclient_secret_file = \"f\"",
                "not both",
            ),
            (
                "client_secret = \"s3cret-value\"",
                "client_secret_file = \"nope\"",
                "auth.client_secret_file: /etc/dsmon/nope: cannot read",
            ),
            ("/auth/callback", "/callback", "auth.redirect_url"),
            (
                "https://monitor.example.com",
                "http://monitor.example.com",
                "need https",
            ),
        ];
        for (from, to, want) in bad {
            let e = err(&AUTH.replace(from, to));
            assert!(e.contains(want), "{to}: {e}");
            assert!(!e.contains("s3cret-value"), "{e}");
        }
        let e = err(&format!("{AUTH}admins = [\"*@example.com\"]\n"));
        assert!(e.contains("auth.admins[0]"), "{e}");
        let e = err(&format!("{AUTH}users = [\"bob\"]\n"));
        assert!(e.contains("auth.users[0]"), "{e}");
        let e = err(&format!("{AUTH}session_ttl = \"10s\"\n"));
        assert!(e.contains("auth.session_ttl"), "{e}");
        let e = err(&format!("{AUTH}colour = \"red\"\n"));
        assert!(e.contains("colour"), "{e}");
    }

    #[test]
    fn syntax_errors_have_a_line() {
        let e = err("[collector]\nlog_interval = \n");
        assert!(e.starts_with("/etc/dsmon/test.toml:2:"), "{e}");
    }

    #[test]
    fn ca_file_needs_https_and_must_exist() {
        let e = err("[[nodes]]\nname = \"a\"\nurl = \"http://h\"\nca_file = \"ca.pem\"\n");
        assert!(
            e.contains("nodes[0].ca_file: only meaningful with an https url"),
            "{e}"
        );
        let e = err("[[nodes]]\nname = \"a\"\nurl = \"https://h\"\nca_file = \"nope.pem\"\n");
        assert!(
            e.contains("nodes[0].ca_file") && e.contains("no such file"),
            "{e}"
        );
    }
}
