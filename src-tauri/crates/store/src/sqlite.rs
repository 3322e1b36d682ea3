//! SQLite storage of logged rows: opening (PRAGMAs, migrations from `migrations/`), writing one
//! tick's rows in one transaction, and reading rows back by time range.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use rusqlite_migration::{Migrations, M};

use dsmon_core::{Metrics, Row, METRICS};

include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

/// Roll-up tables (see `migrations/0002_rollups.sql`) and the period each row covers, finest first.
pub const ROLLUPS: [(&str, i64); 6] = [
    ("rollup_30m", 1800),
    ("rollup_1h", 3600),
    ("rollup_2h", 7200),
    ("rollup_6h", 21_600),
    ("rollup_12h", 43_200),
    ("rollup_1d", 86_400),
];

/// A stored period of one node: a raw row (a period of one row) or a roll-up row. Sums and maxima
/// are over the rows with values, in `METRICS` order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Period {
    pub ts: i64,
    pub n_rows: i64,
    pub n_ok: i64,
    pub sum: [Option<f64>; 5],
    pub max: [Option<f64>; 5],
}

/// Adds a period's counts, sums and maxima to a roll-up row (creating it if needed).
/// Parameters: node_id, ts, n_rows, n_ok, then per metric its sum and its max.
fn rollup_upsert_sql(table: &str) -> String {
    let cols: Vec<String> = METRICS
        .iter()
        .map(|m| format!("{m}_sum, {m}_max"))
        .collect();
    let vals: Vec<String> = (0..METRICS.len())
        .map(|i| format!("?{}, ?{}", 5 + 2 * i, 6 + 2 * i))
        .collect();
    let sets: Vec<String> = METRICS
        .iter()
        .map(|m| {
            format!(
                "{m}_sum = CASE WHEN excluded.{m}_sum IS NULL THEN {m}_sum ELSE coalesce({m}_sum, 0) + excluded.{m}_sum END, \
                 {m}_max = CASE WHEN excluded.{m}_max IS NULL THEN {m}_max WHEN {m}_max IS NULL THEN excluded.{m}_max \
                 ELSE max({m}_max, excluded.{m}_max) END"
            )
        })
        .collect();
    format!(
        "INSERT INTO {table}(node_id, ts, n_rows, n_ok, {}) VALUES (?1, ?2, ?3, ?4, {}) \
         ON CONFLICT(node_id, ts) DO UPDATE SET n_rows = n_rows + excluded.n_rows, n_ok = n_ok + excluded.n_ok, {}",
        cols.join(", "),
        vals.join(", "),
        sets.join(", ")
    )
}

impl Period {
    /// Adds one raw row (its values, or `None` for an unreachable node).
    fn add_row(&mut self, values: Option<[f64; 5]>) {
        self.n_rows += 1;
        if let Some(v) = values {
            self.n_ok += 1;
            for (i, x) in v.iter().enumerate() {
                self.sum[i] = Some(self.sum[i].unwrap_or(0.0) + x);
                self.max[i] = Some(self.max[i].map_or(*x, |m| m.max(*x)));
            }
        }
    }
}

