//! Runs the store conformance suite against every backend available here: SQLite always,
//! Postgres when `HERALD_TEST_DATABASE_URL` is set (each test on a database of its own), one
//! test per check and backend; and the checks that concern one backend only.

// Tests (and this measuring tool) unwrap: a failed step should stop them loudly.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use herald_store::conformance::ClaimTasks;
use herald_store::prelude::*;
use herald_store::testing::{CommitFault, TestDatabase, postgres_url_or_skip};
use herald_store::{PostgresStore, SqliteStore, Store, StoreError, WakeupEvent, conformance};

/// One test per conformance check and backend (`sqlite::<check>`, `postgres::<check>`), each
/// on a database of its own: a failing check fails alone, and `cargo test -- --list` names
/// them all.
macro_rules! backend_tests {
    ($($check:ident => $run:path,)*) => {
        mod sqlite {
            use super::*;
            $(
                #[tokio::test]
                async fn $check() {
                    let dir = tempfile::tempdir().unwrap();
                    let url = format!("sqlite://{}", dir.path().join("herald.db").display());
                    let store = SqliteStore::open(&url).await.unwrap();
                    $run(&store).await;
                    store.close().await;
                }
            )*
        }

        mod postgres {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let Some(base) = postgres_url_or_skip(concat!("postgres::", stringify!($check)))
                    else {
                        return;
                    };
                    let db = TestDatabase::create(&base).await;
                    let store = PostgresStore::open(&db.url).await.unwrap();
                    $run(&store).await;
                    store.close().await;
                }
            )*
        }
    };
}

herald_store::conformance_checks!(backend_tests);

/// One process per SQLite database: its own worker is woken in-process.
#[tokio::test]
async fn sqlite_wakes_no_other_process() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("herald.db").display());
    let store = SqliteStore::open(&url).await.unwrap();
    assert!(store.subscribe_wakeups().is_none());
    store.close().await;
}

#[tokio::test]
async fn sqlite_reopens_with_migrations_applied() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("herald.db").display());
    let first = SqliteStore::open(&url).await.unwrap();
    assert!(first.insert_setting("k", "v").await.unwrap());
    first.close().await;
    let second = SqliteStore::open(&url).await.unwrap();
    assert_eq!(second.get_setting("k").await.unwrap().as_deref(), Some("v"));
}

/// The log retention shrinks a SQLite file: new files are created with incremental
/// auto-vacuum, and `reclaim_space` gives the pages the deletes freed back to the file system,
/// at most the number asked per call.
#[tokio::test]
async fn sqlite_file_shrinks_after_the_retention_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("herald.db");
    let url = format!("sqlite://{}", path.display());
    let store = SqliteStore::open(&url).await.unwrap();
    let app = conformance::sample_app(None);
    store.create_app(&app).await.unwrap();
    // No endpoint: the messages have no task, and are deleted once old.
    let payload = format!(r#"{{"padding": "{}"}}"#, "x".repeat(8_000));
    let mut last = None;
    for _ in 0..400 {
        let mut msg = conformance::sample_message(&app.id, "user.signup", None);
        msg.payload = Some(payload.clone());
        store.create_message(&msg).await.unwrap();
        last = Some(msg);
    }
    let last = last.unwrap();
    let full = store.storage_stats().await.unwrap();
    let file_size = |path: &std::path::Path| {
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let wal = std::fs::metadata(wal).map(|m| m.len()).unwrap_or(0);
        (std::fs::metadata(path).unwrap().len(), wal)
    };
    let before = last.created_at + chrono::Duration::milliseconds(1);
    let mut deleted = 0;
    loop {
        let n = store.purge_messages(before, 100).await.unwrap().messages;
        if n == 0 {
            break;
        }
        deleted += n;
    }
    assert_eq!(deleted, 400);
    let freed = store.storage_stats().await.unwrap();
    assert_eq!(
        freed.database_bytes, full.database_bytes,
        "deletes free pages, keep the file"
    );
    let free = freed.free_bytes.unwrap();
    assert!(free > 3_000_000, "{free} bytes free");
    // Bounded steps: at most the pages asked for.
    assert_eq!(store.reclaim_space(10).await.unwrap(), 10);
    while store.reclaim_space(1000).await.unwrap() > 0 {}
    let shrunk = store.storage_stats().await.unwrap();
    assert_eq!(shrunk.free_bytes, Some(0));
    assert!(
        shrunk.database_bytes + 3_000_000 < full.database_bytes,
        "{} bytes, from {}",
        shrunk.database_bytes,
        full.database_bytes
    );
    store.close().await;
    // Once the WAL is checkpointed into it, the file is that small.
    let before_checkpoint = file_size(&path).0;
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let (bytes, wal) = file_size(&path);
    assert_eq!(wal, 0);
    assert_eq!(bytes, shrunk.database_bytes, "from {before_checkpoint}");
    eprintln!(
        "400 messages of 8 kB: file {} bytes full, {} bytes after the deletes and reclaim",
        full.database_bytes, bytes
    );
}

