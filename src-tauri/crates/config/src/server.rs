//! `[server]`: where `dsmon serve` answers HTTP, its TLS files, how many connections it holds at
//! once, which TCP peers are proxies whose `X-Forwarded-For` / `X-Real-IP` name the client, and
//! who may scrape `/metrics` (a bearer token, or a loopback-only listener of its own).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::auth::Secret;
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
    /// `metrics_token_file`, read at load: the bearer token `/metrics` needs on `listen`.
    pub metrics_token: Option<Secret>,
    /// `metrics_listen`: a loopback TCP address that serves `/metrics` alone, without a token.
    pub metrics_listen: Option<std::net::SocketAddr>,
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
            metrics_token: None,
            metrics_listen: None,
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
    metrics_token_file: Option<PathBuf>,
    metrics_listen: Option<String>,
}

/// The shortest metrics token accepted (e.g. `openssl rand -hex 32` makes 64 characters).
pub const MIN_METRICS_TOKEN: usize = 16;

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
    let metrics_token = raw
        .metrics_token_file
        .map(|f| metrics_token(&base_dir.join(f)))
        .transpose()?;
    let metrics_listen = raw
        .metrics_listen
        .map(|text| metrics_listen(&text, &listen))
        .transpose()?;
    Ok(ServerConfig {
        listen,
        tls,
        max_connections,
        trusted_proxies,
        metrics_token,
        metrics_listen,
    })
}

/// The token in `path` (surrounding whitespace removed), at least [`MIN_METRICS_TOKEN`]
/// characters. Errors name the file, never its content.
fn metrics_token(path: &Path) -> Result<Secret, KeyError> {
    let key = "metrics_token_file";
    let text = std::fs::read_to_string(path)
        .map_err(|e| err(key, format!("{}: cannot read ({e})", path.display())))?;
    let token = text.trim();
    if token.chars().count() < MIN_METRICS_TOKEN {
        return Err(err(
            key,
            format!(
                "{}: the token must be at least {MIN_METRICS_TOKEN} characters (e.g. the output of `openssl rand -hex 32`)",
                path.display()
            ),
        ));
    }
    if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(err(
            key,
            format!(
                "{}: the token must be one line without spaces (it is sent as `Authorization: Bearer <token>`)",
                path.display()
            ),
        ));
    }
    Ok(Secret::new(token.to_string()))
}

/// `metrics_listen`: a loopback TCP address (the listener has no token), not `listen`'s.
fn metrics_listen(text: &str, listen: &Listen) -> Result<std::net::SocketAddr, KeyError> {
    let key = "metrics_listen";
    let addr: std::net::SocketAddr = text.trim().parse().map_err(|_| {
        err(
            key,
            format!("{text:?}: write a loopback address and port such as \"127.0.0.1:9464\""),
        )
    })?;
    if !addr.ip().is_loopback() {
        return Err(err(
            key,
            format!("\"{addr}\" is not a loopback address: the metrics listener has no token, so it serves this machine only (for remote scrapers, use metrics_token_file on listen)"),
        ));
    }
    if matches!(listen, Listen::Tcp(l) if l.port() == addr.port() && addr.port() != 0 && (l.ip() == addr.ip() || l.ip().is_unspecified()))
    {
        return Err(err(
            key,
            format!(
                "\"{addr}\" is the address of listen: give the metrics listener a port of its own"
            ),
        ));
    }
    Ok(addr)
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

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "0123456789abcdef0123";

    fn raw(token_file: Option<&str>, metrics: Option<&str>) -> RawServer {
        RawServer {
            metrics_token_file: token_file.map(PathBuf::from),
            metrics_listen: metrics.map(String::from),
            ..RawServer::default()
        }
    }

    fn message(r: Result<ServerConfig, KeyError>) -> String {
        match r {
            Ok(c) => panic!("expected an error, got {c:?}"),
            Err(e) => format!("{}: {}", e.key, e.message),
        }
    }

    #[test]
    fn metrics_are_off_unless_configured() {
        let c = validate(RawServer::default(), Path::new("/"), true).unwrap();
        assert_eq!(c.metrics_token, None);
        assert_eq!(c.metrics_listen, None);
    }

    #[test]
    fn the_metrics_token_is_read_from_its_file_relative_to_the_config() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("metrics.token"), format!("  {TOKEN}\n")).unwrap();
        let c = validate(raw(Some("metrics.token"), None), dir.path(), true).unwrap();
        assert_eq!(c.metrics_token.as_ref().map(Secret::expose), Some(TOKEN));
        assert!(!format!("{c:?}").contains(TOKEN), "Debug shows no token");
    }

    #[test]
    fn a_bad_metrics_token_file_is_refused_without_showing_it() {
        let dir = tempfile::tempdir().unwrap();
        let e = message(validate(raw(Some("missing"), None), dir.path(), true));
        assert!(
            e.starts_with("server.metrics_token_file: ") && e.contains("missing: cannot read"),
            "{e}"
        );
        for (content, why) in [
            ("short-token\n", "at least 16 characters"),
            ("", "at least 16 characters"),
            ("0123456789 abcdef 0123\n", "one line without spaces"),
            (
                "0123456789abcdef\nsecond-line-here\n",
                "one line without spaces",
            ),
        ] {
            std::fs::write(dir.path().join("t"), content).unwrap();
            let e = message(validate(raw(Some("t"), None), dir.path(), true));
            assert!(e.contains(why), "{content:?}: {e}");
            for word in content.split_whitespace() {
                assert!(!e.contains(word), "the message shows the token: {e}");
            }
        }
    }

    #[test]
    fn the_metrics_listener_is_loopback_tcp_and_not_listen() {
        let ok = validate(raw(None, Some("127.0.0.1:9464")), Path::new("/"), true).unwrap();
        assert_eq!(ok.metrics_listen, Some("127.0.0.1:9464".parse().unwrap()));
        let ok = validate(raw(None, Some("[::1]:9464")), Path::new("/"), false).unwrap();
        assert_eq!(ok.metrics_listen, Some("[::1]:9464".parse().unwrap()));
        for (text, why) in [
            ("0.0.0.0:9464", "not a loopback address"),
            ("10.1.2.3:9464", "not a loopback address"),
            ("localhost:9464", "write a loopback address"),
            ("unix:/run/dsmon/metrics.sock", "write a loopback address"),
            ("127.0.0.1:8080", "a port of its own"),
        ] {
            let e = message(validate(raw(None, Some(text)), Path::new("/"), true));
            assert!(e.starts_with("server.metrics_listen: "), "{e}");
            assert!(e.contains(why), "{text}: {e}");
        }
        let all = RawServer {
            listen: Some("0.0.0.0:9000".into()),
            ..raw(None, Some("127.0.0.1:9000"))
        };
        let e = message(validate(all, Path::new("/"), true));
        assert!(e.contains("a port of its own"), "{e}");
    }
}
