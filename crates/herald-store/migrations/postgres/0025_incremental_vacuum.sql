-- Storage lifecycle (the SQLite migration of this number switches its files to incremental
-- auto-vacuum). On Postgres the retention deletes old messages, tasks and attempts in small
-- batches, and vacuum makes their space reusable by the same tables. Autovacuum's default
-- threshold (a fifth of a table dead) would let a big table carry weeks of deleted rows; these
-- tables get one twentieth, so their space is reused within days of the deletes.
ALTER TABLE messages SET (autovacuum_vacuum_scale_factor = 0.05);
ALTER TABLE deliveries SET (autovacuum_vacuum_scale_factor = 0.05);
ALTER TABLE attempts SET (autovacuum_vacuum_scale_factor = 0.05);
