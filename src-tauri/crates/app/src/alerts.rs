//! The alerts' use cases: what is firing now (every role: it is live data), and for Admins the
//! history, the delivery log, the rules and notifiers, silences, acknowledgements and a test send.
//! Admin actions are audited.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use dsmon_alerts::{AlertError, Alerts};
/// What the alert use cases answer and take (the API's schemas).
pub use dsmon_alerts::{
    ConfigView, CurrentAlert, DeliveryView, EventView, NewSilence, SilenceView,
};
use dsmon_core::{Caller, Role};

use crate::{Access, App, AppError, ErrorKind, NodeFilter, Result};

/// `GET /api/alerts`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AlertsNow {
    pub alerts: Vec<CurrentAlert>,
}

/// Alert history parameters: `from`/`to` as for history (default the last 24 hours), `node`
/// (repeatable), `limit` (default 500, at most 5000).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertHistoryRequest {
    /// Start, as for history; default `-24h`.
    pub from: Option<String>,
    /// End, as for history; default `now`.
    pub to: Option<String>,
    /// A node's name; repeatable; none: every node.
    #[serde(default)]
    #[param(style = Form, explode)]
    pub node: Vec<String>,
    /// At most this many events, 1..5000 (default 500).
    pub limit: Option<usize>,
    #[serde(skip)]
    pub unknown: Vec<String>,
}

