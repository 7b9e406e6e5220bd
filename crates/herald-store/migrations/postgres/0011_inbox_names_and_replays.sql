-- Inbox names are unique per application (`/in/{app}/{name}/…`), so that one tenant cannot
-- learn another's inbox names by trying to create them. `local_name` is the name an
-- application gives its inbox; `name` stays unique over the installation: the name of inboxes
-- made before this version and of inboxes of no application, the id of new inboxes of an
-- application.
ALTER TABLE inboxes ADD COLUMN local_name TEXT COLLATE "C";
UPDATE inboxes SET local_name = name;
CREATE UNIQUE INDEX inboxes_by_local_name ON inboxes (COALESCE(app_id, ''), local_name);
-- `/in/{name}/…` finds the inboxes of that name in every application, and takes the one whose
-- token the request presents.
CREATE INDEX inboxes_by_name_alone ON inboxes (local_name);

-- Request headers an inbox drops before storing an entry, besides credentials (JSON array).
ALTER TABLE inboxes ADD COLUMN drop_headers TEXT;

-- Signed requests an inbox accepted, by `webhook-id` (or, for the hex schemes, a digest of the
-- body), for as long as their signature could be presented again: a replay is refused.
CREATE TABLE inbox_replays (
    inbox_id   TEXT COLLATE "C" NOT NULL REFERENCES inboxes (id) ON DELETE CASCADE,
    replay_key TEXT COLLATE "C" NOT NULL,
    seen_at    BIGINT NOT NULL,
    PRIMARY KEY (inbox_id, replay_key)
);
CREATE INDEX inbox_replays_by_age ON inbox_replays (seen_at);
