-- Background tasks (Svix's `QueueBackgroundTask`): replays, recoveries, purges and statistics
-- that go on after the API call that started them. A task is persisted before the call answers
-- and runs under a lease: `lease_owner` holds it until `lease_until`, and every step that
-- records progress (`cursor`, `data`) renews it, so a task whose node died is taken over by
-- another node (or by the same one after a restart) and resumes after its last committed step.
CREATE TABLE background_tasks (
    id          TEXT PRIMARY KEY,
    task        TEXT NOT NULL,
    status      TEXT NOT NULL,
    app_id      TEXT,
    endpoint_id TEXT,
    params      TEXT NOT NULL,
    data        TEXT NOT NULL,
    cursor      TEXT,
    lease_owner TEXT,
    lease_until INTEGER,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
-- What a runner looks for: unfinished tasks, oldest first.
CREATE INDEX background_tasks_running ON background_tasks (id) WHERE status = 'running';
CREATE INDEX background_tasks_by_app ON background_tasks (app_id, id);
