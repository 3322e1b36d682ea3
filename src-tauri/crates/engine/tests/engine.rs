//! The engine without agents or a real clock: the logger's handling of wall-clock steps with an
//! injected clock (tokio's paused time drives the monotonic clock), and a node set changed while
//! the live poller runs. The nodes point at a closed port on loopback, so every poll fails fast and
//! every tick logs NULL rows with the reason: what is checked is which ticks get logged.
//! (tests/faults.rs keeps the end-to-end proof with libfaketime and real agents.)

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dsmon_core::Clock;
use dsmon_engine::{counters, Collector, NodeEvent};
use dsmon_store::{RowQuery, SharedSamples, SqliteStore};

const T: i64 = 1_800_000_000;

/// Wall clock = T + tokio's (paused) elapsed time + a step the test sets.
struct SteppedClock {
    start: tokio::time::Instant,
    step: AtomicI64,
}

impl Clock for SteppedClock {
    fn now(&self) -> Duration {
        let secs = T + self.step.load(Ordering::SeqCst);
        Duration::from_secs(secs.max(0) as u64) + self.start.elapsed()
    }
}

fn config(nodes: &[&str], log_interval: &str) -> dsmon_config::Config {
    let mut text = format!(
        "[collector]\nlog_interval = \"{log_interval}\"\nlive_interval = \"1s\"\ntimeout = \"500ms\"\n"
    );
    for n in nodes {
        text += &format!("[[nodes]]\nname = \"{n}\"\nurl = \"http://127.0.0.1:9\"\n");
    }
    dsmon_config::parse(&text, std::path::Path::new("/tmp/engine-test.toml")).expect("config")
}

fn ticks(store: &SharedSamples) -> BTreeSet<i64> {
    let mut out = BTreeSet::new();
    let q = RowQuery {
        from: 0,
        to: i64::MAX,
        nodes: vec![],
    };
    let s = store.lock().expect("store");
    s.scan_rows(&q, &mut |r| {
        out.insert(r.ts);
        ControlFlow::Continue(())
    })
    .expect("scan");
    out
}

/// Lets the logger run for `secs` of virtual time.
async fn run_for(secs: u64) {
    for _ in 0..secs * 10 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn the_logger_follows_clock_steps_back_and_forward() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: SharedSamples = Arc::new(Mutex::new(
        SqliteStore::open(&dir.path().join("db.sqlite3")).expect("store"),
    ));
    let clock = Arc::new(SteppedClock {
        start: tokio::time::Instant::now(),
        step: AtomicI64::new(0),
    });
    let collector =
        Arc::new(Collector::with_clock(&config(&["n1"], "10s"), clock.clone()).expect("collector"));
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let logger = {
        let (c, s) = (Arc::clone(&collector), Arc::clone(&store));
        tokio::spawn(async move { c.run_logger(s, stop_rx).await })
    };

    run_for(35).await;
    let before = ticks(&store);
    assert_eq!(
        before,
        BTreeSet::from([T, T + 10, T + 20, T + 30]),
        "one tick per interval on the wall clock"
    );

    // Stepped back an hour: the logger carries on with the newest tick instead of waiting an
    // hour for the one it expected.
    let steps = counters().snapshot().clock_steps;
    clock.step.store(-3600, Ordering::SeqCst);
    run_for(25).await;
    let back: Vec<i64> = ticks(&store).into_iter().filter(|t| *t < T).collect();
    assert!(
        back.len() >= 2,
        "ticks logged after the step back: {back:?}"
    );
    assert!(
        back.iter().all(|t| t % 10 == 0 && *t > T - 3600),
        "{back:?}"
    );
    assert!(
        counters().snapshot().clock_steps > steps,
        "the step is counted"
    );

    // Jumped forward two hours: the newest tick is logged, the two hours are not polled for.
    let skipped = counters().snapshot().ticks_skipped;
    clock.step.store(3600, Ordering::SeqCst);
    run_for(25).await;
    let all = ticks(&store);
    let after: Vec<i64> = all.iter().copied().filter(|t| *t > T + 3600).collect();
    assert!(after.len() >= 2, "ticks logged after the jump: {after:?}");
    assert!(
        all.iter()
            .filter(|t| **t > T + 30 && **t < T + 3600)
            .count()
            == 0,
        "the jumped-over hour is not caught up: {all:?}"
    );
    assert!(
        counters().snapshot().ticks_skipped > skipped,
        "skipped ticks are counted"
    );

    let _ = stop.send(true);
    logger.await.expect("logger stops");
    // Every tick row says why it has no values.
    let s = store.lock().expect("store");
    let rows = s.rows_at(T).expect("rows");
    assert_eq!(rows.len(), 1);
    assert!(
        rows[0].metrics.is_none() && rows[0].error.is_some(),
        "{rows:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_live_poller_follows_the_node_set() {
    let clock = Arc::new(SteppedClock {
        start: tokio::time::Instant::now(),
        step: AtomicI64::new(0),
    });
    let cfg = config(&["a", "b"], "10m");
    let collector = Arc::new(Collector::with_clock(&cfg, clock).expect("collector"));
    collector.leave_state_to_live_poller();
    let mut events = collector.subscribe();
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let mut live = dsmon_engine::live::spawn(Arc::clone(&collector), stop_rx);
    run_for(3).await;
    let names = |l: &tokio::sync::watch::Receiver<Arc<dsmon_engine::LiveSnapshot>>| -> Vec<String> {
        l.borrow().nodes.iter().map(|n| n.name.clone()).collect()
    };
    assert_eq!(names(&live), vec!["a", "b"]);
    assert!(
        live.borrow_and_update()
            .nodes
            .iter()
            .all(|n| n.state == dsmon_core::NodeState::Down),
        "both polled and down"
    );

    let changed = config(&["b", "c"], "10m");
    let change = collector.replace_nodes(&changed.nodes).expect("replace");
    assert_eq!(
        (change.added, change.removed),
        (vec!["c".to_string()], vec!["a".to_string()])
    );
    run_for(3).await;
    let snap = live.borrow_and_update().clone();
    assert_eq!(
        snap.nodes
            .iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>(),
        vec!["b", "c"]
    );
    assert_eq!(
        snap.nodes[1].state,
        dsmon_core::NodeState::Down,
        "the new node is polled without a restart"
    );
    let mut seen = (false, false, false);
    while let Ok(e) = events.try_recv() {
        match e {
            NodeEvent::StateChanged(c) if c.node == "c" => seen.0 = true,
            NodeEvent::Added { nodes } => seen.1 = nodes == vec!["c".to_string()],
            NodeEvent::Removed { nodes } => seen.2 = nodes == vec!["a".to_string()],
            _ => {}
        }
    }
    assert_eq!(seen, (true, true, true), "typed events for the change");
}
