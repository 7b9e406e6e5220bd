-- Herald schema, SQLite flavour. Timestamps are integer milliseconds since the Unix epoch; JSON
-- is stored as text; secrets are sealed blobs (see herald_core::crypto).

CREATE TABLE settings (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

CREATE TABLE applications (
    id         TEXT PRIMARY KEY NOT NULL,
    uid        TEXT UNIQUE,
    name       TEXT NOT NULL,
    rate_limit INTEGER,
    metadata   TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE event_types (
    name         TEXT PRIMARY KEY NOT NULL,
    description  TEXT NOT NULL,
    archived     BOOLEAN NOT NULL DEFAULT FALSE,
    deprecated   BOOLEAN NOT NULL DEFAULT FALSE,
    feature_flag TEXT,
    schemas      TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);

CREATE TABLE endpoints (
    id               TEXT PRIMARY KEY NOT NULL,
    app_id           TEXT NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    uid              TEXT,
    url              TEXT NOT NULL,
    description      TEXT NOT NULL,
    event_types      TEXT,
    channels         TEXT,
    disabled         BOOLEAN NOT NULL DEFAULT FALSE,
    rate_limit       INTEGER,
    metadata         TEXT NOT NULL,
    options          TEXT NOT NULL,
    secret           BLOB NOT NULL,
    previous_secrets BLOB,
    headers          BLOB,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    UNIQUE (app_id, uid)
);
CREATE INDEX endpoints_by_app ON endpoints (app_id, id);

CREATE TABLE messages (
    id                 TEXT PRIMARY KEY NOT NULL,
    app_id             TEXT NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    event_type         TEXT NOT NULL,
    event_id           TEXT,
    -- ",a,b," so that one channel matches with LIKE '%,a,%' on every engine; NULL for none.
    channels           TEXT,
    payload            TEXT,
    created_at         INTEGER NOT NULL,
    payload_expires_at INTEGER NOT NULL
);
CREATE INDEX messages_by_app ON messages (app_id, id);
CREATE UNIQUE INDEX messages_by_event_id ON messages (app_id, event_id) WHERE event_id IS NOT NULL;

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    app_id      TEXT REFERENCES applications (id) ON DELETE CASCADE,
    secret_hash BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER
);
CREATE INDEX api_keys_by_expiry ON api_keys (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE idempotency_keys (
    scope       TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint BLOB NOT NULL,
    -- NULL while the first request runs.
    status      INTEGER,
    body        BLOB,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
