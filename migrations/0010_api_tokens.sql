-- API tokens: made by an Admin with a name, a role and an optional expiry, sent as
-- `Authorization: Bearer dsmon_...`. Only the SHA-256 of the secret is kept (hex), so the table
-- cannot be used to call the API. A token is never deleted, only revoked, so the audit log's
-- `token:NAME` entries keep naming one token: names are unique for good.
CREATE TABLE api_tokens (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    role       TEXT NOT NULL CHECK (role IN ('admin', 'user')),
    hash       TEXT NOT NULL UNIQUE,
    created    INTEGER NOT NULL,
    -- The Admin who made it (an address of `users`); the token works while that user is an Admin.
    created_by TEXT NOT NULL,
    -- NULL: never expires.
    expires    INTEGER,
    -- Recorded at most once a minute per token.
    last_used  INTEGER,
    -- When it was revoked; NULL: not revoked.
    revoked    INTEGER
);
