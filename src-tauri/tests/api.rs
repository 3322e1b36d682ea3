//! The HTTP API of `dsmon serve` against real Netdata agents: every endpoint and every bad-input case.

mod harness;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use harness::{
    http_get_full, unix_now, wait_for_tick, wait_until, Dsmon, Machine, NetdataAgent, Serve,
};

const M2: Machine = Machine {
    cpu_user: 5,
    cpu_system: 15,
    mem_used: 75,
    disk_quarters: 2,
    net_in_kbps: 400,
    net_out_kbps: 80,
};

/// Reads `n` Server-Sent Events from `/api/live/stream`; returns their ids and JSON data.
fn read_events(port: u16, n: usize) -> Vec<(u64, serde_json::Value)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        s,
        "GET /api/live/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
    )
    .expect("write");
    let mut r = BufReader::new(s);
    let mut events = Vec::new();
    let (mut id, mut data) = (None, String::new());
    let mut line = String::new();
    let mut head = String::new();
    // The head first.
    loop {
        line.clear();
        r.read_line(&mut line).expect("head");
        if line == "\r\n" {
            break;
        }
        head.push_str(&line.to_lowercase());
    }
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    while events.len() < n {
        line.clear();
        r.read_line(&mut line).expect("event line");
        // Chunked transfer: skip the chunk-size lines.
        let l = line.trim_end();
        if let Some(v) = l.strip_prefix("id: ").or_else(|| l.strip_prefix("id:")) {
            id = v.trim().parse().ok();
        } else if let Some(v) = l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")) {
            data.push_str(v);
        } else if l.is_empty() && !data.is_empty() {
            let json = serde_json::from_str(&data).expect("event JSON");
            events.push((id.take().expect("event id"), json));
            data.clear();
        }
    }
    events
}

#[test]
fn live_nodes_stream_and_history_against_real_agents() {
    let mut agents = [
        NetdataAgent::start("alpha", Machine::STANDARD),
        NetdataAgent::start("beta", M2),
    ];
    let nodes: String = agents.iter().map(NetdataAgent::node_toml).collect();
    let d = Dsmon::new(&format!(
        "[collector]\nlog_interval = \"5s\"\nlive_interval = \"500ms\"\ntimeout = \"400ms\"\n\n{nodes}"
    ));
    let ready = unix_now();
    let serve = Serve::start(&d);

    // Live: both nodes up with their machines' current values.
    wait_until("both nodes up", Duration::from_secs(5), || {
        let n = serve.json("/api/nodes", 200);
        n.as_array()
            .is_some_and(|a| a.len() == 2 && a.iter().all(|x| x["state"] == "up"))
    });
    let live = serve.json("/api/live", 200);
    assert_eq!(live["interval_ms"], 500);
    let alpha = &live["nodes"][0];
    assert_eq!(alpha["name"], "alpha");
    harness::assert_close("live cpu", &alpha["metrics"]["cpu_pct"], 40.0, 0.2);
    harness::assert_close("live mem", &alpha["metrics"]["mem_pct"], 50.0, 0.1);
    harness::assert_close(
        "live disk",
        &live["nodes"][1]["metrics"]["disk_pct"],
        50.0,
        0.1,
    );
    harness::assert_close(
        "live net in",
        &live["nodes"][1]["metrics"]["net_in_kbps"],
        400.0,
        20.0,
    );

    // The stream: consecutive snapshots, one per live interval.
    let t0 = Instant::now();
    let events = read_events(serve.port, 4);
    let took = t0.elapsed();
    let ids: Vec<u64> = events.iter().map(|(id, _)| *id).collect();
    assert!(
        ids.windows(2).all(|w| w[1] == w[0] + 1),
        "snapshots in order, none missed: {ids:?}"
    );
    assert!(
        took < Duration::from_secs(3),
        "4 snapshots at 500 ms took {took:?}"
    );
    assert_eq!(events[3].1["nodes"].as_array().map(Vec::len), Some(2));

    // A node that stops answering turns down within two live intervals (plus the 400 ms timeout).
    agents[1].kill();
    let stopped = Instant::now();
    wait_until("beta down", Duration::from_millis(2500), || {
        serve.json("/api/nodes", 200)[1]["state"] == "down"
    });
    assert!(
        stopped.elapsed() < Duration::from_millis(1500),
        "down after {:?}",
        stopped.elapsed()
    );
    let n = serve.json("/api/nodes", 200);
    assert!(
        n[1]["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("connection failed"),
        "{n}"
    );
    assert!(
        n[1]["since"].is_string() && n[1]["last_seen"].is_string(),
        "{n}"
    );
    assert_eq!(n[0]["state"], "up");

    // History: the logger's next tick, averaged per bucket.
    let tick = wait_for_tick(5, ready, 1.0);
    std::thread::sleep(Duration::from_millis(800));
    let h = serve.json("/api/history?from=-10m&points=100", 200);
    assert_eq!(h["tier"], "raw");
    let t = h["t"].as_array().expect("t").clone();
    let step = h["step"].as_i64().expect("step");
    let i = t
        .iter()
        .position(|x| x.as_i64().is_some_and(|b| b <= tick && tick < b + step))
        .unwrap_or_else(|| panic!("a bucket for {tick} in {t:?}"));
    let alpha = &h["nodes"][0];
    harness::assert_close(
        "history cpu avg",
        &alpha["metrics"]["cpu_pct"]["avg"][i],
        40.0,
        0.05,
    );
    harness::assert_close(
        "history cpu max",
        &alpha["metrics"]["cpu_pct"]["max"][i],
        40.0,
        0.05,
    );
    assert_eq!(alpha["availability_series"][i], 1.0);
    let beta = &h["nodes"][1];
    assert!(
        beta["metrics"]["cpu_pct"]["avg"][i].is_null(),
        "a down node's bucket is a gap: {beta}"
    );
    assert_eq!(beta["availability_series"][i], 0.0);

    let (status, head, csv) =
        http_get_full(serve.port, "/api/history.csv?from=-10m&node=alpha").expect("csv");
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/csv"), "{head}");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "ts,node,cpu_pct,mem_pct,disk_pct,net_in_kbps,net_out_kbps,error"
    );
    assert!(
        lines.len() >= 2 && lines[1..].iter().all(|l| l.contains(",alpha,")),
        "{csv}"
    );

    let status = serve.stop();
    assert!(status.success(), "serve exit: {status}");
}

