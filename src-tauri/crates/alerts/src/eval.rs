//! Rule evaluation: where an alert changes state, and only here.
//!
//! Every live poll of a node is applied to each rule that covers the node. A (rule, node) pair
//! moves ok -> pending -> firing -> ok (resolved), or to no_data when the node gives no value for
//! the rule's metric. The evaluator is synchronous and allocation-light (a poll with no state
//! change allocates nothing): the service around it persists what changed and delivers.

use std::collections::HashMap;

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::Serialize;

use dsmon_config::alerts::{Direction, Metric, RuleConfig, Severity};
use dsmon_core::{format_ts, Metrics};
use dsmon_store::alert_db::{AlertEventRecord, AlertStateRecord};

use crate::model::{AlertState, NoticeItem, NoticeKind};

/// What a poll gave.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    Metrics(&'a Metrics),
    /// The poll failed; `stale`: the agent answered but its data was missing or old.
    Failed {
        stale: bool,
    },
}

/// A rule ready to match nodes.
#[derive(Debug)]
pub struct Rule {
    pub cfg: RuleConfig,
    nodes: Option<GlobSet>,
}

impl Rule {
    pub fn new(cfg: RuleConfig) -> Result<Self, globset::Error> {
        let nodes = if cfg.nodes.is_empty() {
            None
        } else {
            let mut b = GlobSetBuilder::new();
            for g in &cfg.nodes {
                b.add(Glob::new(g)?);
            }
            Some(b.build()?)
        };
        Ok(Self { cfg, nodes })
    }

    /// Whether the rule applies to `node` with these `tags`: its name matches the `nodes` globs
    /// (if any) and it has every tag of the rule.
    pub fn covers(&self, node: &str, tags: &[String]) -> bool {
        self.nodes.as_ref().is_none_or(|g| g.is_match(node))
            && dsmon_config::tags::has_all(tags, &self.cfg.tags)
    }
}

/// One (rule, node) pair's state.
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    pub state: AlertState,
    /// When it entered `state` (pending: when the condition began to hold).
    pub since: i64,
    /// When it started firing (kept through no_data).
    pub fired_at: Option<i64>,
    /// The last value seen (`None` for down/stale rules and without data).
    pub value: Option<f64>,
    pub last_notified: Option<i64>,
    pub acked: Option<(String, i64)>,
}

impl Pair {
    fn new(at: i64) -> Self {
        Self {
            state: AlertState::Ok,
            since: at,
            fired_at: None,
            value: None,
            last_notified: None,
            acked: None,
        }
    }

    fn record(&self, rule: &str, node: &str) -> AlertStateRecord {
        AlertStateRecord {
            rule: rule.to_string(),
            node: node.to_string(),
            state: self.state.as_str().to_string(),
            since: self.since,
            fired_at: self.fired_at,
            value: self.value,
            last_notified: self.last_notified,
            acked_by: self.acked.as_ref().map(|a| a.0.clone()),
            acked_at: self.acked.as_ref().map(|a| a.1),
        }
    }

    fn from_record(r: &AlertStateRecord) -> Option<Self> {
        Some(Self {
            state: AlertState::parse(&r.state)?,
            since: r.since,
            fired_at: r.fired_at,
            value: r.value,
            last_notified: r.last_notified,
            acked: r.acked_by.clone().zip(r.acked_at),
        })
    }
}

/// A notification to make: rule index, kind, the node's item.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub rule: usize,
    pub kind: NoticeKind,
    pub item: NoticeItem,
    /// Silenced or in maintenance: recorded, not delivered.
    pub muted: bool,
}

/// What one or more evaluations changed: to persist, then to deliver.
#[derive(Debug, Default)]
pub struct Changes {
    pub states: Vec<AlertStateRecord>,
    pub removed: Vec<(String, String)>,
    pub events: Vec<AlertEventRecord>,
    pub notices: Vec<Notice>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
            && self.removed.is_empty()
            && self.events.is_empty()
            && self.notices.is_empty()
    }
}

