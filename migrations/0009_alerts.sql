-- Alerts: the state of every (rule, node) pair (so a restart neither forgets a firing alert nor
-- notifies it again), the firing history, silences and the delivery log.
CREATE TABLE alert_state (
    rule TEXT NOT NULL,
    node TEXT NOT NULL,
    -- ok | pending | firing | no_data
    state TEXT NOT NULL,
    -- When it entered `state` (pending: when the condition began to hold).
    since INTEGER NOT NULL,
    -- When it started firing (kept through no_data while the node is away).
    fired_at INTEGER,
    value REAL,
    -- The last firing or repeat notification sent.
    last_notified INTEGER,
    acked_by TEXT,
    acked_at INTEGER,
    PRIMARY KEY (rule, node)
) WITHOUT ROWID;

CREATE TABLE alert_events (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    rule TEXT NOT NULL,
    node TEXT NOT NULL,
    severity TEXT NOT NULL,
    -- firing | resolved
    state TEXT NOT NULL,
    value REAL,
    threshold REAL NOT NULL,
    -- 1: recorded but not delivered (a silence or a maintenance window).
    silenced INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX alert_events_at ON alert_events(at);

CREATE TABLE alert_silences (
    id INTEGER PRIMARY KEY,
    created INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    expires INTEGER NOT NULL,
    -- What it matches (NULL: anything); at least one is set.
    nodes TEXT,
    rule TEXT,
    severity TEXT,
    comment TEXT NOT NULL
);
CREATE INDEX alert_silences_expires ON alert_silences(expires);

CREATE TABLE alert_deliveries (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    notifier TEXT NOT NULL,
    type TEXT NOT NULL,
    -- firing | resolved | repeat | test
    kind TEXT NOT NULL,
    rule TEXT NOT NULL,
    -- The nodes of the notification, comma-separated (node names hold no commas).
    nodes TEXT NOT NULL,
    ok INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    answer TEXT NOT NULL
);
CREATE INDEX alert_deliveries_at ON alert_deliveries(at);
