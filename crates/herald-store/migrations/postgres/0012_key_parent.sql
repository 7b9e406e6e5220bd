-- A console session is a key minted from the credential its operator signed in with: revoking
-- that credential (or its expiry's purge) deletes the sessions it made.
ALTER TABLE api_keys ADD COLUMN parent_id TEXT COLLATE "C" REFERENCES api_keys (id) ON DELETE CASCADE;
CREATE INDEX api_keys_by_parent ON api_keys (parent_id);
