//! History queries: per node, at most N time buckets with the average and maximum of every metric
//! and the node's availability, read from the coarsest stored tier that still gives the requested
//! resolution (raw rows, or the 1 h / 6 h / 1 d roll-ups).

use serde::Serialize;

use dsmon_core::{format_ts, METRICS};

use crate::sqlite::{Period, StoreError, ROLLUPS};
use crate::SampleStore;

/// Bucket counts accepted for `points`.
pub const MAX_POINTS: usize = 5000;
pub const DEFAULT_POINTS: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("from ({from}) is after to ({to})")]
    Range { from: String, to: String },
    #[error("points must be between 1 and {MAX_POINTS}, not {0}")]
    Points(String),
    #[error("unknown node {name:?}")]
    UnknownNode { name: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub type Result<T> = std::result::Result<T, HistoryError>;

#[derive(Debug, Clone)]
pub struct HistoryQuery {
    /// Inclusive bounds, Unix seconds.
    pub from: i64,
    pub to: i64,
    pub points: usize,
    /// Empty: every node (configured ones first, then retired ones).
    pub nodes: Vec<String>,
    /// `Some(name)`: one line named so for all of `nodes` together (a group): per bucket the
    /// average over every answered row of the group's nodes, and the peak of any of them.
    pub group: Option<String>,
}

/// Which table answers and how wide its buckets are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// `None` for the raw rows.
    pub rollup: Option<&'static str>,
    /// Bucket width in seconds (a multiple of the tier's own resolution).
    pub step: i64,
    /// Start of the first bucket (a multiple of `step`).
    pub first: i64,
    /// Number of buckets (at most the requested points).
    pub count: usize,
}

/// Chooses the tier and bucket width for `[from, to]` in at most `points` buckets.
///
/// The width is the wanted one (span / points) rounded up to a multiple of the coarsest stored
/// resolution not above it (raw rows count as `log_interval`, so raw buckets are never narrower than
/// the rows, or most would be empty). The table read is then the coarsest tier whose periods divide
/// that width exactly: the same buckets from the fewest stored rows.
pub fn plan(from: i64, to: i64, points: usize, log_interval: i64) -> Plan {
    let span = (to - from + 1).max(1);
    let points = points.clamp(1, MAX_POINTS) as i64;
    let wanted = (span + points - 1) / points;
    let raw_unit = log_interval.max(1);
    let unit = ROLLUPS
        .iter()
        .rev()
        .map(|(_, secs)| *secs)
        .find(|secs| *secs <= wanted && *secs >= raw_unit)
        .unwrap_or(raw_unit);
    let mut step = ((wanted.max(unit) + unit - 1) / unit) * unit;
    let (first, count) = loop {
        let first = from.div_euclid(step) * step;
        let count = (to - first).div_euclid(step) + 1;
        if count <= points {
            break (first, count);
        }
        step += unit;
    };
    let rollup = ROLLUPS
        .iter()
        .rev()
        .find(|(_, secs)| step % secs == 0 && *secs >= raw_unit)
        .map(|(t, _)| *t);
    Plan {
        rollup,
        step,
        first,
        count: count as usize,
    }
}

/// A metric's per-bucket average and maximum.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Series {
    pub avg: Vec<Option<f64>>,
    pub max: Vec<Option<f64>>,
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct NodeHistory {
    pub name: String,
    /// In the database but no longer configured.
    pub retired: bool,
    /// Share of the logged rows in the range where the node answered; `None` when nothing was logged.
    pub availability: Option<f64>,
    /// Per bucket: share of logged rows where the node answered (`None`: nothing logged).
    pub availability_series: Vec<Option<f64>>,
    /// One entry per metric, keyed like the CSV columns (`cpu_pct`, ...).
    #[schema(value_type = std::collections::BTreeMap<String, Series>)]
    pub metrics: std::collections::BTreeMap<&'static str, Series>,
}

