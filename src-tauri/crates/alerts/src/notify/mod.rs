//! Delivery of notifications: one module per format, and [`Notifiers`] which sends a
//! [`Notification`] to a configured notifier with retries and reports a [`DeliveryOutcome`].
//!
//! | type | module | what goes out |
//! |---|---|---|
//! | `email` | [`email`] | SMTP (STARTTLS / implicit TLS, AUTH), plain text + HTML |
//! | `webhook` | [`webhook`] | JSON POST, HMAC-SHA256 signature with a secret |
//! | `slack`, `discord`, `teams` | [`chat`] | their incoming-webhook JSON |
//! | `ntfy` | [`ntfy`] | text POST with Title/Priority/Tags/Click headers |
//! | `alertmanager` | [`alertmanager`] | `POST /api/v2/alerts` |
//! | `desktop` | here | [`DesktopSink::show`] in the desktop app |
//!
//! A delivery is tried up to `attempts` times with pauses of `backoff`, `2 * backoff`, `4 *
//! backoff`, ... in between. A refusal that retrying cannot change (an HTTP 4xx other than 408,
//! 425 and 429; an SMTP 5xx; STARTTLS required but not offered) ends it at once. Every try and
//! the outcome are logged and counted ([`delivery_counters`]). Answers and logs never carry a
//! password, token or webhook secret, and show only the scheme and host of a URL.
//!
//! Desktop notifications need the desktop app: without a [`DesktopSink`] (`dsmon serve`) the
//! outcome is `ok = false, attempts = 0` with the answer [`NO_DESKTOP`], counted as skipped.

pub mod alertmanager;
pub mod chat;
pub mod email;
mod events;
pub mod http;
pub mod ntfy;
pub mod text;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use dsmon_config::alerts::{NotifierConfig, NotifierKind};

pub use events::{delivery_counters, DeliverySnapshot, TypeCounts, TYPES};

use crate::model::{DeliveryOutcome, Notification};

/// The desktop app's notification area (the Tauri shell implements it).
pub trait DesktopSink: Send + Sync {
    fn show(&self, title: &str, body: &str) -> Result<(), String>;
}

/// The answer of a desktop notifier where there is no desktop.
pub const NO_DESKTOP: &str =
    "not shown: desktop notifications are shown by the desktop app only (not by dsmon serve)";

/// A single try never takes longer than this (HTTP and SMTP have their own, shorter, timeouts).
const ATTEMPT_LIMIT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("notifier {name}: {message}")]
    Setup { name: String, message: String },
}

/// What one try came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// Delivered; the receiver's answer.
    Done(String),
    /// Failed; another try may work.
    Retry(String),
    /// Refused in a way another try will not change.
    GiveUp(String),
}

enum Sender {
    Email(Box<email::Mailer>),
    Http(reqwest::Client),
    Desktop,
}

struct Notifier {
    config: NotifierConfig,
    sender: Sender,
    /// Strings never to show in an answer: credentials, and the secret-bearing chat URLs.
    secrets: Vec<String>,
}

