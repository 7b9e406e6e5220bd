-- Scheduled messages and tags (Svix's `deliverAt` and `tags`). A scheduled message's tasks are
-- inserted due at `deliver_at`, and its endpoints' queues due then: the claim and the sweep
-- honour it through the queue's own indexes, without looking at messages. Tags are stored as
-- channels are, `,a,b,`, so that a tag filter is one `LIKE`.
ALTER TABLE messages ADD COLUMN deliver_at BIGINT;
ALTER TABLE messages ADD COLUMN tags TEXT;
