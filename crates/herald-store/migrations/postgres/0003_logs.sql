-- Delivery logs, operational webhooks and retention (Postgres flavour of sqlite/0003_logs.sql).

-- The delivery log filters by event type without reading the messages table.
ALTER TABLE deliveries ADD COLUMN event_type TEXT COLLATE "C" NOT NULL DEFAULT '';
UPDATE deliveries SET event_type = (SELECT m.event_type FROM messages m WHERE m.id = deliveries.msg_id);

-- The delivery log, newest first. Message ids start with their creation time, so the log is
-- ordered by message id and its time filters are id ranges. Every filter column is in these
-- indexes, so a page and its total are read from an index alone whatever the filters are: by
-- application, by status or by event type (the selective filters), or by endpoint (below).
-- Server-wide, `deliveries_by_message` (0002) gives the order.
CREATE INDEX deliveries_log_by_app ON deliveries
    (app_id, msg_id, endpoint_id, status, event_type, last_attempt_at);
CREATE INDEX deliveries_log_by_status ON deliveries
    (status, app_id, msg_id, endpoint_id, event_type, last_attempt_at);
CREATE INDEX deliveries_log_by_event_type ON deliveries
    (event_type, app_id, msg_id, endpoint_id, status, last_attempt_at);
-- The messages an endpoint was sent, newest first (`GET …/endpoint/{id}/msg`, and the log
-- filtered by endpoint).
CREATE INDEX deliveries_by_endpoint_message ON deliveries (endpoint_id, msg_id);

-- When the endpoint last caused a `message.attempt.failing` operational event (at most one an
-- hour).
ALTER TABLE endpoint_queues ADD COLUMN failing_notified_at BIGINT;

-- Retention: what is still to purge, oldest first. Purged rows leave these indexes.
CREATE INDEX messages_payload_expiry ON messages (payload_expires_at) WHERE payload IS NOT NULL;
CREATE INDEX attempts_response_age ON attempts (created_at) WHERE response IS NOT NULL;

-- The reserved application whose endpoints are the operational webhook endpoints. The store
-- never returns it from `get_app` or `list_apps`, so the application API cannot reach it.
INSERT INTO applications (id, uid, name, rate_limit, metadata, created_at, updated_at)
VALUES ('app_0000000000000000000000', NULL, 'Herald operational webhooks', NULL, '{}', 0, 0);
