//! ntfy: the text is POSTed to the topic's URL; `Title`, `Priority`, `Tags` and `Click` go in
//! headers, and a token as `Authorization: Bearer <token>`.
//!
//! - Priority: a critical alert firing (or repeating) is `urgent` (5), a warning `high` (4), a
//!   resolve or a test `default` (3).
//! - Tags: an emoji short code ntfy shows (`rotating_light`, `warning`, `white_check_mark`,
//!   `test_tube`), then the rule name.
//! - Headers are ASCII: a title or tag with other characters is sent RFC 2047-encoded
//!   (`=?UTF-8?B?...?=`), which ntfy decodes.

use base64::Engine;
use reqwest::header::AUTHORIZATION;
use url::Url;

use super::http::Request;
use super::text::{headline, item_line, notification_link, one_line};
use crate::model::{NoticeKind, Notification, Severity};

/// ntfy turns longer messages into attachments.
const BODY_BYTES: usize = 4000;

/// What one ntfy message carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub title: String,
    /// `urgent`, `high` or `default`.
    pub priority: &'static str,
    pub tags: Vec<String>,
    pub click: Option<String>,
    pub body: String,
}

pub fn message(n: &Notification) -> Message {
    let (priority, emoji) = match (n.kind, n.severity) {
        (NoticeKind::Resolved, _) => ("default", "white_check_mark"),
        (NoticeKind::Test, _) => ("default", "test_tube"),
        (_, Severity::Critical) => ("urgent", "rotating_light"),
        (_, Severity::Warning) => ("high", "warning"),
    };
    let mut body = String::new();
    for (i, item) in n.items.iter().enumerate() {
        let line = item_line(n, item);
        if body.len() + line.len() + 1 > BODY_BYTES {
            body.push_str(&format!("... and {} more", n.items.len() - i));
            break;
        }
        body.push_str(&line);
        body.push('\n');
    }
    if body.is_empty() {
        body = headline(n);
    }
    Message {
        title: format!("[dsmon] {}", headline(n)),
        priority,
        // ntfy splits tags at commas.
        tags: vec![emoji.into(), one_line(&n.rule).replace(',', " ")],
        click: notification_link(n).map(str::to_string),
        body: body.trim_end().to_string(),
    }
}

/// A header value: as is when printable ASCII, else RFC 2047 base64 of the UTF-8.
pub fn header_text(s: &str) -> String {
    let s = one_line(s);
    if s.chars().all(|c| c.is_ascii() && !c.is_ascii_control()) {
        s
    } else {
        format!(
            "=?UTF-8?B?{}?=",
            base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
        )
    }
}

pub fn request(url: &Url, token: Option<&str>, n: &Notification) -> Result<Request, String> {
    let m = message(n);
    let mut req = Request {
        url: url.clone(),
        headers: Default::default(),
        body: m.body.into_bytes(),
    };
    req.header("content-type", "text/plain; charset=utf-8")?;
    req.header("title", &header_text(&m.title))?;
    req.header("priority", m.priority)?;
    let tags: Vec<String> = m.tags.iter().map(|t| header_text(t)).collect();
    req.header("tags", &tags.join(","))?;
    if let Some(c) = &m.click {
        req.header("click", c)?;
    }
    if let Some(t) = token {
        req.secret_header(AUTHORIZATION, &format!("Bearer {t}"))?;
    }
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::text::tests::{firing, group, resolved};

    #[test]
    fn priorities_and_tags() {
        let m = message(&firing());
        assert_eq!(m.priority, "high");
        assert_eq!(m.tags, vec!["warning", "cpu high"]);
        assert_eq!(
            m.title,
            "[dsmon] FIRING cpu high on web-1: cpu_pct 93.2 (above 90)"
        );
        assert_eq!(
            m.click.as_deref(),
            Some("https://dsmon.example.com/nodes/web-1")
        );
        let g = message(&group(3));
        assert_eq!(g.priority, "urgent");
        assert_eq!(g.tags[0], "rotating_light");
        assert_eq!(g.body.lines().count(), 3);
        assert_eq!(g.click.as_deref(), Some("https://dsmon.example.com/"));
        let r = message(&resolved());
        assert_eq!(r.priority, "default");
        assert_eq!(r.tags[0], "white_check_mark");
    }

    #[test]
    fn long_groups_are_cut() {
        let m = message(&group(500));
        assert!(m.body.len() <= BODY_BYTES + 40, "{}", m.body.len());
        assert!(m.body.contains("more"));
    }

    #[test]
    fn non_ascii_headers_are_encoded() {
        assert_eq!(header_text("plain"), "plain");
        assert_eq!(header_text("Größe"), "=?UTF-8?B?R3LDtsOfZQ==?=");
        let mut n = firing();
        n.rule = "cpu, hoch ✓".into();
        let url = Url::parse("https://ntfy.example/alerts").unwrap();
        let req = request(&url, Some("tk_secret"), &n).unwrap();
        assert!(req.headers["tags"]
            .to_str()
            .unwrap()
            .starts_with("warning,=?UTF-8?B?"));
        assert!(req.headers["authorization"].is_sensitive());
        assert_eq!(req.headers["priority"], "high");
    }
}
