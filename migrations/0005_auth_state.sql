-- Sign-in state that any instance of dsmon on this database can finish: started sign-ins (the
-- OpenID Connect attempt: state, nonce, PKCE verifier, redirect, where to go after), keyed by a hash
-- of their state; and desktop ID tokens already exchanged for a session (each is good once), by
-- hash. Both expire; expired rows are removed as new ones are written.
CREATE TABLE pending_logins (
    key_hash TEXT PRIMARY KEY,
    data     TEXT    NOT NULL,
    created  INTEGER NOT NULL,
    expires  INTEGER NOT NULL
);
CREATE INDEX pending_logins_created ON pending_logins(created);

CREATE TABLE used_tokens (
    token_hash TEXT PRIMARY KEY,
    expires    INTEGER NOT NULL
);
