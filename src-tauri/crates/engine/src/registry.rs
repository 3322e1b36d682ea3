//! The set of nodes being monitored. It can change while dsmon runs (a reloaded configuration
//! today, nodes discovered through a Netdata parent later): the live poller and the logger read the
//! current set each time, and the live poller follows changes ([`NodeRegistry::subscribe`]).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;

use dsmon_config::NodeConfig;
use dsmon_netdata::{Agent, ClientPool, NetdataError};

/// One version of the node set, in configuration order.
#[derive(Debug, Default)]
pub struct NodeSet {
    /// Increases by one per change.
    pub version: u64,
    pub nodes: Vec<Node>,
}

/// A monitored node: its configuration and its agent client.
#[derive(Debug, Clone)]
pub struct Node {
    pub config: NodeConfig,
    pub agent: Arc<Agent>,
}

impl NodeSet {
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.nodes.iter().map(|n| n.config.name.as_str())
    }

    pub fn get(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.config.name == name)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

/// What a replacement changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Change {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Still monitored, with a new configuration (address, disk, interface, CA, tags).
    pub changed: Vec<String>,
}

impl Change {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// The current node set, and a channel that announces each new one.
pub struct NodeRegistry {
    connect_timeout: Duration,
    tx: watch::Sender<Arc<NodeSet>>,
    /// Nodes known to be unreachable without asking them (a child its parent lists as not
    /// streaming): each poll of one of them fails at once with this error.
    held_down: RwLock<HashMap<String, NetdataError>>,
}

impl NodeRegistry {
    /// Builds every agent client (a bad CA file is an error here, before anything runs).
    pub fn new(nodes: &[NodeConfig], connect_timeout: Duration) -> Result<Self, NetdataError> {
        let set = NodeSet {
            version: 0,
            nodes: build(nodes, connect_timeout, &HashMap::new())?,
        };
        let (tx, _) = watch::channel(Arc::new(set));
        Ok(Self {
            connect_timeout,
            tx,
            held_down: RwLock::new(HashMap::new()),
        })
    }

    /// From now on, polls of these nodes fail at once with their error instead of asking the
    /// agent (replaces the previous map).
    pub fn hold_down(&self, nodes: HashMap<String, NetdataError>) {
        if let Ok(mut held) = self.held_down.write() {
            *held = nodes;
        }
    }

    /// Why a poll of `name` would fail without asking its agent, if it is held down.
    pub fn held_down(&self, name: &str) -> Option<NetdataError> {
        self.held_down.read().ok()?.get(name).cloned()
    }

    /// The node set now.
    pub fn current(&self) -> Arc<NodeSet> {
        self.tx.borrow().clone()
    }

    /// Announces every new node set.
    pub fn subscribe(&self) -> watch::Receiver<Arc<NodeSet>> {
        self.tx.subscribe()
    }

    /// Replaces the node set. Nodes whose configuration did not change keep their client (and its
    /// open connections); on an error nothing changes.
    pub fn replace(&self, nodes: &[NodeConfig]) -> Result<Change, NetdataError> {
        let old = self.current();
        let keep: HashMap<&str, &Node> = old
            .nodes
            .iter()
            .map(|n| (n.config.name.as_str(), n))
            .collect();
        let new = build(nodes, self.connect_timeout, &keep)?;
        let change = Change {
            added: new
                .iter()
                .filter(|n| old.get(&n.config.name).is_none())
                .map(|n| n.config.name.clone())
                .collect(),
            removed: old
                .nodes
                .iter()
                .filter(|o| !new.iter().any(|n| n.config.name == o.config.name))
                .map(|o| o.config.name.clone())
                .collect(),
            changed: new
                .iter()
                .filter(|n| {
                    old.get(&n.config.name)
                        .is_some_and(|o| o.config != n.config)
                })
                .map(|n| n.config.name.clone())
                .collect(),
        };
        let order_same = old.names().eq(new.iter().map(|n| n.config.name.as_str()));
        if !change.is_empty() || !order_same {
            self.tx.send_replace(Arc::new(NodeSet {
                version: old.version + 1,
                nodes: new,
            }));
        }
        Ok(change)
    }
}

/// Agents for `nodes`, reusing those in `keep` whose configuration is unchanged.
fn build(
    nodes: &[NodeConfig],
    connect_timeout: Duration,
    keep: &HashMap<&str, &Node>,
) -> Result<Vec<Node>, NetdataError> {
    let mut pool = ClientPool::new(connect_timeout)?;
    nodes
        .iter()
        .map(|cfg| match keep.get(cfg.name.as_str()) {
            Some(n) if n.config == *cfg => Ok((*n).clone()),
            _ => Ok(Node {
                config: cfg.clone(),
                agent: Arc::new(pool.agent(cfg)?),
            }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, port: u16) -> NodeConfig {
        let text = format!("[[nodes]]\nname = \"{name}\"\nurl = \"http://127.0.0.1:{port}\"\n");
        dsmon_config::parse(&text, std::path::Path::new("/tmp/r.toml"))
            .expect("config")
            .nodes
            .remove(0)
    }

    #[test]
    fn replacing_reports_changes_and_keeps_unchanged_clients() {
        let r = NodeRegistry::new(&[node("a", 1), node("b", 2)], Duration::from_secs(1))
            .expect("registry");
        let rx = r.subscribe();
        let a_before = Arc::clone(&r.current().nodes[0].agent);
        let change = r
            .replace(&[node("a", 1), node("b", 3), node("c", 4)])
            .expect("replace");
        assert_eq!(change.added, vec!["c"]);
        assert_eq!(change.changed, vec!["b"]);
        assert!(change.removed.is_empty());
        assert!(rx.has_changed().unwrap_or(false), "announced");
        let now = r.current();
        assert_eq!(now.version, 1);
        assert!(
            Arc::ptr_eq(&a_before, &now.nodes[0].agent),
            "a keeps its client"
        );
        let change = r.replace(&[node("c", 4)]).expect("replace");
        assert_eq!(change.removed, vec!["a", "b"]);
        assert_eq!(r.current().names().collect::<Vec<_>>(), vec!["c"]);
        let same = r.replace(&[node("c", 4)]).expect("same");
        assert!(same.is_empty());
        assert_eq!(r.current().version, 2, "no change, no new version");
    }
}
