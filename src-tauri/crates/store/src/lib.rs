//! dsmon's storage: the logged rows and their roll-ups, the history read from them, the CSV/JSON
//! export and import, and the sign-in state (users, sessions, audit). SQLite is the embedded
//! implementation.

pub mod alert_db;
pub mod auth_db;
pub mod conformance;
pub mod export;
pub mod history;
pub mod import;
mod sqlite;
mod traits;

pub use alert_db::SqliteAlertStore;
pub use auth_db::SqliteAuthStore;
pub use dsmon_core::Row;
pub use sqlite::{Period, Result, RowQuery, SqliteStore, StoreError, MIGRATIONS, ROLLUPS};
pub use traits::{AlertStore, AuthStore, PendingCaps, PendingPut, SampleStore, SharedSamples};

/// Anonymous audit entries that repeat one first seen less than this long ago (seconds) are
/// counted into it (see [`AuthStore::audit`]).
pub const AUDIT_COLLAPSE_SECS: i64 = 3600;
