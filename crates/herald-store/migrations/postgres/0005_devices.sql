-- Devices whose reported facts become events (Postgres flavour of sqlite/0005_devices.sql).

CREATE TABLE device_groups (
    app_id                      TEXT COLLATE "C" NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    name                        TEXT COLLATE "C" NOT NULL,
    test                        BOOLEAN NOT NULL,
    allow_unblessed_activation  BOOLEAN NOT NULL,
    created_at                  BIGINT NOT NULL,
    updated_at                  BIGINT NOT NULL,
    PRIMARY KEY (app_id, name)
);

CREATE TABLE devices (
    app_id        TEXT COLLATE "C" NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    id            TEXT COLLATE "C" NOT NULL,
    name          TEXT COLLATE "C" NOT NULL,
    kind          TEXT NOT NULL,
    device_group  TEXT,
    teams         TEXT NOT NULL,
    bundles       TEXT NOT NULL,
    status        TEXT,
    status_at     BIGINT,
    metadata      TEXT NOT NULL,
    imp_id        TEXT,
    blessed_at    BIGINT,
    activated_at  BIGINT,
    history_seq   BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (app_id, id)
);

-- One row per team, bundle and metadata pair, so list filters are indexed equality lookups
-- on every backend (no JSON functions).
CREATE TABLE device_tags (
    app_id     TEXT COLLATE "C" NOT NULL,
    device_id  TEXT COLLATE "C" NOT NULL,
    tag        TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (app_id, tag, device_id),
    FOREIGN KEY (app_id, device_id) REFERENCES devices (app_id, id) ON DELETE CASCADE
);

CREATE TABLE device_history (
    app_id       TEXT COLLATE "C" NOT NULL,
    device_id    TEXT COLLATE "C" NOT NULL,
    seq_key      TEXT COLLATE "C" NOT NULL,
    from_status  TEXT,
    to_status    TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    at           BIGINT NOT NULL,
    msg_id       TEXT,
    PRIMARY KEY (app_id, device_id, seq_key),
    FOREIGN KEY (app_id, device_id) REFERENCES devices (app_id, id) ON DELETE CASCADE
);