fn rollup_sqls() -> &'static [String; ROLLUPS.len()] {
    static SQL: std::sync::OnceLock<[String; ROLLUPS.len()]> = std::sync::OnceLock::new();
    SQL.get_or_init(|| ROLLUPS.map(|(t, _)| rollup_upsert_sql(t)))
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: cannot create its directory: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: cannot create the database file: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: no database there (run `dsmon collect --once` or `dsmon serve` first)")]
    Missing { path: PathBuf },
    #[error("{path}: cannot open the database: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("{path}: database schema version {found} is newer than this dsmon supports ({supported}); use a newer dsmon")]
    TooNew {
        path: PathBuf,
        found: i64,
        supported: usize,
    },
    #[error("{path}: migrating the database failed: {reason}")]
    Migrate { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Sql {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("database lock poisoned")]
    Poisoned,
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Which rows to read.
#[derive(Debug, Clone, Default)]
pub struct RowQuery {
    /// Inclusive bounds, Unix seconds.
    pub from: i64,
    pub to: i64,
    /// Empty means every node.
    pub nodes: Vec<String>,
}

pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    node_ids: HashMap<String, i64>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        create_private(path).map_err(|source| StoreError::Create {
            path: path.to_path_buf(),
            source,
        })?;
        Self::open_with(path, OpenFlags::default())
    }

    /// Opens an existing database; a missing file is an error rather than a new empty database.
    pub fn open_existing(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(StoreError::Missing {
                path: path.to_path_buf(),
            });
        }
        Self::open_with(path, OpenFlags::default() - OpenFlags::SQLITE_OPEN_CREATE)
    }

    fn open_with(path: &Path, flags: OpenFlags) -> Result<Self> {
        let open_err = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let mut conn = Connection::open_with_flags(path, flags).map_err(open_err)?;
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(open_err)?;
        // Checked before anything is written: a newer schema is left exactly as it is.
        let found: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(open_err)?;
        if found > MIGRATIONS.len() as i64 {
            return Err(StoreError::TooNew {
                path: path.to_path_buf(),
                found,
                supported: MIGRATIONS.len(),
            });
        }
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;
        migrations()
            .to_latest(&mut conn)
            .map_err(|e| StoreError::Migrate {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            conn,
            path: path.to_path_buf(),
            node_ids: HashMap::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn sql_err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::Sql {
            path: self.path.clone(),
            source,
        }
    }

    /// Writes rows in one transaction. A (node, ts) already present is left as it is.
    /// Returns how many rows were new. The roll-up tables are brought up to date in the same
    /// transaction: per period for a tick, or recomputed over the affected range for a large batch
    /// (an import), which is much faster than updating them row by row.
    pub fn insert_rows(&mut self, rows: &[Row]) -> Result<usize> {
        self.insert_rows_with(rows, rows.len() >= BULK_ROWS)
    }

    fn insert_rows_with(&mut self, rows: &[Row], bulk: bool) -> Result<usize> {
        let path = self.path.clone();
        let err = move |source| StoreError::Sql {
            path: path.clone(),
            source,
        };
        let result = (|| {
            let tx = self.conn.transaction().map_err(&err)?;
            let inserted = write_rows(&tx, &mut self.node_ids, rows, bulk).map_err(&err)?;
            tx.commit().map_err(&err)?;
            Ok(inserted)
        })();
        if result.is_err() {
            // Ids handed out inside the rolled-back transaction may not exist.
            self.node_ids.clear();
        }
        result
    }

    /// Names of the nodes that already have a row at `ts`.
    pub fn nodes_logged_at(&self, ts: i64) -> Result<HashSet<String>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT n.name FROM samples s JOIN nodes n ON n.id = s.node_id WHERE s.ts = ?1",
            )
            .map_err(self.sql_err())?;
        let names = stmt
            .query_map([ts], |r| r.get(0))
            .map_err(self.sql_err())?
            .collect::<rusqlite::Result<HashSet<String>>>()
            .map_err(self.sql_err())?;
        Ok(names)
    }

    /// Every node that has ever been logged, by name.
    pub fn node_names(&self) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT name FROM nodes ORDER BY name")
            .map_err(self.sql_err())?;
        let names = stmt
            .query_map([], |r| r.get(0))
            .map_err(self.sql_err())?
            .collect::<rusqlite::Result<Vec<String>>>()
            .map_err(self.sql_err())?;
        Ok(names)
    }

    /// The newest tick logged for any node.
    pub fn latest_ts(&self) -> Result<Option<i64>> {
        self.conn
            .query_row("SELECT max(ts) FROM samples", [], |r| {
                r.get::<_, Option<i64>>(0)
            })
            .optional()
            .map(Option::flatten)
            .map_err(self.sql_err())
    }

    /// Calls `f` for each row matching `q`, in (ts, node) order, without holding them all in memory.
    /// `f` may stop the scan by returning an error, which is handed back.
    pub fn for_each_row<E: From<StoreError>>(
        &self,
        q: &RowQuery,
        mut f: impl FnMut(Row) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let ids = self.ids_of(&q.nodes)?;
        let filter = if q.nodes.is_empty() {
            String::new()
        } else {
            format!(
                " AND s.node_id IN ({})",
                ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
            )
        };
        let sql = format!(
            "SELECT s.ts, n.name, s.cpu_pct, s.mem_pct, s.disk_pct, s.net_in_kbps, s.net_out_kbps, s.error
             FROM samples s JOIN nodes n ON n.id = s.node_id
             WHERE s.ts BETWEEN ?1 AND ?2{filter} ORDER BY s.ts, n.name"
        );
        let mut stmt = self.conn.prepare(&sql).map_err(self.sql_err())?;
        let mut rows = stmt.query(params![q.from, q.to]).map_err(self.sql_err())?;
        while let Some(r) = rows.next().map_err(self.sql_err())? {
            let row = read_row(r).map_err(self.sql_err())?;
            f(row)?;
        }
        Ok(())
    }

    /// Rows logged at one tick, by node name.
    pub fn rows_at(&self, ts: i64) -> Result<Vec<Row>> {
        let mut out = Vec::new();
        self.for_each_row::<StoreError>(
            &RowQuery {
                from: ts,
                to: ts,
                nodes: vec![],
            },
            |r| {
                out.push(r);
                Ok(())
            },
        )?;
        Ok(out)
    }

    fn ids_of(&self, names: &[String]) -> Result<Vec<i64>> {
        Ok(self
            .node_ids(names)?
            .into_iter()
            .map(|(_, id)| id)
            .collect())
    }

    /// Node ids by name (names not in the database are left out).
    pub fn node_ids(&self, names: &[String]) -> Result<Vec<(String, i64)>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id FROM nodes WHERE name = ?1")
            .map_err(self.sql_err())?;
        let mut out = Vec::with_capacity(names.len());
        for n in names {
            if let Some(id) = stmt
                .query_row([n], |r| r.get(0))
                .optional()
                .map_err(self.sql_err())?
            {
                out.push((n.clone(), id));
            }
        }
        Ok(out)
    }

    /// Streams the stored periods of the given nodes with `from <= ts < to`, in (node, ts) order
    /// (the primary key's order: no sorting), from the raw rows (`rollup = None`, each row a period
    /// of one) or a roll-up table of `ROLLUPS`. History aggregates them into its buckets.
    pub fn scan_periods(
        &self,
        node_ids: &[i64],
        from: i64,
        to: i64,
        rollup: Option<&str>,
        mut f: impl FnMut(i64, &Period),
    ) -> Result<()> {
        if node_ids.is_empty() {
            return Ok(());
        }
        let ids = node_ids
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let sql = match rollup {
            None => format!(
                "SELECT node_id, ts, 1, cpu_pct IS NOT NULL, {m}, {m} FROM samples \
                 WHERE node_id IN ({ids}) AND ts >= ?1 AND ts < ?2 ORDER BY node_id, ts",
                m = METRICS.join(", ")
            ),
            Some(t) => format!(
                "SELECT node_id, ts, n_rows, n_ok, {}, {} FROM {t} \
                 WHERE node_id IN ({ids}) AND ts >= ?1 AND ts < ?2 ORDER BY node_id, ts",
                METRICS.map(|m| format!("{m}_sum")).join(", "),
                METRICS.map(|m| format!("{m}_max")).join(", "),
            ),
        };
        let mut stmt = self.conn.prepare(&sql).map_err(self.sql_err())?;
        let mut rows = stmt.query(params![from, to]).map_err(self.sql_err())?;
        let mut p = Period::default();
        while let Some(r) = rows.next().map_err(self.sql_err())? {
            let node: i64 = r.get(0).map_err(self.sql_err())?;
            p.ts = r.get(1).map_err(self.sql_err())?;
            p.n_rows = r.get(2).map_err(self.sql_err())?;
            p.n_ok = r.get(3).map_err(self.sql_err())?;
            for i in 0..METRICS.len() {
                p.sum[i] = r.get(4 + i).map_err(self.sql_err())?;
                p.max[i] = r.get(4 + METRICS.len() + i).map_err(self.sql_err())?;
            }
            f(node, &p);
        }
        Ok(())
    }

    /// `PRAGMA integrity_check` answer ("ok" when healthy).
    pub fn integrity_check(&self) -> Result<String> {
        self.conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(self.sql_err())
    }
}

