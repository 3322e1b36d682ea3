//! Words every format shares: the headline, one line per node, the condition, times, and the
//! escaping and trimming the receivers need.

use url::Url;

use crate::model::{Direction, Metric, NoticeItem, NoticeKind, Notification, Severity};

/// `FIRING`, `RESOLVED`, `STILL FIRING` (a repeat) or `TEST`.
pub fn state_word(kind: NoticeKind) -> &'static str {
    match kind {
        NoticeKind::Firing => "FIRING",
        NoticeKind::Resolved => "RESOLVED",
        NoticeKind::Repeat => "STILL FIRING",
        NoticeKind::Test => "TEST",
    }
}

/// `FIRING cpu high on web-1: cpu_pct 93.2 (above 90)`, or for a group `FIRING cpu high on 15
/// nodes: web-1, web-2, ...` (the first ten names). One line: control characters are spaces.
pub fn headline(n: &Notification) -> String {
    let state = state_word(n.kind);
    let line = match n.items.as_slice() {
        [one] => format!(
            "{state} {} on {}: {}",
            n.rule,
            one.node,
            n.describe_value(one.value)
        ),
        many => format!(
            "{state} {} on {} nodes: {}",
            n.rule,
            many.len(),
            node_names(n, 10)
        ),
    };
    one_line(&line)
}

/// The first `max` node names, comma separated, `, ...` when there are more.
pub fn node_names(n: &Notification, max: usize) -> String {
    let names: Vec<&str> = n.items.iter().take(max).map(|i| i.node.as_str()).collect();
    let more = if n.items.len() > max { ", ..." } else { "" };
    format!("{}{more}", names.join(", "))
}

/// What the rule watches for: `cpu_pct above 90`, `the node does not answer`, ...
pub fn condition(n: &Notification) -> String {
    match n.metric {
        Metric::Down => "the node does not answer".into(),
        Metric::Stale => "the agent's data is missing or old".into(),
        Metric::DiskFullIn => format!(
            "the disk is full in less than {}",
            crate::model::human_secs(n.threshold)
        ),
        m => format!(
            "{} {} {}",
            m.as_str(),
            direction_word(n.direction),
            n.threshold
        ),
    }
}

pub fn direction_word(d: Direction) -> &'static str {
    match d {
        Direction::Above => "above",
        Direction::Below => "below",
    }
}

pub fn severity_word(s: Severity) -> &'static str {
    s.as_str()
}

/// One node of a notification: `web-1: cpu_pct 93.2 (above 90), since 2024-05-01T10:00:00Z`
/// (`, resolved 2024-...` for a resolve).
pub fn item_line(n: &Notification, item: &NoticeItem) -> String {
    let mut s = format!(
        "{}: {}, since {}",
        item.node,
        n.describe_value(item.value),
        rfc3339(item.since)
    );
    if let Some(end) = item.ended {
        s.push_str(&format!(", resolved {}", rfc3339(end)));
    }
    one_line(&s)
}

/// RFC 3339 in UTC, seconds precision.
pub fn rfc3339(ts: i64) -> String {
    dsmon_core::format_ts(ts)
}

/// The value as a JSON number, `null` when there is none (or it is not finite).
pub fn json_value(v: Option<f64>) -> serde_json::Value {
    v.filter(|v| v.is_finite())
        .map_or(serde_json::Value::Null, serde_json::Value::from)
}

/// A link worth following: an http(s) URL, else none.
pub fn link(url: Option<&str>) -> Option<&str> {
    url.filter(|u| {
        Url::parse(u)
            .map(|p| matches!(p.scheme(), "http" | "https"))
            .unwrap_or(false)
    })
}

/// The link for a notification: the node's page for one node, dsmon's own page for a group.
pub fn notification_link(n: &Notification) -> Option<&str> {
    match n.items.as_slice() {
        [one] => link(one.url.as_deref()),
        _ => link(n.public_url.as_deref()),
    }
}

/// Text for HTML element content and attribute values.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Control characters (newlines included) become spaces.
pub fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// At most `max` characters, ending in `…` when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// `https://hooks.slack.com` for `https://hooks.slack.com/services/T0/B0/secret`: what logs and
/// answers may show of a URL whose path or query is a credential.
pub fn origin(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{}://{h}:{p}", url.scheme()),
        (Some(h), None) => format!("{}://{h}", url.scheme()),
        _ => format!("{}://", url.scheme()),
    }
}

