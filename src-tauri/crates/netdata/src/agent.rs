//! Netdata agent client: the only place that knows Netdata's HTTP API, its chart names and the
//! formulas that turn its dimensions into dsmon's four metrics.
//!
//! Facts this relies on (Netdata 1.37, API v1):
//! - `/api/v1/data` answers `{"labels": ["time", dim...], "data": [[t, v...]]}` (under `result` with
//!   `options=jsonwrap`); labels are dimension *names*, so values are read by label, never by index.
//! - `options=unaligned` is required for a window that does not fall on a multiple of its length,
//!   `options=absolute` makes `sent` positive.
//! - 1.37 closes the connection unless the request says `Connection: keep-alive`.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};

use dsmon_config::NodeConfig;
pub use dsmon_core::Metrics;

/// Largest response body accepted (a data answer is about 1 KB, `/api/v1/info` about 5 KB).
const MAX_BODY: usize = 1 << 20;
/// A point older than this (or than three of the agent's update periods) is stale.
const STALE_AFTER_SECS: i64 = 5;

#[derive(Debug, Clone, thiserror::Error)]
pub enum NetdataError {
    #[error("connection failed: {0}")]
    Connect(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("request failed: {0}")]
    Request(String),
    #[error("{chart}: HTTP {status}")]
    Http { chart: String, status: StatusCode },
    /// Netdata answers 404 both for an unknown chart and for a range in which it has no points.
    #[error("{chart}: no data (the agent has no such chart, or no points in the interval)")]
    ChartNotFound { chart: String },
    #[error("{chart}: unexpected answer: {reason}")]
    Parse { chart: String, reason: String },
    #[error("{chart}: no data in the requested time range")]
    NoData { chart: String },
    #[error("{chart}: stale data (newest point is {age_secs} s old)")]
    Stale { chart: String, age_secs: i64 },
    #[error("cannot read CA file {path}: {reason}")]
    CaFile { path: String, reason: String },
    /// The interval ended before the agent's first stored point of the chart: the agent (or the
    /// chart) did not exist yet. Only a window's average can be "not yet"; whether the node counts
    /// as not monitored yet or as down is the engine's call (it knows whether it logged the node
    /// before).
    #[error(
        "{chart}: no data yet (the agent's first point is at {first_entry}, after the interval)"
    )]
    NotYet { chart: String, first_entry: i64 },
    /// A child listed by its parent as not connected (or no longer listed): not polled.
    #[error("not streaming to {parent}")]
    NotStreaming { parent: String },
}

impl NetdataError {
    /// The error a "not yet" window is reported as when the node was monitored before (the agent
    /// lost its database): Netdata's own answer, no data in the interval.
    pub fn not_yet_as_no_data(self) -> Self {
        match self {
            NetdataError::NotYet { chart, .. } => NetdataError::ChartNotFound { chart },
            other => other,
        }
    }
}

pub type Result<T> = std::result::Result<T, NetdataError>;

/// What `/api/v1/info` tells about an agent.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct AgentInfo {
    pub version: String,
    #[serde(default)]
    pub mirrored_hosts: Vec<String>,
    /// Every host the agent holds, itself included (`hops` 0); a parent's children have `hops` >= 1.
    #[serde(default)]
    pub mirrored_hosts_status: Vec<MirroredHost>,
}

/// One entry of `mirrored_hosts_status` (Netdata 1.37: `guid`, `hostname`, `reachable`, `hops`,
/// `claim_id`, `node_id`; only the first four are read).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct MirroredHost {
    #[serde(default, deserialize_with = "null_as_default")]
    pub guid: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub hostname: String,
    /// Whether the host is streaming to this agent now (always true for the agent itself).
    #[serde(default, deserialize_with = "null_as_default")]
    pub reachable: bool,
    /// 0 for the agent itself, 1 for a direct child, more through a chain of parents.
    #[serde(default, deserialize_with = "null_as_default")]
    pub hops: i64,
}

fn null_as_default<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

