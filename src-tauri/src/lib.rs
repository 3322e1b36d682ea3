//! dsmon: a distributed systems monitor over Netdata agents.
//!
//! This package is the shell: the `dsmon` command line ([`cli`] in the binary) and, with the `gui`
//! feature, the Tauri desktop app ([`desktop`]). Everything else lives in the crates under
//! `src-tauri/crates/` (see docs/architecture.md); they are re-exported here under short names for
//! the integration tests and benchmarks.

pub use dsmon_app as app;
pub use dsmon_auth as auth;
pub use dsmon_config as config;
pub use dsmon_core as core;
pub use dsmon_engine as engine;
pub use dsmon_netdata as netdata;
pub use dsmon_server as server;
pub use dsmon_store as store;

#[cfg(feature = "gui")]
pub mod desktop;

/// Every agent costs up to four sockets during a poll; lifts the soft open-files limit to the hard
/// one so that hundreds of nodes do not run into the usual 1024.
pub fn raise_fd_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::debug!(limit = n, "open files limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open files limit"),
    }
}
