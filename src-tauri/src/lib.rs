//! dsmon: a distributed systems monitor over Netdata agents.
//!
//! Data flows one way: agents -> [`netdata`] -> [`collector`] -> [`store`] -> [`export`] (and, later,
//! history, live views and the UI). The core modules know nothing of the desktop shell.

pub mod collector;
pub mod config;
pub mod export;
pub mod netdata;
pub mod store;

#[cfg(feature = "gui")]
pub mod desktop;
