//! `[[nodes]]`: the Netdata agents to monitor.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use url::Url;

use crate::KeyError;

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
    /// Tags (sorted, no duplicates); a `[[parents]]` child has its parent's.
    pub tags: Vec<String>,
}

/// A `[[nodes]]` entry as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNode {
    name: String,
    url: String,
    disk: Option<String>,
    interface: Option<String>,
    ca_file: Option<PathBuf>,
    #[serde(default)]
    tags: Vec<String>,
}

/// Checks every `[[nodes]]` entry, in order; names must be unique.
pub(crate) fn validate(raw: Vec<RawNode>, base_dir: &Path) -> Result<Vec<NodeConfig>, KeyError> {
    let mut names = HashSet::new();
    let mut nodes = Vec::with_capacity(raw.len());
    for (i, n) in raw.into_iter().enumerate() {
        let err =
            |field: &str, message: String| KeyError::at(format!("nodes[{i}]"), field, message);
        nodes.push(validate_node(n, base_dir, &mut names, err)?);
    }
    Ok(nodes)
}

/// One entry; `names` are those of the entries before it, `err` names a key of this entry.
fn validate_node(
    n: RawNode,
    base_dir: &Path,
    names: &mut HashSet<String>,
    err: impl Fn(&str, String) -> KeyError,
) -> Result<NodeConfig, KeyError> {
    let name = n.name.trim().to_string();
    if name.is_empty() {
        return Err(err("name", "must not be empty".into()));
    }
    if name.len() > 128 || name.chars().any(|c| c.is_control() || c == ',') {
        return Err(err(
            "name",
            format!("{name:?}: at most 128 characters, no commas or control characters"),
        ));
    }
    if !names.insert(name.clone()) {
        return Err(err("name", format!("duplicate node name {name:?}")));
    }
    let url = parse_node_url(&n.url).map_err(|m| err("url", m))?;
    let disk = n.disk.unwrap_or_else(|| "/".to_string());
    if !disk.starts_with('/') {
        return Err(err(
            "disk",
            format!("{disk:?}: must be an absolute mount point such as \"/\" or \"/data\""),
        ));
    }
    let interface = match n.interface {
        Some(s) if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c == '/') => {
            return Err(err("interface", format!("{s:?}: not an interface name")))
        }
        other => other,
    };
    let ca_file = match n.ca_file {
        Some(p) => Some(ca_file(base_dir.join(p), &url).map_err(|m| err("ca_file", m))?),
        None => None,
    };
    let tags = crate::tags::validate(n.tags).map_err(|m| err("tags", m))?;
    Ok(NodeConfig {
        name,
        url,
        disk,
        interface,
        ca_file,
        tags,
    })
}

/// An extra CA file: only with https, and it must exist.
pub(crate) fn ca_file(path: PathBuf, url: &Url) -> Result<PathBuf, String> {
    if url.scheme() != "https" {
        return Err("only meaningful with an https url".into());
    }
    if !path.is_file() {
        return Err(format!("{}: no such file", path.display()));
    }
    Ok(path)
}

pub(crate) fn parse_node_url(text: &str) -> Result<Url, String> {
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
