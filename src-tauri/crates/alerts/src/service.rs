//! The alerts at run time: follows the engine's node events, evaluates each poll, persists what
//! changed, mutes what is silenced, groups storms and hands notifications to the notifiers; and
//! answers the application layer's questions (current alerts, history, silences, ...).

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};

use dsmon_config::alerts::{AlertsConfig, RuleConfig, Schedule, Severity};
use dsmon_core::{format_ts, unix_now};
use dsmon_engine::NodeEvent;
use dsmon_netdata::NetdataError;
use dsmon_store::alert_db::{AlertEventRecord, AlertStateRecord, DeliveryRecord, SilenceRecord};
use dsmon_store::{AlertStore, SharedSamples, StoreError};

use crate::eval::{Changes, CurrentAlert, Evaluator, Input, Rule};
use crate::events::{self, AlertEvent};
use crate::model::{NoticeItem, NoticeKind, Notification};
use crate::notify::Notifiers;
use crate::predict;
use crate::silence::{Silence, Window};
use crate::storm::Storm;

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("alert rules: {0}")]
    Setup(String),
    #[error("alerts: a background task failed: {0}")]
    Task(String),
}

/// How long expired silences stay listed.
const EXPIRED_LISTED: i64 = 7 * 86_400;
/// History and deliveries are kept this long.
const RETENTION: i64 = 400 * 86_400;

/// A silence as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct SilenceView {
    pub id: i64,
    pub created: String,
    pub created_by: String,
    pub expires: String,
    pub nodes: Option<String>,
    pub rule: Option<String>,
    pub severity: Option<String>,
    pub comment: String,
    pub active: bool,
}

/// What an Admin sends to create a silence.
#[derive(Debug, Clone, Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSilence {
    pub nodes: Option<String>,
    pub rule: Option<String>,
    pub severity: Option<String>,
    /// A duration from now (`2h`) or an RFC 3339 time.
    pub expires: String,
    pub comment: String,
}

/// A history event as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct EventView {
    pub id: i64,
    pub at: String,
    pub rule: String,
    pub node: String,
    pub severity: String,
    pub state: String,
    pub value: Option<f64>,
    pub threshold: f64,
    pub silenced: bool,
}

/// A delivery as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct DeliveryView {
    pub id: i64,
    pub at: String,
    pub notifier: String,
    #[serde(rename = "type")]
    pub kind_of_notifier: String,
    pub kind: String,
    pub rule: String,
    pub nodes: Vec<String>,
    pub ok: bool,
    pub attempts: u32,
    pub answer: String,
}

/// The configuration as the Alerts page shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConfigView {
    pub rules: Vec<RuleConfig>,
    pub notifiers: Vec<NotifierView>,
    pub maintenance: Vec<MaintenanceView>,
    pub storm_threshold: usize,
    pub storm_window_secs: u64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NotifierView {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub target: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MaintenanceView {
    pub name: String,
    pub schedule: String,
    pub timezone: String,
    pub nodes: Vec<String>,
    pub rules: Vec<String>,
    pub open_now: bool,
}

/// What the configuration sets up (replaced whole by [`Alerts::reload`]).
struct Setup {
    cfg: AlertsConfig,
    windows: Vec<Window>,
    notifiers: Arc<Notifiers>,
}

/// The evaluator, storm control and the setup their rule indices refer to, behind one lock so
/// that a reload swaps them together.
struct Core {
    eval: Evaluator,
    storm: Storm,
    setup: Arc<Setup>,
}

/// The alerts part of a running dsmon.
pub struct Alerts {
    core: Mutex<Core>,
    silences: RwLock<Vec<Silence>>,
    store: Arc<dyn AlertStore>,
    /// The history, for the disk-full fit.
    samples: Option<SharedSamples>,
    /// Whether this instance records and sends (false: it follows a leader, see
    /// [`Alerts::follow`]).
    delivering: std::sync::atomic::AtomicBool,
}

/// A fresh evaluator for the rules of `cfg` (no state yet).
fn evaluator(cfg: &AlertsConfig) -> Result<Evaluator, AlertError> {
    let rules = cfg
        .rules
        .iter()
        .cloned()
        .map(Rule::new)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| AlertError::Setup(e.to_string()))?;
    Ok(Evaluator::new(
        rules,
        cfg.public_url.as_ref().map(|u| u.to_string()),
    ))
}

