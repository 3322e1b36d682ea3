//! Load benchmark (prints figures; fails only on errors or a missed logging tick): for 60 s, 500
//! clients poll `/api/live` over keep-alive connections, 500 more hold `/api/live/stream` open, and
//! 50 poll `/api/history`, against `dsmon serve` (the release binary) that logs 100 replayed agents
//! every 5 s and polls them live every second. Reports latency percentiles per endpoint, errors,
//! stream gaps, the ticks logged against those expected, and the server's CPU use.
//!
//! `cargo bench --no-default-features --bench load` (`DSMON_BENCH_SECS`, `DSMON_BENCH_LIVE`,
//! `DSMON_BENCH_STREAMS`, `DSMON_BENCH_HISTORY` change 60 s / 500 / 500 / 50).

#[path = "support/replay.rs"]
mod replay;
#[path = "support/serve.rs"]
mod serve;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const NODES: usize = 100;
const LOG_INTERVAL: i64 = 5;

/// One keep-alive connection's GET: status and body length, read by Content-Length.
async fn get(
    r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    w: &mut tokio::net::tcp::OwnedWriteHalf,
    path: &str,
) -> std::io::Result<(u16, usize)> {
    w.write_all(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await?;
    let mut line = String::new();
    r.read_line(&mut line).await?;
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut len = 0usize;
    loop {
        line.clear();
        if r.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    Ok((status, len))
}

/// A client polling `path` on one connection until `deadline`: its latencies (µs) and errors.
async fn poller(port: u16, path: String, deadline: Instant, errors: Arc<AtomicU64>) -> Vec<u64> {
    let mut lat = Vec::new();
    let Ok(s) = TcpStream::connect(("127.0.0.1", port)).await else {
        errors.fetch_add(1, Ordering::Relaxed);
        return lat;
    };
    let _ = s.set_nodelay(true);
    let (r, mut w) = s.into_split();
    let mut r = BufReader::new(r);
    while Instant::now() < deadline {
        let t = Instant::now();
        match get(&mut r, &mut w, &path).await {
            Ok((200, _)) => lat.push(t.elapsed().as_micros() as u64),
            _ => {
                errors.fetch_add(1, Ordering::Relaxed);
                return lat;
            }
        }
    }
    lat
}

/// A stream client until `deadline`: the snapshot ids it received.
async fn streamer(port: u16, deadline: Instant, errors: Arc<AtomicU64>) -> Vec<u64> {
    let mut ids = Vec::new();
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)).await else {
        errors.fetch_add(1, Ordering::Relaxed);
        return ids;
    };
    let req =
        b"GET /api/live/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n";
    if s.write_all(req).await.is_err() {
        errors.fetch_add(1, Ordering::Relaxed);
        return ids;
    }
    let mut r = BufReader::new(s);
    let mut line = String::new();
    let mut first = true;
    loop {
        line.clear();
        match tokio::time::timeout_at(deadline.into(), r.read_line(&mut line)).await {
            Ok(Ok(n)) if n > 0 => {
                if first {
                    first = false;
                    if !line.starts_with("HTTP/1.1 200") {
                        errors.fetch_add(1, Ordering::Relaxed);
                        return ids;
                    }
                }
                if let Some(id) = line.trim_end().strip_prefix("id: ") {
                    if let Ok(id) = id.parse() {
                        ids.push(id);
                    }
                }
            }
            Ok(_) => {
                errors.fetch_add(1, Ordering::Relaxed);
                return ids;
            }
            Err(_) => return ids,
        }
    }
}

fn percentiles(mut v: Vec<u64>) -> String {
    if v.is_empty() {
        return "no requests".into();
    }
    v.sort_unstable();
    let p = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize] as f64 / 1000.0;
    format!(
        "{} requests, p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        v.len(),
        p(0.5),
        p(0.9),
        p(0.99),
        p(1.0)
    )
}