impl AgentInfo {
    /// The hosts that stream to this agent (directly or through other parents): every host but
    /// the agent itself, without entries lacking a guid.
    pub fn children(&self) -> impl Iterator<Item = &MirroredHost> {
        self.mirrored_hosts_status
            .iter()
            .filter(|h| h.hops != 0 && !h.guid.trim().is_empty())
    }
}

/// Which samples to ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// The newest one-second point.
    Latest,
    /// The average over the `secs` seconds that end at Unix time `end`.
    Average { end: i64, secs: u64 },
}

/// The four charts behind the metrics, for one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chart {
    Cpu,
    Ram,
    Disk,
    Net,
}

/// One configured agent.
#[derive(Debug, Clone)]
pub struct Agent {
    name: String,
    base: Url,
    disk_chart: String,
    net_chart: String,
    http: reqwest::Client,
}

/// Builds HTTP clients: one shared by every plain/system-trusted agent, one per extra CA file.
pub struct ClientPool {
    connect_timeout: Duration,
    shared: reqwest::Client,
    by_ca: HashMap<std::path::PathBuf, reqwest::Client>,
}

impl ClientPool {
    /// `connect_timeout` bounds TCP connects; the whole-poll budget is the caller's (see `collector`).
    pub fn new(connect_timeout: Duration) -> Result<Self> {
        Ok(Self {
            connect_timeout,
            shared: build_client(connect_timeout, None)?,
            by_ca: HashMap::new(),
        })
    }

    pub fn agent(&mut self, node: &NodeConfig) -> Result<Agent> {
        let http = match &node.ca_file {
            None => self.shared.clone(),
            Some(path) => {
                if let Some(c) = self.by_ca.get(path) {
                    c.clone()
                } else {
                    let c = build_client(self.connect_timeout, Some(path))?;
                    self.by_ca.insert(path.clone(), c.clone());
                    c
                }
            }
        };
        Ok(Agent::new(node, http))
    }
}

fn build_client(connect: Duration, ca_file: Option<&Path>) -> Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::CONNECTION,
        reqwest::header::HeaderValue::from_static("keep-alive"),
    );
    let mut b = reqwest::Client::builder()
        .user_agent(concat!("dsmon/", env!("CARGO_PKG_VERSION")))
        .default_headers(headers)
        .connect_timeout(connect)
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(90))
        .redirect(reqwest::redirect::Policy::none());
    if let Some(path) = ca_file {
        let ca_err = |reason: String| NetdataError::CaFile {
            path: path.display().to_string(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|e| ca_err(e.to_string()))?;
        let certs =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ca_err(e.to_string()))?;
        if certs.is_empty() {
            return Err(ca_err("no PEM certificate in the file".into()));
        }
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    b.build()
        .map_err(|e| NetdataError::Request(error_chain(&e)))
}

/// Netdata's chart id for the disk-space chart of a mount point: `/` -> `disk_space._`,
/// `/srv/data` -> `disk_space._srv_data`.
pub fn disk_chart_for(mount: &str) -> String {
    let id: String = mount
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("disk_space.{id}")
}

/// The network chart: one interface, or every physical interface (`system.net`).
pub fn net_chart_for(interface: Option<&str>) -> String {
    match interface {
        Some(i) => format!("net.{i}"),
        None => "system.net".to_string(),
    }
}