/// Runs a store call on the blocking pool; a failure of the call or of its task is an error text.
async fn off_runtime<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

impl Setup {
    fn new(cfg: AlertsConfig, notifiers: Notifiers) -> Result<(Self, Evaluator), AlertError> {
        let eval = evaluator(&cfg)?;
        let windows = cfg
            .maintenance
            .iter()
            .cloned()
            .map(Window::new)
            .collect::<Result<Vec<_>, _>>()
            .map_err(AlertError::Setup)?;
        Ok((
            Self {
                cfg,
                windows,
                notifiers: Arc::new(notifiers),
            },
            eval,
        ))
    }
}

/// What an instance does with the changes its evaluator finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Duty {
    /// Records them and sends the notifications (the only instance, or the leader).
    Deliver,
    /// Keeps them in memory only (an instance that does not lead).
    Shadow,
}

impl Alerts {
    /// Sets up the rules and restores the state kept in `store` (blocking: call it before the
    /// runtime's work starts, or on the blocking pool).
    pub fn new(
        cfg: AlertsConfig,
        store: Arc<dyn AlertStore>,
        samples: Option<SharedSamples>,
        notifiers: Notifiers,
    ) -> Result<Arc<Self>, AlertError> {
        let (setup, mut eval) = Setup::new(cfg, notifiers)?;
        let gone = eval.restore(&store.alert_states()?);
        if !gone.is_empty() {
            store.save_alerts(&[], &gone, &[])?;
        }
        let now = unix_now();
        store.prune_alerts(now - RETENTION)?;
        let silences = load_silences(&*store, now)?;
        Ok(Arc::new(Self {
            core: Mutex::new(Core {
                eval,
                storm: Storm::new(setup.cfg.storm),
                setup: Arc::new(setup),
            }),
            silences: RwLock::new(silences),
            store,
            samples,
            delivering: std::sync::atomic::AtomicBool::new(true),
        }))
    }

    /// Applies a new `[alerts]` (SIGHUP) without a restart: alerts of rules that keep their name
    /// keep their state (it is in the store); those of rules gone are forgotten; notifications
    /// held by storm control go out first (blocking: call it on the blocking pool).
    pub fn reload(
        self: &Arc<Self>,
        cfg: AlertsConfig,
        notifiers: Notifiers,
    ) -> Result<(), AlertError> {
        let (setup, mut eval) = Setup::new(cfg, notifiers)?;
        let mut core = self
            .core
            .lock()
            .map_err(|_| AlertError::Task("alerts lock poisoned".into()))?;
        let now = unix_now();
        let held = core.storm.due(i64::MAX);
        for (rule, kind, items) in held {
            self.dispatch(&core.setup, rule, kind, items, now);
        }
        let gone = eval.restore(&self.store.alert_states()?);
        if !gone.is_empty() {
            self.store.save_alerts(&[], &gone, &[])?;
        }
        core.storm = Storm::new(setup.cfg.storm);
        core.eval = eval;
        core.setup = Arc::new(setup);
        tracing::info!(
            rules = core.setup.cfg.rules.len(),
            notifiers = core.setup.cfg.notifiers.len(),
            "alert rules reloaded"
        );
        Ok(())
    }

    /// Takes the alerts' state again from the store (blocking): an instance that becomes the
    /// leader of several on one database continues from what the previous leader recorded, so an
    /// alert it already notified is not notified again.
    pub fn resume(&self) -> Result<(), AlertError> {
        let mut core = self
            .core
            .lock()
            .map_err(|_| AlertError::Task("alerts lock poisoned".into()))?;
        let mut eval = evaluator(&core.setup.cfg)?;
        eval.restore(&self.store.alert_states()?);
        core.eval = eval;
        core.storm = Storm::new(core.setup.cfg.storm);
        Ok(())
    }