#[test]
fn bad_input_is_a_400_with_a_json_error() {
    let d = Dsmon::new("[[nodes]]\nname = \"n1\"\nurl = \"http://127.0.0.1:9\"\n");
    let serve = Serve::start(&d);
    for (path, expect) in [
        ("/api/history?from=now&to=-1h", "is after"),
        ("/api/history?from=tomorrowish", "is not a time"),
        (
            "/api/history?from=-1h&points=0",
            "points must be between 1 and 5000",
        ),
        (
            "/api/history?from=-1h&points=5001",
            "points must be between 1 and 5000",
        ),
        (
            "/api/history?from=-1h&points=many",
            "points must be between 1 and 5000",
        ),
        ("/api/history?from=-1h&node=nope", "unknown node \"nope\""),
        (
            "/api/history?from=-1h&colour=red",
            "unknown parameter \"colour\"",
        ),
        ("/api/history.csv?from=now&to=-1h", "is after"),
        (
            "/api/history.csv?from=-1h&node=nope",
            "unknown node \"nope\"",
        ),
        (
            "/api/history.csv?from=-1h&points=5",
            "points does not apply",
        ),
    ] {
        let body = serve.json(path, 400);
        let e = body["error"].as_str().unwrap_or_default();
        assert!(e.contains(expect), "{path}: want {expect:?} in {body}");
        assert_eq!(body["kind"], "bad_request", "{path}: {body}");
    }
    let body = serve.json("/api/nope", 404);
    assert!(body["error"].is_string());
    assert_eq!(
        body["kind"], "not_found",
        "the documented ErrorBody: {body}"
    );
    openapi_document_is_valid(&serve);
    // A node that never answered: its rows are failures, its availability 0, its values gaps.
    // (The first tick is logged at start, on its own task: wait for its row, not for a guess.)
    wait_until("the first tick logged", Duration::from_secs(10), || {
        !serve.json("/api/history?from=-1h", 200)["nodes"][0]["availability"].is_null()
    });
    let h = serve.json("/api/history?from=-1h", 200);
    assert_eq!(h["nodes"][0]["name"], "n1");
    assert_eq!(h["nodes"][0]["availability"], 0.0);
    let avg = h["nodes"][0]["metrics"]["cpu_pct"]["avg"]
        .as_array()
        .expect("avg")
        .clone();
    assert!(
        !avg.is_empty() && avg.iter().all(serde_json::Value::is_null),
        "{avg:?}"
    );
}

