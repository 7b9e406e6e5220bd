//! Transformations (issue 25) as every store must keep them: the code in the clear and its
//! variables sealed, handed to the worker with the endpoint, re-sealed with every other secret;
//! and a delivery the transformation canceled, which ends its task without counting against
//! the endpoint.

use chrono::Duration;
use herald_core::model::{DeliveryStatus, Transformation};
use herald_core::token::random_base62;

use super::{ClaimTasks, record, sample_app, sample_endpoint, sample_message, secrets, status_of};
use crate::queue::NextStep;
use crate::{Store, StoreError, StoredTransformation};

/// Stored, read back, carried by `dispatch_target`, re-sealed, refused for a missing endpoint.
pub async fn transformations_are_stored_sealed_and_resealed(store: &dyn Store) {
    let app = sample_app(None);
    store.create_app(&app).await.unwrap();
    let ep = sample_endpoint(&app.id);
    store.create_endpoint(&ep, &secrets(1)).await.unwrap();
    assert_eq!(
        store.get_transformation(&ep.id).await.unwrap(),
        StoredTransformation::default()
    );
    let stored = StoredTransformation {
        transformation: Some(Transformation {
            code: "function handler(webhook) { return webhook; }".into(),
            enabled: true,
            updated_at: herald_core::time::now(),
        }),
        variables: Some(b"sealed-variables".to_vec()),
    };
    store.set_transformation(&ep.id, &stored).await.unwrap();
    assert_eq!(store.get_transformation(&ep.id).await.unwrap(), stored);
    let target = store.dispatch_target(&ep.id).await.unwrap().unwrap();
    assert_eq!(target.transformation, stored);

    let reseal = |value: &[u8]| -> Result<Option<Vec<u8>>, String> {
        Ok((value == b"sealed-variables").then(|| b"resealed".to_vec()))
    };
    assert!(store.reseal_all(&reseal).await.unwrap() >= 1);
    let got = store.get_transformation(&ep.id).await.unwrap();
    assert_eq!(got.variables.as_deref(), Some(&b"resealed"[..]));
    assert_eq!(got.transformation, stored.transformation);

    // Turned off and without variables: both read back as saved.
    let off = StoredTransformation {
        transformation: stored.transformation.clone().map(|mut t| {
            t.enabled = false;
            t
        }),
        variables: None,
    };
    store.set_transformation(&ep.id, &off).await.unwrap();
    assert_eq!(store.get_transformation(&ep.id).await.unwrap(), off);

    let missing = sample_endpoint(&app.id);
    assert!(matches!(
        store.get_transformation(&missing.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.set_transformation(&missing.id, &stored).await,
        Err(StoreError::NotFound)
    ));
    store.delete_app(&app.id).await.unwrap();
}

/// A delivery its transformation canceled ends as `Canceled`, with its attempt (to the URL the
/// transformation chose) recorded, and neither starts nor ends the endpoint's failure streak.
pub async fn a_canceled_delivery_ends_alone(store: &dyn Store) {
    let node = format!("node-{}", random_base62(6));
    let app = sample_app(None);
    store.create_app(&app).await.unwrap();
    let ep = sample_endpoint(&app.id);
    store.create_endpoint(&ep, &secrets(1)).await.unwrap();
    let ep = store.get_endpoint_by_id(&ep.id).await.unwrap().unwrap();
    let mut sent = Vec::new();
    for _ in 0..2 {
        let msg = sample_message(&app.id, "user.signup", None);
        store.create_message(&msg).await.unwrap();
        sent.push(msg.id);
    }
    let now = herald_core::time::now() + Duration::seconds(1);
    let lease = now + Duration::seconds(30);
    store
        .claim_due_endpoints(&node, now, lease, 100)
        .await
        .unwrap();
    let (tasks, version) = store
        .claim_tasks(&node, &ep.id, now, lease, 10, false)
        .await
        .unwrap();
    assert_eq!(tasks.len(), 2);
    let mut canceled = record(&tasks[0], &ep, NextStep::Canceled, now);
    canceled.status_code = 0;
    canceled.url = "https://elsewhere.example/chosen".into();
    canceled.url_version = None;
    canceled.error = Some("canceled by the endpoint's transformation".into());
    let effects = store
        .complete_attempts(&node, &[canceled], Duration::seconds(1), now)
        .await
        .unwrap();
    assert_eq!(effects, Default::default());
    // Had the cancel started a failure streak, this success would end it ("recovered").
    let done = record(&tasks[1], &ep, NextStep::Done, now);
    let effects = store
        .complete_attempts(&node, &[done], Duration::seconds(1), now)
        .await
        .unwrap();
    assert_eq!(effects, Default::default());
    store
        .release_endpoint(&node, &ep.id, version, false, now)
        .await
        .unwrap();
    let first = &tasks[0].msg_id;
    let second = &tasks[1].msg_id;
    assert_eq!(
        status_of(store, first, &ep.id).await,
        Some(DeliveryStatus::Canceled)
    );
    assert_eq!(
        status_of(store, second, &ep.id).await,
        Some(DeliveryStatus::Success)
    );
    let attempts = store.attempts_for_message(first).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].url, "https://elsewhere.example/chosen");
    assert!(
        !store
            .get_endpoint_by_id(&ep.id)
            .await
            .unwrap()
            .unwrap()
            .disabled
    );
    store.delete_app(&app.id).await.unwrap();
}