/// The nodes a group line stands for.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Group {
    pub name: String,
    pub nodes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct History {
    pub from: String,
    pub to: String,
    /// Bucket width, seconds.
    pub step: i64,
    /// `raw` or one of the roll-up tables of `store::ROLLUPS`.
    #[schema(value_type = String)]
    pub tier: &'static str,
    /// Bucket start times (Unix seconds), shared by every node.
    pub t: Vec<i64>,
    pub nodes: Vec<NodeHistory>,
    /// For a group query: its name and members (`nodes` then holds its one line).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<Group>,
}

/// Checks `q`'s range and points and plans it: the plan and the bucket starts.
fn checked_plan(q: &HistoryQuery, log_interval: i64) -> Result<(Plan, Vec<i64>)> {
    if q.from > q.to {
        return Err(HistoryError::Range {
            from: format_ts(q.from),
            to: format_ts(q.to),
        });
    }
    if q.points == 0 || q.points > MAX_POINTS {
        return Err(HistoryError::Points(q.points.to_string()));
    }
    let p = plan(q.from, q.to, q.points, log_interval);
    let t: Vec<i64> = (0..p.count as i64).map(|i| p.first + i * p.step).collect();
    Ok((p, t))
}

/// The answer for no nodes at all (a tag no node has): the buckets of `q`, no lines; a group
/// query gets its (empty) group.
pub fn empty(q: &HistoryQuery, log_interval: i64) -> Result<History> {
    let (p, t) = checked_plan(q, log_interval)?;
    Ok(History {
        from: format_ts(q.from),
        to: format_ts(q.to),
        step: p.step,
        tier: p.rollup.unwrap_or("raw"),
        t,
        nodes: Vec::new(),
        group: q.group.clone().map(|name| Group {
            name,
            nodes: Vec::new(),
        }),
    })
}

/// Answers `q`. `configured` are the configured node names (retired ones are the store's others).
pub fn query(
    store: &dyn SampleStore,
    q: &HistoryQuery,
    configured: &[String],
    log_interval: i64,
) -> Result<History> {
    let (p, t) = checked_plan(q, log_interval)?;
    let known = store.node_names()?;
    let names: Vec<String> = if q.nodes.is_empty() {
        let mut v = configured.to_vec();
        v.extend(known.iter().filter(|n| !configured.contains(n)).cloned());
        v
    } else {
        if let Some(name) = q
            .nodes
            .iter()
            .find(|n| !known.contains(n) && !configured.contains(n))
        {
            return Err(HistoryError::UnknownNode { name: name.clone() });
        }
        q.nodes.clone()
    };
    let end = p.first + p.count as i64 * p.step;
    let ids = store.node_ids(&names)?;
    // A group adds every member's periods into one line.
    let lines = if q.group.is_some() { 1 } else { names.len() };
    let mut acc: Vec<Acc> = (0..lines).map(|_| Acc::new(p.count)).collect();
    let slot: std::collections::HashMap<i64, usize> = ids
        .iter()
        .filter_map(|(name, id)| {
            let i = names.iter().position(|n| n == name)?;
            Some((*id, if q.group.is_some() { 0 } else { i }))
        })
        .collect();
    let id_list: Vec<i64> = ids.iter().map(|(_, id)| *id).collect();
    store.scan_periods(&id_list, p.first, end, p.rollup, &mut |id, period| {
        if let Some(&i) = slot.get(&id) {
            acc[i].add(((period.ts - p.first) / p.step) as usize, period);
        }
    })?;
    let (nodes, group) = match &q.group {
        Some(name) => {
            let line = acc.into_iter().map(|a| a.finish(name, false)).collect();
            let group = Group {
                name: name.clone(),
                nodes: names,
            };
            (line, Some(group))
        }
        None => {
            let lines = names
                .iter()
                .zip(acc)
                .map(|(name, a)| a.finish(name, !configured.contains(name)))
                .collect();
            (lines, None)
        }
    };
    Ok(History {
        from: format_ts(q.from),
        to: format_ts(q.to),
        step: p.step,
        tier: p.rollup.unwrap_or("raw"),
        t,
        nodes,
        group,
    })
}

/// One node's buckets while periods are added.
struct Acc {
    n_rows: Vec<i64>,
    n_ok: Vec<i64>,
    sum: Vec<[Option<f64>; 5]>,
    max: Vec<[Option<f64>; 5]>,
}