/// An alert pending or firing now (`GET /api/alerts`).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CurrentAlert {
    pub rule: String,
    pub node: String,
    pub state: AlertState,
    pub severity: Severity,
    pub metric: Metric,
    pub direction: Direction,
    pub value: Option<f64>,
    pub threshold: f64,
    /// Firing: when it started firing; pending: when the condition began.
    pub since: String,
    pub acknowledged: Option<Acknowledged>,
    pub silenced: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Acknowledged {
    pub by: String,
    pub at: String,
}

/// Whether an alert of `rule` on `node` is muted now (a silence or a maintenance window).
pub type Mute<'a> = &'a dyn Fn(&RuleConfig, &str) -> bool;

struct Node {
    name: String,
    /// The tags the pairs were made for (a poll with other tags makes them again).
    tags: Vec<String>,
    /// Per rule: `None` when the rule does not cover the node.
    pairs: Vec<Option<Pair>>,
    /// Seconds until the disk is full, from the last fit (`None`: not filling).
    disk_full_in: Option<f64>,
    /// The last disk use seen (when, percent), for the next fit.
    last_disk: Option<(i64, f64)>,
}

/// Every (rule, node) pair's state.
pub struct Evaluator {
    rules: Vec<Rule>,
    nodes: Vec<Node>,
    index: HashMap<String, usize>,
    /// States loaded from the store for nodes not seen yet since the start.
    restored: HashMap<(String, String), Pair>,
    public_url: Option<String>,
}

