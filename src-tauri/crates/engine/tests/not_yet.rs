//! "Not monitored yet" against an agent that answers like a freshly started Netdata 1.37: a window
//! before its first point is `404 No metrics where matched to query.`, and `/api/v1/chart` gives
//! the chart's `first_entry`. (tests/collect.rs checks the same with a real agent.)
//!
//! Plain tokio time, not paused: the fake agent answers over real sockets, and paused time would
//! run the poll's timeout out while the runtime waits for them.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};

use dsmon_core::{Metrics, NodeState, Row};
use dsmon_engine::{counters, Collector};
use dsmon_store::{RowQuery, SharedSamples, SqliteStore};

/// The fake agent's first point (Unix seconds).
const FIRST: i64 = 1_800_000_000;

/// Answers every request as a Netdata agent started at `FIRST` that is asked about earlier times.
fn fresh_agent() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().expect("clone"));
                let mut conn = conn;
                loop {
                    let mut first = String::new();
                    if reader.read_line(&mut first).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut line = String::new();
                    while reader.read_line(&mut line).unwrap_or(0) > 2 {
                        line.clear();
                    }
                    let (status, body) = if first.contains("/api/v1/chart?") {
                        (
                            "200 OK",
                            format!("{{\"id\":\"x\",\"first_entry\":{FIRST}}}"),
                        )
                    } else {
                        (
                            "404 Not Found",
                            "No metrics where matched to query.".to_string(),
                        )
                    };
                    let resp = format!(
                        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n{body}",
                        body.len()
                    );
                    if conn.write_all(resp.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

fn setup(nodes: &[(&str, String)]) -> (tempfile::TempDir, SharedSamples, Collector) {
    let mut text =
        "[collector]\nlog_interval = \"10m\"\nlive_interval = \"1s\"\ntimeout = \"2s\"\n"
            .to_string();
    for (n, url) in nodes {
        text += &format!("[[nodes]]\nname = \"{n}\"\nurl = \"{url}\"\n");
    }
    let cfg =
        dsmon_config::parse(&text, std::path::Path::new("/tmp/not-yet.toml")).expect("config");
    let dir = tempfile::tempdir().expect("tempdir");
    let store: SharedSamples = Arc::new(Mutex::new(
        SqliteStore::open(&dir.path().join("db.sqlite3")).expect("store"),
    ));
    (dir, store, Collector::new(&cfg).expect("collector"))
}

fn rows(store: &SharedSamples) -> Vec<Row> {
    let mut out = Vec::new();
    let q = RowQuery {
        from: 0,
        to: i64::MAX,
        nodes: vec![],
    };
    store
        .lock()
        .expect("store")
        .scan_rows(&q, &mut |r| {
            out.push(r);
            ControlFlow::Continue(())
        })
        .expect("scan");
    out
}

#[tokio::test]
async fn a_window_before_a_new_agent_existed_is_not_monitored_yet() {
    let port = fresh_agent();
    let (_dir, store, collector) = setup(&[
        ("fresh", format!("http://127.0.0.1:{port}")),
        ("gone", "http://127.0.0.1:9".to_string()),
    ]);
    let tick = FIRST - 5; // the window [FIRST - 605, FIRST - 5] ends before the agent's first point
    let not_yet_before = counters().snapshot().rows_not_yet;
    let report = collector.log_tick(&store, tick).await.expect("tick");
    let fresh = report
        .readings
        .iter()
        .find(|r| r.node == "fresh")
        .expect("fresh polled");
    assert!(fresh.is_not_yet(), "{:?}", fresh.result);
    assert_eq!(report.written, 1, "only the refused node's NULL row");
    let logged = rows(&store);
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert_eq!(logged[0].node, "gone");
    assert!(logged[0].metrics.is_none());
    assert!(
        logged[0]
            .error
            .as_deref()
            .is_some_and(|e| e.starts_with("connection failed")),
        "{logged:?}"
    );
    assert!(counters().snapshot().rows_not_yet > not_yet_before);
    let states = collector.nodes_live();
    assert_eq!(
        states[0].state,
        NodeState::Pending,
        "not down: not monitored yet"
    );
    assert_eq!(states[1].state, NodeState::Down);
}

#[tokio::test]
async fn a_node_logged_before_stays_a_null_row_with_its_reason() {
    let port = fresh_agent();
    let (_dir, store, collector) = setup(&[("wiped", format!("http://127.0.0.1:{port}"))]);
    // dsmon logged the node an hour earlier; its agent has since lost its database.
    let earlier = Row {
        ts: FIRST - 3600,
        node: "wiped".into(),
        metrics: Some(Metrics::from_values([1.0, 2.0, 3.0, 4.0, 5.0])),
        error: None,
    };
    store
        .lock()
        .expect("store")
        .insert_rows(&[earlier])
        .expect("insert");
    let tick = FIRST - 600;
    let report = collector.log_tick(&store, tick).await.expect("tick");
    assert_eq!(report.written, 1);
    assert!(report.readings[0].is_down());
    let logged = rows(&store);
    let row = logged
        .iter()
        .find(|r| r.ts == tick)
        .expect("a row at the tick");
    assert!(row.metrics.is_none());
    // Netdata's answer (for whichever chart answered first), as for any interval without data.
    assert!(
        row.error.as_deref().is_some_and(|e| e
            .ends_with(": no data (the agent has no such chart, or no points in the interval)")),
        "{row:?}"
    );
}
