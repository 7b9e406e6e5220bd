//! Fault injection into the SQLite writer, without root and without a VFS.
//!
//! - **A failure walked over every step.** Every writer connection gets a progress handler that
//!   can interrupt its Nth virtual-machine step, and a commit hook that can turn its Nth
//!   commit into a rollback. An interrupted write makes SQLite roll the whole transaction back
//!   by itself, as `SQLITE_IOERR` always does and `SQLITE_FULL` and `SQLITE_NOMEM` do when the
//!   statement has no statement journal (they share that path in `sqlite3VdbeHalt`); a vetoed
//!   commit is a `COMMIT` that fails. The tests walk N over every step of what they run, so
//!   that a failure lands once on every statement, `SAVEPOINT`, `RELEASE`, `ROLLBACK TO` and
//!   `COMMIT`. An interrupt is not an error Herald expects (it answers 500 for it); what these
//!   walks prove is the bookkeeping of the transaction, whatever the error.
//! - **A real `SQLITE_FULL`.** `PRAGMA max_page_count` on the writer makes the database full at
//!   a chosen size, stepped a page at a time: the error the disk gives, on the path Herald takes
//!   for it (the batch fails as the database's failure, `StorageFull`).
//!
//! One outcome is legitimately ambiguous: SQLite checks the progress handler once more as a
//! statement returns, so a `COMMIT` can report an interrupt after it has committed. The publish
//! is then answered as failed while it is stored (a client retries with its `eventId` or
//! `Idempotency-Key` and gets no duplicate); the tests allow that outcome only there.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use chrono::Duration;
use herald_core::model::{Application, DeliveryStatus, Endpoint, Message};
use sqlx::sqlite::SqlitePoolOptions;

use super::writer::Durability;
use super::{SqliteStore, WriterHook};
use crate::conformance::{record, sample_app, sample_endpoint, sample_message, sample_secrets};
use crate::prelude::*;
use crate::{NextStep, StoreError, TaskClaim};

/// Counts the writer's steps and commits, and fails the one armed.
#[derive(Default)]
struct Faults {
    /// Steps (VM steps and commits) until the failure; 0: none armed.
    countdown: AtomicU64,
    fired: AtomicBool,
    /// The failure interrupted a step (rather than vetoing a commit).
    fired_in_step: AtomicBool,
    /// Commits that went through.
    commits: AtomicU64,
    /// `commits` when the failure fired.
    commits_at_fire: AtomicU64,
}

impl Faults {
    fn arm(&self, n: u64) {
        self.fired.store(false, Ordering::SeqCst);
        self.countdown.store(n, Ordering::SeqCst);
    }

    /// Disarms; whether the failure fired.
    fn disarm(&self) -> bool {
        self.countdown.store(0, Ordering::SeqCst);
        self.fired.load(Ordering::SeqCst)
    }

    /// One step or commit: `false` fails it.
    fn go_on(&self, is_step: bool) -> bool {
        let due = self
            .countdown
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| c.checked_sub(1))
            .is_ok_and(|before| before == 1);
        if due {
            self.fired.store(true, Ordering::SeqCst);
            self.fired_in_step.store(is_step, Ordering::SeqCst);
            self.commits_at_fire
                .store(self.commits.load(Ordering::SeqCst), Ordering::SeqCst);
            return false;
        }
        if !is_step {
            self.commits.fetch_add(1, Ordering::SeqCst);
        }
        true
    }

    /// Whether a failure reported by the last round may have come after its last commit (an
    /// interrupt as the `COMMIT` returned), so that a failed operation may still be stored.
    fn may_have_failed_after_committing(&self, commits_before: u64) -> bool {
        let at_fire = self.commits_at_fire.load(Ordering::SeqCst);
        self.fired.load(Ordering::SeqCst)
            && self.fired_in_step.load(Ordering::SeqCst)
            && at_fire > commits_before
            && at_fire == self.commits.load(Ordering::SeqCst)
    }
}

/// A fresh database in a directory of its own, with `writer` setting up sqlx's writer pool and
/// `hook` every connection of the writer thread.
async fn open(writer: SqlitePoolOptions, hook: WriterHook) -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("herald.db").display());
    let store = SqliteStore::open_with(&url, writer, Some(hook))
        .await
        .unwrap();
    (store, dir)
}

/// An application with `n` endpoints that take every message of the sample event type.
async fn app_with_endpoints(store: &SqliteStore, n: usize) -> Application {
    let app = sample_app(None);
    store.create_app(&app).await.unwrap();
    for _ in 0..n {
        store
            .create_endpoint(&sample_endpoint(&app.id), &sample_secrets())
            .await
            .unwrap();
    }
    app
}

