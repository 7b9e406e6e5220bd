//! Inboxes as every store must keep them: the records, the Firebase-style tree under POST, PUT
//! and PATCH, tree reads with key queries, entry lists, forwarding in the write's transaction,
//! and re-sealing of verification secrets.

use herald_core::id::{InboxEntryId, InboxId};
use herald_core::inbox::body::Encoding;
use herald_core::inbox::tree::{ChildQuery, Limit, Location, Write};
use herald_core::inbox::{Forward, Inbox, SealedVerification, VerificationConfig};
use herald_core::page::{ListParams, Order};
use herald_core::token::random_base62;
use serde_json::{Value, json};

use super::{sample_app, sample_endpoint, sample_message, secrets};
use crate::{EntryFilter, InboxEntry, NewEntry, Store, StoreError, TreeRead};

/// A verified request's mark is kept with its write: the same request again is refused with
/// nothing stored, until its mark is forgotten; another request is not affected.
pub async fn a_replayed_signed_request_is_refused(store: &dyn Store) {
    let inbox = sample_inbox(None);
    store.create_inbox(&inbox).await.unwrap();
    let now = herald_core::time::now();
    let guarded = |key: &str, forget_before| {
        let mut entry = new_entry(&inbox, "POST", "signed", Write::Put(serde_json::json!(1)));
        entry.replay = Some(crate::ReplayGuard {
            key: key.into(),
            forget_before,
        });
        entry
    };
    let window = now - chrono::Duration::minutes(10);
    store
        .write_inbox(&guarded("id:msg_1", window), None)
        .await
        .unwrap();
    let again = guarded("id:msg_1", window);
    assert!(matches!(
        store.write_inbox(&again, None).await,
        Err(StoreError::Conflict(_))
    ));
    let filter = crate::EntryFilter::default();
    assert_eq!(
        store.count_inbox_entries(&inbox.id, &filter).await.unwrap(),
        1
    );
    store
        .write_inbox(&guarded("id:msg_2", window), None)
        .await
        .unwrap();
    // Once its signature could no longer be presented, the mark is forgotten.
    let later = herald_core::time::now() + chrono::Duration::seconds(1);
    store
        .write_inbox(&guarded("id:msg_1", later), None)
        .await
        .unwrap();
    assert_eq!(
        store.count_inbox_entries(&inbox.id, &filter).await.unwrap(),
        3
    );
    assert!(store.delete_inbox(&inbox.id).await.unwrap());
}

/// A fresh inbox of `app` (or of no application), not yet stored, with a random name and no
/// verification.
pub fn sample_inbox(app: Option<&herald_core::id::AppId>) -> Inbox {
    let now = herald_core::time::now();
    Inbox {
        id: InboxId::generate(),
        name: format!("inbox-{}", random_base62(10)),
        app_id: app.cloned(),
        description: String::new(),
        token_hash: vec![9; 32],
        verification: None,
        max_body_bytes: None,
        rate_limit: None,
        forward: None,
        drop_headers: Vec::new(),
        public_write: false,
        rejected_count: 0,
        created_at: now,
        updated_at: now,
    }
}

