-- Session lifetimes: a session ends when it has not been used for [auth] session_idle (last_seen),
-- at its absolute end (expires, [auth] session_ttl after the sign-in), and once [auth] recheck has
-- passed since its user authenticated at the provider (created: every session is made by a
-- sign-in, so that is when the provider last confirmed the account; a new sign-in makes a new
-- session). Sessions from before this migration count as last used when they were made.
ALTER TABLE sessions ADD COLUMN last_seen INTEGER NOT NULL DEFAULT 0;  -- unix seconds
UPDATE sessions SET last_seen = created;
