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

/// Rows per multi-row statement, largest first. A batch is written in chunks of these sizes
/// (greedily: 1000 rows are 3 x 256 + 3 x 64 + 2 x 16 + 2 x 4), so each table needs at most
/// `CHUNKS.len()` distinct statements, each prepared once and then taken from the statement cache.
const CHUNKS: [usize; 5] = [256, 64, 16, 4, 1];

/// Bound parameters per row of a roll-up upsert (the widest statement): node_id, ts, n_rows, n_ok,
/// then per metric its sum and its max.
const ROLLUP_PARAMS: usize = 4 + 2 * METRICS.len();

/// SQLite's default limit on bound parameters per statement (since 3.32).
const MAX_PARAMS: usize = 32_766;
const _: () = assert!(CHUNKS[0] * ROLLUP_PARAMS <= MAX_PARAMS);

/// Splits `len` items into consecutive chunks whose sizes are in `CHUNKS`: (index into `CHUNKS`,
/// range of the items).
fn chunks(len: usize) -> impl Iterator<Item = (usize, std::ops::Range<usize>)> {
    let mut start = 0;
    std::iter::from_fn(move || {
        let k = CHUNKS.iter().position(|&c| c <= len - start)?;
        let range = start..start + CHUNKS[k];
        start = range.end;
        Some((k, range))
    })
}

/// `(?, ?, …), (?, …), …`: `rows` groups of `width` parameters.
fn value_groups(rows: usize, width: usize) -> String {
    let group = format!("({})", vec!["?"; width].join(", "));
    vec![group; rows].join(", ")
}

/// Adds periods' counts, sums and maxima to roll-up rows (creating them if needed), `rows` periods
/// per statement. Parameters per period: node_id, ts, n_rows, n_ok, then per metric its sum and
/// its max.
fn rollup_upsert_sql(table: &str, rows: usize) -> String {
    let cols: Vec<String> = METRICS
        .iter()
        .map(|m| format!("{m}_sum, {m}_max"))
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
        "INSERT INTO {table}(node_id, ts, n_rows, n_ok, {}) VALUES {} \
         ON CONFLICT(node_id, ts) DO UPDATE SET n_rows = n_rows + excluded.n_rows, n_ok = n_ok + excluded.n_ok, {}",
        cols.join(", "),
        value_groups(rows, ROLLUP_PARAMS),
        sets.join(", ")
    )
}

/// The statements of a tick's write, one per size in `CHUNKS`.
struct WriteSql {
    /// Creates nodes (or finds them) by name; returns `id, name` of each.
    nodes: [String; CHUNKS.len()],
    /// Inserts raw rows, skipping a (node_id, ts) already present; returns `node_id, ts` of each
    /// row really inserted (a skipped one is not returned).
    samples: [String; CHUNKS.len()],
    /// Per `ROLLUPS` tier: `rollup_upsert_sql`.
    rollups: [[String; CHUNKS.len()]; ROLLUPS.len()],
}

fn write_sqls() -> &'static WriteSql {
    static SQL: std::sync::OnceLock<WriteSql> = std::sync::OnceLock::new();
    SQL.get_or_init(|| WriteSql {
        nodes: CHUNKS.map(|n| {
            format!(
                "INSERT INTO nodes(name) VALUES {} \
                 ON CONFLICT(name) DO UPDATE SET name = name RETURNING id, name",
                value_groups(n, 1)
            )
        }),
        samples: CHUNKS.map(|n| {
            format!(
                "INSERT INTO samples(node_id, ts, {}, error) VALUES {} \
                 ON CONFLICT(node_id, ts) DO NOTHING RETURNING node_id, ts",
                METRICS.join(", "),
                value_groups(n, 3 + METRICS.len())
            )
        }),
        rollups: ROLLUPS.map(|(t, _)| CHUNKS.map(|n| rollup_upsert_sql(t, n))),
    })
}