async fn open_with_faults() -> (SqliteStore, Arc<Faults>, tempfile::TempDir) {
    let faults = Arc::new(Faults::default());
    let hooked = faults.clone();
    let writer = SqlitePoolOptions::new().after_connect(move |conn, _| {
        let faults = hooked.clone();
        Box::pin(async move {
            let mut handle = conn.lock_handle().await?;
            let steps = faults.clone();
            handle.set_progress_handler(1, move || steps.go_on(true));
            handle.set_commit_hook(move || faults.go_on(false));
            Ok(())
        })
    });
    let threaded = faults.clone();
    let hook: WriterHook = Arc::new(move |conn: &rusqlite::Connection| {
        // rusqlite's callbacks answer the other way round: `true` interrupts, or rolls back.
        let steps = threaded.clone();
        conn.progress_handler(1, Some(move || !steps.go_on(true)))
            .unwrap();
        let commits = threaded.clone();
        conn.commit_hook(Some(move || !commits.go_on(false)))
            .unwrap();
    });
    let (store, dir) = open(writer, hook).await;
    (store, faults, dir)
}

/// Both writers are outside any transaction, and sqlx's at `synchronous = FULL`, whatever
/// happened.
async fn assert_writer_clean(store: &SqliteStore, context: &str) {
    store
        .thread
        .run(Durability::Durable, |_| Ok(()))
        .await
        .unwrap_or_else(|e| panic!("{context}: the writer thread cannot begin: {e}"));
    let mut conn = store.writer.acquire().await.unwrap();
    let level: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(level, 2, "{context}: the writer is left unflushed");
    sqlx::raw_sql("BEGIN IMMEDIATE; ROLLBACK")
        .execute(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("{context}: the writer is left inside a transaction: {e}"));
}

/// After the failures, with nothing restarted: a publish is stored with its two tasks, and
/// `PRAGMA integrity_check` finds nothing wrong.
async fn publishing_works_and_the_file_is_sound(store: SqliteStore, app: &Application) {
    let after = sample_message(&app.id, "user.signup", None);
    assert_eq!(store.create_message(&after).await.unwrap().len(), 2);
    let check: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&store.reader)
        .await
        .unwrap();
    assert_eq!(check, vec!["ok".to_owned()]);
    store.close().await;
}

/// Makes both writers' database full at `pages`.
async fn set_max_page_count(store: &SqliteStore, pages: u64) {
    let pragma = format!("PRAGMA max_page_count = {pages}");
    let mut conn = store.writer.acquire().await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(pragma.clone()))
        .execute(&mut *conn)
        .await
        .unwrap();
    store
        .thread
        .run(Durability::Durable, move |conn| {
            Ok(conn.execute_batch(&pragma)?)
        })
        .await
        .unwrap();
}

/// Stored with every task its endpoints get, or not at all.
async fn stored_whole(store: &SqliteStore, msg: &Message, endpoints: usize) -> bool {
    let found = store.get_message(&msg.app_id, &msg.id).await.unwrap();
    let tasks = store.deliveries_for_message(&msg.id).await.unwrap();
    match found {
        Some(_) => {
            assert_eq!(tasks.len(), endpoints, "{} is half-stored", msg.id);
            true
        }
        None => {
            assert!(tasks.is_empty(), "{} has tasks without its message", msg.id);
            false
        }
    }
}

/// Publishes `batch` the way concurrent requests do: queued together, so that the writer thread
/// takes them as one transaction. The test holds the write turn until every publish is queued
/// (they all queue on the first poll), since the thread gathers its batch once it has the turn.
async fn publish_together(store: &SqliteStore, batch: &[Message]) -> Vec<crate::Result<usize>> {
    let turn = store.turn.take().await;
    let publishes = batch
        .iter()
        .map(|m| async { store.create_message(m).await.map(|matched| matched.len()) });
    let release = async {
        tokio::task::yield_now().await;
        drop(turn);
    };
    futures::join!(futures::future::join_all(publishes), release).0
}