    fn setup(&self) -> Option<Arc<Setup>> {
        self.core.lock().ok().map(|c| Arc::clone(&c.setup))
    }

    /// The rules in force.
    pub fn rules(&self) -> Vec<RuleConfig> {
        self.setup()
            .map(|s| s.cfg.rules.clone())
            .unwrap_or_default()
    }

    /// Follows the node events until `stop` turns true: evaluates, records and notifies.
    pub async fn run(
        self: Arc<Self>,
        events: broadcast::Receiver<NodeEvent>,
        stop: watch::Receiver<bool>,
    ) {
        self.run_as(events, stop, Duty::Deliver).await
    }

    /// The same on an instance that does not lead (several `dsmon serve` on one PostgreSQL):
    /// evaluates the same polls so that its `/api/alerts` is current, but records and sends
    /// nothing — the leader does. Call [`Alerts::resume`] when it becomes the leader.
    pub async fn follow(
        self: Arc<Self>,
        events: broadcast::Receiver<NodeEvent>,
        stop: watch::Receiver<bool>,
    ) {
        self.run_as(events, stop, Duty::Shadow).await
    }

    /// What another instance on the same database recorded (blocking): silences made or expired
    /// there, and acknowledgements of alerts firing here too. The leader calls it so that an
    /// acknowledgement made through a follower stops its repeats; followers so that their pages
    /// show it.
    pub fn sync_shared(&self) -> Result<(), AlertError> {
        let now = unix_now();
        self.reload_silences(now)?;
        let acked: Vec<AlertStateRecord> = self
            .store
            .alert_states()?
            .into_iter()
            .filter(|r| r.acked_by.is_some())
            .collect();
        if acked.is_empty() {
            return Ok(());
        }
        let mut core = self
            .core
            .lock()
            .map_err(|_| AlertError::Task("alerts lock poisoned".into()))?;
        for r in acked {
            if let (Some(by), Some(at)) = (r.acked_by.as_deref(), r.acked_at) {
                if core.eval.adopt_ack(&r.rule, &r.node, by, at) {
                    tracing::info!(rule = %r.rule, node = %r.node, by, "acknowledged on another instance");
                }
            }
        }
        Ok(())
    }

    async fn run_as(
        self: Arc<Self>,
        mut events: broadcast::Receiver<NodeEvent>,
        mut stop: watch::Receiver<bool>,
        duty: Duty,
    ) {
        self.delivering
            .store(duty == Duty::Deliver, std::sync::atomic::Ordering::Relaxed);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut next_fit = 0i64;
        loop {
            tokio::select! {
                ev = events.recv() => match ev {
                    Ok(NodeEvent::Polled { node, tags, at, result }) => self.on_poll(&node, &tags, at, &result, duty).await,
                    Ok(NodeEvent::Removed { nodes }) => self.on_removed(&nodes, duty).await,
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(n)) => AlertEvent::Lagged { skipped: n }.emit(),
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                _ = tick.tick() => {
                    let now = unix_now();
                    if duty == Duty::Deliver {
                        self.flush_storm(now);
                    }
                    if now >= next_fit {
                        next_fit = now + 60;
                        self.fit(now).await;
                        if duty == Duty::Deliver {
                            self.refresh_alertmanager(now);
                        }
                    }
                }
                _ = stop.changed() => if *stop.borrow() { break },
            }
        }
    }

    /// Whether alerts of `rule` on `node` are muted at `now`.
    fn muted(&self, setup: &Setup, rule: &RuleConfig, node: &str, now: i64) -> bool {
        let silenced = self
            .silences
            .read()
            .map(|s| s.iter().any(|s| s.active(now) && s.matches(rule, node)))
            .unwrap_or(false);
        silenced
            || setup
                .windows
                .iter()
                .any(|w| w.matches(rule, node) && w.open(now))
    }

