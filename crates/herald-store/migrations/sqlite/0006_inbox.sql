-- Inboxes: Herald receiving webhooks and agent posts by path, Firebase-style (see
-- herald_core::inbox and ARCHITECTURE.md, "Inboxes").

CREATE TABLE inboxes (
    id             TEXT PRIMARY KEY NOT NULL,
    name           TEXT NOT NULL UNIQUE,
    app_id         TEXT REFERENCES applications (id) ON DELETE CASCADE,
    description    TEXT NOT NULL,
    -- SHA-256 of the ingest token; the token is shown once.
    token_hash     BLOB NOT NULL,
    -- JSON {"scheme", "header", "prefix", "toleranceSeconds"}, and the sealed secret.
    verification   TEXT,
    verify_secret  BLOB,
    max_body_bytes BIGINT,
    rate_limit     BIGINT,
    -- JSON {"eventTypeFrom": "path" | "header" | "fixed", …}
    forward        TEXT,
    -- Requests refused because their signature did not verify.
    rejected_count BIGINT NOT NULL DEFAULT 0,
    -- Bumped by every write: the row lock it takes serializes writes to one inbox.
    write_seq      BIGINT NOT NULL DEFAULT 0,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX inboxes_by_app ON inboxes (app_id, id);

-- One row per accepted write that still holds data: its JSON value at (path, key), where path
-- is the slash-joined location of the parent ('' at the root). No two rows share a location,
-- and no place in the tree is set by two rows (writes prune what they replace). `path` and
-- `key` compare as byte strings (the tree reads use ranges `path >= 'a/' AND path < 'a0'`).
CREATE TABLE inbox_entries (
    id          TEXT PRIMARY KEY NOT NULL,
    inbox_id    TEXT NOT NULL REFERENCES inboxes (id) ON DELETE CASCADE,
    path        TEXT NOT NULL,
    key         TEXT NOT NULL,
    method      TEXT NOT NULL,
    value       TEXT NOT NULL,
    -- empty, json, form, text or base64 (how the body became `value`).
    encoding    TEXT NOT NULL,
    -- JSON object of the request headers (without Authorization).
    headers     TEXT NOT NULL,
    source      TEXT,
    received_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX inbox_entries_by_location ON inbox_entries (inbox_id, path, key);
CREATE INDEX inbox_entries_by_inbox ON inbox_entries (inbox_id, id);
