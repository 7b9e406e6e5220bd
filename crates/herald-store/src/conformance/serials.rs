//! Serials and the seed systems' fields (issue 24) as every store must keep them: numbers
//! never given twice, endpoints found by number and unique by name within an application,
//! Kobiton's `orgId`, and Impilo's one webhook secret per application, sealed and re-sealed.

use std::collections::BTreeSet;

use super::{sample_app, sample_endpoint, sample_message, secrets};
use crate::{SerialKind, Store, StoreError};

/// The checks of the module documentation.
pub async fn serials_and_seed_fields(store: &dyn Store) {
    // Numbers drawn at once, in blocks and one by one, are never given twice, and those drawn
    // one after another increase.
    let drawn = futures_join(store, SerialKind::Message, 250).await;
    let distinct: BTreeSet<i64> = drawn.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        drawn.len(),
        "a message serial was given twice"
    );
    let a = store.next_serial(SerialKind::Message).await.unwrap();
    let b = store.next_serial(SerialKind::Message).await.unwrap();
    assert!(b > a && a > 0);
    let e1 = store.next_serial(SerialKind::Endpoint).await.unwrap();
    let e2 = store.next_serial(SerialKind::Endpoint).await.unwrap();
    assert_eq!(e2, e1 + 1, "endpoint serials are taken one at a time");

    // Kobiton's orgId round-trips.
    let mut app = sample_app(None);
    app.org_id = Some(2);
    store.create_app(&app).await.unwrap();
    assert_eq!(
        store
            .get_app(app.id.as_str())
            .await
            .unwrap()
            .unwrap()
            .org_id,
        Some(2)
    );
    app.org_id = Some(7);
    store.update_app(&app).await.unwrap();
    assert_eq!(
        store
            .get_app(app.id.as_str())
            .await
            .unwrap()
            .unwrap()
            .org_id,
        Some(7)
    );
    let other = sample_app(None);
    store.create_app(&other).await.unwrap();

    // Endpoints keep their number and name; found by number within their application only.
    let mut ep = sample_endpoint(&app.id);
    ep.serial = e1;
    ep.name = Some("Webhook for All events".into());
    store.create_endpoint(&ep, &secrets(1)).await.unwrap();
    let found = store.get_endpoint_by_serial(&app.id, e1).await.unwrap();
    assert_eq!(found.as_ref(), Some(&ep));
    assert_eq!(
        store.get_endpoint_by_serial(&other.id, e1).await.unwrap(),
        None
    );
    let mut same_name = sample_endpoint(&app.id);
    same_name.name = ep.name.clone();
    assert!(matches!(
        store.create_endpoint(&same_name, &secrets(2)).await,
        Err(StoreError::Conflict(_))
    ));
    let mut elsewhere = sample_endpoint(&other.id);
    elsewhere.name = ep.name.clone();
    store
        .create_endpoint(&elsewhere, &secrets(3))
        .await
        .unwrap();
    let mut renamed = sample_endpoint(&app.id);
    renamed.name = Some("Second".into());
    store.create_endpoint(&renamed, &secrets(4)).await.unwrap();
    renamed.name = ep.name.clone();
    assert!(matches!(
        store.update_endpoint(&renamed).await,
        Err(StoreError::Conflict(_))
    ));

    // A message keeps the number it was stored with.
    let mut msg = sample_message(&app.id, "user.signup", None);
    msg.serial = b;
    store.create_message(&msg).await.unwrap();
    let read = store.get_message(&app.id, &msg.id).await.unwrap().unwrap();
    assert_eq!(read.serial, b);

    // One webhook secret per application: set once unless replaced, carried to the worker,
    // re-sealed with every secret.
    assert_eq!(store.webhook_secret(&app.id).await.unwrap(), None);
    assert!(
        store
            .set_webhook_secret(&app.id, b"first", false)
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_webhook_secret(&app.id, b"second", false)
            .await
            .unwrap()
    );
    assert_eq!(
        store.webhook_secret(&app.id).await.unwrap(),
        Some(b"first".to_vec())
    );
    assert!(
        store
            .set_webhook_secret(&app.id, b"second", true)
            .await
            .unwrap()
    );
    let target = store.dispatch_target(&ep.id).await.unwrap().unwrap();
    assert_eq!(target.webhook_secret, Some(b"second".to_vec()));
    assert_eq!(target.endpoint.serial, e1);
    let reseal = |value: &[u8]| -> Result<Option<Vec<u8>>, String> {
        Ok((value == b"second").then(|| b"resealed".to_vec()))
    };
    assert!(store.reseal_all(&reseal).await.unwrap() >= 1);
    assert_eq!(
        store.webhook_secret(&app.id).await.unwrap(),
        Some(b"resealed".to_vec())
    );
    let missing = herald_core::id::AppId::generate();
    assert!(matches!(
        store.set_webhook_secret(&missing, b"x", true).await,
        Err(StoreError::NotFound)
    ));
}

async fn futures_join(store: &dyn Store, kind: SerialKind, n: usize) -> Vec<i64> {
    let mut set = Vec::with_capacity(n);
    let draws = (0..n).map(|_| store.next_serial(kind));
    for r in futures::future::join_all(draws).await {
        set.push(r.unwrap());
    }
    set
}
