-- Operational events in the outbox (issue 27): an event (`endpoint.created`,
-- `message.attempt.exhausted`, …) is written in the same transaction as the change it reports,
-- and the relay (`herald::operational`) turns each row into a message of the reserved
-- application, under the message id chosen here, then deletes the row. A crash between the
-- two leaves the row, and the next pass publishes it (a second publish of the same id is a
-- conflict, so never twice).
CREATE TABLE operational_outbox (
    id BIGSERIAL PRIMARY KEY,
    msg_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
