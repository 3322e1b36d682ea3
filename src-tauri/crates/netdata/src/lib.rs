//! The Netdata agent client: the only place that knows Netdata's HTTP API, its chart names and the
//! formulas that turn its dimensions into dsmon's metrics; and [`acl`], which reads what an agent
//! lets this monitor do.

pub mod acl;
mod agent;

pub use agent::*;
