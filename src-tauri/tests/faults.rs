//! Faults a production monitor meets, against `dsmon serve` and real Netdata agents: the database's
//! disk filling up, `kill -9` around the writes, an agent flapping, and the wall clock jumping
//! (SIGTERM during a tick is in tests/collect.rs).

mod harness;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use harness::{unix_now, Dsmon, Machine, NetdataAgent, Serve};

fn two_agents() -> [NetdataAgent; 2] {
    [
        NetdataAgent::start("alpha", Machine::STANDARD),
        NetdataAgent::start("beta", Machine::STANDARD),
    ]
}

/// `dsmon serve` with its log in a file and extra environment; SIGTERM and wait on drop.
struct Logged {
    child: Child,
    log: PathBuf,
}

impl Logged {
    fn start(d: &Dsmon, env: &[(&str, String)]) -> Self {
        let log = d.dir.join(format!("serve-{}.log", unix_now() as u64));
        let mut c = d.command(&["serve"]);
        for (k, v) in env {
            c.env(k, v);
        }
        let child = c
            .stderr(Stdio::from(std::fs::File::create(&log).expect("log")))
            .spawn()
            .expect("serve");
        let s = Self { child, log };
        s.wait_for("dsmon serve started", Duration::from_secs(10));
        s
    }

    fn text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_for(&self, needle: &str, limit: Duration) {
        let start = Instant::now();
        while !self.text().contains(needle) {
            assert!(
                start.elapsed() < limit,
                "{needle:?} not logged within {limit:?}:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM; the exit code.
    fn stop(&mut self) -> Option<i32> {
        // SAFETY: kill(2) on the dsmon we started.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        self.child.wait().ok().and_then(|s| s.code())
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.stop();
        }
    }
}

/// Logged rows by tick: node -> whether it had metrics.
fn ticks(d: &Dsmon) -> BTreeMap<i64, BTreeMap<String, bool>> {
    let mut out: BTreeMap<i64, BTreeMap<String, bool>> = BTreeMap::new();
    // Up to a far future: the clock-jump test logs rows an hour ahead.
    let r = d.run(&[
        "export",
        "--from",
        "2000-01-01",
        "--to",
        "2100-01-01",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&r.stdout).expect("export JSON");
    for r in rows {
        let ts = chrono::DateTime::parse_from_rfc3339(r["ts"].as_str().expect("ts"))
            .expect("RFC 3339")
            .timestamp();
        let node = r["node"].as_str().expect("node").to_string();
        out.entry(ts)
            .or_default()
            .insert(node, r["cpu_pct"].is_number());
    }
    out
}

/// Every tick from the first to the last, `interval` apart, has a row for every node in `nodes`;
/// returns the missing ticks otherwise.
fn missing_ticks(
    t: &BTreeMap<i64, BTreeMap<String, bool>>,
    interval: i64,
    nodes: &[&str],
) -> Vec<i64> {
    let (Some(first), Some(last)) = (t.keys().next(), t.keys().next_back()) else {
        return Vec::new();
    };
    (*first..=*last)
        .step_by(interval as usize)
        .filter(|ts| {
            t.get(ts)
                .is_none_or(|n| nodes.iter().any(|x| !n.contains_key(*x)))
        })
        .collect()
}

/// A small tmpfs, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Self {
        std::fs::create_dir_all(at).expect("mkdir");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .expect("mount")
            .success();
        assert!(ok, "mount tmpfs on {}", at.display());
        Self(at.to_path_buf())
    }

    /// Writes a file until the disk is full.
    fn fill(&self) -> PathBuf {
        let p = self.0.join("filler");
        let mut f = std::fs::File::create(&p).expect("filler");
        let block = vec![0u8; 16 * 1024];
        while f.write_all(&block).is_ok() {}
        let _ = f.flush();
        p
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_keeps_rows_in_memory_and_writes_them_when_space_returns() {
    let agents = two_agents();
    let nodes: String = agents.iter().map(NetdataAgent::node_toml).collect();
    let d = Dsmon::new(&format!(
        "[collector]\nlog_interval = \"2s\"\nlive_interval = \"1s\"\ntimeout = \"1s\"\n\n{nodes}"
    ));
    let disk = Tmpfs::mount(&d.dir.join("disk"), "8m");
    let db = disk.0.join("dsmon.sqlite3");
    let text = std::fs::read_to_string(&d.config).expect("config");
    std::fs::write(
        &d.config,
        text.replace(&d.db.display().to_string(), &db.display().to_string()),
    )
    .expect("config");

    let mut serve = Logged::start(&d, &[]);
    serve.wait_for("written=2", Duration::from_secs(6));

    // The disk fills up: the error is logged, the ticks are kept in memory.
    let filler = disk.fill();
    serve.wait_for(
        "cannot write to the database: rows kept in memory",
        Duration::from_secs(6),
    );
    serve.wait_for("tick kept in memory", Duration::from_secs(6));
    std::thread::sleep(Duration::from_secs(4));
    let held = serve.text().matches("tick kept in memory").count();
    assert!(held >= 2, "{}", serve.text());

    // Space returns: the held rows are written (retried every 5 s, or with the next tick).
    std::fs::remove_file(&filler).expect("rm filler");
    serve.wait_for(
        "database writable again: the rows kept in memory are written",
        Duration::from_secs(8),
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(serve.stop(), Some(0), "{}", serve.text());

    // No tick lost, every row with its values: the ticks written before the disk filled, the ones
    // held in memory, and those after, with no gap (how many depends on the machine's speed).
    let t = ticks(&d);
    assert!(t.len() >= held + 2, "{held} held: {t:?}");
    assert_eq!(
        missing_ticks(&t, 2, &["alpha", "beta"]),
        Vec::<i64>::new(),
        "{t:?}"
    );
    assert!(
        t.values().flat_map(|n| n.values()).all(|ok| *ok),
        "every row has metrics: {t:?}"
    );
    assert!(!serve.text().contains("they are lost"), "{}", serve.text());
}

/// Ticks a `serve` running from `up` to `end` (wall clock, seconds) must have logged: those that
/// began while it ran with a whole interval left before `end` to be polled and written (the poll
/// times out well within one).
fn due_ticks(up: f64, end: f64, interval: i64) -> Vec<i64> {
    let first = (up / interval as f64).ceil() as i64 * interval;
    (first..)
        .step_by(interval as usize)
        .take_while(|b| (b + interval) as f64 <= end)
        .collect()
}

#[test]
fn kill_9_around_writes_leaves_an_intact_database_missing_at_most_the_tick_in_flight() {
    let agents = two_agents();
    let nodes: String = agents.iter().map(NetdataAgent::node_toml).collect();
    let interval = 1;
    let d = Dsmon::new(&format!(
        "[collector]\nlog_interval = \"{interval}s\"\nlive_interval = \"1s\"\ntimeout = \"800ms\"\n\n{nodes}"
    ));
    let kills = [5u64, 20, 60, 150, 400];
    // Each run of serve: from /healthz answering to the kill (or the last run's SIGTERM).
    let mut runs: Vec<(f64, f64)> = Vec::new();
    for offset_ms in kills {
        let serve = Serve::start(&d);
        let up = unix_now();
        // Let it log a few ticks, then kill it just after a tick starts (while it polls or writes).
        std::thread::sleep(Duration::from_millis(2500));
        let now = unix_now();
        let wait = now.ceil() - now + offset_ms as f64 / 1000.0;
        std::thread::sleep(Duration::from_secs_f64(wait));
        let mut serve = serve;
        runs.push((up, unix_now()));
        serve.child.kill().expect("SIGKILL");
        let _ = serve.child.wait();
    }
    let serve = Serve::start(&d);
    let up = unix_now();
    std::thread::sleep(Duration::from_millis(3500));
    runs.push((up, unix_now()));
    assert!(serve.stop().success());

    let conn = rusqlite::Connection::open(&d.db).expect("open");
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(check, "ok");
    drop(conn);

    let t = ticks(&d);
    // A tick is written whole or not at all.
    for (ts, n) in &t {
        assert_eq!(n.len(), 2, "tick {ts} is partial: {n:?}");
    }
    let missing = missing_ticks(&t, interval, &["alpha", "beta"]);
    assert!(
        missing.len() <= kills.len(),
        "at most the tick in flight per kill is missing: {missing:?} of {t:?}"
    );
    // Before and after every kill, the run logged the ticks its time allowed (so a logger that
    // logs nothing, or next to nothing, fails here); on a slow machine one of them may be late and
    // cut off by the kill. Every run lasts at least 2.5 s: at least two ticks are due in each.
    for (i, (up, end)) in runs.iter().enumerate() {
        let due = due_ticks(*up, *end, interval);
        let logged: Vec<i64> = due.iter().copied().filter(|b| t.contains_key(b)).collect();
        assert!(due.len() >= 2, "run {i} of serve: {due:?}");
        let floor = due.len() - 1;
        assert!(
            logged.len() >= floor,
            "run {i} of serve ({:.1} s): {logged:?} of the ticks due {due:?} logged, want at least {floor}: {t:?}",
            end - up
        );
    }
}

#[test]
fn a_flapping_agent_is_logged_up_and_down_and_no_tick_is_lost() {
    let mut agents = two_agents();
    let nodes: String = agents.iter().map(NetdataAgent::node_toml).collect();
    let d = Dsmon::new(&format!(
        "[collector]\nlog_interval = \"2s\"\nlive_interval = \"500ms\"\ntimeout = \"400ms\"\n\n{nodes}"
    ));
    let mut serve = Logged::start(&d, &[]);
    serve.wait_for("node up node=beta", Duration::from_secs(5));
    for _ in 0..3 {
        agents[1].kill();
        std::thread::sleep(Duration::from_secs(2));
        agents[1].restart();
        std::thread::sleep(Duration::from_secs(3));
    }
    assert_eq!(serve.stop(), Some(0), "{}", serve.text());
    let log = serve.text();
    assert!(log.matches("node down node=beta").count() >= 3, "{log}");
    assert!(log.matches("node up node=beta").count() >= 4, "{log}");
    assert!(
        !log.contains("node=alpha from=Up"),
        "alpha never changed: {log}"
    );

    let t = ticks(&d);
    assert!(t.len() >= 10, "{t:?}");
    assert_eq!(
        missing_ticks(&t, 2, &["alpha", "beta"]),
        Vec::<i64>::new(),
        "{t:?}"
    );
    assert!(
        t.values().all(|n| n["alpha"]),
        "alpha always has values: {t:?}"
    );
    let beta: BTreeSet<bool> = t.values().map(|n| n["beta"]).collect();
    assert_eq!(beta.len(), 2, "beta has rows up and rows down: {t:?}");
}

#[test]
fn a_wall_clock_jump_is_followed_both_ways_within_seconds() {
    let lib = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";
    assert!(
        Path::new(lib).exists(),
        "libfaketime is missing (scripts/setup-debian.sh installs faketime)"
    );
    let agent = NetdataAgent::start("alpha", Machine::STANDARD);
    let d = Dsmon::new(&format!(
        "[collector]\nlog_interval = \"2s\"\nlive_interval = \"1s\"\ntimeout = \"1s\"\n\n{}",
        agent.node_toml()
    ));
    // dsmon's wall clock (only its own: CLOCK_REALTIME, not the monotonic clock its timers use) is
    // the real one plus the offset in this file, read on every call.
    let offset = d.dir.join("faketime");
    std::fs::write(&offset, "+0\n").expect("offset");
    let env = [
        ("LD_PRELOAD", lib.to_string()),
        ("FAKETIME_TIMESTAMP_FILE", offset.display().to_string()),
        ("FAKETIME_NO_CACHE", "1".to_string()),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1".to_string()),
    ];
    let mut serve = Logged::start(&d, &env);
    serve.wait_for("written=1", Duration::from_secs(5));

    // One hour forward: noticed, the skipped ticks are not polled one by one, logging goes on.
    std::fs::write(&offset, "+3600\n").expect("offset");
    let jumped = Instant::now();
    serve.wait_for("skipping to the newest tick", Duration::from_secs(6));
    assert!(jumped.elapsed() < Duration::from_secs(6));
    std::thread::sleep(Duration::from_secs(5));
    let ahead = ticks(&d)
        .keys()
        .filter(|ts| **ts as f64 > unix_now() + 3000.0)
        .count();
    assert!(ahead >= 2, "ticks go on at the new time: {:?}", ticks(&d));

    // And back: noticed within seconds, logging resumes at the real time (no hour-long wait).
    std::fs::write(&offset, "+0\n").expect("offset");
    let back = unix_now();
    serve.wait_for("clock stepped back", Duration::from_secs(6));
    let start = Instant::now();
    while !ticks(&d)
        .keys()
        .any(|ts| (*ts as f64) > back && (*ts as f64) < back + 60.0)
    {
        assert!(
            start.elapsed() < Duration::from_secs(8),
            "no tick at the real time after the clock went back: {}",
            serve.text()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(serve.stop(), Some(0), "{}", serve.text());
    let after: Vec<bool> = ticks(&d)
        .iter()
        .filter(|(ts, _)| (**ts as f64) > back && (**ts as f64) < back + 60.0)
        .map(|(_, n)| n["alpha"])
        .collect();
    assert!(
        after.iter().all(|ok| *ok),
        "real-time rows have values again: {after:?}"
    );
}
