-- Polling endpoints (issue 25): a publish stores one entry per message for each matching
-- polling endpoint, in its own transaction, instead of a delivery task.
--
-- Readers go through the entries in commit order. `seq` is drawn before the publish commits,
-- so a publish that took a smaller seq may commit after a larger one has been read. Each entry
-- therefore also records the id of the transaction that wrote it (`xid`, the 64-bit xid8 as a
-- number), and a reader only reads entries whose transaction is older than the oldest one
-- still running (`pg_snapshot_xmin`): every such transaction has ended, and every transaction
-- that ends later has an xid at least that high. Reading in (xid, seq) order then never passes
-- an entry that is still to come (see `PollStore` and ARCHITECTURE.md).
CREATE TABLE poll_entries (
    seq         BIGSERIAL PRIMARY KEY,
    xid         BIGINT NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    endpoint_id TEXT COLLATE "C" NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
    msg_id      TEXT COLLATE "C" NOT NULL REFERENCES messages (id) ON DELETE CASCADE
);
CREATE INDEX poll_entries_by_endpoint ON poll_entries (endpoint_id, xid, seq);
CREATE INDEX poll_entries_by_message ON poll_entries (msg_id);

-- Each consumer's acknowledged position (an entry's (xid, seq)); it reads what comes after.
CREATE TABLE poll_consumers (
    endpoint_id TEXT COLLATE "C" NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
    consumer_id TEXT COLLATE "C" NOT NULL,
    xid         BIGINT NOT NULL,
    seq         BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (endpoint_id, consumer_id)
);
