//! Prometheus Alertmanager: `POST <url>/api/v2/alerts` with one alert per node.
//!
//! - labels: `alertname` (the rule), `node`, `severity`, `metric`, `source="dsmon"` — Alertmanager
//!   identifies an alert by its labels, so the resolve of an alert matches its firing.
//! - annotations: `summary` (the headline), `value` (the value, empty for down/stale), `condition`.
//! - `startsAt`: when it started firing; `endsAt`: for a resolve, when it resolved. A firing alert
//!   has no `endsAt`: Alertmanager then keeps it for its `resolve_timeout` from the last post
//!   (5 minutes by default). A test alert ends 5 minutes after it was sent.
//! - `generatorURL`: the node's page in dsmon, when `public_url` is known.

use serde_json::{json, Map, Value};
use url::Url;

use super::http::Request;
use super::text::{self, rfc3339};
use crate::model::{NoticeItem, NoticeKind, Notification};

/// How long a test alert stays active in Alertmanager.
const TEST_SECS: i64 = 300;

/// `<base>/api/v2/alerts`, keeping a path prefix the base may have (`http://h/am/`).
pub fn endpoint(base: &Url) -> Url {
    let mut u = base.clone();
    let path = format!("{}/api/v2/alerts", base.path().trim_end_matches('/'));
    u.set_path(&path);
    u.set_query(None);
    u.set_fragment(None);
    u
}

fn value_text(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.1}"),
        _ => String::new(),
    }
}

fn alert(n: &Notification, item: &NoticeItem) -> Value {
    let labels = json!({
        "alertname": text::one_line(&n.rule),
        "node": text::one_line(&item.node),
        "severity": n.severity.as_str(),
        "metric": n.metric.as_str(),
        "source": "dsmon",
    });
    let summary = format!(
        "{} {} on {}: {}",
        text::state_word(n.kind),
        n.rule,
        item.node,
        n.describe_value(item.value)
    );
    let annotations = json!({
        "summary": text::one_line(&summary),
        "value": value_text(item.value),
        "condition": text::condition(n),
    });
    let mut a = Map::new();
    a.insert("labels".into(), labels);
    a.insert("annotations".into(), annotations);
    a.insert("startsAt".into(), json!(rfc3339(item.since)));
    match n.kind {
        NoticeKind::Resolved => {
            a.insert("endsAt".into(), json!(rfc3339(item.ended.unwrap_or(n.at))));
        }
        NoticeKind::Test => {
            a.insert(
                "endsAt".into(),
                json!(rfc3339(n.at.saturating_add(TEST_SECS))),
            );
        }
        NoticeKind::Firing | NoticeKind::Repeat => {}
    }
    if let Some(u) = text::link(item.url.as_deref()) {
        a.insert("generatorURL".into(), json!(u));
    }
    Value::Object(a)
}

/// The body: an array with one alert per node.
pub fn alerts(n: &Notification) -> Value {
    Value::Array(n.items.iter().map(|i| alert(n, i)).collect())
}

pub fn request(base: &Url, n: &Notification) -> Request {
    Request::json(endpoint(base), &alerts(n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::text::tests::{firing, group, resolved};

    #[test]
    fn endpoint_keeps_a_prefix() {
        let e = |s: &str| endpoint(&Url::parse(s).unwrap()).to_string();
        assert_eq!(e("http://am:9093"), "http://am:9093/api/v2/alerts");
        assert_eq!(e("http://am:9093/"), "http://am:9093/api/v2/alerts");
        assert_eq!(e("https://x/am/"), "https://x/am/api/v2/alerts");
    }

    #[test]
    fn firing_alert() {
        let a = alerts(&firing());
        let a = &a[0];
        assert_eq!(a["labels"]["alertname"], "cpu high");
        assert_eq!(a["labels"]["node"], "web-1");
        assert_eq!(a["labels"]["severity"], "warning");
        assert_eq!(a["labels"]["metric"], "cpu_pct");
        assert_eq!(a["labels"]["source"], "dsmon");
        assert_eq!(a["annotations"]["value"], "93.2");
        assert_eq!(
            a["annotations"]["summary"],
            "FIRING cpu high on web-1: cpu_pct 93.2 (above 90)"
        );
        assert_eq!(a["startsAt"], "2024-05-01T10:00:00Z");
        assert!(a.get("endsAt").is_none());
        assert_eq!(a["generatorURL"], "https://dsmon.example.com/nodes/web-1");
    }

    #[test]
    fn resolved_has_ends_at_and_groups_one_per_node() {
        assert_eq!(alerts(&resolved())[0]["endsAt"], "2024-05-01T10:10:00Z");
        let g = alerts(&group(4));
        assert_eq!(g.as_array().map(Vec::len), Some(4));
        assert_eq!(g[3]["labels"]["node"], "db-4");
        assert!(g[0].get("generatorURL").is_none());
    }
}