/// Inbox records: names unique per application (and among inboxes of none), lookups by id
/// and by name, updates, and deletion with the application.
pub async fn inbox_records(store: &dyn Store) {
    let app = sample_app(None);
    store.create_app(&app).await.unwrap();
    let mut inbox = sample_inbox(Some(&app.id));
    inbox.verification = Some(SealedVerification {
        config: VerificationConfig::default(),
        secret: vec![1, 2, 3],
    });
    inbox.forward = Some(Forward::Header {
        header: "X-Event".into(),
    });
    inbox.max_body_bytes = Some(1000);
    inbox.rate_limit = Some(5);
    inbox.drop_headers = vec!["X-Trace".into()];
    store.create_inbox(&inbox).await.unwrap();
    assert_eq!(
        store.get_inbox(inbox.id.as_str()).await.unwrap(),
        Some(inbox.clone())
    );
    // An application's inbox is found by its name within the application only: the name is
    // the application's, not the installation's.
    assert_eq!(
        store.get_inbox_of(&app.id, &inbox.name).await.unwrap(),
        Some(inbox.clone())
    );
    assert_eq!(store.get_inbox(&inbox.name).await.unwrap(), None);
    let mut twin = sample_inbox(Some(&app.id));
    twin.name = inbox.name.clone();
    assert!(matches!(
        store.create_inbox(&twin).await,
        Err(StoreError::Conflict(_))
    ));
    // Another application, or none, may use the name.
    let elsewhere = sample_app(None);
    store.create_app(&elsewhere).await.unwrap();
    let mut theirs = sample_inbox(Some(&elsewhere.id));
    theirs.name = inbox.name.clone();
    store.create_inbox(&theirs).await.unwrap();
    let mut global = sample_inbox(None);
    global.name = inbox.name.clone();
    store.create_inbox(&global).await.unwrap();
    // An inbox of no application is found by its name too (the `/in/{name}/…` form); another
    // of none may not take it.
    assert_eq!(
        store.get_inbox(&global.name).await.unwrap(),
        Some(global.clone())
    );
    let mut global_twin = sample_inbox(None);
    global_twin.name = inbox.name.clone();
    assert!(matches!(
        store.create_inbox(&global_twin).await,
        Err(StoreError::Conflict(_))
    ));
    store.delete_app(&elsewhere.id).await.unwrap();
    assert!(store.delete_inbox(&global.id).await.unwrap());

    let other = sample_inbox(None);
    store.create_inbox(&other).await.unwrap();
    let page = store
        .list_inboxes(&ListParams::first(50, Order::Ascending), Some(&app.id))
        .await
        .unwrap();
    assert_eq!(page.items, vec![inbox.clone()]);

    let mut changed = inbox.clone();
    changed.verification = None;
    changed.forward = None;
    changed.description = "factory".into();
    changed.token_hash = vec![7; 32];
    store.update_inbox(&changed).await.unwrap();
    store.count_inbox_rejection(&inbox.id).await.unwrap();
    let got = store.get_inbox(inbox.id.as_str()).await.unwrap().unwrap();
    assert_eq!(got.rejected_count, 1);
    assert_eq!(
        Inbox {
            rejected_count: 0,
            ..got
        },
        changed
    );

    assert!(store.delete_inbox(&other.id).await.unwrap());
    assert!(!store.delete_inbox(&other.id).await.unwrap());
    // Deleting the application deletes its inboxes.
    store.delete_app(&app.id).await.unwrap();
    assert_eq!(store.get_inbox(inbox.id.as_str()).await.unwrap(), None);
}

pub(super) fn new_entry(inbox: &Inbox, method: &str, at: &str, write: Write) -> NewEntry {
    let id = InboxEntryId::generate();
    let mut location = Location::parse(at).unwrap();
    if method == "POST" {
        let received = id.timestamp().unwrap();
        location = location.child(&herald_core::inbox::push_id::generate_at(received));
    }
    NewEntry {
        id,
        inbox_id: inbox.id.clone(),
        location,
        method: method.into(),
        write,
        encoding: Encoding::Json,
        headers: vec![("content-type".into(), "application/json".into())],
        source: Some("127.0.0.1".into()),
        received_at: herald_core::time::now(),
        replay: None,
    }
}

pub(super) async fn write(
    store: &dyn Store,
    inbox: &Inbox,
    method: &str,
    at: &str,
    body: Value,
) -> InboxEntry {
    let write = match method {
        "PATCH" => Write::Patch(body.as_object().cloned().unwrap()),
        _ => Write::Put(body),
    };
    store
        .write_inbox(&new_entry(inbox, method, at, write), None)
        .await
        .unwrap()
        .0
}

pub(super) async fn tree(store: &dyn Store, inbox: &Inbox, at: &str) -> Value {
    read(store, inbox, at, ChildQuery::default()).await
}

pub(super) async fn read(store: &dyn Store, inbox: &Inbox, at: &str, query: ChildQuery) -> Value {
    match store
        .read_inbox_tree(&inbox.id, &Location::parse(at).unwrap(), &query, 10_000)
        .await
        .unwrap()
    {
        TreeRead::Value(v) => v,
        TreeRead::TooLarge => panic!("too large"),
    }
}

