//! The requests of the application layer as data: what the desktop app's commands send (and the
//! remote client turns into HTTP), and the history parameters shared by every adapter.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use dsmon_store::export;
use dsmon_store::history::{HistoryError, HistoryQuery, DEFAULT_POINTS};
use dsmon_store::RowQuery;

use crate::{AppError, Result};

/// History parameters as a caller gives them: `from`/`to` (RFC 3339, a date, `now` or relative such
/// as `-24h`; by default the last 24 hours), `points`, `node` (repeatable; none: every node).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryRequest {
    /// Start: RFC 3339, a date, `now` or relative (`-24h`); default `-24h`.
    pub from: Option<String>,
    /// End, as `from`; default `now`.
    pub to: Option<String>,
    /// At most this many buckets per node, 1..5000 (default 500); `/api/history.csv` refuses it.
    #[serde(default, deserialize_with = "number_or_text")]
    #[param(value_type = Option<u32>)]
    pub points: Option<String>,
    /// A node's name; repeatable; none: every node.
    #[serde(default)]
    #[param(style = Form, explode)]
    pub node: Vec<String>,
    /// Parameters given that history does not know (refused once the caller may see history).
    #[serde(skip)]
    pub unknown: Vec<String>,
}

impl HistoryRequest {
    /// From query pairs (`?from=..&node=a&node=b`); unknown keys are kept to be refused by name.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut r = Self::default();
        for (k, v) in pairs {
            match k.as_str() {
                "from" => r.from = Some(v),
                "to" => r.to = Some(v),
                "points" => r.points = Some(v),
                "node" => r.node.push(v),
                _ => r.unknown.push(k),
            }
        }
        r
    }

    /// The query string of these parameters (the remote client sends it).
    pub fn to_query(&self) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("from", &self.from),
            ("to", &self.to),
            ("points", &self.points),
        ] {
            if let Some(v) = v {
                q.append_pair(k, v);
            }
        }
        for n in &self.node {
            q.append_pair("node", n);
        }
        q.finish()
    }

    fn range(&self, now: DateTime<Utc>) -> Result<(i64, i64)> {
        if let Some(k) = self.unknown.first() {
            return Err(AppError::bad_request(format!("unknown parameter {k:?}")));
        }
        Ok(export::history_range(
            self.from.as_deref(),
            self.to.as_deref(),
            now,
        )?)
    }

    /// The bucketed history query.
    pub fn query(self, now: DateTime<Utc>) -> Result<HistoryQuery> {
        let (from, to) = self.range(now)?;
        let points = match &self.points {
            None => DEFAULT_POINTS,
            Some(text) => text
                .trim()
                .parse::<usize>()
                .map_err(|_| HistoryError::Points(text.clone()))?,
        };
        Ok(HistoryQuery {
            from,
            to,
            points,
            nodes: self.node,
        })
    }

    /// The raw rows query (CSV): `points` does not apply.
    pub fn rows(self, now: DateTime<Utc>) -> Result<RowQuery> {
        if self.points.is_some() {
            return Err(AppError::bad_request(
                "points does not apply to the raw rows of history.csv",
            ));
        }
        let (from, to) = self.range(now)?;
        Ok(RowQuery {
            from,
            to,
            nodes: self.node,
        })
    }
}

/// A use case as data, answered as JSON by [`crate::App::handle`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "use", rename_all = "snake_case")]
pub enum Request {
    Me,
    Live,
    History(HistoryRequest),
    Users,
    /// `change`: `{"role": "admin" | "user" | null}` and/or `{"blocked": bool}`.
    ChangeUser {
        email: String,
        change: serde_json::Value,
    },
    Audit {
        offset: Option<i64>,
        limit: Option<i64>,
    },
    /// The alerts pending or firing now.
    Alerts,
    AlertHistory(crate::alerts::AlertHistoryRequest),
    AlertDeliveries {
        limit: Option<usize>,
    },
    AlertConfig,
    Silences,
    /// `silence`: the JSON of `dsmon_alerts::NewSilence`.
    CreateSilence {
        silence: serde_json::Value,
    },
    ExpireSilence {
        id: i64,
    },
    Acknowledge {
        rule: String,
        node: String,
    },
    TestNotifier {
        name: String,
    },
}

impl Request {
    /// What the request is, as the audit log names a refused one.
    pub fn name(&self) -> &'static str {
        match self {
            Request::Me => "me",
            Request::Live => "the live view",
            Request::History(_) => "history",
            Request::Users | Request::ChangeUser { .. } => "user administration",
            Request::Audit { .. } => "the audit log",
            Request::Alerts => "the live view",
            Request::AlertHistory(_) => "alert history",
            Request::AlertDeliveries { .. } => "the delivery log",
            Request::AlertConfig => "alert rules",
            Request::Silences | Request::CreateSilence { .. } | Request::ExpireSilence { .. } => {
                "silences"
            }
            Request::Acknowledge { .. } => "acknowledging alerts",
            Request::TestNotifier { .. } => "notifiers",
        }
    }
}

/// `points` as the page sends it: a number, or text as in a query string.
fn number_or_text<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Number(u64),
        Text(String),
    }
    Ok(Option::<Either>::deserialize(d)?.map(|e| match e {
        Either::Number(n) => n.to_string(),
        Either::Text(t) => t,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &str) -> Vec<(String, String)> {
        url::form_urlencoded::parse(q.as_bytes())
            .into_owned()
            .collect()
    }

    #[test]
    fn history_parameters_parse_and_round_trip() {
        let r = HistoryRequest::from_pairs(pairs("from=-1h&node=a&node=b&points=10"));
        assert_eq!(r.node, vec!["a", "b"]);
        assert_eq!(HistoryRequest::from_pairs(pairs(&r.to_query())), r);
        let e = HistoryRequest::from_pairs(pairs("from=-1h&colour=red"))
            .query(Utc::now())
            .unwrap_err();
        assert_eq!(e.kind, crate::ErrorKind::BadRequest);
        assert!(e.message.contains("unknown parameter \"colour\""), "{e}");
        let now = Utc::now();
        let q = r.clone().query(now).unwrap();
        assert_eq!((q.points, q.to - q.from), (10, 3600));
        let e = HistoryRequest {
            points: Some("many".into()),
            ..r.clone()
        }
        .query(now)
        .unwrap_err();
        assert!(
            e.message.contains("points must be between 1 and 5000"),
            "{e}"
        );
        let e = r.rows(now).unwrap_err();
        assert!(e.message.contains("points does not apply"), "{e}");
    }
}
