//! A throw-away PostgreSQL 15 cluster for tests: `initdb` in a temporary directory under /tmp
//! (as the `postgres` user when running as root: the server refuses to run as root), started on a
//! free loopback port with its socket in that directory, stopped (`-m immediate`) and removed when
//! the last test holding it drops it, also when a test fails. Tests of one file share one cluster
//! ([`shared`]) and take a fresh database each ([`Cluster::create_db`]).
//!
//! The binaries are Debian's `postgresql-15` (`scripts/setup-debian.sh` installs it);
//! `DSMON_PG_BIN` points elsewhere.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

pub struct Cluster {
    dir: tempfile::TempDir,
    pub port: u16,
    bin: PathBuf,
    as_user: Option<String>,
    next_db: AtomicUsize,
    /// The server's `-c` settings beyond the port and socket.
    settings: String,
}

/// Settings of a test cluster: no fsync (nothing of it must survive a crash of the machine).
const FAST: &str = "-c fsync=off -c max_connections=200";
/// Settings of a benchmark's cluster: PostgreSQL's durable defaults (fsync, synchronous commit).
const DURABLE: &str = "-c max_connections=200";

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("addr").port()
}

impl Cluster {
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        match &self.as_user {
            Some(u) => {
                let mut c = Command::new("runuser");
                c.arg("-u").arg(u).arg("--").arg(path);
                c
            }
            None => Command::new(path),
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn start() -> Cluster {
        Self::start_with(FAST)
    }

    /// A cluster that syncs its commits to disk, as a production server does (for benchmarks).
    pub fn start_durable() -> Cluster {
        Self::start_with(DURABLE)
    }

    fn start_with(settings: &str) -> Cluster {
        let bin = std::env::var_os("DSMON_PG_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"));
        assert!(
            bin.join("initdb").is_file(),
            "{}: no initdb: install postgresql-15 (scripts/setup-debian.sh) or set DSMON_PG_BIN",
            bin.display()
        );
        let dir = tempfile::Builder::new()
            .prefix("dsmon-pg-")
            .tempdir_in("/tmp")
            .expect("temp dir");
        let as_user = is_root().then(|| "postgres".to_string());
        if let Some(u) = &as_user {
            let st = Command::new("chown")
                .arg(u)
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(st.success(), "chown {u} {}", dir.path().display());
        }
        let mut c = Cluster {
            dir,
            port: 0,
            bin,
            as_user,
            next_db: AtomicUsize::new(0),
            settings: settings.to_string(),
        };
        let out = c
            .command("initdb")
            .arg("-D")
            .arg(c.data())
            .args([
                "-A",
                "trust",
                "-U",
                "dsmon",
                "--locale=C.UTF-8",
                "-E",
                "UTF8",
                "--no-sync",
            ])
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // A few tries: the free port may be taken between the probe and the start.
        for _ in 0..5 {
            c.port = free_port();
            if c.pg_ctl_start() {
                return c;
            }
        }
        let log = std::fs::read_to_string(c.dir.path().join("log")).unwrap_or_default();
        panic!("PostgreSQL did not start:\n{log}");
    }

    /// The URL of database `db` on this cluster.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://dsmon@127.0.0.1:{}/{db}", self.port)
    }

    /// A new, empty database; its name.
    pub fn create_db(&self) -> String {
        let name = format!(
            "t{}_{}",
            std::process::id(),
            self.next_db.fetch_add(1, Ordering::SeqCst)
        );
        let mut admin =
            postgres::Client::connect(&self.url("postgres"), postgres::NoTls).expect("admin");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create database");
        name
    }

    /// Stops the server (fast: connections are cut), keeping its data.
    pub fn stop(&self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }

    fn pg_ctl_start(&self) -> bool {
        self.command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .arg("-o")
            .arg(format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 {}",
                self.port,
                self.dir.path().display(),
                self.settings
            ))
            .arg("-l")
            .arg(self.dir.path().join("log"))
            .args(["-w", "start"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    /// Starts it again on the same port.
    pub fn restart(&self) {
        assert!(self.pg_ctl_start(), "restart failed");
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The cluster of this test binary, started by the first test that asks and stopped when the
/// last one holding it is done.
pub fn shared() -> Arc<Cluster> {
    static SHARED: Mutex<Weak<Cluster>> = Mutex::new(Weak::new());
    let mut slot = SHARED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(c) = slot.upgrade() {
        return c;
    }
    let c = Arc::new(Cluster::start());
    *slot = Arc::downgrade(&c);
    c
}
