//! `[alerts]`: alert rules, the notifiers they notify, maintenance windows and storm control.
//!
//! ```toml
//! [[alerts.rules]]
//! name = "cpu high"
//! metric = "cpu_pct"      # cpu_pct | mem_pct | disk_pct | net_in_kbps | net_out_kbps | down | stale | disk_full_in
//! above = 90              # or below = ...; disk_full_in takes below = "24h"
//! clear = 80              # optional hysteresis
//! for = "5m"
//! severity = "warning"    # warning | critical
//! nodes = ["web-*"]
//! notify = ["ops-mail"]
//! repeat = "4h"
//! ```
//! Warning and critical levels of one metric are two rules (e.g. `cpu high` above 90 warning, `cpu
//! critical` above 98 critical): each has its own `for`, `clear`, notifiers and repeat.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::{de_duration, parse_duration, KeyError, Secret};

/// A validated `[alerts]` section.
#[derive(Debug, Clone, Default)]
pub struct AlertsConfig {
    pub rules: Vec<RuleConfig>,
    pub notifiers: Vec<NotifierConfig>,
    pub maintenance: Vec<MaintenanceConfig>,
    pub storm: StormConfig,
    /// How many times a failing delivery is tried in all (default 4), with a doubling pause
    /// starting at `retry_backoff` (default 2s).
    pub attempts: u32,
    pub retry_backoff: Duration,
    /// The address people open dsmon at, for links to a node's page in notifications
    /// (`public_url`, by default the origin of `auth.redirect_url`, else none).
    pub public_url: Option<Url>,
}

/// What a rule watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    CpuPct,
    MemPct,
    DiskPct,
    NetInKbps,
    NetOutKbps,
    /// The node does not answer (any failed poll).
    Down,
    /// The agent answers, but its data is missing or older than a poll allows.
    Stale,
    /// Time until the disk is full, from a linear fit over the roll-ups.
    DiskFullIn,
}

impl Metric {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CpuPct => "cpu_pct",
            Self::MemPct => "mem_pct",
            Self::DiskPct => "disk_pct",
            Self::NetInKbps => "net_in_kbps",
            Self::NetOutKbps => "net_out_kbps",
            Self::Down => "down",
            Self::Stale => "stale",
            Self::DiskFullIn => "disk_full_in",
        }
    }

    /// Whether the rule is a yes/no condition with no threshold (`down`, `stale`).
    pub fn is_state(self) -> bool {
        matches!(self, Self::Down | Self::Stale)
    }
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }
}

/// Which side of the threshold is the alert condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Above,
    Below,
}

/// One `[[alerts.rules]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RuleConfig {
    pub name: String,
    pub metric: Metric,
    /// The condition: `value above threshold` or `value below threshold`. For `disk_full_in`
    /// the value and threshold are seconds until full; for `down` / `stale` there is none.
    pub direction: Direction,
    pub threshold: f64,
    /// Resolves only once the value is back past this (default: the threshold).
    pub clear: f64,
    /// How long the condition must hold before the alert fires.
    #[serde(rename = "for", with = "secs")]
    #[schema(value_type = u64)]
    pub for_: Duration,
    pub severity: Severity,
    /// Node name globs; empty: every node.
    pub nodes: Vec<String>,
    /// The rule covers only nodes having all these tags (and matching `nodes`); empty: any.
    pub tags: Vec<String>,
    /// Notifier names (`[[alerts.notifiers]]`).
    pub notify: Vec<String>,
    /// Notify again this often while firing (and not acknowledged).
    #[serde(with = "opt_secs")]
    #[schema(value_type = Option<u64>)]
    pub repeat: Option<Duration>,
}

mod secs {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }
}

mod opt_secs {
    pub fn serialize<S: serde::Serializer>(
        d: &Option<std::time::Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs()),
            None => s.serialize_none(),
        }
    }
}

/// When STARTTLS is used on `smtp://`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum StartTls {
    /// When the server offers it (the default).
    #[default]
    Opportunistic,
    /// Refuse to send without it.
    Required,
}