/// Where autovacuum does not run (here: switched off for `messages`), the pass after the
/// retention deletes vacuums the table itself, so that the space is reused rather than the
/// table growing for ever; a table autovacuum reaches is left to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_vacuums_after_retention_where_autovacuum_does_not() {
    let Some(base) =
        postgres_url_or_skip("postgres_vacuums_after_retention_where_autovacuum_does_not")
    else {
        return;
    };
    let db = TestDatabase::create(&base).await;
    let store = PostgresStore::open(&db.url).await.unwrap();
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    sqlx::query("ALTER TABLE messages SET (autovacuum_enabled = false)")
        .execute(&pool)
        .await
        .unwrap();
    let app = conformance::sample_app(None);
    store.create_app(&app).await.unwrap();
    // No endpoint: the messages have no task, and are deleted once old.
    let mut last = None;
    for _ in 0..300 {
        let msg = conformance::sample_message(&app.id, "user.signup", None);
        store.create_message(&msg).await.unwrap();
        last = Some(msg);
    }
    let before = last.unwrap().created_at + chrono::Duration::milliseconds(1);
    while store.purge_messages(before, 100).await.unwrap().messages > 0 {}
    // The dead rows reach the statistics when the backends report them (within a second or
    // so); each pass looks again, as the retention task's next pass would.
    let vacuums = |table: &'static str| {
        let pool = pool.clone();
        async move {
            let n: i64 = sqlx::query_scalar(
                "SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = $1",
            )
            .bind(table)
            .fetch_one(&pool)
            .await
            .unwrap();
            n
        }
    };
    let mut vacuumed = 0;
    for _ in 0..100 {
        assert_eq!(store.reclaim_space(1000).await.unwrap(), 0);
        sqlx::query("SELECT pg_stat_clear_snapshot()")
            .execute(&pool)
            .await
            .unwrap();
        vacuumed = vacuums("messages").await;
        if vacuumed > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Once at least (the deletes' counts may reach the statistics in two reports).
    assert!(vacuumed >= 1, "messages was not vacuumed");
    // Other tables are autovacuum's, where it runs.
    let autovacuum: String = sqlx::query_scalar("SELECT current_setting('autovacuum')")
        .fetch_one(&pool)
        .await
        .unwrap();
    if autovacuum == "on" {
        assert_eq!(vacuums("deliveries").await, 0);
    }
    pool.close().await;
    store.close().await;
}

/// A file of a version before 0025 (no auto-vacuum) switches to incremental auto-vacuum when
/// the migration runs (a VACUUM outside any transaction), keeping its rows.
#[tokio::test]
async fn sqlite_files_of_older_versions_switch_to_incremental_auto_vacuum() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("herald.db").display());
    let store = SqliteStore::open(&url).await.unwrap();
    assert!(store.insert_setting("k", "v").await.unwrap());
    store.close().await;
    let auto_vacuum = |url: String| async move {
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        let mode: i64 = sqlx::query_scalar("PRAGMA auto_vacuum")
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        mode
    };
    assert_eq!(auto_vacuum(url.clone()).await, 2, "new files: incremental");
    // Back to what an older Herald left: no auto-vacuum, migration 0025 not applied.
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::raw_sql(
        "PRAGMA auto_vacuum = NONE; VACUUM; DELETE FROM _sqlx_migrations WHERE version = 25",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    assert_eq!(auto_vacuum(url.clone()).await, 0);
    let store = SqliteStore::open(&url).await.unwrap();
    assert_eq!(store.get_setting("k").await.unwrap().as_deref(), Some("v"));
    store.close().await;
    assert_eq!(auto_vacuum(url.clone()).await, 2, "migrated: incremental");
}

