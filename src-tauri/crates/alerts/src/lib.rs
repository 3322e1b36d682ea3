//! dsmon's alerts: every live poll is evaluated against the rules ([`eval`], the one place an
//! alert changes state); what changed is kept in the store; notifications go out through the
//! configured notifiers ([`notify`]) unless silenced or in a maintenance window ([`silence`]),
//! grouped under storm control ([`storm`]). [`Alerts`] runs it and answers the application layer.

pub mod eval;
pub mod events;
pub mod model;
pub mod notify;
pub mod predict;
mod service;
pub mod silence;
pub mod storm;

pub use eval::{CurrentAlert, Evaluator, Input, Rule};
pub use model::{AlertState, DeliveryOutcome, NoticeItem, NoticeKind, Notification};
pub use service::{
    AlertError, Alerts, ConfigView, DeliveryView, EventView, MaintenanceView, NewSilence,
    NotifierView, SilenceView,
};
