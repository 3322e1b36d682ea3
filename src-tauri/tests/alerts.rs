//! Alerts end to end: real Netdata agents whose /proc values the test changes mid-run, `dsmon
//! serve` evaluating the rules on every live poll, and a webhook receiver here seeing what leaves
//! dsmon. One run walks through: threshold with `for`, pending, firing, repeat, acknowledge,
//! hysteresis (a value between `clear` and the threshold does not resolve), a restart of dsmon in
//! the middle of a firing alert (no second notification), resolve; a notifier that is down
//! (retried, then logged as failed; the other notifier unaffected); node down after `for` and a
//! flap shorter than `for` (no notification); a silence; a maintenance window; storm grouping
//! with 20 nodes. The agents and dsmon are started once and shared by the steps.
//!
//! Formats and the real SMTP server / Alertmanager are tested in tests/notify.rs.

mod harness;

use std::time::{Duration, Instant};

use harness::receiver::{Hit, Receiver};
use harness::{free_port, wait_until, Dsmon, Machine, NetdataAgent, Serve};
use serde_json::{json, Value};

/// A request with a body to dsmon on loopback, as its own page sends it (same Origin).
fn send(port: u16, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    harness::http_json(port, method, path, body)
}

fn get(port: u16, path: &str) -> Value {
    let (status, v) = send(port, "GET", path, None);
    assert_eq!(status, 200, "GET {path}: {v}");
    v
}

/// The hook's notifications of `rule` and `kind` so far.
fn notices(r: &Receiver, rule: &str, kind: &str) -> Vec<Value> {
    r.hits("/hook")
        .iter()
        .map(Hit::json)
        .filter(|b| b["rule"] == rule && b["kind"] == kind)
        .collect()
}