impl Agent {
    pub fn new(node: &NodeConfig, http: reqwest::Client) -> Self {
        let mut base = node.url.clone();
        if !base.path().ends_with('/') {
            let p = format!("{}/", base.path());
            base.set_path(&p);
        }
        Self {
            name: node.name.clone(),
            base,
            disk_chart: disk_chart_for(&node.disk),
            net_chart: net_chart_for(node.interface.as_deref()),
            http,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn url(&self) -> &Url {
        &self.base
    }

    /// The agent's own dashboard, as a link anyone signed in to dsmon may see: the agent URL (for a
    /// node behind a streaming parent, the parent's `/host/<name>/`, where Netdata serves that
    /// node's dashboard), scheme, host, port and path only: no credentials, query or fragment.
    pub fn dashboard_url(&self) -> String {
        let mut u = self.base.clone();
        let _ = u.set_username("");
        let _ = u.set_password(None);
        u.set_query(None);
        u.set_fragment(None);
        u.to_string()
    }

    fn chart_id(&self, chart: Chart) -> &str {
        match chart {
            Chart::Cpu => "system.cpu",
            Chart::Ram => "system.ram",
            Chart::Disk => &self.disk_chart,
            Chart::Net => &self.net_chart,
        }
    }

    /// Polls the four charts concurrently and computes the metrics.
    pub async fn metrics(&self, window: Window) -> Result<Metrics> {
        let (cpu, ram, disk, net) = tokio::try_join!(
            self.chart(Chart::Cpu, window),
            self.chart(Chart::Ram, window),
            self.chart(Chart::Disk, window),
            self.chart(Chart::Net, window),
        )?;
        let (net_in_kbps, net_out_kbps) = net_kbps(&net)?;
        Ok(Metrics {
            cpu_pct: cpu_pct(&cpu)?,
            mem_pct: mem_pct(&ram)?,
            disk_pct: disk_pct(&disk)?,
            net_in_kbps,
            net_out_kbps,
        }
        .rounded())
    }

    /// The agent's version and the hosts it holds.
    pub async fn info(&self) -> Result<AgentInfo> {
        let url = self.endpoint("api/v1/info")?;
        let (_, body) = self.get(url, "info").await?;
        serde_json::from_slice(&body).map_err(|e| NetdataError::Parse {
            chart: "info".into(),
            reason: e.to_string(),
        })
    }

    /// When the agent's stored data of a chart starts (`first_entry` of `/api/v1/chart`, Unix
    /// seconds); `None` when the agent does not know the chart.
    async fn first_entry(&self, id: &str) -> Result<Option<i64>> {
        let mut url = self.endpoint("api/v1/chart")?;
        url.query_pairs_mut().append_pair("chart", id);
        let body = match self.get(url, id).await {
            Ok((_, body)) => body,
            Err(NetdataError::Http { status, .. }) if status == StatusCode::NOT_FOUND => {
                return Ok(None)
            }
            Err(e) => return Err(e),
        };
        parse_first_entry(id, &body)
    }

    fn endpoint(&self, path: &str) -> Result<Url> {
        self.base
            .join(path)
            .map_err(|e| NetdataError::Request(format!("bad URL: {e}")))
    }

    async fn chart(&self, chart: Chart, window: Window) -> Result<Table> {
        let id = self.chart_id(chart);
        let mut url = self.endpoint("api/v1/data")?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("chart", id);
            match window {
                Window::Latest => {
                    q.append_pair("after", "-1");
                }
                Window::Average { end, secs } => {
                    q.append_pair("after", &(end - secs as i64).to_string());
                    q.append_pair("before", &end.to_string());
                }
            }
            q.append_pair("points", "1");
            q.append_pair("group", "average");
            q.append_pair("format", "json");
            q.append_pair("options", "jsonwrap|unaligned|absolute");
        }
        let answer = self.get(url, id).await.and_then(|(now, body)| {
            let table = parse_data(id, &body)?;
            Ok((now, table))
        });
        let (agent_now, table) = match (answer, window) {
            // Netdata answers 404 (or an empty table) for a window before its first point: ask the
            // chart when its data starts, to tell "did not exist yet" from "no data then".
            (
                Err(e @ (NetdataError::ChartNotFound { .. } | NetdataError::NoData { .. })),
                Window::Average { end, .. },
            ) => {
                return Err(match self.first_entry(id).await {
                    Ok(Some(first_entry)) if first_entry > end => NetdataError::NotYet {
                        chart: id.to_string(),
                        first_entry,
                    },
                    _ => e,
                });
            }
            // A fresh agent may also answer a window before its first point with a row of nulls
            // (seen for `net.<iface>`): its `first_entry` tells.
            (Ok((_, table)), Window::Average { end, .. })
                if table.first_entry.is_some_and(|first| first > end) =>
            {
                return Err(NetdataError::NotYet {
                    chart: id.to_string(),
                    first_entry: table.first_entry.unwrap_or_default(),
                });
            }
            (answer, _) => answer?,
        };
        let reference = match window {
            Window::Latest => agent_now.unwrap_or_else(|| chrono::Utc::now().timestamp()),
            Window::Average { end, .. } => end,
        };
        table.check_fresh(id, reference)?;
        Ok(table)
    }

    /// GETs a URL; returns the agent's clock (from its `Date` header) and the body.
    async fn get(&self, url: Url, what: &str) -> Result<(Option<i64>, Vec<u8>)> {
        let mut resp = self.http.get(url).send().await.map_err(classify)?;
        let status = resp.status();
        let date = resp
            .headers()
            .get(reqwest::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| chrono::DateTime::parse_from_rfc2822(s).ok())
            .map(|d| d.timestamp());
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(classify)? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(NetdataError::Parse {
                    chart: what.to_string(),
                    reason: format!("response larger than {MAX_BODY} bytes"),
                });
            }
            body.extend_from_slice(&chunk);
        }
        if status == StatusCode::NOT_FOUND && body.starts_with(b"No metrics where matched") {
            return Err(NetdataError::ChartNotFound {
                chart: what.to_string(),
            });
        }
        if !status.is_success() {
            return Err(NetdataError::Http {
                chart: what.to_string(),
                status,
            });
        }
        Ok((date, body))
    }
}