/// Every foreign key's referencing columns lead an index: without one, each parent row deleted
/// scans the child table (on SQLite, deleting an application with 16,000 attempts took 18 s,
/// holding the only writer; found by schemathesis as a 503 on `DELETE /api/v1/app/{id}`).
#[tokio::test]
async fn sqlite_indexes_every_foreign_key() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("herald.db").display());
    SqliteStore::open(&url).await.unwrap().close().await;
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
            .fetch_all(&pool)
            .await
            .unwrap();
    let mut unindexed = Vec::new();
    for table in tables {
        let columns = |index: String| {
            let pool = pool.clone();
            async move {
                sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(format!(
                    "SELECT name FROM pragma_index_info('{index}') ORDER BY seqno"
                )))
                .fetch_all(&pool)
                .await
                .unwrap()
            }
        };
        // Partial indexes cannot serve a foreign key's lookups.
        let indexes: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT name FROM pragma_index_list('{table}') WHERE partial = 0"
        )))
        .fetch_all(&pool)
        .await
        .unwrap();
        let mut leading = Vec::new();
        for index in indexes {
            leading.push(columns(index).await);
        }
        let rowid_key: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT name FROM pragma_table_info('{table}') WHERE pk > 0 ORDER BY pk"
        )))
        .fetch_all(&pool)
        .await
        .unwrap();
        leading.push(rowid_key);
        let keys: Vec<(i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT id, \"from\" FROM pragma_foreign_key_list('{table}') ORDER BY id, seq"
        )))
        .fetch_all(&pool)
        .await
        .unwrap();
        let mut by_key: std::collections::BTreeMap<i64, Vec<String>> = Default::default();
        for (id, column) in keys {
            by_key.entry(id).or_default().push(column);
        }
        for columns in by_key.into_values() {
            if !leading.iter().any(|l| l.starts_with(&columns)) {
                unindexed.push(format!("{table} ({})", columns.join(", ")));
            }
        }
    }
    assert!(
        unindexed.is_empty(),
        "foreign keys without an index: {unindexed:?}"
    );
    pool.close().await;
}

/// The same on Postgres.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_indexes_every_foreign_key() {
    let Some(base) = postgres_url_or_skip("postgres_indexes_every_foreign_key") else {
        return;
    };
    let db = TestDatabase::create(&base).await;
    PostgresStore::open(&db.url).await.unwrap().close().await;
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let unindexed: Vec<String> = sqlx::query_scalar(
        "SELECT c.conrelid::regclass::text || ' ' || c.conname FROM pg_constraint c
         WHERE c.contype = 'f' AND NOT EXISTS (
             SELECT 1 FROM pg_index i
             WHERE i.indrelid = c.conrelid AND i.indpred IS NULL
               AND (i.indkey::int2[])[0:cardinality(c.conkey) - 1] = c.conkey)",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(
        unindexed.is_empty(),
        "foreign keys without an index: {unindexed:?}"
    );
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_reopens_with_migrations_applied_and_nodes_migrate_together() {
    let Some(base) = postgres_url_or_skip("postgres_reopens_with_migrations_applied") else {
        return;
    };
    let db = TestDatabase::create(&base).await;
    // Three nodes starting at once on an empty database: one migrates, the others wait.
    let (a, b, c) = tokio::join!(
        PostgresStore::open(&db.url),
        PostgresStore::open(&db.url),
        PostgresStore::open(&db.url)
    );
    let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
    assert!(a.insert_setting("k", "v").await.unwrap());
    assert!(!b.insert_setting("k", "w").await.unwrap());
    for store in [a, b, c] {
        store.close().await;
    }
    let again = PostgresStore::open(&db.url).await.unwrap();
    assert_eq!(again.get_setting("k").await.unwrap().as_deref(), Some("v"));
    again.close().await;
}

