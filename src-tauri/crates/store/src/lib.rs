//! dsmon's storage: the logged rows and their roll-ups, the history read from them, the CSV/JSON
//! export and import, and the sign-in state (users, sessions, audit). SQLite is the embedded
//! implementation.

pub mod auth_db;
pub mod export;
pub mod history;
pub mod import;
mod sqlite;

pub use dsmon_core::Row;
pub use sqlite::{Period, Result, RowQuery, Store, StoreError, MIGRATIONS, ROLLUPS};
