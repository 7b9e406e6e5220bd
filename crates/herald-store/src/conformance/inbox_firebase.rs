//! Inboxes as the Firebase tutorial uses them: the `publicWrite` setting, deletions (of a path
//! and of the whole inbox) kept as entries, and shallow reads that never count a deleted child.

use herald_core::inbox::push_id;
use herald_core::inbox::tree::{ChildQuery, Limit, Location, Write};
use herald_core::page::{ListParams, Order};
use serde_json::{Value, json};

use super::inbox::{entry_count, new_entry, read, sample_inbox, tree, write};
use crate::{EntryFilter, Store, TreeRead};

/// `public_write` is stored, read back and changed like the other settings.
pub async fn public_write_is_kept(store: &dyn Store) {
    let mut inbox = sample_inbox(None);
    inbox.public_write = true;
    store.create_inbox(&inbox).await.unwrap();
    let got = store.get_inbox(inbox.id.as_str()).await.unwrap().unwrap();
    assert!(got.public_write);
    assert_eq!(
        store.find_inboxes_named(&inbox.name).await.unwrap(),
        vec![inbox.clone()]
    );
    inbox.public_write = false;
    store.update_inbox(&inbox).await.unwrap();
    let got = store.get_inbox(inbox.id.as_str()).await.unwrap().unwrap();
    assert!(!got.public_write);
    assert!(store.delete_inbox(&inbox.id).await.unwrap());
}

async fn shallow(store: &dyn Store, inbox: &herald_core::inbox::Inbox, at: &str) -> Value {
    match store
        .read_inbox_shallow(&inbox.id, &Location::parse(at).unwrap(), 1_000)
        .await
        .unwrap()
    {
        TreeRead::Value(v) => v,
        TreeRead::TooLarge => panic!("too large"),
    }
}

/// Deletions are writes of `null`, kept as entries; deleting the root empties the inbox and is
/// kept at the root's own address. Shallow reads give the value of a primitive and the keys of
/// the children that hold data, as the full read shows them, and stop past their budget.
pub async fn deletions_and_shallow_reads(store: &dyn Store) {
    let inbox = sample_inbox(None);
    store.create_inbox(&inbox).await.unwrap();
    let posted = write(store, &inbox, "POST", "blessing", json!({"device_id": "a"})).await;
    assert!(push_id::is_push_id(&posted.key), "{}", posted.key);
    write(store, &inbox, "PUT", "blinkup/b1", json!({"plan_id": "p"})).await;
    write(
        store,
        &inbox,
        "PUT",
        "testresult",
        json!({"t1": {"msg": "hi"}}),
    )
    .await;
    write(store, &inbox, "PUT", "deep/a/b/c", json!(1)).await;
    write(store, &inbox, "PUT", "flag", json!(true)).await;
    write(store, &inbox, "PATCH", "empty", json!({"x": null})).await;

    assert_eq!(
        shallow(store, &inbox, "").await,
        json!({"blessing": true, "blinkup": true, "deep": true, "flag": true, "testresult": true})
    );
    assert_eq!(shallow(store, &inbox, "flag").await, json!(true));
    assert_eq!(
        shallow(store, &inbox, "testresult").await,
        json!({"t1": true})
    );
    assert_eq!(
        shallow(store, &inbox, "testresult/t1/msg").await,
        json!("hi")
    );
    assert_eq!(
        shallow(store, &inbox, "blessing").await,
        json!({posted.key.clone(): true})
    );
    assert_eq!(shallow(store, &inbox, "nothing/here").await, Value::Null);
    // A write that holds nothing is kept as `null`.
    let page = store
        .list_inbox_entries(
            &inbox.id,
            &EntryFilter {
                under: Some(Location::parse("empty").unwrap()),
                ..Default::default()
            },
            &ListParams::first(5, Order::Ascending),
        )
        .await
        .unwrap();
    assert_eq!(page.items[0].value, "null");

    // Deleting a deep leaf leaves its parents without data: no longer children anywhere.
    let deleted = write(store, &inbox, "DELETE", "deep/a/b/c", Value::Null).await;
    assert_eq!(
        (deleted.method.as_str(), deleted.value.as_str()),
        ("DELETE", "null")
    );
    assert_eq!(tree(store, &inbox, "deep").await, Value::Null);
    assert_eq!(shallow(store, &inbox, "deep").await, Value::Null);
    let root = shallow(store, &inbox, "").await;
    assert!(root.get("deep").is_none(), "{root}");
    // Nor do they take a place in a limited read.
    write(store, &inbox, "DELETE", "blessing", Value::Null).await;
    let first = read(
        store,
        &inbox,
        "",
        ChildQuery {
            limit: Some(Limit::First(1)),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(first, json!({"blinkup": {"b1": {"plan_id": "p"}}}));

    // Too many children for the budget.
    assert_eq!(
        store
            .read_inbox_shallow(&inbox.id, &Location::root(), 2)
            .await
            .unwrap(),
        TreeRead::TooLarge
    );

    // Deleting the root empties the inbox, and is kept as the one entry left.
    let entry = new_entry(&inbox, "DELETE", "", Write::Put(Value::Null));
    let (root_deletion, _) = store.write_inbox(&entry, None).await.unwrap();
    assert_eq!(
        (root_deletion.path.as_str(), root_deletion.key.as_str()),
        ("", "")
    );
    assert_eq!(tree(store, &inbox, "").await, Value::Null);
    assert_eq!(shallow(store, &inbox, "").await, Value::Null);
    assert_eq!(entry_count(store, &inbox).await, 1);
    // Twice is fine, and the inbox fills again after it.
    let again = new_entry(&inbox, "DELETE", "", Write::Put(Value::Null));
    store.write_inbox(&again, None).await.unwrap();
    write(store, &inbox, "PUT", "flag", json!(1)).await;
    assert_eq!(tree(store, &inbox, "").await, json!({"flag": 1}));
    assert_eq!(shallow(store, &inbox, "").await, json!({"flag": true}));
    // Only a deletion writes at the root.
    let put = new_entry(&inbox, "PUT", "", Write::Put(json!({"a": 1})));
    assert!(store.write_inbox(&put, None).await.is_err());
    assert!(store.delete_inbox(&inbox.id).await.unwrap());
}