/// Creates the database file readable and writable by its owner only (0600) from the start, if it
/// is not there yet: SQLite would create it with the umask's mode, and gives its -wal and -shm files
/// the database file's mode.
fn create_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// From this many rows on, `insert_rows` recomputes the roll-ups over the affected range instead
/// of updating them per period.
const BULK_ROWS: usize = 5000;

fn write_rows(
    tx: &rusqlite::Transaction<'_>,
    node_ids: &mut HashMap<String, i64>,
    rows: &[Row],
    bulk: bool,
) -> rusqlite::Result<usize> {
    let mut node_stmt = tx.prepare_cached(
        "INSERT INTO nodes(name) VALUES (?1) ON CONFLICT(name) DO UPDATE SET name = name RETURNING id",
    )?;
    let mut row_stmt = tx.prepare_cached(
        "INSERT INTO samples(node_id, ts, cpu_pct, mem_pct, disk_pct, net_in_kbps, net_out_kbps, error)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT(node_id, ts) DO NOTHING",
    )?;
    let mut inserted = 0;
    // Per-period sums for a small batch; per-node time range for a bulk one.
    let mut deltas: HashMap<(usize, i64, i64), Period> = HashMap::new();
    let mut ranges: HashMap<i64, (i64, i64)> = HashMap::new();
    for row in rows {
        let id = match node_ids.get(&row.node) {
            Some(id) => *id,
            None => {
                let id: i64 = node_stmt.query_row([&row.node], |r| r.get(0))?;
                node_ids.insert(row.node.clone(), id);
                id
            }
        };
        let values = row.metrics.as_ref().map(Metrics::values);
        let v = |i: usize| values.map(|v| v[i]);
        if row_stmt.execute(params![id, row.ts, v(0), v(1), v(2), v(3), v(4), row.error])? == 0 {
            continue;
        }
        inserted += 1;
        if bulk {
            let r = ranges.entry(id).or_insert((row.ts, row.ts));
            *r = (r.0.min(row.ts), r.1.max(row.ts));
        } else {
            for (k, (_, secs)) in ROLLUPS.iter().enumerate() {
                deltas
                    .entry((k, id, row.ts.div_euclid(*secs) * secs))
                    .or_default()
                    .add_row(values);
            }
        }
    }
    for ((k, id, ts), d) in &deltas {
        let mut up = tx.prepare_cached(&rollup_sqls()[*k])?;
        let mut p: Vec<&dyn rusqlite::ToSql> = vec![id, ts, &d.n_rows, &d.n_ok];
        for i in 0..METRICS.len() {
            p.push(&d.sum[i]);
            p.push(&d.max[i]);
        }
        up.execute(p.as_slice())?;
    }
    for (id, (lo, hi)) in &ranges {
        recompute_rollups(tx, *id, *lo, *hi)?;
    }
    Ok(inserted)
}

