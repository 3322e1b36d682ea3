//! PostgreSQL as the store, end to end: `dsmon serve` logging real Netdata agents into a
//! throw-away PostgreSQL 15 cluster (one row per node per tick, history served from it), and
//! `dsmon migrate --to` copying a SQLite history there, twice without duplicating; two instances
//! on one database (one leader, a killed leader replaced; a sign-in started on one finished on the
//! other) and PostgreSQL stopped and started again under them.

mod harness;

use std::collections::BTreeMap;
use std::fs;

use harness::postgres::{shared, Cluster};
use harness::{rfc3339, unix_now, wait_for_tick, Dsmon, Machine, NetdataAgent, Serve};

/// A `Dsmon` whose `[storage]` is database `db` of `cluster` (the rest of the file as given).
fn dsmon_on(cluster: &Cluster, db: &str, rest: &str) -> Dsmon {
    let d = Dsmon::new(rest);
    let text = fs::read_to_string(&d.config).expect("config");
    let text = text.replacen(
        &format!("path = \"{}\"", d.db.display()),
        &format!("url = \"{}\"", cluster.url(db)),
        1,
    );
    fs::write(&d.config, text).expect("config");
    d
}

fn pg(cluster: &Cluster, db: &str) -> postgres::Client {
    postgres::Client::connect(&cluster.url(db), postgres::NoTls).expect("connect")
}

#[test]
fn serve_logs_every_node_once_per_tick_into_postgres() {
    let cluster = shared();
    let db = cluster.create_db();
    let agents: Vec<NetdataAgent> = ["pgone", "pgtwo"]
        .iter()
        .map(|n| NetdataAgent::start(n, Machine::STANDARD))
        .collect();
    let nodes: String = agents.iter().map(NetdataAgent::node_toml).collect();
    let dsmon = dsmon_on(
        &cluster,
        &db,
        &format!("[collector]\nlog_interval = \"2s\"\ntimeout = \"1s\"\n\n{nodes}"),
    );
    // collect --once writes into PostgreSQL (the schema is created by this first start).
    let tick = wait_for_tick(2, unix_now(), 0.0);
    let once = dsmon.run(&["collect", "--once"]);
    assert_eq!(once.code, 0, "{once:?}");
    assert!(
        once.stdout.contains(&format!("tick {}", rfc3339(tick)))
            && once.stdout.contains("2 rows written"),
        "{once:?}"
    );
    assert!(
        once.stdout
            .contains(&format!("127.0.0.1:{}/{db}", cluster.port)),
        "the database is named: {once:?}"
    );

    let serve = Serve::start(&dsmon);
    std::thread::sleep(std::time::Duration::from_millis(6500));
    let h = serve.json("/api/history?from=-10m&points=100", 200);
    assert!(
        h.to_string().contains("pgone"),
        "history from PostgreSQL: {h}"
    );
    assert!(serve.stop().success());

    // Every tick: exactly one row per node, none skipped.
    let rows = dsmon.rows();
    let mut per_tick: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in &rows {
        per_tick
            .entry(r["ts"].as_str().unwrap_or_default().to_string())
            .or_default()
            .push(r["node"].as_str().unwrap_or_default().to_string());
    }
    assert!(per_tick.len() >= 3, "{per_tick:#?}");
    for (ts, nodes) in &per_tick {
        assert_eq!(
            nodes,
            &vec!["pgone".to_string(), "pgtwo".to_string()],
            "tick {ts}"
        );
    }
    let ticks: Vec<i64> = per_tick
        .keys()
        .map(|t| {
            chrono::DateTime::parse_from_rfc3339(t)
                .expect("ts")
                .timestamp()
        })
        .collect();
    assert!(ticks.windows(2).all(|w| w[1] - w[0] == 2), "{ticks:?}");
    // The rows are really in PostgreSQL, and every roll-up tier counts each once.
    let mut c = pg(&cluster, &db);
    let n: i64 = c
        .query_one("SELECT count(*) FROM samples", &[])
        .expect("count")
        .get(0);
    assert_eq!(n as usize, rows.len());
    for tier in ["rollup_30m", "rollup_1d"] {
        let s: i64 = c
            .query_one(&format!("SELECT sum(n_rows)::int8 FROM {tier}"), &[])
            .expect("sum")
            .get(0);
        assert_eq!(s, n, "{tier}");
    }
}

