//! Slack, Discord and Microsoft Teams incoming webhooks.
//!
//! - Slack (incoming webhook): `{"text": fallback, "blocks": [section, section, context]}`, text in
//!   Slack's mrkdwn with `&`, `<`, `>` escaped as Slack asks.
//! - Discord (execute webhook): `{"content": ..., "embeds": [{title, description, color, fields,
//!   timestamp, url}], "allowed_mentions": {"parse": []}}` — no node or rule name can ping
//!   `@everyone`; texts are cut to Discord's limits (content 2000, title 256, description 4096).
//! - Teams: the Workflows ("When a Teams webhook request is received") format, an Adaptive Card
//!   1.4 in the `attachments` envelope (`{"type": "message", "attachments": [{"contentType":
//!   "application/vnd.microsoft.card.adaptive", "content": {...}}]}`). Microsoft documents it as
//!   the replacement of the Office 365 connectors, whose MessageCard format Workflows do not
//!   take.

use serde_json::{json, Value};

use super::text::{self, headline, item_line, notification_link, rfc3339, truncate};
use crate::model::{NoticeKind, Notification, Severity};

/// How many nodes a chat message lists before `... and N more`.
const LISTED: usize = 50;

fn emoji(n: &Notification) -> &'static str {
    match (n.kind, n.severity) {
        (NoticeKind::Resolved, _) => ":white_check_mark:",
        (NoticeKind::Test, _) => ":test_tube:",
        (_, Severity::Critical) => ":rotating_light:",
        (_, Severity::Warning) => ":warning:",
    }
}

/// Lines for the nodes, the first `LISTED`, then how many more.
fn node_lines(n: &Notification, line: impl Fn(&str, Option<&str>) -> String) -> Vec<String> {
    let mut lines: Vec<String> = n
        .items
        .iter()
        .take(LISTED)
        .map(|i| line(&item_line(n, i), text::link(i.url.as_deref())))
        .collect();
    if n.items.len() > LISTED {
        lines.push(format!("... and {} more", n.items.len() - LISTED));
    }
    lines
}

/// Slack's escaping for text that is not markup.
pub fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub fn slack(n: &Notification) -> Value {
    let head = format!(
        "{} *{}* {} ({}): {}",
        emoji(n),
        text::state_word(n.kind),
        slack_escape(&n.rule),
        n.severity.as_str(),
        slack_escape(&text::condition(n))
    );
    let lines = node_lines(n, |line, url| match url {
        // A link's URL and label: `<url|label>`; the URL is ours (public_url), the label escaped.
        Some(u) => format!("• <{}|{}>", u.replace('|', "%7C"), slack_escape(line)),
        None => format!("• {}", slack_escape(line)),
    });
    json!({
        "text": slack_escape(&format!("[dsmon] {}", headline(n))),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": truncate(&head, 3000)}},
            {"type": "section", "text": {"type": "mrkdwn", "text": truncate(&lines.join("\n"), 3000)}},
            {"type": "context", "elements": [
                {"type": "mrkdwn", "text": format!("dsmon · {}", rfc3339(n.at))}
            ]}
        ]
    })
}

