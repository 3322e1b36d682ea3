-- Nodes ever logged (configured now, or retired / imported). Rows refer to them by id.
CREATE TABLE nodes (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

-- One row per node per logging tick. `ts` is the Unix time (seconds, UTC) at the END of the interval
-- the row averages, always a multiple of the log interval. NULL metrics and a non-NULL `error` mean the
-- node could not be read for that tick.
-- WITHOUT ROWID with (node_id, ts) as the key stores each node's rows contiguously in time order, so a
-- per-node time-range query is one index range scan; the key also makes a (node, tick) pair unique.
CREATE TABLE samples (
    node_id      INTEGER NOT NULL REFERENCES nodes(id),
    ts           INTEGER NOT NULL,
    cpu_pct      REAL,
    mem_pct      REAL,
    disk_pct     REAL,
    net_in_kbps  REAL,
    net_out_kbps REAL,
    error        TEXT,
    PRIMARY KEY (node_id, ts)
) WITHOUT ROWID;
