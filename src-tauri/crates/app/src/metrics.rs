//! The Prometheus exposition of `GET /metrics`: every node's state and latest values from the live
//! snapshot, and dsmon's own outcomes from the engine's internal events
//! ([`dsmon_engine::events::counters`]), never from log text.
//!
//! It is built per scrape from the current values (a `prometheus-client` collector over a copy of
//! them), so nothing here keeps state. Who may scrape is the adapter's business (a bearer token or
//! a loopback-only listener, see `dsmon-server`); this module only renders.
//!
//! Units follow Prometheus' conventions: ratios 0..1 (the engine keeps percent), bits per second
//! (the engine keeps kbit/s), seconds.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use dsmon_core::{Metrics, NodeState};
use dsmon_engine::events::{counters, CountersSnapshot};
use dsmon_engine::LiveSnapshot;

use crate::{AppError, Result};

/// The text formats `/metrics` can answer in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text (what Prometheus asks for first).
    OpenMetrics,
    /// The classic Prometheus text format 0.0.4 (for clients that do not ask for OpenMetrics).
    Prometheus,
}

impl Format {
    /// The `Content-Type` of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        }
    }
}

/// Notifications delivered and failed by one type of notifier (`email`, `webhook`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifierDeliveries {
    /// The notifier type: the `notifier` label's value.
    pub notifier: String,
    pub sent: u64,
    pub failed: u64,
}

/// What the exposition shows beyond the engine's counters and the live snapshot, passed in by the
/// caller: the notifications delivered (from the alerts' delivery counters) and whether this
/// instance is the leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraCounters {
    /// By notifier type; none yet: the notification families are shown without series.
    pub notifications: Vec<NotifierDeliveries>,
    /// This instance runs the logger and alerts (always, for a single instance).
    pub leader: bool,
}

impl ExtraCounters {
    /// This process's: the alerts' delivery counters by notifier type, as the leader (a single
    /// instance always is).
    pub fn of_this_process() -> Self {
        Self {
            notifications: dsmon_alerts::notify::delivery_counters()
                .by_type
                .into_iter()
                .map(|c| NotifierDeliveries {
                    notifier: c.notifier_type.to_string(),
                    sent: c.sent,
                    failed: c.failed,
                })
                .collect(),
            leader: true,
        }
    }

    /// A single instance (no shared database): the leader, with no notifications counted.
    pub fn single_instance() -> Self {
        Self {
            notifications: Vec::new(),
            leader: true,
        }
    }
}

/// The exposition of `snapshot`, the engine's counters as of now and `extra`, in `format`.
pub fn render(snapshot: &LiveSnapshot, extra: &ExtraCounters, format: Format) -> Result<String> {
    render_with(snapshot, &counters().snapshot(), extra, format)
}

/// The same with given engine counters (tests, benchmarks).
pub fn render_with(
    snapshot: &LiveSnapshot,
    engine: &CountersSnapshot,
    extra: &ExtraCounters,
    format: Format,
) -> Result<String> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Exposition {
        nodes: snapshot
            .nodes
            .iter()
            .map(|n| NodeValues {
                name: n.name.clone(),
                up: n.state == NodeState::Up,
                metrics: n.metrics.filter(|_| n.state == NodeState::Up),
            })
            .collect(),
        engine: engine.clone(),
        extra: extra.clone(),
    }));
    // About 600 bytes per node.
    let mut out = String::with_capacity(4096 + snapshot.nodes.len() * 640);
    let encoded = match format {
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &registry),
        Format::Prometheus => {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
        }
    };
    encoded.map_err(|_| AppError::internal("cannot encode the metrics"))?;
    Ok(out)
}

/// One node as exposed.
#[derive(Debug)]
struct NodeValues {
    name: String,
    /// Its last poll succeeded (a pending node, not polled yet, is not up).
    up: bool,
    /// Latest values; only for an up node.
    metrics: Option<Metrics>,
}

/// The values of one scrape.
#[derive(Debug)]
struct Exposition {
    nodes: Vec<NodeValues>,
    engine: CountersSnapshot,
    extra: ExtraCounters,
}

/// A node gauge: its name, help, and value from the node's metrics.
type NodeGauge = (&'static str, &'static str, fn(&Metrics) -> f64);

