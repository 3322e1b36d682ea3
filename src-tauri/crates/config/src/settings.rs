//! The desktop app's Settings page over the configuration file: the fields people change (mode,
//! server address, nodes, intervals, timeout, sign-in) read from and written into the TOML document
//! itself, so comments and every other key survive an edit. A change is validated by the same code
//! as every other command ([`crate::parse`]) before the file is replaced, atomically.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml_edit::{value, Array, ArrayOfTables, DocumentMut, Item, Table};

use crate as config;
use crate::{Config, ConfigError};

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: cannot write: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Syntax(String),
    /// The edited file would not be valid; the file on disk is unchanged.
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    #[error("{0}")]
    Field(String),
}

/// One `[[nodes]]` entry as the form shows it (other keys of the entry are kept).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeSetting {
    pub name: String,
    pub url: String,
}

/// `[auth]` as the form shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuthSetting {
    pub issuer: String,
    pub client_id: String,
    /// Write-only: `None` or empty keeps the secret already in the file.
    #[serde(default, skip_serializing)]
    pub client_secret: Option<String>,
    /// Whether the file holds a secret (or names a secret file).
    #[serde(default)]
    pub client_secret_set: bool,
    pub admins: Vec<String>,
    pub users: Vec<String>,
}

/// The fields of the Settings page.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// `"local"` or `"remote"`.
    pub mode: String,
    pub server_url: String,
    pub nodes: Vec<NodeSetting>,
    pub log_interval: String,
    pub live_interval: String,
    pub timeout: String,
    /// `None`: no sign-in (a single-user local tool).
    pub auth: Option<AuthSetting>,
}

/// The Settings page's view of a file: its fields, its path, and what is wrong with it now.
#[derive(Debug, Clone, Serialize)]
pub struct SettingsView {
    pub path: PathBuf,
    pub settings: Settings,
    /// Why the file does not load as it is (`None`: it is valid).
    pub error: Option<String>,
}

fn read(path: &Path) -> Result<String, SettingsError> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(source) => Err(SettingsError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn document(text: &str, path: &Path) -> Result<DocumentMut, SettingsError> {
    text.parse::<DocumentMut>()
        .map_err(|e| SettingsError::Syntax(format!("{}: {e}", path.display())))
}

fn string(t: Option<&Item>) -> String {
    t.and_then(Item::as_str).unwrap_or_default().to_string()
}

fn strings(t: Option<&Item>) -> Vec<String> {
    t.and_then(Item::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Reads the file at `path` (a missing file is an empty one) into the page's fields.
pub fn load(path: &Path) -> Result<SettingsView, SettingsError> {
    let text = read(path)?;
    let doc = document(&text, path)?;
    let section = |name: &str| doc.get(name).and_then(Item::as_table);
    let get = |sec: &str, key: &str| section(sec).and_then(|t| t.get(key));
    let defaults = config::CollectorConfig::default();
    let or_default = |v: String, d: std::time::Duration| {
        if v.is_empty() {
            humantime::format_duration(d).to_string()
        } else {
            v
        }
    };
    let nodes = doc
        .get("nodes")
        .and_then(Item::as_array_of_tables)
        .map(|a| {
            a.iter()
                .map(|t| NodeSetting {
                    name: string(t.get("name")),
                    url: string(t.get("url")),
                })
                .collect()
        })
        .unwrap_or_default();
    let auth = section("auth").map(|a| AuthSetting {
        issuer: string(a.get("issuer")),
        client_id: string(a.get("client_id")),
        client_secret: None,
        client_secret_set: a.contains_key("client_secret") || a.contains_key("client_secret_file"),
        admins: strings(a.get("admins")),
        users: strings(a.get("users")),
    });
    let mode = string(get("desktop", "mode"));
    let settings = Settings {
        mode: if mode.is_empty() {
            "local".into()
        } else {
            mode
        },
        server_url: string(get("desktop", "server_url")),
        nodes,
        log_interval: or_default(
            string(get("collector", "log_interval")),
            defaults.log_interval,
        ),
        live_interval: or_default(
            string(get("collector", "live_interval")),
            defaults.live_interval,
        ),
        timeout: or_default(string(get("collector", "timeout")), defaults.timeout),
        auth,
    };
    let error = config::parse(&text, path).err().map(|e| e.to_string());
    Ok(SettingsView {
        path: path.to_path_buf(),
        settings,
        error,
    })
}

fn table<'a>(doc: &'a mut DocumentMut, name: &str) -> &'a mut Table {
    if !doc.contains_table(name) {
        doc[name] = Item::Table(Table::new());
    }
    doc[name].as_table_mut().expect("just made a table")
}

fn set_or_remove(t: &mut Table, key: &str, v: &str) {
    let v = v.trim();
    if v.is_empty() {
        t.remove(key);
        return;
    }
    match t.get_mut(key).and_then(Item::as_value_mut) {
        Some(old) if old.as_str() == Some(v) => {}
        Some(old) => {
            // A new value keeps the old one's comments and spacing.
            let decor = old.decor().clone();
            *old = toml_edit::Value::from(v);
            *old.decor_mut() = decor;
        }
        None => t[key] = value(v),
    }
}

fn array(items: &[String]) -> Item {
    let mut a = Array::new();
    for i in items.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        a.push(i);
    }
    value(a)
}

