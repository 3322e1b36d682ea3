//! dsmon's engine: polls the agents (each node under its own time budget), logs one row per node
//! per tick to the store, and publishes the live view.

pub mod collector;
pub mod live;

pub use collector::{Collector, CollectorError, Reading, TickReport};
pub use live::{LiveSnapshot, NodeLive};
