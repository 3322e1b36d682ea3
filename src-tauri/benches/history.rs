//! Benchmark (prints figures; asserts nothing): history query latency over a year of 10-minute rows
//! for 100 nodes (about 5.3 M rows, 2 % of them NULL), and the write rate of seeding / importing.
//!
//! `cargo bench --no-default-features --bench history`
//! The database is built once in target/bench-history.sqlite3 and reused by later runs.
//!
//! Then the same on PostgreSQL 15 (a throw-away cluster with its durable defaults, over loopback),
//! unless `DSMON_BENCH_PG=0`: one tick's write of 1000 rows (samples and roll-ups), and the history
//! latency over 30 days x 100 nodes, in the core and through HTTP. `DSMON_BENCH_ONLY_PG=1` runs
//! only that half (and SQLite's tick write for comparison).

#[path = "support/serve.rs"]
mod serve;

#[path = "../crates/store/tests/pg_cluster/mod.rs"]
mod pg_cluster;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use dsmon::core::Metrics;
use dsmon::core::{tick_at_or_before, unix_now};
use dsmon::store::history::{self, HistoryQuery};
use dsmon::store::{Row, SqliteStore as Store};

const NODES: usize = 100;
const STEP: i64 = 600;
const DAYS: i64 = 365;
const REQUESTS: usize = 60;

fn main() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-history.sqlite3");
    let end = tick_at_or_before(unix_now(), 86_400);
    let start = end - DAYS * 86_400;
    let names: Vec<String> = (0..NODES).map(|i| format!("node{i:03}")).collect();
    if std::env::var("DSMON_BENCH_ONLY_PG").as_deref() == Ok("1") {
        // The PostgreSQL half alone (with SQLite's tick write beside it for comparison).
        tick_writes_sqlite();
        postgres(&names, end);
        return;
    }

    let fresh = !path.exists();
    let mut store = Store::open(&path).expect("store");
    if fresh {
        seed(&mut store, &names, start, end);
    } else {
        println!("reusing {} (delete it to seed again)", path.display());
    }
    let rows = store_rows(&path);
    println!("{rows} rows of {NODES} nodes over {DAYS} days");

    // The scan floor: counting the raw rows of the same ranges.
    let conn = rusqlite::Connection::open(&path).expect("open");
    println!();
    println!("/api/history core (history::query), {REQUESTS} requests each, 500 points");
    println!(
        "{:<6} {:>5} {:>10} {:>7} {:>9} {:>9} {:>14}",
        "range", "nodes", "tier", "step s", "p50 ms", "p99 ms", "count(*) ms"
    );
    for (label, days) in [("24h", 1), ("7d", 7), ("30d", 30), ("1y", 365)] {
        for n in [5usize, NODES] {
            let q = HistoryQuery {
                from: end - days * 86_400,
                to: end,
                points: 500,
                nodes: names[..n].to_vec(),
                group: None,
            };
            let mut times = Vec::with_capacity(REQUESTS);
            let mut tier = "";
            let mut step = 0;
            for _ in 0..REQUESTS {
                let t = Instant::now();
                let h = history::query(&store, &q, &names, STEP).expect("query");
                times.push(t.elapsed());
                tier = h.tier;
                step = h.step;
            }
            times.sort();
            let pct = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
            let scan = {
                let t = Instant::now();
                let ids: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
                let c: i64 = conn
                    .query_row(
                        &format!(
                            "SELECT count(*) FROM samples WHERE node_id IN ({}) AND ts BETWEEN ?1 AND ?2",
                            ids.join(",")
                        ),
                        [q.from, q.to],
                        |r| r.get(0),
                    )
                    .expect("count");
                assert!(c > 0);
                t.elapsed()
            };
            println!(
                "{label:<6} {n:>5} {tier:>10} {step:>7} {:>9.2} {:>9.2} {:>14.2}",
                ms(pct(0.5)),
                ms(pct(0.99)),
                ms(scan)
            );
        }
    }

    http_latency(
        &format!("path = \"{}\"", path.display()),
        &names,
        end,
        &[("24h", 1), ("7d", 7), ("30d", 30), ("1y", 365)],
    );

    // Import: the export of 20 nodes' year (about 1 M rows) into a fresh database.
    let q = dsmon::store::RowQuery {
        from: start,
        to: end,
        nodes: names[..20].to_vec(),
    };
    let mut csv = Vec::new();
    let t = Instant::now();
    let n =
        dsmon::store::export::write_rows(&store, &q, dsmon::store::export::Format::Csv, &mut csv)
            .expect("export");
    let export_secs = t.elapsed().as_secs_f64();
    drop(store);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut fresh = Store::open(&dir.path().join("import.sqlite3")).expect("store");
    let t = Instant::now();
    let rows = dsmon::store::import::parse(csv.as_slice(), "bench.csv").expect("parse");
    let parse_secs = t.elapsed().as_secs_f64();
    let inserted = fresh.insert_rows(&rows).expect("import");
    let total_secs = t.elapsed().as_secs_f64();
    assert_eq!(inserted, n);
    println!();
    println!(
        "export: {n} rows ({:.0} MB CSV) in {export_secs:.2} s ({:.0} rows/s)",
        csv.len() as f64 / 1e6,
        n as f64 / export_secs
    );
    println!(
        "import: {n} rows parsed in {parse_secs:.2} s, parsed and written (one transaction, with roll-ups) in {total_secs:.2} s: {:.0} rows/s",
        n as f64 / total_secs
    );

    tick_writes_sqlite();
    if std::env::var("DSMON_BENCH_PG").as_deref() != Ok("0") {
        postgres(&names, end);
    }
}