/// The configured notifiers, ready to send.
pub struct Notifiers {
    notifiers: Vec<Notifier>,
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
        let notifiers = configs
            .iter()
            .map(|c| {
                build(c).map_err(|message| NotifyError::Setup {
                    name: c.name.clone(),
                    message,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            notifiers,
            attempts: attempts.max(1),
            backoff,
            desktop: None,
        })
    }

    /// Where `desktop` notifiers show their notifications (without one they are skipped).
    pub fn set_desktop(&mut self, sink: Arc<dyn DesktopSink>) {
        self.desktop = Some(sink);
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.notifiers.iter().map(|n| n.config.name.as_str())
    }

    pub fn config(&self, name: &str) -> Option<&NotifierConfig> {
        self.find(name).map(|n| &n.config)
    }

    /// The pause after the `attempt`-th failed try: `backoff * 2^(attempt - 1)`.
    pub fn pause_after(&self, attempt: u32) -> Duration {
        self.backoff
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
    }

    fn find(&self, name: &str) -> Option<&Notifier> {
        self.notifiers.iter().find(|n| n.config.name == name)
    }

    /// Sends `n` to the notifier `name`, retrying failures with a doubling pause, and says how it
    /// went. Never panics; an unknown name is a failed outcome.
    pub async fn deliver(&self, name: &str, n: &Notification) -> DeliveryOutcome {
        let Some(notifier) = self.find(name) else {
            tracing::warn!(notifier = name, rule = %n.rule, "no notifier of that name");
            return DeliveryOutcome {
                ok: false,
                attempts: 0,
                answer: format!("no notifier named {name:?}"),
            };
        };
        let target = events::Target {
            notifier: name,
            notifier_type: notifier.config.kind.type_name(),
            rule: &n.rule,
            kind: n.kind.as_str(),
            nodes: n.items.len(),
        };
        if matches!(notifier.sender, Sender::Desktop) && self.desktop.is_none() {
            let outcome = DeliveryOutcome {
                ok: false,
                attempts: 0,
                answer: NO_DESKTOP.into(),
            };
            events::Delivered {
                target: &target,
                outcome: &outcome,
                skipped: true,
            }
            .emit();
            return outcome;
        }
        let outcome = match self.prepare(notifier, n) {
            Ok(prepared) => self.tries(notifier, &prepared, n, &target).await,
            Err(e) => DeliveryOutcome {
                ok: false,
                attempts: 0,
                answer: text::scrub(&e, &notifier.secrets),
            },
        };
        events::Delivered {
            target: &target,
            outcome: &outcome,
            skipped: false,
        }
        .emit();
        outcome
    }

    /// The HTTP request (built once for every try), or nothing for email and desktop.
    fn prepare(
        &self,
        notifier: &Notifier,
        n: &Notification,
    ) -> Result<Option<http::Request>, String> {
        Ok(Some(match &notifier.config.kind {
            NotifierKind::Webhook { url, secret } => {
                webhook::request(url, secret.as_ref().map(|s| s.expose()), n)?
            }
            NotifierKind::Slack { url } => http::Request::json(url.clone(), &chat::slack(n)),
            NotifierKind::Discord { url } => http::Request::json(url.clone(), &chat::discord(n)),
            NotifierKind::Teams { url } => http::Request::json(url.clone(), &chat::teams(n)),
            NotifierKind::Ntfy { url, token } => {
                ntfy::request(url, token.as_ref().map(|s| s.expose()), n)?
            }
            NotifierKind::Alertmanager { url } => alertmanager::request(url, n),
            NotifierKind::Email { .. } | NotifierKind::Desktop => return Ok(None),
        }))
    }

    async fn tries(
        &self,
        notifier: &Notifier,
        prepared: &Option<http::Request>,
        n: &Notification,
        target: &events::Target<'_>,
    ) -> DeliveryOutcome {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result =
                match tokio::time::timeout(ATTEMPT_LIMIT, self.try_once(notifier, prepared, n))
                    .await
                {
                    Ok(r) => r,
                    Err(_) => {
                        Attempt::Retry(format!("no answer within {} s", ATTEMPT_LIMIT.as_secs()))
                    }
                };
            let (answer, again) = match result {
                Attempt::Done(a) => {
                    return DeliveryOutcome {
                        ok: true,
                        attempts: attempt,
                        answer: text::scrub(&a, &notifier.secrets),
                    }
                }
                Attempt::Retry(a) => (text::scrub(&a, &notifier.secrets), true),
                Attempt::GiveUp(a) => (text::scrub(&a, &notifier.secrets), false),
            };
            let retry_in = (again && attempt < self.attempts).then(|| self.pause_after(attempt));
            events::AttemptFailed {
                target,
                attempt,
                of: self.attempts,
                answer: &answer,
                retry_in,
            }
            .emit();
            match retry_in {
                Some(pause) => tokio::time::sleep(pause).await,
                None => {
                    return DeliveryOutcome {
                        ok: false,
                        attempts: attempt,
                        answer,
                    }
                }
            }
        }
    }

    async fn try_once(
        &self,
        notifier: &Notifier,
        prepared: &Option<http::Request>,
        n: &Notification,
    ) -> Attempt {
        match (&notifier.sender, prepared) {
            (Sender::Http(client), Some(req)) => http::post(client, req).await,
            (Sender::Email(mailer), _) => mailer.send(n).await,
            (Sender::Desktop, _) => match &self.desktop {
                Some(sink) => {
                    let (title, body) = desktop_text(n);
                    match sink.show(&title, &body) {
                        Ok(()) => Attempt::Done("shown".into()),
                        Err(e) => Attempt::Retry(format!("desktop: {e}")),
                    }
                }
                None => Attempt::GiveUp(NO_DESKTOP.into()),
            },
            (Sender::Http(_), None) => Attempt::GiveUp("nothing to send".into()),
        }
    }
}