/// How a notifier delivers.
#[derive(Debug, Clone)]
pub enum NotifierKind {
    Email {
        /// `smtp://host:port` or `smtps://host:port`.
        url: Url,
        starttls: StartTls,
        from: String,
        to: Vec<String>,
        username: Option<String>,
        password: Option<Secret>,
    },
    /// Generic JSON; with a secret, `X-Dsmon-Signature: sha256=<hex HMAC-SHA256 of the body>`.
    Webhook {
        url: Url,
        secret: Option<Secret>,
    },
    Slack {
        url: Url,
    },
    Discord {
        url: Url,
    },
    Teams {
        url: Url,
    },
    /// `url` is the topic's address (`https://ntfy.sh/mytopic`); `token` a bearer access token.
    Ntfy {
        url: Url,
        token: Option<Secret>,
    },
    /// Alertmanager's base address; alerts are posted to `<url>/api/v2/alerts`.
    Alertmanager {
        url: Url,
    },
    /// The desktop app's notifications (ignored by `dsmon serve`).
    Desktop,
}

impl NotifierKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Email { .. } => "email",
            Self::Webhook { .. } => "webhook",
            Self::Slack { .. } => "slack",
            Self::Discord { .. } => "discord",
            Self::Teams { .. } => "teams",
            Self::Ntfy { .. } => "ntfy",
            Self::Alertmanager { .. } => "alertmanager",
            Self::Desktop => "desktop",
        }
    }

    /// Where it delivers, for display (no credentials: URLs carry no user info after validation).
    pub fn target(&self) -> String {
        match self {
            Self::Email { url, to, .. } => format!("{} -> {}", url, to.join(", ")),
            Self::Webhook { url, .. }
            | Self::Slack { url }
            | Self::Discord { url }
            | Self::Teams { url }
            | Self::Ntfy { url, .. }
            | Self::Alertmanager { url } => url.to_string(),
            Self::Desktop => "desktop app".into(),
        }
    }
}

/// One `[[alerts.notifiers]]` entry.
#[derive(Debug, Clone)]
pub struct NotifierConfig {
    pub name: String,
    pub kind: NotifierKind,
    /// Extra CA certificate (PEM) trusted for this notifier's TLS.
    pub ca_file: Option<PathBuf>,
}

/// When a maintenance window is open.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// Weekdays (empty: every day) and a daily time range; an `end` before `start` runs past
    /// midnight.
    Weekly {
        days: Vec<chrono::Weekday>,
        start: chrono::NaiveTime,
        end: chrono::NaiveTime,
    },
    /// A cron expression (5 fields) for the start, open for `duration`.
    Cron { cron: String, duration: Duration },
}

/// One `[[alerts.maintenance]]` entry: while open, matching alerts are recorded, not delivered.
#[derive(Debug, Clone, PartialEq)]
pub struct MaintenanceConfig {
    pub name: String,
    pub schedule: Schedule,
    pub timezone: chrono_tz::Tz,
    /// Node globs (empty: every node) and rule names (empty: every rule).
    pub nodes: Vec<String>,
    pub rules: Vec<String>,
}

/// Storm control: when more than `threshold` nodes fire the same rule within `window`, those past
/// the threshold are sent as one grouped notification at the window's end.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StormConfig {
    pub threshold: usize,
    pub window: Duration,
}

impl Default for StormConfig {
    fn default() -> Self {
        Self {
            threshold: 5,
            window: Duration::from_secs(60),
        }
    }
}

// ---- as written ----------------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAlerts {
    #[serde(default)]
    rules: Vec<RawRule>,
    #[serde(default)]
    notifiers: Vec<RawNotifier>,
    #[serde(default)]
    maintenance: Vec<RawMaintenance>,
    storm_threshold: Option<usize>,
    #[serde(default, deserialize_with = "de_duration")]
    storm_window: Option<Duration>,
    attempts: Option<u32>,
    #[serde(default, deserialize_with = "de_duration")]
    retry_backoff: Option<Duration>,
    public_url: Option<String>,
}