/// Rebuilds every roll-up tier of one node over the periods that contain `lo..=hi`: each tier from
/// the next finer one (the first from the raw rows), as migration 0002 builds them.
fn recompute_rollups(
    tx: &rusqlite::Transaction<'_>,
    node_id: i64,
    lo: i64,
    hi: i64,
) -> rusqlite::Result<()> {
    let mut source = "samples";
    for (table, secs) in ROLLUPS {
        let (from, to) = (lo.div_euclid(secs) * secs, hi.div_euclid(secs) * secs);
        tx.prepare_cached(&format!(
            "DELETE FROM {table} WHERE node_id = ?1 AND ts >= ?2 AND ts <= ?3"
        ))?
        .execute(params![node_id, from, to])?;
        let aggregates = if source == "samples" {
            format!(
                "count(*), count(cpu_pct), {}",
                METRICS.map(|m| format!("sum({m}), max({m})")).join(", ")
            )
        } else {
            format!(
                "sum(n_rows), sum(n_ok), {}",
                METRICS
                    .map(|m| format!("sum({m}_sum), max({m}_max)"))
                    .join(", ")
            )
        };
        let cols = METRICS.map(|m| format!("{m}_sum, {m}_max")).join(", ");
        tx.prepare_cached(&format!(
            "INSERT INTO {table}(node_id, ts, n_rows, n_ok, {cols}) \
             SELECT node_id, ts / {secs} * {secs}, {aggregates} FROM {source} \
             WHERE node_id = ?1 AND ts >= ?2 AND ts < ?3 GROUP BY ts / {secs}"
        ))?
        .execute(params![node_id, from, to + secs])?;
        source = table;
    }
    Ok(())
}

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    let mut values = [None; 5];
    for (i, v) in values.iter_mut().enumerate() {
        *v = r.get(2 + i)?;
    }
    let metrics = Metrics::from_options(values);
    Ok(Row {
        ts: r.get(0)?,
        node: r.get(1)?,
        metrics,
        error: r.get(7)?,
    })
}

