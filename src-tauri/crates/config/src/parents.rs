//! `[[parents]]`: Netdata parents whose streaming children are monitored, each child as a node
//! polled through the parent (`/host/<guid>/api/v1/...`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::Deserialize;
use url::Url;

use crate::nodes::{ca_file, parse_node_url};
use crate::{de_duration, KeyError};

/// How often a parent's list of children is read again, unless `refresh` says otherwise.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(60);
/// How long a child may be missing from its parent's list before it leaves the node set.
pub const DEFAULT_RETIRE_AFTER: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone, PartialEq)]
pub struct ParentConfig {
    /// Base URL of the parent agent.
    pub url: Url,
    /// Which children (by hostname) become nodes.
    pub filter: HostFilter,
    /// Mount point whose disk use is reported, for every child.
    pub disk: String,
    /// Network interface for every child; `None` means `system.net`.
    pub interface: Option<String>,
    /// Extra CA certificate (PEM) trusted for the parent's https.
    pub ca_file: Option<PathBuf>,
    /// How often the parent's list of children is read.
    pub refresh: Duration,
    /// A child missing from the list this long is retired (removed; its history stays).
    pub retire_after: Duration,
    /// Tags every child gets (sorted, no duplicates).
    pub tags: Vec<String>,
}

/// `include` / `exclude` globs on a child's hostname: a child is taken when it matches some
/// include glob (or there are none) and no exclude glob.
#[derive(Debug, Clone)]
pub struct HostFilter {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    include_set: GlobSet,
    exclude_set: GlobSet,
}

impl PartialEq for HostFilter {
    fn eq(&self, other: &Self) -> bool {
        self.include == other.include && self.exclude == other.exclude
    }
}

impl HostFilter {
    /// Compiles the globs; the error names the bad glob.
    pub fn new(include: Vec<String>, exclude: Vec<String>) -> Result<Self, String> {
        Ok(Self {
            include_set: compile(&include)?,
            exclude_set: compile(&exclude)?,
            include,
            exclude,
        })
    }

    /// Every hostname.
    pub fn all() -> Self {
        Self {
            include: Vec::new(),
            exclude: Vec::new(),
            include_set: GlobSet::empty(),
            exclude_set: GlobSet::empty(),
        }
    }

    pub fn wants(&self, hostname: &str) -> bool {
        (self.include.is_empty() || self.include_set.is_match(hostname))
            && !self.exclude_set.is_match(hostname)
    }
}

fn compile(globs: &[String]) -> Result<GlobSet, String> {
    let mut b = GlobSetBuilder::new();
    for g in globs {
        b.add(Glob::new(g).map_err(|e| format!("invalid glob {g:?}: {e}"))?);
    }
    b.build().map_err(|e| e.to_string())
}

/// A `[[parents]]` entry as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawParent {
    url: String,
    #[serde(default)]
    include: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
    disk: Option<String>,
    interface: Option<String>,
    ca_file: Option<PathBuf>,
    #[serde(default, deserialize_with = "de_duration")]
    refresh: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    retire_after: Option<Duration>,
    #[serde(default)]
    tags: Vec<String>,
}

