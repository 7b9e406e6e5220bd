-- The delivery queue. The database is the queue: a message's tasks are rows committed with it.

-- One task per message and endpoint: its status (0 success, 1 pending, 2 fail, 3 sending) and
-- when it is next due. While an attempt is in flight (status 3) `next_attempt_at` holds the
-- lease expiry, so "due" covers both pending tasks and tasks of a crashed worker.
CREATE TABLE deliveries (
    id               INTEGER PRIMARY KEY,
    msg_id           TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    endpoint_id      TEXT NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
    app_id           TEXT NOT NULL,
    status           INTEGER NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT,
    lease_token      TEXT,
    manual           BOOLEAN NOT NULL DEFAULT FALSE,
    created_at       BIGINT NOT NULL,
    last_attempt_at  BIGINT,
    last_status_code INTEGER
);
CREATE UNIQUE INDEX deliveries_by_message ON deliveries (msg_id, endpoint_id);
CREATE INDEX deliveries_due ON deliveries (endpoint_id, next_attempt_at, id) WHERE status IN (1, 3);
CREATE INDEX deliveries_fifo ON deliveries (endpoint_id, id) WHERE status IN (1, 3);
CREATE INDEX deliveries_by_endpoint ON deliveries (endpoint_id, status, created_at);

-- Every HTTP attempt, successful or not.
CREATE TABLE attempts (
    id                   TEXT PRIMARY KEY NOT NULL,
    delivery_id          INTEGER NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    msg_id               TEXT NOT NULL,
    endpoint_id          TEXT NOT NULL,
    app_id               TEXT NOT NULL,
    url                  TEXT NOT NULL,
    status_code          INTEGER NOT NULL,
    response             TEXT,
    response_duration_ms BIGINT NOT NULL,
    trigger_type         INTEGER NOT NULL,
    success              BOOLEAN NOT NULL,
    error                TEXT,
    created_at           BIGINT NOT NULL
);
CREATE INDEX attempts_by_message ON attempts (msg_id, id);
CREATE INDEX attempts_by_endpoint ON attempts (endpoint_id, id);

-- Per-endpoint scheduling: when the endpoint next has due work, which node dispatches it (one
-- node per endpoint, under a lease, so concurrency caps, throttling and FIFO order hold), a
-- version bumped by every publish so that an owner cannot release the endpoint over work it
-- has not seen, and the start of the current failure streak (for automatic disabling).
CREATE TABLE endpoint_queues (
    endpoint_id   TEXT PRIMARY KEY NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
    next_due_at   BIGINT,
    owner         TEXT,
    lease_until   BIGINT,
    version       BIGINT NOT NULL DEFAULT 0,
    failing_since BIGINT
);
CREATE INDEX endpoint_queues_due ON endpoint_queues (next_due_at) WHERE next_due_at IS NOT NULL;

-- Secret and header changes are read-modify-write of one sealed blob; the version makes them
-- compare-and-swap so that concurrent changes cannot silently undo each other.
ALTER TABLE endpoints ADD COLUMN secrets_version BIGINT NOT NULL DEFAULT 0;
