//! Email over SMTP (lettre, rustls).
//!
//! - `smtp://host[:port]` (port 587 by default): STARTTLS when the server offers it; with
//!   `starttls = "required"` a server that does not offer it is refused.
//! - `smtps://host[:port]` (port 465 by default): TLS from the first byte.
//! - `username` + `password_file`: SMTP AUTH (PLAIN or LOGIN, whichever the server offers).
//! - The certificate is checked against the system roots and the notifier's `ca_file`.
//!
//! The message is `multipart/alternative`, plain text and HTML; the subject names the state,
//! rule, node and value: `[dsmon] FIRING cpu high on web-1: cpu_pct 93.2 (above 90)`. A group
//! lists every node in the body.

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::AsyncSmtpTransportBuilder;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use url::{Host, Url};

use dsmon_config::alerts::StartTls;

use super::http::error_chain;
use super::text::{
    self, condition, headline, html_escape, item_line, notification_link, rfc3339, state_word,
};
use super::Attempt;
use crate::model::Notification;

/// Each SMTP command's timeout.
pub const TIMEOUT: Duration = Duration::from_secs(10);

pub fn subject(n: &Notification) -> String {
    format!("[dsmon] {}", headline(n))
}

pub fn plain_body(n: &Notification) -> String {
    let mut s = format!(
        "{} {} ({}), {} node{}\nCondition: {}\n\n",
        state_word(n.kind),
        n.rule,
        n.severity.as_str(),
        n.items.len(),
        if n.items.len() == 1 { "" } else { "s" },
        condition(n)
    );
    for i in &n.items {
        s.push_str(&item_line(n, i));
        s.push('\n');
        if let Some(u) = text::link(i.url.as_deref()) {
            s.push_str(&format!("  {u}\n"));
        }
    }
    if n.items.len() != 1 {
        if let Some(u) = notification_link(n) {
            s.push_str(&format!("\n{u}\n"));
        }
    }
    s.push_str(&format!("\n-- \ndsmon, {}\n", rfc3339(n.at)));
    s
}

pub fn html_body(n: &Notification) -> String {
    let color = match (n.kind, n.severity) {
        (crate::model::NoticeKind::Resolved, _) => "#2eb67d",
        (_, crate::model::Severity::Critical) => "#e01e5a",
        _ => "#c98a00",
    };
    let mut rows = String::new();
    for i in &n.items {
        let node = match text::link(i.url.as_deref()) {
            Some(u) => format!(
                "<a href=\"{}\">{}</a>",
                html_escape(u),
                html_escape(&i.node)
            ),
            None => html_escape(&i.node),
        };
        rows.push_str(&format!(
            "<tr><td>{node}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            html_escape(&n.describe_value(i.value)),
            html_escape(&rfc3339(i.since)),
            i.ended
                .map(rfc3339)
                .map_or(String::new(), |e| html_escape(&e)),
        ));
    }
    let more = match (n.items.len(), notification_link(n)) {
        (1, _) | (_, None) => String::new(),
        (_, Some(u)) => format!("<p><a href=\"{}\">Open dsmon</a></p>\n", html_escape(u)),
    };
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\n\
         <body style=\"font-family: sans-serif\">\n\
         <h2 style=\"color: {color}\">{state} {rule}</h2>\n\
         <p>Severity: <b>{severity}</b>. Condition: {cond}.</p>\n\
         <table cellpadding=\"4\" border=\"1\" style=\"border-collapse: collapse\">\n\
         <tr><th>Node</th><th>Value</th><th>Since</th><th>Resolved</th></tr>\n{rows}</table>\n\
         {more}<p style=\"color: #888\">dsmon, {at}</p>\n</body></html>\n",
        title = html_escape(&subject(n)),
        state = state_word(n.kind),
        rule = html_escape(&n.rule),
        severity = n.severity.as_str(),
        cond = html_escape(&condition(n)),
        at = rfc3339(n.at),
    )
}

/// The message to `to` from `from`.
pub fn message(from: &Mailbox, to: &[Mailbox], n: &Notification) -> Result<Message, String> {
    let mut b = Message::builder()
        .from(from.clone())
        .subject(subject(n))
        .message_id(None);
    for t in to {
        b = b.to(t.clone());
    }
    b.multipart(MultiPart::alternative_plain_html(
        plain_body(n),
        html_body(n),
    ))
    .map_err(|e| format!("cannot build the message: {e}"))
}

/// One email notifier's SMTP transport (a small connection pool) and addresses.
pub struct Mailer {
    /// Made on the first send: lettre's pool starts its clean-up task when it is built, which
    /// needs a Tokio runtime, and [`super::Notifiers::new`] may run outside one.
    transport: OnceLock<AsyncSmtpTransport<Tokio1Executor>>,
    builder: AsyncSmtpTransportBuilder,
    from: Mailbox,
    to: Vec<Mailbox>,
}

/// What the email notifier needs from its configuration.
pub struct MailerConfig<'a> {
    pub url: &'a Url,
    pub starttls: StartTls,
    pub from: &'a str,
    pub to: &'a [String],
    pub username: Option<&'a str>,
    pub password: Option<&'a str>,
    pub ca_file: Option<&'a Path>,
}