/// The desktop notification's title and body: `FIRING cpu high on web-1` and one line per node
/// (the first ten).
pub fn desktop_text(n: &Notification) -> (String, String) {
    let title = match n.items.as_slice() {
        [one] => format!("{} {} on {}", text::state_word(n.kind), n.rule, one.node),
        many => format!(
            "{} {} on {} nodes",
            text::state_word(n.kind),
            n.rule,
            many.len()
        ),
    };
    let mut lines: Vec<String> = n
        .items
        .iter()
        .take(10)
        .map(|i| format!("{}: {}", i.node, n.describe_value(i.value)))
        .collect();
    if n.items.len() > 10 {
        lines.push(format!("... and {} more", n.items.len() - 10));
    }
    (text::one_line(&title), lines.join("\n"))
}

fn build(c: &NotifierConfig) -> Result<Notifier, String> {
    let ca = c.ca_file.as_deref();
    let mut secrets = Vec::new();
    let sender = match &c.kind {
        NotifierKind::Email {
            url,
            starttls,
            from,
            to,
            username,
            password,
        } => {
            if let Some(p) = password {
                secrets.push(p.expose().to_string());
            }
            Sender::Email(Box::new(email::Mailer::new(&email::MailerConfig {
                url,
                starttls: *starttls,
                from,
                to,
                username: username.as_deref(),
                password: password.as_ref().map(|p| p.expose()),
                ca_file: ca,
            })?))
        }
        NotifierKind::Desktop => Sender::Desktop,
        other => {
            match other {
                NotifierKind::Webhook {
                    secret: Some(s), ..
                } => secrets.push(s.expose().to_string()),
                NotifierKind::Ntfy { token: Some(t), .. } => secrets.push(t.expose().to_string()),
                NotifierKind::Slack { url }
                | NotifierKind::Discord { url }
                | NotifierKind::Teams { url } => {
                    // The path (and query) of a chat webhook URL is its credential.
                    secrets.push(url.to_string());
                    let rest = &url[url::Position::BeforePath..];
                    if rest.len() > 1 {
                        secrets.push(rest.to_string());
                    }
                }
                _ => {}
            }
            Sender::Http(http::client(ca)?)
        }
    };
    Ok(Notifier {
        config: c.clone(),
        sender,
        secrets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::text::tests::{firing, group};
    use dsmon_config::Secret;
    use std::sync::Mutex;

    fn cfg(name: &str, kind: NotifierKind) -> NotifierConfig {
        NotifierConfig {
            name: name.into(),
            kind,
            ca_file: None,
        }
    }

    #[test]
    fn pauses_double() {
        let n = Notifiers::new(&[], 4, Duration::from_millis(100)).unwrap();
        assert_eq!(n.pause_after(1), Duration::from_millis(100));
        assert_eq!(n.pause_after(2), Duration::from_millis(200));
        assert_eq!(n.pause_after(3), Duration::from_millis(400));
        assert!(n.pause_after(1000) >= Duration::from_secs(6000));
    }

    #[tokio::test]
    async fn unknown_notifier_is_a_failed_outcome() {
        let n = Notifiers::new(&[], 3, Duration::from_millis(100)).unwrap();
        let o = n.deliver("nope", &firing()).await;
        assert!(!o.ok);
        assert_eq!(o.attempts, 0);
        assert!(o.answer.contains("nope"));
    }

    #[tokio::test]
    async fn desktop_without_a_sink_is_skipped() {
        let n = Notifiers::new(
            &[cfg("d", NotifierKind::Desktop)],
            3,
            Duration::from_millis(100),
        )
        .unwrap();
        let o = n.deliver("d", &firing()).await;
        assert_eq!(
            o,
            DeliveryOutcome {
                ok: false,
                attempts: 0,
                answer: NO_DESKTOP.into()
            }
        );
    }

    struct Flaky {
        fail_first: u32,
        shown: Mutex<Vec<(String, String)>>,
    }

    impl DesktopSink for Flaky {
        fn show(&self, title: &str, body: &str) -> Result<(), String> {
            let mut s = self.shown.lock().map_err(|e| e.to_string())?;
            s.push((title.into(), body.into()));
            if s.len() as u32 <= self.fail_first {
                return Err("notification daemon busy".into());
            }
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn desktop_retries_with_doubling_pauses() {
        let mut n = Notifiers::new(
            &[cfg("d", NotifierKind::Desktop)],
            4,
            Duration::from_secs(2),
        )
        .unwrap();
        let sink = Arc::new(Flaky {
            fail_first: 2,
            shown: Mutex::new(Vec::new()),
        });
        n.set_desktop(sink.clone());
        let start = tokio::time::Instant::now();
        let o = n.deliver("d", &group(12)).await;
        assert!(o.ok, "{o:?}");
        assert_eq!(o.attempts, 3);
        // 2 s after the first failure, 4 s after the second.
        assert_eq!(start.elapsed(), Duration::from_secs(6));
        let shown = sink.shown.lock().unwrap();
        assert_eq!(shown[0].0, "FIRING cpu high on 12 nodes");
        assert!(shown[0].1.ends_with("... and 2 more"), "{}", shown[0].1);
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_the_attempts() {
        let mut n = Notifiers::new(
            &[cfg("d", NotifierKind::Desktop)],
            3,
            Duration::from_secs(1),
        )
        .unwrap();
        n.set_desktop(Arc::new(Flaky {
            fail_first: 100,
            shown: Mutex::new(Vec::new()),
        }));
        let before = delivery_counters();
        let o = n.deliver("d", &firing()).await;
        assert!(!o.ok);
        assert_eq!(o.attempts, 3);
        assert_eq!(o.answer, "desktop: notification daemon busy");
        let after = delivery_counters();
        let (b, a) = (
            before.get("desktop").unwrap(),
            after.get("desktop").unwrap(),
        );
        assert!(a.failed > b.failed);
        assert!(a.failed_attempts >= b.failed_attempts + 3);
    }

    #[test]
    fn bad_ca_file_is_a_setup_error() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not a certificate").unwrap();
        let mut c = cfg(
            "hook",
            NotifierKind::Webhook {
                url: url::Url::parse("https://127.0.0.1:1/").unwrap(),
                secret: Some(Secret::new("s".into())),
            },
        );
        c.ca_file = Some(ca);
        let e = Notifiers::new(&[c], 3, Duration::from_secs(1))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.starts_with("notifier hook: ca_file"), "{e}");
    }

    #[test]
    fn notifiers_and_deliveries_can_go_to_other_tasks() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>(_: T) {}
        send_sync::<Notifiers>();
        let n = Notifiers::new(&[], 1, Duration::from_millis(100)).unwrap();
        let notification = firing();
        send(n.deliver("x", &notification));
    }

    #[test]
    fn notifiers_are_built_outside_a_runtime() {
        let email = cfg(
            "mail",
            NotifierKind::Email {
                url: url::Url::parse("smtp://127.0.0.1:1").unwrap(),
                starttls: dsmon_config::alerts::StartTls::Required,
                from: "dsmon@example.com".into(),
                to: vec!["ops@example.com".into()],
                username: Some("u".into()),
                password: Some(Secret::new("p4ssword".into())),
            },
        );
        let hook = cfg(
            "hook",
            NotifierKind::Webhook {
                url: url::Url::parse("http://127.0.0.1:1/").unwrap(),
                secret: None,
            },
        );
        let n = Notifiers::new(&[email, hook], 2, Duration::from_millis(100)).unwrap();
        assert_eq!(n.names().collect::<Vec<_>>(), ["mail", "hook"]);
        assert_eq!(
            n.config("hook").map(|c| c.kind.type_name()),
            Some("webhook")
        );
    }

    #[tokio::test]
    async fn refused_connection_answer_shows_no_chat_secret() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let url = url::Url::parse(&format!(
            "http://127.0.0.1:{port}/services/T000/B000/XXXXSECRET"
        ))
        .unwrap();
        let n = Notifiers::new(
            &[cfg("slack", NotifierKind::Slack { url })],
            1,
            Duration::from_millis(100),
        )
        .unwrap();
        let o = n.deliver("slack", &firing()).await;
        assert!(!o.ok);
        assert_eq!(o.attempts, 1);
        assert!(
            o.answer.starts_with(&format!("http://127.0.0.1:{port}: ")),
            "{}",
            o.answer
        );
        assert!(!o.answer.contains("XXXXSECRET"), "{}", o.answer);
    }
}