impl Evaluator {
    pub fn new(rules: Vec<Rule>, public_url: Option<String>) -> Self {
        Self {
            rules,
            nodes: Vec::new(),
            index: HashMap::new(),
            restored: HashMap::new(),
            public_url,
        }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Takes the states kept in the store; each is used when its node is first polled. Returns
    /// the pairs of rules that no longer exist (to delete).
    pub fn restore(&mut self, records: &[AlertStateRecord]) -> Vec<(String, String)> {
        let mut gone = Vec::new();
        for r in records {
            let known = self.rules.iter().any(|x| x.cfg.name == r.rule);
            match Pair::from_record(r) {
                Some(p) if known => {
                    self.restored.insert((r.rule.clone(), r.node.clone()), p);
                }
                _ => gone.push((r.rule.clone(), r.node.clone())),
            }
        }
        gone
    }

    fn slot(&mut self, node: &str) -> usize {
        if let Some(&i) = self.index.get(node) {
            return i;
        }
        let pairs = self
            .rules
            .iter()
            .map(|r| {
                r.covers(node, &[]).then(|| {
                    self.restored
                        .remove(&(r.cfg.name.clone(), node.to_string()))
                        .unwrap_or_else(|| Pair::new(0))
                })
            })
            .collect();
        self.nodes.push(Node {
            name: node.to_string(),
            tags: Vec::new(),
            pairs,
            disk_full_in: None,
            last_disk: None,
        });
        let i = self.nodes.len() - 1;
        self.index.insert(node.to_string(), i);
        i
    }

    /// Node `i` now has `tags`: rules that cover it from now on get a pair (its stored state, if
    /// any), rules that no longer do lose theirs (their alerts end without a notification, as for
    /// a node removed).
    fn retag(&mut self, i: usize, tags: &[String], out: &mut Changes) {
        let n = &mut self.nodes[i];
        n.tags = tags.to_vec();
        for (r, rule) in self.rules.iter().enumerate() {
            match (rule.covers(&n.name, tags), n.pairs[r].is_some()) {
                (true, false) => {
                    n.pairs[r] = Some(
                        self.restored
                            .remove(&(rule.cfg.name.clone(), n.name.clone()))
                            .unwrap_or_else(|| Pair::new(0)),
                    );
                }
                (false, true) => {
                    n.pairs[r] = None;
                    out.removed.push((rule.cfg.name.clone(), n.name.clone()));
                }
                _ => {}
            }
        }
    }

    /// The prediction for `node` (seconds until its disk is full; `None`: not filling).
    pub fn set_disk_full_in(&mut self, node: &str, secs: Option<f64>) {
        let i = self.slot(node);
        self.nodes[i].disk_full_in = secs;
    }

    /// The nodes a `disk_full_in` rule covers, with their last disk use seen.
    pub fn fit_inputs(&self) -> Vec<(String, Option<(i64, f64)>)> {
        let predicting: Vec<usize> = (0..self.rules.len())
            .filter(|&r| self.rules[r].cfg.metric == Metric::DiskFullIn)
            .collect();
        self.nodes
            .iter()
            .filter(|n| predicting.iter().any(|&r| n.pairs[r].is_some()))
            .map(|n| (n.name.clone(), n.last_disk))
            .collect()
    }

    /// Whether any rule predicts disk-full (the service fits only then).
    pub fn predicts(&self) -> bool {
        self.rules
            .iter()
            .any(|r| r.cfg.metric == Metric::DiskFullIn)
    }

    /// Applies a poll of `node` (which has `tags`) at `at` to every rule covering it.
    pub fn observe(
        &mut self,
        node: &str,
        tags: &[String],
        at: i64,
        input: Input<'_>,
        mute: Mute<'_>,
        out: &mut Changes,
    ) {
        let i = self.slot(node);
        if self.nodes[i].tags != tags {
            self.retag(i, tags, out);
        }
        if let Input::Metrics(m) = input {
            self.nodes[i].last_disk = Some((at, m.disk_pct));
        }
        let prediction = self.nodes[i].disk_full_in;
        for (r, rule) in self.rules.iter().enumerate() {
            let Some(pair) = self.nodes[i].pairs[r].as_mut() else {
                continue;
            };
            let seen = observation(&rule.cfg, input, prediction);
            step(
                r,
                rule,
                node,
                pair,
                at,
                seen,
                mute,
                self.public_url.as_deref(),
                out,
            );
        }
    }

    /// Forgets a node that is no longer monitored (its alerts end without a notification).
    pub fn remove_node(&mut self, node: &str, out: &mut Changes) {
        let Some(i) = self.index.remove(node) else {
            return;
        };
        let n = self.nodes.swap_remove(i);
        if let Some(moved) = self.nodes.get(i) {
            self.index.insert(moved.name.clone(), i);
        }
        for (r, p) in n.pairs.iter().enumerate() {
            if p.is_some() {
                out.removed
                    .push((self.rules[r].cfg.name.clone(), n.name.clone()));
            }
        }
    }

    /// The pending and firing alerts, rule order then node name.
    pub fn current(&self, mute: Mute<'_>) -> Vec<CurrentAlert> {
        let mut out = Vec::new();
        for (r, rule) in self.rules.iter().enumerate() {
            let mut of_rule: Vec<CurrentAlert> = self
                .nodes
                .iter()
                .filter_map(|n| {
                    let p = n.pairs[r].as_ref()?;
                    let firing = p
                        .fired_at
                        .filter(|_| matches!(p.state, AlertState::Firing | AlertState::NoData));
                    let (state, since) = match (p.state, firing) {
                        (AlertState::Pending, _) => (AlertState::Pending, p.since),
                        (_, Some(f)) => (AlertState::Firing, f),
                        _ => return None,
                    };
                    Some(CurrentAlert {
                        rule: rule.cfg.name.clone(),
                        node: n.name.clone(),
                        state,
                        severity: rule.cfg.severity,
                        metric: rule.cfg.metric,
                        direction: rule.cfg.direction,
                        value: p.value,
                        threshold: rule.cfg.threshold,
                        since: format_ts(since),
                        acknowledged: p.acked.as_ref().map(|(by, at)| Acknowledged {
                            by: by.clone(),
                            at: format_ts(*at),
                        }),
                        silenced: mute(&rule.cfg, &n.name),
                    })
                })
                .collect();
            of_rule.sort_by(|a, b| a.node.cmp(&b.node));
            out.extend(of_rule);
        }
        out
    }

    /// The alerts of rule `r` firing now, as notification items (Alertmanager's refresh).
    pub fn firing_items(&self, r: usize) -> Vec<NoticeItem> {
        self.nodes
            .iter()
            .filter_map(|n| {
                let p = n.pairs.get(r)?.as_ref()?;
                let since = p
                    .fired_at
                    .filter(|_| matches!(p.state, AlertState::Firing | AlertState::NoData))?;
                Some(NoticeItem {
                    node: n.name.clone(),
                    value: p.value,
                    since,
                    ended: None,
                    url: self.public_url.as_deref().map(|u| node_url(u, &n.name)),
                })
            })
            .collect()
    }

    /// Acknowledges the firing alert of `rule` on `node`: no repeats until it resolves.
    pub fn acknowledge(
        &mut self,
        rule: &str,
        node: &str,
        by: &str,
        at: i64,
        out: &mut Changes,
    ) -> Result<(), AckError> {
        let r = self
            .rules
            .iter()
            .position(|x| x.cfg.name == rule)
            .ok_or(AckError::NotFiring)?;
        let i = *self.index.get(node).ok_or(AckError::NotFiring)?;
        let pair = self.nodes[i].pairs[r].as_mut().ok_or(AckError::NotFiring)?;
        if pair.fired_at.is_none() || !matches!(pair.state, AlertState::Firing | AlertState::NoData)
        {
            return Err(AckError::NotFiring);
        }
        pair.acked = Some((by.to_string(), at));
        out.states.push(pair.record(rule, node));
        Ok(())
    }
}

/// How much earlier than this instance's start of a firing an acknowledgement recorded by
/// another instance may be and still count for it (seconds).
pub const ADOPT_SLACK: i64 = 60;

impl Evaluator {
    /// Takes an acknowledgement recorded elsewhere (another instance on the same database) of
    /// the alert of `rule` on `node`, if it is firing here unacknowledged and the acknowledgement
    /// was made during this firing (instances evaluate their own polls, so their start times
    /// differ by a poll or two: [`ADOPT_SLACK`] of it is allowed). Nothing is recorded or sent.
    /// Whether it was taken.
    pub fn adopt_ack(&mut self, rule: &str, node: &str, by: &str, at: i64) -> bool {
        let Some(r) = self.rules.iter().position(|x| x.cfg.name == rule) else {
            return false;
        };
        let Some(&i) = self.index.get(node) else {
            return false;
        };
        let Some(pair) = self.nodes[i].pairs[r].as_mut() else {
            return false;
        };
        let during = pair.fired_at.is_some_and(|f| at >= f - ADOPT_SLACK);
        if pair.acked.is_some()
            || !during
            || !matches!(pair.state, AlertState::Firing | AlertState::NoData)
        {
            return false;
        }
        pair.acked = Some((by.to_string(), at));
        true
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    #[error("no such alert is firing")]
    NotFiring,
}

/// What a rule sees in a poll: `None` without data, else whether the condition holds (with the
/// value; for the resolve check, whether it is back past `clear`).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Seen {
    value: Option<f64>,
    /// The condition holds (past the threshold).
    holds: bool,
    /// Back past `clear` (the firing alert may resolve).
    cleared: bool,
}

fn observation(rule: &RuleConfig, input: Input<'_>, prediction: Option<f64>) -> Option<Seen> {
    let flag = |holds: bool| Seen {
        value: None,
        holds,
        cleared: !holds,
    };
    let m = match (rule.metric, input) {
        (Metric::Down, Input::Failed { .. }) => return Some(flag(true)),
        (Metric::Down, Input::Metrics(_)) => return Some(flag(false)),
        (Metric::Stale, Input::Failed { stale }) => return stale.then(|| flag(true)),
        (Metric::Stale, Input::Metrics(_)) => return Some(flag(false)),
        (_, Input::Failed { .. }) => return None,
        (_, Input::Metrics(m)) => m,
    };
    let v = match rule.metric {
        Metric::CpuPct => m.cpu_pct,
        Metric::MemPct => m.mem_pct,
        Metric::DiskPct => m.disk_pct,
        Metric::NetInKbps => m.net_in_kbps,
        Metric::NetOutKbps => m.net_out_kbps,
        Metric::DiskFullIn => match prediction {
            // Not filling: the condition does not hold.
            None => {
                return Some(Seen {
                    value: None,
                    holds: false,
                    cleared: true,
                })
            }
            Some(p) => p,
        },
        Metric::Down | Metric::Stale => return None,
    };
    if !v.is_finite() {
        return None;
    }
    let (holds, cleared) = match rule.direction {
        Direction::Above => (v > rule.threshold, v <= rule.clear),
        Direction::Below => (v < rule.threshold, v >= rule.clear),
    };
    Some(Seen {
        value: Some(v),
        holds,
        cleared,
    })
}

/// Moves one pair on by one observation.
#[allow(clippy::too_many_arguments)]
fn step(
    r: usize,
    rule: &Rule,
    node: &str,
    pair: &mut Pair,
    at: i64,
    seen: Option<Seen>,
    mute: Mute<'_>,
    public_url: Option<&str>,
    out: &mut Changes,
) {
    let cfg = &rule.cfg;
    let before = pair.state;
    let firing =
        pair.fired_at.is_some() && matches!(before, AlertState::Firing | AlertState::NoData);
    let Some(seen) = seen else {
        // No data: pending is cancelled; a firing alert is kept (shown firing) until a value
        // says otherwise.
        if before != AlertState::NoData {
            if !firing {
                pair.fired_at = None;
            }
            pair.state = AlertState::NoData;
            pair.since = at;
            out.states.push(pair.record(&cfg.name, node));
        }
        return;
    };
    pair.value = seen.value;
    let item = |pair: &Pair, ended: Option<i64>| NoticeItem {
        node: node.to_string(),
        value: seen.value,
        since: pair.fired_at.unwrap_or(pair.since),
        ended,
        url: public_url.map(|u| node_url(u, node)),
    };
    let event = |state: &str, muted: bool| AlertEventRecord {
        id: 0,
        at,
        rule: cfg.name.clone(),
        node: node.to_string(),
        severity: cfg.severity.as_str().to_string(),
        state: state.to_string(),
        value: seen.value,
        threshold: cfg.threshold,
        silenced: muted,
    };
    if firing {
        if seen.cleared && !seen.holds {
            let muted = mute(cfg, node);
            out.events.push(event("resolved", muted));
            out.notices.push(Notice {
                rule: r,
                kind: NoticeKind::Resolved,
                item: item(pair, Some(at)),
                muted,
            });
            *pair = Pair {
                value: seen.value,
                ..Pair::new(at)
            };
            out.states.push(pair.record(&cfg.name, node));
            return;
        }
        if before == AlertState::NoData {
            pair.state = AlertState::Firing;
            out.states.push(pair.record(&cfg.name, node));
        }
        if let Some(repeat) = cfg.repeat {
            let last = pair.last_notified.or(pair.fired_at).unwrap_or(at);
            if pair.acked.is_none() && at - last >= repeat.as_secs() as i64 {
                pair.last_notified = Some(at);
                let muted = mute(cfg, node);
                out.notices.push(Notice {
                    rule: r,
                    kind: NoticeKind::Repeat,
                    item: item(pair, None),
                    muted,
                });
                out.states.push(pair.record(&cfg.name, node));
            }
        }
        return;
    }
    if !seen.holds {
        if before != AlertState::Ok {
            *pair = Pair {
                value: seen.value,
                ..Pair::new(at)
            };
            out.states.push(pair.record(&cfg.name, node));
        }
        return;
    }
    if before != AlertState::Pending {
        pair.state = AlertState::Pending;
        pair.since = at;
        pair.fired_at = None;
        pair.acked = None;
        out.states.push(pair.record(&cfg.name, node));
    }
    if at - pair.since >= cfg.for_.as_secs() as i64 {
        pair.state = AlertState::Firing;
        pair.fired_at = Some(at);
        pair.last_notified = Some(at);
        let muted = mute(cfg, node);
        out.events.push(event("firing", muted));
        out.notices.push(Notice {
            rule: r,
            kind: NoticeKind::Firing,
            item: item(pair, None),
            muted,
        });
        out.states.push(pair.record(&cfg.name, node));
    }
}

/// The node's page in dsmon.
pub fn node_url(public_url: &str, node: &str) -> String {
    let enc: String = url::form_urlencoded::byte_serialize(node.as_bytes()).collect();
    format!(
        "{}/nodes/{}",
        public_url.trim_end_matches('/'),
        enc.replace('+', "%20")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn rule(metric: Metric, above: f64, clear: f64, for_s: u64) -> RuleConfig {
        RuleConfig {
            name: "r".into(),
            metric,
            direction: Direction::Above,
            threshold: above,
            clear,
            for_: Duration::from_secs(for_s),
            severity: Severity::Warning,
            nodes: vec![],
            tags: vec![],
            notify: vec![],
            repeat: None,
        }
    }

    fn m(cpu: f64) -> Metrics {
        Metrics::from_values([cpu, 10.0, 10.0, 1.0, 1.0])
    }

    fn run(e: &mut Evaluator, at: i64, input: Input<'_>) -> Changes {
        let mut c = Changes::default();
        e.observe("n", &[], at, input, &|_, _| false, &mut c);
        c
    }

    fn kinds(c: &Changes) -> Vec<NoticeKind> {
        c.notices.iter().map(|n| n.kind).collect()
    }

    fn eval(r: RuleConfig) -> Evaluator {
        Evaluator::new(
            vec![Rule::new(r).unwrap()],
            Some("https://mon.example.com/".into()),
        )
    }

    #[test]
    fn pending_then_firing_after_for_then_resolved_past_clear() {
        let mut e = eval(rule(Metric::CpuPct, 90.0, 80.0, 10));
        assert!(run(&mut e, 100, Input::Metrics(&m(50.0)))
            .notices
            .is_empty());
        let c = run(&mut e, 102, Input::Metrics(&m(95.0)));
        assert!(c.notices.is_empty());
        assert_eq!(e.current(&|_, _| false)[0].state, AlertState::Pending);
        assert!(
            run(&mut e, 110, Input::Metrics(&m(95.0)))
                .notices
                .is_empty(),
            "8 s < for"
        );
        let c = run(&mut e, 112, Input::Metrics(&m(96.0)));
        assert_eq!(kinds(&c), vec![NoticeKind::Firing]);
        assert_eq!(
            c.notices[0].item.url.as_deref(),
            Some("https://mon.example.com/nodes/n")
        );
        assert_eq!(c.events[0].state, "firing");
        // Between clear and threshold: still firing (hysteresis).
        assert!(run(&mut e, 114, Input::Metrics(&m(85.0)))
            .notices
            .is_empty());
        assert_eq!(e.current(&|_, _| false)[0].state, AlertState::Firing);
        let c = run(&mut e, 116, Input::Metrics(&m(79.0)));
        assert_eq!(kinds(&c), vec![NoticeKind::Resolved]);
        assert_eq!(c.notices[0].item.since, 112);
        assert!(e.current(&|_, _| false).is_empty());
    }

    #[test]
    fn a_flap_shorter_than_for_never_notifies() {
        let mut e = eval(rule(Metric::Down, 0.0, 0.0, 10));
        run(&mut e, 100, Input::Metrics(&m(1.0)));
        run(&mut e, 102, Input::Failed { stale: false });
        run(&mut e, 108, Input::Failed { stale: false });
        let c = run(&mut e, 110, Input::Metrics(&m(1.0)));
        assert!(c.notices.is_empty() && c.events.is_empty());
        let c = run(&mut e, 112, Input::Failed { stale: false });
        assert!(c.notices.is_empty());
        let c = run(&mut e, 122, Input::Failed { stale: false });
        assert_eq!(kinds(&c), vec![NoticeKind::Firing]);
    }

    #[test]
    fn a_down_node_is_no_data_for_cpu_and_keeps_a_firing_alert() {
        let mut e = eval(rule(Metric::CpuPct, 90.0, 90.0, 2));
        run(&mut e, 100, Input::Metrics(&m(95.0)));
        assert_eq!(
            kinds(&run(&mut e, 102, Input::Metrics(&m(95.0)))),
            vec![NoticeKind::Firing]
        );
        let c = run(&mut e, 104, Input::Failed { stale: false });
        assert!(c.notices.is_empty(), "down does not resolve cpu high");
        assert_eq!(e.current(&|_, _| false)[0].state, AlertState::Firing);
        assert!(
            run(&mut e, 106, Input::Metrics(&m(95.0)))
                .notices
                .is_empty(),
            "back: still the same alert"
        );
        // Pending is cancelled by no data.
        let mut e = eval(rule(Metric::CpuPct, 90.0, 90.0, 10));
        run(&mut e, 100, Input::Metrics(&m(95.0)));
        run(&mut e, 102, Input::Failed { stale: false });
        run(&mut e, 104, Input::Metrics(&m(95.0)));
        assert!(
            run(&mut e, 111, Input::Metrics(&m(95.0)))
                .notices
                .is_empty(),
            "pending restarted at 104"
        );
        assert_eq!(
            kinds(&run(&mut e, 114, Input::Metrics(&m(95.0)))),
            vec![NoticeKind::Firing]
        );
    }

    #[test]
    fn repeat_until_acknowledged_and_restore_does_not_renotify() {
        let mut r = rule(Metric::CpuPct, 90.0, 90.0, 2);
        r.repeat = Some(Duration::from_secs(60));
        let mut e = eval(r.clone());
        run(&mut e, 100, Input::Metrics(&m(95.0)));
        let c = run(&mut e, 102, Input::Metrics(&m(95.0)));
        assert_eq!(kinds(&c), vec![NoticeKind::Firing]);
        assert!(run(&mut e, 150, Input::Metrics(&m(95.0)))
            .notices
            .is_empty());
        assert_eq!(
            kinds(&run(&mut e, 162, Input::Metrics(&m(95.0)))),
            vec![NoticeKind::Repeat]
        );
        // A restart: the stored state comes back and nothing is notified again.
        let mut stored = Changes::default();
        e.acknowledge("r", "n", "admin@example.com", 170, &mut stored)
            .unwrap();
        let mut e2 = eval(r);
        e2.restore(&stored.states);
        assert!(
            run(&mut e2, 240, Input::Metrics(&m(95.0)))
                .notices
                .is_empty(),
            "acknowledged: no repeat"
        );
        assert_eq!(
            e2.current(&|_, _| false)[0]
                .acknowledged
                .as_ref()
                .unwrap()
                .by,
            "admin@example.com"
        );
        let c = run(&mut e2, 242, Input::Metrics(&m(10.0)));
        assert_eq!(kinds(&c), vec![NoticeKind::Resolved]);
        assert_eq!(
            e2.acknowledge("r", "n", "x", 243, &mut Changes::default()),
            Err(AckError::NotFiring)
        );
    }

    #[test]
    fn an_acknowledgement_from_another_instance_stops_the_repeats_of_this_firing_only() {
        let mut r = rule(Metric::CpuPct, 90.0, 90.0, 2);
        r.repeat = Some(Duration::from_secs(60));
        let mut e = eval(r);
        assert!(!e.adopt_ack("r", "n", "bob", 90), "nothing is firing");
        run(&mut e, 100, Input::Metrics(&m(95.0)));
        assert_eq!(
            kinds(&run(&mut e, 102, Input::Metrics(&m(95.0)))),
            vec![NoticeKind::Firing]
        );
        // Made before this firing (beyond the slack between instances): an earlier firing's.
        assert!(!e.adopt_ack("r", "n", "bob", 102 - ADOPT_SLACK - 1));
        assert!(!e.adopt_ack("other rule", "n", "bob", 110));
        // The other instance fired a second earlier and was acknowledged then.
        assert!(e.adopt_ack("r", "n", "bob", 101));
        assert!(!e.adopt_ack("r", "n", "carol", 120), "taken once");
        assert!(
            run(&mut e, 170, Input::Metrics(&m(95.0)))
                .notices
                .is_empty(),
            "acknowledged elsewhere: no repeat"
        );
        assert_eq!(
            e.current(&|_, _| false)[0]
                .acknowledged
                .as_ref()
                .unwrap()
                .by,
            "bob"
        );
    }

    #[test]
    fn muted_alerts_are_recorded_as_silenced() {
        let mut e = eval(rule(Metric::CpuPct, 90.0, 90.0, 2));
        let mut c = Changes::default();
        e.observe(
            "n",
            &[],
            100,
            Input::Metrics(&m(95.0)),
            &|_, _| true,
            &mut c,
        );
        e.observe(
            "n",
            &[],
            102,
            Input::Metrics(&m(95.0)),
            &|_, _| true,
            &mut c,
        );
        assert!(c.notices[0].muted && c.events[0].silenced);
    }

    #[test]
    fn tags_scope_a_rule_and_a_tag_change_moves_it() {
        let mut r = rule(Metric::CpuPct, 90.0, 90.0, 2);
        r.nodes = vec!["db-*".into()];
        r.tags = vec!["eu".into(), "prod".into()];
        let mut e = eval(r);
        let eu_prod = ["eu".to_string(), "prod".to_string()];
        let fire = |e: &mut Evaluator, node: &str, tags: &[String], at: i64| {
            let mut c = Changes::default();
            e.observe(
                node,
                tags,
                at,
                Input::Metrics(&m(95.0)),
                &|_, _| false,
                &mut c,
            );
            c
        };
        for at in [100, 102] {
            fire(&mut e, "db-1", &eu_prod, at);
            fire(&mut e, "db-2", &eu_prod[..1], at);
            fire(&mut e, "web-1", &eu_prod, at);
        }
        let nodes = |e: &Evaluator| {
            e.current(&|_, _| false)
                .into_iter()
                .map(|a| a.node)
                .collect::<Vec<_>>()
        };
        assert_eq!(nodes(&e), ["db-1"], "both the glob and all the tags");
        // db-1 loses a tag: its alert ends, without a notification; db-2 gains it and is covered.
        let c = fire(&mut e, "db-1", &eu_prod[..1], 104);
        assert_eq!(c.removed, [("r".to_string(), "db-1".to_string())]);
        assert!(c.notices.is_empty());
        fire(&mut e, "db-2", &eu_prod, 104);
        let c = fire(&mut e, "db-2", &eu_prod, 106);
        assert_eq!(kinds(&c), vec![NoticeKind::Firing]);
        assert_eq!(nodes(&e), ["db-2"]);
    }

    #[test]
    fn globs_and_prediction() {
        let mut r = rule(Metric::DiskFullIn, 0.0, 0.0, 2);
        r.direction = Direction::Below;
        r.threshold = 86_400.0;
        r.clear = 86_400.0;
        r.nodes = vec!["web-*".into()];
        let mut e = eval(r);
        let mut c = Changes::default();
        e.set_disk_full_in("db-1", Some(3600.0));
        e.set_disk_full_in("web-1", Some(3600.0));
        for at in [100, 102] {
            e.observe(
                "db-1",
                &[],
                at,
                Input::Metrics(&m(1.0)),
                &|_, _| false,
                &mut c,
            );
            e.observe(
                "web-1",
                &[],
                at,
                Input::Metrics(&m(1.0)),
                &|_, _| false,
                &mut c,
            );
        }
        assert_eq!(c.notices.len(), 1);
        assert_eq!(c.notices[0].item.node, "web-1");
        e.set_disk_full_in("web-1", None);
        let mut c = Changes::default();
        e.observe(
            "web-1",
            &[],
            104,
            Input::Metrics(&m(1.0)),
            &|_, _| false,
            &mut c,
        );
        assert_eq!(c.notices[0].kind, NoticeKind::Resolved);
    }
}
