//! A real SMTP server: Debian's python3-aiosmtpd running `smtp_server.py` (next to this file)
//! with a throw-away CA, on three loopback ports (STARTTLS + AUTH, plain, implicit TLS + AUTH).
//! Every message received is a JSON record the tests read.

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{make_certificates, unique_dir};

pub const PYTHON: &str = "/usr/bin/python3";

/// Ports of the three listeners.
#[derive(Debug, Clone, Copy)]
pub struct SmtpPorts {
    /// STARTTLS offered; AUTH after it.
    pub starttls: u16,
    /// Neither TLS nor AUTH.
    pub plain: u16,
    /// TLS from the start (smtps); AUTH.
    pub implicit: u16,
}

pub struct SmtpServer {
    pub dir: PathBuf,
    pub ports: SmtpPorts,
    /// The CA that signed the server's certificate (for the notifier's `ca_file`).
    pub ca: PathBuf,
    pub user: String,
    pub password: String,
    child: Option<Child>,
}

impl SmtpServer {
    pub fn start(user: &str, password: &str) -> Self {
        assert!(
            Command::new(PYTHON)
                .args(["-c", "import aiosmtpd"])
                .status()
                .map(|s| s.success())
                .unwrap_or(false),
            "{PYTHON} cannot import aiosmtpd (apt-get install python3-aiosmtpd)"
        );
        let dir = unique_dir("smtp");
        let ca = make_certificates(&dir);
        let tls = dir.join("tls");
        let ports_file = dir.join("ports.json");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/harness/smtp_server.py");
        let log = fs::File::create(dir.join("server.log")).expect("smtp log");
        let child = Command::new(PYTHON)
            .arg(script)
            .arg("--out")
            .arg(dir.join("messages"))
            .arg("--ports")
            .arg(&ports_file)
            .arg("--cert")
            .arg(tls.join("cert.pem"))
            .arg("--key")
            .arg(tls.join("key.pem"))
            .args(["--user", user, "--password", password])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the SMTP server");
        let mut server = Self {
            dir,
            ports: SmtpPorts {
                starttls: 0,
                plain: 0,
                implicit: 0,
            },
            ca,
            user: user.into(),
            password: password.into(),
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        let ports: serde_json::Value = loop {
            if let Ok(text) = fs::read_to_string(&ports_file) {
                if let Ok(v) = serde_json::from_str(&text) {
                    break v;
                }
            }
            if let Some(Ok(Some(status))) = server.child.as_mut().map(|c| c.try_wait()) {
                panic!("the SMTP server exited ({status}): {}", server.log());
            }
            assert!(
                Instant::now() < deadline,
                "the SMTP server did not start: {}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let port = |k: &str| ports[k].as_u64().expect("port") as u16;
        server.ports = SmtpPorts {
            starttls: port("starttls"),
            plain: port("plain"),
            implicit: port("implicit"),
        };
        server
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// Every message received so far.
    pub fn messages(&self) -> Vec<serde_json::Value> {
        let mut paths: Vec<PathBuf> = fs::read_dir(self.dir.join("messages"))
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "json"))
                    .collect()
            })
            .unwrap_or_default();
        paths.sort();
        paths
            .iter()
            .filter_map(|p| fs::read_to_string(p).ok())
            .filter_map(|t| serde_json::from_str(&t).ok())
            .collect()
    }

    /// The first message whose subject contains `text`, waiting up to `limit` for it.
    pub fn wait_for_subject(&self, text: &str, limit: Duration) -> serde_json::Value {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(m) = self
                .messages()
                .into_iter()
                .find(|m| m["subject"].as_str().is_some_and(|s| s.contains(text)))
            {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "no message with {text:?} in its subject; received: {:#?}\nserver log: {}",
                self.messages(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server and removes its files.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
    }
}
