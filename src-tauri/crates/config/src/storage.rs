//! `[storage]`: where the database is. SQLite (`path`) is the embedded default; `url` names a
//! PostgreSQL database shared by several instances, with `password_file`, `ca_file` (TLS, rustls)
//! and `pool_size`.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use url::Url;

use crate::{KeyError, Secret};

#[derive(Debug, Clone, PartialEq)]
pub struct StorageConfig {
    /// The SQLite database (used when `postgres` is `None`).
    pub path: PathBuf,
    /// `url` given: PostgreSQL instead of SQLite.
    pub postgres: Option<PostgresStorage>,
}

/// A PostgreSQL database as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct PostgresStorage {
    /// `postgres://user@host[:port]/database[?options]`, without a password (refused in it).
    pub url: String,
    /// Read from `password_file` when the configuration is loaded; `None`: no password (trust,
    /// peer or certificate authentication).
    pub password: Option<Secret>,
    /// PEM certificate authorities for TLS; given, the connection must be TLS.
    pub ca_file: Option<PathBuf>,
    /// Connections each instance holds at most.
    pub pool_size: usize,
}

/// Default connections per instance: the logger, the alerts, and a few requests at once.
pub const DEFAULT_POOL_SIZE: usize = 8;
/// More is a mistake (PostgreSQL's default `max_connections` is 100, shared by every instance).
pub const MAX_POOL_SIZE: usize = 64;

/// The platform data directory's default database path.
pub fn default_storage_path() -> PathBuf {
    dirs::data_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("dsmon")
        .join("dsmon.sqlite3")
}

/// `[storage]` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStorage {
    path: Option<PathBuf>,
    url: Option<String>,
    password_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    pool_size: Option<i64>,
}

/// Checks a PostgreSQL URL: scheme, host, database, and no credentials in it. The message never
/// repeats the URL (it may hold a password).
fn postgres_url(text: &str) -> Result<Url, String> {
    let u = Url::parse(text.trim())
        .map_err(|e| format!("not a URL ({e}); e.g. postgres://dsmon@db.example.com/dsmon"))?;
    if !matches!(u.scheme(), "postgres" | "postgresql") {
        return Err("must be a postgres:// URL (or use `path` for SQLite)".into());
    }
    if u.password().is_some() {
        return Err("must not carry a password: put it in password_file".into());
    }
    if u.query_pairs()
        .any(|(k, _)| k.eq_ignore_ascii_case("password"))
    {
        return Err("must not carry a password: put it in password_file".into());
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err("needs a host, e.g. postgres://dsmon@db.example.com/dsmon".into());
    }
    if u.username().is_empty() {
        return Err("needs a user, e.g. postgres://dsmon@db.example.com/dsmon".into());
    }
    let db = u.path().trim_start_matches('/');
    if db.is_empty() || db.contains('/') {
        return Err("needs one database name as its path, e.g. .../dsmon".into());
    }
    Ok(u)
}

/// Checks a PostgreSQL URL given elsewhere (`dsmon migrate --to`) as `[storage] url` is checked;
/// the URL as dsmon will use it. The message never repeats the URL.
pub fn check_postgres_url(text: &str) -> Result<String, String> {
    postgres_url(text).map(|u| u.to_string())
}

