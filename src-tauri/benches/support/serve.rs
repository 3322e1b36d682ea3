//! What the benchmarks that measure `dsmon serve` share: the real binary (this bench's build) run
//! on a configuration written for the bench in a temporary directory, its CPU time, and the
//! environment variables that size a run.

#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `dsmon serve`, stopped with SIGTERM (a tick in progress is finished) by [`Served::stop`].
pub struct Served {
    /// Holds `dsmon.toml`; relative paths in it (the database) are inside.
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
}

impl Served {
    /// Writes `dsmon.toml` from `config(port)` for a free loopback port, starts `dsmon serve` on it
    /// and returns once it accepts connections.
    pub fn start(config: impl FnOnce(u16) -> String) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("port");
        let path = dir.path().join("dsmon.toml");
        std::fs::write(&path, config(port)).expect("config");
        let child = Command::new(env!("CARGO_BIN_EXE_dsmon"))
            .arg("--config")
            .arg(&path)
            .arg("serve")
            .stderr(Stdio::null())
            .spawn()
            .expect("serve");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "serve did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { dir, port, child }
    }

    /// Starts `dsmon serve` with `collector` as the body of its `[collector]` table, polling the
    /// agents of `nodes` (`[[nodes]]` tables); see [`config_toml`].
    pub fn polling(collector: &str, nodes: &str) -> Self {
        Self::start(|port| config_toml(collector, port, nodes))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The directory (and the database in it) stays until `self` is dropped.
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// A `dsmon.toml` for the benchmarks: `collector` is the body of its `[collector]` table, the
/// database is `db.sqlite3` beside it, the server listens on loopback `port`, and `nodes` are its
/// `[[nodes]]` tables.
pub fn config_toml(collector: &str, port: u16, nodes: &str) -> String {
    format!(
        "[collector]\n{collector}\n[storage]\npath = \"db.sqlite3\"\n[server]\nlisten = \"127.0.0.1:{port}\"\n\n{nodes}"
    )
}

/// The runtime of a benchmark's own servers and clients; `workers` threads (`None`: one per core).
pub fn runtime(workers: Option<usize>) -> tokio::runtime::Runtime {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = workers {
        b.worker_threads(n);
    }
    b.enable_all().build().expect("runtime")
}

/// Clock ticks per second, the unit of [`cpu_ticks`].
pub fn ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64
}

/// utime + stime of a process, in clock ticks.
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime and stime are fields 14 and 15.
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

/// A number from the environment (a run's size), or `default`.
pub fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