pub(super) async fn entry_count(store: &dyn Store, inbox: &Inbox) -> u64 {
    store
        .count_inbox_entries(&inbox.id, &EntryFilter::default())
        .await
        .unwrap()
}

/// POST, PUT and PATCH build the tree as Firebase does: generated keys, replaced and pruned
/// rows, merges, deletion by `null`; a write to a deleted inbox stores nothing.
pub async fn post_put_and_patch_build_the_tree(store: &dyn Store) {
    let inbox = sample_inbox(None);
    store.create_inbox(&inbox).await.unwrap();

    // POST appends under the path with a generated, time-ordered key.
    let first = write(store, &inbox, "POST", "blessing", json!({"device_id": "a"})).await;
    let second = write(store, &inbox, "POST", "blessing", json!({"device_id": "b"})).await;
    assert_eq!(
        (first.path.as_str(), second.path.as_str()),
        ("blessing", "blessing")
    );
    assert!(first.key < second.key);
    assert_eq!(
        tree(store, &inbox, "blessing").await,
        json!({first.key.clone(): {"device_id": "a"}, second.key.clone(): {"device_id": "b"}})
    );
    assert_eq!(
        tree(store, &inbox, &format!("blessing/{}/device_id", first.key)).await,
        json!("a")
    );

    // PUT replaces the value at its path, and everything under it.
    write(store, &inbox, "PUT", "devices/abc", json!({"t": 1, "u": 1})).await;
    write(store, &inbox, "PUT", "devices/def", json!({"t": 2})).await;
    write(store, &inbox, "PUT", "devices/abc", json!({"t": 3})).await;
    assert_eq!(
        tree(store, &inbox, "devices").await,
        json!({"abc": {"t": 3}, "def": {"t": 2}})
    );
    // A PUT below a row prunes that row; a PUT above rows replaces them.
    write(
        store,
        &inbox,
        "PUT",
        "devices",
        json!({"ghi": {"t": 4, "v": 5}}),
    )
    .await;
    assert_eq!(
        tree(store, &inbox, "devices").await,
        json!({"ghi": {"t": 4, "v": 5}})
    );
    write(store, &inbox, "PUT", "devices/ghi/t", json!(6)).await;
    assert_eq!(
        tree(store, &inbox, "devices").await,
        json!({"ghi": {"t": 6, "v": 5}})
    );
    write(store, &inbox, "PUT", "devices/ghi/v/deep", json!(true)).await;
    assert_eq!(
        tree(store, &inbox, "devices/ghi").await,
        json!({"t": 6, "v": {"deep": true}}),
        "a scalar on the way is replaced"
    );

    // PATCH merges its children into what is there.
    write(
        store,
        &inbox,
        "PATCH",
        "devices/ghi",
        json!({"t": 7, "w": {"x": 1}}),
    )
    .await;
    write(store, &inbox, "PATCH", "devices/ghi", json!({"v": null})).await;
    assert_eq!(
        tree(store, &inbox, "devices/ghi").await,
        json!({"t": 7, "w": {"x": 1}})
    );
    let before = entry_count(store, &inbox).await;
    write(store, &inbox, "PATCH", "devices/ghi", json!({"y": 1})).await;
    assert_eq!(
        entry_count(store, &inbox).await,
        before,
        "a PATCH supersedes the row at its location"
    );

    // PUT null deletes; the write is still recorded.
    write(store, &inbox, "PUT", "devices", Value::Null).await;
    assert_eq!(tree(store, &inbox, "devices").await, Value::Null);
    let root = tree(store, &inbox, "").await;
    assert_eq!(
        root.as_object().unwrap().keys().collect::<Vec<_>>(),
        vec!["blessing"]
    );
    let page = store
        .list_inbox_entries(
            &inbox.id,
            &EntryFilter {
                under: Some(Location::parse("devices").unwrap()),
                ..Default::default()
            },
            &ListParams::first(50, Order::Ascending),
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(
        (page.items[0].path.as_str(), page.items[0].key.as_str()),
        ("", "devices")
    );
    assert_eq!(page.items[0].value, "null");

    // A write to an inbox that is gone fails and writes nothing.
    let ghost = sample_inbox(None);
    let entry = new_entry(&ghost, "POST", "x", Write::Put(json!(1)));
    assert!(matches!(
        store.write_inbox(&entry, None).await,
        Err(StoreError::NotFound)
    ));
}

/// Tree reads: child queries by key over rows at, above and below the location, and
/// `TooLarge` past the row limit.
pub async fn tree_reads_select_children_by_key(store: &dyn Store) {
    let inbox = sample_inbox(None);
    store.create_inbox(&inbox).await.unwrap();
    for key in ["a", "b", "c", "d", "e"] {
        write(store, &inbox, "PUT", &format!("r/{key}"), json!({"n": key})).await;
    }
    // Children held by a row above and by deeper rows count too.
    write(store, &inbox, "PATCH", "r", json!({"f": 6})).await;
    write(store, &inbox, "PUT", "r/g/deep", json!(7)).await;
    let keys = |v: Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
    let q = |start: Option<&str>, end: Option<&str>, limit: Option<Limit>| ChildQuery {
        start_at: start.map(String::from),
        end_at: end.map(String::from),
        limit,
    };
    assert_eq!(
        keys(read(store, &inbox, "r", q(None, None, Some(Limit::First(2)))).await),
        ["a", "b"]
    );
    assert_eq!(
        keys(read(store, &inbox, "r", q(None, None, Some(Limit::Last(2)))).await),
        ["f", "g"]
    );
    assert_eq!(
        keys(read(store, &inbox, "r", q(Some("b"), Some("d"), None)).await),
        ["b", "c", "d"]
    );
    assert_eq!(
        read(
            store,
            &inbox,
            "r",
            q(Some("e"), None, Some(Limit::First(3)))
        )
        .await,
        json!({"e": {"n": "e"}, "f": 6, "g": {"deep": 7}})
    );
    assert_eq!(
        read(store, &inbox, "r", q(Some("x"), None, None)).await,
        Value::Null
    );
    // Children held only by deeper rows, whose paths do not sort like the keys (`c-x` sorts
    // between `c` and `c/…`), and the root's children.
    write(store, &inbox, "PUT", "s/c/k1", json!(1)).await;
    write(store, &inbox, "PUT", "s/c-x/k2", json!(2)).await;
    write(store, &inbox, "PUT", "s/c/deep/k3", json!(3)).await;
    assert_eq!(
        read(store, &inbox, "s", q(None, None, Some(Limit::First(5)))).await,
        json!({"c": {"deep": {"k3": 3}, "k1": 1}, "c-x": {"k2": 2}})
    );
    assert_eq!(
        read(
            store,
            &inbox,
            "s",
            q(Some("c-"), None, Some(Limit::Last(1)))
        )
        .await,
        json!({"c-x": {"k2": 2}})
    );
    assert_eq!(
        keys(read(store, &inbox, "", q(None, None, Some(Limit::Last(1)))).await),
        ["s"]
    );
    // Too many rows for one read.
    assert_eq!(
        store
            .read_inbox_tree(
                &inbox.id,
                &Location::parse("r").unwrap(),
                &ChildQuery::default(),
                3
            )
            .await
            .unwrap(),
        TreeRead::TooLarge
    );
}

/// Entry lists and counts: time, location and `up_to` filters, and keyset pages.
pub async fn entries_list_with_filters_and_paging(store: &dyn Store) {
    let inbox = sample_inbox(None);
    store.create_inbox(&inbox).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..7 {
        let at = if i % 2 == 0 { "even" } else { "odd" };
        ids.push(write(store, &inbox, "POST", at, json!({"i": i})).await.id);
    }
    write(store, &inbox, "PUT", "evenness", json!(1)).await;
    let filter = EntryFilter {
        under: Some(Location::parse("even").unwrap()),
        ..Default::default()
    };
    let mut seen = Vec::new();
    let mut params = ListParams::first(2, Order::Ascending);
    loop {
        let page = store
            .list_inbox_entries(&inbox.id, &filter, &params)
            .await
            .unwrap();
        seen.extend(page.items.iter().map(|e| e.id.clone()));
        if page.done() {
            break;
        }
        params.cursor = Some(herald_core::page::Cursor::after(
            page.items.last().unwrap().id.as_str(),
        ));
    }
    let evens: Vec<_> = ids.iter().step_by(2).cloned().collect();
    assert_eq!(seen, evens, "`even` does not cover `evenness`");
    assert_eq!(
        store.count_inbox_entries(&inbox.id, &filter).await.unwrap(),
        4
    );
    let up_to = EntryFilter {
        up_to: Some(ids[2].clone()),
        ..Default::default()
    };
    assert_eq!(
        store.count_inbox_entries(&inbox.id, &up_to).await.unwrap(),
        3
    );
    let last = store.last_inbox_entry(&inbox.id).await.unwrap().unwrap();
    assert!(last > ids[6]);
    let entry = &store
        .list_inbox_entries(
            &inbox.id,
            &EntryFilter::default(),
            &ListParams::first(1, Order::Ascending),
        )
        .await
        .unwrap()
        .items[0];
    assert_eq!(entry.method, "POST");
    assert_eq!(entry.encoding, Encoding::Json);
    assert_eq!(entry.source.as_deref(), Some("127.0.0.1"));
    assert_eq!(
        entry.headers,
        vec![("content-type".to_owned(), "application/json".to_owned())]
    );
    // Time filters.
    let after_all = EntryFilter {
        after: Some(herald_core::time::now() + chrono::Duration::seconds(1)),
        ..Default::default()
    };
    assert_eq!(
        store
            .count_inbox_entries(&inbox.id, &after_all)
            .await
            .unwrap(),
        0
    );
    let before_all = EntryFilter {
        before: Some(herald_core::time::now() + chrono::Duration::seconds(1)),
        ..Default::default()
    };
    assert_eq!(
        store
            .count_inbox_entries(&inbox.id, &before_all)
            .await
            .unwrap(),
        8
    );
}

/// An entry and the message it forwards commit together: when the message cannot be stored,
/// neither is the entry.
pub async fn forwarding_commits_with_the_write(store: &dyn Store) {
    let app = sample_app(None);
    store.create_app(&app).await.unwrap();
    let mut endpoint = sample_endpoint(&app.id);
    endpoint.event_types = Some(vec!["blessing".into()]);
    store.create_endpoint(&endpoint, &secrets(3)).await.unwrap();
    let inbox = sample_inbox(Some(&app.id));
    store.create_inbox(&inbox).await.unwrap();

    let entry = new_entry(&inbox, "POST", "blessing", Write::Put(json!({"a": 1})));
    let mut message = sample_message(&app.id, "blessing", None);
    message.event_id = Some(entry.id.as_str().to_owned());
    let (stored, matched) = store.write_inbox(&entry, Some(&message)).await.unwrap();
    assert_eq!(matched, vec![endpoint.id.clone()]);
    assert_eq!(stored.id, entry.id);
    assert!(
        store
            .get_message(&app.id, &message.id)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        store
            .deliveries_for_message(&message.id)
            .await
            .unwrap()
            .len(),
        1
    );

    // When the message cannot be stored, neither is the entry.
    let again = new_entry(&inbox, "POST", "blessing", Write::Put(json!({"a": 2})));
    let mut clash = sample_message(&app.id, "blessing", None);
    clash.event_id = message.event_id.clone();
    assert!(matches!(
        store.write_inbox(&again, Some(&clash)).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(entry_count(store, &inbox).await, 1);
}

/// `reseal_all` passes inbox verification secrets through the function too.
pub async fn verification_secrets_are_resealed(store: &dyn Store) {
    let mut inbox = sample_inbox(None);
    let marker = random_base62(16).into_bytes();
    inbox.verification = Some(SealedVerification {
        config: VerificationConfig::default(),
        secret: marker.clone(),
    });
    store.create_inbox(&inbox).await.unwrap();
    let changed = store
        .reseal_all(&|value: &[u8]| Ok((value == marker.as_slice()).then(|| b"resealed".to_vec())))
        .await
        .unwrap();
    assert!(changed >= 1);
    let got = store.get_inbox(inbox.id.as_str()).await.unwrap().unwrap();
    assert_eq!(got.verification.unwrap().secret, b"resealed");
}
