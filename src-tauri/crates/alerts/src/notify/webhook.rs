//! The generic webhook: a JSON POST, signed when the notifier has a secret.
//!
//! ```json
//! {"kind": "firing", "state": "firing", "rule": "cpu high", "metric": "cpu_pct",
//!  "severity": "warning", "direction": "above", "threshold": 90.0,
//!  "node": "web-1", "value": 93.2, "since": "2024-05-01T10:00:00Z", "ended": null,
//!  "url": "https://dsmon.example.com/nodes/web-1", "at": "2024-05-01T10:01:00Z",
//!  "summary": "FIRING cpu high on web-1: cpu_pct 93.2 (above 90)",
//!  "alerts": [{"node": "web-1", "value": 93.2, "since": "...", "ended": null, "url": "..."}]}
//! ```
//! `node`, `value`, `since`, `ended` and `url` are the first node's; `alerts` holds every node
//! (one for a single alert, all of them for a storm group). `kind` is `firing`, `resolved`,
//! `repeat` or `test`; `state` is `resolved` for a resolve, else `firing`.
//!
//! With a secret, `X-Dsmon-Signature: sha256=<lowercase hex HMAC-SHA256 of the body bytes, keyed
//! with the secret>`. The body's `at` is signed with it: a receiver can refuse old deliveries.

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use url::Url;

use super::http::Request;
use super::text::{self, json_value, rfc3339};
use crate::model::Notification;

pub const SIGNATURE_HEADER: &str = "x-dsmon-signature";

/// The JSON body.
pub fn payload(n: &Notification) -> Value {
    let alerts: Vec<Value> = n
        .items
        .iter()
        .map(|i| {
            json!({
                "node": i.node,
                "value": json_value(i.value),
                "since": rfc3339(i.since),
                "ended": i.ended.map(rfc3339),
                "url": text::link(i.url.as_deref()),
            })
        })
        .collect();
    let first = alerts.first().cloned().unwrap_or_else(|| json!({}));
    json!({
        "kind": n.kind.as_str(),
        "state": n.kind.state(),
        "rule": n.rule,
        "metric": n.metric.as_str(),
        "severity": n.severity.as_str(),
        "direction": text::direction_word(n.direction),
        "threshold": json_value(Some(n.threshold)),
        "node": first.get("node").cloned().unwrap_or(Value::Null),
        "value": first.get("value").cloned().unwrap_or(Value::Null),
        "since": first.get("since").cloned().unwrap_or(Value::Null),
        "ended": first.get("ended").cloned().unwrap_or(Value::Null),
        "url": first.get("url").cloned().unwrap_or(Value::Null),
        "at": rfc3339(n.at),
        "summary": text::headline(n),
        "alerts": alerts,
    })
}

/// `sha256=<hex>`: HMAC-SHA256 of `body` keyed with `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes a key of any length: new_from_slice cannot fail for it.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for b in tag {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The request: JSON, signed with `secret` when there is one.
pub fn request(url: &Url, secret: Option<&str>, n: &Notification) -> Result<Request, String> {
    let mut req = Request::json(url.clone(), &payload(n));
    if let Some(s) = secret {
        let sig = signature(s.as_bytes(), &req.body);
        req.header(SIGNATURE_HEADER, &sig)?;
    }
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::text::tests::{firing, group, resolved};

    #[test]
    fn firing_payload_has_the_fields() {
        let p = payload(&firing());
        assert_eq!(p["kind"], "firing");
        assert_eq!(p["state"], "firing");
        assert_eq!(p["rule"], "cpu high");
        assert_eq!(p["node"], "web-1");
        assert_eq!(p["severity"], "warning");
        assert_eq!(p["metric"], "cpu_pct");
        assert_eq!(p["value"], 93.2);
        assert_eq!(p["threshold"], 90.0);
        assert_eq!(p["since"], "2024-05-01T10:00:00Z");
        assert_eq!(p["ended"], Value::Null);
        assert_eq!(p["url"], "https://dsmon.example.com/nodes/web-1");
        assert_eq!(p["alerts"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn resolved_and_group_payloads() {
        let p = payload(&resolved());
        assert_eq!(p["state"], "resolved");
        assert_eq!(p["ended"], "2024-05-01T10:10:00Z");
        let p = payload(&group(7));
        let alerts = p["alerts"].as_array().cloned().unwrap_or_default();
        assert_eq!(alerts.len(), 7);
        assert_eq!(p["node"], "db-1");
        assert_eq!(alerts[6]["node"], "db-7");
        assert_eq!(p["url"], Value::Null);
        assert_eq!(p["severity"], "critical");
    }

    #[test]
    fn empty_notification_still_makes_a_body() {
        let mut n = firing();
        n.items.clear();
        let p = payload(&n);
        assert_eq!(p["node"], Value::Null);
        assert_eq!(p["alerts"], json!([]));
    }

    #[test]
    fn signature_is_rfc_4231_hmac_sha256() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn request_is_signed_over_its_exact_body() {
        let url = Url::parse("http://127.0.0.1:9/hook").unwrap();
        let req = request(&url, Some("s3cret"), &firing()).unwrap();
        let sig = req.headers[SIGNATURE_HEADER].to_str().unwrap().to_string();
        assert_eq!(sig, signature(b"s3cret", &req.body));
        let unsigned = request(&url, None, &firing()).unwrap();
        assert!(unsigned.headers.get(SIGNATURE_HEADER).is_none());
        assert_eq!(unsigned.headers["content-type"], "application/json");
    }
}