/// Turns a reqwest error into a short, secret-free description with its root cause.
fn classify(e: reqwest::Error) -> NetdataError {
    if e.is_connect() {
        return NetdataError::Connect(root_cause(&e));
    }
    NetdataError::Request(error_chain(&e))
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![strip_url(&e.to_string())];
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if parts.last() != Some(&t) {
            parts.push(t);
        }
        cur = s.source();
    }
    parts.join(": ")
}

/// reqwest puts the full URL in its messages; the node is named elsewhere, so drop it.
fn strip_url(s: &str) -> String {
    match s.find(" for url (") {
        Some(i) => s[..i].to_string(),
        None => s.to_string(),
    }
}

// ---- parsing -------------------------------------------------------------------------------

/// One row of a `/api/v1/data` answer, by label.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub time: i64,
    /// Seconds between the agent's points.
    pub update_every: i64,
    /// The chart's first stored point (`jsonwrap` answers only; 0 or absent: `None`).
    pub first_entry: Option<i64>,
    pub values: Vec<(String, Option<f64>)>,
}

#[derive(Deserialize)]
struct Wrapped {
    #[serde(default)]
    update_every: Option<i64>,
    #[serde(default)]
    first_entry: Option<i64>,
    #[serde(default)]
    result: Option<Inner>,
    #[serde(default)]
    labels: Option<Vec<String>>,
    #[serde(default)]
    data: Option<Vec<Vec<Option<f64>>>>,
}

#[derive(Deserialize)]
struct Inner {
    labels: Vec<String>,
    data: Vec<Vec<Option<f64>>>,
}

/// Parses a data answer (plain or `jsonwrap`) into its newest row.
pub fn parse_data(chart: &str, body: &[u8]) -> Result<Table> {
    let bad = |reason: String| NetdataError::Parse {
        chart: chart.to_string(),
        reason,
    };
    let w: Wrapped =
        serde_json::from_slice(body).map_err(|e| bad(format!("not Netdata JSON ({e})")))?;
    let (labels, data) = match (w.result, w.labels, w.data) {
        (Some(r), _, _) => (r.labels, r.data),
        (None, Some(l), Some(d)) => (l, d),
        _ => return Err(bad("no labels/data table".into())),
    };
    if labels.first().map(String::as_str) != Some("time") {
        return Err(bad("first label is not \"time\"".into()));
    }
    // Newest row first; take the newest one that has a time.
    let row = data
        .into_iter()
        .next()
        .ok_or_else(|| NetdataError::NoData {
            chart: chart.to_string(),
        })?;
    if row.len() != labels.len() {
        return Err(bad(format!(
            "row has {} values for {} labels",
            row.len(),
            labels.len()
        )));
    }
    let time = row[0]
        .filter(|t| t.is_finite() && *t > 0.0)
        .ok_or_else(|| bad("row without a time".into()))? as i64;
    let values = labels
        .into_iter()
        .zip(row)
        .skip(1)
        .map(|(l, v)| (l, v.filter(|x| x.is_finite())))
        .collect();
    Ok(Table {
        time,
        update_every: w.update_every.unwrap_or(1).max(1),
        first_entry: w.first_entry.filter(|t| *t > 0),
        values,
    })
}

