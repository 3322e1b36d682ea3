//! `dsmon collect --once`, `serve` and `export` against real Netdata agents fed known /proc values.

mod harness;

use std::collections::BTreeMap;
use std::time::Duration;

use harness::fake_agent::{FakeAgent, Fault};
use harness::{assert_close, rfc3339, unix_now, wait_for_tick, Dsmon, Machine, NetdataAgent};

const M1: Machine = Machine::STANDARD;
const M2: Machine = Machine {
    cpu_user: 5,
    cpu_system: 15,
    mem_used: 75,
    disk_quarters: 2,
    net_in_kbps: 400,
    net_out_kbps: 80,
};
const M3: Machine = Machine {
    cpu_user: 60,
    cpu_system: 20,
    mem_used: 20,
    disk_quarters: 3,
    net_in_kbps: 8000,
    net_out_kbps: 16000,
};

/// The row of `node` at `ts`, exactly one.
fn row_of<'a>(rows: &'a [serde_json::Value], node: &str, ts: i64) -> &'a serde_json::Value {
    let found: Vec<_> = rows
        .iter()
        .filter(|r| r["node"] == node && r["ts"] == rfc3339(ts).as_str())
        .collect();
    assert_eq!(
        found.len(),
        1,
        "rows of {node} at {}: {rows:#?}",
        rfc3339(ts)
    );
    found[0]
}

fn assert_machine(row: &serde_json::Value, m: &Machine) {
    let node = row["node"].as_str().unwrap_or("?");
    assert!(
        row["error"].is_null(),
        "{node}: unexpected error {}",
        row["error"]
    );
    assert_close(
        &format!("{node} cpu_pct"),
        &row["cpu_pct"],
        m.cpu_pct(),
        0.05,
    );
    assert_close(
        &format!("{node} mem_pct"),
        &row["mem_pct"],
        f64::from(m.mem_used),
        0.05,
    );
    assert_close(
        &format!("{node} disk_pct"),
        &row["disk_pct"],
        m.disk_pct(),
        0.05,
    );
    // Rates depend on when Netdata read a counter the test's writer thread advances continuously;
    // on a loaded two-core machine (a whole CI run) that thread was once late enough for 7 %: 10 %.
    assert_close(
        &format!("{node} net_in_kbps"),
        &row["net_in_kbps"],
        f64::from(m.net_in_kbps),
        f64::from(m.net_in_kbps) * 0.10,
    );
    assert_close(
        &format!("{node} net_out_kbps"),
        &row["net_out_kbps"],
        f64::from(m.net_out_kbps),
        f64::from(m.net_out_kbps) * 0.10,
    );
}

fn start_agents(machines: &[(&str, Machine)]) -> Vec<NetdataAgent> {
    // Started side by side: each takes a few seconds to have its first values.
    let handles: Vec<_> = machines
        .iter()
        .map(|(n, m)| {
            let (n, m) = (n.to_string(), *m);
            std::thread::spawn(move || NetdataAgent::start(&n, m))
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("agent start"))
        .collect()
}

#[test]
fn logs_interval_averages_of_every_node() {
    let agents = start_agents(&[("alpha", M1), ("beta", M2), ("gamma", M3)]);
    let nodes: String = agents.iter().map(NetdataAgent::node_toml).collect();
    let dsmon = Dsmon::new(&format!(
        "[collector]\nlog_interval = \"5s\"\ntimeout = \"2s\"\n\n{nodes}"
    ));
    let ready = unix_now();

    let tick = wait_for_tick(5, ready, 1.0);
    let r = dsmon.run(&["collect", "--once"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains(&format!("tick {}", rfc3339(tick))),
        "{r:?}"
    );
    assert!(
        r.stdout.contains("3 rows written, 0 already logged"),
        "{r:?}"
    );

    let rows = dsmon.rows();
    assert_eq!(rows.len(), 3, "{rows:#?}");
    for (agent, m) in agents.iter().zip([M1, M2, M3]) {
        assert_machine(row_of(&rows, &agent.name, tick), &m);
    }

    // CSV: the documented header, RFC 3339 UTC times, one line per row.
    let csv = dsmon.run(&[
        "export", "--from", "-1h", "--node", "beta", "--node", "gamma",
    ]);
    assert_eq!(csv.code, 0, "{csv:?}");
    let lines: Vec<&str> = csv.stdout.lines().collect();
    assert_eq!(
        lines[0],
        "ts,node,cpu_pct,mem_pct,disk_pct,net_in_kbps,net_out_kbps,error"
    );
    assert_eq!(lines.len(), 3, "{}", csv.stdout);
    assert!(
        lines[1].starts_with(&format!("{},beta,", rfc3339(tick))),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].starts_with(&format!("{},gamma,", rfc3339(tick))),
        "{}",
        lines[2]
    );
    assert!(
        lines[1].ends_with(','),
        "an up node has an empty error field: {}",
        lines[1]
    );
}

#[test]
fn refused_and_hung_agents_cost_at_most_the_timeout() {
    let mut agents = start_agents(&[("good", M1), ("refused", M2), ("hung", M3)]);
    let nodes: String = agents.iter().map(NetdataAgent::node_toml).collect();
    let dsmon = Dsmon::new(&format!(
        "[collector]\nlog_interval = \"5s\"\ntimeout = \"2s\"\n\n{nodes}"
    ));
    let ready = unix_now();
    agents[1].kill();
    agents[2].hang();

    let tick = wait_for_tick(5, ready, 1.0);
    let r = dsmon.run(&["collect", "--once"]);
    // Down nodes are normal operation: exit 0.
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.elapsed < Duration::from_secs(3),
        "the tick took {:?}, more than timeout (2 s) + 1 s",
        r.elapsed
    );
    assert!(r.stdout.contains("2 of 3 nodes down"), "{r:?}");
    assert!(
        r.stderr.contains("node down"),
        "state changes are logged: {r:?}"
    );

    let rows = dsmon.rows();
    assert_eq!(rows.len(), 3, "{rows:#?}");
    assert_machine(row_of(&rows, "good", tick), &M1);
    let refused = row_of(&rows, "refused", tick);
    assert!(refused["cpu_pct"].is_null() && refused["net_out_kbps"].is_null());
    let e = refused["error"].as_str().expect("error text");
    assert!(
        e.contains("connection failed") && e.contains("refused"),
        "{e}"
    );
    let hung = row_of(&rows, "hung", tick);
    assert!(hung["cpu_pct"].is_null());
    assert_eq!(hung["error"], "no answer within 2s");

    // The frozen agent comes back: the next tick logs it again.
    agents[2].resume();
    let next = wait_for_tick(5, 0.0, 0.0);
    let r = dsmon.run(&["collect", "--once"]);
    assert_eq!(r.code, 0, "{r:?}");
    let rows = dsmon.rows();
    assert_machine(row_of(&rows, "hung", next), &M3);
}