    async fn on_poll(
        self: &Arc<Self>,
        node: &str,
        tags: &[String],
        at: i64,
        result: &Result<dsmon_core::Metrics, NetdataError>,
        duty: Duty,
    ) {
        let input = match result {
            Ok(m) => Input::Metrics(m),
            Err(e) => Input::Failed {
                stale: matches!(e, NetdataError::Stale { .. } | NetdataError::NoData { .. }),
            },
        };
        let mut changes = Changes::default();
        let setup = {
            let Ok(mut core) = self.core.lock() else {
                return;
            };
            let setup = Arc::clone(&core.setup);
            core.eval.observe(
                node,
                tags,
                at,
                input,
                &|r, n| self.muted(&setup, r, n, at),
                &mut changes,
            );
            setup
        };
        events::counters()
            .evaluations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if !changes.is_empty() && duty == Duty::Deliver {
            self.commit(&setup, changes, at).await;
        }
    }

    async fn on_removed(self: &Arc<Self>, nodes: &[String], duty: Duty) {
        let mut changes = Changes::default();
        let setup = match self.core.lock() {
            Ok(mut core) => {
                for n in nodes {
                    core.eval.remove_node(n, &mut changes);
                }
                Arc::clone(&core.setup)
            }
            Err(_) => return,
        };
        if !changes.is_empty() && duty == Duty::Deliver {
            self.commit(&setup, changes, unix_now()).await;
        }
    }

    /// Persists the changes (before anything is sent: a restart never notifies twice), then sends
    /// what is not muted.
    async fn commit(self: &Arc<Self>, setup: &Arc<Setup>, changes: Changes, now: i64) {
        let store = Arc::clone(&self.store);
        let Changes {
            states,
            removed,
            events: history,
            notices,
        } = changes;
        if let Err(error) =
            off_runtime(move || store.save_alerts(&states, &removed, &history)).await
        {
            AlertEvent::StoreFailed { error }.emit();
        }
        for notice in notices {
            let rule = &setup.cfg.rules[notice.rule];
            AlertEvent::Notice {
                rule: &rule.name,
                node: &notice.item.node,
                kind: notice.kind,
                muted: notice.muted,
            }
            .emit();
            if notice.muted || rule.notify.is_empty() {
                continue;
            }
            // Storm control counts per rule of the setup in force; a notice made just before a
            // reload goes out as it is.
            let admitted = match self.core.lock() {
                Ok(mut core) if Arc::ptr_eq(&core.setup, setup) => {
                    core.storm.admit(notice.rule, notice.kind, notice.item, now)
                }
                _ => Some(notice.item),
            };
            if let Some(item) = admitted {
                self.dispatch(setup, notice.rule, notice.kind, vec![item], now);
            }
        }
    }

    /// Alertmanager forgets an alert it is not told about again within its `resolve_timeout`
    /// (5 m by default) and would call it resolved: every minute the alerts firing now (not muted)
    /// are posted again to the rules' Alertmanager notifiers. These refreshes are counted, not
    /// written to the delivery log.
    fn refresh_alertmanager(self: &Arc<Self>, now: i64) {
        use dsmon_config::alerts::NotifierKind;
        let Some(setup) = self.setup() else { return };
        for (r, rule) in setup.cfg.rules.iter().enumerate() {
            let targets: Vec<String> = rule
                .notify
                .iter()
                .filter(|n| {
                    setup
                        .notifiers
                        .config(n)
                        .is_some_and(|c| matches!(c.kind, NotifierKind::Alertmanager { .. }))
                })
                .cloned()
                .collect();
            if targets.is_empty() {
                continue;
            }
            let items: Vec<NoticeItem> = match self.core.lock() {
                Ok(c) if Arc::ptr_eq(&c.setup, &setup) => c.eval.firing_items(r),
                _ => return,
            };
            let items: Vec<NoticeItem> = items
                .into_iter()
                .filter(|i| i.since < now - 30 && !self.muted(&setup, rule, &i.node, now))
                .collect();
            if items.is_empty() {
                continue;
            }
            let n = Arc::new(notification(&setup, rule, NoticeKind::Firing, items, now));
            for name in targets {
                let (notifiers, n) = (Arc::clone(&setup.notifiers), Arc::clone(&n));
                tokio::spawn(async move {
                    let outcome = notifiers.deliver(&name, &n).await;
                    if !outcome.ok {
                        tracing::warn!(notifier = %name, answer = %outcome.answer, "Alertmanager refresh failed");
                    }
                });
            }
        }
    }