/// Walks a failure over every step of a group commit, on its whole-batch path and on its
/// one-publish-per-savepoint fallback: a publish is `Ok` only when it is stored with all its
/// tasks, and every other publish is stored not at all (or, only when the failure came as
/// the `COMMIT` returned, whole).
#[tokio::test]
async fn a_publish_is_acknowledged_only_if_its_commit_succeeded_whatever_step_fails() {
    let (store, faults, _dir) = open_with_faults().await;
    let app = app_with_endpoints(&store, 2).await;
    let endpoints = 2;
    let mut taken = sample_message(&app.id, "user.signup", None);
    taken.event_id = Some("taken".into());
    store.create_message(&taken).await.unwrap();

    let (mut rounds, mut fired, mut acknowledged, mut ambiguous) = (0, 0, 0, 0);
    for with_conflict in [false, true] {
        for n in 1.. {
            let mut batch: Vec<Message> = (0..4)
                .map(|_| sample_message(&app.id, "user.signup", None))
                .collect();
            if with_conflict {
                // A publish that fails on its own, so the batch takes the savepoint path.
                let mut again = sample_message(&app.id, "user.signup", None);
                again.event_id = Some("taken".into());
                batch.insert(2, again);
            }
            let commits_before = faults.commits.load(Ordering::SeqCst);
            faults.arm(n);
            let outcomes = publish_together(&store, &batch).await;
            let hit = faults.disarm();
            rounds += 1;
            let context = format!("failure at step {n} (conflict: {with_conflict})");
            for (i, (msg, outcome)) in batch.iter().zip(&outcomes).enumerate() {
                let stored = stored_whole(&store, msg, endpoints).await;
                if !(with_conflict && i == 2) {
                    assert!(
                        !matches!(outcome, Err(StoreError::Conflict(_) | StoreError::NotFound)),
                        "{context}: another publish's error reached {}: {outcome:?}",
                        msg.id
                    );
                }
                match outcome {
                    Ok(matched) => {
                        assert!(stored, "{context}: {} acknowledged, not stored", msg.id);
                        assert_eq!(*matched, endpoints);
                        acknowledged += 1;
                    }
                    Err(_) if stored => {
                        assert!(
                            faults.may_have_failed_after_committing(commits_before),
                            "{context}: {} failed but is stored",
                            msg.id
                        );
                        ambiguous += 1;
                    }
                    Err(_) => {}
                }
            }
            if with_conflict {
                assert!(outcomes[2].is_err(), "{context}: the duplicate is refused");
            }
            assert_writer_clean(&store, &context).await;
            if !hit {
                assert!(
                    outcomes
                        .iter()
                        .enumerate()
                        .all(|(i, o)| o.is_ok() != (with_conflict && i == 2)),
                    "{context}: without a failure, all but the duplicate are stored"
                );
                break;
            }
            fired += 1;
        }
    }
    eprintln!(
        "{rounds} rounds, {fired} with a failure; {acknowledged} publishes acknowledged, \
         {ambiguous} failed after committing"
    );
    assert!(
        fired > 200,
        "the failure walked over the group commit's steps"
    );

    // Nothing needs a restart: publishes go on, and the file is sound.
    publishing_works_and_the_file_is_sound(store, &app).await;
}

/// What a worker does with an endpoint that has work: claim it, claim its tasks, record their
/// successful attempts, renew its lease and release it. Whether the results were recorded
/// (`None` if it failed before), and the outcome of the whole.
async fn deliver_all(
    store: &SqliteStore,
    endpoint: &Endpoint,
    recorded: &mut Option<bool>,
) -> crate::Result<usize> {
    let node = "node-a";
    let now = herald_core::time::now();
    let lease = now + Duration::seconds(30);
    let claimed = store.claim_due_endpoints(node, now, lease, 10).await?;
    assert_eq!(claimed, vec![endpoint.id.clone()]);
    let claim = TaskClaim {
        endpoint: endpoint.id.clone(),
        lease_until: lease,
        limit: 10,
        fifo: false,
    };
    let (tasks, version) = store.claim_tasks_of(node, now, &[claim]).await?.remove(0);
    let records: Vec<_> = tasks
        .iter()
        .map(|t| record(t, endpoint, NextStep::Done, now))
        .collect();
    let completed = store
        .complete_attempts(node, &records, Duration::days(5), now)
        .await;
    *recorded = Some(completed.is_ok());
    completed?;
    store.renew_endpoint_leases(node, lease).await?;
    store
        .release_endpoint(node, &endpoint.id, version, false, now)
        .await?;
    Ok(records.len())
}

