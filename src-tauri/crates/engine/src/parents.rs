//! Nodes discovered through Netdata parents (`[[parents]]`), mixed with the static `[[nodes]]`.
//!
//! A node source as `docs/architecture.md` describes it: [`Discovery`] reads each parent's
//! `/api/v1/info` every `refresh`, works out the node set (static nodes first, then each parent's
//! children in guid order) and hands it to [`Collector::replace_nodes`]. Nothing else changes the
//! node set while it runs, so a SIGHUP goes through [`Discovery::reconfigure`] too.
//!
//! - A child is known by its guid. It is polled through the parent at `/host/<guid>/` (1.37
//!   resolves a guid there as well as a hostname, so two children with one hostname stay apart).
//! - Its node name is its hostname, fixed at first sight for the life of the process (a renamed
//!   child keeps its name, so its history continues). A hostname already taken by another child
//!   gets the guid's first eight characters: `web (9a3bc2de)`; that is logged. A static node of
//!   the same name, or a second parent listing the same guid, wins: the node is polled once.
//! - A child listed with `reachable: false`, or no longer listed, is held down with
//!   [`NetdataError::NotStreaming`] (not polled). Missing from the list for `retire_after`, it
//!   leaves the node set (its history stays). Missing-since times live in memory: after a restart
//!   a child that is no longer listed is simply not discovered.
//! - A parent that does not answer keeps its last known children, polled (and failing within the
//!   per-node timeout) as usual; reading a parent never delays a poll or a tick.
//! - Only `/api/v1/info` is used: it exists on 1.37 (where `/api/v2` answers 404) and later.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use dsmon_config::{NodeConfig, ParentConfig};
use dsmon_netdata::{Agent, AgentInfo, ClientPool, NetdataError};

use crate::collector::{Collector, CollectorError};
use crate::registry::Change;

/// Longest node name made from a hostname (the configuration allows 128 characters).
const MAX_NAME: usize = 100;

/// One child as its parent last listed it.
#[derive(Debug, Clone, PartialEq)]
struct Child {
    hostname: String,
    reachable: bool,
    /// In the parent's latest answer.
    listed: bool,
    /// When it was last in an answer.
    last_listed: Instant,
}

struct Parent {
    config: ParentConfig,
    /// The parent's URL as shown in messages (`http://10.0.0.5:19999`).
    label: String,
    agent: Arc<Agent>,
    /// By guid, in guid order.
    children: BTreeMap<String, Child>,
    next_read: Instant,
    /// The outcome of the latest read (`None` before the first).
    last_read: Option<Result<usize, NetdataError>>,
}

struct State {
    static_nodes: Vec<NodeConfig>,
    parents: Vec<Parent>,
    /// guid -> node name, kept while the child is known.
    names: HashMap<String, String>,
}

/// What `dsmon check` shows about one parent.
#[derive(Debug, Clone)]
pub struct ParentReport {
    pub url: String,
    /// The latest read: the number of children listed, or why it failed.
    pub read: Option<Result<usize, NetdataError>>,
    pub children: Vec<ChildReport>,
}

/// One child a parent lists, and what became of it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChildReport {
    pub guid: String,
    pub hostname: String,
    pub reachable: bool,
    /// The node it is monitored as, or why it is not.
    pub node: Result<String, Skipped>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skipped {
    /// Not matched by `include`, or matched by `exclude`.
    Filtered,
    /// A static `[[nodes]]` entry of this name (or address) is the same node.
    Static(String),
    /// An earlier parent lists the same guid.
    OtherParent(String),
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Filtered => write!(f, "left out by include/exclude"),
            Self::Static(n) => write!(f, "already monitored as [[nodes]] {n:?}"),
            Self::OtherParent(p) => write!(f, "already monitored through {p}"),
        }
    }
}

/// The node set from `[[nodes]]` and `[[parents]]`, kept up to date.
pub struct Discovery {
    collector: Arc<Collector>,
    /// Per-read budget for a parent (the collector's per-node timeout).
    timeout: Duration,
    state: Mutex<State>,
    wake: Notify,
}

