//! The requests of the application layer as data: what the desktop app's commands send (and the
//! remote client turns into HTTP), and the history parameters shared by every adapter.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use dsmon_config::tags::{check_tag, has_all};
use dsmon_engine::NodeLive;
use dsmon_store::export;
use dsmon_store::history::{HistoryError, HistoryQuery, DEFAULT_POINTS};
use dsmon_store::RowQuery;

use crate::{AppError, Result};

/// `?tag=db&tag=eu-west` on the live view, the node list and the alerts: the nodes having every
/// tag given (none given: every node).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NodeFilter {
    /// A tag; repeatable: only the nodes having every tag given.
    #[serde(default)]
    #[param(style = Form, explode)]
    pub tag: Vec<String>,
    /// Parameters given that the filter does not know (refused).
    #[serde(skip)]
    pub unknown: Vec<String>,
}

impl NodeFilter {
    /// From query pairs; unknown keys are kept to be refused by name.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut f = Self::default();
        for (k, v) in pairs {
            match k.as_str() {
                "tag" => f.tag.push(v),
                _ => f.unknown.push(k),
            }
        }
        f
    }

    /// A bad tag or an unknown parameter is a bad request.
    pub fn check(&self) -> Result<()> {
        if let Some(k) = self.unknown.first() {
            return Err(AppError::bad_request(format!("unknown parameter {k:?}")));
        }
        check_tags(&self.tag)
    }

    /// Whether a node with `tags` passes.
    pub fn matches(&self, tags: &[String]) -> bool {
        has_all(tags, &self.tag)
    }

    pub fn is_empty(&self) -> bool {
        self.tag.is_empty()
    }
}

fn check_tags(tags: &[String]) -> Result<()> {
    for t in tags {
        check_tag(t).map_err(|m| AppError::bad_request(format!("tag {m}")))?;
    }
    Ok(())
}