fn migrations() -> Migrations<'static> {
    Migrations::new(MIGRATIONS.iter().map(|(_, sql)| M::up(sql)).collect())
}

impl crate::SampleStore for SqliteStore {
    fn insert_rows(&mut self, rows: &[Row]) -> Result<usize> {
        SqliteStore::insert_rows(self, rows)
    }

    fn nodes_logged_at(&self, ts: i64) -> Result<HashSet<String>> {
        SqliteStore::nodes_logged_at(self, ts)
    }

    fn node_names(&self) -> Result<Vec<String>> {
        SqliteStore::node_names(self)
    }

    fn latest_ts(&self) -> Result<Option<i64>> {
        SqliteStore::latest_ts(self)
    }

    fn node_ids(&self, names: &[String]) -> Result<Vec<(String, i64)>> {
        SqliteStore::node_ids(self, names)
    }

    fn scan_rows(
        &self,
        q: &RowQuery,
        f: &mut dyn FnMut(Row) -> std::ops::ControlFlow<()>,
    ) -> Result<()> {
        /// Ends the scan early without an error.
        enum Stop {
            Done,
            Failed(StoreError),
        }
        impl From<StoreError> for Stop {
            fn from(e: StoreError) -> Self {
                Stop::Failed(e)
            }
        }
        match self.for_each_row::<Stop>(q, |row| match f(row) {
            std::ops::ControlFlow::Continue(()) => Ok(()),
            std::ops::ControlFlow::Break(()) => Err(Stop::Done),
        }) {
            Ok(()) | Err(Stop::Done) => Ok(()),
            Err(Stop::Failed(e)) => Err(e),
        }
    }

    fn scan_periods(
        &self,
        node_ids: &[i64],
        from: i64,
        to: i64,
        rollup: Option<&str>,
        f: &mut dyn FnMut(i64, &Period),
    ) -> Result<()> {
        SqliteStore::scan_periods(self, node_ids, from, to, rollup, f)
    }

