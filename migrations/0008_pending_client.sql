-- Pending sign-ins are counted per client (the address the rate limit sees), so that one client
-- starting many sign-ins crowds out only its own. Rows from before this migration have no client.
ALTER TABLE pending_logins ADD COLUMN client TEXT NOT NULL DEFAULT '';
CREATE INDEX pending_logins_client ON pending_logins(client, created);