/// A publish whose `COMMIT` fails is never reported stored, whatever the failure: the disk
/// full, a serialization failure, the connection ended during the commit. A deferred
/// constraint trigger makes Postgres fail the `COMMIT` itself, after every statement of the
/// publish succeeded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_publish_whose_commit_fails_is_not_acknowledged() {
    let Some(base) =
        postgres_url_or_skip("postgres_a_publish_whose_commit_fails_is_not_acknowledged")
    else {
        return;
    };
    let db = TestDatabase::create(&base).await;
    let store = PostgresStore::open(&db.url).await.unwrap();
    let mut fault = CommitFault::install(&db).await;
    let app = conformance::sample_app(None);
    store.create_app(&app).await.unwrap();
    let endpoint = conformance::sample_endpoint(&app.id);
    store
        .create_endpoint(&endpoint, &conformance::sample_secrets())
        .await
        .unwrap();

    for (what, transient, full) in [
        ("53100", true, true),       // disk_full: 507
        ("40001", true, false),      // serialization_failure: 503
        ("disconnect", true, false), // the connection ends during the COMMIT: 503
        ("23514", false, false),     // a check violation: the publish's own fault
    ] {
        fault.fail_with(what).await;
        let msg = conformance::sample_message(&app.id, "user.signup", None);
        let err = store
            .create_message(&msg)
            .await
            .expect_err("the commit failed");
        assert_eq!(err.is_transient(), transient, "{what}: {err}");
        assert_eq!(
            matches!(err, StoreError::StorageFull(_)),
            full,
            "{what}: {err}"
        );
        fault.clear().await;
        assert!(
            store.get_message(&app.id, &msg.id).await.unwrap().is_none(),
            "{what}"
        );
        assert!(
            store
                .deliveries_for_message(&msg.id)
                .await
                .unwrap()
                .is_empty(),
            "{what}"
        );
        // The pool carries on, with no connection left in a transaction.
        let next = conformance::sample_message(&app.id, "user.signup", None);
        assert_eq!(
            store.create_message(&next).await.unwrap().len(),
            1,
            "{what}"
        );
    }
    store.close().await;
}

