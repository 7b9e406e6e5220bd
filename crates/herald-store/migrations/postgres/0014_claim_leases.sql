-- A claim rewrites no index (ARCHITECTURE.md, "A claim touches no index").
--
-- Until now a claim set `status` to 3 (sending) and moved `next_attempt_at` to the lease
-- expiry. Both columns are in the queue and log indexes, so every claim was a row version that
-- Postgres could not update on its page (not HOT): a new entry in eight indexes and one more
-- dead row for vacuum, twice per delivery with the result. A claim now writes only the lease,
-- `lease_token` (which node) and `lease_until` (until when), columns no index covers; the
-- status stays 1 (pending) and "sending" is what a pending task under a lease is reported as.
ALTER TABLE deliveries ADD COLUMN lease_until BIGINT;
UPDATE deliveries SET status = 1, lease_until = next_attempt_at WHERE status = 3;

-- Room on each page for the claim's new row version next to the old one: an update is HOT only
-- when the new version fits on the same page. Applies to pages written from now on.
ALTER TABLE deliveries SET (fillfactor = 70);