    fn flush_storm(self: &Arc<Self>, now: i64) {
        let (due, setup) = match self.core.lock() {
            Ok(mut c) => (c.storm.due(now), Arc::clone(&c.setup)),
            Err(_) => return,
        };
        for (rule, kind, items) in due {
            AlertEvent::Grouped {
                rule: &setup.cfg.rules[rule].name,
                nodes: items.len(),
            }
            .emit();
            self.dispatch(&setup, rule, kind, items, now);
        }
    }

    /// Sends to each notifier of the rule on a task of its own: a slow or failing notifier holds
    /// up no other.
    fn dispatch(
        self: &Arc<Self>,
        setup: &Arc<Setup>,
        rule: usize,
        kind: NoticeKind,
        items: Vec<NoticeItem>,
        now: i64,
    ) {
        let cfg = &setup.cfg.rules[rule];
        let n = Arc::new(notification(setup, cfg, kind, items, now));
        for name in &cfg.notify {
            let (me, n, name) = (Arc::clone(self), Arc::clone(&n), name.clone());
            let notifiers = Arc::clone(&setup.notifiers);
            tokio::spawn(async move {
                me.deliver_and_log(&notifiers, &name, &n).await;
            });
        }
    }

    async fn deliver_and_log(
        &self,
        notifiers: &Notifiers,
        name: &str,
        n: &Notification,
    ) -> DeliveryRecord {
        let outcome = notifiers.deliver(name, n).await;
        let record = DeliveryRecord {
            id: 0,
            at: unix_now(),
            notifier: name.to_string(),
            kind_of_notifier: notifiers
                .config(name)
                .map_or("unknown", |c| c.kind.type_name())
                .to_string(),
            kind: n.kind.as_str().to_string(),
            rule: n.rule.clone(),
            nodes: n.items.iter().map(|i| i.node.clone()).collect(),
            ok: outcome.ok,
            attempts: outcome.attempts,
            answer: outcome.answer,
        };
        AlertEvent::Delivered {
            notifier: name,
            ok: record.ok,
            attempts: record.attempts,
        }
        .emit();
        let store = Arc::clone(&self.store);
        let r = record.clone();
        match off_runtime(move || store.record_delivery(&r)).await {
            Ok(id) => DeliveryRecord { id, ..record },
            Err(error) => {
                AlertEvent::StoreFailed { error }.emit();
                record
            }
        }
    }

    /// Fits every predicted node's disk use and hands the results to the evaluator.
    async fn fit(self: &Arc<Self>, now: i64) {
        let inputs = match self.core.lock() {
            Ok(c) if c.eval.predicts() => c.eval.fit_inputs(),
            _ => return,
        };
        let Some(samples) = self.samples.clone() else {
            return;
        };
        if inputs.is_empty() {
            return;
        }
        let fitted = off_runtime(move || -> Result<Vec<(String, Option<f64>)>, StoreError> {
            let store = samples.lock().map_err(|_| StoreError::Poisoned)?;
            let names: Vec<String> = inputs.iter().map(|i| i.0.clone()).collect();
            let ids = store.node_ids(&names)?;
            let mut points: std::collections::HashMap<i64, Vec<(i64, f64)>> = Default::default();
            let id_list: Vec<i64> = ids.iter().map(|x| x.1).collect();
            // A period's average stands at its middle.
            let half = predict::FIT_TIER_SECS / 2;
            store.scan_periods(
                &id_list,
                now - predict::FIT_SPAN,
                now,
                Some(predict::FIT_TIER),
                &mut |id, p| {
                    if let (Some(sum), true) = (p.sum[2], p.n_ok > 0) {
                        points
                            .entry(id)
                            .or_default()
                            .push((p.ts + half, sum / p.n_ok as f64));
                    }
                },
            )?;
            Ok(inputs
                .into_iter()
                .map(|(name, last)| {
                    let mut pts = ids
                        .iter()
                        .find(|x| x.0 == name)
                        .and_then(|x| points.remove(&x.1))
                        .unwrap_or_default();
                    pts.extend(last);
                    let secs = predict::seconds_to_full(&pts, now);
                    (name, secs)
                })
                .collect())
        })
        .await;
        match fitted {
            Ok(list) => {
                if let Ok(mut c) = self.core.lock() {
                    for (node, secs) in list {
                        c.eval.set_disk_full_in(&node, secs);
                    }
                }
            }
            Err(error) => AlertEvent::StoreFailed { error }.emit(),
        }
    }