fn current(port: u16, rule: &str, node: &str) -> Option<Value> {
    get(port, "/api/alerts")["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .find(|a| a["rule"] == rule && a["node"] == node)
        .cloned()
}

fn events(port: u16, rule: &str) -> Vec<Value> {
    get(port, "/api/alerts/history?from=-1h")["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["rule"] == rule)
        .cloned()
        .collect()
}

#[test]
fn alerts_fire_repeat_resolve_survive_a_restart_and_respect_silences() {
    let mut web = NetdataAgent::start("web1", Machine::STANDARD);
    let mut db = NetdataAgent::start("db1", Machine::STANDARD);
    let mut storm = NetdataAgent::start("storm", Machine::STANDARD);
    let hook = Receiver::start(|_, _| (200, "ok".into()));
    let closed = free_port();

    let mut nodes = format!(
        "[[nodes]]\nname = \"web-1\"\nurl = \"{}\"\ndisk = \"{}\"\n[[nodes]]\nname = \"db-1\"\nurl = \"{}\"\ndisk = \"{}\"\n",
        web.url(),
        web.disk(),
        db.url(),
        db.disk()
    );
    for i in 1..=20 {
        nodes += &format!(
            "[[nodes]]\nname = \"storm-{i:02}\"\nurl = \"{}\"\ndisk = \"{}\"\n",
            storm.url(),
            storm.disk()
        );
    }
    let d = Dsmon::new(&format!(
        r#"[collector]
live_interval = "1s"
timeout = "500ms"
log_interval = "1h"

{nodes}
[alerts]
storm_threshold = 5
storm_window = "6s"
attempts = 3
retry_backoff = "200ms"
public_url = "https://mon.example.com/"

[[alerts.notifiers]]
name = "hook"
type = "webhook"
url = "{hook}"

[[alerts.notifiers]]
name = "dead"
type = "webhook"
url = "http://127.0.0.1:{closed}/gone"

[[alerts.rules]]
name = "mem high"
metric = "mem_pct"
above = 80
clear = 60
for = "3s"
nodes = ["web-*"]
notify = ["hook", "dead"]
repeat = "5s"

[[alerts.rules]]
name = "web down"
metric = "down"
for = "4s"
severity = "critical"
nodes = ["web-*"]
notify = ["hook"]

[[alerts.rules]]
name = "db mem"
metric = "mem_pct"
above = 80
for = "2s"
nodes = ["db-*"]
notify = ["hook"]

[[alerts.rules]]
name = "storm mem"
metric = "mem_pct"
above = 80
for = "2s"
nodes = ["storm-*"]
notify = ["hook"]

[[alerts.maintenance]]
name = "db always"
cron = "* * * * *"
duration = "1m"
nodes = ["db-*"]
"#,
        hook = hook.url("/hook"),
    ));
    let mut serve = Serve::start(&d);
    let port = d.port;
    wait_until("every node up", Duration::from_secs(10), || {
        get(port, "/api/live")["nodes"]
            .as_array()
            .is_some_and(|n| n.len() == 22 && n.iter().all(|n| n["state"] == "up"))
    });
    assert!(
        get(port, "/api/alerts")["alerts"]
            .as_array()
            .expect("alerts")
            .is_empty(),
        "nothing fires on a healthy cluster"
    );

    // ---- threshold with `for`: pending, then firing -------------------------------------------
    web.set_memory(90);
    let set = Instant::now();
    wait_until("mem high pending", Duration::from_secs(5), || {
        current(port, "mem high", "web-1").is_some_and(|a| a["state"] == "pending")
    });
    assert!(
        notices(&hook, "mem high", "firing").is_empty(),
        "pending does not notify"
    );
    let fired = hook.wait_for("/hook", Duration::from_secs(12), |h| {
        let b = h.json();
        b["rule"] == "mem high" && b["kind"] == "firing"
    });
    let latency = fired.at.duration_since(set);
    println!("mem high: value changed -> notification received in {latency:?} (for 3s, live_interval 1s, Netdata reads /proc every 1s)");
    assert!(
        latency >= Duration::from_secs(3),
        "fired before `for` had passed: {latency:?}"
    );
    let b = fired.json();
    assert_eq!(
        (
            b["node"].as_str(),
            b["state"].as_str(),
            b["severity"].as_str()
        ),
        (Some("web-1"), Some("firing"), Some("warning"))
    );
    assert!(
        (b["value"].as_f64().expect("value") - 90.0).abs() < 1.0,
        "{b}"
    );
    assert_eq!(b["threshold"].as_f64(), Some(80.0));
    assert_eq!(
        b["url"].as_str(),
        Some("https://mon.example.com/nodes/web-1")
    );
    assert!(b["since"].as_str().is_some_and(|s| s.ends_with('Z')), "{b}");
    assert_eq!(
        current(port, "mem high", "web-1").expect("firing")["state"],
        "firing"
    );

    // ---- the dead notifier is retried, then logged as failed; the hook was not held up -------
    wait_until("dead notifier logged", Duration::from_secs(10), || {
        get(port, "/api/alerts/deliveries")["deliveries"]
            .as_array()
            .is_some_and(|d| d.iter().any(|d| d["notifier"] == "dead"))
    });
    let log = get(port, "/api/alerts/deliveries")["deliveries"].clone();
    let of = |n: &str| {
        log.as_array()
            .expect("log")
            .iter()
            .find(|d| d["notifier"] == n && d["rule"] == "mem high")
            .cloned()
            .expect(n)
    };
    let (dead, ok) = (of("dead"), of("hook"));
    assert_eq!(
        (dead["ok"].as_bool(), dead["attempts"].as_u64()),
        (Some(false), Some(3)),
        "{dead}"
    );
    assert!(
        dead["answer"]
            .as_str()
            .is_some_and(|a| a.contains("127.0.0.1")),
        "{dead}"
    );
    assert_eq!(
        (
            ok["ok"].as_bool(),
            ok["attempts"].as_u64(),
            ok["kind"].as_str()
        ),
        (Some(true), Some(1), Some("firing")),
        "{ok}"
    );

    // ---- repeat while firing, until acknowledged ---------------------------------------------
    hook.wait_for("/hook", Duration::from_secs(10), |h| {
        let b = h.json();
        b["rule"] == "mem high" && b["kind"] == "repeat"
    });
    let (status, acked) = send(
        port,
        "POST",
        "/api/alerts/ack",
        Some(json!({"rule": "mem high", "node": "web-1"})),
    );
    assert_eq!(status, 200, "{acked}");
    assert_eq!(acked["acknowledged"]["by"], "local", "{acked}");
    let repeats = notices(&hook, "mem high", "repeat").len();
    let (status, _) = send(
        port,
        "POST",
        "/api/alerts/ack",
        Some(json!({"rule": "cpu", "node": "web-1"})),
    );
    assert_eq!(status, 404, "acknowledging what is not firing");

    // ---- hysteresis: between clear (60) and the threshold (80) it keeps firing ---------------
    web.set_memory(70);
    std::thread::sleep(Duration::from_secs(7));
    assert_eq!(
        notices(&hook, "mem high", "repeat").len(),
        repeats,
        "acknowledged: no more repeats"
    );
    assert!(
        notices(&hook, "mem high", "resolved").is_empty(),
        "70 % is above clear = 60"
    );
    let before = current(port, "mem high", "web-1").expect("still firing");
    assert_eq!(before["state"], "firing");

    // ---- a restart in the middle of a firing alert ---------------------------------------------
    assert!(serve.child.id() > 0);
    let status = std::mem::replace(&mut serve, Serve::start(&d)).stop();
    assert!(status.success(), "serve stopped cleanly: {status:?}");
    std::thread::sleep(Duration::from_secs(5));
    let after = current(port, "mem high", "web-1").expect("the firing alert survives the restart");
    assert_eq!(
        (after["state"].clone(), after["since"].clone()),
        (json!("firing"), before["since"].clone())
    );
    assert_eq!(
        after["acknowledged"]["by"], "local",
        "the acknowledgement survives too"
    );
    assert_eq!(
        notices(&hook, "mem high", "firing").len(),
        1,
        "no second firing notification after the restart"
    );

    // ---- resolve ---------------------------------------------------------------------------
    web.set_memory(50);
    let resolved = hook.wait_for("/hook", Duration::from_secs(8), |h| {
        let b = h.json();
        b["rule"] == "mem high" && b["kind"] == "resolved"
    });
    let b = resolved.json();
    assert_eq!(b["state"], "resolved");
    assert!(b["value"].as_f64().is_some_and(|v| v <= 60.0), "{b}");
    wait_until(
        "mem high gone from /api/alerts",
        Duration::from_secs(3),
        || current(port, "mem high", "web-1").is_none(),
    );
    let ev: Vec<String> = events(port, "mem high")
        .iter()
        .map(|e| e["state"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(ev, vec!["resolved", "firing"], "history, newest first");

    // ---- down: a flap shorter than `for` never notifies; a real outage does ------------------
    web.hang();
    std::thread::sleep(Duration::from_millis(2000));
    web.resume();
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        notices(&hook, "web down", "firing").is_empty(),
        "a 2 s flap is shorter than for = 4s"
    );
    // Netdata stops answering as soon as its shutdown begins: the outage starts before kill()
    // returns.
    let killed = Instant::now();
    web.kill();
    hook.wait_for("/hook", Duration::from_secs(12), |h| {
        let b = h.json();
        b["rule"] == "web down" && b["kind"] == "firing" && b["severity"] == "critical"
    });
    assert!(
        killed.elapsed() >= Duration::from_secs(4),
        "down fired before `for`"
    );
    assert!(
        notices(&hook, "mem high", "firing").len() == 1,
        "a down node does not fire mem high"
    );
    web.restart();
    hook.wait_for("/hook", Duration::from_secs(10), |h| {
        let b = h.json();
        b["rule"] == "web down" && b["kind"] == "resolved"
    });

    // ---- a silence: recorded, not delivered ----------------------------------------------------
    let (status, bad) = send(
        port,
        "POST",
        "/api/alerts/silences",
        Some(json!({"expires": "1h", "comment": "x"})),
    );
    assert_eq!(status, 400, "a silence that matches nothing: {bad}");
    let (status, bad) = send(
        port,
        "POST",
        "/api/alerts/silences",
        Some(json!({"rule": "mem high", "expires": "1h", "comment": " "})),
    );
    assert_eq!(status, 400, "a comment is required: {bad}");
    let (status, silence) = send(
        port,
        "POST",
        "/api/alerts/silences",
        Some(
            json!({"nodes": "web-*", "rule": "mem high", "expires": "10m", "comment": "kernel upgrade"}),
        ),
    );
    assert_eq!(status, 200, "{silence}");
    assert_eq!(silence["active"], true);
    web.set_memory(95);
    wait_until("silenced firing recorded", Duration::from_secs(12), || {
        events(port, "mem high")
            .first()
            .is_some_and(|e| e["state"] == "firing" && e["silenced"] == true)
    });
    assert_eq!(
        current(port, "mem high", "web-1").expect("firing")["silenced"],
        true
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        notices(&hook, "mem high", "firing").len(),
        1,
        "silenced: not delivered"
    );
    let id = silence["id"].as_i64().expect("id");
    let (status, ended) = send(port, "DELETE", &format!("/api/alerts/silences/{id}"), None);
    assert_eq!(
        (status, ended["active"].clone()),
        (200, json!(false)),
        "{ended}"
    );
    assert!(get(port, "/api/alerts/silences")["silences"]
        .as_array()
        .expect("list")
        .iter()
        .any(|s| s["id"] == id && s["active"] == false));
    web.set_memory(50);

    // ---- a maintenance window: recorded, not delivered -----------------------------------------
    db.set_memory(90);
    wait_until(
        "db mem recorded in the window",
        Duration::from_secs(12),
        || {
            events(port, "db mem")
                .first()
                .is_some_and(|e| e["state"] == "firing" && e["silenced"] == true)
        },
    );
    let config = get(port, "/api/alerts/config");
    assert_eq!(config["maintenance"][0]["open_now"], true, "{config}");
    assert!(
        notices(&hook, "db mem", "firing").is_empty(),
        "in maintenance: not delivered"
    );

    // ---- storm: 20 nodes fire at once -> 5 at once, the other 15 in one grouped notification ---
    storm.set_memory(90);
    let group = hook.wait_for("/hook", Duration::from_secs(20), |h| {
        let b = h.json();
        b["rule"] == "storm mem" && b["alerts"].as_array().is_some_and(|a| a.len() > 1)
    });
    std::thread::sleep(Duration::from_secs(1));
    let all = notices(&hook, "storm mem", "firing");
    assert_eq!(
        all.len(),
        6,
        "5 single notifications and 1 grouped: {all:#?}"
    );
    let grouped = group.json()["alerts"].as_array().expect("alerts").len();
    assert_eq!(grouped, 15);
    let mut named: Vec<String> = all
        .iter()
        .flat_map(|b| b["alerts"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a["node"].as_str().map(str::to_string))
        .collect();
    named.sort();
    let want: Vec<String> = (1..=20).map(|i| format!("storm-{i:02}")).collect();
    assert_eq!(named, want, "every node named exactly once");
    drop(serve);
}