/// Waits for the next `Endpoints` wake-up (skipping resyncs).
async fn next_endpoints(rx: &mut herald_store::Wakeups) -> Vec<String> {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("a wake-up arrives")
            .expect("the subscription is open");
        if let WakeupEvent::Endpoints(ids) = event {
            return ids.into_iter().map(|e| e.as_str().to_owned()).collect();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_wakeups_reach_every_node_on_commit_only() {
    let Some(base) = postgres_url_or_skip("postgres_wakeups_reach_every_node_on_commit_only")
    else {
        return;
    };
    let db = TestDatabase::create(&base).await;
    let publisher = PostgresStore::open(&db.url).await.unwrap();
    let worker = PostgresStore::open(&db.url).await.unwrap();
    let mut wakeups = worker
        .subscribe_wakeups()
        .expect("Postgres wakes other nodes");
    // The first event says "look everywhere": nothing was heard before listening began.
    let first = tokio::time::timeout(Duration::from_secs(10), wakeups.recv())
        .await
        .unwrap();
    assert_eq!(first, Some(WakeupEvent::Resync));

    let app = conformance::sample_app(None);
    publisher.create_app(&app).await.unwrap();
    let mut a = conformance::sample_endpoint(&app.id);
    a.event_types = Some(vec!["a".into()]);
    let mut b = conformance::sample_endpoint(&app.id);
    b.event_types = Some(vec!["b".into()]);
    for ep in [&a, &b] {
        publisher
            .create_endpoint(ep, &conformance::sample_secrets())
            .await
            .unwrap();
    }
    let mut first = conformance::sample_message(&app.id, "a", None);
    first.event_id = Some("once".into());
    publisher.create_message(&first).await.unwrap();
    assert_eq!(next_endpoints(&mut wakeups).await, vec![a.id.to_string()]);

    // A publish that rolls back (its eventId is taken) announces nothing: the next wake-up is
    // the one of the publish after it.
    let mut clash = conformance::sample_message(&app.id, "a", None);
    clash.event_id = Some("once".into());
    assert!(publisher.create_message(&clash).await.is_err());
    let second = conformance::sample_message(&app.id, "b", None);
    publisher.create_message(&second).await.unwrap();
    assert_eq!(next_endpoints(&mut wakeups).await, vec![b.id.to_string()]);

    // Resend and recover announce too.
    publisher
        .requeue(&first, &b.id, herald_core::time::now())
        .await
        .unwrap();
    assert_eq!(next_endpoints(&mut wakeups).await, vec![b.id.to_string()]);

    // Connections dropped by the server: the subscription comes back by itself and resyncs.
    let mut admin = db.admin_connection().await;
    assert!(db.terminate_connections(&mut admin).await > 0);
    loop {
        let event = tokio::time::timeout(Duration::from_secs(15), wakeups.recv())
            .await
            .expect("the subscription reconnects")
            .unwrap();
        if event == WakeupEvent::Resync {
            break;
        }
    }
    let third = conformance::sample_message(&app.id, "a", None);
    // The publisher's pooled connections were ended too: a publish may fail once (a conflict
    // means a failed-looking attempt did commit).
    for _ in 0..20 {
        match publisher.create_message(&third).await {
            Ok(_) | Err(herald_store::StoreError::Conflict(_)) => break,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert_eq!(next_endpoints(&mut wakeups).await, vec![a.id.to_string()]);
    drop(wakeups);
    publisher.close().await;
    worker.close().await;
}

/// A node keeps what its dispatchers loaded of an endpoint while its dispatch version stays
/// the same: the version must move when another node changes an endpoint or an application
/// (a trigger announces it on `herald_changed`), and there is none while the node is not
/// listening (it could not hear such changes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_dispatch_version_moves_when_another_node_changes_an_endpoint() {
    let Some(base) = postgres_url_or_skip(
        "postgres_dispatch_version_moves_when_another_node_changes_an_endpoint",
    ) else {
        return;
    };
    let db = TestDatabase::create(&base).await;
    let worker = PostgresStore::open(&db.url).await.unwrap();
    let other = PostgresStore::open(&db.url).await.unwrap();
    assert_eq!(worker.dispatch_version(), None, "not listening: no version");
    let mut wakeups = worker.subscribe_wakeups().unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), wakeups.recv())
        .await
        .unwrap();
    assert_eq!(first, Some(WakeupEvent::Resync));

    // Waits until the worker's version differs from `before`.
    async fn moves(worker: &PostgresStore, before: Option<u64>, what: &str) -> Option<u64> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let now = worker.dispatch_version();
            assert!(now.is_some(), "listening: a version");
            if now != before {
                return now;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the version did not move after {what}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let mut version = worker.dispatch_version();
    let mut app = conformance::sample_app(None);
    other.create_app(&app).await.unwrap();
    version = moves(&worker, version, "another node created an application").await;
    let mut endpoint = conformance::sample_endpoint(&app.id);
    other
        .create_endpoint(&endpoint, &conformance::sample_secrets())
        .await
        .unwrap();
    version = moves(&worker, version, "another node created an endpoint").await;
    endpoint.url = "https://example.com/elsewhere".into();
    other.update_endpoint(&endpoint).await.unwrap();
    version = moves(&worker, version, "another node changed the endpoint").await;
    app.rate_limit = Some(9);
    other.update_app(&app).await.unwrap();
    version = moves(&worker, version, "another node changed the application").await;
    // A publish changes neither: the version stays (the point of keeping what was loaded).
    other
        .create_message(&conformance::sample_message(&app.id, "user.signup", None))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(worker.dispatch_version(), version, "a publish is no change");
    drop(wakeups);
    other.close().await;
    worker.close().await;
}

/// Publishes `count` messages to one new endpoint and claims them all as `node`.
async fn claim_a_backlog(store: &dyn Store, node: &str, count: usize) {
    let app = conformance::sample_app(None);
    store.create_app(&app).await.unwrap();
    let mut endpoint = conformance::sample_endpoint(&app.id);
    endpoint.event_types = None;
    store
        .create_endpoint(&endpoint, &conformance::sample_secrets())
        .await
        .unwrap();
    let mut last = None;
    for _ in 0..count {
        let msg = conformance::sample_message(&app.id, "a.b", None);
        store.create_message(&msg).await.unwrap();
        last = Some(msg.created_at);
    }
    let now = last.unwrap() + chrono::Duration::milliseconds(1);
    let lease = now + chrono::Duration::seconds(30);
    store
        .claim_due_endpoints(node, now, lease, 100)
        .await
        .unwrap();
    let (tasks, _) = store
        .claim_tasks(node, &endpoint.id, now, lease, count, false)
        .await
        .unwrap();
    assert_eq!(tasks.len(), count);
}

/// A claim writes only the task's lease, in columns no index covers (ARCHITECTURE.md, "A claim
/// touches no index"): the stored status and due time stay, so SQLite updates the row alone,
/// none of the table's indexes.
#[tokio::test]
async fn sqlite_a_claim_touches_no_index() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("herald.db").display());
    let store = SqliteStore::open(&url).await.unwrap();
    claim_a_backlog(&store, "node-a", 5).await;
    store.close().await;
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT sql FROM sqlite_master
         WHERE type = 'index' AND tbl_name = 'deliveries' AND sql IS NOT NULL",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(indexes.len() >= 6, "{indexes:?}");
    assert!(
        indexes.iter().all(|sql| !sql.contains("lease")),
        "an index covers a lease column: {indexes:?}"
    );
    let rows: Vec<(i64, i64, i64, Option<String>)> =
        sqlx::query_as("SELECT status, next_attempt_at, created_at, lease_token FROM deliveries")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(rows.len(), 5);
    for (status, next_attempt_at, created_at, lease_token) in rows {
        assert_eq!(status, 1, "the stored status stays pending");
        assert_eq!(next_attempt_at, created_at, "the due time stays");
        assert_eq!(lease_token.as_deref(), Some("node-a"));
    }
    pool.close().await;
}

