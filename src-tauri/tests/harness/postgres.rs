//! A throw-away PostgreSQL 15 cluster (initdb in a temp directory, stopped and removed on drop):
//! the same module as the store crate's own tests use.

#[path = "../../crates/store/tests/pg_cluster/mod.rs"]
mod cluster;

#[allow(unused_imports)]
pub use cluster::*;