impl AlertHistoryRequest {
    /// The query string of these parameters (the desktop's remote client sends it).
    pub fn to_query(&self) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        if let Some(v) = &self.from {
            q.append_pair("from", v);
        }
        if let Some(v) = &self.to {
            q.append_pair("to", v);
        }
        for n in &self.node {
            q.append_pair("node", n);
        }
        if let Some(l) = self.limit {
            q.append_pair("limit", &l.to_string());
        }
        q.finish()
    }

    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut r = Self::default();
        for (k, v) in pairs {
            match k.as_str() {
                "from" => r.from = Some(v),
                "to" => r.to = Some(v),
                "node" => r.node.push(v),
                "limit" => match v.trim().parse() {
                    Ok(n) => r.limit = Some(n),
                    Err(_) => r.unknown.push(format!("limit={v}")),
                },
                _ => r.unknown.push(k),
            }
        }
        r
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Events {
    pub events: Vec<EventView>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Deliveries {
    pub deliveries: Vec<DeliveryView>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Silences {
    pub silences: Vec<SilenceView>,
}

/// `POST /api/alerts/ack`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Ack {
    pub rule: String,
    pub node: String,
}

pub const MAX_ALERT_EVENTS: usize = 5000;

impl From<AlertError> for AppError {
    fn from(e: AlertError) -> Self {
        match e {
            AlertError::BadRequest(m) => AppError::bad_request(m),
            AlertError::NotFound(m) => AppError::new(ErrorKind::NotFound, m),
            other => AppError::internal(other),
        }
    }
}

impl App {
    fn alerts_part(&self) -> Option<&Arc<Alerts>> {
        self.alerts.as_ref()
    }

    fn alerts_configured(&self) -> Result<Arc<Alerts>> {
        self.alerts_part().cloned().ok_or_else(|| {
            AppError::new(
                ErrorKind::NotFound,
                "alerts are not running here (no [alerts] rules, or this instance does not evaluate them)",
            )
        })
    }

    fn audit_action(&self, who: &Caller, action: &str, target: &str, detail: Option<&str>) {
        if let Some(auth) = self.auth() {
            auth.audit(Some(&who.email), action, Some(target), detail);
        }
    }

    /// The alerts pending or firing now: every role (live data).
    pub fn alerts_now(&self, access: &Access) -> Result<AlertsNow> {
        self.alerts_matching(access, &NodeFilter::default())
    }

    /// The alerts pending or firing now on the nodes `filter` lets through (their tags as the
    /// live view has them now).
    pub fn alerts_matching(&self, access: &Access, filter: &NodeFilter) -> Result<AlertsNow> {
        self.require(access, Role::User, "the live view")?;
        filter.check()?;
        let mut alerts = self.alerts_part().map(|a| a.current()).unwrap_or_default();
        if !filter.is_empty() {
            let live = self.live.borrow().clone();
            let wanted: std::collections::HashSet<&str> = live
                .nodes
                .iter()
                .filter(|n| filter.matches(&n.tags))
                .map(|n| n.name.as_str())
                .collect();
            alerts.retain(|a| wanted.contains(a.node.as_str()));
        }
        Ok(AlertsNow { alerts })
    }

    pub async fn alert_history(&self, access: &Access, req: AlertHistoryRequest) -> Result<Events> {
        self.require(access, Role::Admin, "alert history")?;
        if let Some(k) = req.unknown.first() {
            return Err(AppError::bad_request(format!("unknown parameter {k:?}")));
        }
        let (from, to) = dsmon_store::export::history_range(
            req.from.as_deref(),
            req.to.as_deref(),
            chrono::Utc::now(),
        )?;
        let limit = req.limit.unwrap_or(500);
        if !(1..=MAX_ALERT_EVENTS).contains(&limit) {
            return Err(AppError::bad_request(format!(
                "limit must be between 1 and {MAX_ALERT_EVENTS}"
            )));
        }
        let Some(alerts) = self.alerts_part().cloned() else {
            return Ok(Events { events: vec![] });
        };
        let events = blocking(move || alerts.history(from, to, &req.node, limit)).await?;
        Ok(Events { events })
    }

    pub async fn alert_deliveries(
        &self,
        access: &Access,
        limit: Option<usize>,
    ) -> Result<Deliveries> {
        self.require(access, Role::Admin, "the delivery log")?;
        let limit = limit.unwrap_or(200);
        if !(1..=MAX_ALERT_EVENTS).contains(&limit) {
            return Err(AppError::bad_request(format!(
                "limit must be between 1 and {MAX_ALERT_EVENTS}"
            )));
        }
        let Some(alerts) = self.alerts_part().cloned() else {
            return Ok(Deliveries { deliveries: vec![] });
        };
        let deliveries = blocking(move || alerts.deliveries(limit)).await?;
        Ok(Deliveries { deliveries })
    }

    pub fn alert_config(&self, access: &Access) -> Result<ConfigView> {
        self.require(access, Role::Admin, "alert rules")?;
        Ok(self
            .alerts_part()
            .map(|a| a.config_view())
            .unwrap_or(ConfigView {
                rules: vec![],
                notifiers: vec![],
                maintenance: vec![],
                storm_threshold: 0,
                storm_window_secs: 0,
            }))
    }

    pub async fn silences(&self, access: &Access) -> Result<Silences> {
        self.require(access, Role::Admin, "silences")?;
        let Some(alerts) = self.alerts_part().cloned() else {
            return Ok(Silences { silences: vec![] });
        };
        let silences = blocking(move || alerts.silences()).await?;
        Ok(Silences { silences })
    }

    /// `body`: the JSON of [`NewSilence`].
    pub async fn create_silence(&self, access: &Access, body: &[u8]) -> Result<SilenceView> {
        let who = self.require(access, Role::Admin, "silences")?;
        let alerts = self.alerts_configured()?;
        let new: NewSilence = serde_json::from_slice(body)
            .map_err(|e| AppError::bad_request(format!("silence: {e}")))?;
        let by = who.email.clone();
        let s = blocking(move || alerts.create_silence(&by, new)).await?;
        let detail = format!(
            "nodes={} rule={} severity={} until {}: {}",
            s.nodes.as_deref().unwrap_or("*"),
            s.rule.as_deref().unwrap_or("*"),
            s.severity.as_deref().unwrap_or("*"),
            s.expires,
            s.comment
        );
        self.audit_action(
            &who,
            "silence_created",
            &format!("silence {}", s.id),
            Some(&detail),
        );
        Ok(s)
    }

    /// `id` as the caller gave it (a path segment): checked after the caller's role.
    pub async fn expire_silence(&self, access: &Access, id: &str) -> Result<SilenceView> {
        let who = self.require(access, Role::Admin, "silences")?;
        let id: i64 = id
            .trim()
            .parse()
            .map_err(|_| AppError::bad_request(format!("{id:?} is not a silence id")))?;
        let alerts = self.alerts_configured()?;
        let by = who.email.clone();
        let s = blocking(move || alerts.expire_silence(id, &by)).await?;
        self.audit_action(&who, "silence_expired", &format!("silence {id}"), None);
        Ok(s)
    }

    /// `body`: `{"rule": ..., "node": ...}`.
    pub async fn acknowledge(&self, access: &Access, body: &[u8]) -> Result<CurrentAlert> {
        let who = self.require(access, Role::Admin, "acknowledging alerts")?;
        let alerts = self.alerts_configured()?;
        let ack: Ack = serde_json::from_slice(body)
            .map_err(|e| AppError::bad_request(format!("acknowledge: {e}")))?;
        let by = who.email.clone();
        let (rule, node) = (ack.rule.clone(), ack.node.clone());
        let a = blocking(move || alerts.acknowledge(&rule, &node, &by)).await?;
        self.audit_action(
            &who,
            "alert_acknowledged",
            &format!("{} on {}", ack.rule, ack.node),
            None,
        );
        Ok(a)
    }

    pub async fn test_notifier(&self, access: &Access, name: &str) -> Result<DeliveryView> {
        let who = self.require(access, Role::Admin, "notifiers")?;
        let alerts = self.alerts_configured()?;
        let d = alerts.send_test(name).await?;
        self.audit_action(
            &who,
            "notifier_tested",
            name,
            Some(if d.ok { "delivered" } else { "failed" }),
        );
        Ok(d)
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::result::Result<T, AlertError> + Send + 'static,
) -> Result<T> {
    Ok(tokio::task::spawn_blocking(f)
        .await
        .map_err(AppError::internal)??)
}
