-- Polling endpoints (issue 25): a publish stores one entry per message for each matching
-- polling endpoint, in its own transaction, instead of a delivery task. SQLite has one writer,
-- so `seq` order is commit order and `xid` stays 0 (Postgres needs it: see its migration).
-- AUTOINCREMENT: a seq is never reused, so a consumer's position never points at a new entry.
CREATE TABLE poll_entries (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    xid         INTEGER NOT NULL DEFAULT 0,
    endpoint_id TEXT NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
    msg_id      TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE
);
CREATE INDEX poll_entries_by_endpoint ON poll_entries (endpoint_id, xid, seq);
CREATE INDEX poll_entries_by_message ON poll_entries (msg_id);

-- Each consumer's acknowledged position (an entry's (xid, seq)); it reads what comes after.
CREATE TABLE poll_consumers (
    endpoint_id TEXT NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
    consumer_id TEXT NOT NULL,
    xid         INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (endpoint_id, consumer_id)
) WITHOUT ROWID;
