-- Integrations (Svix's): a named credential of one application for a third party. Its key is an
-- ordinary row of `api_keys` (kind `integration`), listed and revocable like every key;
-- rotating replaces that row. A revoked key leaves the integration without one until rotated.
CREATE TABLE integrations (
    id            TEXT PRIMARY KEY,
    app_id        TEXT NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    feature_flags TEXT,
    key_id        TEXT REFERENCES api_keys (id) ON DELETE SET NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX integrations_by_app ON integrations (app_id, id);
CREATE INDEX integrations_by_key ON integrations (key_id);
