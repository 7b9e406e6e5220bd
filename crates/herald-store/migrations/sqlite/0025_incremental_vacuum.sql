-- no-transaction
-- Storage lifecycle: the retention deletes old messages with their tasks and attempts, and the
-- file should then shrink. With `auto_vacuum = INCREMENTAL` the free pages can be given back a
-- few at a time (`PRAGMA incremental_vacuum(N)` after each retention pass) without a long
-- stall of the one writer. New files are created so (the store's connection options); a file
-- made before this version switches only through a VACUUM, which cannot run in a transaction
-- (hence the first line) and rewrites the whole file once: this migration may take a while on
-- a large database and needs free disk space about the size of the file. The copy goes to a
-- temporary file, not to memory (the connection's `temp_store` is memory otherwise).
PRAGMA temp_store = FILE;
PRAGMA auto_vacuum = INCREMENTAL;
VACUUM;
PRAGMA temp_store = MEMORY;
