//! `[server]`: where `dsmon serve` answers HTTP, its TLS files, how many connections it holds at
//! once, and which TCP peers are proxies whose `X-Forwarded-For` / `X-Real-IP` name the client.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::KeyError;

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
    /// `max_connections`: TCP connections served at once; more wait in the listen queue.
    pub max_connections: usize,
    /// `trusted_proxies`: TCP peers (CIDRs) whose `X-Forwarded-For` / `X-Real-IP` are believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// Connections served at once unless `[server] max_connections` says otherwise.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// The most `[server] max_connections` may say (far beyond what one process can hold open).
const MAX_MAX_CONNECTIONS: usize = 1_000_000;

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
            max_connections: DEFAULT_MAX_CONNECTIONS,
            trusted_proxies: Vec::new(),
        }
    }
}

/// `[server]` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServer {
    listen: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    max_connections: Option<usize>,
    trusted_proxies: Option<Vec<String>>,
}

fn err(key: &str, message: impl Into<String>) -> KeyError {
    KeyError::at("server", key, message)
}

/// Checks `[server]`. Without sign-in (`has_auth` false) only a loopback TCP address is allowed.
pub(crate) fn validate(
    raw: RawServer,
    base_dir: &Path,
    has_auth: bool,
) -> Result<ServerConfig, KeyError> {
    let listen = match raw.listen {
        None => ServerConfig::default().listen,
        Some(text) => parse_listen(&text, base_dir).map_err(|m| err("listen", m))?,
    };
    let tls = validate_tls(raw.tls_cert, raw.tls_key, &listen, base_dir)?;
    if !has_auth {
        require_loopback(&listen)?;
    }
    let max_connections = match raw.max_connections {
        None => DEFAULT_MAX_CONNECTIONS,
        Some(n) if !(1..=MAX_MAX_CONNECTIONS).contains(&n) => {
            return Err(err(
                "max_connections",
                format!("{n}: must be between 1 and {MAX_MAX_CONNECTIONS}"),
            ))
        }
        Some(n) => n,
    };
    let trusted_proxies = raw
        .trusted_proxies
        .unwrap_or_default()
        .iter()
        .map(|t| parse_cidr(t))
        .collect::<Result<_, _>>()
        .map_err(|m| err("trusted_proxies", m))?;
    Ok(ServerConfig {
        listen,
        tls,
        max_connections,
        trusted_proxies,
    })
}

/// A CIDR (`10.0.0.0/8`, `fd00::/8`) or a single address (a /32 or /128).
fn parse_cidr(text: &str) -> Result<ipnet::IpNet, String> {
    let t = text.trim();
    t.parse::<ipnet::IpNet>()
        .or_else(|_| t.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| {
            format!("{text:?}: write an address range such as \"10.0.0.0/8\" or an address such as \"127.0.0.2\"")
        })
}

/// Without `[auth]` dsmon is a single-user local tool: it answers on loopback TCP only.
fn require_loopback(listen: &Listen) -> Result<(), KeyError> {
    match listen {
        Listen::Tcp(a) if a.ip().is_loopback() => Ok(()),
        Listen::Tcp(a) => Err(err(
            "listen",
            format!("\"{a}\" is not a loopback address: without [auth] (sign-in) dsmon is a single-user local tool and serves only on loopback"),
        )),
        Listen::Unix(_) => Err(err(
            "listen",
            "a unix socket is for a reverse proxy, which could expose dsmon beyond this machine: configure [auth] (sign-in) first, or listen on loopback",
        )),
    }
}

/// `tls_cert` and `tls_key`: both or neither, existing files, on a TCP address (behind a proxy on a
/// unix socket, the proxy terminates TLS).
fn validate_tls(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    listen: &Listen,
    base_dir: &Path,
) -> Result<Option<TlsFiles>, KeyError> {
    let (cert, key) = match (cert, key) {
        (None, None) => return Ok(None),
        (Some(c), Some(k)) => (base_dir.join(c), base_dir.join(k)),
        (Some(_), None) => return Err(err("tls_key", "tls_cert needs tls_key too")),
        (None, Some(_)) => return Err(err("tls_cert", "tls_key needs tls_cert too")),
    };
    if let Listen::Unix(_) = listen {
        return Err(err(
            "tls_cert",
            "TLS is for a TCP listen address; on a unix socket the reverse proxy terminates TLS",
        ));
    }
    for (k, p) in [("tls_cert", &cert), ("tls_key", &key)] {
        if !p.is_file() {
            return Err(err(k, format!("{}: no such file", p.display())));
        }
    }
    Ok(Some(TlsFiles { cert, key }))
}

fn parse_listen(text: &str, base_dir: &Path) -> Result<Listen, String> {
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