/// The per-node gauges beside `dsmon_node_up`.
const NODE_GAUGES: [NodeGauge; 5] = [
    (
        "dsmon_node_cpu_ratio",
        "CPU use over all cores, 0..1.",
        |m| ratio(m.cpu_pct),
    ),
    (
        "dsmon_node_memory_used_ratio",
        "Memory used, share of the total, 0..1.",
        |m| ratio(m.mem_pct),
    ),
    (
        "dsmon_node_disk_used_ratio",
        "Disk used, share of used + available (as df shows it), 0..1.",
        |m| ratio(m.disk_pct),
    ),
    (
        "dsmon_node_network_receive_bits_per_second",
        "Network received, bits per second.",
        |m| bits(m.net_in_kbps),
    ),
    (
        "dsmon_node_network_transmit_bits_per_second",
        "Network sent, bits per second.",
        |m| bits(m.net_out_kbps),
    ),
];

/// Percent to a ratio within 0..1.
fn ratio(pct: f64) -> f64 {
    (pct / 100.0).clamp(0.0, 1.0)
}

/// kbit/s (Netdata's kilobits, 1000 bits) to bit/s.
fn bits(kbps: f64) -> f64 {
    (kbps * 1000.0).max(0.0)
}

type Enc<'a> = std::result::Result<MetricEncoder<'a>, std::fmt::Error>;

fn descriptor<'a>(
    e: &'a mut DescriptorEncoder,
    name: &'a str,
    help: &str,
    kind: MetricType,
) -> Enc<'a> {
    e.encode_descriptor(name, help, None, kind)
}

fn counter(m: &mut MetricEncoder, v: u64) -> std::fmt::Result {
    m.encode_counter::<NoLabelSet, u64, u64>(&v, None)
}

impl Collector for Exposition {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        // Nodes.
        let mut m = descriptor(
            &mut e,
            "dsmon_node_up",
            "1 when the node's last live poll succeeded, else 0 (down, or not polled yet).",
            MetricType::Gauge,
        )?;
        for n in &self.nodes {
            m.encode_family(&[("node", n.name.as_str())])?
                .encode_gauge(&i64::from(n.up))?;
        }
        for (name, help, value) in NODE_GAUGES {
            let mut m = descriptor(&mut e, name, help, MetricType::Gauge)?;
            for n in &self.nodes {
                let Some(v) = n.metrics.as_ref().map(value).filter(|v| v.is_finite()) else {
                    continue;
                };
                m.encode_family(&[("node", n.name.as_str())])?
                    .encode_gauge(&v)?;
            }
        }

        // dsmon's own outcomes.
        let c = &self.engine;
        let mut m = descriptor(
            &mut e,
            "dsmon_poll_duration_seconds",
            "How long polling a node took (live polls and logging ticks), failed polls included.",
            MetricType::Histogram,
        )?;
        // The engine keeps cumulative counts; the encoder takes each bucket's own.
        let mut below = 0;
        let buckets: Vec<(f64, u64)> = c
            .poll_buckets
            .iter()
            .map(|&(bound, cumulative)| {
                let own = cumulative.saturating_sub(below);
                below = below.max(cumulative);
                (bound, own)
            })
            .collect();
        let count = c.poll_buckets.last().map_or(0, |&(_, n)| n);
        m.encode_histogram::<NoLabelSet>(c.poll_seconds_sum, count, &buckets, None)?;

        let mut m = descriptor(
            &mut e,
            "dsmon_poll_errors",
            "Polls that failed, by kind of failure.",
            MetricType::Counter,
        )?;
        for (kind, n) in &c.polls_failed {
            counter(&mut m.encode_family(&[("kind", kind.as_str())])?, *n)?;
        }

        let counters: [(&str, &str, u64); 10] = [
            ("dsmon_polls_succeeded", "Polls that succeeded.", c.polls_ok),
            (
                "dsmon_node_state_changes",
                "Node state changes (up, down).",
                c.state_changes,
            ),
            (
                "dsmon_ticks_logged",
                "Logging ticks whose rows were written.",
                c.ticks_logged,
            ),
            (
                "dsmon_rows_written",
                "Rows written to the database.",
                c.rows_written,
            ),
            (
                "dsmon_rows_not_yet",
                "Rows not written because the node's agent had no data yet for the interval (not monitored yet).",
                c.rows_not_yet,
            ),
            (
                "dsmon_rows_dropped",
                "Rows given up because the database did not take writes for too long.",
                c.rows_dropped,
            ),
            (
                "dsmon_database_write_failures",
                "Failed attempts to write rows to the database.",
                c.write_failures,
            ),
            (
                "dsmon_ticks_failed",
                "Logging ticks that could not be polled or written at all.",
                c.ticks_failed,
            ),
            (
                "dsmon_ticks_skipped",
                "Logging ticks skipped after the clock jumped or the process was suspended.",
                c.ticks_skipped,
            ),
            (
                "dsmon_clock_steps",
                "Wall clock steps (back, or forward past a tick) seen by the logger.",
                c.clock_steps,
            ),
        ];
        for (name, help, v) in counters {
            counter(&mut descriptor(&mut e, name, help, MetricType::Counter)?, v)?;
        }
        descriptor(
            &mut e,
            "dsmon_rows_buffered",
            "Rows kept in memory because the database does not take writes.",
            MetricType::Gauge,
        )?
        .encode_gauge(&c.rows_held)?;

