//! Benchmark (prints figures; asserts nothing): one poll cycle's wall time for 5, 100 and 1000
//! nodes, and one tick's SQLite write for as many rows.
//!
//! `cargo bench --no-default-features --bench poll` (as root with netdata installed, it also polls
//! five real agents). Nodes beyond real agents are served by a local server that replays responses
//! recorded from a Netdata 1.37 agent (`tests/fixtures/netdata-1.37`), with fresh timestamps.

#[path = "../tests/harness/mod.rs"]
mod harness;
#[path = "support/replay.rs"]
mod replay;

use std::path::Path;
use std::time::{Duration, Instant};

use dsmon::config;
use dsmon::core::Metrics;
use dsmon::core::{tick_at_or_before, unix_now};
use dsmon::engine::Collector;
use dsmon::netdata::Window;
use dsmon::store::{Row, SqliteStore as Store};

const ROUNDS: usize = 30;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    dsmon::raise_fd_limit();
    println!(
        "dsmon benchmark on {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    println!("poll cycle (all nodes concurrently, 4 requests each), {ROUNDS} rounds after 3 warm-up rounds");
    println!("(cold: the first cycle of a new collector, every connection new, as a 10-minute tick after idle)");
    println!(
        "{:<34} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "case", "cold ms", "min ms", "p50 ms", "p99 ms", "max ms"
    );

    let replay = rt.block_on(replay::ReplayServer::start());
    if real_agents_possible() {
        let agents: Vec<harness::NetdataAgent> = (0..5)
            .map(|i| harness::NetdataAgent::start(&format!("bench{i}"), harness::Machine::STANDARD))
            .collect();
        let nodes: String = agents
            .iter()
            .map(harness::NetdataAgent::node_toml)
            .collect();
        rt.block_on(bench_poll(
            "5 real Netdata agents, latest",
            &nodes,
            Window::Latest,
        ));
    } else {
        println!("(5 real Netdata agents skipped: needs root and /usr/sbin/netdata)");
    }
    for n in [5usize, 100, 1000] {
        let nodes = replay.nodes_toml(n);
        rt.block_on(bench_poll(
            &format!("{n} replayed agents, latest"),
            &nodes,
            Window::Latest,
        ));
        let end = tick_at_or_before(unix_now(), 600);
        rt.block_on(bench_poll(
            &format!("{n} replayed agents, 10-min average"),
            &nodes,
            Window::Average { end, secs: 600 },
        ));
    }

    println!();
    println!("one tick's SQLite write (one transaction, WAL, synchronous=NORMAL), {ROUNDS} ticks");
    println!(
        "{:<34} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "rows per tick", "first ms", "min ms", "p50 ms", "p99 ms", "max ms"
    );
    for n in [5usize, 100, 1000] {
        bench_write(n);
    }
}

fn real_agents_possible() -> bool {
    harness::is_root() && Path::new("/usr/sbin/netdata").exists()
}

/// Prints the first (cold) time, then min, p50, p99 and max of the rest.
fn report(case: &str, first: Duration, mut times: Vec<Duration>) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let pct = |p: f64| times[((times.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "{case:<34} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
        ms(first),
        ms(times[0]),
        ms(pct(0.5)),
        ms(pct(0.99)),
        ms(times[times.len() - 1])
    );
}

async fn bench_poll(case: &str, nodes: &str, window: Window) {
    let text = format!("[collector]\ntimeout = \"3s\"\n\n{nodes}");
    let cfg = config::parse(&text, Path::new("bench.toml")).expect("bench config");
    let collector = Collector::new(&cfg).expect("collector");
    let mut times = Vec::with_capacity(ROUNDS);
    let mut first = Duration::ZERO;
    for round in 0..ROUNDS + 3 {
        let start = Instant::now();
        let readings = collector.poll(window, None).await;
        let took = start.elapsed();
        let failed: Vec<_> = readings
            .iter()
            .filter_map(|r| r.result.as_ref().err())
            .collect();
        assert!(
            failed.is_empty(),
            "{case}: {} nodes failed, e.g. {:?}",
            failed.len(),
            failed.first()
        );
        assert_eq!(readings.len(), cfg.nodes.len());
        if round == 0 {
            first = took;
        }
        if round >= 3 {
            times.push(took);
        }
    }
    report(case, first, times);
}

fn bench_write(n: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = Store::open(&dir.path().join("bench.sqlite3")).expect("store");
    let mut times = Vec::with_capacity(ROUNDS);
    let mut first = Duration::ZERO;
    let base = tick_at_or_before(unix_now(), 600) - 600 * (ROUNDS as i64 + 3);
    for round in 0..ROUNDS + 3 {
        let ts = base + 600 * round as i64;
        let rows: Vec<Row> = (0..n)
            .map(|i| Row {
                ts,
                node: format!("node{i:04}"),
                metrics: (i % 50 != 0).then_some(Metrics {
                    cpu_pct: 12.5 + i as f64 % 80.0,
                    mem_pct: 40.0,
                    disk_pct: 61.2,
                    net_in_kbps: 1234.5,
                    net_out_kbps: 98.7,
                }),
                error: (i % 50 == 0)
                    .then(|| "connection failed: Connection refused (os error 111)".to_string()),
            })
            .collect();
        let start = Instant::now();
        let written = store.insert_rows(&rows).expect("write");
        let took = start.elapsed();
        assert_eq!(written, n);
        if round == 0 {
            first = took;
        }
        if round >= 3 {
            times.push(took);
        }
    }
    report(&format!("{n}"), first, times);
}