/// `GET /api/openapi.json` of a running `dsmon serve`: OpenAPI 3.1 with paths, valid by
/// openapi-spec-validator (PyPI; `scripts/setup-debian.sh` installs it in /opt/dsmon-openapi).
fn openapi_document_is_valid(serve: &Serve) {
    let doc = serve.json("/api/openapi.json", 200);
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1.")),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.contains_key("/api/history"), "{:?}", paths.keys());
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, doc.to_string()).expect("write the document");
    let validator = "/opt/dsmon-openapi/bin/openapi-spec-validator";
    let out = std::process::Command::new(validator)
        .args(["--schema", "3.1"])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("{validator}: {e} (run scripts/setup-debian.sh)"));
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.contains(": OK"), "{said}");
}

#[test]
fn unix_socket_is_0660_and_removed_on_shutdown() {
    use std::os::unix::fs::PermissionsExt;
    let d = Dsmon::new("");
    let sock = d.dir.join("dsmon.sock");
    let text = std::fs::read_to_string(&d.config).expect("config");
    let text = text.replace(
        &format!("listen = \"127.0.0.1:{}\"", d.port),
        &format!("listen = \"unix:{}\"", sock.display()),
    );
    // A unix socket is for a proxy, so it needs sign-in configured (the provider is only
    // contacted at the first sign-in, so none runs here).
    let text = format!("{text}\n[auth]\nissuer = \"http://127.0.0.1:9\"\nclient_id = \"dsmon\"\nclient_secret = \"x\"\nredirect_url = \"https://monitor.example.com/auth/callback\"\n");
    std::fs::write(&d.config, text).expect("config");
    let mut child = d.command(&["serve"]).spawn().expect("serve");
    wait_until("socket", Duration::from_secs(10), || sock.exists());
    let mode = std::fs::metadata(&sock).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    let mut s = std::os::unix::net::UnixStream::connect(&sock).expect("connect");
    write!(s, "GET /healthz HTTP/1.0\r\n\r\n").expect("write");
    let mut buf = String::new();
    std::io::Read::read_to_string(&mut s, &mut buf).expect("read");
    assert!(
        buf.starts_with("HTTP/1.0 200") && buf.ends_with("ok"),
        "{buf}"
    );
    // SAFETY: our child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().expect("wait").success());
    assert!(!sock.exists(), "socket removed on shutdown");
}

#[test]
fn import_keeps_retired_nodes_and_reports_bad_lines() {
    let d = Dsmon::new("[[nodes]]\nname = \"n1\"\nurl = \"http://127.0.0.1:9\"\n");
    let csv = d.dir.join("in.csv");
    std::fs::write(
        &csv,
        "ts,node,cpu_pct,mem_pct,disk_pct,net_in_kbps,net_out_kbps,error\n\
         2026-11-24T10:00:00Z,n1,10,20,30,40,50,\n\
         2026-11-24T10:00:00Z,gone,60,70,80,90,100,\n\
         2026-11-24T10:10:00Z,gone,,,,,,no answer within 3s\n",
    )
    .expect("csv");
    let r = d.run(&["import", csv.to_str().expect("utf-8")]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("3 rows, 3 new, 0 already present"),
        "{r:?}"
    );
    let r = d.run(&["import", csv.to_str().expect("utf-8")]);
    assert!(
        r.stdout.contains("3 rows, 0 new, 3 already present"),
        "{r:?}"
    );

    let serve = Serve::start(&d);
    let h = serve.json(
        "/api/history?from=2026-11-24T09:00:00Z&to=2026-11-24T11:00:00Z&points=12",
        200,
    );
    let gone = &h["nodes"][1];
    assert_eq!(
        (gone["name"].as_str(), gone["retired"].as_bool()),
        (Some("gone"), Some(true))
    );
    assert_eq!(gone["availability"], 0.5);
    drop(serve);
    let before = d.rows();

    let bad = d.dir.join("bad.csv");
    std::fs::write(
        &bad,
        "ts,node,cpu_pct,mem_pct,disk_pct,net_in_kbps,net_out_kbps,error\n\
         2026-11-24T11:00:00Z,n1,1,2,3,4,5,\n\
         2026-11-24T11:10:00Z,n1,1,2,x,4,5,\n",
    )
    .expect("csv");
    let r = d.run(&["import", bad.to_str().expect("utf-8")]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("line 3: disk_pct \"x\" is not a number"),
        "{r:?}"
    );
    assert_eq!(d.rows(), before, "nothing of the bad file was written");
}