/// The `first_entry` of a `/api/v1/chart` answer (0 or absent: no data stored yet).
pub fn parse_first_entry(chart: &str, body: &[u8]) -> Result<Option<i64>> {
    #[derive(Deserialize)]
    struct ChartInfo {
        #[serde(default)]
        first_entry: Option<i64>,
    }
    let c: ChartInfo = serde_json::from_slice(body).map_err(|e| NetdataError::Parse {
        chart: chart.to_string(),
        reason: format!("not Netdata JSON ({e})"),
    })?;
    Ok(c.first_entry.filter(|t| *t > 0))
}

impl Table {
    fn require(&self, chart: &str, label: &str) -> Result<f64> {
        match self.values.iter().find(|(l, _)| l == label) {
            None => Err(NetdataError::Parse {
                chart: chart.to_string(),
                reason: format!("no dimension {label:?}"),
            }),
            Some((_, None)) => Err(NetdataError::NoData {
                chart: chart.to_string(),
            }),
            Some((_, Some(v))) => Ok(*v),
        }
    }

    /// Whether the row is recent enough at `reference` (the tick, or the agent's own clock).
    pub fn check_fresh(&self, chart: &str, reference: i64) -> Result<()> {
        // Both numbers come from the agent: no overflow on absurd values.
        let allowed = STALE_AFTER_SECS.max(self.update_every.saturating_mul(3));
        let age = reference.saturating_sub(self.time);
        if age > allowed {
            return Err(NetdataError::Stale {
                chart: chart.to_string(),
                age_secs: age,
            });
        }
        Ok(())
    }
}

/// CPU %: the sum of every returned dimension (`idle` is hidden by Netdata; skipped if present).
pub fn cpu_pct(t: &Table) -> Result<f64> {
    let mut any = false;
    let mut sum = 0.0;
    for (label, v) in &t.values {
        if label == "idle" {
            continue;
        }
        if let Some(v) = v {
            any = true;
            sum += v;
        }
    }
    if !any {
        return Err(NetdataError::NoData {
            chart: "system.cpu".into(),
        });
    }
    Ok(sum)
}

/// Memory %: used / (free + used + cached + buffers), i.e. used over the sum of all dimensions.
pub fn mem_pct(t: &Table) -> Result<f64> {
    let used = t.require("system.ram", "used")?;
    t.require("system.ram", "free")?;
    let total: f64 = t.values.iter().filter_map(|(_, v)| *v).sum();
    ratio("system.ram", used, total)
}

/// Disk %: used / (used + avail), as `df` shows it (space reserved for root is not counted).
pub fn disk_pct(t: &Table) -> Result<f64> {
    let used = t.require("disk_space", "used")?;
    let avail = t.require("disk_space", "avail")?;
    ratio("disk_space", used, used + avail)
}

/// Network in and out, kbit/s (asked with `absolute`, so `sent` is positive; made so regardless).
pub fn net_kbps(t: &Table) -> Result<(f64, f64)> {
    let rx = t.require("net", "received")?;
    let tx = t.require("net", "sent")?;
    Ok((rx.abs(), tx.abs()))
}

