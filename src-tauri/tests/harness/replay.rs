//! Many Netdata agents stood in for by one local server (as `benches/support/replay.rs` does for
//! the benchmarks), for tests that need hundreds of nodes: node `i` is served at `/n<i>/`, and
//! answers `/api/v1/data` in Netdata's `{"labels", "data"}` form with values of its own, some of
//! them moving every second, so that a page shows distinct and changing numbers:
//!
//! - CPU: `cpu_pct(i)`, fixed, a different tenth of a percent for each of the first 1000 nodes;
//! - memory: 20.5 to 79.5 %, moving by one point a second;
//! - disk: 5 to 94 %, fixed;
//! - network in and out: moving every second.

use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub struct ReplayAgents {
    pub port: u16,
    stop: Arc<watch::Sender<bool>>,
    thread: Option<JoinHandle<()>>,
}

/// The CPU % node `i` reports (fixed; distinct for i < 1000).
pub fn cpu_pct(i: usize) -> f64 {
    ((i * 7919) % 1000) as f64 / 10.0
}

fn answer(target: &str) -> Option<String> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let i: usize = path.strip_prefix("/n")?.split('/').next()?.parse().ok()?;
    if !path.ends_with("/api/v1/data") {
        return None;
    }
    let param = |k: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
    };
    let t = param("before")
        .and_then(|b| b.parse::<i64>().ok())
        .unwrap_or_else(|| super::unix_now() as i64);
    let s = t.unsigned_abs() as usize;
    let chart = param("chart").unwrap_or("");
    let (labels, values) = if chart.starts_with("system.cpu") {
        ("\"user\",\"idle\"", [cpu_pct(i), 100.0 - cpu_pct(i)])
    } else if chart.starts_with("system.ram") {
        let used = 20.5 + ((i + s) % 60) as f64;
        ("\"free\",\"used\"", [100.0 - used, used])
    } else if chart.starts_with("disk_space") {
        let used = 5.0 + (i % 90) as f64;
        ("\"avail\",\"used\"", [100.0 - used, used])
    } else if chart.starts_with("system.net") {
        let rx = 100.0 + ((i * 13 + s * 7) % 5000) as f64;
        let tx = 50.0 + ((i + s * 3) % 900) as f64;
        ("\"received\",\"sent\"", [rx, tx])
    } else {
        return None;
    };
    Some(format!(
        "{{\"labels\":[\"time\",{labels}],\"data\":[[{t},{},{}]]}}",
        values[0], values[1]
    ))
}

impl ReplayAgents {
    /// Starts the server on its own thread (and runtime), on a free loopback port.
    pub fn start() -> Self {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let port = std_listener.local_addr().expect("addr").port();
        let (stop, mut stopped) = watch::channel(false);
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = TcpListener::from_std(std_listener).expect("listener");
                loop {
                    let sock = tokio::select! {
                        s = listener.accept() => match s { Ok((s, _)) => s, Err(_) => continue },
                        _ = stopped.changed() => return,
                    };
                    tokio::spawn(async move {
                        let _ = sock.set_nodelay(true);
                        let (r, mut w) = sock.into_split();
                        let mut r = BufReader::new(r);
                        let mut line = String::new();
                        loop {
                            line.clear();
                            if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                                return;
                            }
                            let target = line.split(' ').nth(1).unwrap_or("/").to_string();
                            loop {
                                let mut h = String::new();
                                if r.read_line(&mut h).await.unwrap_or(0) == 0 {
                                    return;
                                }
                                if h == "\r\n" {
                                    break;
                                }
                            }
                            let (status, body) = match answer(&target) {
                                Some(b) => ("200 OK", b),
                                None => ("404 Not Found", "No metrics where matched to query.".into()),
                            };
                            let head = format!(
                                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n",
                                body.len()
                            );
                            if w.write_all(head.as_bytes()).await.is_err()
                                || w.write_all(body.as_bytes()).await.is_err()
                            {
                                return;
                            }
                        }
                    });
                }
            });
        });
        Self {
            port,
            stop: Arc::new(stop),
            thread: Some(thread),
        }
    }

    /// `[[nodes]]` tables for nodes `node0000`... served here, except those `down(i)` says, which
    /// point at a port nothing listens on (their polls are refused at once).
    /// `[[nodes]]` for `n` nodes, `down(i)` ones at a closed port; every 4th is tagged `db`,
    /// every 5th `eu-west` (every 20th both).
    pub fn nodes_toml(&self, n: usize, down: impl Fn(usize) -> bool) -> String {
        (0..n)
            .map(|i| {
                let url = if down(i) {
                    format!("http://127.0.0.1:9/n{i}")
                } else {
                    format!("http://127.0.0.1:{}/n{i}", self.port)
                };
                let tags = match (i % 4 == 0, i % 5 == 0) {
                    (true, true) => "tags = [\"db\", \"eu-west\"]\n",
                    (true, false) => "tags = [\"db\"]\n",
                    (false, true) => "tags = [\"eu-west\"]\n",
                    (false, false) => "",
                };
                format!("[[nodes]]\nname = \"node{i:04}\"\nurl = \"{url}\"\n{tags}")
            })
            .collect()
    }
}

impl Drop for ReplayAgents {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