    // ---- what the application layer asks ---------------------------------------------------

    /// The alerts pending or firing now.
    pub fn current(&self) -> Vec<CurrentAlert> {
        let now = unix_now();
        self.core
            .lock()
            .map(|c| c.eval.current(&|r, n| self.muted(&c.setup, r, n, now)))
            .unwrap_or_default()
    }

    pub fn config_view(&self) -> ConfigView {
        let now = unix_now();
        let Some(setup) = self.setup() else {
            return ConfigView {
                rules: vec![],
                notifiers: vec![],
                maintenance: vec![],
                storm_threshold: 0,
                storm_window_secs: 0,
            };
        };
        ConfigView {
            rules: setup.cfg.rules.clone(),
            notifiers: setup
                .cfg
                .notifiers
                .iter()
                .map(|n| NotifierView {
                    name: n.name.clone(),
                    kind: n.kind.type_name().to_string(),
                    target: n.kind.target(),
                })
                .collect(),
            maintenance: setup
                .windows
                .iter()
                .map(|w| MaintenanceView {
                    name: w.cfg.name.clone(),
                    schedule: match &w.cfg.schedule {
                        Schedule::Weekly { days, start, end } => format!(
                            "{} {}-{}",
                            if days.is_empty() {
                                "every day".to_string()
                            } else {
                                days.iter()
                                    .map(|d| d.to_string())
                                    .collect::<Vec<_>>()
                                    .join(",")
                            },
                            start.format("%H:%M"),
                            end.format("%H:%M")
                        ),
                        Schedule::Cron { cron, duration } => {
                            format!("cron {cron} for {}", humantime_secs(duration.as_secs()))
                        }
                    },
                    timezone: w.cfg.timezone.name().to_string(),
                    nodes: w.cfg.nodes.clone(),
                    rules: w.cfg.rules.clone(),
                    open_now: w.open(now),
                })
                .collect(),
            storm_threshold: setup.cfg.storm.threshold,
            storm_window_secs: setup.cfg.storm.window.as_secs(),
        }
    }

    /// History events (blocking).
    pub fn history(
        &self,
        from: i64,
        to: i64,
        nodes: &[String],
        limit: usize,
    ) -> Result<Vec<EventView>, AlertError> {
        Ok(self
            .store
            .alert_events(from, to, nodes, limit)?
            .into_iter()
            .map(event_view)
            .collect())
    }

    /// The delivery log (blocking).
    pub fn deliveries(&self, limit: usize) -> Result<Vec<DeliveryView>, AlertError> {
        Ok(self
            .store
            .deliveries(limit)?
            .into_iter()
            .map(delivery_view)
            .collect())
    }

    /// Active and recently expired silences (blocking).
    pub fn silences(&self) -> Result<Vec<SilenceView>, AlertError> {
        let now = unix_now();
        Ok(self
            .store
            .silences(now - EXPIRED_LISTED)?
            .into_iter()
            .map(|s| silence_view(s, now))
            .collect())
    }

