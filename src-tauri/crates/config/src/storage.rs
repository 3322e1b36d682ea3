//! `[storage]`: where the database is.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::KeyError;

#[derive(Debug, Clone, PartialEq)]
pub struct StorageConfig {
    pub path: PathBuf,
}

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
}

/// Checks `[storage]`; a relative path is taken relative to `base_dir`.
pub(crate) fn validate(raw: RawStorage, base_dir: &Path) -> Result<StorageConfig, KeyError> {
    let path = match raw.path {
        Some(p) if p.as_os_str().is_empty() => {
            return Err(KeyError::at("storage", "path", "must not be empty"))
        }
        Some(p) => base_dir.join(p),
        None => default_storage_path(),
    };
    Ok(StorageConfig { path })
}