impl Acc {
    fn new(n: usize) -> Self {
        Self {
            n_rows: vec![0; n],
            n_ok: vec![0; n],
            sum: vec![[None; 5]; n],
            max: vec![[None; 5]; n],
        }
    }

    fn add(&mut self, i: usize, p: &Period) {
        if i >= self.n_rows.len() {
            return;
        }
        self.n_rows[i] += p.n_rows;
        self.n_ok[i] += p.n_ok;
        for m in 0..METRICS.len() {
            if let Some(v) = p.sum[m] {
                self.sum[i][m] = Some(self.sum[i][m].unwrap_or(0.0) + v);
            }
            if let Some(v) = p.max[m] {
                self.max[i][m] = Some(self.max[i][m].map_or(v, |x: f64| x.max(v)));
            }
        }
    }

    fn finish(self, name: &str, retired: bool) -> NodeHistory {
        let n = self.n_rows.len();
        let mut series: Vec<Series> = METRICS
            .iter()
            .map(|_| Series {
                avg: vec![None; n],
                max: vec![None; n],
            })
            .collect();
        let availability_series: Vec<Option<f64>> = self
            .n_rows
            .iter()
            .zip(&self.n_ok)
            .map(|(rows, ok)| (*rows > 0).then(|| *ok as f64 / *rows as f64))
            .collect();
        for i in 0..n {
            for (m, s) in series.iter_mut().enumerate() {
                if self.n_ok[i] > 0 {
                    s.avg[i] = self.sum[i][m].map(|x| x / self.n_ok[i] as f64);
                }
                s.max[i] = self.max[i][m];
            }
        }
        let rows: i64 = self.n_rows.iter().sum();
        let ok: i64 = self.n_ok.iter().sum();
        NodeHistory {
            name: name.to_string(),
            retired,
            availability: (rows > 0).then(|| ok as f64 / rows as f64),
            availability_series,
            metrics: METRICS.iter().copied().zip(series).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsmon_core::{Metrics, Row};

    #[test]
    fn plans_pick_the_coarsest_tier_that_fits() {
        let day = 86_400;
        // 24 h in 500 points: raw rows, 10-minute buckets (no narrower than the log interval).
        let p = plan(0, day - 1, 500, 600);
        assert_eq!((p.rollup, p.step, p.count), (None, 600, 144));
        // 7 days: 30-minute buckets, read from the 30-minute roll-ups.
        let p = plan(0, 7 * day - 1, 500, 600);
        assert_eq!((p.rollup, p.step, p.count), (Some("rollup_30m"), 1800, 336));
        // 30 days: 2 h buckets (1 h is the coarsest resolution under the wanted 1.44 h, rounded up
        // to fit in 500 points), read from the 2-hour roll-ups, one period per bucket.
        let p = plan(0, 30 * day - 1, 500, 600);
        assert_eq!((p.rollup, p.step), (Some("rollup_2h"), 7200));
        // A year: 12 h is the coarsest resolution under the wanted 17.5 h, so 24 h buckets, which the
        // daily roll-ups give from the fewest rows.
        let p = plan(0, 365 * day - 1, 500, 600);
        assert_eq!(
            (p.rollup, p.step, p.count),
            (Some("rollup_1d"), 86_400, 365)
        );
        // A year in 1000 points: 12 h buckets.
        let p = plan(0, 365 * day - 1, 1000, 600);
        assert_eq!((p.rollup, p.step), (Some("rollup_12h"), 43_200));
        // A log interval the tiers do not divide (7 min): raw rows.
        let p = plan(0, day - 1, 500, 420);
        assert_eq!((p.rollup, p.step), (None, 420));
        // Unaligned ranges still fit in the points asked for.
        for points in [1, 7, 499, 500, 5000] {
            let p = plan(1_795_525_877, 1_795_525_877 + 30 * day, points, 600);
            assert!(p.count <= points, "{points}: {p:?}");
            assert_eq!(p.first % p.step, 0);
        }
    }

    fn m(x: f64) -> Metrics {
        Metrics {
            cpu_pct: x,
            mem_pct: x / 2.0,
            disk_pct: 50.0,
            net_in_kbps: x * 10.0,
            net_out_kbps: 1.0,
        }
    }

    /// One node's buckets computed straight from the rows written, without the store, the planner
    /// or the accumulator under test: per bucket `[t, t + step)` the average and the maximum of
    /// every metric over the rows with values, and availability = answered rows / logged rows.
    struct Reference {
        availability: Option<f64>,
        availability_series: Vec<Option<f64>>,
        avg: std::collections::BTreeMap<&'static str, Vec<Option<f64>>>,
        max: std::collections::BTreeMap<&'static str, Vec<Option<f64>>>,
    }

    impl Reference {
        fn of(rows: &[Row], node: &str, t: &[i64], step: i64) -> Self {
            let keys = [
                "cpu_pct",
                "disk_pct",
                "mem_pct",
                "net_in_kbps",
                "net_out_kbps",
            ];
            let value = |m: &Metrics, key: &str| match key {
                "cpu_pct" => m.cpu_pct,
                "mem_pct" => m.mem_pct,
                "disk_pct" => m.disk_pct,
                "net_in_kbps" => m.net_in_kbps,
                "net_out_kbps" => m.net_out_kbps,
                _ => unreachable!("{key}"),
            };
            let mut r = Reference {
                availability: None,
                availability_series: Vec::new(),
                avg: keys.iter().map(|k| (*k, Vec::new())).collect(),
                max: keys.iter().map(|k| (*k, Vec::new())).collect(),
            };
            let (mut logged, mut answered) = (0usize, 0usize);
            for start in t {
                let inside: Vec<&Row> = rows
                    .iter()
                    .filter(|row| row.node == node && row.ts >= *start && row.ts < start + step)
                    .collect();
                let with_values: Vec<&Metrics> = inside
                    .iter()
                    .filter_map(|row| row.metrics.as_ref())
                    .collect();
                logged += inside.len();
                answered += with_values.len();
                r.availability_series.push(
                    (!inside.is_empty()).then(|| with_values.len() as f64 / inside.len() as f64),
                );
                for k in keys {
                    let values: Vec<f64> = with_values.iter().map(|m| value(m, k)).collect();
                    let n = values.len() as f64;
                    r.avg
                        .get_mut(k)
                        .unwrap()
                        .push((n > 0.0).then(|| values.iter().sum::<f64>() / n));
                    r.max
                        .get_mut(k)
                        .unwrap()
                        .push(values.iter().copied().reduce(f64::max));
                }
            }
            r.availability = (logged > 0).then(|| answered as f64 / logged as f64);
            r
        }
    }

    /// Three days of 10-minute rows for two nodes, one with an outage; every tier must agree with a
    /// computation over the raw rows.
    #[test]
    fn rollups_agree_with_raw_rows() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = crate::SqliteStore::open(&dir.path().join("h.sqlite3")).unwrap();
        let start = 1_795_478_400; // a midnight UTC
        let mut rows = Vec::new();
        for i in 0..(3 * 144) {
            let ts = start + i * 600;
            rows.push(Row {
                ts,
                node: "a".into(),
                metrics: Some(m((i % 97) as f64)),
                error: None,
            });
            let down = (100..130).contains(&i);
            rows.push(Row {
                ts,
                node: "b".into(),
                metrics: (!down).then(|| m(((i * 7) % 89) as f64)),
                error: down.then(|| "no answer within 3s".to_string()),
            });
        }
        s.insert_rows(&rows).unwrap();
        // Writing the same rows again changes nothing (roll-ups included).
        assert_eq!(s.insert_rows(&rows).unwrap(), 0);

        let configured = vec!["a".to_string(), "b".to_string()];
        let (from, to) = (start, start + 3 * 86_400 - 1);
        for points in [72, 12, 3] {
            let h = query(
                &s,
                &HistoryQuery {
                    from,
                    to,
                    points,
                    nodes: vec![],
                    group: None,
                },
                &configured,
                600,
            )
            .unwrap();
            assert_ne!(h.tier, "raw", "{points} points should use a roll-up");
            // The bucket width is the planner's choice (tested above); everything else is
            // recomputed from the rows themselves.
            let want_t: Vec<i64> = (from.div_euclid(h.step) * h.step..=to)
                .step_by(h.step as usize)
                .collect();
            assert_eq!(h.t, want_t, "bucket starts at {points} points");
            assert_eq!(
                h.nodes.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(),
                ["a", "b"]
            );
            for got in &h.nodes {
                let want = Reference::of(&rows, &got.name, &h.t, h.step);
                let at = format!("{} at {points} points", got.name);
                assert_eq!(got.availability, want.availability, "{at}");
                assert_eq!(got.availability_series, want.availability_series, "{at}");
                assert_eq!(
                    got.metrics.keys().copied().collect::<Vec<_>>(),
                    want.avg.keys().copied().collect::<Vec<_>>(),
                    "{at}"
                );
                for (k, g) in &got.metrics {
                    assert_eq!(g.max, want.max[k], "{k} max of {at}");
                    assert_eq!(g.avg.len(), want.avg[k].len(), "{k} avg of {at}");
                    for (a, b) in g.avg.iter().zip(&want.avg[k]) {
                        match (a, b) {
                            (Some(a), Some(b)) => {
                                assert!((a - b).abs() < 1e-9, "{k} avg of {at}: {a} vs {b}")
                            }
                            _ => assert_eq!(a, b, "{k} avg of {at}"),
                        }
                    }
                }
            }
        }
        // The outage: 30 of 432 rows of b are down.
        let h = query(
            &s,
            &HistoryQuery {
                from,
                to,
                points: 3,
                nodes: vec!["b".into()],
                group: None,
            },
            &configured,
            600,
        )
        .unwrap();
        let a = h.nodes[0].availability.unwrap();
        assert!((a - 402.0 / 432.0).abs() < 1e-12, "{a}");
    }

    #[test]
    fn gaps_stay_null_and_bad_input_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = crate::SqliteStore::open(&dir.path().join("h.sqlite3")).unwrap();
        let rows = vec![
            Row {
                ts: 6000,
                node: "a".into(),
                metrics: Some(m(10.0)),
                error: None,
            },
            Row {
                ts: 6600,
                node: "a".into(),
                metrics: None,
                error: Some("down".into()),
            },
            Row {
                ts: 7800,
                node: "old".into(),
                metrics: Some(m(20.0)),
                error: None,
            },
        ];
        s.insert_rows(&rows).unwrap();
        let configured = vec!["a".to_string()];
        let h = query(
            &s,
            &HistoryQuery {
                from: 6000,
                to: 7799,
                points: 500,
                nodes: vec![],
                group: None,
            },
            &configured,
            600,
        )
        .unwrap();
        assert_eq!(h.t, vec![6000, 6600, 7200]);
        let a = &h.nodes[0];
        assert_eq!(a.metrics["cpu_pct"].avg, vec![Some(10.0), None, None]);
        assert_eq!(a.availability_series, vec![Some(1.0), Some(0.0), None]);
        assert_eq!(a.availability, Some(0.5));
        assert!(h.nodes[1].retired && h.nodes[1].name == "old");
        assert_eq!(h.nodes[1].availability, None);

        let bad = |q: HistoryQuery| query(&s, &q, &configured, 600).unwrap_err().to_string();
        assert!(bad(HistoryQuery {
            from: 2,
            to: 1,
            points: 5,
            nodes: vec![],
            group: None,
        })
        .contains("is after"));
        assert!(bad(HistoryQuery {
            from: 1,
            to: 2,
            points: 0,
            nodes: vec![],
            group: None,
        })
        .contains("between 1 and 5000"));
        assert!(bad(HistoryQuery {
            from: 1,
            to: 2,
            points: 5001,
            nodes: vec![],
            group: None,
        })
        .contains("between 1 and 5000"));
        assert!(bad(HistoryQuery {
            from: 1,
            to: 2,
            points: 5,
            nodes: vec!["zz".into()],
            group: None,
        })
        .contains("unknown node"));
    }
}