    /// A new silence by `by` (blocking).
    pub fn create_silence(&self, by: &str, s: NewSilence) -> Result<SilenceView, AlertError> {
        let now = unix_now();
        let record = self.validate_silence(by, s, now)?;
        let stored = self.store.put_silence(&record)?;
        self.reload_silences(now)?;
        tracing::info!(id = stored.id, by, "silence created");
        Ok(silence_view(stored, now))
    }

    fn validate_silence(
        &self,
        by: &str,
        s: NewSilence,
        now: i64,
    ) -> Result<SilenceRecord, AlertError> {
        let bad = |m: String| AlertError::BadRequest(m);
        let clean = |v: Option<String>| v.map(|x| x.trim().to_string()).filter(|x| !x.is_empty());
        let (nodes, rule, severity) = (clean(s.nodes), clean(s.rule), clean(s.severity));
        if nodes.is_none() && rule.is_none() && severity.is_none() {
            return Err(bad(
                "a silence matches by nodes (a glob), rule and/or severity: give at least one"
                    .into(),
            ));
        }
        if let Some(g) = &nodes {
            if g.len() > 200 {
                return Err(bad("nodes: at most 200 characters".into()));
            }
            globset::Glob::new(g).map_err(|e| bad(format!("nodes: invalid glob {g:?}: {e}")))?;
        }
        if let Some(r) = &rule {
            if !self.rules().iter().any(|x| x.name == *r) {
                return Err(bad(format!("rule: no rule is named {r:?}")));
            }
        }
        if let Some(v) = &severity {
            if v != Severity::Warning.as_str() && v != Severity::Critical.as_str() {
                return Err(bad(format!(
                    "severity: {v:?} is neither warning nor critical"
                )));
            }
        }
        let comment = s.comment.trim().to_string();
        if comment.is_empty() || comment.len() > 1000 {
            return Err(bad("comment: say why (1 to 1000 characters)".into()));
        }
        let text = s.expires.trim();
        let expires = match chrono::DateTime::parse_from_rfc3339(text) {
            Ok(t) => t.timestamp(),
            Err(_) => match dsmon_config::parse_duration(text) {
                Ok(d) => now + d.as_secs() as i64,
                Err(_) => {
                    return Err(bad(format!(
                        "expires: {text:?} is neither a duration (\"2h\") nor an RFC 3339 time"
                    )))
                }
            },
        };
        if expires <= now {
            return Err(bad("expires: must be in the future".into()));
        }
        if expires > now + 90 * 86_400 {
            return Err(bad("expires: at most 90 days ahead".into()));
        }
        Ok(SilenceRecord {
            id: 0,
            created: now,
            created_by: by.to_string(),
            expires,
            nodes,
            rule,
            severity,
            comment,
        })
    }

    /// Ends a silence now (blocking).
    pub fn expire_silence(&self, id: i64, by: &str) -> Result<SilenceView, AlertError> {
        let now = unix_now();
        let s = self
            .store
            .expire_silence(id, now)?
            .ok_or_else(|| AlertError::NotFound(format!("no silence {id}")))?;
        self.reload_silences(now)?;
        tracing::info!(id, by, "silence expired");
        Ok(silence_view(s, now))
    }

    fn reload_silences(&self, now: i64) -> Result<(), AlertError> {
        let fresh = load_silences(&*self.store, now)?;
        if let Ok(mut s) = self.silences.write() {
            *s = fresh;
        }
        Ok(())
    }

    /// Acknowledges a firing alert: no repeats until it resolves (blocking).
    pub fn acknowledge(
        &self,
        rule: &str,
        node: &str,
        by: &str,
    ) -> Result<CurrentAlert, AlertError> {
        let now = unix_now();
        let mut changes = Changes::default();
        self.core
            .lock()
            .map_err(|_| AlertError::Task("evaluator lock poisoned".into()))?
            .eval
            .acknowledge(rule, node, by, now, &mut changes)
            .map_err(|_| AlertError::NotFound(format!("{rule:?} is not firing on {node:?}")))?;
        let states = if self.delivering.load(std::sync::atomic::Ordering::Relaxed) {
            changes.states
        } else {
            // Not the leader: the acknowledgement goes onto the leader's record of the alert
            // (its start, its last notification), which the leader then takes (`sync_shared`).
            let stored = self
                .store
                .alert_states()?
                .into_iter()
                .find(|r| r.rule == rule && r.node == node);
            match stored {
                Some(mut r) => {
                    r.acked_by = Some(by.to_string());
                    r.acked_at = Some(now);
                    vec![r]
                }
                None => changes.states,
            }
        };
        self.store.save_alerts(&states, &[], &[])?;
        tracing::info!(rule, node, by, "alert acknowledged");
        self.current()
            .into_iter()
            .find(|a| a.rule == rule && a.node == node)
            .ok_or_else(|| AlertError::NotFound(format!("{rule:?} is not firing on {node:?}")))
    }

