//! Benchmark (prints figures; asserts nothing): 200 concurrent `/api/live/stream` clients for 60 s
//! against `dsmon serve` (the real binary) polling 100 replayed agents every second. Reports the
//! snapshots each client received and missed, and the server's CPU use.
//!
//! `cargo bench --no-default-features --bench stream` (`DSMON_BENCH_SECS` / `DSMON_BENCH_CLIENTS`
//! change the 60 s / 200 clients).

#[path = "support/replay.rs"]
mod replay;
#[path = "support/serve.rs"]
mod serve;

use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

fn main() {
    let secs = serve::env_num("DSMON_BENCH_SECS", 60);
    let clients = serve::env_num("DSMON_BENCH_CLIENTS", 200) as usize;
    let rt = serve::runtime(None);
    let replay = rt.block_on(replay::ReplayServer::start());
    let mut server = serve::Served::polling(
        "live_interval = \"1s\"\ntimeout = \"900ms\"",
        &replay.nodes_toml(100),
    );
    let port = server.port;
    let pid = server.pid();

    let received = rt.block_on(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let ticks_before = serve::cpu_ticks(pid);
        let t0 = Instant::now();
        let deadline = t0 + Duration::from_secs(secs);
        let mut tasks = Vec::with_capacity(clients);
        for _ in 0..clients {
            tasks.push(tokio::spawn(async move {
                let mut ids: Vec<u64> = Vec::new();
                let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)).await else { return ids };
                if s
                    .write_all(b"GET /api/live/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
                    .await
                    .is_err()
                {
                    return ids;
                }
                let mut r = BufReader::new(s);
                let mut line = String::new();
                loop {
                    line.clear();
                    let read = tokio::time::timeout_at(deadline.into(), r.read_line(&mut line)).await;
                    match read {
                        Ok(Ok(n)) if n > 0 => {
                            if let Some(id) = line.trim_end().strip_prefix("id: ") {
                                if let Ok(id) = id.parse() {
                                    ids.push(id);
                                }
                            }
                        }
                        _ => return ids,
                    }
                }
            }));
        }
        let mut all = Vec::with_capacity(clients);
        for t in tasks {
            all.push(t.await.unwrap_or_default());
        }
        let elapsed = t0.elapsed().as_secs_f64();
        let ticks = serve::cpu_ticks(pid) - ticks_before;
        (all, elapsed, ticks)
    });
    server.stop();

    let (all, elapsed, ticks) = received;
    let hz = serve::ticks_per_sec();
    let first = all
        .iter()
        .filter_map(|v| v.first())
        .min()
        .copied()
        .unwrap_or(0);
    let last = all
        .iter()
        .filter_map(|v| v.last())
        .max()
        .copied()
        .unwrap_or(0);
    let mut missed_total = 0u64;
    let mut clients_with_misses = 0usize;
    let mut min_events = usize::MAX;
    for ids in &all {
        min_events = min_events.min(ids.len());
        let missed: u64 = ids.windows(2).map(|w| w[1].saturating_sub(w[0] + 1)).sum();
        missed_total += missed;
        if missed > 0 {
            clients_with_misses += 1;
        }
    }
    println!(
        "{clients} stream clients for {elapsed:.1} s, live_interval 1 s, 100 nodes per snapshot"
    );
    println!(
        "snapshots published during the run: ids {first}..={last} ({})",
        last - first + 1
    );
    println!(
        "events per client: min {min_events}; snapshots missed (gaps in a client's ids): {missed_total} in total, {clients_with_misses} clients with any"
    );
    println!(
        "server CPU: {:.1} s in {elapsed:.1} s = {:.1} % of one core",
        ticks as f64 / hz,
        ticks as f64 / hz / elapsed * 100.0
    );
}