impl Period {
    /// Adds one raw row (its values, or `None` for an unreachable node).
    pub(crate) fn add_row(&mut self, values: Option<[f64; 5]>) {
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
    /// PostgreSQL: a setting that cannot work (the URL, the CA file). Never holds the password.
    #[error("PostgreSQL: {0}")]
    PgConfig(String),
    /// PostgreSQL could not be reached (`url` is redacted).
    #[error("{url}: cannot connect to PostgreSQL: {source}")]
    PgConnect {
        url: String,
        source: postgres::Error,
    },
    #[error("{url}: {source}")]
    Pg {
        url: String,
        source: postgres::Error,
    },
    #[error("{url}: database schema version {found} is newer than this dsmon supports ({supported}); use a newer dsmon")]
    PgTooNew {
        url: String,
        found: i64,
        supported: usize,
    },
    #[error("{url}: migration {name} failed: {source}")]
    PgMigrate {
        url: String,
        name: String,
        source: postgres::Error,
    },
    #[error("{url}: no free database connection within 10 s (pool of {size})")]
    PoolTimeout { url: String, size: usize },
}

impl StoreError {
    /// The database could not be reached (or its connection broke): worth retrying later, and a
    /// 503 rather than a 500 for a request that needed it.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::PgConnect { .. } | StoreError::PoolTimeout { .. } => true,
            StoreError::Pg { source, .. } => {
                let io = std::error::Error::source(source)
                    .is_some_and(|e| e.downcast_ref::<std::io::Error>().is_some());
                source.is_closed()
                    || io
                    || source
                        .code()
                        .is_some_and(|c| c.code().starts_with("08") || c.code().starts_with("57P"))
            }
            _ => false,
        }
    }
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
    /// The writer's settings are applied (at the first write; readers never need them).
    prepared_for_writes: bool,
}

