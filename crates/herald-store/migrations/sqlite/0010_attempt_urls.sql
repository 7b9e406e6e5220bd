-- Attempts name the URL they were sent to through the endpoint's URL history instead of a copy
-- each: an endpoint's URL is stored once per value it has had, however many attempts it makes
-- (a URL may be 8 kB or more). `endpoints.url_seq` says which history entry is current;
-- attempts keep `url_seq` and an empty `url` (older attempts keep their copy).
CREATE TABLE endpoint_urls (
    endpoint_id TEXT NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    url         TEXT NOT NULL,
    PRIMARY KEY (endpoint_id, seq)
);
ALTER TABLE endpoints ADD COLUMN url_seq INTEGER NOT NULL DEFAULT 0;
INSERT INTO endpoint_urls (endpoint_id, seq, url) SELECT id, 0, url FROM endpoints;
ALTER TABLE attempts ADD COLUMN url_seq INTEGER;
