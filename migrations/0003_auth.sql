-- Sign-in: everyone who has tried to sign in with a verified identity, their server-side sessions,
-- and the audit log. Roles come from the configuration ([auth] admins / users) unless an Admin set
-- one on the users page (`role`); configuration admins are always Admin.

CREATE TABLE users (
    email        TEXT PRIMARY KEY,          -- lowercased, as verified by the provider
    sub          TEXT NOT NULL,             -- the provider's stable subject id
    name         TEXT,
    hd           TEXT,                      -- Google Workspace domain (verified claim), if any
    role         TEXT CHECK (role IN ('admin', 'user')),  -- set by an Admin; NULL: from the configuration
    blocked      INTEGER NOT NULL DEFAULT 0,
    first_seen   INTEGER NOT NULL,          -- unix seconds
    last_sign_in INTEGER                    -- last successful sign-in
);

-- The cookie holds a random 256-bit id; only its SHA-256 is stored, so a copy of the database
-- does not hand out live sessions.
CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY,
    email   TEXT NOT NULL REFERENCES users(email) ON DELETE CASCADE,
    created INTEGER NOT NULL,
    expires INTEGER NOT NULL
);
CREATE INDEX sessions_email ON sessions(email);

CREATE TABLE audit (
    id     INTEGER PRIMARY KEY,
    ts     INTEGER NOT NULL,
    actor  TEXT,                            -- who acted (email); NULL when not known
    action TEXT NOT NULL,                   -- sign_in, sign_in_refused, sign_out, access_denied, role_changed, blocked, unblocked
    target TEXT,                            -- the user or path acted on
    detail TEXT
);
