-- Postgres announces changes to endpoints and applications to every node (its 0013). SQLite
-- serves one process, which sees every change itself: nothing to do.
SELECT 1;
