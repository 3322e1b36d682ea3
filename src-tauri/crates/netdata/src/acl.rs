//! Netdata reachable only by the monitor: the `[web]` lines of each agent's `netdata.conf` that admit
//! the monitor's address(es) and the node itself and nobody else (`dsmon netdata-acl`), and a probe
//! that tells, where it can, whether an agent still answers an address it should refuse
//! (`dsmon check`).
//!
//! Netdata matches a client's address text against its simple patterns, and names a loopback client
//! (127.0.0.1, ::1) `localhost`; the lines use that and addresses only, and turn reverse DNS off
//! (`by dns = no`), so an agent decides without a lookup. An IPv4 monitor is also listed in its
//! IPv4-mapped IPv6 form, which an agent listening on `[::]` may see.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use url::Url;

use dsmon_config::NodeConfig;

#[derive(Debug, thiserror::Error)]
pub enum AclError {
    #[error("{node}: cannot resolve {host}: {reason}")]
    Resolve {
        node: String,
        host: String,
        reason: String,
    },
    #[error("{node}: no route from this host to {addr}: {source}")]
    Route {
        node: String,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The addresses an agent's own tools use (the node itself), which Netdata calls `localhost`.
const NODE_ITSELF: [IpAddr; 2] = [
    IpAddr::V4(Ipv4Addr::LOCALHOST),
    IpAddr::V6(Ipv6Addr::LOCALHOST),
];

/// The address(es) this host sends from to reach `node`: what its agent sees as the monitor.
/// Opens no connection (a UDP socket's `connect` only picks the route).
pub async fn monitor_addresses(node: &NodeConfig) -> Result<Vec<IpAddr>, AclError> {
    let targets = resolve(node).await?;
    let mut out = Vec::new();
    for addr in targets {
        let bind: SocketAddr = match addr {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let route = |source| AclError::Route {
            node: node.name.clone(),
            addr,
            source,
        };
        let s = tokio::net::UdpSocket::bind(bind).await.map_err(route)?;
        s.connect(addr).await.map_err(route)?;
        let ip = s.local_addr().map_err(route)?.ip();
        if !out.contains(&ip) {
            out.push(ip);
        }
    }
    Ok(out)
}

async fn resolve(node: &NodeConfig) -> Result<Vec<SocketAddr>, AclError> {
    let host = node.url.host_str().unwrap_or_default().to_string();
    let port = node.url.port_or_known_default().unwrap_or(19999);
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let err = |reason: String| AclError::Resolve {
        node: node.name.clone(),
        host: host.clone(),
        reason,
    };
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((bare, port))
        .await
        .map_err(|e| err(e.to_string()))?
        .collect();
    if addrs.is_empty() {
        return Err(err("no addresses".into()));
    }
    Ok(addrs)
}

/// The pattern list for the monitor(s) and the node itself, as Netdata writes patterns.
pub fn allowed_pattern(monitors: &[IpAddr]) -> String {
    let mut ips: Vec<IpAddr> = Vec::new();
    for m in monitors.iter().filter(|m| !NODE_ITSELF.contains(m)) {
        for ip in [Some(*m), mapped(*m)].into_iter().flatten() {
            if !ips.contains(&ip) {
                ips.push(ip);
            }
        }
    }
    std::iter::once("localhost".to_string())
        .chain(ips.iter().map(IpAddr::to_string))
        .collect::<Vec<_>>()
        .join(" ")
}

fn mapped(ip: IpAddr) -> Option<IpAddr> {
    match ip {
        IpAddr::V4(v4) if !v4.is_loopback() => Some(IpAddr::V6(v4.to_ipv6_mapped())),
        _ => None,
    }
}

/// The `[web]` lines: the API and dashboard for the monitor(s) and the node itself; badges,
/// `netdata.conf` and management for the node itself only.
pub fn web_lines(monitors: &[IpAddr]) -> String {
    let both = allowed_pattern(monitors);
    let itself = allowed_pattern(&[]);
    let mut text = String::from("[web]\n");
    for (what, who) in [
        ("connections", &both),
        ("dashboard", &both),
        ("badges", &itself),
        ("netdata.conf", &itself),
        ("management", &itself),
    ] {
        text.push_str(&format!(
            "    allow {what} from = {who}\n    allow {what} by dns = no\n"
        ));
    }
    text
}

/// The text `dsmon netdata-acl` prints: for the nodes grouped by the monitor address(es) they see
/// (`given`, or the address this host sends from to reach each), how to place the lines, and the
/// lines. Nodes whose addresses cannot be told are left out and their errors returned.
pub async fn report(nodes: &[NodeConfig], given: &[IpAddr]) -> (String, Vec<AclError>) {
    let mut groups: Vec<(Vec<IpAddr>, Vec<&NodeConfig>)> = Vec::new();
    let mut errors = Vec::new();
    for node in nodes {
        let monitors = if given.is_empty() {
            match monitor_addresses(node).await {
                Ok(m) => m,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            }
        } else {
            given.to_vec()
        };
        match groups.iter_mut().find(|(m, _)| *m == monitors) {
            Some((_, members)) => members.push(node),
            None => groups.push((monitors, vec![node])),
        }
    }
    let mut text = String::new();
    for (monitors, members) in &groups {
        let names: Vec<&str> = members.iter().map(|n| n.name.as_str()).collect();
        let addrs: Vec<String> = monitors.iter().map(ToString::to_string).collect();
        text.push_str(&format!(
            "# {}: the monitor is {}. In /etc/netdata/netdata.conf on each of these nodes, put these\n\
             # lines in the [web] section (replacing lines with the same keys), then restart netdata.\n\
             # A streaming parent must also admit its children in \"allow connections from\" and\n\
             # \"allow streaming from\".\n",
            names.join(", "),
            addrs.join(", ")
        ));
        for n in members.iter().filter(|n| n.url.path() != "/") {
            text.push_str(&format!(
                "# {} ({}) is reached through a proxy or a streaming parent: its agent sees that host,\n\
                 # not the monitor; restrict access there.\n",
                n.name, n.url
            ));
        }
        text.push_str(&web_lines(monitors));
        text.push('\n');
    }
    (text, errors)
}

/// What an agent's access looks like from here.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Exposure {
    /// Warnings for a person: an address it should refuse was answered, or its ACL admits anyone.
    pub warnings: Vec<String>,
}

/// Probes `node` (plain http, no path prefix: otherwise what the agent sees cannot be told from
/// here, and nothing is said): whether it answers from another of this host's addresses than the
/// monitor's, whether it shows this host its `netdata.conf` (readable by the node itself only,
/// with `dsmon netdata-acl`'s lines), and whether that file's ACL admits any address.
pub async fn probe(node: &NodeConfig, timeout: Duration) -> Exposure {
    let mut warnings = Vec::new();
    if node.url.scheme() != "http" || node.url.path() != "/" {
        return Exposure { warnings };
    }
    let Ok(targets) = resolve(node).await else {
        return Exposure { warnings };
    };
    let Ok(monitors) = monitor_addresses(node).await else {
        return Exposure { warnings };
    };
    for target in targets.iter().take(1) {
        // Addresses of this host that the lines would not admit, tried at once (one that has no
        // route to the node costs the timeout, not more).
        let sources: Vec<IpAddr> = other_sources(target.ip(), &monitors)
            .into_iter()
            .take(3)
            .collect();
        let answers = futures_util::future::join_all(
            sources
                .iter()
                .map(|from| get(&node.url, *target, Some(*from), "/api/v1/info", timeout)),
        )
        .await;
        if let Some(from) = sources
            .iter()
            .zip(&answers)
            .find_map(|(from, a)| matches!(a, Some((200, _))).then_some(from))
        {
            warnings.push(format!(
                "{}: the agent answered a request from {from}, an address its [web] ACL should refuse (dsmon netdata-acl prints the lines)",
                node.name
            ));
        }
        if let Some((200, conf)) = get(&node.url, *target, None, "/netdata.conf", timeout).await {
            if monitors.iter().any(|m| !m.is_loopback()) {
                warnings.push(format!(
                    "{}: the agent shows its netdata.conf to this host ({}); only the node itself should read it (dsmon netdata-acl)",
                    node.name,
                    monitors.iter().map(IpAddr::to_string).collect::<Vec<_>>().join(", ")
                ));
            }
            for key in ["allow connections from", "allow dashboard from"] {
                if let Some(v) = conf_value(&conf, key).filter(|v| admits_anyone(v)) {
                    warnings.push(format!(
                        "{}: {key} = {v}: any address may use the agent's API (dsmon netdata-acl prints narrower lines)",
                        node.name
                    ));
                }
            }
        }
    }
    Exposure { warnings }
}

/// Another source address than the monitor's for reaching `target`: for a loopback target another
/// loopback address; otherwise this host's other addresses of the same family.
fn other_sources(target: IpAddr, monitors: &[IpAddr]) -> Vec<IpAddr> {
    let candidates: Vec<IpAddr> = if target.is_loopback() {
        match target {
            IpAddr::V4(_) => vec![
                IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)),
                IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)),
            ],
            IpAddr::V6(_) => Vec::new(),
        }
    } else {
        interface_addresses()
            .into_iter()
            .filter(|a| a.is_ipv4() == target.is_ipv4() && !a.is_loopback())
            .filter(|a| !matches!(a, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80))
            .collect()
    };
    candidates
        .into_iter()
        .filter(|c| !monitors.contains(c) && !NODE_ITSELF.contains(c))
        .collect()
}