    /// Sends a test notification to one notifier and logs it.
    pub async fn send_test(&self, name: &str) -> Result<DeliveryView, AlertError> {
        let setup = self
            .setup()
            .ok_or_else(|| AlertError::Task("alerts lock poisoned".into()))?;
        if setup.notifiers.config(name).is_none() {
            return Err(AlertError::NotFound(format!(
                "no notifier is named {name:?}"
            )));
        }
        let now = unix_now();
        let rule = RuleConfig {
            name: "dsmon test".into(),
            metric: dsmon_config::alerts::Metric::CpuPct,
            direction: dsmon_config::alerts::Direction::Above,
            threshold: 90.0,
            clear: 90.0,
            for_: Duration::ZERO,
            severity: Severity::Warning,
            nodes: vec![],
            tags: vec![],
            notify: vec![],
            repeat: None,
        };
        let item = NoticeItem {
            node: "test-node".into(),
            value: Some(95.0),
            since: now,
            ended: None,
            url: setup
                .cfg
                .public_url
                .as_ref()
                .map(|u| crate::eval::node_url(u.as_str(), "test-node")),
        };
        let n = notification(&setup, &rule, NoticeKind::Test, vec![item], now);
        Ok(delivery_view(
            self.deliver_and_log(&setup.notifiers, name, &n).await,
        ))
    }
}

fn notification(
    setup: &Setup,
    rule: &RuleConfig,
    kind: NoticeKind,
    items: Vec<NoticeItem>,
    now: i64,
) -> Notification {
    Notification {
        kind,
        rule: rule.name.clone(),
        metric: rule.metric,
        severity: rule.severity,
        direction: rule.direction,
        threshold: rule.threshold,
        items,
        at: now,
        public_url: setup.cfg.public_url.as_ref().map(|u| u.to_string()),
    }
}

fn load_silences(store: &dyn AlertStore, now: i64) -> Result<Vec<Silence>, AlertError> {
    Ok(store
        .silences(now)?
        .into_iter()
        .filter_map(|s| match Silence::new(s) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "a stored silence has an invalid glob: ignored");
                None
            }
        })
        .collect())
}

fn humantime_secs(s: u64) -> String {
    crate::model::human_secs(s as f64)
}

fn silence_view(s: SilenceRecord, now: i64) -> SilenceView {
    SilenceView {
        id: s.id,
        created: format_ts(s.created),
        created_by: s.created_by,
        expires: format_ts(s.expires),
        active: s.expires > now,
        nodes: s.nodes,
        rule: s.rule,
        severity: s.severity,
        comment: s.comment,
    }
}

fn event_view(e: AlertEventRecord) -> EventView {
    EventView {
        id: e.id,
        at: format_ts(e.at),
        rule: e.rule,
        node: e.node,
        severity: e.severity,
        state: e.state,
        value: e.value,
        threshold: e.threshold,
        silenced: e.silenced,
    }
}

fn delivery_view(d: DeliveryRecord) -> DeliveryView {
    DeliveryView {
        id: d.id,
        at: format_ts(d.at),
        notifier: d.notifier,
        kind_of_notifier: d.kind_of_notifier,
        kind: d.kind,
        rule: d.rule,
        nodes: d.nodes,
        ok: d.ok,
        attempts: d.attempts,
        answer: d.answer,
    }
}
