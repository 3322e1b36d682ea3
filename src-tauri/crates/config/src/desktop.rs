//! `[desktop]`: where the desktop app takes its data from.

use serde::Deserialize;
use url::Url;

use crate::{is_loopback, KeyError};

/// `[desktop] mode`: the desktop app's own collector and database, or a `dsmon serve` server.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DesktopMode {
    /// Poll `[[nodes]]` and log to `[storage] path` inside the app.
    #[default]
    Local,
    /// Show the data of the `dsmon serve` at this address (`server_url`), with its roles.
    Remote(Url),
}

/// `[desktop]` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDesktop {
    mode: Option<String>,
    server_url: Option<String>,
}

fn err(key: &str, message: impl Into<String>) -> KeyError {
    KeyError::at("desktop", key, message)
}

/// Checks `[desktop]`; remote mode signs in, so it needs `[auth]` (`has_auth`).
pub(crate) fn validate(d: RawDesktop, has_auth: bool) -> Result<DesktopMode, KeyError> {
    match d.mode.as_deref().map(str::trim).unwrap_or("local") {
        "local" => {
            if d.server_url.is_some() {
                return Err(err("server_url", "only used with mode = \"remote\""));
            }
            Ok(DesktopMode::Local)
        }
        "remote" => {
            let url = server_url(d.server_url.as_deref())?;
            if !has_auth {
                return Err(err(
                    "mode",
                    "remote mode signs in to the server: configure [auth] with the desktop client",
                ));
            }
            Ok(DesktopMode::Remote(url))
        }
        other => Err(err(
            "mode",
            format!("{other:?}: write \"local\" or \"remote\""),
        )),
    }
}

/// `server_url` of remote mode: https (plain http only on loopback), no query or credentials.
fn server_url(text: Option<&str>) -> Result<Url, KeyError> {
    let text = text.map(str::trim).unwrap_or("");
    if text.is_empty() {
        return Err(err(
            "server_url",
            "mode = \"remote\" needs the server's address, e.g. \"https://monitor.example.com\"",
        ));
    }
    let u =
        Url::parse(text).map_err(|e| err("server_url", format!("{text:?}: not a URL ({e})")))?;
    let scheme_ok = u.scheme() == "https" || (u.scheme() == "http" && is_loopback(&u));
    if !scheme_ok || u.query().is_some() || u.fragment().is_some() || !u.username().is_empty() {
        return Err(err(
            "server_url",
            format!("{text:?}: must be an https address without query or credentials (plain http only on loopback)"),
        ));
    }
    Ok(u)
}