/// A threshold: a number, or (for `disk_full_in`) a duration.
#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum RawThreshold {
    Number(f64),
    Text(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: String,
    metric: Metric,
    above: Option<RawThreshold>,
    below: Option<RawThreshold>,
    clear: Option<RawThreshold>,
    #[serde(rename = "for")]
    for_: Option<String>,
    severity: Option<Severity>,
    #[serde(default)]
    nodes: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    notify: Vec<String>,
    #[serde(default, deserialize_with = "de_duration")]
    repeat: Option<Duration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotifier {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    url: Option<String>,
    starttls: Option<StartTls>,
    from: Option<String>,
    #[serde(default)]
    to: Vec<String>,
    username: Option<String>,
    password_file: Option<PathBuf>,
    secret_file: Option<PathBuf>,
    token_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMaintenance {
    name: String,
    #[serde(default)]
    days: Vec<String>,
    start: Option<String>,
    end: Option<String>,
    cron: Option<String>,
    #[serde(default, deserialize_with = "de_duration")]
    duration: Option<Duration>,
    timezone: Option<String>,
    #[serde(default)]
    nodes: Vec<String>,
    #[serde(default)]
    rules: Vec<String>,
}

// ---- checks --------------------------------------------------------------------------------

/// Checks `[alerts]`. `live_interval` is the shortest `for`; `redirect_url` gives the default
/// `public_url`.
pub(crate) fn validate(
    raw: RawAlerts,
    base_dir: &Path,
    live_interval: Duration,
    redirect_url: Option<&Url>,
) -> Result<AlertsConfig, KeyError> {
    let top = |key: &str, m: String| KeyError::at("alerts", key, m);
    let mut notifiers = Vec::with_capacity(raw.notifiers.len());
    let mut names = HashSet::new();
    for (i, n) in raw.notifiers.into_iter().enumerate() {
        let at = format!("alerts.notifiers[{i}]");
        let n = notifier(n, base_dir, &at)?;
        if !names.insert(n.name.clone()) {
            return Err(KeyError::at(
                &at,
                "name",
                format!("duplicate notifier name {:?}", n.name),
            ));
        }
        notifiers.push(n);
    }
    let mut rules = Vec::with_capacity(raw.rules.len());
    let mut rule_names = HashSet::new();
    for (i, r) in raw.rules.into_iter().enumerate() {
        let at = format!("alerts.rules[{i}]");
        let r = rule(r, &at, live_interval, &names)?;
        if !rule_names.insert(r.name.clone()) {
            return Err(KeyError::at(
                &at,
                "name",
                format!("duplicate rule name {:?}", r.name),
            ));
        }
        rules.push(r);
    }
    let mut maintenance = Vec::with_capacity(raw.maintenance.len());
    for (i, m) in raw.maintenance.into_iter().enumerate() {
        let at = format!("alerts.maintenance[{i}]");
        maintenance.push(window(m, &at, &rule_names)?);
    }
    let storm = StormConfig {
        threshold: raw
            .storm_threshold
            .unwrap_or(StormConfig::default().threshold),
        window: raw.storm_window.unwrap_or(StormConfig::default().window),
    };
    if storm.threshold == 0 {
        return Err(top("storm_threshold", "must be at least 1".into()));
    }
    if storm.window < Duration::from_secs(1) || storm.window > Duration::from_secs(3600) {
        return Err(top("storm_window", "must be between 1s and 1h".into()));
    }
    let attempts = raw.attempts.unwrap_or(4);
    if !(1..=20).contains(&attempts) {
        return Err(top("attempts", "must be between 1 and 20".into()));
    }
    let retry_backoff = raw.retry_backoff.unwrap_or(Duration::from_secs(2));
    if retry_backoff < Duration::from_millis(100) || retry_backoff > Duration::from_secs(600) {
        return Err(top("retry_backoff", "must be between 100ms and 10m".into()));
    }
    let public_url = match raw.public_url {
        Some(u) => Some(http_url(&u).map_err(|m| top("public_url", m))?),
        None => redirect_url.map(|r| {
            let mut u = r.clone();
            u.set_path("/");
            u.set_query(None);
            u
        }),
    };
    Ok(AlertsConfig {
        rules,
        notifiers,
        maintenance,
        storm,
        attempts,
        retry_backoff,
        public_url,
    })
}

fn glob_list(globs: &[String], at: &str, key: &str) -> Result<Vec<String>, KeyError> {
    globs
        .iter()
        .map(|g| {
            let g = g.trim();
            globset::Glob::new(g)
                .map(|_| g.to_string())
                .map_err(|e| KeyError::at(at, key, format!("invalid glob {g:?}: {e}")))
        })
        .collect()
}

fn rule(
    r: RawRule,
    at: &str,
    live_interval: Duration,
    notifiers: &HashSet<String>,
) -> Result<RuleConfig, KeyError> {
    let e = |key: &str, m: String| KeyError::at(at, key, m);
    let name = r.name.trim().to_string();
    if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
        return Err(e("name", "must be 1 to 100 printable characters".into()));
    }
    let (direction, threshold, key) = match (&r.above, &r.below, r.metric.is_state()) {
        (Some(_), Some(_), _) => {
            return Err(e("below", "give either above or below, not both".into()))
        }
        (None, None, true) => (Direction::Above, 0.0, "above"),
        (Some(_), _, true) | (_, Some(_), true) => {
            return Err(e(
                if r.above.is_some() { "above" } else { "below" },
                format!(
                    "metric {} is a condition with no threshold: leave above/below out",
                    r.metric.as_str()
                ),
            ))
        }
        (None, None, false) => {
            return Err(e(
                "above",
                "give a threshold: above = N or below = N".into(),
            ))
        }
        (Some(t), None, false) => (Direction::Above, value(t, r.metric, at, "above")?, "above"),
        (None, Some(t), false) => (Direction::Below, value(t, r.metric, at, "below")?, "below"),
    };
    if r.metric == Metric::DiskFullIn && direction != Direction::Below {
        return Err(e(
            key,
            "disk_full_in fires when the disk fills sooner than a time: write below = \"24h\""
                .into(),
        ));
    }
    let clear = match &r.clear {
        None => threshold,
        Some(_) if r.metric.is_state() => {
            return Err(e(
                "clear",
                "a down/stale rule has no threshold to clear".into(),
            ))
        }
        Some(c) => {
            let c = value(c, r.metric, at, "clear")?;
            let wrong_side = match direction {
                Direction::Above => c > threshold,
                Direction::Below => c < threshold,
            };
            if wrong_side {
                return Err(e(
                    "clear",
                    format!(
                        "must be on the ok side of the threshold ({} {threshold} needs clear {} {threshold})",
                        key,
                        if direction == Direction::Above { "<=" } else { ">=" }
                    ),
                ));
            }
            c
        }
    };
    let for_ = match &r.for_ {
        None => live_interval,
        Some(t) => parse_duration(t).map_err(|m| e("for", m))?,
    };
    if for_ < live_interval {
        return Err(e(
            "for",
            format!(
                "must be at least collector.live_interval ({}): a condition is seen once per poll",
                humantime::format_duration(live_interval)
            ),
        ));
    }
    if for_ > Duration::from_secs(7 * 86_400) {
        return Err(e("for", "must be at most 7d".into()));
    }
    if let Some(rep) = r.repeat {
        if rep < live_interval.max(Duration::from_secs(1)) {
            return Err(e(
                "repeat",
                "must be at least collector.live_interval (and 1s)".into(),
            ));
        }
    }
    let nodes = glob_list(&r.nodes, at, "nodes")?;
    let tags = crate::tags::validate(r.tags).map_err(|m| e("tags", m))?;
    let mut notify = Vec::new();
    for n in &r.notify {
        if !notifiers.contains(n) {
            return Err(e(
                "notify",
                format!("unknown notifier {n:?}: name one of [[alerts.notifiers]]"),
            ));
        }
        if !notify.contains(n) {
            notify.push(n.clone());
        }
    }
    Ok(RuleConfig {
        name,
        metric: r.metric,
        direction,
        threshold,
        clear,
        for_,
        severity: r.severity.unwrap_or(Severity::Warning),
        nodes,
        tags,
        notify,
        repeat: r.repeat,
    })
}

/// A threshold for `metric`: a finite number, or for `disk_full_in` a duration (in seconds).
fn value(t: &RawThreshold, metric: Metric, at: &str, key: &str) -> Result<f64, KeyError> {
    let e = |m: String| KeyError::at(at, key, m);
    match (t, metric) {
        (RawThreshold::Text(s), Metric::DiskFullIn) => {
            parse_duration(s).map(|d| d.as_secs_f64()).map_err(e)
        }
        (RawThreshold::Number(_), Metric::DiskFullIn) => {
            Err(e("disk_full_in takes a duration, e.g. \"24h\"".into()))
        }
        (RawThreshold::Text(s), _) => Err(e(format!("must be a number, not {s:?}"))),
        (RawThreshold::Number(n), _) if !n.is_finite() || *n < 0.0 => {
            Err(e("must be a finite number >= 0".into()))
        }
        (RawThreshold::Number(n), Metric::CpuPct | Metric::MemPct | Metric::DiskPct)
            if *n > 100.0 =>
        {
            Err(e("a percentage is at most 100".into()))
        }
        (RawThreshold::Number(n), _) => Ok(*n),
    }
}

fn http_url(text: &str) -> Result<Url, String> {
    let u = Url::parse(text.trim()).map_err(|e| format!("invalid URL {text:?}: {e}"))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(format!("{text:?} must be an http or https URL"));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err("must not carry credentials: use the *_file keys".into());
    }
    Ok(u)
}