/// Checks every `[[parents]]` entry, in order; a parent's URL appears once.
pub(crate) fn validate(
    raw: Vec<RawParent>,
    base_dir: &Path,
) -> Result<Vec<ParentConfig>, KeyError> {
    let mut urls = HashSet::new();
    let mut parents = Vec::with_capacity(raw.len());
    for (i, p) in raw.into_iter().enumerate() {
        let err =
            |field: &str, message: String| KeyError::at(format!("parents[{i}]"), field, message);
        let url = parse_node_url(&p.url).map_err(|m| err("url", m))?;
        if !urls.insert(url.clone()) {
            return Err(err("url", format!("duplicate parent {:?}", url.as_str())));
        }
        let clean = |globs: Vec<String>, key: &str| -> Result<Vec<String>, KeyError> {
            globs
                .into_iter()
                .map(|g| {
                    let g = g.trim().to_string();
                    if g.is_empty() {
                        return Err(err(key, "an empty glob matches nothing".into()));
                    }
                    Glob::new(&g).map_err(|e| err(key, format!("invalid glob {g:?}: {e}")))?;
                    Ok(g)
                })
                .collect()
        };
        let include = clean(p.include, "include")?;
        let exclude = clean(p.exclude, "exclude")?;
        let filter = HostFilter::new(include, exclude).map_err(|m| err("include", m))?;
        let disk = p.disk.unwrap_or_else(|| "/".to_string());
        if !disk.starts_with('/') {
            return Err(err(
                "disk",
                format!("{disk:?}: must be an absolute mount point such as \"/\" or \"/data\""),
            ));
        }
        let interface = match p.interface {
            Some(s) if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c == '/') => {
                return Err(err("interface", format!("{s:?}: not an interface name")))
            }
            other => other,
        };
        let ca_file = match p.ca_file {
            Some(f) => Some(ca_file(base_dir.join(f), &url).map_err(|m| err("ca_file", m))?),
            None => None,
        };
        let refresh = p.refresh.unwrap_or(DEFAULT_REFRESH);
        if refresh < Duration::from_millis(500) || refresh > Duration::from_secs(3600) {
            return Err(err("refresh", "must be between 500ms and 1h".into()));
        }
        let retire_after = p.retire_after.unwrap_or(DEFAULT_RETIRE_AFTER);
        if retire_after < refresh {
            return Err(err(
                "retire_after",
                format!(
                    "must be at least parents[{i}].refresh ({})",
                    humantime::format_duration(refresh)
                ),
            ));
        }
        let tags = crate::tags::validate(p.tags).map_err(|m| err("tags", m))?;
        parents.push(ParentConfig {
            url,
            filter,
            disk,
            interface,
            ca_file,
            refresh,
            retire_after,
            tags,
        });
    }
    Ok(parents)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> crate::Result<crate::Config> {
        crate::parse(text, Path::new("/etc/dsmon/test.toml"))
    }

    fn err(text: &str) -> String {
        match p(text) {
            Ok(_) => panic!("expected an error for {text}"),
            Err(e) => e.to_string(),
        }
    }

    const PARENT: &str = "[[parents]]\nurl = \"http://10.0.0.5:19999\"\n";

    #[test]
    fn defaults() {
        let c = p(PARENT).unwrap();
        let parent = &c.parents[0];
        assert_eq!(parent.url.as_str(), "http://10.0.0.5:19999/");
        assert_eq!(parent.disk, "/");
        assert_eq!(parent.interface, None);
        assert_eq!(parent.refresh, DEFAULT_REFRESH);
        assert_eq!(parent.retire_after, DEFAULT_RETIRE_AFTER);
        assert!(parent.filter.wants("anything"));
        assert!(
            c.warnings().is_empty(),
            "a parent is enough: {:?}",
            c.warnings()
        );
    }

    #[test]
    fn include_and_exclude() {
        let c = p(&format!(
            "{PARENT}include = [\"web-*\", \"db-*\"]\nexclude = [\"db-test*\"]\nrefresh = \"2s\"\nretire_after = \"1h\"\n"
        ))
        .unwrap();
        let f = &c.parents[0].filter;
        assert!(f.wants("web-1") && f.wants("db-main"));
        assert!(!f.wants("db-test3") && !f.wants("cache-1") && !f.wants("xweb-1"));
        assert_eq!(c.parents[0].refresh, Duration::from_secs(2));
        let only_exclude = p(&format!("{PARENT}exclude = [\"lab-*\"]\n")).unwrap();
        assert!(only_exclude.parents[0].filter.wants("web-1"));
        assert!(!only_exclude.parents[0].filter.wants("lab-2"));
    }

    #[test]
    fn errors_name_the_key() {
        for (extra, want) in [
            (
                "include = [\"web-[\"]\n",
                "parents[0].include: invalid glob",
            ),
            ("exclude = [\"\"]\n", "parents[0].exclude"),
            ("disk = \"data\"\n", "parents[0].disk"),
            ("interface = \"a b\"\n", "parents[0].interface"),
            ("refresh = \"10ms\"\n", "parents[0].refresh"),
            ("refresh = \"1x\"\n", "parents[0].refresh"),
            ("retire_after = \"1s\"\n", "parents[0].retire_after"),
            (
                "ca_file = \"ca.pem\"\n",
                "parents[0].ca_file: only meaningful with an https url",
            ),
            ("name = \"x\"\n", "parents[0]"),
        ] {
            let e = err(&format!("{PARENT}{extra}"));
            assert!(e.contains(want), "{extra}: {e}");
        }
        let e = err(&format!("{PARENT}{PARENT}"));
        assert!(e.contains("parents[1].url: duplicate parent"), "{e}");
        let e = err("[[parents]]\nurl = \"ftp://p\"\n");
        assert!(e.contains("parents[0].url"), "{e}");
        let e = err("[[parents]]\ninclude = [\"a\"]\n");
        assert!(e.contains("url"), "{e}");
    }
}
