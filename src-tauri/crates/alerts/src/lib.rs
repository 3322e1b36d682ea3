//! dsmon's alerts: every live poll is evaluated against the rules ([`eval`]); state changes are
//! recorded in the store; notifications go out through the configured notifiers ([`notify`]),
//! unless silenced or in a maintenance window ([`silence`]), grouped under storm control.

pub mod model;
pub mod notify;

pub use model::{AlertState, DeliveryOutcome, NoticeItem, NoticeKind, Notification};