        // Notifications and leadership, as passed in.
        for (name, help, value) in [
            (
                "dsmon_notifications_sent",
                "Notifications delivered, by notifier type.",
                (|d| d.sent) as fn(&NotifierDeliveries) -> u64,
            ),
            (
                "dsmon_notifications_failed",
                "Notifications that could not be delivered (after retries), by notifier type.",
                |d| d.failed,
            ),
        ] {
            let mut m = descriptor(&mut e, name, help, MetricType::Counter)?;
            for d in &self.extra.notifications {
                counter(
                    &mut m.encode_family(&[("notifier", d.notifier.as_str())])?,
                    value(d),
                )?;
            }
        }
        descriptor(
            &mut e,
            "dsmon_leader",
            "1 when this instance runs the logger and alerts (always, for a single instance).",
            MetricType::Gauge,
        )?
        .encode_gauge(&i64::from(self.extra.leader))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsmon_engine::events::PollErrorKind;
    use dsmon_engine::NodeLive;

    fn metrics() -> Metrics {
        Metrics {
            cpu_pct: 40.0,
            mem_pct: 50.0,
            disk_pct: 25.0,
            net_in_kbps: 1000.0,
            net_out_kbps: 2000.0,
        }
    }

    fn node(name: &str, state: NodeState, metrics: Option<Metrics>) -> NodeLive {
        NodeLive {
            name: name.into(),
            state,
            since: Some(1),
            last_seen: metrics.map(|_| 1),
            last_error: metrics.is_none().then(|| "connection refused".into()),
            metrics,
            tags: Vec::new(),
        }
    }

    fn snapshot(nodes: Vec<NodeLive>) -> LiveSnapshot {
        LiveSnapshot {
            seq: 1,
            ts: 1,
            interval_ms: 1000,
            nodes,
        }
    }

    fn engine() -> CountersSnapshot {
        CountersSnapshot {
            polls_ok: 7,
            polls_failed: PollErrorKind::ALL
                .iter()
                .map(|k| (*k, u64::from(*k == PollErrorKind::Timeout) * 3))
                .collect(),
            // 10 polls: 4 within 5 ms, 6 more within 100 ms.
            poll_buckets: dsmon_engine::events::POLL_BUCKETS
                .iter()
                .copied()
                .chain([f64::INFINITY])
                .map(|b| (b, if b < 0.1 { 4 } else { 10 }))
                .collect(),
            poll_seconds_sum: 0.25,
            state_changes: 2,
            ticks_logged: 5,
            rows_written: 9,
            rows_not_yet: 2,
            rows_held: 4,
            rows_dropped: 0,
            write_failures: 1,
            ticks_failed: 0,
            ticks_skipped: 0,
            clock_steps: 0,
        }
    }

