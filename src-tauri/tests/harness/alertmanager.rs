//! A real Prometheus Alertmanager (Debian's prometheus-alertmanager) with a throw-away
//! configuration: one route, grouped by alert name and node with 1 s waits, to one webhook
//! receiver (with `send_resolved`).

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, http_get, unique_dir};

pub const BINARY: &str = "/usr/bin/prometheus-alertmanager";

pub struct Alertmanager {
    pub port: u16,
    pub dir: PathBuf,
    child: Option<Child>,
}

impl Alertmanager {
    /// Starts Alertmanager sending every notification to `webhook_url`, and waits until it is
    /// ready.
    pub fn start(webhook_url: &str) -> Self {
        assert!(
            std::path::Path::new(BINARY).exists(),
            "{BINARY} is missing (apt-get install prometheus-alertmanager)"
        );
        let dir = unique_dir("alertmanager");
        let config = dir.join("alertmanager.yml");
        fs::write(
            &config,
            format!(
                "route:\n  receiver: test\n  group_by: ['alertname', 'node']\n  group_wait: 1s\n  \
                 group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: test\n    \
                 webhook_configs:\n      - url: '{webhook_url}'\n        send_resolved: true\n"
            ),
        )
        .expect("alertmanager.yml");
        let port = free_port();
        let log = fs::File::create(dir.join("alertmanager.log")).expect("log");
        let child = Command::new(BINARY)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // No cluster: no gossip port, no peers, no settle wait.
            .arg("--cluster.listen-address=")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start alertmanager");
        let mut am = Self {
            port,
            dir,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if matches!(http_get(port, "/-/ready"), Ok((200, _))) {
                break;
            }
            if let Some(Ok(Some(status))) = am.child.as_mut().map(|c| c.try_wait()) {
                panic!("alertmanager exited ({status}): {}", am.log());
            }
            assert!(
                Instant::now() < deadline,
                "alertmanager is not ready: {}",
                am.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        am
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("alertmanager.log")).unwrap_or_default()
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        self.stop();
    }
}