/// The file's text with `s` applied (everything else, comments included, kept).
pub fn apply(text: &str, path: &Path, s: &Settings) -> Result<String, SettingsError> {
    let mut doc = document(text, path)?;
    let c = table(&mut doc, "collector");
    set_or_remove(c, "log_interval", &s.log_interval);
    set_or_remove(c, "live_interval", &s.live_interval);
    set_or_remove(c, "timeout", &s.timeout);
    apply_desktop(&mut doc, &s.mode, &s.server_url);
    apply_nodes(&mut doc, &s.nodes)?;
    apply_auth(&mut doc, s.auth.as_ref());
    Ok(doc.to_string())
}

/// `[desktop]`: local mode is the default, so it leaves no keys (nor an empty table) behind.
fn apply_desktop(doc: &mut DocumentMut, mode: &str, server_url: &str) {
    match mode.trim() {
        "" | "local" => {
            if let Some(d) = doc.get_mut("desktop").and_then(Item::as_table_mut) {
                d.remove("mode");
                d.remove("server_url");
            }
        }
        mode => {
            let d = table(doc, "desktop");
            d["mode"] = value(mode);
            set_or_remove(d, "server_url", server_url);
        }
    }
    if doc
        .get("desktop")
        .and_then(Item::as_table)
        .is_some_and(Table::is_empty)
    {
        doc.remove("desktop");
    }
}

/// `[[nodes]]` in the form's order; an entry that keeps its name keeps its other keys.
fn apply_nodes(doc: &mut DocumentMut, form: &[NodeSetting]) -> Result<(), SettingsError> {
    let old: Vec<Table> = doc
        .get("nodes")
        .and_then(Item::as_array_of_tables)
        .map(|a| a.iter().cloned().collect())
        .unwrap_or_default();
    let mut nodes = ArrayOfTables::new();
    for (i, n) in form.iter().enumerate() {
        if n.name.trim().is_empty() && n.url.trim().is_empty() {
            continue;
        }
        if n.name.trim().is_empty() || n.url.trim().is_empty() {
            return Err(SettingsError::Field(format!(
                "node {}: give both a name and an address",
                i + 1
            )));
        }
        let mut t = old
            .iter()
            .find(|t| t.get("name").and_then(Item::as_str) == Some(n.name.trim()))
            .cloned()
            .unwrap_or_default();
        t["name"] = value(n.name.trim());
        t["url"] = value(n.url.trim());
        // The file lists tables by their parsed position: put the nodes last, in the form's order.
        t.set_position(1_000_000 + i as isize);
        nodes.push(t);
    }
    if nodes.is_empty() {
        doc.remove("nodes");
    } else {
        doc["nodes"] = Item::ArrayOfTables(nodes);
    }
    Ok(())
}

/// `[auth]`: removed without sign-in; an empty secret in the form keeps the file's.
fn apply_auth(doc: &mut DocumentMut, auth: Option<&AuthSetting>) {
    let Some(a) = auth else {
        doc.remove("auth");
        return;
    };
    let t = table(doc, "auth");
    set_or_remove(t, "issuer", &a.issuer);
    t["client_id"] = value(a.client_id.trim());
    if let Some(secret) = a.client_secret.as_deref().map(str::trim) {
        if !secret.is_empty() {
            t.remove("client_secret_file");
            t["client_secret"] = value(secret);
        }
    }
    t["admins"] = array(&a.admins);
    t["users"] = array(&a.users);
}

