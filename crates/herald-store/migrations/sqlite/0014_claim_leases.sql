-- A claim rewrites no index (ARCHITECTURE.md, "A claim touches no index"): it writes only the
-- lease, `lease_token` (which node) and `lease_until` (until when), columns no index covers,
-- instead of setting `status` to 3 (sending) and moving `next_attempt_at`, which are in six
-- of the table's indexes. The status stays 1 (pending); "sending" is what a pending task
-- under a lease is reported as.
ALTER TABLE deliveries ADD COLUMN lease_until INTEGER;
UPDATE deliveries SET status = 1, lease_until = next_attempt_at WHERE status = 3;