fn main() {
    dsmon::raise_fd_limit();
    let secs = serve::env_num("DSMON_BENCH_SECS", 60);
    let live_clients = serve::env_num("DSMON_BENCH_LIVE", 500);
    let stream_clients = serve::env_num("DSMON_BENCH_STREAMS", 500);
    let history_clients = serve::env_num("DSMON_BENCH_HISTORY", 50);
    let rt = serve::runtime(None);
    let replay = rt.block_on(replay::ReplayServer::start());
    let mut server = serve::Served::polling(
        &format!("log_interval = \"{LOG_INTERVAL}s\"\nlive_interval = \"1s\"\ntimeout = \"900ms\""),
        &replay.nodes_toml(NODES),
    );
    let port = server.port;
    let pid = server.pid();

    let errors = Arc::new(AtomicU64::new(0));
    let (live, history, streams, window, elapsed, ticks) = rt.block_on({
        let errors = Arc::clone(&errors);
        async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let ticks_before = serve::cpu_ticks(pid);
            let from = dsmon::core::unix_now();
            let t0 = Instant::now();
            let deadline = t0 + Duration::from_secs(secs);
            let spawn_pollers = |n: u64, path: &str| {
                (0..n)
                    .map(|_| {
                        tokio::spawn(poller(
                            port,
                            path.to_string(),
                            deadline,
                            Arc::clone(&errors),
                        ))
                    })
                    .collect::<Vec<_>>()
            };
            let streams: Vec<_> = (0..stream_clients)
                .map(|_| tokio::spawn(streamer(port, deadline, Arc::clone(&errors))))
                .collect();
            let live = spawn_pollers(live_clients, "/api/live");
            let history = spawn_pollers(history_clients, "/api/history?from=-1h");
            let mut out = (Vec::new(), Vec::new(), Vec::new());
            for t in live {
                out.0.extend(t.await.unwrap_or_default());
            }
            for t in history {
                out.1.extend(t.await.unwrap_or_default());
            }
            for t in streams {
                out.2.push(t.await.unwrap_or_default());
            }
            let to = dsmon::core::unix_now();
            let elapsed = t0.elapsed().as_secs_f64();
            (
                out.0,
                out.1,
                out.2,
                (from, to),
                elapsed,
                serve::cpu_ticks(pid) - ticks_before,
            )
        }
    });
    // Let the tick in progress finish, then stop.
    std::thread::sleep(Duration::from_secs(2));
    server.stop();

    // Every tick inside the window must have a row for every node.
    let store = dsmon::store::SqliteStore::open_existing(&server.dir.path().join("db.sqlite3"))
        .expect("db");
    let (from, to) = window;
    let first_tick = (from / LOG_INTERVAL + 1) * LOG_INTERVAL;
    let last_tick = to / LOG_INTERVAL * LOG_INTERVAL;
    let expected = ((last_tick - first_tick) / LOG_INTERVAL + 1) as usize;
    let mut missed = Vec::new();
    for ts in (first_tick..=last_tick).step_by(LOG_INTERVAL as usize) {
        let logged = store.nodes_logged_at(ts).map(|n| n.len()).unwrap_or(0);
        if logged != NODES {
            missed.push((ts, logged));
        }
    }

    let hz = serve::ticks_per_sec();
    let mut gaps = 0u64;
    let mut min_events = usize::MAX;
    for ids in &streams {
        min_events = min_events.min(ids.len());
        gaps += ids
            .windows(2)
            .map(|w| w[1].saturating_sub(w[0] + 1))
            .sum::<u64>();
    }
    let errors = errors.load(Ordering::Relaxed);
    println!(
        "{live_clients} /api/live + {stream_clients} /api/live/stream + {history_clients} /api/history clients for {elapsed:.1} s; {NODES} nodes, live every 1 s, logged every {LOG_INTERVAL} s"
    );
    println!("/api/live:    {}", percentiles(live));
    println!("/api/history: {}", percentiles(history));
    println!(
        "stream: {} clients, events per client min {min_events}, snapshots missed {gaps}",
        streams.len()
    );
    println!("errors (failed connections, non-200 answers, streams cut): {errors}");
    println!(
        "logging ticks in the window: {} of {expected} with a row for each of the {NODES} nodes",
        expected - missed.len()
    );
    println!(
        "server CPU: {:.1} s in {elapsed:.1} s = {:.0} % of one core",
        ticks as f64 / hz,
        ticks as f64 / hz / elapsed * 100.0
    );
    if errors > 0 || !missed.is_empty() {
        eprintln!("FAILED: {errors} errors, ticks missing: {missed:?}");
        std::process::exit(1);
    }
}