/// Applies `s` to the file at `path`, validates the result with the configuration's own checks,
/// and replaces the file (write to a temporary file, then rename). Returns the new configuration;
/// on any error the file is left as it was.
pub fn save(path: &Path, s: &Settings) -> Result<Config, SettingsError> {
    let text = read(path)?;
    let new = apply(&text, path, s)?;
    let cfg = config::parse(&new, path)?;
    let werr = |source| SettingsError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(werr)?;
    }
    // The file may hold a client secret: the temporary file is created readable by its owner
    // only (tempfile makes it 0600 from the start), then renamed over the old one.
    let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(d) => d,
        None => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(werr)?;
    std::io::Write::write_all(&mut tmp, new.as_bytes()).map_err(werr)?;
    tmp.as_file().sync_all().map_err(werr)?;
    tmp.persist(path).map_err(|e| werr(e.error))?;
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# my cluster\n[collector]\nlog_interval = \"10m\" # every ten minutes\n\n[[nodes]]\nname = \"node1\"\nurl = \"http://10.0.0.1:19999\"\ndisk = \"/data\"\n\n[[nodes]]\nname = \"node2\"\nurl = \"http://10.0.0.2:19999\"\n";

    #[test]
    fn load_apply_and_keep_everything_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dsmon.toml");
        std::fs::write(&path, FILE).unwrap();
        let v = load(&path).unwrap();
        assert_eq!(v.error, None);
        assert_eq!(v.settings.mode, "local");
        assert_eq!(v.settings.log_interval, "10m");
        assert_eq!(v.settings.live_interval, "2s");
        assert_eq!(v.settings.nodes.len(), 2);

        let mut s = v.settings.clone();
        s.nodes.reverse();
        s.nodes.push(NodeSetting {
            name: "node3".into(),
            url: "http://10.0.0.3:19999".into(),
        });
        s.live_interval = "5s".into();
        let cfg = save(&path, &s).unwrap();
        assert_eq!(cfg.nodes.len(), 3);
        assert_eq!(cfg.nodes[0].name, "node2");
        // node1 kept its disk; comments survived.
        assert_eq!(cfg.nodes[1].disk, "/data");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("# my cluster") && text.contains("# every ten minutes"),
            "{text}"
        );
        assert_eq!(load(&path).unwrap().settings, s);
    }

    #[test]
    fn invalid_changes_leave_the_file_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dsmon.toml");
        std::fs::write(&path, FILE).unwrap();
        let mut s = load(&path).unwrap().settings;
        s.timeout = "20m".into(); // longer than log_interval
        let e = save(&path, &s).unwrap_err().to_string();
        assert!(e.contains("collector.timeout"), "{e}");
        s.timeout = "5s".into();
        s.mode = "remote".into();
        s.server_url = "https://monitor.example.com".into();
        let e = save(&path, &s).unwrap_err().to_string();
        assert!(e.contains("[auth]"), "{e}");
        s.nodes[0].url = String::new();
        let e = save(&path, &s).unwrap_err().to_string();
        assert!(e.contains("node 1"), "{e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), FILE);
    }

    #[test]
    fn sign_in_and_remote_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new").join("dsmon.toml");
        let mut s = load(&path).unwrap().settings;
        s.mode = "remote".into();
        s.server_url = "https://monitor.example.com".into();
        s.auth = Some(AuthSetting {
            issuer: String::new(),
            client_id: "123.apps.googleusercontent.com".into(),
            client_secret: Some("desktop-secret".into()),
            client_secret_set: false,
            admins: vec!["Alice@example.com".into()],
            users: vec!["*@example.com".into(), " ".into()],
        });
        let cfg = save(&path, &s).unwrap();
        assert!(matches!(cfg.desktop, config::DesktopMode::Remote(_)));
        let a = cfg.auth.unwrap();
        assert_eq!(a.client_secret.expose(), "desktop-secret");
        assert_eq!(a.admins, vec!["alice@example.com".to_string()]);
        let v = load(&path).unwrap();
        let auth = v.settings.auth.clone().unwrap();
        assert!(auth.client_secret_set);
        // The secret is never sent back to the page.
        let json = serde_json::to_string(&auth).unwrap();
        assert!(!json.contains("desktop-secret"), "{json}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // Back to local without sign-in.
        let mut s = v.settings;
        s.mode = "local".into();
        s.auth = None;
        let cfg = save(&path, &s).unwrap();
        assert_eq!(cfg.desktop, config::DesktopMode::Local);
        assert!(cfg.auth.is_none());
        assert!(!std::fs::read_to_string(&path)
            .unwrap()
            .contains("[desktop]"));
    }
}