/// `text` with every secret in `secrets` replaced by `<redacted>`.
pub fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(s.as_str(), "<redacted>");
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::{Direction, Metric, NoticeItem, NoticeKind, Notification, Severity};

    /// `cpu high` (cpu_pct above 90, warning) firing on web-1 at 93.2.
    pub fn firing() -> Notification {
        Notification {
            kind: NoticeKind::Firing,
            rule: "cpu high".into(),
            metric: Metric::CpuPct,
            severity: Severity::Warning,
            direction: Direction::Above,
            threshold: 90.0,
            items: vec![NoticeItem {
                node: "web-1".into(),
                value: Some(93.2),
                since: 1_714_557_600,
                ended: None,
                url: Some("https://dsmon.example.com/nodes/web-1".into()),
            }],
            at: 1_714_557_660,
            public_url: Some("https://dsmon.example.com/".into()),
        }
    }

    pub fn resolved() -> Notification {
        let mut n = firing();
        n.kind = NoticeKind::Resolved;
        n.items[0].value = Some(71.5);
        n.items[0].ended = Some(1_714_558_200);
        n.at = 1_714_558_200;
        n
    }

    /// A storm group of `count` nodes, critical.
    pub fn group(count: usize) -> Notification {
        let mut n = firing();
        n.severity = Severity::Critical;
        n.items = (1..=count)
            .map(|i| NoticeItem {
                node: format!("db-{i}"),
                value: Some(95.0 + i as f64 / 10.0),
                since: 1_714_557_600 + i as i64,
                ended: None,
                url: None,
            })
            .collect();
        n
    }

    #[test]
    fn headline_names_state_rule_node_and_value() {
        assert_eq!(
            headline(&firing()),
            "FIRING cpu high on web-1: cpu_pct 93.2 (above 90)"
        );
        assert_eq!(
            headline(&resolved()),
            "RESOLVED cpu high on web-1: cpu_pct 71.5 (above 90)"
        );
        let g = headline(&group(12));
        assert!(
            g.starts_with("FIRING cpu high on 12 nodes: db-1, db-2,"),
            "{g}"
        );
        assert!(g.ends_with("db-10, ..."), "{g}");
    }

    #[test]
    fn headline_is_one_line_whatever_the_names() {
        let mut n = firing();
        n.items[0].node = "evil\r\nBcc: x@example.com".into();
        assert!(!headline(&n).contains(['\r', '\n']));
    }

    #[test]
    fn empty_and_odd_notifications_do_not_panic() {
        let mut n = firing();
        n.items.clear();
        assert_eq!(headline(&n), "FIRING cpu high on 0 nodes: ");
        n.items = group(1).items;
        n.items[0].value = Some(f64::NAN);
        assert_eq!(json_value(n.items[0].value), serde_json::Value::Null);
        let _ = item_line(&n, &n.items[0]);
        assert_eq!(rfc3339(i64::MAX), i64::MAX.to_string());
    }

    #[test]
    fn conditions() {
        assert_eq!(condition(&firing()), "cpu_pct above 90");
        let mut n = firing();
        n.metric = Metric::Down;
        assert_eq!(condition(&n), "the node does not answer");
        n.metric = Metric::DiskFullIn;
        n.direction = Direction::Below;
        n.threshold = 86_400.0;
        assert_eq!(condition(&n), "the disk is full in less than 1d 0h");
    }

    #[test]
    fn escaping_trimming_and_redaction() {
        assert_eq!(
            html_escape(r#"<b a="1">&'x"#),
            "&lt;b a=&quot;1&quot;&gt;&amp;&#39;x"
        );
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
        let u = Url::parse("https://hooks.slack.com/services/T0/B0/XYZ?x=1").unwrap();
        assert_eq!(origin(&u), "https://hooks.slack.com");
        let u = Url::parse("http://127.0.0.1:8080/hook").unwrap();
        assert_eq!(origin(&u), "http://127.0.0.1:8080");
        assert_eq!(
            scrub("token tk_abcdef refused", &["tk_abcdef".into()]),
            "token <redacted> refused"
        );
        assert_eq!(link(Some("javascript:alert(1)")), None);
        assert_eq!(link(Some("https://x.example/")), Some("https://x.example/"));
    }
}