/// Ticks of 1000 rows (one per node): the write of each, samples and every roll-up tier, in one
/// transaction. Returns (p50, p99, max).
fn tick_writes(
    store: &mut dyn dsmon::store::SampleStore,
    ticks: i64,
) -> (Duration, Duration, Duration) {
    let names: Vec<String> = (0..1000).map(|i| format!("tick{i:04}")).collect();
    let t0 = tick_at_or_before(unix_now(), 86_400) - ticks * STEP;
    let mut times = Vec::new();
    for k in 0..ticks {
        let rows: Vec<Row> = names
            .iter()
            .enumerate()
            .map(|(i, n)| Row {
                ts: t0 + k * STEP,
                node: n.clone(),
                metrics: Some(Metrics {
                    cpu_pct: (i % 100) as f64,
                    mem_pct: 50.0,
                    disk_pct: 25.0,
                    net_in_kbps: 1000.0 + k as f64,
                    net_out_kbps: 2000.0,
                }),
                error: None,
            })
            .collect();
        let t = Instant::now();
        assert_eq!(store.insert_rows(&rows).expect("tick"), 1000);
        // The first tick creates the nodes: not a steady-state tick.
        if k > 0 {
            times.push(t.elapsed());
        }
    }
    times.sort();
    let pct = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
    (pct(0.5), pct(0.99), times[times.len() - 1])
}

fn tick_writes_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = Store::open(&dir.path().join("ticks.sqlite3")).expect("store");
    let (p50, p99, max) = tick_writes(&mut s, 101);
    println!();
    println!(
        "SQLite: one tick of 1000 rows (samples + 6 roll-up tiers), 100 ticks: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(p50),
        ms(p99),
        ms(max)
    );
}

/// The PostgreSQL half: a throw-away cluster with fsync on (PostgreSQL's defaults), 30 days of
/// 10-minute rows for the 100 nodes, the tick write and the history latency.
fn postgres(names: &[String], end: i64) {
    const PG_DAYS: i64 = 30;
    let cluster = pg_cluster::Cluster::start_durable();
    let db_name = cluster.create_db();
    let url = cluster.url(&db_name);
    let db = dsmon::store::PgDatabase::connect(&dsmon::store::PgOptions {
        url: url.clone(),
        password: None,
        ca_file: None,
        pool_size: 4,
    })
    .expect("PostgreSQL");
    println!();
    println!("PostgreSQL 15 over loopback ({}, fsync on)", db.label());

    let ticks = cluster.create_db();
    let tdb = dsmon::store::PgDatabase::connect(&dsmon::store::PgOptions {
        url: cluster.url(&ticks),
        password: None,
        ca_file: None,
        pool_size: 2,
    })
    .expect("PostgreSQL");
    let (p50, p99, max) = tick_writes(&mut tdb.samples(), 101);
    println!(
        "PostgreSQL: one tick of 1000 rows (samples + 6 roll-up tiers, one statement in one transaction), 100 ticks: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (goal < 50 ms)",
        ms(p50),
        ms(p99),
        ms(max)
    );

    let mut store = db.samples();
    let start = end - PG_DAYS * 86_400;
    let t = Instant::now();
    let mut total = 0;
    let mut day = start;
    while day < end {
        let mut rows = Vec::with_capacity(names.len() * 144);
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ day as u64;
        let mut ts = day + STEP;
        while ts <= day + 86_400 {
            for (i, n) in names.iter().enumerate() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let down = x % 50 == 0;
                let f = (x % 10_000) as f64 / 100.0;
                rows.push(Row {
                    ts,
                    node: n.clone(),
                    metrics: (!down).then_some(Metrics {
                        cpu_pct: f,
                        mem_pct: 30.0 + (i % 40) as f64,
                        disk_pct: 55.5,
                        net_in_kbps: f * 12.0,
                        net_out_kbps: f * 3.0,
                    }),
                    error: down.then(|| "no answer within 3s".to_string()),
                });
            }
            ts += STEP;
        }
        total += dsmon::store::SampleStore::insert_rows(&mut store, &rows).expect("seed");
        day += 86_400;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "seeded {total} rows (with roll-ups) in {secs:.1} s: {:.0} rows/s, in one-day transactions",
        total as f64 / secs
    );
    {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).expect("admin");
        c.batch_execute("VACUUM ANALYZE").expect("analyze");
    }
    println!();
    println!(
        "/api/history core (history::query) on PostgreSQL, {REQUESTS} requests each, 500 points"
    );
    println!(
        "{:<6} {:>5} {:>10} {:>7} {:>9} {:>9}",
        "range", "nodes", "tier", "step s", "p50 ms", "p99 ms"
    );
    for (label, days) in [("24h", 1), ("7d", 7), ("30d", 30)] {
        for n in [5usize, NODES] {
            let q = HistoryQuery {
                from: end - days * 86_400,
                to: end,
                points: 500,
                nodes: names[..n].to_vec(),
                group: None,
            };
            let mut times = Vec::with_capacity(REQUESTS);
            let (mut tier, mut step) = ("", 0);
            for _ in 0..REQUESTS {
                let t = Instant::now();
                let h = history::query(&store, &q, names, STEP).expect("query");
                times.push(t.elapsed());
                tier = h.tier;
                step = h.step;
            }
            times.sort();
            let pct = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
            println!(
                "{label:<6} {n:>5} {tier:>10} {step:>7} {:>9.2} {:>9.2}",
                ms(pct(0.5)),
                ms(pct(0.99))
            );
        }
    }
    drop(store);
    http_latency(
        &format!("url = \"{url}\""),
        names,
        end,
        &[("24h", 1), ("7d", 7), ("30d", 30)],
    );
}