impl Discovery {
    /// A source of `nodes` and the children of `parents`; nothing is read until [`Self::refresh`]
    /// or [`Self::spawn`].
    pub fn new(
        collector: Arc<Collector>,
        nodes: &[NodeConfig],
        parents: &[ParentConfig],
    ) -> Result<Self, CollectorError> {
        let timeout = collector.settings().timeout;
        let d = Self {
            collector,
            timeout,
            state: Mutex::new(State {
                static_nodes: Vec::new(),
                parents: Vec::new(),
                names: HashMap::new(),
            }),
            wake: Notify::new(),
        };
        d.reconfigure(nodes, parents)?;
        Ok(d)
    }

    /// Takes a new configuration: static nodes apply at once, new parents are read at once (by
    /// the loop of [`Self::spawn`]); a parent kept keeps its children. On an error (a bad CA
    /// file) nothing changes.
    pub fn reconfigure(
        &self,
        nodes: &[NodeConfig],
        parents: &[ParentConfig],
    ) -> Result<Change, CollectorError> {
        let connect = self.collector.settings().connect_timeout();
        let mut pool = ClientPool::new(connect)?;
        let mut state = self.lock()?;
        let mut old: HashMap<url::Url, Parent> = state
            .parents
            .drain(..)
            .map(|p| (p.config.url.clone(), p))
            .collect();
        let mut new_parents = Vec::with_capacity(parents.len());
        let mut failed = None;
        for cfg in parents {
            match old.remove(&cfg.url) {
                Some(mut p) if p.config.ca_file == cfg.ca_file => {
                    if p.config.refresh != cfg.refresh {
                        p.next_read = Instant::now();
                    }
                    p.config = cfg.clone();
                    new_parents.push(p);
                }
                kept => match parent_agent(&mut pool, cfg) {
                    Ok(agent) => new_parents.push(Parent {
                        config: cfg.clone(),
                        label: label(&cfg.url),
                        agent: Arc::new(agent),
                        children: kept.map(|p| p.children).unwrap_or_default(),
                        next_read: Instant::now(),
                        last_read: None,
                    }),
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                },
            }
        }
        let old_static = std::mem::replace(&mut state.static_nodes, nodes.to_vec());
        let old_parents = std::mem::replace(&mut state.parents, new_parents);
        let applied = match failed {
            Some(e) => Err(CollectorError::Netdata(e)),
            None => self.apply(&mut state),
        };
        if applied.is_err() {
            // Put everything back: the running set is kept.
            state.static_nodes = old_static;
            let mut restored = old_parents;
            restored.extend(old.into_values());
            state.parents = restored;
        }
        drop(state);
        self.wake.notify_one();
        applied
    }

    /// Reads every parent now (concurrently, each within the per-node timeout) and applies the
    /// result; `dsmon check` and `collect --once` use it, the loop reads only the parents due.
    pub async fn refresh(&self) -> Result<Change, CollectorError> {
        self.read_parents(true).await
    }

    /// What each parent yields, as of the latest read.
    pub fn report(&self) -> Vec<ParentReport> {
        let Ok(state) = self.lock() else {
            return Vec::new();
        };
        let (_, _, reports) = assemble(&state, &mut state.names.clone());
        reports
    }

