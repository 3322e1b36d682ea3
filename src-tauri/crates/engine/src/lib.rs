//! dsmon's engine: the node registry (the set of nodes, which can change while running), per-node
//! pollers that keep each node's state in one place and publish typed [`NodeEvent`]s, the logger
//! that writes one row per node per tick, and the live view. Every outcome is a typed event that
//! logs and counts ([`events`]).

pub mod collector;
pub mod events;
pub mod live;
pub mod logger;
pub mod parents;
pub mod registry;
mod state;

pub use collector::{Collector, CollectorError, Probe, Reading, TickReport};
pub use events::{counters, NodeEvent, StateChange};
pub use live::{LiveSnapshot, NodeLive};
pub use parents::{ChildReport, Discovery, ParentReport, Skipped};
pub use registry::{Change, NodeRegistry, NodeSet};
