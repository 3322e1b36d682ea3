//! A local server that stands in for many Netdata agents in benchmarks: it answers
//! `/<node>/api/v1/data?chart=...` with responses recorded from a Netdata 1.37 agent
//! (`tests/fixtures/netdata-1.37`) whose newest row carries the requested `before` (or the current
//! second), over HTTP/1.1 keep-alive. Started with [`ReplayServer::start_parent`] it also stands
//! in for a Netdata parent: `/api/v1/info` lists that many children, each served at
//! `/host/<guid>/api/v1/data` like any other path.

#![allow(dead_code)] // each bench uses part of it

use std::path::Path;
use std::sync::Arc;

use dsmon::core::unix_now;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

pub struct ReplayServer {
    port: u16,
}

struct Bodies {
    /// (chart prefix, text before the row time, text after it)
    charts: Vec<(&'static str, String, String)>,
    /// The `/api/v1/info` answer.
    info: String,
}

/// The guid of replayed child `i`.
pub fn child_guid(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

/// A 1.37-style `/api/v1/info` of a parent holding `children` children (`child0000`...).
fn parent_info(children: usize) -> String {
    let mut hosts = vec![serde_json::json!({
        "guid": "ffffffff-0000-4000-8000-000000000000", "hostname": "replay-parent",
        "reachable": true, "hops": 0, "claim_id": null, "node_id": null
    })];
    hosts.extend((0..children).map(|i| {
        serde_json::json!({
            "guid": child_guid(i), "hostname": format!("child{i:04}"),
            "reachable": true, "hops": 1, "claim_id": null, "node_id": null
        })
    }));
    let names: Vec<_> = hosts.iter().map(|h| h["hostname"].clone()).collect();
    serde_json::json!({
        "version": "v1.37.1",
        "mirrored_hosts": names,
        "mirrored_hosts_status": hosts,
    })
    .to_string()
}

fn split_at_row_time(text: &str) -> (String, String) {
    // The newest data row starts with "[ <epoch>,"; cut the epoch out.
    let data = text.find("\"data\":").expect("data table");
    let open = data + text[data..].find("[ ").expect("row") + 2;
    let comma = open + text[open..].find(',').expect("comma");
    (text[..open].to_string(), text[comma..].to_string())
}

impl ReplayServer {
    pub async fn start() -> Self {
        Self::start_parent(0).await
    }

    /// A replay server whose `/api/v1/info` lists `children` streaming children.
    pub async fn start_parent(children: usize) -> Self {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/netdata-1.37");
        let load = |f: &str| std::fs::read_to_string(dir.join(f)).expect("fixture");
        let mut charts = Vec::new();
        for (prefix, file) in [
            ("system.cpu", "data_system.cpu_abs_window_avg.json"),
            ("system.ram", "data_system.ram_points1.json"),
            ("disk_space.", "data_disk_space._points1.json"),
            ("system.net", "data_net.eth0_traffic_absolute.json"),
        ] {
            let (a, b) = split_at_row_time(&load(file));
            charts.push((prefix, a, b));
        }
        let bodies = Arc::new(Bodies {
            charts,
            info: parent_info(children),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                let bodies = Arc::clone(&bodies);
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
                        // Skip the headers.
                        loop {
                            let mut h = String::new();
                            if r.read_line(&mut h).await.unwrap_or(0) == 0 {
                                return;
                            }
                            if h == "\r\n" {
                                break;
                            }
                        }
                        let body = bodies.answer(&target);
                        let head = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n",
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
        Self { port }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `[[nodes]]` tables for `n` nodes served by this server.
    pub fn nodes_toml(&self, n: usize) -> String {
        (0..n)
            .map(|i| {
                format!(
                    "[[nodes]]\nname = \"r{i:04}\"\nurl = \"http://127.0.0.1:{}/n{i}\"\n",
                    self.port
                )
            })
            .collect()
    }
}

impl Bodies {
    fn answer(&self, target: &str) -> String {
        if target
            .split('?')
            .next()
            .unwrap_or("")
            .ends_with("/api/v1/info")
        {
            return self.info.clone();
        }
        let query = target.split_once('?').map_or("", |(_, q)| q);
        let param = |k: &str| {
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
        };
        let chart = param("chart").unwrap_or("");
        let time = param("before")
            .and_then(|b| b.parse::<i64>().ok())
            .unwrap_or_else(unix_now);
        match self.charts.iter().find(|(p, _, _)| chart.starts_with(p)) {
            Some((_, a, b)) => format!("{a}{time}{b}"),
            None => "No metrics where matched to query.".to_string(),
        }
    }
}
