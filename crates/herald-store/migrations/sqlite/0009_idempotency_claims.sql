-- Each claim of an Idempotency-Key gets a token of its own, so that only the request holding
-- the claim can complete or release it: a request that was dropped, or whose claim another
-- request took over, can no longer record an answer for the key.
ALTER TABLE idempotency_keys ADD COLUMN claim_token TEXT;