/// History parameters as a caller gives them: `from`/`to` (RFC 3339, a date, `now` or relative such
/// as `-24h`; by default the last 24 hours), `points`, `node` (repeatable; none: every node), `tag`
/// (repeatable: only the monitored nodes having every tag given), `group` (`1`/`true`: one line
/// for all the nodes selected, or all the monitored nodes when none is).
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
    /// A tag; repeatable: only the nodes having every tag given.
    #[serde(default)]
    #[param(style = Form, explode)]
    pub tag: Vec<String>,
    /// `1`/`true`: one line (average and peak) for all the nodes selected.
    #[serde(default, deserialize_with = "bool_or_text")]
    #[param(value_type = Option<bool>)]
    pub group: Option<String>,
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
                "tag" => r.tag.push(v),
                "group" => r.group = Some(v),
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
        for t in &self.tag {
            q.append_pair("tag", t);
        }
        if let Some(g) = &self.group {
            q.append_pair("group", g);
        }
        q.finish()
    }

    /// Whether a group line is asked for.
    fn grouped(&self) -> Result<bool> {
        match self.group.as_deref().map(str::trim) {
            None | Some("0" | "false") => Ok(false),
            Some("1" | "true") => Ok(true),
            Some(other) => Err(AppError::bad_request(format!(
                "group must be 1 or 0 (true or false), not {other:?}"
            ))),
        }
    }

    /// The nodes asked for, given the monitored ones (`live`, with their tags): with tags, those
    /// of `node` (or of `live` when no `node` is given) having every tag. `None`: no tag given,
    /// `node` stands as it is.
    fn tagged(&self, live: &[NodeLive]) -> Result<Option<Vec<String>>> {
        check_tags(&self.tag)?;
        if self.tag.is_empty() {
            return Ok(None);
        }
        Ok(Some(
            live.iter()
                .filter(|n| has_all(&n.tags, &self.tag))
                .filter(|n| self.node.is_empty() || self.node.contains(&n.name))
                .map(|n| n.name.clone())
                .collect(),
        ))
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

    /// The bucketed history query over the monitored nodes `live`. A tag no node has gives a
    /// query with no nodes and `true` (answer it with [`dsmon_store::history::empty`]).
    pub fn query(self, now: DateTime<Utc>, live: &[NodeLive]) -> Result<(HistoryQuery, bool)> {
        let (from, to) = self.range(now)?;
        let tagged = self.tagged(live)?;
        // A group is named after its tags, else its nodes, else it is every node.
        let group = self
            .grouped()?
            .then(|| match (&self.tag[..], &self.node[..]) {
                ([], []) => "all".to_string(),
                ([], nodes) => nodes.join("+"),
                (tags, _) => tags.join("+"),
            });
        let points = match &self.points {
            None => DEFAULT_POINTS,
            Some(text) => text
                .trim()
                .parse::<usize>()
                .map_err(|_| HistoryError::Points(text.clone()))?,
        };
        let none = tagged.as_ref().is_some_and(Vec::is_empty);
        let nodes = match tagged {
            Some(nodes) => nodes,
            None if group.is_some() && self.node.is_empty() => {
                live.iter().map(|n| n.name.clone()).collect()
            }
            None => self.node,
        };
        Ok((
            HistoryQuery {
                from,
                to,
                points,
                nodes,
                group,
            },
            none,
        ))
    }

    /// The raw rows query (CSV) over the monitored nodes `live`: `points` and `group` do not
    /// apply. With tags: `Some` of the nodes having them (maybe none), to be narrowed to the
    /// nodes the store has rows of.
    pub fn rows(
        self,
        now: DateTime<Utc>,
        live: &[NodeLive],
    ) -> Result<(RowQuery, Option<Vec<String>>)> {
        for (given, key) in [(&self.points, "points"), (&self.group, "group")] {
            if given.is_some() {
                return Err(AppError::bad_request(format!(
                    "{key} does not apply to the raw rows of history.csv"
                )));
            }
        }
        let (from, to) = self.range(now)?;
        let tagged = self.tagged(live)?;
        Ok((
            RowQuery {
                from,
                to,
                nodes: if tagged.is_some() {
                    Vec::new()
                } else {
                    self.node
                },
            },
            tagged,
        ))
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

/// `group` as the page sends it: a boolean, or text as in a query string.
fn bool_or_text<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Bool(bool),
        Number(u64),
        Text(String),
    }
    Ok(Option::<Either>::deserialize(d)?.map(|e| match e {
        Either::Bool(b) => b.to_string(),
        Either::Number(n) => n.to_string(),
        Either::Text(t) => t,
    }))
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
            .query(Utc::now(), &[])
            .unwrap_err();
        assert_eq!(e.kind, crate::ErrorKind::BadRequest);
        assert!(e.message.contains("unknown parameter \"colour\""), "{e}");
        let now = Utc::now();
        let (q, _) = r.clone().query(now, &[]).unwrap();
        assert_eq!((q.points, q.to - q.from), (10, 3600));
        let e = HistoryRequest {
            points: Some("many".into()),
            ..r.clone()
        }
        .query(now, &[])
        .unwrap_err();
        assert!(
            e.message.contains("points must be between 1 and 5000"),
            "{e}"
        );
        let e = r.rows(now, &[]).unwrap_err();
        assert!(e.message.contains("points does not apply"), "{e}");
    }

    fn live(nodes: &[(&str, &[&str])]) -> Vec<NodeLive> {
        nodes
            .iter()
            .map(|(n, tags)| NodeLive {
                tags: tags.iter().map(|t| t.to_string()).collect(),
                ..NodeLive::pending(n)
            })
            .collect()
    }

    #[test]
    fn tags_select_nodes_and_group_makes_one_line() {
        let nodes = live(&[("a", &["db", "eu"]), ("b", &["db"]), ("c", &["eu", "web"])]);
        let now = Utc::now();
        let q = |query: &str| HistoryRequest::from_pairs(pairs(query)).query(now, &nodes);
        let (h, none) = q("tag=db").unwrap();
        assert_eq!(
            (h.nodes, h.group, none),
            (vec!["a".into(), "b".into()], None, false)
        );
        let (h, _) = q("tag=db&tag=eu&group=1").unwrap();
        assert_eq!(
            (h.nodes, h.group),
            (vec!["a".to_string()], Some("db+eu".to_string()))
        );
        let (h, _) = q("tag=db&node=b&node=c").unwrap();
        assert_eq!(h.nodes, ["b"], "node and tag: both");
        let (h, none) = q("tag=nothing&group=true").unwrap();
        assert!(
            h.nodes.is_empty() && none,
            "a tag no node has selects none, not all"
        );
        let (h, _) = q("group=1").unwrap();
        assert_eq!((h.nodes.len(), h.group.as_deref()), (3, Some("all")));
        let (h, _) = q("group=1&node=a&node=c").unwrap();
        assert_eq!((h.nodes.len(), h.group.as_deref()), (2, Some("a+c")));
        let (h, none) = q("node=c").unwrap();
        assert_eq!(
            (h.nodes, h.group, none),
            (vec!["c".to_string()], None, false)
        );
        for (bad, want) in [
            ("tag=a%2Fb", "tag \"a/b\": a tag is 1 to 64"),
            ("tag=", "tag \"\": a tag is"),
            ("group=yes", "group must be 1 or 0"),
        ] {
            let e = q(bad).unwrap_err();
            assert_eq!(e.kind, crate::ErrorKind::BadRequest);
            assert!(e.message.contains(want), "{bad}: {e}");
        }
        let r = HistoryRequest::from_pairs(pairs("tag=db&tag=eu&group=1&from=-1h"));
        assert_eq!(HistoryRequest::from_pairs(pairs(&r.to_query())), r);
        let (rows, tagged) = HistoryRequest::from_pairs(pairs("tag=eu"))
            .rows(now, &nodes)
            .unwrap();
        assert_eq!(
            (rows.nodes.len(), tagged),
            (0, Some(vec!["a".into(), "c".into()]))
        );

        let f = NodeFilter::from_pairs(pairs("tag=db&tag=eu"));
        assert!(f.check().is_ok() && f.matches(&nodes[0].tags) && !f.matches(&nodes[1].tags));
        assert!(NodeFilter::from_pairs(pairs("colour=red")).check().is_err());
        assert!(NodeFilter::from_pairs(pairs("tag=a b")).check().is_err());
        assert!(NodeFilter::default().matches(&[]));
    }
}
