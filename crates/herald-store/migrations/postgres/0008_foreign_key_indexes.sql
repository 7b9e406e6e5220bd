-- An index for every foreign key's referencing columns (see the SQLite migration of the same
-- number). `attempts_by_delivery` exists here since 0002.
CREATE INDEX IF NOT EXISTS attempts_by_delivery ON attempts (delivery_id);
CREATE INDEX device_tags_by_device ON device_tags (app_id, device_id);
CREATE INDEX api_keys_by_app ON api_keys (app_id);