/// Walks a failure over every step of a delivery's bookkeeping and its result: whatever fails,
/// the writer is left outside any transaction and flushing again, a result reported recorded
/// is recorded, and the next round works.
#[tokio::test]
async fn a_failed_bookkeeping_transaction_leaves_the_writer_as_it_found_it() {
    let (store, faults, _dir) = open_with_faults().await;
    let app = sample_app(None);
    store.create_app(&app).await.unwrap();
    let endpoint = sample_endpoint(&app.id);
    store
        .create_endpoint(&endpoint, &sample_secrets())
        .await
        .unwrap();

    let mut fired = 0;
    for n in 1.. {
        let msg = sample_message(&app.id, "user.signup", None);
        store.create_message(&msg).await.unwrap();
        let mut recorded = None;
        faults.arm(n);
        let outcome = deliver_all(&store, &endpoint, &mut recorded).await;
        let hit = faults.disarm();
        let context = format!("failure at step {n}");
        assert_writer_clean(&store, &context).await;
        let status = store.deliveries_for_message(&msg.id).await.unwrap()[0].status;
        if recorded == Some(true) {
            assert_eq!(status, DeliveryStatus::Success, "{context}");
        }
        match outcome {
            Ok(count) => assert_eq!(count, 1, "{context}"),
            Err(e) => assert!(hit, "{context}: failed without a failure: {e}"),
        }
        // What a restart does; then the task is finished, so every round starts alike.
        store.reset_leases().await.unwrap();
        if status != DeliveryStatus::Success {
            deliver_all(&store, &endpoint, &mut None).await.unwrap();
        }
        if !hit {
            break;
        }
        fired += 1;
    }
    eprintln!("{fired} rounds with a failure");
    assert!(
        fired > 100,
        "the failure walked over the bookkeeping's steps"
    );
    store.close().await;
}

/// The database made full at every size a page apart (`PRAGMA max_page_count`, a real
/// `SQLITE_FULL`), a group commit at each: a publish is `Ok` only when stored whole, the others
/// fail with `StorageFull` (never with another publish's error) and store nothing, the writer is
/// left clean, and once there is room again publishing simply works.
#[tokio::test]
async fn a_full_database_fails_whole_batches_with_storage_full() {
    // The limit every writer connection starts with (0: none), for the connections that
    // replace one closed after a failure.
    let limit = Arc::new(AtomicU64::new(0));
    let hooked = limit.clone();
    let writer = SqlitePoolOptions::new().after_connect(move |conn, _| {
        let pages = hooked.load(Ordering::SeqCst);
        Box::pin(async move {
            if pages > 0 {
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "PRAGMA max_page_count = {pages}"
                )))
                .execute(conn)
                .await?;
            }
            Ok(())
        })
    });
    let threaded = limit.clone();
    let hook: WriterHook = Arc::new(move |conn: &rusqlite::Connection| {
        let pages = threaded.load(Ordering::SeqCst);
        if pages > 0 {
            conn.execute_batch(&format!("PRAGMA max_page_count = {pages}"))
                .unwrap();
        }
    });
    let (store, _dir) = open(writer, hook).await;
    let app = app_with_endpoints(&store, 2).await;
    let mut taken = sample_message(&app.id, "user.signup", None);
    taken.event_id = Some("taken".into());
    store.create_message(&taken).await.unwrap();

    let (mut full, mut stored_batches) = (0, 0);
    for with_conflict in [false, true] {
        for room in 0.. {
            let pages: u64 = sqlx::query_scalar("PRAGMA page_count")
                .fetch_one(&store.reader)
                .await
                .unwrap();
            limit.store(pages + room, Ordering::SeqCst);
            set_max_page_count(&store, pages + room).await;
            let mut batch: Vec<Message> = (0..4)
                .map(|i| {
                    let mut m = sample_message(&app.id, "user.signup", None);
                    m.payload = Some(format!(r#"{{"i": {i}, "blob": "{}"}}"#, "x".repeat(3000)));
                    m
                })
                .collect();
            if with_conflict {
                let mut again = sample_message(&app.id, "user.signup", None);
                again.event_id = Some("taken".into());
                batch.insert(2, again);
            }
            let outcomes = publish_together(&store, &batch).await;
            let context = format!("room for {room} pages (conflict: {with_conflict})");
            let mut all_stored = true;
            for (i, (msg, outcome)) in batch.iter().zip(&outcomes).enumerate() {
                let stored = stored_whole(&store, msg, 2).await;
                let duplicate = with_conflict && i == 2;
                match outcome {
                    Ok(_) => assert!(stored, "{context}: {} acknowledged, not stored", msg.id),
                    Err(StoreError::StorageFull(_)) => {
                        assert!(!stored, "{context}: {} failed but is stored", msg.id);
                        all_stored = false;
                    }
                    Err(StoreError::Conflict(_)) if duplicate => {}
                    Err(e) => panic!("{context}: {} failed with {e}", msg.id),
                }
            }
            assert_writer_clean(&store, &context).await;
            if all_stored {
                stored_batches += 1;
                break;
            }
            full += 1;
        }
    }
    eprintln!("{full} batches refused for a full database before one fitted, twice");
    assert!(full >= 4, "the database was full for several sizes");
    assert_eq!(stored_batches, 2);

    // Room again: publishing simply works, and the file is sound.
    limit.store(0, Ordering::SeqCst);
    set_max_page_count(&store, 4_294_967_294).await;
    publishing_works_and_the_file_is_sound(store, &app).await;
}
