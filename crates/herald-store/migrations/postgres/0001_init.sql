-- Herald schema, Postgres flavour: the same tables and version as migrations/sqlite/0001_init.sql.
-- Timestamps are BIGINT milliseconds since the Unix epoch; JSON is stored as text; secrets are
-- sealed BYTEA (see herald_core::crypto). Keys and sorted text use the "C" collation so that
-- they order byte by byte, as on SQLite: ids sort in creation order only under it.

CREATE TABLE settings (
    key   TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

CREATE TABLE applications (
    id         TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    uid        TEXT COLLATE "C" UNIQUE,
    name       TEXT NOT NULL,
    rate_limit INTEGER,
    metadata   TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE event_types (
    name         TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    description  TEXT NOT NULL,
    archived     BOOLEAN NOT NULL DEFAULT FALSE,
    deprecated   BOOLEAN NOT NULL DEFAULT FALSE,
    feature_flag TEXT,
    schemas      TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);

CREATE TABLE endpoints (
    id               TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    app_id           TEXT COLLATE "C" NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    uid              TEXT COLLATE "C",
    url              TEXT NOT NULL,
    description      TEXT NOT NULL,
    event_types      TEXT,
    channels         TEXT,
    disabled         BOOLEAN NOT NULL DEFAULT FALSE,
    rate_limit       INTEGER,
    metadata         TEXT NOT NULL,
    options          TEXT NOT NULL,
    secret           BYTEA NOT NULL,
    previous_secrets BYTEA,
    headers          BYTEA,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    UNIQUE (app_id, uid)
);
CREATE INDEX endpoints_by_app ON endpoints (app_id, id);

CREATE TABLE messages (
    id                 TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    app_id             TEXT COLLATE "C" NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    event_type         TEXT COLLATE "C" NOT NULL,
    event_id           TEXT COLLATE "C",
    -- ",a,b," so that one channel is found as the substring ",a," on every engine; NULL for none.
    channels           TEXT COLLATE "C",
    payload            TEXT,
    created_at         BIGINT NOT NULL,
    payload_expires_at BIGINT NOT NULL
);
CREATE INDEX messages_by_app ON messages (app_id, id);
CREATE UNIQUE INDEX messages_by_event_id ON messages (app_id, event_id) WHERE event_id IS NOT NULL;

CREATE TABLE api_keys (
    id          TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    app_id      TEXT COLLATE "C" REFERENCES applications (id) ON DELETE CASCADE,
    secret_hash BYTEA NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT
);
CREATE INDEX api_keys_by_expiry ON api_keys (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE idempotency_keys (
    scope       TEXT COLLATE "C" NOT NULL,
    key         TEXT COLLATE "C" NOT NULL,
    fingerprint BYTEA NOT NULL,
    -- NULL while the first request runs.
    status      INTEGER,
    body        BYTEA,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
