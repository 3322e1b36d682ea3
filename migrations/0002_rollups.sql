-- Roll-up tiers for history queries: per node and period, how many rows were logged (n_rows), how
-- many of them had values (n_ok), and the sum and maximum of every metric over the rows with values.
-- The average of a bucket is sum / n_ok; availability is n_ok / n_rows. `ts` is the period's start
-- (a multiple of its length); a row belongs to the period containing its own ts.
-- Kept up to date by the store as rows are written (only for rows actually inserted, so re-running a
-- tick or an import never counts a row twice), and built here from the rows already logged.
-- The tiers (30 min, 1 h, 6 h, 12 h, 1 d) are chosen so that a history query of up to 500 points
-- reads at most about 720 periods per node, whatever its range.

CREATE TABLE rollup_30m (
    node_id INTEGER NOT NULL REFERENCES nodes(id),
    ts      INTEGER NOT NULL,
    n_rows  INTEGER NOT NULL,
    n_ok    INTEGER NOT NULL,
    cpu_pct_sum REAL, cpu_pct_max REAL,
    mem_pct_sum REAL, mem_pct_max REAL,
    disk_pct_sum REAL, disk_pct_max REAL,
    net_in_kbps_sum REAL, net_in_kbps_max REAL,
    net_out_kbps_sum REAL, net_out_kbps_max REAL,
    PRIMARY KEY (node_id, ts)
) WITHOUT ROWID;

CREATE TABLE rollup_1h (
    node_id INTEGER NOT NULL REFERENCES nodes(id),
    ts      INTEGER NOT NULL,
    n_rows  INTEGER NOT NULL,
    n_ok    INTEGER NOT NULL,
    cpu_pct_sum REAL, cpu_pct_max REAL,
    mem_pct_sum REAL, mem_pct_max REAL,
    disk_pct_sum REAL, disk_pct_max REAL,
    net_in_kbps_sum REAL, net_in_kbps_max REAL,
    net_out_kbps_sum REAL, net_out_kbps_max REAL,
    PRIMARY KEY (node_id, ts)
) WITHOUT ROWID;

CREATE TABLE rollup_6h (
    node_id INTEGER NOT NULL REFERENCES nodes(id),
    ts      INTEGER NOT NULL,
    n_rows  INTEGER NOT NULL,
    n_ok    INTEGER NOT NULL,
    cpu_pct_sum REAL, cpu_pct_max REAL,
    mem_pct_sum REAL, mem_pct_max REAL,
    disk_pct_sum REAL, disk_pct_max REAL,
    net_in_kbps_sum REAL, net_in_kbps_max REAL,
    net_out_kbps_sum REAL, net_out_kbps_max REAL,
    PRIMARY KEY (node_id, ts)
) WITHOUT ROWID;

CREATE TABLE rollup_12h (
    node_id INTEGER NOT NULL REFERENCES nodes(id),
    ts      INTEGER NOT NULL,
    n_rows  INTEGER NOT NULL,
    n_ok    INTEGER NOT NULL,
    cpu_pct_sum REAL, cpu_pct_max REAL,
    mem_pct_sum REAL, mem_pct_max REAL,
    disk_pct_sum REAL, disk_pct_max REAL,
    net_in_kbps_sum REAL, net_in_kbps_max REAL,
    net_out_kbps_sum REAL, net_out_kbps_max REAL,
    PRIMARY KEY (node_id, ts)
) WITHOUT ROWID;

CREATE TABLE rollup_1d (
    node_id INTEGER NOT NULL REFERENCES nodes(id),
    ts      INTEGER NOT NULL,
    n_rows  INTEGER NOT NULL,
    n_ok    INTEGER NOT NULL,
    cpu_pct_sum REAL, cpu_pct_max REAL,
    mem_pct_sum REAL, mem_pct_max REAL,
    disk_pct_sum REAL, disk_pct_max REAL,
    net_in_kbps_sum REAL, net_in_kbps_max REAL,
    net_out_kbps_sum REAL, net_out_kbps_max REAL,
    PRIMARY KEY (node_id, ts)
) WITHOUT ROWID;

INSERT INTO rollup_30m
SELECT node_id, ts / 1800 * 1800, count(*), count(cpu_pct),
       sum(cpu_pct), max(cpu_pct), sum(mem_pct), max(mem_pct), sum(disk_pct), max(disk_pct),
       sum(net_in_kbps), max(net_in_kbps), sum(net_out_kbps), max(net_out_kbps)
FROM samples GROUP BY node_id, ts / 1800;

INSERT INTO rollup_1h
SELECT node_id, ts / 3600 * 3600, sum(n_rows), sum(n_ok),
       sum(cpu_pct_sum), max(cpu_pct_max), sum(mem_pct_sum), max(mem_pct_max), sum(disk_pct_sum), max(disk_pct_max),
       sum(net_in_kbps_sum), max(net_in_kbps_max), sum(net_out_kbps_sum), max(net_out_kbps_max)
FROM rollup_30m GROUP BY node_id, ts / 3600;

INSERT INTO rollup_6h
SELECT node_id, ts / 21600 * 21600, sum(n_rows), sum(n_ok),
       sum(cpu_pct_sum), max(cpu_pct_max), sum(mem_pct_sum), max(mem_pct_max), sum(disk_pct_sum), max(disk_pct_max),
       sum(net_in_kbps_sum), max(net_in_kbps_max), sum(net_out_kbps_sum), max(net_out_kbps_max)
FROM rollup_1h GROUP BY node_id, ts / 21600;

INSERT INTO rollup_12h
SELECT node_id, ts / 43200 * 43200, sum(n_rows), sum(n_ok),
       sum(cpu_pct_sum), max(cpu_pct_max), sum(mem_pct_sum), max(mem_pct_max), sum(disk_pct_sum), max(disk_pct_max),
       sum(net_in_kbps_sum), max(net_in_kbps_max), sum(net_out_kbps_sum), max(net_out_kbps_max)
FROM rollup_6h GROUP BY node_id, ts / 43200;

INSERT INTO rollup_1d
SELECT node_id, ts / 86400 * 86400, sum(n_rows), sum(n_ok),
       sum(cpu_pct_sum), max(cpu_pct_max), sum(mem_pct_sum), max(mem_pct_max), sum(disk_pct_sum), max(disk_pct_max),
       sum(net_in_kbps_sum), max(net_in_kbps_max), sum(net_out_kbps_sum), max(net_out_kbps_max)
FROM rollup_12h GROUP BY node_id, ts / 86400;