fn secret_file(
    path: Option<&PathBuf>,
    base_dir: &Path,
    at: &str,
    key: &str,
) -> Result<Option<Secret>, KeyError> {
    let Some(p) = path else { return Ok(None) };
    let p = base_dir.join(p);
    let text = std::fs::read_to_string(&p)
        .map_err(|e| KeyError::at(at, key, format!("{}: cannot read ({e})", p.display())))?;
    let text = text.trim();
    if text.is_empty() {
        return Err(KeyError::at(at, key, format!("{} is empty", p.display())));
    }
    Ok(Some(Secret::new(text.to_string())))
}

fn notifier(n: RawNotifier, base_dir: &Path, at: &str) -> Result<NotifierConfig, KeyError> {
    let e = |key: &str, m: String| KeyError::at(at, key, m);
    let name = n.name.trim().to_string();
    if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
        return Err(e("name", "must be 1 to 100 printable characters".into()));
    }
    let url = || -> Result<Url, KeyError> {
        let u = n
            .url
            .as_deref()
            .ok_or_else(|| e("url", format!("a {} notifier needs a url", n.kind)))?;
        http_url(u).map_err(|m| e("url", m))
    };
    let unused = |keys: &[(&str, bool)]| -> Result<(), KeyError> {
        match keys.iter().find(|(_, set)| *set) {
            Some((k, _)) => Err(e(k, format!("does not apply to a {} notifier", n.kind))),
            None => Ok(()),
        }
    };
    let email_keys = [
        ("starttls", n.starttls.is_some()),
        ("from", n.from.is_some()),
        ("to", !n.to.is_empty()),
        ("username", n.username.is_some()),
        ("password_file", n.password_file.is_some()),
    ];
    let kind = match n.kind.as_str() {
        "email" => {
            unused(&[
                ("secret_file", n.secret_file.is_some()),
                ("token_file", n.token_file.is_some()),
            ])?;
            email(&n, base_dir, at)?
        }
        other => {
            unused(&email_keys)?;
            match other {
                "webhook" => {
                    unused(&[("token_file", n.token_file.is_some())])?;
                    NotifierKind::Webhook {
                        url: url()?,
                        secret: secret_file(n.secret_file.as_ref(), base_dir, at, "secret_file")?,
                    }
                }
                "ntfy" => {
                    unused(&[("secret_file", n.secret_file.is_some())])?;
                    NotifierKind::Ntfy {
                        url: url()?,
                        token: secret_file(n.token_file.as_ref(), base_dir, at, "token_file")?,
                    }
                }
                "slack" | "discord" | "teams" | "alertmanager" | "desktop" => {
                    unused(&[
                        ("secret_file", n.secret_file.is_some()),
                        ("token_file", n.token_file.is_some()),
                    ])?;
                    match other {
                        "slack" => NotifierKind::Slack { url: url()? },
                        "discord" => NotifierKind::Discord { url: url()? },
                        "teams" => NotifierKind::Teams { url: url()? },
                        "alertmanager" => NotifierKind::Alertmanager { url: url()? },
                        _ => {
                            unused(&[("url", n.url.is_some()), ("ca_file", n.ca_file.is_some())])?;
                            NotifierKind::Desktop
                        }
                    }
                }
                _ => {
                    return Err(e(
                        "type",
                        format!("unknown notifier type {other:?}: email, webhook, slack, discord, teams, ntfy, alertmanager or desktop"),
                    ))
                }
            }
        }
    };
    let ca_file = match &n.ca_file {
        Some(p) => {
            let p = base_dir.join(p);
            if !p.is_file() {
                return Err(e("ca_file", format!("{}: no such file", p.display())));
            }
            Some(p)
        }
        None => None,
    };
    Ok(NotifierConfig {
        name,
        kind,
        ca_file,
    })
}