    /// Keeps the node set up to date until `shutdown` turns true: each parent is read every
    /// `refresh`, and at once after [`Self::reconfigure`] adds it.
    pub fn spawn(
        self: Arc<Self>,
        mut shutdown: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                if let Err(e) = self.read_parents(false).await {
                    tracing::error!(error = %e, "discovered nodes not applied: the running set is kept");
                }
                let next = self
                    .lock()
                    .ok()
                    .and_then(|s| s.parents.iter().map(|p| p.next_read).min())
                    .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
                tokio::select! {
                    _ = tokio::time::sleep_until(next) => {}
                    _ = self.wake.notified() => {}
                    _ = shutdown.changed() => if *shutdown.borrow() { return },
                }
            }
        })
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>, CollectorError> {
        self.state
            .lock()
            .map_err(|_| CollectorError::Internal("discovery state lock poisoned".into()))
    }

    /// Reads the parents due (all with `all`) without holding the state, then applies.
    async fn read_parents(&self, all: bool) -> Result<Change, CollectorError> {
        let now = Instant::now();
        let due: Vec<(url::Url, Arc<Agent>)> = self
            .lock()?
            .parents
            .iter()
            .filter(|p| all || p.next_read <= now)
            .map(|p| (p.config.url.clone(), Arc::clone(&p.agent)))
            .collect();
        if due.is_empty() {
            return Ok(Change::default());
        }
        let budget = self.timeout;
        let reads = due.into_iter().map(|(url, agent)| async move {
            let info = match tokio::time::timeout(budget, agent.info()).await {
                Ok(r) => r,
                Err(_) => Err(NetdataError::Timeout(budget)),
            };
            (url, info)
        });
        let results = futures_util::future::join_all(reads).await;
        let mut state = self.lock()?;
        let read_at = Instant::now();
        for (url, info) in results {
            // The configuration may have changed meanwhile: a parent gone is ignored.
            if let Some(p) = state.parents.iter_mut().find(|p| p.config.url == url) {
                p.next_read = read_at + p.config.refresh;
                p.take(info, read_at);
            }
        }
        self.apply(&mut state)
    }

    /// Hands the node set to the collector: the held-down children first, so that a node added
    /// while not streaming is never polled.
    fn apply(&self, state: &mut State) -> Result<Change, CollectorError> {
        let mut names = state.names.clone();
        let (nodes, held, _) = assemble(state, &mut names);
        let previous = self.collector.registry().current();
        let old_held: HashMap<String, NetdataError> = previous
            .names()
            .filter_map(|n| {
                self.collector
                    .registry()
                    .held_down(n)
                    .map(|e| (n.to_string(), e))
            })
            .collect();
        self.collector.registry().hold_down(held);
        match self.collector.replace_nodes(&nodes) {
            Ok(change) => {
                state.names = names;
                Ok(change)
            }
            Err(e) => {
                self.collector.registry().hold_down(old_held);
                Err(e)
            }
        }
    }
}

impl Parent {
    /// Applies one read of the parent's `/api/v1/info`.
    fn take(&mut self, info: Result<AgentInfo, NetdataError>, now: Instant) {
        match info {
            Ok(info) => {
                let mut listed = HashSet::new();
                for h in info.children() {
                    let guid = h.guid.trim().to_string();
                    listed.insert(guid.clone());
                    match self.children.get_mut(&guid) {
                        Some(c) => {
                            if c.reachable != h.reachable {
                                tracing::info!(parent = %self.label, child = %h.hostname, guid = %guid, reachable = h.reachable, "child streaming state changed");
                            }
                            c.hostname = h.hostname.clone();
                            c.reachable = h.reachable;
                            c.listed = true;
                            c.last_listed = now;
                        }
                        None => {
                            tracing::info!(parent = %self.label, child = %h.hostname, guid = %guid, reachable = h.reachable, "child discovered");
                            self.children.insert(
                                guid,
                                Child {
                                    hostname: h.hostname.clone(),
                                    reachable: h.reachable,
                                    listed: true,
                                    last_listed: now,
                                },
                            );
                        }
                    }
                }
                let retire_after = self.config.retire_after;
                let label = &self.label;
                self.children.retain(|guid, c| {
                    if listed.contains(guid) {
                        return true;
                    }
                    if c.listed {
                        tracing::info!(parent = %label, child = %c.hostname, guid = %guid, "child no longer listed by its parent");
                        c.listed = false;
                    }
                    let keep = now.saturating_duration_since(c.last_listed) < retire_after;
                    if !keep {
                        tracing::info!(parent = %label, child = %c.hostname, guid = %guid, "child retired: missing from its parent for retire_after");
                    }
                    keep
                });
                self.last_read = Some(Ok(listed.len()));
            }
            Err(e) => {
                if !matches!(&self.last_read, Some(Err(_))) {
                    tracing::warn!(parent = %self.label, error = %e, "parent did not answer: its children keep their last known set");
                }
                self.last_read = Some(Err(e));
            }
        }
    }
}

