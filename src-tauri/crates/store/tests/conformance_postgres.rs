//! The storage conformance suite (dsmon_store::conformance) on a real PostgreSQL 15: a throw-away
//! cluster (tests/pg_cluster), a fresh database per store.

mod pg_cluster;

use dsmon_store::{
    conformance, AlertStore, AuthStore, PgDatabase, PgOptions, SampleStore, StoreError,
};

fn options(url: String) -> PgOptions {
    PgOptions {
        url,
        password: None,
        ca_file: None,
        pool_size: 4,
    }
}

fn fresh(cluster: &pg_cluster::Cluster) -> PgDatabase {
    let db = cluster.create_db();
    PgDatabase::connect(&options(cluster.url(&db))).expect("connect and migrate")
}

#[test]
fn postgres_passes_the_sample_store_suite() {
    let cluster = pg_cluster::shared();
    conformance::samples(&mut || Box::new(fresh(&cluster).samples()) as Box<dyn SampleStore>);
}

#[test]
fn postgres_passes_the_auth_store_suite() {
    let cluster = pg_cluster::shared();
    conformance::auth(&mut || Box::new(fresh(&cluster).auth()) as Box<dyn AuthStore>);
}

#[test]
fn postgres_passes_the_alert_store_suite() {
    let cluster = pg_cluster::shared();
    conformance::alerts(&mut || Box::new(fresh(&cluster).alerts()) as Box<dyn AlertStore>);
}

#[test]
fn migrations_apply_once_and_a_newer_schema_is_refused() {
    let cluster = pg_cluster::shared();
    let name = cluster.create_db();
    let url = cluster.url(&name);
    // Several instances starting at once: the schema is applied once.
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                PgDatabase::connect(&options(url)).map(|db| db.schema_version())
            })
        })
        .collect();
    for h in handles {
        let v = h
            .join()
            .expect("thread")
            .expect("connect")
            .expect("version");
        assert_eq!(v, dsmon_store::postgres::PG_MIGRATIONS.len() as i64);
    }
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).expect("admin");
    admin
        .batch_execute("INSERT INTO dsmon_schema (version, name) VALUES (99, '0099_future.sql')")
        .expect("future");
    let e = PgDatabase::connect(&options(url.clone())).expect_err("refused");
    assert!(matches!(e, StoreError::PgTooNew { found: 99, .. }), "{e}");
    assert!(e.to_string().contains("schema version 99 is newer"), "{e}");
    let left: i64 = admin
        .query_one("SELECT max(version)::int8 FROM dsmon_schema", &[])
        .expect("version")
        .get(0);
    assert_eq!(left, 99, "left as it was");
}

#[test]
fn an_unreachable_server_is_a_clear_unavailable_error() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let e = PgDatabase::connect(&PgOptions {
        password: Some("s3cret".into()),
        ..options(format!("postgres://dsmon:urlpw@127.0.0.1:{port}/dsmon"))
    })
    .expect_err("unreachable");
    assert!(e.is_unavailable(), "{e}");
    let shown = e.to_string();
    assert!(shown.contains("cannot connect"), "{shown}");
    assert!(
        !shown.contains("s3cret") && !shown.contains("urlpw"),
        "{shown}"
    );
}

#[test]
fn a_restarted_server_is_used_again() {
    let cluster = pg_cluster::shared();
    let db = fresh(&cluster);
    let mut s = db.samples();
    let row = |ts: i64| dsmon_store::Row {
        ts,
        node: "a".into(),
        metrics: None,
        error: Some("down".into()),
    };
    assert_eq!(s.insert_rows(&[row(600)]).expect("write"), 1);
    // Only this test stops the shared server: the others may be running, so it only checks that a
    // broken pooled connection is replaced (pg_terminate_backend cuts every connection of the
    // database, as a restart would).
    let mut admin =
        postgres::Client::connect(&cluster.url("postgres"), postgres::NoTls).expect("admin");
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            &[&db_name(&db)],
        )
        .expect("terminate");
    let first = s.insert_rows(&[row(1200)]);
    if let Err(e) = &first {
        assert!(e.is_unavailable(), "a cut connection is 'unavailable': {e}");
    }
    assert_eq!(
        s.insert_rows(&[row(1200)]).expect("a new connection") + first.unwrap_or(0),
        1
    );
    assert_eq!(s.latest_ts().expect("latest"), Some(1200));
}

fn db_name(db: &PgDatabase) -> String {
    db.label()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string()
}
