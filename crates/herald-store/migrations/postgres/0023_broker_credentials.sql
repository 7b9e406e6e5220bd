-- Broker destinations (issue 26): the credentials of a broker URL (`user:pass@`), sealed like
-- the endpoint's other secrets. The `url` column keeps the URL with `****` in their place, so
-- every reader of the URL (the API, the portal, attempt records, logs) sees it masked.
ALTER TABLE endpoints ADD COLUMN url_credentials BYTEA;
