//! Delivery of notifications: one module per format, and [`Notifiers`] which sends a
//! [`Notification`] to a configured notifier with retries and reports a [`DeliveryOutcome`].
//!
//! (Skeleton: the formats and senders are being written; `deliver` reports "not implemented".)

use std::sync::Arc;
use std::time::Duration;

use dsmon_config::alerts::NotifierConfig;

use crate::model::{DeliveryOutcome, Notification};

/// The desktop app's notification area (the Tauri shell implements it).
pub trait DesktopSink: Send + Sync {
    fn show(&self, title: &str, body: &str) -> Result<(), String>;
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("notifier {name}: {message}")]
    Setup { name: String, message: String },
}

/// The configured notifiers, ready to send.
pub struct Notifiers {
    configs: Vec<NotifierConfig>,
    attempts: u32,
    backoff: Duration,
    desktop: Option<Arc<dyn DesktopSink>>,
}

impl Notifiers {
    /// Builds the senders (HTTP clients with each notifier's CA, SMTP transports).
    pub fn new(
        configs: &[NotifierConfig],
        attempts: u32,
        backoff: Duration,
    ) -> Result<Self, NotifyError> {
        Ok(Self {
            configs: configs.to_vec(),
            attempts,
            backoff,
            desktop: None,
        })
    }

    /// Where `desktop` notifiers show their notifications (without one they are skipped).
    pub fn set_desktop(&mut self, sink: Arc<dyn DesktopSink>) {
        self.desktop = Some(sink);
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.configs.iter().map(|c| c.name.as_str())
    }

    pub fn config(&self, name: &str) -> Option<&NotifierConfig> {
        self.configs.iter().find(|c| c.name == name)
    }

    /// Sends `n` to the notifier `name`, retrying failures with a doubling pause, and says how it
    /// went. Never panics; an unknown name is a failed outcome.
    pub async fn deliver(&self, name: &str, n: &Notification) -> DeliveryOutcome {
        let _ = (n, self.attempts, self.backoff, &self.desktop);
        DeliveryOutcome {
            ok: false,
            attempts: 0,
            answer: format!("notifier {name}: not implemented yet"),
        }
    }
}