/// This host's interface addresses (none when they cannot be listed).
fn interface_addresses() -> Vec<IpAddr> {
    if_addrs::get_if_addrs()
        .map(|list| list.iter().map(if_addrs::Interface::ip).collect())
        .unwrap_or_default()
}

/// The most of a response body read (an agent's `netdata.conf` is far smaller).
const MAX_BODY: usize = 1 << 20;

/// A GET of `path` on the agent at `base` (an http URL without a path), connecting to `target`
/// (one of its host's addresses) from `from` when given, without a proxy and without following a
/// redirect: the status and the body (at most [`MAX_BODY`] bytes), or `None` when the agent
/// closed, refused or did not answer in time.
async fn get(
    base: &Url,
    target: SocketAddr,
    from: Option<IpAddr>,
    path: &str,
    timeout: Duration,
) -> Option<(u16, String)> {
    let mut url = base.clone();
    url.set_path(path);
    let mut client = reqwest::Client::builder()
        .local_address(from)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        // Plain http only: no root certificates to load.
        .tls_built_in_root_certs(false)
        .user_agent("dsmon")
        .timeout(timeout);
    if let Some(url::Host::Domain(domain)) = url.host() {
        client = client.resolve(domain, target);
    }
    let mut response = client.build().ok()?.get(url).send().await.ok()?;
    let status = response.status().as_u16();
    let mut body = Vec::new();
    while body.len() < MAX_BODY {
        match response.chunk().await.ok()? {
            Some(chunk) => body.extend_from_slice(&chunk),
            None => break,
        }
    }
    body.truncate(MAX_BODY);
    Some((status, String::from_utf8_lossy(&body).into_owned()))
}

