//! The storage conformance suite (dsmon_store::conformance) on SQLite files.

use dsmon_store::{
    conformance, AlertStore, AuthStore, SampleStore, SqliteAlertStore, SqliteAuthStore, SqliteStore,
};

#[test]
fn sqlite_passes_the_sample_store_suite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut n = 0;
    conformance::samples(&mut || {
        n += 1;
        let store = SqliteStore::open(&dir.path().join(format!("s{n}.sqlite3"))).expect("open");
        Box::new(store) as Box<dyn SampleStore>
    });
}

#[test]
fn sqlite_passes_the_auth_store_suite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut n = 0;
    conformance::auth(&mut || {
        n += 1;
        let path = dir.path().join(format!("a{n}.sqlite3"));
        // The samples store creates the file and runs the migrations.
        SqliteStore::open(&path).expect("migrate");
        Box::new(SqliteAuthStore::open(&path).expect("open")) as Box<dyn AuthStore>
    });
}

#[test]
fn sqlite_passes_the_alert_store_suite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut n = 0;
    conformance::alerts(&mut || {
        n += 1;
        let path = dir.path().join(format!("al{n}.sqlite3"));
        SqliteStore::open(&path).expect("migrate");
        Box::new(SqliteAlertStore::open(&path).expect("open")) as Box<dyn AlertStore>
    });
}
