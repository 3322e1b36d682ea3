//! Benchmark (prints figures; asserts only that every node answers): a Netdata parent with 1000
//! children, stood in for by the replay server (`support/replay.rs`: a 1.37-style `/api/v1/info`
//! listing 1000 children, each child's charts replayed from recorded answers at
//! `/host/<guid>/api/v1/data`).
//!
//! - start: from building the collector (as `dsmon serve` does, one `[[parents]]` line) until every
//!   child has been polled by the live poller; also until the parent was read;
//! - one poll cycle of the 1000 children through the parent (all concurrently, 4 requests each).
//!
//! `cargo bench --no-default-features --bench parents`

#[path = "support/replay.rs"]
mod replay;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dsmon::config;
use dsmon::core::NodeState;
use dsmon::engine::{Collector, Discovery};
use dsmon::netdata::Window;

const CHILDREN: usize = 1000;
const ROUNDS: usize = 30;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    dsmon::raise_fd_limit();
    println!(
        "dsmon parents benchmark on {} cores: a replayed parent with {CHILDREN} children",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    rt.block_on(run());
}

async fn run() {
    let parent = replay::ReplayServer::start_parent(CHILDREN).await;
    let text = format!(
        "[collector]\nlive_interval = \"2s\"\ntimeout = \"3s\"\n\n[[parents]]\nurl = \"{}\"\n",
        parent.url()
    );
    let cfg = config::parse(&text, Path::new("bench.toml")).expect("bench config");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);

    let start = Instant::now();
    let collector = Arc::new(Collector::new(&cfg).expect("collector"));
    collector.leave_state_to_live_poller();
    let discovery = Arc::new(
        Discovery::new(Arc::clone(&collector), &cfg.nodes, &cfg.parents).expect("discovery"),
    );
    let _live = dsmon::engine::live::spawn(Arc::clone(&collector), stop_rx.clone());
    let loop_task = Arc::clone(&discovery).spawn(stop_rx.clone());
    let mut discovered = None;
    let all_polled = loop {
        let nodes = collector.nodes_live();
        if discovered.is_none() && nodes.len() == CHILDREN {
            discovered = Some(start.elapsed());
        }
        if nodes.len() == CHILDREN && nodes.iter().all(|n| n.state != NodeState::Pending) {
            let down: Vec<_> = nodes.iter().filter(|n| n.state != NodeState::Up).collect();
            assert!(
                down.is_empty(),
                "{} children down, e.g. {:?}",
                down.len(),
                down.first()
            );
            break start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "not every child polled within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "start -> parent read, {CHILDREN} nodes in the set: {:>8.1} ms",
        ms(discovered.unwrap_or_default())
    );
    println!(
        "start -> every child polled (up):         {:>8.1} ms   (target < 2000 ms)",
        ms(all_polled)
    );
    // The live poller stops before the cycles are timed: they are the only load.
    let _ = stop_tx.send(true);
    let _ = loop_task.await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut times = Vec::with_capacity(ROUNDS);
    let mut first = Duration::ZERO;
    for round in 0..ROUNDS + 3 {
        let t = Instant::now();
        let readings = collector.poll(Window::Latest, None).await;
        let took = t.elapsed();
        let failed = readings.iter().filter(|r| r.result.is_err()).count();
        assert_eq!((readings.len(), failed), (CHILDREN, 0), "round {round}");
        if round == 0 {
            first = took;
        }
        if round >= 3 {
            times.push(took);
        }
    }
    times.sort();
    let pct = |p: f64| times[((times.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "one poll cycle of {CHILDREN} children through the parent, {ROUNDS} rounds: first {:.1} ms, min {:.1}, p50 {:.1}, p99 {:.1}, max {:.1} ms   (target < 1000 ms)",
        ms(first),
        ms(times[0]),
        ms(pct(0.5)),
        ms(pct(0.99)),
        ms(times[times.len() - 1])
    );
    let t = Instant::now();
    let change = discovery.refresh().await.expect("refresh");
    println!(
        "one re-read of the parent ({CHILDREN} children, nothing changed): {:.1} ms, change empty: {}",
        ms(t.elapsed()),
        change.is_empty()
    );
}