#[test]
fn migrate_copies_a_sqlite_history_and_can_run_twice() {
    let cluster = shared();
    let db = cluster.create_db();
    // A SQLite history: rows imported from CSV, a user with a session, audit entries.
    let sqlite = Dsmon::new("");
    let csv = sqlite.dir.join("rows.csv");
    let mut text =
        String::from("ts,node,cpu_pct,mem_pct,disk_pct,net_in_kbps,net_out_kbps,error\n");
    for i in 0..300i64 {
        let ts = rfc3339(1_795_478_400 + i * 600);
        text.push_str(&format!("{ts},a,{}.5,50,25,1000,2000,\n", i % 90));
        if i % 7 == 0 {
            text.push_str(&format!("{ts},b,,,,,,connection failed: refused\n"));
        } else {
            text.push_str(&format!("{ts},b,10,20,30,40,50,\n"));
        }
    }
    fs::write(&csv, text).expect("csv");
    let r = sqlite.run(&["import", csv.to_str().expect("utf-8")]);
    assert_eq!(r.code, 0, "{r:?}");
    {
        let c = rusqlite::Connection::open(&sqlite.db).expect("sqlite");
        c.execute_batch(
            "INSERT INTO users (email, sub, issuer, name, first_seen, last_sign_in, role)
               VALUES ('a@x.org', 's1', 'https://idp', 'A', 100, 200, 'admin');
             INSERT INTO sessions (id_hash, email, created, expires, last_seen)
               VALUES ('h1', 'a@x.org', 200, 99999999999, 210);
             INSERT INTO audit (ts, actor, action, target) VALUES (200, 'a@x.org', 'sign_in', NULL);
             INSERT INTO audit (ts, actor, action, target, detail, count, last_ts)
               VALUES (300, NULL, 'sign_in_refused', NULL, 'bad state', 5, 340);
             INSERT INTO alert_events (at, rule, node, severity, state, value, threshold)
               VALUES (400, 'cpu high', 'a', 'warning', 'firing', 95.0, 90.0);
             INSERT INTO api_tokens (name, role, hash, created, created_by, expires, last_used)
               VALUES ('ci', 'user', 'th1', 250, 'a@x.org', NULL, 260);",
        )
        .expect("auth rows");
    }
    let target = cluster.url(&db);
    let first = sqlite.run(&["migrate", "--to", &target]);
    assert_eq!(first.code, 0, "{first:?}");
    assert!(
        first.stdout.contains("rows: 600 read, 600 new")
            && first.stdout.contains("users: 1 read, 1 new")
            && first.stdout.contains("API tokens: 1 read, 1 new")
            && first.stdout.contains("audit entries: 2 read, 2 new"),
        "{first:?}"
    );
    let second = sqlite.run(&["migrate", "--to", &target]);
    assert_eq!(second.code, 0, "{second:?}");
    for kind in [
        "rows: 600",
        "users: 1",
        "sessions: 1",
        "API tokens: 1",
        "audit entries: 2",
        "alert events: 1",
    ] {
        assert!(
            second.stdout.contains(&format!("{kind} read, 0 new")),
            "{kind}: nothing twice: {second:?}"
        );
    }
    let mut c = pg(&cluster, &db);
    let one =
        |c: &mut postgres::Client, sql: &str| -> i64 { c.query_one(sql, &[]).expect(sql).get(0) };
    assert_eq!(one(&mut c, "SELECT count(*) FROM samples"), 600);
    assert_eq!(
        one(
            &mut c,
            "SELECT count(*) FROM samples WHERE error IS NOT NULL"
        ),
        43
    );
    for (tier, _) in dsmon::store::ROLLUPS {
        assert_eq!(
            one(&mut c, &format!("SELECT sum(n_rows)::int8 FROM {tier}")),
            600,
            "{tier}"
        );
    }
    // The roll-ups equal SQLite's (sums up to the order of addition).
    let s = rusqlite::Connection::open(&sqlite.db).expect("sqlite");
    let sqlite_sum: f64 = s
        .query_row("SELECT sum(cpu_pct_sum) FROM rollup_1h", [], |r| r.get(0))
        .expect("sum");
    let pg_sum: f64 = c
        .query_one("SELECT sum(cpu_pct_sum) FROM rollup_1h", &[])
        .expect("sum")
        .get(0);
    assert!(
        (sqlite_sum - pg_sum).abs() < 1e-6,
        "{sqlite_sum} vs {pg_sum}"
    );
    assert_eq!(one(&mut c, "SELECT count(*) FROM audit"), 2);
    assert_eq!(
        one(
            &mut c,
            "SELECT count FROM audit WHERE action = 'sign_in_refused'"
        ),
        5
    );
    assert_eq!(
        one(
            &mut c,
            "SELECT last_seen FROM sessions WHERE id_hash = 'h1'"
        ),
        210
    );
    assert_eq!(
        one(
            &mut c,
            "SELECT last_used FROM api_tokens WHERE hash = 'th1' AND name = 'ci'"
        ),
        260
    );
    // `dsmon export` from PostgreSQL gives what SQLite gave.
    let on_pg = dsmon_on(&cluster, &db, "");
    let from_sqlite = sqlite.run(&["export", "--from", "2026-01-01", "--to", "2027-01-01"]);
    let from_pg = on_pg.run(&["export", "--from", "2026-01-01", "--to", "2027-01-01"]);
    assert_eq!(from_pg.code, 0, "{from_pg:?}");
    assert_eq!(from_pg.stdout, from_sqlite.stdout);
    // A URL carrying a password is refused without repeating it.
    let bad = sqlite.run(&["migrate", "--to", "postgres://u:hunter2@127.0.0.1/x"]);
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(!bad.stderr.contains("hunter2"), "{bad:?}");
}

