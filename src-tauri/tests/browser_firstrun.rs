//! The first run as a newcomer sees it (scripts/demo.sh): fresh agents, a fresh database, `dsmon
//! serve` started right after the agents, logging every minute, and one node nobody answers for.
//! The first tick's interval ended before the agents existed: they are not monitored yet (no row,
//! not down); the next tick logs them, and that single row shows on the History page as a point,
//! with availability 100 %. Also writes the first-run screenshots of docs/screenshots.

mod harness;

use std::fs::File;
use std::process::Stdio;
use std::time::{Duration, Instant};

use harness::browser::{Browser, Shows};
use harness::{http_get, unix_now, Dsmon, Machine, NetdataAgent, Serve};

const M2: Machine = Machine {
    cpu_user: 5,
    cpu_system: 15,
    mem_used: 75,
    disk_quarters: 2,
    net_in_kbps: 400,
    net_out_kbps: 80,
};

const INTERVAL: i64 = 60;

fn url(serve: &Serve, page: &str) -> String {
    format!("http://127.0.0.1:{}/{page}", serve.port)
}

/// Pixels of the colour `rgb` (within a small tolerance: anti-aliasing) on the canvas of the chart
/// of `metric`: what the series of that colour drew.
async fn pixels_of(b: &Browser, metric: &str, rgb: [u8; 3]) -> u64 {
    let js = r#"
        const [metric, want] = arguments;
        const c = document.querySelector(`[data-metric=${metric}] canvas`);
        if (!c) return -1;
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) {
            if (d[i + 3] > 200 && Math.abs(d[i] - want[0]) < 24 && Math.abs(d[i + 1] - want[1]) < 24
                && Math.abs(d[i + 2] - want[2]) < 24) n++;
        }
        return n;
    "#;
    let v = b
        .client
        .execute(js, vec![metric.into(), serde_json::json!(rgb)])
        .await
        .expect("canvas pixels");
    v.as_i64().unwrap_or(-1).max(0) as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_run_looks_right() {
    // Start the agents early in a minute, so that they are ready before it ends: the tick at the
    // start of that minute is then one whose interval ended before they existed.
    let into_minute = unix_now() % INTERVAL as f64;
    if into_minute > 20.0 {
        std::thread::sleep(Duration::from_secs_f64(INTERVAL as f64 - into_minute + 0.3));
    }
    let started = unix_now();
    let (alpha, beta) = std::thread::scope(|s| {
        let a = s.spawn(|| NetdataAgent::start("alpha", Machine::STANDARD));
        let b = s.spawn(|| NetdataAgent::start("beta", M2));
        (a.join().expect("alpha"), b.join().expect("beta"))
    });
    let mut nodes = alpha.node_toml() + &beta.node_toml();
    nodes += "[[nodes]]\nname = \"gamma\"\nurl = \"http://127.0.0.1:9\"\n";
    let d = Dsmon::new(&format!(
        "[collector]\nlog_interval = \"1m\"\nlive_interval = \"1s\"\ntimeout = \"1s\"\n\n{nodes}"
    ));
    let log_path = d.dir.join("serve.log");
    let serve_started = unix_now();
    let first_tick = (serve_started as i64).div_euclid(INTERVAL) * INTERVAL;
    assert!(
        (first_tick as f64) < started,
        "the agents took {:.0} s to be ready: serve's first tick ({first_tick}) is after they started ({started:.0})",
        serve_started - started
    );
    let child = d
        .command(&["serve"])
        .env("DSMON_LOG", "info")
        .stderr(Stdio::from(File::create(&log_path).expect("log file")))
        .spawn()
        .expect("serve");
    let serve = Serve {
        child,
        port: d.port,
    };
    let t0 = Instant::now();
    while !matches!(http_get(serve.port, "/healthz"), Ok((200, ref b)) if b == "ok") {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "serve did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // The first tick: gamma down (a NULL row with its reason), alpha and beta not monitored yet.
    let deadline = Instant::now() + Duration::from_secs(15);
    let first_line = loop {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        if let Some(l) = log.lines().find(|l| l.contains("tick logged")) {
            break l.to_string();
        }
        assert!(Instant::now() < deadline, "no tick logged:\n{log}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        first_line.contains("down=1") && first_line.contains("not_yet=2"),
        "{first_line}\nagents started at {started:.1}\nrows: {:#?}",
        d.rows()
    );
    let rows = d.rows();
    assert!(
        rows.iter()
            .all(|r| r["node"] == "gamma" && r["error"].as_str().is_some()),
        "only gamma's NULL row at the first tick: {rows:#?}"
    );

    // The next tick logs alpha and beta: one row each.
    let deadline = Instant::now() + Duration::from_secs(INTERVAL as u64 + 20);
    let rows = loop {
        let rows = d.rows();
        if rows.iter().filter(|r| r["node"] != "gamma").count() == 2 {
            break rows;
        }
        assert!(
            Instant::now() < deadline,
            "alpha and beta not logged: {rows:#?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    for node in ["alpha", "beta"] {
        let mine: Vec<_> = rows.iter().filter(|r| r["node"] == node).collect();
        assert!(
            mine.len() == 1 && mine[0]["error"].is_null() && mine[0]["cpu_pct"].is_number(),
            "{node}: {mine:#?}"
        );
    }
    let h = serve.json("/api/history?from=-1h", 200);
    let avail = |n: &str| {
        h["nodes"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["name"] == n))
            .map(|x| x["availability"].clone())
            .unwrap_or_default()
    };
    assert_eq!(avail("alpha"), 1.0, "{h}");
    assert_eq!(avail("beta"), 1.0, "{h}");
    assert_eq!(avail("gamma"), 0.0, "{h}");

    let b = Browser::start(false, 1280, 900).await;
    b.client.goto(&url(&serve, "live")).await.expect("goto");
    b.wait("cards", Duration::from_secs(10), || async {
        b.count(".card.state-up").await == 2 && b.count(".card.state-down").await == 1
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    b.screenshot(
        "firstrun-live",
        &[
            Shows::Text(".summary", "2 up, 1 down (gamma), 3 nodes"),
            Shows::Count(".card.state-up", 2),
            Shows::Text(".card[data-node=gamma] .status", "connection failed"),
        ],
    )
    .await;

    b.client
        .goto(&url(&serve, "history?range=1h"))
        .await
        .expect("goto");
    b.wait("history", Duration::from_secs(10), || async {
        b.text(".status-line").await.contains("points of")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    b.screenshot(
        "firstrun-history",
        &[
            Shows::Text("main h1", "History"),
            Shows::Text(".availability tr[data-node=alpha]", "100.0 %"),
            Shows::Text(".availability tr[data-node=beta]", "100.0 %"),
            Shows::Text(".availability tr[data-node=gamma]", "0.0 %"),
            Shows::Drawn("[data-metric=cpu_pct] canvas", 1),
        ],
    )
    .await;
    // alpha's single row is a dot in its colour (the palette's first, #2563eb), beta's in the
    // second (#16a34a); a line through one point would draw nothing.
    let alpha_px = pixels_of(&b, "cpu_pct", [0x25, 0x63, 0xeb]).await;
    let beta_px = pixels_of(&b, "cpu_pct", [0x16, 0xa3, 0x4a]).await;
    assert!(
        alpha_px >= 10 && beta_px >= 10,
        "the first rows are drawn as points: {alpha_px} and {beta_px} pixels"
    );

    // The node page: the live card (no empty box), the agent's dashboard, the alerts, the day
    // (a taller window: all of it in one screenshot).
    b.client.set_window_size(1280, 1500).await.expect("resize");
    b.client
        .goto(&url(&serve, "nodes/alpha"))
        .await
        .expect("goto");
    b.wait("node page", Duration::from_secs(10), || async {
        b.count(".card.big.state-up").await == 1
            && b.count(".summary tbody tr").await == 5
            && b.count(".dashboard-link a").await == 1
            && b.text(".node-alerts").await.contains("No alerts")
    })
    .await;
    let href = b
        .client
        .find(fantoccini::Locator::Css(".dashboard-link a"))
        .await
        .expect("link")
        .attr("href")
        .await
        .expect("href");
    assert_eq!(href.as_deref(), Some(format!("{}/", alpha.url()).as_str()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    b.screenshot(
        "firstrun-node",
        &[
            Shows::Text("main h1", "alpha"),
            Shows::Count(".card.big.state-up", 1),
            Shows::Drawn(".card.big .spark canvas", 1),
            Shows::Text(".dashboard-link", "Open its Netdata dashboard"),
            Shows::Text(".node-alerts", "No alerts on this node."),
            Shows::Text(".summary tr[data-metric=mem_pct]", "50.0 %"),
            Shows::Text(".status-line", "Available 100.0 %"),
        ],
    )
    .await;

    // A node that never answered: its card says why, and there is no empty chart box.
    b.client
        .goto(&url(&serve, "nodes/gamma"))
        .await
        .expect("goto");
    b.wait("gamma's page", Duration::from_secs(10), || async {
        b.count(".card.big.state-down").await == 1
            && !b.text(".status-line").await.starts_with("Loading")
    })
    .await;
    assert_eq!(b.count(".card.big .spark:not([hidden])").await, 0);
    b.screenshot(
        "firstrun-node-down",
        &[
            Shows::Text(".card.big .status", "connection failed"),
            Shows::Text(".status-line", "Available 0.0 %"),
            Shows::Text(".summary tr[data-metric=cpu_pct]", "no data"),
        ],
    )
    .await;
    b.close().await;
}