/// WAL pages from which a commit checkpoints (SQLite's default is 1000). A 1000-row tick adds
/// about 1 100 pages, so at the default nearly every such tick's commit copied the WAL into the
/// database and waited for two fsyncs (8-10 ms on this machine); at 4000 one tick in about four
/// does. The WAL stays bounded (about 16 MB at most) and grows on demand, so a full disk still
/// fails the next write at once (and its rows are held in memory by the logger).
const WRITER_CHECKPOINT_PAGES: i64 = 4000;

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
        // A tick's write uses up to `CHUNKS.len()` statements per table (samples, nodes and the
        // roll-up tiers), an import's roll-up rebuild two per tier: keep them all prepared.
        conn.set_prepared_statement_cache_capacity(64);
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
            prepared_for_writes: false,
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
        self.prepare_for_writes();
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

    /// Once per store that writes (readers skip this): keeps the statement journals of the
    /// multi-row statements in memory (up to a few hundred pages each) instead of temporary files,
    /// and lets the WAL take [`WRITER_CHECKPOINT_PAGES`] before a commit checkpoints it.
    fn prepare_for_writes(&mut self) {
        if self.prepared_for_writes {
            return;
        }
        self.prepared_for_writes = true;
        for (pragma, value) in [
            ("temp_store", "MEMORY".to_string()),
            ("wal_autocheckpoint", WRITER_CHECKPOINT_PAGES.to_string()),
        ] {
            if let Err(e) = self.conn.pragma_update(None, pragma, &value) {
                tracing::warn!("{}: PRAGMA {pragma} = {value}: {e}", self.path.display());
            }
        }
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
    let sql = write_sqls();
    // Nodes not seen yet, in order of first appearance (so that ids are handed out in that order).
    let mut seen = HashSet::new();
    let missing: Vec<&str> = rows
        .iter()
        .map(|r| r.node.as_str())
        .filter(|n| !node_ids.contains_key(*n) && seen.insert(*n))
        .collect();
    for (k, range) in chunks(missing.len()) {
        let mut stmt = tx.prepare_cached(&sql.nodes[k])?;
        for (i, name) in missing[range].iter().enumerate() {
            stmt.raw_bind_parameter(i + 1, name)?;
        }
        let mut out = stmt.raw_query();
        while let Some(r) = out.next()? {
            node_ids.insert(r.get(1)?, r.get(0)?);
        }
    }
    let ids = rows
        .iter()
        .map(|r| {
            node_ids
                .get(&r.node)
                .copied()
                .ok_or(rusqlite::Error::QueryReturnedNoRows)
        })
        .collect::<rusqlite::Result<Vec<i64>>>()?;

    // Raw rows. `is_new[i]`: rows[i] was really inserted. A returned (node_id, ts) is the first row of
    // the chunk with that key: a later one in the same statement conflicts with it.
    let mut is_new = vec![false; rows.len()];
    let mut keys = Vec::new();
    for (k, range) in chunks(rows.len()) {
        let mut stmt = tx.prepare_cached(&sql.samples[k])?;
        let mut p = 1;
        for (row, id) in rows[range.clone()].iter().zip(&ids[range.clone()]) {
            let values = row.metrics.as_ref().map(Metrics::values);
            stmt.raw_bind_parameter(p, id)?;
            stmt.raw_bind_parameter(p + 1, row.ts)?;
            for i in 0..METRICS.len() {
                stmt.raw_bind_parameter(p + 2 + i, values.map(|v| v[i]))?;
            }
            stmt.raw_bind_parameter(p + 2 + METRICS.len(), &row.error)?;
            p += 3 + METRICS.len();
        }
        keys.clear();
        let mut out = stmt.raw_query();
        while let Some(r) = out.next()? {
            keys.push((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?));
        }
        if keys.len() == range.len() {
            // Every row of the chunk is new (so no two of them share a key).
            is_new[range].fill(true);
        } else {
            let mut first: HashMap<(i64, i64), usize> = HashMap::new();
            for i in range {
                first.entry((ids[i], rows[i].ts)).or_insert(i);
            }
            for key in &keys {
                if let Some(&i) = first.get(key) {
                    is_new[i] = true;
                }
            }
        }
    }

    let new: Vec<usize> = (0..rows.len()).filter(|&i| is_new[i]).collect();
    if bulk {
        // Per node, the time range of its new rows; the roll-ups are rebuilt over it.
        let mut ranges: HashMap<i64, (i64, i64)> = HashMap::new();
        for &i in &new {
            let ts = rows[i].ts;
            let r = ranges.entry(ids[i]).or_insert((ts, ts));
            *r = (r.0.min(ts), r.1.max(ts));
        }
        for (id, (lo, hi)) in &ranges {
            recompute_rollups(tx, *id, *lo, *hi)?;
        }
        return Ok(new.len());
    }
    // Per tier: the new rows by (node, period) (a stable sort: the rows of one period are added
    // in the order given), summed per period, then added to the table in its key order.
    let values: Vec<Option<[f64; 5]>> = new
        .iter()
        .map(|&i| rows[i].metrics.as_ref().map(Metrics::values))
        .collect();
    let mut keyed: Vec<((i64, i64), usize)> = Vec::with_capacity(new.len());
    let mut periods: Vec<((i64, i64), Period)> = Vec::with_capacity(new.len());
    for ((_, secs), tier_sql) in ROLLUPS.iter().zip(&sql.rollups) {
        keyed.clear();
        keyed.extend(
            new.iter()
                .enumerate()
                .map(|(j, &i)| ((ids[i], rows[i].ts.div_euclid(*secs) * secs), j)),
        );
        keyed.sort_by_key(|(key, _)| *key);
        periods.clear();
        for &(key, j) in &keyed {
            match periods.last_mut() {
                Some((k, d)) if *k == key => d.add_row(values[j]),
                _ => {
                    let mut d = Period::default();
                    d.add_row(values[j]);
                    periods.push((key, d));
                }
            }
        }
        for (k, range) in chunks(periods.len()) {
            let mut stmt = tx.prepare_cached(&tier_sql[k])?;
            let mut p = 1;
            for ((id, ts), d) in &periods[range] {
                stmt.raw_bind_parameter(p, id)?;
                stmt.raw_bind_parameter(p + 1, ts)?;
                stmt.raw_bind_parameter(p + 2, d.n_rows)?;
                stmt.raw_bind_parameter(p + 3, d.n_ok)?;
                for i in 0..METRICS.len() {
                    stmt.raw_bind_parameter(p + 4 + 2 * i, d.sum[i])?;
                    stmt.raw_bind_parameter(p + 5 + 2 * i, d.max[i])?;
                }
                p += ROLLUP_PARAMS;
            }
            stmt.raw_execute()?;
        }
    }
    Ok(new.len())
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

    /// Every table of `s`, row by row, as text (exact: floats in full).
    fn dump_all(s: &SqliteStore) -> Vec<(String, Vec<Vec<String>>)> {
        let tables = ["nodes", "samples"]
            .into_iter()
            .chain(ROLLUPS.iter().map(|(t, _)| *t));
        tables
            .map(|table| {
                let mut stmt = s
                    .conn
                    .prepare(&format!("SELECT * FROM {table} ORDER BY 1, 2"))
                    .unwrap();
                let n = stmt.column_count();
                let rows = stmt
                    .query_map([], |r| {
                        (0..n)
                            .map(|i| {
                                r.get::<_, rusqlite::types::Value>(i)
                                    .map(|v| format!("{v:?}"))
                            })
                            .collect::<rusqlite::Result<Vec<_>>>()
                    })
                    .unwrap()
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .unwrap();
                (table.to_string(), rows)
            })
            .collect()
    }

    /// Ticks of 701 rows (every statement size of `CHUNKS`) with rows already present and
    /// duplicates inside a tick give exactly the tables and counts of writing the same rows one
    /// at a time.
    #[test]
    fn chunked_ticks_match_row_by_row_writes() {
        let nodes: Vec<String> = (0..701)
            .map(|i| format!("n{:03}", (i * 37) % 701))
            .collect();
        let mut ticks: Vec<Vec<Row>> = Vec::new();
        for t in 0..7i64 {
            let ts = 1_795_478_400 + t * 600;
            let mut tick: Vec<Row> = nodes
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    let x = ((i as i64 * 7 + t * 3) % 97) as f64 + 0.1;
                    row(ts, n, ((i as i64 + t) % 11 != 0).then_some(x))
                })
                .collect();
            if t == 3 {
                // Rows of the previous tick again (kept as they are), in the middle of the batch.
                let again: Vec<Row> = ticks[2]
                    .iter()
                    .step_by(13)
                    .map(|r| row(r.ts, &r.node, Some(55.5)))
                    .collect();
                tick.splice(300..300, again);
                // The same (node, ts) twice in one tick: the first one counts, nearby (same
                // statement) and far apart (another statement).
                let dup = row(ts, &tick[10].node, Some(77.7));
                tick.insert(11, dup);
                let late: Vec<Row> = tick[600..620]
                    .iter()
                    .map(|r| row(r.ts, &r.node, None))
                    .collect();
                tick.extend(late);
            }
            if t == 5 {
                tick.insert(400, row(ts, "new-node", Some(1.0)));
            }
            ticks.push(tick);
        }
        let dir = tempfile::tempdir().unwrap();
        let mut chunked = SqliteStore::open(&dir.path().join("chunked.sqlite3")).unwrap();
        let mut single = SqliteStore::open(&dir.path().join("single.sqlite3")).unwrap();
        for (t, tick) in ticks.iter().enumerate() {
            let expected = if t == 5 { 702 } else { 701 };
            assert_eq!(chunked.insert_rows(tick).unwrap(), expected, "tick {t}");
            let one_by_one: usize = tick
                .iter()
                .map(|r| single.insert_rows(std::slice::from_ref(r)).unwrap())
                .sum();
            assert_eq!(one_by_one, expected, "tick {t}");
        }
        // The first value of a (node, ts) stays.
        let at3 = chunked.rows_at(ticks[3][0].ts).unwrap();
        let first = |node: &str| at3.iter().find(|r| r.node == node).unwrap().clone();
        assert_eq!(first(&ticks[3][10].node), ticks[3][10]);
        assert_eq!(first(&ticks[3][600].node), ticks[3][600]);
        assert!(chunked.rows_at(ticks[2][0].ts).unwrap().iter().all(|r| r
            .metrics
            .as_ref()
            .map(|m| m.cpu_pct)
            != Some(55.5)));
        // Ids in order of first appearance, every table identical.
        let ids = chunked.node_ids(&nodes[..3]).unwrap();
        assert_eq!(
            ids,
            vec![
                (nodes[0].clone(), 1),
                (nodes[1].clone(), 2),
                (nodes[2].clone(), 3)
            ]
        );
        assert_eq!(dump_all(&chunked), dump_all(&single));
        let counts = |sql: &str| -> (i64, i64) {
            chunked
                .conn
                .query_row(sql, [], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
        };
        let raw = counts("SELECT count(*), count(cpu_pct) FROM samples");
        assert_eq!(raw.0, 7 * 701 + 1);
        for (table, _) in ROLLUPS {
            let sql = format!("SELECT sum(n_rows), sum(n_ok) FROM {table}");
            assert_eq!(counts(&sql), raw, "{table}");
        }
    }

    /// A write that fails part-way (here in the last roll-up tier) leaves nothing of itself, not
    /// even its new nodes, and the same rows can then be written.
    #[test]
    fn failed_write_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SqliteStore::open(&dir.path().join("db.sqlite3")).unwrap();
        let tick = |ts: i64, n: usize| -> Vec<Row> {
            (0..n)
                .map(|i| row(ts, &format!("n{i:03}"), Some(i as f64)))
                .collect()
        };
        assert_eq!(s.insert_rows(&tick(600, 300)).unwrap(), 300);
        let before = dump_all(&s);
        s.conn
            .execute_batch(
                "CREATE TRIGGER fail BEFORE UPDATE ON rollup_1d WHEN NEW.node_id = 200 \
                 BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
            )
            .unwrap();
        let e = s.insert_rows(&tick(1200, 500)).expect_err("fails");
        assert!(e.to_string().contains("injected failure"), "{e}");
        assert_eq!(dump_all(&s), before);
        s.conn.execute_batch("DROP TRIGGER fail").unwrap();
        assert_eq!(s.insert_rows(&tick(1200, 500)).unwrap(), 500);
        assert_eq!(s.rows_at(1200).unwrap().len(), 500);
        assert_eq!(s.node_names().unwrap().len(), 500);
        let n_rows: i64 = s
            .conn
            .query_row("SELECT sum(n_rows) FROM rollup_1d", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n_rows, 800);
    }

    /// Several rows of one period in one write are summed in the order given (as they always
    /// were), not in time order.
    #[test]
    fn rows_of_one_period_are_summed_in_the_order_given() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SqliteStore::open(&dir.path().join("db.sqlite3")).unwrap();
        let rows = [
            row(3000, "x", Some(0.1)),
            row(1800, "x", Some(0.2)),
            row(2400, "x", Some(0.3)),
        ];
        assert_eq!(s.insert_rows(&rows).unwrap(), 3);
        let sum: f64 = s
            .conn
            .query_row(
                "SELECT cpu_pct_sum FROM rollup_30m WHERE ts = 1800",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let (given, by_time) = ((0.1 + 0.2) + 0.3, (0.2 + 0.3) + 0.1);
        assert_ne!(given, by_time);
        assert_eq!(sum, given);
    }

    /// A writing store keeps statement journals in memory and checkpoints less often; a reader
    /// keeps SQLite's defaults.
    #[test]
    fn writers_are_prepared_readers_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        let mut s = SqliteStore::open(&path).unwrap();
        let rows: Vec<Row> = (0..1000)
            .map(|i| row(600, &format!("n{i:04}"), Some(i as f64)))
            .collect();
        assert_eq!(s.insert_rows(&rows).unwrap(), 1000);
        let pragma = |s: &SqliteStore, p: &str| -> i64 {
            s.conn
                .query_row(&format!("PRAGMA {p}"), [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(pragma(&s, "wal_autocheckpoint"), WRITER_CHECKPOINT_PAGES);
        assert_eq!(pragma(&s, "temp_store"), 2, "MEMORY");
        let r = SqliteStore::open_existing(&path).unwrap();
        assert_eq!(r.rows_at(600).unwrap().len(), 1000);
        assert_eq!(
            pragma(&r, "wal_autocheckpoint"),
            1000,
            "a reader: SQLite's default"
        );
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
