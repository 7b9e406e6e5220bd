//! Runs the store conformance suite against every backend available here.

use herald_store::{SqliteStore, Store, conformance};

#[tokio::test]
async fn sqlite_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("herald.db").display());
    let store = SqliteStore::open(&url).await.unwrap();
    conformance::run(&store).await;
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
