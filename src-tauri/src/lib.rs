//! dsmon: a distributed systems monitor over Netdata agents.
//!
//! Data flows one way: agents -> [`netdata`] -> [`collector`] -> [`store`] -> [`export`] -> [`history`] / [`live`] -> [`server`] (and the desktop shell). The core modules know nothing of the desktop shell.

pub mod acl;
pub mod auth;
pub mod collector;
pub mod config;
pub mod export;
pub mod history;
pub mod import;
pub mod live;
pub mod netdata;
pub mod server;
pub mod settings;
pub mod store;

#[cfg(feature = "gui")]
pub mod desktop;
