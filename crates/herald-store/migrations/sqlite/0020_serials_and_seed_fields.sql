-- Integer serials (issue 24): Impilo's typed envelope carries a message's number, Impilo's API
-- and Kobiton's payload an endpoint's (`webhookId`). Serials are drawn from `serials`, one row
-- per kind, in blocks (see `SerialBlocks`), so publishes never wait on one counter row; they
-- are unique across the server and increase on each node, with gaps.
CREATE TABLE serials (
    kind TEXT PRIMARY KEY NOT NULL,
    next INTEGER NOT NULL
);
ALTER TABLE messages ADD COLUMN serial INTEGER NOT NULL DEFAULT 0;
UPDATE messages SET serial = rowid;
INSERT INTO serials (kind, next) SELECT 'message', COALESCE(MAX(serial), 0) + 1 FROM messages;
ALTER TABLE endpoints ADD COLUMN serial INTEGER NOT NULL DEFAULT 0;
UPDATE endpoints SET serial = rowid;
INSERT INTO serials (kind, next) SELECT 'endpoint', COALESCE(MAX(serial), 0) + 1 FROM endpoints;
CREATE UNIQUE INDEX endpoints_by_serial ON endpoints (serial);
-- Kobiton's webhook name: unique within the application when given.
ALTER TABLE endpoints ADD COLUMN name TEXT;
CREATE UNIQUE INDEX endpoints_by_name ON endpoints (app_id, name) WHERE name IS NOT NULL;
-- Kobiton's numeric organisation id, and Impilo's one webhook secret per application (sealed).
ALTER TABLE applications ADD COLUMN org_id INTEGER;
ALTER TABLE applications ADD COLUMN webhook_secret BLOB;