/// Discord's markdown characters escaped.
pub fn discord_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(
            c,
            '\\' | '*' | '_' | '~' | '`' | '|' | '>' | '#' | '[' | ']'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

pub fn discord(n: &Notification) -> Value {
    let color = match (n.kind, n.severity) {
        (NoticeKind::Resolved, _) => 0x2E_B6_7D,
        (NoticeKind::Test, _) => 0x5B_8D_EF,
        (_, Severity::Critical) => 0xE0_1E_5A,
        (_, Severity::Warning) => 0xEC_B2_2E,
    };
    let lines = node_lines(n, |line, url| match url {
        Some(u) => format!("- [{}]({u})", discord_escape(line)),
        None => format!("- {}", discord_escape(line)),
    });
    let mut embed = json!({
        "title": truncate(&format!("{} {}", text::state_word(n.kind), n.rule), 256),
        "description": truncate(&lines.join("\n"), 4096),
        "color": color,
        "fields": [
            {"name": "Severity", "value": n.severity.as_str(), "inline": true},
            {"name": "Condition", "value": truncate(&text::condition(n), 1024), "inline": true},
            {"name": "Nodes", "value": n.items.len().to_string(), "inline": true}
        ],
        "timestamp": rfc3339(n.at),
        "footer": {"text": "dsmon"}
    });
    if let Some(u) = notification_link(n) {
        embed["url"] = json!(u);
    }
    json!({
        "content": truncate(&discord_escape(&format!("[dsmon] {}", headline(n))), 2000),
        "embeds": [embed],
        "allowed_mentions": {"parse": []}
    })
}

pub fn teams(n: &Notification) -> Value {
    let color = match (n.kind, n.severity) {
        (NoticeKind::Resolved, _) => "Good",
        (NoticeKind::Test, _) => "Accent",
        (_, Severity::Critical) => "Attention",
        (_, Severity::Warning) => "Warning",
    };
    let lines = node_lines(n, |line, _| format!("- {line}"));
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {"type": "TextBlock", "text": headline(n), "weight": "Bolder", "size": "Medium",
             "color": color, "wrap": true},
            {"type": "FactSet", "facts": [
                {"title": "Rule", "value": n.rule},
                {"title": "Severity", "value": n.severity.as_str()},
                {"title": "Condition", "value": text::condition(n)},
                {"title": "Nodes", "value": n.items.len().to_string()},
                {"title": "At", "value": rfc3339(n.at)}
            ]},
            {"type": "TextBlock", "text": lines.join("\n"), "wrap": true}
        ]
    });
    if let Some(u) = notification_link(n) {
        card["actions"] = json!([{"type": "Action.OpenUrl", "title": "Open in dsmon", "url": u}]);
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": card
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::text::tests::{firing, group, resolved};

    #[test]
    fn slack_text_and_blocks() {
        let p = slack(&firing());
        assert_eq!(
            p["text"],
            "[dsmon] FIRING cpu high on web-1: cpu_pct 93.2 (above 90)"
        );
        let head = p["blocks"][0]["text"]["text"].as_str().unwrap_or("");
        assert!(
            head.starts_with(":warning: *FIRING* cpu high (warning)"),
            "{head}"
        );
        let nodes = p["blocks"][1]["text"]["text"].as_str().unwrap_or("");
        assert!(
            nodes.starts_with("• <https://dsmon.example.com/nodes/web-1|web-1: cpu_pct 93.2"),
            "{nodes}"
        );
        let r = slack(&resolved());
        assert!(r["blocks"][0]["text"]["text"]
            .as_str()
            .unwrap_or("")
            .starts_with(":white_check_mark: *RESOLVED*"));
    }

    #[test]
    fn slack_escapes_control_characters() {
        let mut n = firing();
        n.items[0].node = "<!channel> & co".into();
        let p = slack(&n);
        let t = p["text"].as_str().unwrap_or("");
        assert!(t.contains("&lt;!channel&gt; &amp; co"), "{t}");
    }

    #[test]
    fn discord_content_embed_and_no_mentions() {
        let p = discord(&firing());
        assert_eq!(
            p["content"],
            "\\[dsmon\\] FIRING cpu high on web-1: cpu\\_pct 93.2 (above 90)"
        );
        assert_eq!(p["embeds"][0]["title"], "FIRING cpu high");
        assert_eq!(
            p["embeds"][0]["url"],
            "https://dsmon.example.com/nodes/web-1"
        );
        assert_eq!(p["allowed_mentions"]["parse"], json!([]));
        let g = discord(&group(60));
        let d = g["embeds"][0]["description"].as_str().unwrap_or("");
        assert!(d.ends_with("... and 10 more"), "{d}");
        assert_eq!(g["embeds"][0]["fields"][2]["value"], "60");
    }

    #[test]
    fn teams_adaptive_card_envelope() {
        let p = teams(&resolved());
        assert_eq!(p["type"], "message");
        let a = &p["attachments"][0];
        assert_eq!(a["contentType"], "application/vnd.microsoft.card.adaptive");
        assert_eq!(a["content"]["type"], "AdaptiveCard");
        assert_eq!(a["content"]["body"][0]["color"], "Good");
        assert_eq!(
            a["content"]["actions"][0]["url"],
            "https://dsmon.example.com/nodes/web-1"
        );
    }
}