    fn check(&self) -> Result<String> {
        self.integrity_check()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(x: f64) -> Metrics {
        Metrics {
            cpu_pct: x,
            mem_pct: x + 1.0,
            disk_pct: x + 2.0,
            net_in_kbps: x + 3.0,
            net_out_kbps: x + 4.0,
        }
    }

    fn row(ts: i64, node: &str, m: Option<f64>) -> Row {
        Row {
            ts,
            node: node.into(),
            metrics: m.map(metrics),
            error: if m.is_none() {
                Some("connection failed: refused".into())
            } else {
                None
            },
        }
    }

    #[test]
    fn migrations_are_valid() {
        migrations().validate().unwrap();
        assert!(!MIGRATIONS.is_empty());
    }

    #[test]
    fn write_read_and_idempotency() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/dir/db.sqlite3");
        let mut s = SqliteStore::open(&path).unwrap();
        let rows = vec![
            row(600, "a", Some(10.0)),
            row(600, "b", None),
            row(1200, "a", Some(20.0)),
        ];
        assert_eq!(s.insert_rows(&rows).unwrap(), 3);
        // The same (node, ts) again: nothing new, the first value stays.
        assert_eq!(s.insert_rows(&[row(600, "a", Some(99.0))]).unwrap(), 0);
        drop(s);
        let s = SqliteStore::open_existing(&path).unwrap();
        assert_eq!(
            s.rows_at(600).unwrap(),
            vec![rows[0].clone(), rows[1].clone()]
        );
        assert_eq!(
            s.nodes_logged_at(1200).unwrap(),
            HashSet::from(["a".to_string()])
        );
        assert_eq!(s.node_names().unwrap(), vec!["a", "b"]);
        assert_eq!(s.latest_ts().unwrap(), Some(1200));
        let mut got = vec![];
        s.for_each_row::<StoreError>(
            &RowQuery {
                from: 0,
                to: 2000,
                nodes: vec!["a".into()],
            },
            |r| {
                got.push(r.ts);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(got, vec![600, 1200]);
        assert_eq!(s.integrity_check().unwrap(), "ok");
    }

    /// The same rows written per tick, or as one bulk batch on top of a few already present, give
    /// identical roll-up tables.
    #[test]
    fn bulk_and_incremental_rollups_agree() {
        let dir = tempfile::tempdir().unwrap();
        let mut rows = Vec::new();
        for i in 0..3000i64 {
            for n in ["a", "b"] {
                let up = (i * 7 + n.len() as i64) % 13 != 0;
                rows.push(Row {
                    ts: 1_795_478_400 + i * 600,
                    node: n.into(),
                    metrics: up.then(|| metrics((i % 91) as f64)),
                    error: (!up).then(|| "down".to_string()),
                });
            }
        }
        let mut inc = SqliteStore::open(&dir.path().join("inc.sqlite3")).unwrap();
        for tick in rows.chunks(2) {
            inc.insert_rows_with(tick, false).unwrap();
        }
        let mut bulk = SqliteStore::open(&dir.path().join("bulk.sqlite3")).unwrap();
        bulk.insert_rows_with(&rows[1000..1100], false).unwrap();
        assert_eq!(
            bulk.insert_rows_with(&rows, true).unwrap(),
            rows.len() - 100
        );
        for (table, _) in ROLLUPS {
            let dump = |s: &SqliteStore| {
                let mut stmt = s
                    .conn
                    .prepare(&format!("SELECT * FROM {table} ORDER BY node_id, ts"))
                    .unwrap();
                let n = stmt.column_count();
                stmt.query_map([], |r| {
                    (0..n)
                        .map(|i| {
                            r.get::<_, rusqlite::types::Value>(i)
                                .map(|v| format!("{v:?}"))
                        })
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .unwrap()
                .collect::<rusqlite::Result<Vec<_>>>()
                .unwrap()
            };
            let (a, b) = (dump(&inc), dump(&bulk));
            assert!(!a.is_empty());
            assert_eq!(a.len(), b.len(), "{table}");
            for (x, y) in a.iter().zip(&b) {
                // Sums may differ in the last bits with the order of addition.
                for (u, v) in x.iter().zip(y) {
                    let (pu, pv) = (
                        u.trim_start_matches("Real(")
                            .trim_end_matches(')')
                            .parse::<f64>(),
                        v.trim_start_matches("Real(")
                            .trim_end_matches(')')
                            .parse::<f64>(),
                    );
                    match (pu, pv) {
                        (Ok(p), Ok(q)) => assert!(
                            (p - q).abs() <= 1e-9 * p.abs().max(1.0),
                            "{table}: {x:?} vs {y:?}"
                        ),
                        _ => assert_eq!(u, v, "{table}"),
                    }
                }
            }
        }
    }

    #[test]
    fn newer_schema_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch("CREATE TABLE future(x); PRAGMA user_version = 99;")
                .unwrap();
        }
        let e = SqliteStore::open(&path).err().expect("refused");
        assert!(e.to_string().contains("schema version 99 is newer"), "{e}");
        let c = Connection::open(&path).unwrap();
        let v: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, 99);
    }

    #[test]
    fn database_files_are_created_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        let mut s = SqliteStore::open(&path).unwrap();
        s.insert_rows(&[row(600, "a", Some(1.0))]).unwrap();
        for f in ["db.sqlite3", "db.sqlite3-wal"] {
            let mode = std::fs::metadata(dir.path().join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}: {mode:o}");
        }
    }

    #[test]
    fn missing_database_is_not_created_by_readers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("none.sqlite3");
        assert!(matches!(
            SqliteStore::open_existing(&path),
            Err(StoreError::Missing { .. })
        ));
        assert!(!path.exists());
    }
}