/// On Postgres a claim is a HOT update: the new row version stays on its page and no index
/// gets an entry, so claims leave nothing for vacuum and touch no index (before, each claim
/// was a new entry in eight indexes and a dead row). Counted by Postgres itself, in a
/// database of this test's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_claim_is_a_hot_update() {
    let Some(base) = postgres_url_or_skip("postgres_a_claim_is_a_hot_update") else {
        return;
    };
    let db = TestDatabase::create(&base).await;
    let store = PostgresStore::open(&db.url).await.unwrap();
    claim_a_backlog(&store, "node-a", 20).await;
    // A backend reports its counts when it ends, at the latest.
    store.close().await;
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let mut counts = (0, 0);
    for _ in 0..100 {
        counts = sqlx::query_as(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables
             WHERE relname = 'deliveries'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if counts.0 >= 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (updated, hot): (i64, i64) = counts;
    assert_eq!(updated, 20, "one update per claimed task");
    assert_eq!(hot, 20, "every claim was a HOT update");
    pool.close().await;
}

/// The ordering horizon of polling endpoints, attacked head-on: a publish that drew its entry's
/// `seq` and has not committed yet (held open here) while a later publish commits. A reader
/// following its position must not read the later entry first, or it would pass the open one
/// and never see it; with the horizon it reads nothing until the open publish ends, then both
/// in commit order. (On SQLite the one writer rules the case out: the later publish waits.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_poll_never_passes_an_open_publish() {
    use herald_core::model::{EndpointKind, EndpointOptions};
    use herald_store::PollPosition;
    let Some(base) = postgres_url_or_skip("postgres_a_poll_never_passes_an_open_publish") else {
        return;
    };
    let db = TestDatabase::create(&base).await;
    let store = PostgresStore::open(&db.url).await.unwrap();
    let app = conformance::sample_app(None);
    store.create_app(&app).await.unwrap();
    let mut endpoint = conformance::sample_endpoint(&app.id);
    endpoint.event_types = None;
    endpoint.options = EndpointOptions {
        kind: EndpointKind::Polling,
        ..Default::default()
    };
    store
        .create_endpoint(&endpoint, &conformance::sample_secrets())
        .await
        .unwrap();

    // The slow publish: its message and entry written, its transaction still open.
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let mut open = pool.begin().await.unwrap();
    let early = conformance::sample_message(&app.id, "early", None);
    sqlx::query(
        "INSERT INTO messages (id, app_id, event_type, payload, created_at, payload_expires_at, serial)
         VALUES ($1, $2, 'early', '{}', 0, 0, $3)",
    )
    .bind(early.id.as_str())
    .bind(app.id.as_str())
    .bind(early.serial)
    .execute(&mut *open)
    .await
    .unwrap();
    sqlx::query("INSERT INTO poll_entries (endpoint_id, msg_id) VALUES ($1, $2)")
        .bind(endpoint.id.as_str())
        .bind(early.id.as_str())
        .execute(&mut *open)
        .await
        .unwrap();

    // A later publish commits while the first is open.
    let late = conformance::sample_message(&app.id, "late", None);
    store.create_message(&late).await.unwrap();

    // A reader following its position: whatever it reads now, it must still find `early`.
    let mut position = PollPosition::default();
    let mut seen = Vec::new();
    for entry in store.read_polled(&endpoint.id, position, 10).await.unwrap() {
        position = entry.position;
        seen.push(entry.message.id);
    }
    assert!(
        seen.is_empty(),
        "nothing is read past a publish still open: {seen:?}"
    );
    open.commit().await.unwrap();
    // Other tests' transactions (the xid horizon is the cluster's) may hold it back a moment.
    for _ in 0..500 {
        for entry in store.read_polled(&endpoint.id, position, 10).await.unwrap() {
            position = entry.position;
            seen.push(entry.message.id);
        }
        if seen.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        seen,
        vec![early.id, late.id],
        "both, in commit-horizon order"
    );
    pool.close().await;
    store.close().await;
}