impl Mailer {
    pub fn new(c: &MailerConfig<'_>) -> Result<Self, String> {
        let from: Mailbox = c
            .from
            .parse()
            .map_err(|e| format!("from {:?}: {e}", c.from))?;
        let to =
            c.to.iter()
                .map(|t| t.parse().map_err(|e| format!("to {t:?}: {e}")))
                .collect::<Result<Vec<Mailbox>, String>>()?;
        let host = match c.url.host() {
            Some(Host::Domain(d)) => d.to_string(),
            Some(Host::Ipv4(a)) => a.to_string(),
            Some(Host::Ipv6(a)) => a.to_string(),
            None => return Err(format!("{}: no host", c.url)),
        };
        let implicit = match c.url.scheme() {
            "smtps" => true,
            "smtp" => false,
            other => return Err(format!("{other}:// is not smtp:// or smtps://")),
        };
        let port = c.url.port().unwrap_or(if implicit { 465 } else { 587 });
        let mut params = TlsParameters::builder(host.clone());
        if let Some(path) = c.ca_file {
            let pem =
                std::fs::read(path).map_err(|e| format!("ca_file {}: {e}", path.display()))?;
            let cert = Certificate::from_pem(&pem)
                .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
            params = params.add_root_certificate(cert);
        }
        let params = params
            .build_rustls()
            .map_err(|e| format!("TLS: {}", error_chain(&e)))?;
        let tls = match (implicit, c.starttls) {
            (true, _) => Tls::Wrapper(params),
            (false, StartTls::Opportunistic) => Tls::Opportunistic(params),
            (false, StartTls::Required) => Tls::Required(params),
        };
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .tls(tls)
            .timeout(Some(TIMEOUT));
        if let (Some(u), Some(p)) = (c.username, c.password) {
            b = b.credentials(Credentials::new(u.to_string(), p.to_string()));
        }
        Ok(Self {
            transport: OnceLock::new(),
            builder: b,
            from,
            to,
        })
    }

    /// Sends `n` once: the server's answer (`250 ...`), or why not. A permanent (5xx) refusal
    /// or a client-side refusal (no STARTTLS where it is required) is not retried.
    pub async fn send(&self, n: &Notification) -> Attempt {
        let msg = match message(&self.from, &self.to, n) {
            Ok(m) => m,
            Err(e) => return Attempt::GiveUp(e),
        };
        let transport = self.transport.get_or_init(|| self.builder.clone().build());
        match transport.send(msg).await {
            Ok(r) => {
                let first = r.message().next().unwrap_or("").to_string();
                Attempt::Done(text::one_line(&format!("{} {first}", r.code())))
            }
            Err(e) => {
                let answer = text::one_line(&error_chain(&e));
                if e.is_permanent() || e.is_client() {
                    Attempt::GiveUp(answer)
                } else {
                    Attempt::Retry(answer)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::text::tests::{firing, group, resolved};

    #[test]
    fn subjects() {
        assert_eq!(
            subject(&firing()),
            "[dsmon] FIRING cpu high on web-1: cpu_pct 93.2 (above 90)"
        );
        assert_eq!(
            subject(&resolved()),
            "[dsmon] RESOLVED cpu high on web-1: cpu_pct 71.5 (above 90)"
        );
    }

    #[test]
    fn plain_body_lists_every_node() {
        let b = plain_body(&group(14));
        for i in 1..=14 {
            assert!(b.contains(&format!("db-{i}: cpu_pct")), "db-{i} in {b}");
        }
        assert!(
            b.starts_with("FIRING cpu high (critical), 14 nodes\n"),
            "{b}"
        );
        let r = plain_body(&resolved());
        assert!(r.contains("resolved 2024-05-01T10:10:00Z"), "{r}");
        assert!(r.contains("https://dsmon.example.com/nodes/web-1"), "{r}");
    }

    #[test]
    fn html_escapes_names() {
        let mut n = firing();
        n.rule = "<script>alert(1)</script>".into();
        n.items[0].node = "a&b\"<i>".into();
        let h = html_body(&n);
        assert!(!h.contains("<script>"), "{h}");
        assert!(h.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{h}");
        assert!(h.contains(">a&amp;b&quot;&lt;i&gt;</a>"), "{h}");
    }

    #[test]
    fn message_is_multipart_alternative() {
        let from: Mailbox = "dsmon@example.com".parse().unwrap();
        let to: Vec<Mailbox> = vec!["ops@example.com".parse().unwrap()];
        let m = message(&from, &to, &firing()).unwrap();
        let raw = String::from_utf8_lossy(&m.formatted()).to_string();
        assert!(raw.contains("multipart/alternative"), "{raw}");
        assert!(raw.contains("text/plain"), "{raw}");
        assert!(raw.contains("text/html"), "{raw}");
        assert!(
            raw.contains("Subject: [dsmon] FIRING cpu high on web-1"),
            "{raw}"
        );
    }

    #[test]
    fn bad_addresses_are_setup_errors() {
        let url = Url::parse("smtp://127.0.0.1:2525").unwrap();
        let to = vec!["not an address".to_string()];
        let c = MailerConfig {
            url: &url,
            starttls: StartTls::Opportunistic,
            from: "dsmon@example.com",
            to: &to,
            username: None,
            password: None,
            ca_file: None,
        };
        assert!(Mailer::new(&c).is_err());
    }
}