#[test]
fn misbehaving_servers_are_logged_with_their_fault() {
    let agents = start_agents(&[("real", M1)]);
    let garbage = FakeAgent::start(Fault::Garbage);
    let error = FakeAgent::start(Fault::ServerError);
    let stall = FakeAgent::start(Fault::StallMidBody);
    let stale = FakeAgent::start(Fault::Stale);
    let mut nodes = agents[0].node_toml();
    for (name, fake) in [
        ("garbage", &garbage),
        ("error500", &error),
        ("stall", &stall),
        ("stale", &stale),
    ] {
        nodes += &format!("[[nodes]]\nname = \"{name}\"\nurl = \"{}\"\n", fake.url());
    }
    let dsmon = Dsmon::new(&format!(
        "[collector]\nlog_interval = \"5s\"\ntimeout = \"1500ms\"\n\n{nodes}"
    ));
    let tick = wait_for_tick(5, unix_now(), 1.0);
    let r = dsmon.run(&["collect", "--once"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.elapsed < Duration::from_millis(2500),
        "took {:?}",
        r.elapsed
    );

    let rows = dsmon.rows();
    assert_eq!(rows.len(), 5, "{rows:#?}");
    assert_machine(row_of(&rows, "real", tick), &M1);
    let err = |n: &str| {
        row_of(&rows, n, tick)["error"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        err("garbage").contains("unexpected answer: not Netdata JSON"),
        "{}",
        err("garbage")
    );
    assert!(err("error500").contains("HTTP 500"), "{}", err("error500"));
    assert_eq!(err("stall"), "no answer within 1.5s");
    assert!(
        err("stale").contains(": stale data (newest point is "),
        "{}",
        err("stale")
    );
}

#[test]
fn rerunning_a_tick_and_restarting_serve_never_duplicate_rows() {
    let agents = start_agents(&[("one", M1), ("two", M2)]);
    let nodes: String = agents.iter().map(NetdataAgent::node_toml).collect();
    let dsmon = Dsmon::new(&format!(
        "[collector]\nlog_interval = \"2s\"\ntimeout = \"1s\"\n\n{nodes}"
    ));

    // collect --once twice in the same interval: the second one finds the rows and writes none.
    let tick = wait_for_tick(2, unix_now(), 0.0);
    let first = dsmon.run(&["collect", "--once"]);
    let second = dsmon.run(&["collect", "--once"]);
    assert_eq!((first.code, second.code), (0, 0), "{first:?}\n{second:?}");
    assert!(
        second.stdout.contains(&format!("tick {}", rfc3339(tick))),
        "{second:?}"
    );
    assert!(
        second.stdout.contains("0 rows written, 2 already logged"),
        "{second:?}"
    );

    // serve, stopped with SIGTERM, then started again: every tick has exactly one row per node.
    for round in 0..2 {
        let mut child = dsmon.command(&["serve"]).spawn().expect("serve");
        std::thread::sleep(Duration::from_millis(4500));
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let start = std::time::Instant::now();
        let status = child.wait().expect("wait serve");
        assert!(
            status.success(),
            "round {round}: serve exited with {status}"
        );
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "serve took {:?} to stop",
            start.elapsed()
        );
    }

    let rows = dsmon.rows();
    let mut per_tick: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in &rows {
        per_tick
            .entry(r["ts"].as_str().unwrap_or_default().to_string())
            .or_default()
            .push(r["node"].as_str().unwrap_or_default().to_string());
    }
    assert!(
        per_tick.len() >= 4,
        "expected at least 4 ticks over ~10 s: {per_tick:#?}"
    );
    for (ts, nodes) in &per_tick {
        assert_eq!(
            nodes,
            &vec!["one".to_string(), "two".to_string()],
            "tick {ts}"
        );
    }
    // Consecutive ticks two seconds apart, none skipped while serve ran.
    let ticks: Vec<i64> = per_tick
        .keys()
        .map(|t| {
            chrono::DateTime::parse_from_rfc3339(t)
                .expect("rfc3339")
                .timestamp()
        })
        .collect();
    assert!(ticks.iter().all(|t| t % 2 == 0), "{ticks:?}");
    assert!(
        ticks.windows(2).all(|w| w[1] - w[0] == 2),
        "a tick is missing: {ticks:?}"
    );
}

#[test]
fn sigterm_during_a_tick_lets_the_tick_finish_and_write() {
    let agents = start_agents(&[("steady", M1), ("frozen", M2)]);
    let nodes: String = agents.iter().map(NetdataAgent::node_toml).collect();
    let dsmon = Dsmon::new(&format!(
        "[collector]\nlog_interval = \"5s\"\ntimeout = \"2s\"\n\n{nodes}"
    ));
    agents[1].hang();
    let mut child = dsmon.command(&["serve"]).spawn().expect("serve");
    // The first boundary at least 2.5 s away, so that serve's catch-up tick at start is over.
    let tick = (((unix_now() + 2.5) / 5.0).ceil() * 5.0) as i64;
    std::thread::sleep(Duration::from_secs_f64(tick as f64 + 0.5 - unix_now()));
    // Half a second into the tick: the frozen node keeps its poll open until the 2 s timeout.
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().expect("wait serve");
    let stopped = unix_now();
    assert!(status.success(), "serve exited with {status}");
    assert!(
        stopped >= tick as f64 + 1.9 && stopped < tick as f64 + 3.5,
        "serve should stop once the tick is written (~2 s after it began), stopped {:.2} s after it",
        stopped - tick as f64
    );
    let rows = dsmon.rows();
    assert_machine(row_of(&rows, "steady", tick), &M1);
    assert_eq!(
        row_of(&rows, "frozen", tick)["error"],
        "no answer within 2s"
    );
    agents[1].resume();
}

#[test]
fn a_tick_that_ended_before_a_fresh_agent_started_writes_no_row() {
    // Start the agent early in a 30 s interval, so that it is ready before the interval ends: the
    // tick at its start closes an interval that ended before the agent existed.
    let into = unix_now() % 30.0;
    if into > 8.0 {
        std::thread::sleep(Duration::from_secs_f64(30.0 - into + 0.3));
    }
    let started = unix_now();
    let agents = start_agents(&[("fresh", M1)]);
    let nodes: String = agents.iter().map(NetdataAgent::node_toml).collect();
    let dsmon = Dsmon::new(&format!(
        "[collector]\nlog_interval = \"30s\"\ntimeout = \"2s\"\n\n{nodes}\
         [[nodes]]\nname = \"refused\"\nurl = \"http://127.0.0.1:9\"\n"
    ));
    let tick = (unix_now() as i64).div_euclid(30) * 30;
    assert!(
        (tick as f64) < started,
        "the agent took {:.0} s to be ready: the tick is after it started",
        unix_now() - started
    );
    let r = dsmon.run(&["collect", "--once"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("1 rows written")
            && r.stdout.contains("1 of 2 nodes down")
            && r.stdout.contains(
                "not monitored yet (their agents' data starts after this interval; no row): fresh"
            ),
        "{r:?}"
    );
    let rows = dsmon.rows();
    assert_eq!(rows.len(), 1, "only the refused node's NULL row: {rows:#?}");
    assert_eq!(rows[0]["node"], "refused");
    assert!(rows[0]["error"]
        .as_str()
        .is_some_and(|e| e.contains("connection failed")));

    // The next tick's interval holds the agent's first points: a row with values.
    let next = wait_for_tick(30, 0.0, 0.0);
    assert_eq!(next, tick + 30);
    let r = dsmon.run(&["collect", "--once"]);
    assert_eq!(r.code, 0, "{r:?}");
    let rows = dsmon.rows();
    let row = row_of(&rows, "fresh", next);
    assert!(
        row["error"].is_null() && row["cpu_pct"].is_number(),
        "{row}"
    );
}