fn email(n: &RawNotifier, base_dir: &Path, at: &str) -> Result<NotifierKind, KeyError> {
    let e = |key: &str, m: String| KeyError::at(at, key, m);
    let text = n.url.as_deref().ok_or_else(|| {
        e(
            "url",
            "an email notifier needs url = \"smtp://host:587\" or \"smtps://host:465\"".into(),
        )
    })?;
    let url =
        Url::parse(text.trim()).map_err(|x| e("url", format!("invalid URL {text:?}: {x}")))?;
    if !matches!(url.scheme(), "smtp" | "smtps") || url.host_str().is_none() {
        return Err(e(
            "url",
            format!("{text:?}: write smtp://host:port or smtps://host:port"),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(e(
            "url",
            "must not carry credentials: use username and password_file".into(),
        ));
    }
    if url.scheme() == "smtps" && n.starttls.is_some() {
        return Err(e(
            "starttls",
            "smtps:// is TLS from the start; starttls is for smtp://".into(),
        ));
    }
    let addr = |a: &str, key: &str| -> Result<String, KeyError> {
        let a = a.trim();
        match a.split_once('@') {
            Some((l, d))
                if !l.is_empty()
                    && d.contains('.')
                    && !a.chars().any(|c| c.is_whitespace() || c == ',') =>
            {
                Ok(a.to_string())
            }
            _ => Err(e(key, format!("{a:?} is not an email address"))),
        }
    };
    let from = addr(
        n.from
            .as_deref()
            .ok_or_else(|| e("from", "an email notifier needs from".into()))?,
        "from",
    )?;
    if n.to.is_empty() {
        return Err(e(
            "to",
            "an email notifier needs at least one address in to".into(),
        ));
    }
    let to =
        n.to.iter()
            .map(|a| addr(a, "to"))
            .collect::<Result<Vec<_>, _>>()?;
    let password = secret_file(n.password_file.as_ref(), base_dir, at, "password_file")?;
    if password.is_some() != n.username.is_some() {
        return Err(e(
            "username",
            "SMTP AUTH needs both username and password_file".into(),
        ));
    }
    let loopback = crate::is_loopback(&url);
    if n.username.is_some()
        && url.scheme() == "smtp"
        && n.starttls != Some(StartTls::Required)
        && !loopback
    {
        return Err(e(
            "starttls",
            "SMTP AUTH over smtp:// needs starttls = \"required\" (or use smtps://): otherwise a server that offers no STARTTLS would get the password in clear text".into(),
        ));
    }
    Ok(NotifierKind::Email {
        url,
        starttls: n.starttls.unwrap_or_default(),
        from,
        to,
        username: n.username.clone(),
        password,
    })
}

fn window(
    m: RawMaintenance,
    at: &str,
    rules: &HashSet<String>,
) -> Result<MaintenanceConfig, KeyError> {
    let e = |key: &str, msg: String| KeyError::at(at, key, msg);
    let name = m.name.trim().to_string();
    if name.is_empty() {
        return Err(e("name", "must not be empty".into()));
    }
    let timezone: chrono_tz::Tz = match m.timezone.as_deref() {
        None => chrono_tz::UTC,
        Some(t) => t.trim().parse().map_err(|_| {
            e(
                "timezone",
                format!("unknown time zone {t:?}; write e.g. \"Europe/Berlin\" or \"UTC\""),
            )
        })?,
    };
    let time = |t: &Option<String>, key: &str| -> Result<chrono::NaiveTime, KeyError> {
        let t = t
            .as_deref()
            .ok_or_else(|| e(key, "needed with days (e.g. \"22:00\")".into()))?;
        chrono::NaiveTime::parse_from_str(t.trim(), "%H:%M")
            .map_err(|_| e(key, format!("{t:?}: write HH:MM, e.g. \"22:00\"")))
    };
    let schedule = match (&m.cron, m.duration) {
        (Some(c), Some(duration)) => {
            if m.start.is_some() || m.end.is_some() || !m.days.is_empty() {
                return Err(e(
                    "cron",
                    "give either cron + duration or days + start + end".into(),
                ));
            }
            c.trim()
                .parse::<croner::Cron>()
                .map_err(|x| e("cron", format!("invalid cron expression {c:?}: {x}")))?;
            if duration < Duration::from_secs(60) || duration > Duration::from_secs(7 * 86_400) {
                return Err(e("duration", "must be between 1m and 7d".into()));
            }
            Schedule::Cron {
                cron: c.trim().to_string(),
                duration,
            }
        }
        (Some(_), None) => {
            return Err(e(
                "duration",
                "a cron window needs a duration, e.g. \"2h\"".into(),
            ))
        }
        (None, Some(_)) => return Err(e("cron", "duration goes with cron".into())),
        (None, None) => {
            let days = m
                .days
                .iter()
                .map(|d| {
                    d.trim()
                        .parse::<chrono::Weekday>()
                        .map_err(|_| e("days", format!("{d:?} is not a weekday (mon, tue, ...)")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let start = time(&m.start, "start")?;
            let end = time(&m.end, "end")?;
            if start == end {
                return Err(e("end", "must differ from start".into()));
            }
            Schedule::Weekly { days, start, end }
        }
    };
    for r in &m.rules {
        if !rules.contains(r) {
            return Err(e("rules", format!("unknown rule {r:?}")));
        }
    }
    Ok(MaintenanceConfig {
        name,
        schedule,
        timezone,
        nodes: glob_list(&m.nodes, at, "nodes")?,
        rules: m.rules,
    })
}

#[cfg(test)]
mod tests {
    use crate::parse;
    use std::path::Path;

    fn err(text: &str) -> String {
        match parse(text, Path::new("/etc/dsmon/t.toml")) {
            Ok(_) => panic!("expected an error for {text}"),
            Err(e) => e.to_string(),
        }
    }

    const HOOK: &str = "[[alerts.notifiers]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"https://hooks.example.com/x\"\n";

    #[test]
    fn rules_parse_with_defaults() {
        let c = parse(
            &format!("{HOOK}[[alerts.rules]]\nname = \"cpu high\"\nmetric = \"cpu_pct\"\nabove = 90\nclear = 80\nfor = \"5m\"\nnodes = [\"web-*\"]\nnotify = [\"hook\"]\nrepeat = \"4h\"\n[[alerts.rules]]\nname = \"full\"\nmetric = \"disk_full_in\"\nbelow = \"24h\"\n[[alerts.rules]]\nname = \"down\"\nmetric = \"down\"\nfor = \"30s\"\nseverity = \"critical\"\n"),
            Path::new("/etc/dsmon/t.toml"),
        )
        .unwrap();
        let r = &c.alerts.rules;
        assert_eq!(
            (r[0].threshold, r[0].clear, r[0].for_.as_secs()),
            (90.0, 80.0, 300)
        );
        assert_eq!(r[0].repeat.map(|d| d.as_secs()), Some(14_400));
        assert_eq!(
            (r[1].threshold, r[1].direction),
            (86_400.0, super::Direction::Below)
        );
        assert_eq!(r[1].for_, c.collector.live_interval);
        assert_eq!(r[2].severity, super::Severity::Critical);
    }

    #[test]
    fn bad_rules_name_the_key() {
        let e = err("[[alerts.rules]]\nname = \"x\"\nmetric = \"cpu_pct\"\nabove = 9\nnotify = [\"nope\"]\n");
        assert!(
            e.contains("alerts.rules[0].notify: unknown notifier \"nope\""),
            "{e}"
        );
        let e = err("[[alerts.rules]]\nname = \"x\"\nmetric = \"cpu\"\nabove = 9\n");
        assert!(e.contains("alerts.rules[0].metric"), "{e}");
        let e = err("[[alerts.rules]]\nname = \"x\"\nmetric = \"cpu_pct\"\nabove = 9\nbelow = 3\n");
        assert!(
            e.contains("alerts.rules[0].below: give either above or below"),
            "{e}"
        );
        let e =
            err("[[alerts.rules]]\nname = \"x\"\nmetric = \"cpu_pct\"\nabove = 9\nfor = \"1s\"\n");
        assert!(
            e.contains("alerts.rules[0].for: must be at least collector.live_interval"),
            "{e}"
        );
        let e =
            err("[[alerts.rules]]\nname = \"x\"\nmetric = \"cpu_pct\"\nabove = 90\nclear = 95\n");
        assert!(e.contains("alerts.rules[0].clear"), "{e}");
        let e = err("[[alerts.rules]]\nname = \"x\"\nmetric = \"down\"\nabove = 1\n");
        assert!(e.contains("alerts.rules[0].above"), "{e}");
    }

    #[test]
    fn the_readme_example_is_valid() {
        let readme = include_str!("../../../../README.md");
        let section = readme
            .split("## Alerts")
            .nth(1)
            .expect("README has an Alerts section");
        let toml = section
            .split("```toml\n")
            .nth(1)
            .and_then(|b| b.split("```").next())
            .expect("a toml block");
        let dir = tempfile::tempdir().unwrap();
        for f in ["smtp-password", "hook-secret", "ntfy-token"] {
            std::fs::write(dir.path().join(f), "s3cret").unwrap();
        }
        let text = toml.replace("/etc/dsmon/", &format!("{}/", dir.path().display()));
        let c = parse(&text, &dir.path().join("dsmon.toml")).unwrap();
        assert_eq!(c.alerts.rules.len(), 4);
        assert_eq!(c.alerts.notifiers.len(), 5);
        assert_eq!(c.alerts.maintenance.len(), 1);
    }

    #[test]
    fn notifiers_and_windows() {
        let e = err("[[alerts.notifiers]]\nname = \"m\"\ntype = \"email\"\nurl = \"smtp://mail.example.com:587\"\nfrom = \"dsmon@example.com\"\n");
        assert!(e.contains("alerts.notifiers[0].to"), "{e}");
        let e = err("[[alerts.notifiers]]\nname = \"m\"\ntype = \"email\"\nurl = \"smtp://mail.example.com:587\"\nfrom = \"dsmon@example.com\"\nto = [\"ops@example.com\"]\nusername = \"dsmon\"\npassword_file = \"/etc/hostname\"\n");
        assert!(e.contains("alerts.notifiers[0].starttls"), "{e}");
        let e = err("[[alerts.notifiers]]\nname = \"m\"\ntype = \"pager\"\n");
        assert!(e.contains("alerts.notifiers[0].type"), "{e}");
        let e = err("[[alerts.maintenance]]\nname = \"w\"\ndays = [\"mon\"]\nstart = \"22:00\"\nend = \"23:00\"\ntimezone = \"Mars/Olympus\"\n");
        assert!(e.contains("alerts.maintenance[0].timezone"), "{e}");
        let e = err("[[alerts.maintenance]]\nname = \"w\"\ncron = \"bad\"\nduration = \"1h\"\n");
        assert!(e.contains("alerts.maintenance[0].cron"), "{e}");
        let c = parse(
            "[[alerts.maintenance]]\nname = \"w\"\ncron = \"0 22 * * 1-5\"\nduration = \"2h\"\ntimezone = \"Europe/Berlin\"\n",
            Path::new("/etc/dsmon/t.toml"),
        )
        .unwrap();
        assert_eq!(c.alerts.maintenance[0].timezone, chrono_tz::Europe::Berlin);
    }
}