/// The value in effect for `key` in a `netdata.conf` as the agent serves it (a default is shown
/// commented out).
fn conf_value(conf: &str, key: &str) -> Option<String> {
    let mut in_web = false;
    for line in conf.lines() {
        let l = line.trim();
        if l.starts_with('[') {
            in_web = l == "[web]";
            continue;
        }
        if !in_web {
            continue;
        }
        let l = l.trim_start_matches('#').trim();
        if let Some((k, v)) = l.split_once('=') {
            if k.trim() == key {
                return Some(v.trim().to_string());
            }
        }
    }
    None
}

/// Whether a Netdata pattern list admits addresses beyond a few named ones: a positive pattern
/// with a wildcard (`*`, `10.*`) does.
fn admits_anyone(patterns: &str) -> bool {
    patterns
        .split_whitespace()
        .any(|p| !p.starts_with('!') && p.contains('*'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }

    #[test]
    fn lines_admit_the_monitor_and_the_node_itself() {
        let text = web_lines(&[ip("192.0.2.10"), ip("2001:db8::5")]);
        assert!(text.starts_with("[web]\n"), "{text}");
        assert!(
            text.contains(
                "    allow connections from = localhost 192.0.2.10 ::ffff:192.0.2.10 2001:db8::5\n    allow connections by dns = no\n"
            ),
            "{text}"
        );
        assert!(text.contains("    allow netdata.conf from = localhost\n"));
        assert!(text.contains("    allow management from = localhost\n"));
        // A monitor on the node itself adds nothing.
        assert_eq!(allowed_pattern(&[ip("127.0.0.1"), ip("::1")]), "localhost");
    }

    #[test]
    fn values_in_effect_and_wildcards() {
        let conf = "[global]\n    # allow connections from = nope\n[web]\n    # allow connections from = localhost *\n    allow dashboard from = 10.0.0.5\n";
        assert_eq!(
            conf_value(conf, "allow connections from").as_deref(),
            Some("localhost *")
        );
        assert_eq!(
            conf_value(conf, "allow dashboard from").as_deref(),
            Some("10.0.0.5")
        );
        assert!(admits_anyone("localhost *"));
        assert!(admits_anyone("10.*"));
        assert!(!admits_anyone("127.0.0.1 ::1 10.0.0.5"));
        assert!(!admits_anyone("!10.* 10.0.0.5"));
    }

    #[test]
    fn other_sources_skip_the_monitor() {
        let loopback = other_sources(ip("127.0.0.1"), &[ip("127.0.0.1")]);
        assert_eq!(loopback, vec![ip("127.0.0.2"), ip("127.0.0.3")]);
        assert!(!other_sources(ip("127.0.0.1"), &[ip("127.0.0.2")]).contains(&ip("127.0.0.2")));
    }
}