/// The node set: static nodes, then each parent's children (guid order); the held-down ones;
/// and what each parent yields. New guids get a name in `names`; names of guids no longer
/// known are dropped from it.
fn assemble(
    state: &State,
    names: &mut HashMap<String, String>,
) -> (
    Vec<NodeConfig>,
    HashMap<String, NetdataError>,
    Vec<ParentReport>,
) {
    let mut nodes = state.static_nodes.clone();
    let static_names: HashSet<&str> = state.static_nodes.iter().map(|n| n.name.as_str()).collect();
    let mut used: HashSet<String> = static_names.iter().map(|n| n.to_string()).collect();
    let mut held = HashMap::new();
    let mut reports = Vec::with_capacity(state.parents.len());
    let mut taken_by: HashMap<&str, &str> = HashMap::new();
    let known: HashSet<&str> = state
        .parents
        .iter()
        .flat_map(|p| p.children.keys().map(String::as_str))
        .collect();
    names.retain(|guid, _| known.contains(guid.as_str()));
    // Names already given keep their owner, whatever the order of the parents now.
    let given: HashMap<String, String> =
        names.iter().map(|(g, n)| (n.clone(), g.clone())).collect();
    for p in &state.parents {
        let mut children = Vec::with_capacity(p.children.len());
        for (guid, c) in &p.children {
            let report = |node| ChildReport {
                guid: guid.clone(),
                hostname: c.hostname.clone(),
                reachable: c.reachable && c.listed,
                node,
            };
            if !p.config.filter.wants(&c.hostname) {
                children.push(report(Err(Skipped::Filtered)));
                continue;
            }
            if let Some(other) = taken_by.get(guid.as_str()) {
                children.push(report(Err(Skipped::OtherParent(other.to_string()))));
                continue;
            }
            let url = match p.config.url.join(&format!("host/{guid}/")) {
                Ok(u) => u,
                Err(e) => {
                    tracing::warn!(parent = %p.label, guid = %guid, error = %e, "child skipped: its guid makes no URL");
                    continue;
                }
            };
            let base = node_name(&c.hostname, guid);
            if let Some(s) = state
                .static_nodes
                .iter()
                .find(|n| n.name == base || n.url == url)
            {
                children.push(report(Err(Skipped::Static(s.name.clone()))));
                continue;
            }
            let name = match names.get(guid) {
                Some(n) if !used.contains(n) => n.clone(),
                _ => {
                    let mut name = base.clone();
                    let owned_by_other = |n: &str| given.get(n).is_some_and(|g| g != guid);
                    if used.contains(&name) || owned_by_other(&name) {
                        name = format!("{base} ({})", guid.chars().take(8).collect::<String>());
                        if used.contains(&name) || owned_by_other(&name) {
                            name = format!("{base} ({guid})");
                        }
                        if !names.contains_key(guid) {
                            tracing::warn!(parent = %p.label, hostname = %c.hostname, guid = %guid, node = %name, "two children share a hostname: this one is named with its guid");
                        }
                    }
                    names.insert(guid.clone(), name.clone());
                    name
                }
            };
            used.insert(name.clone());
            taken_by.insert(guid, &p.label);
            if !(c.reachable && c.listed) {
                held.insert(
                    name.clone(),
                    NetdataError::NotStreaming {
                        parent: p.label.clone(),
                    },
                );
            }
            nodes.push(NodeConfig {
                name: name.clone(),
                url,
                disk: p.config.disk.clone(),
                interface: p.config.interface.clone(),
                ca_file: p.config.ca_file.clone(),
                tags: p.config.tags.clone(),
            });
            children.push(report(Ok(name)));
        }
        reports.push(ParentReport {
            url: p.label.clone(),
            read: p.last_read.clone(),
            children,
        });
    }
    (nodes, held, reports)
}

/// A node name from a hostname (outside input): no commas or control characters, not empty, not
/// too long.
fn node_name(hostname: &str, guid: &str) -> String {
    let clean: String = hostname
        .trim()
        .chars()
        .map(|c| if c.is_control() || c == ',' { '_' } else { c })
        .take(MAX_NAME)
        .collect();
    if clean.is_empty() {
        guid.chars().take(MAX_NAME).collect()
    } else {
        clean
    }
}

/// The URL as people write it: without the trailing slash the parser adds.
fn label(url: &url::Url) -> String {
    url.as_str().trim_end_matches('/').to_string()
}