    /// The sample lines (not comments) of an exposition, as (series, value).
    fn samples(text: &str) -> Vec<(String, f64)> {
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                let (series, value) = l.rsplit_once(' ').expect("a value");
                (series.to_string(), value.parse().expect("a number"))
            })
            .collect()
    }

    fn value(text: &str, series: &str) -> Option<f64> {
        samples(text)
            .into_iter()
            .find(|(s, _)| s == series)
            .map(|(_, v)| v)
    }

    fn open(snap: &LiveSnapshot, extra: &ExtraCounters) -> String {
        render_with(snap, &engine(), extra, Format::OpenMetrics).expect("rendered")
    }

    #[test]
    fn node_values_are_ratios_and_bits_per_second() {
        let snap = snapshot(vec![node("alpha", NodeState::Up, Some(metrics()))]);
        let text = open(&snap, &ExtraCounters::single_instance());
        let want = [
            ("dsmon_node_up{node=\"alpha\"}", 1.0),
            ("dsmon_node_cpu_ratio{node=\"alpha\"}", 0.4),
            ("dsmon_node_memory_used_ratio{node=\"alpha\"}", 0.5),
            ("dsmon_node_disk_used_ratio{node=\"alpha\"}", 0.25),
            (
                "dsmon_node_network_receive_bits_per_second{node=\"alpha\"}",
                1e6,
            ),
            (
                "dsmon_node_network_transmit_bits_per_second{node=\"alpha\"}",
                2e6,
            ),
        ];
        for (series, v) in want {
            assert_eq!(value(&text, series), Some(v), "{series} in\n{text}");
        }
        for m in NODE_GAUGES {
            assert!(
                text.contains(&format!("# TYPE {} gauge\n", m.0)),
                "{}\n{text}",
                m.0
            );
        }
        assert!(text.ends_with("# EOF\n"), "OpenMetrics ends with EOF");
    }

    #[test]
    fn ratios_stay_within_0_and_1() {
        let m = Metrics {
            cpu_pct: 100.4,
            mem_pct: -0.1,
            disk_pct: 100.0,
            net_in_kbps: 0.0,
            net_out_kbps: -5.0,
        };
        let text = open(
            &snapshot(vec![node("a", NodeState::Up, Some(m))]),
            &ExtraCounters::single_instance(),
        );
        assert_eq!(value(&text, "dsmon_node_cpu_ratio{node=\"a\"}"), Some(1.0));
        assert_eq!(
            value(&text, "dsmon_node_memory_used_ratio{node=\"a\"}"),
            Some(0.0)
        );
        assert_eq!(
            value(
                &text,
                "dsmon_node_network_transmit_bits_per_second{node=\"a\"}"
            ),
            Some(0.0)
        );
        for (series, v) in samples(&text) {
            if series.contains("_ratio{") {
                assert!((0.0..=1.0).contains(&v), "{series} {v}");
            }
        }
    }

    #[test]
    fn a_down_or_pending_node_is_up_0_without_values() {
        let snap = snapshot(vec![
            node("up", NodeState::Up, Some(metrics())),
            node("down", NodeState::Down, None),
            node("pending", NodeState::Pending, None),
            // Inconsistent (values kept on a down node): still no values shown.
            node("stale", NodeState::Down, Some(metrics())),
        ]);
        let text = open(&snap, &ExtraCounters::single_instance());
        for n in ["down", "pending", "stale"] {
            assert_eq!(
                value(&text, &format!("dsmon_node_up{{node=\"{n}\"}}")),
                Some(0.0),
                "{n}"
            );
            let shown: Vec<_> = samples(&text)
                .into_iter()
                .filter(|(s, _)| s.contains(&format!("node=\"{n}\"")))
                .map(|(s, _)| s)
                .collect();
            assert_eq!(shown, [format!("dsmon_node_up{{node=\"{n}\"}}")], "{n}");
        }
        assert_eq!(value(&text, "dsmon_node_up{node=\"up\"}"), Some(1.0));
    }

    #[test]
    fn node_names_are_escaped() {
        let name = "we\"ird\\name\nx";
        let snap = snapshot(vec![node(name, NodeState::Up, Some(metrics()))]);
        for format in [Format::OpenMetrics, Format::Prometheus] {
            let text = render_with(&snap, &engine(), &ExtraCounters::single_instance(), format)
                .expect("rendered");
            assert!(
                text.contains("dsmon_node_up{node=\"we\\\"ird\\\\name\\nx\"} 1\n"),
                "{format:?}\n{text}"
            );
            assert!(!text.contains("name\nx"), "{format:?}: a raw newline");
        }
    }

    #[test]
    fn own_outcomes_come_from_the_engine_counters() {
        let text = open(&snapshot(vec![]), &ExtraCounters::single_instance());
        let want = [
            ("dsmon_poll_duration_seconds_bucket{le=\"0.005\"}", 4.0),
            ("dsmon_poll_duration_seconds_bucket{le=\"0.05\"}", 4.0),
            ("dsmon_poll_duration_seconds_bucket{le=\"0.1\"}", 10.0),
            ("dsmon_poll_duration_seconds_bucket{le=\"+Inf\"}", 10.0),
            ("dsmon_poll_duration_seconds_count", 10.0),
            ("dsmon_poll_duration_seconds_sum", 0.25),
            ("dsmon_poll_errors_total{kind=\"timeout\"}", 3.0),
            ("dsmon_poll_errors_total{kind=\"refused\"}", 0.0),
            ("dsmon_polls_succeeded_total", 7.0),
            ("dsmon_ticks_logged_total", 5.0),
            ("dsmon_rows_written_total", 9.0),
            ("dsmon_rows_not_yet_total", 2.0),
            ("dsmon_rows_buffered", 4.0),
            ("dsmon_database_write_failures_total", 1.0),
            ("dsmon_leader", 1.0),
        ];
        for (series, v) in want {
            assert_eq!(value(&text, series), Some(v), "{series} in\n{text}");
        }
        for kind in PollErrorKind::ALL {
            let s = format!("dsmon_poll_errors_total{{kind=\"{}\"}}", kind.as_str());
            assert!(value(&text, &s).is_some(), "{s}");
        }
        for t in [
            "# TYPE dsmon_poll_duration_seconds histogram",
            "# TYPE dsmon_poll_errors counter",
            "# TYPE dsmon_rows_buffered gauge",
            "# TYPE dsmon_leader gauge",
        ] {
            assert!(text.contains(t), "{t}");
        }
    }

    #[test]
    fn notifications_and_leader_are_what_is_passed() {
        let none = open(&snapshot(vec![]), &ExtraCounters::single_instance());
        for family in ["dsmon_notifications_sent", "dsmon_notifications_failed"] {
            assert!(
                none.contains(&format!("# TYPE {family} counter\n")),
                "{family}"
            );
            assert!(!none.contains(&format!("{family}_total")), "no series yet");
        }
        let extra = ExtraCounters {
            notifications: vec![
                NotifierDeliveries {
                    notifier: "email".into(),
                    sent: 3,
                    failed: 1,
                },
                NotifierDeliveries {
                    notifier: "webhook".into(),
                    sent: 0,
                    failed: 0,
                },
            ],
            leader: false,
        };
        let text = open(&snapshot(vec![]), &extra);
        let want = [
            ("dsmon_notifications_sent_total{notifier=\"email\"}", 3.0),
            ("dsmon_notifications_failed_total{notifier=\"email\"}", 1.0),
            ("dsmon_notifications_sent_total{notifier=\"webhook\"}", 0.0),
            (
                "dsmon_notifications_failed_total{notifier=\"webhook\"}",
                0.0,
            ),
            ("dsmon_leader", 0.0),
        ];
        for (series, v) in want {
            assert_eq!(value(&text, series), Some(v), "{series} in\n{text}");
        }
    }

    #[test]
    fn the_classic_text_format_has_the_same_series() {
        let snap = snapshot(vec![
            node("alpha", NodeState::Up, Some(metrics())),
            node("beta", NodeState::Down, None),
        ]);
        let extra = ExtraCounters::single_instance();
        let open = open(&snap, &extra);
        let classic = render_with(&snap, &engine(), &extra, Format::Prometheus).expect("rendered");
        assert!(!classic.contains("# EOF"));
        assert!(classic.contains("# TYPE dsmon_poll_errors_total counter\n"));
        // The same series and values; the order of a histogram's lines and how a bound is
        // written (`1.0`, `1`) differ between the formats.
        let sorted = |text: &str| {
            let mut s: Vec<(String, f64)> = samples(text)
                .into_iter()
                .map(|(series, v)| (series.replace("le=\"1.0\"", "le=\"1\""), v))
                .collect();
            s.sort_by(|a, b| a.0.cmp(&b.0));
            s
        };
        assert_eq!(sorted(&open), sorted(&classic));
    }

    /// Render time at 1000 nodes (debug builds are far slower; `--release` for the real figure).
    #[test]
    fn render_1000_nodes() {
        let nodes: Vec<NodeLive> = (0..1000)
            .map(|i| {
                let state = if i % 10 == 0 {
                    NodeState::Down
                } else {
                    NodeState::Up
                };
                let m = (state == NodeState::Up).then(metrics);
                node(&format!("node-{i:04}.example.com"), state, m)
            })
            .collect();
        let snap = snapshot(nodes);
        let extra = ExtraCounters::single_instance();
        let runs = 20;
        let start = std::time::Instant::now();
        let mut bytes = 0;
        for _ in 0..runs {
            bytes = open(&snap, &extra).len();
        }
        let each = start.elapsed() / runs;
        eprintln!("render: 1000 nodes in {each:?} ({bytes} bytes)");
        assert_eq!(
            samples(&open(&snap, &extra))
                .iter()
                .filter(|(s, _)| s.starts_with("dsmon_node_up{"))
                .count(),
            1000
        );
        assert!(each < std::time::Duration::from_secs(1), "{each:?}");
    }
}
