-- An index for every foreign key's referencing columns. SQLite, like Postgres, does not create
-- them, and without one each parent row deleted scans the child table: deleting an application
-- with 16,000 attempts took 18 s (every delivery deleted scanned `attempts`), holding the only
-- writer, so publishes meanwhile answered 503. Postgres has had `attempts_by_delivery` since
-- 0002. `device_tags`'s key starts with the tag, not the device.
CREATE INDEX attempts_by_delivery ON attempts (delivery_id);
CREATE INDEX device_tags_by_device ON device_tags (app_id, device_id);
CREATE INDEX api_keys_by_app ON api_keys (app_id);