/// `dsmon serve` of `d` with its standard error in `log`.
fn serve_logged(d: &Dsmon, log: &std::path::Path) -> std::process::Child {
    let child = d
        .command(&["serve"])
        .env("DSMON_LOG", "info")
        .stderr(fs::File::create(log).expect("log"))
        .spawn()
        .expect("serve");
    let start = std::time::Instant::now();
    while !matches!(harness::http_get(d.port, "/healthz"), Ok((200, ref b)) if b == "ok") {
        assert!(
            start.elapsed().as_secs() < 15,
            "serve did not answer /healthz"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child
}

/// The backend pid holding the leader lock, if any.
fn leader_pid(c: &mut postgres::Client) -> Option<i32> {
    c.query_opt(
        // The key 0x6473_6d6f_6e10: its high and low 32 bits.
        // Advisory locks are per database: the other tests of this file lead on theirs.
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted \
         AND classid = 25715 AND objid = 1836019216 AND objsubid = 1 \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        &[],
    )
    .expect("pg_locks")
    .map(|r| r.get(0))
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: signalling a child of this test.
    unsafe { libc::kill(pid as i32, sig) };
}

#[test]
fn two_instances_one_leader_and_a_killed_leader_is_replaced_with_its_ticks_backfilled() {
    let cluster = shared();
    let db = cluster.create_db();
    let agents: Vec<NetdataAgent> = ["leadone", "leadtwo"]
        .iter()
        .map(|n| NetdataAgent::start(n, Machine::STANDARD))
        .collect();
    let nodes: String = agents.iter().map(NetdataAgent::node_toml).collect();
    let rest = format!("[collector]\nlog_interval = \"2s\"\ntimeout = \"1s\"\n\n{nodes}");
    let (a, b) = (
        dsmon_on(&cluster, &db, &rest),
        dsmon_on(&cluster, &db, &rest),
    );
    let (log_a, log_b) = (a.dir.join("serve.log"), b.dir.join("serve.log"));
    let mut first = serve_logged(&a, &log_a);
    std::thread::sleep(std::time::Duration::from_secs(3));
    let mut second = serve_logged(&b, &log_b);
    std::thread::sleep(std::time::Duration::from_secs(4));
    let mut c = pg(&cluster, &db);
    let old = leader_pid(&mut c).expect("a leader");
    let lead_a = fs::read_to_string(&log_a).unwrap_or_default();
    let lead_b = fs::read_to_string(&log_b).unwrap_or_default();
    assert!(lead_a.contains("leader of the instances"), "{lead_a}");
    assert!(
        !lead_b.contains("leader of the instances"),
        "one leader only: {lead_b}"
    );
    // Both serve the API from the shared database.
    for port in [a.port, b.port] {
        let (status, body) =
            harness::http_get(port, "/api/history?from=-10m&points=50").expect("GET");
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("leadone"), "{body}");
    }

    // kill -9 of the leader; the other is held still for 5 s so that ticks are surely missed.
    signal(first.id(), libc::SIGKILL);
    let killed = std::time::Instant::now();
    let _ = first.wait();
    signal(second.id(), libc::SIGSTOP);
    std::thread::sleep(std::time::Duration::from_secs(5));
    signal(second.id(), libc::SIGCONT);
    let took_over = loop {
        if leader_pid(&mut c).is_some_and(|p| p != old) {
            break killed.elapsed();
        }
        assert!(killed.elapsed().as_secs() < 20, "nobody took over");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    println!(
        "takeover {:.1} s after kill -9 (5 s of it frozen)",
        took_over.as_secs_f64()
    );
    assert!(took_over.as_secs() < 15, "{took_over:?}");
    std::thread::sleep(std::time::Duration::from_secs(5));
    signal(second.id(), libc::SIGTERM);
    assert!(second.wait().expect("wait").success());
    let log = fs::read_to_string(&log_b).unwrap_or_default();
    assert!(
        log.contains("backfilling the ticks logged by nobody"),
        "{log}"
    );

    // Every tick from the first to the last: exactly one row per node, none missing.
    let rows = a.rows();
    let mut per_tick: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for r in &rows {
        let ts = chrono::DateTime::parse_from_rfc3339(r["ts"].as_str().unwrap_or_default())
            .expect("ts")
            .timestamp();
        per_tick
            .entry(ts)
            .or_default()
            .push(r["node"].as_str().unwrap_or_default().to_string());
    }
    let ticks: Vec<i64> = per_tick.keys().copied().collect();
    assert!(ticks.len() >= 8, "{ticks:?}");
    assert!(
        ticks.windows(2).all(|w| w[1] - w[0] == 2),
        "a tick is missing: {ticks:?}"
    );
    for (ts, nodes) in &per_tick {
        assert_eq!(
            nodes,
            &vec!["leadone".to_string(), "leadtwo".to_string()],
            "tick {ts}"
        );
    }
}

/// Ticks of `rows` (Unix seconds) with the nodes logged at each.
fn per_tick(rows: &[serde_json::Value]) -> BTreeMap<i64, Vec<String>> {
    let mut out: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for r in rows {
        let ts = chrono::DateTime::parse_from_rfc3339(r["ts"].as_str().unwrap_or_default())
            .expect("ts")
            .timestamp();
        out.entry(ts)
            .or_default()
            .push(r["node"].as_str().unwrap_or_default().to_string());
    }
    out
}

/// Two instances on one database with sign-in: a sign-in started on one is finished on the
/// other and the session works on both; then PostgreSQL is stopped (its own cluster here, the
/// others' is shared) — the live view goes on for the signed-in browser, what needs the database
/// answers a 503 JSON, and once PostgreSQL is back no tick is missing or doubled.
#[test]
fn instances_share_sign_in_and_a_database_outage_loses_no_tick() {
    // The browser is async (reqwest); PostgreSQL's client and the processes are not.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    use harness::oidc::{auth_toml, Agent, Callback, Provider, CLIENT_SECRET};
    use reqwest::StatusCode;

    let cluster = Cluster::start();
    let db = cluster.create_db();
    let agent = NetdataAgent::start("pgoutage", Machine::STANDARD);
    let rest = format!(
        "[collector]\nlog_interval = \"2s\"\nlive_interval = \"1s\"\ntimeout = \"1s\"\n\n{}",
        agent.node_toml()
    );
    let (a, b) = (
        dsmon_on(&cluster, &db, &rest),
        dsmon_on(&cluster, &db, &rest),
    );
    // Behind one public address both instances have the same redirect URL: here a's.
    let provider = Provider::start(&format!("http://127.0.0.1:{}/auth/callback", a.port));
    let auth = auth_toml(&a, &provider.issuer);
    for d in [&a, &b] {
        fs::write(d.dir.join("client_secret"), format!("{CLIENT_SECRET}\n")).expect("secret");
        let text = fs::read_to_string(&d.config).expect("config");
        fs::write(&d.config, format!("{text}{auth}")).expect("config");
    }
    let (log_a, log_b) = (a.dir.join("serve.log"), b.dir.join("serve.log"));
    let mut first = serve_logged(&a, &log_a);
    let mut second = serve_logged(&b, &log_b);

    // The sign-in starts at a (its login cookie, its pending attempt in the database) and the
    // provider's redirect is answered by b.
    let browser = Agent::new(a.port);
    let Callback(url) = rt.block_on(browser.login_at_provider("alice@example.com", "/live"));
    let at_b = url.replacen(&format!(":{}/", a.port), &format!(":{}/", b.port), 1);
    assert_ne!(at_b, url);
    let r = rt.block_on(browser.callback(&Callback(at_b)));
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "callback at b");
    let on_b = Agent {
        http: browser.http.clone(),
        base: format!("http://127.0.0.1:{}", b.port),
    };
    for (who, ag) in [("a", &browser), ("b", &on_b)] {
        let (st, _, body) = rt.block_on(ag.get("/api/me"));
        assert_eq!(st, StatusCode::OK, "session on {who}: {body}");
        assert!(body.contains("alice@example.com"), "{who}: {body}");
    }
    // Rows are being logged before the outage.
    harness::wait_until(
        "a first logged tick",
        std::time::Duration::from_secs(10),
        || !a.rows().is_empty(),
    );

    cluster.stop();
    let stopped = std::time::Instant::now();
    for (who, ag) in [("a", &browser), ("b", &on_b)] {
        let (st, _, body) = rt.block_on(ag.get("/api/live"));
        assert_eq!(
            st,
            StatusCode::OK,
            "live on {who} without the database: {body}"
        );
        assert!(body.contains("pgoutage"), "{body}");
        let (st, head, body) = rt.block_on(ag.get("/api/history?from=-10m&points=50"));
        assert_eq!(
            st,
            StatusCode::SERVICE_UNAVAILABLE,
            "history on {who}: {body}"
        );
        let v: serde_json::Value = serde_json::from_str(&body).expect("a JSON body");
        assert_eq!(v["kind"], "database_unavailable", "{v}");
        assert!(
            v["error"].as_str().is_some_and(|e| e.contains("database")),
            "{v}"
        );
        assert_eq!(
            head.get("retry-after").map(|h| h.as_bytes()),
            Some(&b"5"[..])
        );
    }
    // A session the instance has not seen cannot be checked: 503, not a sign-out.
    let (st, body) = rt.block_on(async {
        let r = reqwest::Client::new()
            .get(format!("http://127.0.0.1:{}/api/me", a.port))
            .header("cookie", "dsmon_session=not-a-session-anyone-has")
            .send()
            .await
            .expect("GET /api/me");
        (r.status(), r.text().await.unwrap_or_default())
    });
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{body}");

    // Down for at least three ticks, then back.
    let down = std::time::Duration::from_secs(7);
    std::thread::sleep(down.saturating_sub(stopped.elapsed()));
    cluster.restart();
    let back = std::time::Instant::now();
    let (st, _, body) = rt.block_on(browser.get("/api/history?from=-10m&points=50"));
    assert!(
        st == StatusCode::OK || st == StatusCode::SERVICE_UNAVAILABLE,
        "{st}: {body}"
    );
    while rt
        .block_on(browser.get("/api/history?from=-10m&points=50"))
        .0
        != StatusCode::OK
    {
        assert!(back.elapsed().as_secs() < 15, "history not served again");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    println!(
        "history answered again {:.1} s after PostgreSQL restarted",
        back.elapsed().as_secs_f64()
    );
    // Let the leader lead again and log a few ticks past the outage.
    std::thread::sleep(std::time::Duration::from_secs(8));
    for c in [&mut first, &mut second] {
        signal(c.id(), libc::SIGTERM);
        assert!(c.wait().expect("wait").success());
    }
    let logs = format!(
        "{}{}",
        fs::read_to_string(&log_a).unwrap_or_default(),
        fs::read_to_string(&log_b).unwrap_or_default()
    );
    let ticks = per_tick(&a.rows());
    let ts: Vec<i64> = ticks.keys().copied().collect();
    assert!(ts.len() >= 8, "{ts:?}\n{logs}");
    assert!(
        ts.windows(2).all(|w| w[1] - w[0] == 2),
        "a tick is missing around the outage: {ts:?}\n{logs}"
    );
    for (t, nodes) in &ticks {
        assert_eq!(nodes, &vec!["pgoutage".to_string()], "tick {t}: {logs}");
    }
    assert!(
        logs.contains("backfilling the ticks logged by nobody"),
        "the outage's ticks came from the agents: {logs}"
    );
}

/// Alerts on two instances: the follower evaluates the same polls (its /api/alerts shows the
/// alert) but sends nothing; an acknowledgement made on the follower stops the leader's repeats.
#[test]
fn a_follower_shows_the_alerts_and_its_acknowledgement_stops_the_leaders_repeats() {
    use harness::receiver::Receiver;
    let cluster = shared();
    let db = cluster.create_db();
    let hook = Receiver::start(|_, _| (200, "ok".into()));
    // A node nobody answers for: `node down` fires after 2 s and repeats every 3 s.
    let closed = harness::free_port();
    let rest = format!(
        "[collector]\nlive_interval = \"1s\"\ntimeout = \"500ms\"\n\n\
         [[nodes]]\nname = \"gone\"\nurl = \"http://127.0.0.1:{closed}\"\n\n\
         [[alerts.notifiers]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{}\"\n\n\
         [[alerts.rules]]\nname = \"node down\"\nmetric = \"down\"\nfor = \"2s\"\nrepeat = \"3s\"\n\
         severity = \"critical\"\nnotify = [\"hook\"]\n",
        hook.url("/hook")
    );
    let (a, b) = (
        dsmon_on(&cluster, &db, &rest),
        dsmon_on(&cluster, &db, &rest),
    );
    let (log_a, log_b) = (a.dir.join("serve.log"), b.dir.join("serve.log"));
    let mut first = serve_logged(&a, &log_a);
    let mut c = pg(&cluster, &db);
    harness::wait_until("a leader", std::time::Duration::from_secs(10), || {
        leader_pid(&mut c).is_some()
    });
    let mut second = serve_logged(&b, &log_b);
    let kind_of =
        |h: &harness::receiver::Hit| h.json()["kind"].as_str().unwrap_or_default().to_string();
    hook.wait_for("/hook", std::time::Duration::from_secs(15), |h| {
        kind_of(h) == "repeat"
    });
    // The follower's page shows it, firing.
    let firing_on_b = |want_ack: bool| {
        let (st, v) = harness::http_json(b.port, "GET", "/api/alerts", None);
        assert_eq!(st, 200, "{v}");
        v["alerts"].as_array().is_some_and(|l| {
            l.iter().any(|x| {
                x["node"] == "gone"
                    && x["state"] == "firing"
                    && x["acknowledged"].is_object() == want_ack
            })
        })
    };
    harness::wait_until(
        "the alert firing on the follower",
        std::time::Duration::from_secs(10),
        || firing_on_b(false),
    );
    let (st, v) = harness::http_json(
        b.port,
        "POST",
        "/api/alerts/ack",
        Some(serde_json::json!({"rule": "node down", "node": "gone"})),
    );
    assert_eq!(st, 200, "ack on the follower: {v}");
    // The leader takes it within its next look at the database (2 s): no repeat after that.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let repeats = hook
        .hits("/hook")
        .iter()
        .filter(|h| kind_of(h) == "repeat")
        .count();
    std::thread::sleep(std::time::Duration::from_secs(7));
    let hits = hook.hits("/hook");
    let kinds: Vec<String> = hits.iter().map(kind_of).collect();
    assert_eq!(
        kinds.iter().filter(|k| *k == "repeat").count(),
        repeats,
        "a repeat after the acknowledgement: {kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| *k == "firing").count(),
        1,
        "one firing notification from the two instances: {kinds:?}"
    );
    let (_, on_a) = harness::http_json(a.port, "GET", "/api/alerts", None);
    assert_eq!(
        on_a["alerts"][0]["acknowledged"]["by"], "local",
        "the leader shows the acknowledgement: {on_a}"
    );
    assert!(firing_on_b(true), "the follower shows it too");
    for p in [&mut first, &mut second] {
        signal(p.id(), libc::SIGTERM);
        assert!(p.wait().expect("wait").success());
    }
}
