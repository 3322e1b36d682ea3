-- An address is bound to the provider account that first signed in with it: (issuer, sub), which
-- OpenID Connect Core 5.7 names as the only stable identifier of an end user. A later sign-in with
-- the same address from another account is refused, and remembered (other_*) so that an Admin can
-- re-bind the address to that account.
--
-- Rows from before this migration have the `sub` of their last sign-in but no issuer: dsmon fills
-- in the configured issuer when it starts (it cannot be known here), binding each address to the
-- account that last signed in with it, which is the state an Admin has already seen and accepted.
ALTER TABLE users ADD COLUMN issuer TEXT;          -- NULL: not bound yet (bound at start / next sign-in)
ALTER TABLE users ADD COLUMN other_issuer TEXT;    -- the last other account that tried this address
ALTER TABLE users ADD COLUMN other_sub TEXT;
ALTER TABLE users ADD COLUMN other_at INTEGER;     -- when (unix seconds)
CREATE INDEX users_account ON users(issuer, sub);

-- Audit bounds: entries older than [auth] audit_retention are deleted; repeated refusals from no
-- known actor (same action, target and detail, first seen less than an hour ago) are one entry with
-- a count and the last time seen, so a loop of bad requests cannot fill the disk.
ALTER TABLE audit ADD COLUMN count INTEGER NOT NULL DEFAULT 1;
ALTER TABLE audit ADD COLUMN last_ts INTEGER;      -- NULL: seen once, at ts
CREATE INDEX audit_ts ON audit(ts);
CREATE INDEX audit_anonymous ON audit(action, ts) WHERE actor IS NULL;