/// The same queries through HTTP: `dsmon serve` on this database (no nodes configured, so it logs
/// nothing), `GET /api/history` with reqwest, the JSON body read whole.
fn http_latency(storage: &str, names: &[String], end: i64, ranges: &[(&str, i64)]) {
    let mut server = serve::Served::start(|port| {
        format!("[storage]\n{storage}\n[server]\nlisten = \"127.0.0.1:{port}\"\n")
    });
    let port = server.port;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!();
    println!("GET /api/history through HTTP (dsmon serve, this bench's build profile), {REQUESTS} requests each, 500 points");
    println!(
        "{:<6} {:>5} {:>9} {:>9} {:>10}",
        "range", "nodes", "p50 ms", "p99 ms", "body KB"
    );
    rt.block_on(async {
        let client = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        for &(label, days) in ranges {
            for n in [5usize, NODES] {
                let mut url = format!(
                    "{base}/api/history?from={}&to={}&points=500",
                    dsmon::core::format_ts(end - days * 86_400),
                    dsmon::core::format_ts(end)
                );
                for name in &names[..n] {
                    url.push_str(&format!("&node={name}"));
                }
                let mut times = Vec::with_capacity(REQUESTS);
                let mut size = 0;
                for _ in 0..REQUESTS {
                    let t = Instant::now();
                    let body = client
                        .get(&url)
                        .send()
                        .await
                        .expect("send")
                        .bytes()
                        .await
                        .expect("body");
                    times.push(t.elapsed());
                    size = body.len();
                }
                times.sort();
                let pct = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
                println!(
                    "{label:<6} {n:>5} {:>9.2} {:>9.2} {:>10.1}",
                    ms(pct(0.5)),
                    ms(pct(0.99)),
                    size as f64 / 1000.0
                );
            }
        }
    });
    server.stop();
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn store_rows(path: &std::path::Path) -> i64 {
    rusqlite::Connection::open(path)
        .and_then(|c| c.query_row("SELECT count(*) FROM samples", [], |r| r.get(0)))
        .expect("count")
}

/// A year of rows, written day by day (one transaction a day), as the logger and the roll-ups
/// would have written them.
fn seed(store: &mut Store, names: &[String], start: i64, end: i64) {
    let t = Instant::now();
    let mut total = 0usize;
    let mut day = start;
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while day < end {
        let mut rows = Vec::with_capacity(names.len() * 144);
        let mut ts = day + STEP;
        while ts <= day + 86_400 {
            for (i, n) in names.iter().enumerate() {
                // xorshift: cheap, repeatable values.
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let down = x % 50 == 0;
                let f = (x % 10_000) as f64 / 100.0;
                rows.push(Row {
                    ts,
                    node: n.clone(),
                    metrics: (!down).then_some(Metrics {
                        cpu_pct: f,
                        mem_pct: 30.0 + (i % 40) as f64,
                        disk_pct: 55.5,
                        net_in_kbps: f * 12.0,
                        net_out_kbps: f * 3.0,
                    }),
                    error: down.then(|| "no answer within 3s".to_string()),
                });
            }
            ts += STEP;
        }
        total += store.insert_rows(&rows).expect("seed");
        day += 86_400;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "seeded {total} rows (with roll-ups) in {secs:.1} s: {:.0} rows/s, in one-day transactions",
        total as f64 / secs
    );
}
