//! The TOML configuration: where it is found, how it is parsed, and every check made on it before
//! anything runs. A bad file is reported once, naming the file and the key, and nothing is written.
//!
//! Each section has a module of its own: its types, the section as written (`Raw*`) and its
//! checks. This module finds and parses the file and runs the sections' checks in order.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use url::Url;

pub mod alerts;
mod auth;
mod collector;
mod desktop;
mod nodes;
pub mod parents;
mod server;
pub mod settings;
mod storage;
pub mod tags;

pub use alerts::AlertsConfig;
pub use auth::{AuthConfig, Secret, UserRule};
pub use collector::CollectorConfig;
pub use desktop::DesktopMode;
pub use nodes::NodeConfig;
pub use parents::{HostFilter, ParentConfig};
pub use server::{Listen, ServerConfig, TlsFiles};
pub use storage::{check_postgres_url, default_storage_path, PostgresStorage, StorageConfig};

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
    /// `[[parents]]`: Netdata parents whose streaming children are nodes too.
    pub parents: Vec<ParentConfig>,
    /// Sign-in; `None` makes dsmon a single-user local tool (loopback TCP only, everyone is Admin).
    pub auth: Option<AuthConfig>,
    /// `[desktop]`: where the desktop app takes its data from (ignored by the other commands).
    pub desktop: DesktopMode,
    /// `[alerts]`: rules, notifiers, maintenance windows (empty: no alerts).
    pub alerts: AlertsConfig,
}

// ---- the file as written -------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    collector: collector::RawCollector,
    #[serde(default)]
    storage: storage::RawStorage,
    #[serde(default)]
    server: server::RawServer,
    #[serde(default)]
    nodes: Vec<nodes::RawNode>,
    #[serde(default)]
    parents: Vec<parents::RawParent>,
    auth: Option<auth::RawAuth>,
    desktop: Option<desktop::RawDesktop>,
    alerts: Option<alerts::RawAlerts>,
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

/// What a section's check finds wrong: the key (`section.key`) and the message. [`validate`] adds
/// the file's path to make it a [`ConfigError::Invalid`].
#[derive(Debug)]
struct KeyError {
    key: String,
    message: String,
}

impl KeyError {
    /// `key` of `section`, e.g. `auth` and `issuer` make `auth.issuer`.
    fn at(section: impl std::fmt::Display, key: &str, message: impl Into<String>) -> Self {
        Self {
            key: format!("{section}.{key}"),
            message: message.into(),
        }
    }
}

/// Whether `u`'s host is `localhost` or a loopback address.
fn is_loopback(u: &Url) -> bool {
    match u.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
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
    validate(raw, path).map_err(|e| ConfigError::Invalid {
        path: path.to_path_buf(),
        key: e.key,
        message: e.message,
    })
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

/// The directory relative paths in the file at `path` are taken from, made absolute.
fn base_dir(path: &Path) -> PathBuf {
    let base_dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    std::path::absolute(&base_dir).unwrap_or(base_dir)
}

/// Checks the sections in a fixed order (the first problem found is the one reported): some
/// depend on others (`[server]` and `[desktop]` on whether `[auth]` is there).
fn validate(raw: RawConfig, path: &Path) -> std::result::Result<Config, KeyError> {
    let base_dir = base_dir(path);
    let collector = collector::validate(raw.collector)?;
    let storage = storage::validate(raw.storage, &base_dir)?;
    let auth = raw.auth.map(|a| auth::validate(a, &base_dir)).transpose()?;
    let server = server::validate(raw.server, &base_dir, auth.is_some())?;
    let nodes = nodes::validate(raw.nodes, &base_dir)?;
    let parents = parents::validate(raw.parents, &base_dir)?;
    let desktop = desktop::validate(raw.desktop.unwrap_or_default(), auth.is_some())?;
    let alerts = alerts::validate(
        raw.alerts.unwrap_or_default(),
        &base_dir,
        collector.live_interval,
        auth.as_ref().and_then(|a| a.redirect_url.as_ref()),
    )?;
    Ok(Config {
        path: path.to_path_buf(),
        collector,
        storage,
        server,
        nodes,
        parents,
        auth,
        desktop,
        alerts,
    })
}

impl Config {
    /// The embedded defaults: no nodes, the default intervals and database path.
    pub fn defaults() -> Self {
        Self {
            path: PathBuf::from("(defaults)"),
            collector: CollectorConfig::default(),
            storage: StorageConfig {
                path: default_storage_path(),
                postgres: None,
            },
            server: ServerConfig::default(),
            nodes: Vec::new(),
            parents: Vec::new(),
            auth: None,
            desktop: DesktopMode::Local,
            alerts: AlertsConfig::default(),
        }
    }

    /// Warnings worth printing at start: the configuration works but may not do what is meant.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.nodes.is_empty() && self.parents.is_empty() {
            w.push(format!(
                "{}: no [[nodes]] or [[parents]] configured",
                self.path.display()
            ));
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
        assert_eq!(c.parents.len(), 1);
        assert!(c.parents[0].filter.wants("web-1") && !c.parents[0].filter.wants("db-test1"));
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
    fn trusted_proxies_and_max_connections() {
        let c = p("[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"127.0.0.2\", \"fd00::/8\"]\nmax_connections = 12\n").unwrap();
        let nets: Vec<String> = c
            .server
            .trusted_proxies
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(nets, ["10.0.0.0/8", "127.0.0.2/32", "fd00::/8"]);
        assert_eq!(c.server.max_connections, 12);
        assert_eq!(p("").unwrap().server.max_connections, 4096);
        let e = err("[server]\ntrusted_proxies = [\"10.0.0.0/33\"]\n");
        assert!(e.contains("server.trusted_proxies: \"10.0.0.0/33\""), "{e}");
        let e = err("[server]\ntrusted_proxies = [\"proxy.example\"]\n");
        assert!(e.contains("server.trusted_proxies"), "{e}");
        let e = err("[server]\nmax_connections = 0\n");
        assert!(e.contains("server.max_connections"), "{e}");
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
        assert_eq!(a.session_idle, Duration::from_secs(3600));
        assert_eq!(a.recheck, Duration::from_secs(3600));
        assert_eq!(a.audit_retention, Duration::from_secs(400 * 86_400));
        assert!(!format!("{a:?}").contains("s3cret-value"));
        let c = p(&format!("{AUTH}audit_retention = \"90d\"\n")).unwrap();
        assert_eq!(
            c.auth.unwrap().audit_retention,
            Duration::from_secs(90 * 86_400)
        );
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
        // Seconds are accepted now (the session tests use them); below one second is not.
        let e = err(&format!("{AUTH}session_ttl = \"500ms\"\n"));
        assert!(e.contains("auth.session_ttl"), "{e}");
        let e = err(&format!("{AUTH}session_idle = \"0s\"\n"));
        assert!(e.contains("auth.session_idle"), "{e}");
        let e = err(&format!("{AUTH}recheck = \"30d\"\n"));
        assert!(e.contains("auth.recheck"), "{e}");
        let a = p(&format!(
            "{AUTH}session_ttl = \"6s\"\nsession_idle = \"3s\"\nrecheck = \"4s\"\n"
        ))
        .unwrap()
        .auth
        .unwrap();
        assert_eq!(
            (a.session_ttl, a.session_idle, a.recheck),
            (
                Duration::from_secs(6),
                Duration::from_secs(3),
                Duration::from_secs(4)
            )
        );
        let e = err(&format!("{AUTH}audit_retention = \"1h\"\n"));
        assert!(e.contains("auth.audit_retention"), "{e}");
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
