//! Runs the store conformance suite against every backend available here: SQLite always,
//! Postgres when `HERALD_TEST_DATABASE_URL` is set (each test on a database of its own).

use std::time::Duration;

use herald_store::testing::{TestDatabase, postgres_url_or_skip};
use herald_store::{PostgresStore, SqliteStore, Store, WakeupEvent, conformance};

#[tokio::test]
async fn sqlite_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("herald.db").display());
    let store = SqliteStore::open(&url).await.unwrap();
    conformance::run(&store).await;
    // One process per SQLite database: its own worker is woken in-process.
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_conforms() {
    let Some(base) = postgres_url_or_skip("postgres_conforms") else {
        return;
    };
    let db = TestDatabase::create(&base).await;
    let store = PostgresStore::open(&db.url).await.unwrap();
    conformance::run(&store).await;
    store.close().await;
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
