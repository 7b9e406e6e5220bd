-- Inboxes that accept writes without their token (Postgres flavour of
-- sqlite/0019_inbox_public_write.sql): Firebase's `auth == null` write rule, as in Electric Imp's
-- factory tutorial. Reads still need the token; tokenless writes are limited per source address
-- (see herald_core::inbox::Inbox::public_write).
ALTER TABLE inboxes ADD COLUMN public_write BOOLEAN NOT NULL DEFAULT FALSE;