/// Checks `[storage]`; relative paths are taken relative to `base_dir`.
pub(crate) fn validate(raw: RawStorage, base_dir: &Path) -> Result<StorageConfig, KeyError> {
    let e = |key: &str, m: String| KeyError::at("storage", key, m);
    let path = match raw.path {
        Some(p) if p.as_os_str().is_empty() => return Err(e("path", "must not be empty".into())),
        Some(_) if raw.url.is_some() => {
            return Err(e(
                "path",
                "and url are exclusive: path is the SQLite file, url a PostgreSQL database".into(),
            ))
        }
        Some(p) => base_dir.join(p),
        None => default_storage_path(),
    };
    let Some(url) = raw.url else {
        for (key, set) in [
            ("password_file", raw.password_file.is_some()),
            ("ca_file", raw.ca_file.is_some()),
            ("pool_size", raw.pool_size.is_some()),
        ] {
            if set {
                return Err(e(key, "only applies with url (PostgreSQL)".into()));
            }
        }
        return Ok(StorageConfig {
            path,
            postgres: None,
        });
    };
    let url = postgres_url(&url).map_err(|m| e("url", m))?;
    let password = match raw.password_file {
        None => None,
        Some(p) => {
            let p = base_dir.join(p);
            let text = std::fs::read_to_string(&p).map_err(|err| {
                e(
                    "password_file",
                    format!("{}: cannot read ({err})", p.display()),
                )
            })?;
            // One line: the password, without the line's end.
            let pw = text.trim_end_matches(['\n', '\r']);
            if pw.is_empty() {
                return Err(e("password_file", format!("{} is empty", p.display())));
            }
            Some(Secret::new(pw.to_string()))
        }
    };
    let ca_file = match raw.ca_file {
        None => None,
        Some(p) => {
            let p = base_dir.join(p);
            if !p.is_file() {
                return Err(e("ca_file", format!("{}: no such file", p.display())));
            }
            Some(p)
        }
    };
    let pool_size = match raw.pool_size {
        None => DEFAULT_POOL_SIZE,
        Some(n) if (1..=MAX_POOL_SIZE as i64).contains(&n) => n as usize,
        Some(_) => {
            return Err(e(
                "pool_size",
                format!("must be 1 to {MAX_POOL_SIZE} connections"),
            ))
        }
    };
    Ok(StorageConfig {
        path,
        postgres: Some(PostgresStorage {
            url: url.to_string(),
            password,
            ca_file,
            pool_size,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(toml_text: &str) -> RawStorage {
        toml::from_str(toml_text).expect("toml")
    }

    fn check(toml_text: &str, base: &Path) -> Result<StorageConfig, String> {
        validate(raw(toml_text), base).map_err(|e| format!("{}: {}", e.key, e.message))
    }

    #[test]
    fn sqlite_stays_the_default() {
        let c = check("", Path::new("/etc/dsmon")).expect("ok");
        assert_eq!((c.path, c.postgres), (default_storage_path(), None));
        let c = check("path = \"x.sqlite3\"", Path::new("/etc/dsmon")).expect("ok");
        assert_eq!(c.path, PathBuf::from("/etc/dsmon/x.sqlite3"));
    }

    #[test]
    fn postgres_with_its_files() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("pw"), "s3cret pass\n").expect("pw");
        std::fs::write(dir.path().join("ca.pem"), "-----BEGIN CERTIFICATE-----\n").expect("ca");
        let c = check(
            "url = \"postgres://dsmon@db.example.com/dsmon\"\npassword_file = \"pw\"\n\
             ca_file = \"ca.pem\"\npool_size = 4",
            dir.path(),
        )
        .expect("ok");
        let pg = c.postgres.expect("postgres");
        assert_eq!(pg.url, "postgres://dsmon@db.example.com/dsmon");
        assert_eq!(
            pg.password.as_ref().map(Secret::expose),
            Some("s3cret pass")
        );
        assert_eq!(pg.ca_file, Some(dir.path().join("ca.pem")));
        assert_eq!(pg.pool_size, 4);
        assert!(!format!("{pg:?}").contains("s3cret"), "Debug hides it");
        let c = check(
            "url = \"postgresql://u@127.0.0.1:5433/d?connect_timeout=3\"",
            dir.path(),
        )
        .expect("ok");
        assert_eq!(c.postgres.expect("pg").pool_size, DEFAULT_POOL_SIZE);
    }

    #[test]
    fn bad_postgres_settings_are_refused_without_echoing_secrets() {
        let dir = tempfile::tempdir().expect("dir");
        let cases = [
            ("url = \"mysql://u@h/d\"", "storage.url", "postgres://"),
            (
                "url = \"postgres://u:hunter2@h/d\"",
                "storage.url",
                "password_file",
            ),
            (
                "url = \"postgres://u@h/d?password=hunter2\"",
                "storage.url",
                "password_file",
            ),
            ("url = \"postgres://u@h/\"", "storage.url", "database"),
            ("url = \"postgres://h/d\"", "storage.url", "user"),
            ("url = \"not a url hunter2\"", "storage.url", "not a URL"),
            (
                "url = \"postgres://u@h/d\"\npath = \"x\"",
                "storage.path",
                "exclusive",
            ),
            (
                "url = \"postgres://u@h/d\"\npool_size = 0",
                "storage.pool_size",
                "1 to",
            ),
            (
                "url = \"postgres://u@h/d\"\npool_size = 1000",
                "storage.pool_size",
                "1 to",
            ),
            (
                "url = \"postgres://u@h/d\"\npassword_file = \"none\"",
                "storage.password_file",
                "cannot read",
            ),
            (
                "url = \"postgres://u@h/d\"\nca_file = \"none.pem\"",
                "storage.ca_file",
                "no such file",
            ),
            (
                "password_file = \"pw\"",
                "storage.password_file",
                "only applies with url",
            ),
            (
                "pool_size = 3",
                "storage.pool_size",
                "only applies with url",
            ),
        ];
        for (text, key, words) in cases {
            let e = check(text, dir.path()).expect_err(text);
            assert!(e.starts_with(key) && e.contains(words), "{text}: {e}");
            assert!(!e.contains("hunter2"), "{text}: {e}");
        }
        std::fs::write(dir.path().join("empty"), "\n").expect("empty");
        let e = check(
            "url = \"postgres://u@h/d\"\npassword_file = \"empty\"",
            dir.path(),
        )
        .expect_err("empty");
        assert!(e.contains("is empty"), "{e}");
    }
}