fn ratio(chart: &str, part: f64, whole: f64) -> Result<f64> {
    if whole <= 0.0 || part < 0.0 {
        return Err(NetdataError::Parse {
            chart: chart.to_string(),
            reason: format!("cannot compute a share of {part} in {whole}"),
        });
    }
    Ok(part / whole * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/netdata-1.37")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn table(name: &str) -> Table {
        parse_data("test", &fixture(name)).unwrap()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6
    }

    #[test]
    fn cpu_is_the_sum_of_dimensions() {
        let t = table("data_system.cpu_points1.json");
        assert_eq!(t.time, 1795526029);
        assert!(close(cpu_pct(&t).unwrap(), 50.5));
    }

    #[test]
    fn jsonwrap_window_average() {
        let t = table("data_system.cpu_abs_window_avg.json");
        assert_eq!(t.time, 1795526527);
        let want = 0.1015839 + 0.1885303 + 49.5086393 + 12.456195 + 0.9004577 + 0.6455061;
        assert!(close(cpu_pct(&t).unwrap(), want));
    }

    #[test]
    fn aligned_window_is_null_and_reported_as_no_data() {
        let t = table("data_system.cpu_avg_jsonwrap.json");
        assert!(matches!(cpu_pct(&t), Err(NetdataError::NoData { .. })));
    }

    #[test]
    fn memory_used_share() {
        let t = table("data_system.ram_points1.json");
        let total = 23094.09 + 129.77344 + 873.0352 + 8.664062;
        assert!(close(mem_pct(&t).unwrap(), 129.77344 / total * 100.0));
    }

    #[test]
    fn disk_is_df_style_and_ignores_reserved() {
        let t = table("data_disk_space._points1.json");
        assert!(t.values.iter().any(|(l, _)| l == "reserved for root"));
        assert!(close(
            disk_pct(&t).unwrap(),
            11.528973 / (11.528973 + 79.34273) * 100.0
        ));
        let t = table("data_disk_space_tmpfs_fixture.json");
        assert!((disk_pct(&t).unwrap() - 25.0).abs() < 0.01);
    }

    #[test]
    fn network_by_label_and_positive() {
        let t = table("data_net.eth0_traffic_absolute.json");
        let (rx, tx) = net_kbps(&t).unwrap();
        assert!(close(rx, 857.9709) && close(tx, 7.679843));
        // Without `absolute`, `sent` comes negative; it is still reported as a positive rate.
        let t = table("data_net.eth0_traffic.json");
        let (_, tx) = net_kbps(&t).unwrap();
        assert!(tx >= 0.0);
    }

    #[test]
    fn labels_not_positions() {
        // The same values with the columns in another order give the same answer.
        let body = br#"{"labels":["time","sent","received"],"data":[[100,-20,10]]}"#;
        let t = parse_data("net", body).unwrap();
        assert_eq!(net_kbps(&t).unwrap(), (10.0, 20.0));
    }

    #[test]
    fn staleness() {
        let t = table("data_system.ram_points1.json");
        assert!(t.check_fresh("system.ram", t.time + 2).is_ok());
        let absurd = Table {
            update_every: i64::MAX,
            ..t.clone()
        };
        assert!(absurd.check_fresh("system.ram", i64::MIN).is_ok());
        assert!(t.check_fresh("system.ram", i64::MAX).is_err());
        assert!(matches!(
            t.check_fresh("system.ram", t.time + 60),
            Err(NetdataError::Stale { age_secs: 60, .. })
        ));
    }

    #[test]
    fn garbage_is_a_parse_error() {
        for body in [
            &b"No metrics where matched to query."[..],
            b"{}",
            b"{\"labels\":[\"x\"],\"data\":[[1]]}",
            b"{\"labels\":[\"time\",\"a\"],\"data\":[[1]]}",
            b"<html>",
            b"",
        ] {
            assert!(
                matches!(parse_data("c", body), Err(NetdataError::Parse { .. })),
                "{body:?}"
            );
        }
        assert!(matches!(
            parse_data("c", b"{\"labels\":[\"time\",\"a\"],\"data\":[]}"),
            Err(NetdataError::NoData { .. })
        ));
    }

    #[test]
    fn a_dashboard_link_carries_no_credentials() {
        let agent = |url: &str| {
            let mut node: NodeConfig = dsmon_config::parse(
                "[[nodes]]\nname = \"n\"\nurl = \"http://127.0.0.1:19999\"\n",
                std::path::Path::new("/tmp/x.toml"),
            )
            .unwrap()
            .nodes
            .remove(0);
            // Whatever the configuration allows, the link never carries more than this.
            node.url = Url::parse(url).unwrap();
            Agent::new(&node, reqwest::Client::new())
        };
        assert_eq!(
            agent("https://monitor:s3cret@parent.example:19999/host/node7?x=1#y").dashboard_url(),
            "https://parent.example:19999/host/node7/"
        );
        assert_eq!(
            agent("http://127.0.0.1:19991").dashboard_url(),
            "http://127.0.0.1:19991/"
        );
    }

    #[test]
    fn first_entry_of_a_chart() {
        let body =
            br#"{"id":"system.cpu","duration":9,"first_entry":1796036556,"last_entry":1796036565}"#;
        assert_eq!(
            parse_first_entry("system.cpu", body).unwrap(),
            Some(1796036556)
        );
        assert_eq!(
            parse_first_entry("c", br#"{"first_entry":0}"#).unwrap(),
            None
        );
        assert_eq!(parse_first_entry("c", b"{}").unwrap(), None);
        // A data answer's jsonwrap carries it too (a fresh agent answers a window before its
        // first point with a row of nulls for `net.<iface>`).
        let t = parse_data(
            "net.eth0",
            br#"{"first_entry":1796038201,"result":{"labels":["time","received"],"data":[[1796038200,null]]}}"#,
        )
        .unwrap();
        assert_eq!(t.first_entry, Some(1796038201));
        assert!(matches!(
            parse_first_entry("c", b"Chart is not found: c"),
            Err(NetdataError::Parse { .. })
        ));
        let not_yet = NetdataError::NotYet {
            chart: "system.cpu".into(),
            first_entry: 5,
        };
        assert!(matches!(
            not_yet.not_yet_as_no_data(),
            NetdataError::ChartNotFound { chart } if chart == "system.cpu"
        ));
    }

    #[test]
    fn info_fixture() {
        let i: AgentInfo = serde_json::from_slice(&fixture("info.json")).unwrap();
        assert_eq!(i.version, "v1.37.1");
        assert_eq!(i.mirrored_hosts, vec!["node1".to_string()]);
    }

    #[test]
    fn parent_info_fixture_lists_children() {
        // Recorded from a 1.37 parent with two children, `ch1` stopped half a second before.
        let i: AgentInfo = serde_json::from_slice(&fixture("info_parent.json")).unwrap();
        assert_eq!(i.mirrored_hosts, vec!["par", "ch2", "ch1"]);
        let children: Vec<_> = i.children().collect();
        assert_eq!(
            children.len(),
            2,
            "the parent itself (hops 0) is not a child"
        );
        assert_eq!(
            children[0],
            &MirroredHost {
                guid: "9a3a7ce4-ecad-11f1-82ce-02fc00000001".into(),
                hostname: "ch2".into(),
                reachable: true,
                hops: 1,
            }
        );
        assert_eq!(
            (children[1].hostname.as_str(), children[1].reachable),
            ("ch1", false)
        );
        // A standalone agent lists only itself.
        let i: AgentInfo = serde_json::from_slice(&fixture("info.json")).unwrap();
        assert_eq!(i.children().count(), 0);
        // Missing or odd fields are no panic: an entry without a guid is skipped, a wrong type fails.
        let i: AgentInfo = serde_json::from_slice(
            br#"{"version":"v1","mirrored_hosts_status":[{"guid":null,"hostname":"x","hops":1}]}"#,
        )
        .unwrap();
        assert_eq!(i.children().count(), 0);
        assert!(serde_json::from_slice::<AgentInfo>(
            br#"{"version":"v1","mirrored_hosts_status":[{"guid":1}]}"#
        )
        .is_err());
    }

    #[test]
    fn chart_ids() {
        assert_eq!(disk_chart_for("/"), "disk_space._");
        assert_eq!(disk_chart_for("/srv/data"), "disk_space._srv_data");
        assert_eq!(net_chart_for(None), "system.net");
        assert_eq!(net_chart_for(Some("eth0")), "net.eth0");
    }
}
