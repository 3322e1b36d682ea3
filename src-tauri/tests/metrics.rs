//! `GET /metrics` scraped by a real Prometheus (Debian's `prometheus`, its own instance on a free
//! loopback port, scraping every second) from `dsmon serve` polling a real Netdata agent: what
//! Prometheus's query API returns is what the agent shows. One agent, one Prometheus and two dsmon:
//! one without `[auth]` (scraped on loopback), one with `[auth]` scraped twice, on its listen
//! address with the bearer token and on its `metrics_listen`.

mod harness;

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use harness::oidc::{auth_toml, dsmon_with_auth_toml};
use harness::{free_port, http_get, http_get_full, Dsmon, Machine, NetdataAgent, Serve};

const PROMETHEUS: &str = "/usr/bin/prometheus";
const TOKEN: &str = "metrics-test-token-0123456789abcdef";

/// A Prometheus of the test's own, stopped and its data removed on drop.
struct Prometheus {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus with these scrape jobs (YAML list items) and waits until it is ready.
    fn start(jobs: &str) -> Self {
        assert!(
            std::path::Path::new(PROMETHEUS).exists(),
            "prometheus is not installed (scripts/setup-debian.sh installs it)"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("prometheus.yml");
        fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nscrape_configs:\n{jobs}"
            ),
        )
        .expect("prometheus.yml");
        let port = free_port();
        let log = fs::File::create(dir.path().join("prometheus.log")).expect("log");
        let child = Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        let p = Self { child, port, dir };
        p.wait("ready", Duration::from_secs(30), || {
            matches!(http_get(port, "/-/ready"), Ok((200, _)))
        });
        p
    }

    fn wait(&self, what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
        let start = Instant::now();
        while !done() {
            assert!(
                start.elapsed() < limit,
                "prometheus: {what}: not within {limit:?}\ntargets: {}\nlog:\n{}",
                http_get(self.port, "/api/v1/targets")
                    .map(|(_, b)| b)
                    .unwrap_or_default(),
                fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// An instant query's result: (job, value) per series.
    fn query(&self, promql: &str) -> Vec<(String, f64)> {
        let q: String = url::form_urlencoded::byte_serialize(promql.as_bytes()).collect();
        let Ok((200, body)) = http_get(self.port, &format!("/api/v1/query?query={q}")) else {
            return Vec::new();
        };
        let v: serde_json::Value = serde_json::from_str(&body).expect("query JSON");
        v["data"]["result"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(|s| {
                        let job = s["metric"]["job"].as_str()?.to_string();
                        let value = s["value"][1].as_str()?.parse().ok()?;
                        Some((job, value))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        // SAFETY: kill(2) with the pid of the child started here.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

/// A scrape job of one target; `token_file` sends the bearer token read from it.
fn job(name: &str, port: u16, token_file: Option<&PathBuf>) -> String {
    let auth = token_file.map_or(String::new(), |f| {
        format!(
            "    authorization:\n      type: Bearer\n      credentials_file: {}\n",
            f.display()
        )
    });
    format!("  - job_name: {name}\n{auth}    static_configs:\n      - targets: [\"127.0.0.1:{port}\"]\n")
}

#[test]
fn prometheus_scrapes_the_agents_values_with_and_without_auth() {
    let agent = NetdataAgent::start("prom", Machine::STANDARD);
    let collector =
        "[collector]\nlog_interval = \"5s\"\nlive_interval = \"500ms\"\ntimeout = \"400ms\"\n\n";
    let nodes = agent.node_toml();

    // Without [auth]: /metrics on the loopback listen address, as everything else.
    let local = Dsmon::new(&format!("{collector}{nodes}"));
    let _local_serve = Serve::start(&local);

    // With [auth] (a provider that is never reached: nobody signs in here): the token on listen,
    // and a metrics listener of its own. These two lines continue dsmon's [server] section.
    let secrets = tempfile::tempdir().expect("tempdir");
    let token_file = secrets.path().join("metrics.token");
    fs::write(&token_file, format!("{TOKEN}\n")).expect("token");
    let metrics_port = free_port();
    let server_keys = format!(
        "metrics_token_file = \"{}\"\nmetrics_listen = \"127.0.0.1:{metrics_port}\"\n\n",
        token_file.display()
    );
    let (signed, _signed_serve) =
        dsmon_with_auth_toml(&format!("{server_keys}{collector}{nodes}"), |d: &Dsmon| {
            auth_toml(d, "http://127.0.0.1:9")
        });

    // The main listener of the signed-in dsmon: not without the token.
    let (status, head, body) = http_get_full(signed.port, "/metrics").expect("GET /metrics");
    assert_eq!(status, 401, "{body}");
    assert!(head.contains("www-authenticate: bearer"), "{head}");
    assert!(
        !body.contains("dsmon_node") && !body.contains(TOKEN),
        "{body}"
    );
    // Its metrics listener serves /metrics alone.
    let (status, _) = http_get(metrics_port, "/api/live").expect("GET");
    assert_eq!(status, 404);

    let prometheus = Prometheus::start(&format!(
        "{}{}{}",
        job("local", local.port, None),
        job("token", signed.port, Some(&token_file)),
        job("listener", metrics_port, None),
    ));
    let jobs = ["listener", "local", "token"];
    let cpu = format!("dsmon_node_cpu_ratio{{node=\"{}\"}}", agent.name);
    let mut got = Vec::new();
    prometheus.wait(
        "dsmon_node_cpu_ratio of every job",
        Duration::from_secs(30),
        || {
            got = prometheus.query(&cpu);
            got.sort_by(|a, b| a.0.cmp(&b.0));
            got.iter().map(|(j, _)| j.as_str()).eq(jobs)
        },
    );
    let want = agent.machine.cpu_pct() / 100.0;
    for (job, value) in &got {
        assert!(
            (value - want).abs() <= 0.02,
            "{job}: dsmon_node_cpu_ratio {value}, the agent shows {want}"
        );
    }

    let up = prometheus.query(&format!("dsmon_node_up{{node=\"{}\"}}", agent.name));
    assert_eq!(up.len(), 3, "{up:?}");
    assert!(up.iter().all(|(_, v)| *v == 1.0), "{up:?}");
    // Every scrape succeeded (Prometheus's own `up`), and dsmon's own outcomes came along.
    let scrapes = prometheus.query("up");
    assert!(
        scrapes.len() == 3 && scrapes.iter().all(|(_, v)| *v == 1.0),
        "{scrapes:?}"
    );
    let polls = prometheus.query("dsmon_poll_duration_seconds_count");
    assert!(
        polls.len() == 3 && polls.iter().all(|(_, v)| *v >= 1.0),
        "{polls:?}"
    );
    let leader = prometheus.query("dsmon_leader");
    assert!(leader.iter().all(|(_, v)| *v == 1.0), "{leader:?}");
}