fn parent_agent(pool: &mut ClientPool, cfg: &ParentConfig) -> Result<Agent, NetdataError> {
    pool.agent(&NodeConfig {
        name: label(&cfg.url),
        url: cfg.url.clone(),
        disk: cfg.disk.clone(),
        interface: cfg.interface.clone(),
        ca_file: cfg.ca_file.clone(),
        tags: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsmon_netdata::MirroredHost;

    fn config(text: &str) -> dsmon_config::Config {
        dsmon_config::parse(text, std::path::Path::new("/tmp/p.toml")).expect("config")
    }

    fn info(children: &[(&str, &str, bool)]) -> AgentInfo {
        let mut hosts = vec![MirroredHost {
            guid: "p".into(),
            hostname: "parent".into(),
            reachable: true,
            hops: 0,
        }];
        hosts.extend(children.iter().map(|(g, h, r)| MirroredHost {
            guid: g.to_string(),
            hostname: h.to_string(),
            reachable: *r,
            hops: 1,
        }));
        AgentInfo {
            version: "v1.37.1".into(),
            mirrored_hosts: Vec::new(),
            mirrored_hosts_status: hosts,
        }
    }

    fn discovery(text: &str) -> Discovery {
        let cfg = config(text);
        let collector = Arc::new(Collector::new(&cfg).expect("collector"));
        Discovery::new(collector, &cfg.nodes, &cfg.parents).expect("discovery")
    }

    /// Feeds parent `i` an answer at `now`, as a read would, and applies it.
    fn feed(
        d: &Discovery,
        i: usize,
        answer: Result<AgentInfo, NetdataError>,
        now: Instant,
    ) -> Change {
        let mut state = d.lock().expect("lock");
        state.parents[i].take(answer, now);
        d.apply(&mut state).expect("apply")
    }

    fn names(d: &Discovery) -> Vec<String> {
        d.collector.node_names()
    }

    const PARENT: &str = "[[parents]]\nurl = \"http://127.0.0.1:1\"\nretire_after = \"1h\"\n";

    #[tokio::test(start_paused = true)]
    async fn children_become_nodes_and_leave_after_retire_after() {
        let d = discovery(&format!(
            "[[nodes]]\nname = \"static\"\nurl = \"http://127.0.0.1:2\"\n{PARENT}"
        ));
        assert_eq!(names(&d), ["static"]);
        let t0 = Instant::now();
        let c = feed(
            &d,
            0,
            Ok(info(&[("g2", "web-2", true), ("g1", "web-1", true)])),
            t0,
        );
        assert_eq!(c.added, ["web-1", "web-2"], "guid order");
        assert_eq!(names(&d), ["static", "web-1", "web-2"]);
        let set = d.collector.registry().current();
        assert_eq!(
            set.get("web-1").map(|n| n.config.url.as_str()),
            Some("http://127.0.0.1:1/host/g1/")
        );
        assert!(d.collector.registry().held_down("web-1").is_none());

        // Stops streaming: held down with the reason, still a node.
        feed(
            &d,
            0,
            Ok(info(&[("g2", "web-2", true), ("g1", "web-1", false)])),
            t0,
        );
        let e = d.collector.registry().held_down("web-1").expect("held");
        assert_eq!(e.to_string(), "not streaming to http://127.0.0.1:1");

        // Gone from the list: still held down until retire_after, then removed.
        let c = feed(
            &d,
            0,
            Ok(info(&[("g2", "web-2", true)])),
            t0 + Duration::from_secs(60),
        );
        assert!(c.is_empty());
        assert!(d.collector.registry().held_down("web-1").is_some());
        // The parent not answering changes nothing.
        let c = feed(
            &d,
            0,
            Err(NetdataError::Timeout(Duration::from_secs(3))),
            t0 + Duration::from_secs(7200),
        );
        assert!(c.is_empty());
        let c = feed(
            &d,
            0,
            Ok(info(&[("g2", "web-2", true)])),
            t0 + Duration::from_secs(3601),
        );
        assert_eq!(c.removed, ["web-1"]);
        // Back again: polled again, same name.
        let c = feed(
            &d,
            0,
            Ok(info(&[("g2", "web-2", true), ("g1", "web-1", true)])),
            t0 + Duration::from_secs(3700),
        );
        assert_eq!(c.added, ["web-1"]);
        assert!(d.collector.registry().held_down("web-1").is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn children_get_their_parents_tags_and_the_live_view_shows_them() {
        let d = discovery(&format!(
            "[[nodes]]\nname = \"s\"\nurl = \"http://127.0.0.1:2\"\ntags = [\"static\"]\n{PARENT}tags = [\"web\", \"eu\"]\n"
        ));
        feed(&d, 0, Ok(info(&[("g1", "web-1", true)])), Instant::now());
        let live = d.collector.nodes_live();
        let tags: Vec<(&str, &[String])> = live
            .iter()
            .map(|n| (n.name.as_str(), n.tags.as_slice()))
            .collect();
        assert_eq!(
            tags,
            [
                ("s", &["static".to_string()][..]),
                ("web-1", &["eu".to_string(), "web".to_string()][..])
            ]
        );
        // A new tag on the parent (SIGHUP) reaches its children at once.
        let cfg = config(&format!("{PARENT}tags = [\"db\"]\n"));
        let c = d
            .reconfigure(&cfg.nodes, &cfg.parents)
            .expect("reconfigure");
        assert_eq!(
            (c.removed, c.changed),
            (vec!["s".to_string()], vec!["web-1".to_string()])
        );
        assert_eq!(d.collector.nodes_live()[0].tags, ["db"]);
    }

    #[tokio::test(start_paused = true)]
    async fn shared_hostnames_renames_and_static_duplicates() {
        let d = discovery(&format!(
            "[[nodes]]\nname = \"db\"\nurl = \"http://10.0.0.9:19999\"\n{PARENT}include = [\"web*\", \"db\"]\n"
        ));
        let t = Instant::now();
        feed(
            &d,
            0,
            Ok(info(&[
                ("bbbbbbbbbb", "web", true),
                ("aaaaaaaaaa", "web", true),
                ("c", "db", true),
                ("d", "lab", true),
            ])),
            t,
        );
        assert_eq!(names(&d), ["db", "web", "web (bbbbbbbb)"]);
        let r = d.report();
        let by_host = |h: &str| {
            r[0].children
                .iter()
                .filter(|c| c.hostname == h)
                .map(|c| c.node.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(by_host("db"), [Err(Skipped::Static("db".into()))]);
        assert_eq!(by_host("lab"), [Err(Skipped::Filtered)]);
        // A renamed child keeps its name (and so its history); the names stay with their guids.
        feed(
            &d,
            0,
            Ok(info(&[
                ("bbbbbbbbbb", "web", true),
                ("aaaaaaaaaa", "web-renamed", true),
            ])),
            t,
        );
        assert_eq!(names(&d), ["db", "web", "web (bbbbbbbb)"]);
        // Hostile hostnames make valid node names.
        assert_eq!(node_name("a,b\n", "g"), "a_b");
        assert_eq!(node_name("  ", "guid-1"), "guid-1");
        assert_eq!(node_name(&"x".repeat(500), "g").len(), MAX_NAME);
    }

    #[tokio::test(start_paused = true)]
    async fn two_parents_listing_one_child_poll_it_once_and_reconfigure_keeps_children() {
        let two = format!("{PARENT}[[parents]]\nurl = \"http://127.0.0.1:3\"\n");
        let d = discovery(&two);
        let t = Instant::now();
        feed(&d, 0, Ok(info(&[("g1", "web-1", true)])), t);
        feed(
            &d,
            1,
            Ok(info(&[("g1", "web-1", true), ("g9", "web-9", true)])),
            t,
        );
        assert_eq!(names(&d), ["web-1", "web-9"]);
        let r = d.report();
        assert_eq!(
            r[1].children[0].node,
            Err(Skipped::OtherParent("http://127.0.0.1:1".into()))
        );

        // SIGHUP: an exclude on the first parent, a static node added; children known stay known.
        let cfg = config(&format!(
            "[[nodes]]\nname = \"s\"\nurl = \"http://127.0.0.1:4\"\n{PARENT}exclude = [\"web-1\"]\n[[parents]]\nurl = \"http://127.0.0.1:3\"\n"
        ));
        let c = d
            .reconfigure(&cfg.nodes, &cfg.parents)
            .expect("reconfigure");
        assert_eq!(c.added, ["s"]);
        assert_eq!(
            names(&d),
            ["s", "web-1", "web-9"],
            "now through the second parent"
        );
        assert_eq!(
            d.collector
                .registry()
                .current()
                .get("web-1")
                .map(|n| n.config.url.as_str()),
            Some("http://127.0.0.1:3/host/g1/")
        );
        // Parents removed: their children leave.
        let only_static = config("[[nodes]]\nname = \"s\"\nurl = \"http://127.0.0.1:4\"\n");
        let c = d
            .reconfigure(&only_static.nodes, &only_static.parents)
            .expect("reconfigure");
        assert_eq!(c.removed, ["web-1", "web-9"]);
    }
}
