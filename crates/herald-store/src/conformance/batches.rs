//! The batched paths of the queue: publishes committed together (SQLite's group commit), claims
//! for several endpoints in one transaction, and results written in bulk. Each must behave as
//! if its parts had been done one by one.

use chrono::{DateTime, Duration, Utc};
use herald_core::id::EndpointId;
use herald_core::model::DeliveryStatus;
use herald_core::token::random_base62;

use super::{record, sample_app, sample_endpoint, sample_message, secrets, status_of};
use crate::queue::{NextStep, TaskClaim};
use crate::{Store, StoreError};

/// Publishes arriving together (and so, on SQLite, committed together): one with a duplicate
/// `eventId` and one for an endpoint that does not exist fail with their own errors; the
/// others are stored with their tasks.
pub async fn concurrent_publishes_fail_alone(store: &dyn Store) {
    let app = sample_app(None);
    store.create_app(&app).await.unwrap();
    let mut endpoint = sample_endpoint(&app.id);
    endpoint.event_types = None;
    store.create_endpoint(&endpoint, &secrets(1)).await.unwrap();
    let mut first = sample_message(&app.id, "a.b", None);
    first.event_id = Some("evt-batch".into());
    store.create_message(&first).await.unwrap();

    let mut duplicate = sample_message(&app.id, "a.b", None);
    duplicate.event_id = Some("evt-batch".into());
    let nowhere = sample_message(&app.id, "a.b", None);
    let missing = EndpointId::generate();
    let good: Vec<_> = (0..20)
        .map(|_| sample_message(&app.id, "a.b", None))
        .collect();
    let (dup_result, nowhere_result, good_results) = tokio::join!(
        store.create_message(&duplicate),
        store.create_message_for_endpoint(&nowhere, &missing),
        futures::future::join_all(good.iter().map(|m| store.create_message(m))),
    );
    assert!(
        matches!(dup_result, Err(StoreError::Conflict(_))),
        "{dup_result:?}"
    );
    assert!(
        matches!(nowhere_result, Err(StoreError::NotFound)),
        "{nowhere_result:?}"
    );
    for (msg, result) in good.iter().zip(good_results) {
        assert_eq!(result.unwrap(), vec![endpoint.id.clone()]);
        assert_eq!(
            status_of(store, &msg.id, &endpoint.id).await,
            Some(DeliveryStatus::Pending)
        );
    }
    for failed in [&duplicate, &nowhere] {
        assert!(
            store
                .get_message(&app.id, &failed.id)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .deliveries_for_message(&failed.id)
                .await
                .unwrap()
                .is_empty()
        );
    }
}

/// One claim per endpoint, each answered as `claim_tasks` would: its limit, its tasks in order,
/// nothing (version -1) for an endpoint another node owns.
pub async fn claims_of_several_endpoints(store: &dyn Store) {
    let node = format!("node-{}", random_base62(6));
    let other = format!("node-{}", random_base62(6));
    let app = sample_app(None);
    store.create_app(&app).await.unwrap();
    let mut endpoints = Vec::new();
    for _ in 0..3 {
        let mut endpoint = sample_endpoint(&app.id);
        endpoint.event_types = None;
        store.create_endpoint(&endpoint, &secrets(1)).await.unwrap();
        endpoints.push(endpoint);
    }
    let mut msgs = Vec::new();
    for _ in 0..3 {
        let msg = sample_message(&app.id, "a.b", None);
        store.create_message(&msg).await.unwrap();
        msgs.push(msg);
    }
    let now = msgs[2].created_at + Duration::milliseconds(1);
    let lease = now + Duration::seconds(30);
    // The third endpoint goes to the other node.
    let mine = store
        .claim_due_endpoints(&node, now, lease, 1000)
        .await
        .unwrap();
    assert!(mine.contains(&endpoints[0].id) && mine.contains(&endpoints[1].id));
    store
        .abandon_endpoint(&node, &endpoints[2].id)
        .await
        .unwrap();
    let theirs = store
        .claim_due_endpoints(&other, now, lease, 1000)
        .await
        .unwrap();
    assert!(theirs.contains(&endpoints[2].id));

    let claim = |endpoint: &EndpointId, limit| unordered(endpoint, lease, limit);
    let claimed = store
        .claim_tasks_of(
            &node,
            now,
            &[
                claim(&endpoints[0].id, 2),
                claim(&endpoints[1].id, 10),
                claim(&endpoints[2].id, 10),
            ],
        )
        .await
        .unwrap();
    assert_eq!(claimed.len(), 3);
    let ids = |i: usize| -> Vec<_> { claimed[i].0.iter().map(|t| t.msg_id.clone()).collect() };
    assert_eq!(ids(0), vec![msgs[0].id.clone(), msgs[1].id.clone()]);
    assert_eq!(
        ids(1),
        msgs.iter().map(|m| m.id.clone()).collect::<Vec<_>>()
    );
    assert!(claimed[0].1 >= 0 && claimed[1].1 >= 0);
    assert_eq!((claimed[2].0.len(), claimed[2].1), (0, -1));
    assert!(claimed[1].0.iter().all(|t| t.payload == msgs[0].payload));
    assert!(
        store
            .claim_tasks_of(&node, now, &[])
            .await
            .unwrap()
            .is_empty()
    );
    // What was claimed is no longer due.
    let again = store
        .claim_tasks_of(&node, now, &[claim(&endpoints[0].id, 10)])
        .await
        .unwrap();
    assert_eq!(ids_of(&again[0].0), vec![msgs[2].id.clone()]);
}

fn unordered(endpoint: &EndpointId, lease_until: DateTime<Utc>, limit: usize) -> TaskClaim {
    TaskClaim {
        endpoint: endpoint.clone(),
        lease_until,
        limit,
        fifo: false,
    }
}

fn ids_of(tasks: &[crate::Task]) -> Vec<herald_core::id::MessageId> {
    tasks.iter().map(|t| t.msg_id.clone()).collect()
}

/// Results of several endpoints in one batch: an endpoint with only successes completes its
/// tasks and ends its failure streak (reported once, as a recovery); another endpoint's results
/// take effect in order (success, failure: retried and a streak begins, success: it ends).
pub async fn results_in_bulk(store: &dyn Store) {
    let node = format!("node-{}", random_base62(6));
    let app = sample_app(None);
    store.create_app(&app).await.unwrap();
    let mut recovering = sample_endpoint(&app.id);
    recovering.event_types = None;
    let mut flaky = sample_endpoint(&app.id);
    flaky.event_types = None;
    for endpoint in [&recovering, &flaky] {
        store.create_endpoint(endpoint, &secrets(1)).await.unwrap();
    }
    let msgs: Vec<_> = (0..3)
        .map(|_| sample_message(&app.id, "a.b", None))
        .collect();
    for msg in &msgs {
        store.create_message(msg).await.unwrap();
    }
    let now = msgs[2].created_at + Duration::milliseconds(1);
    let lease = now + Duration::seconds(30);
    store
        .claim_due_endpoints(&node, now, lease, 1000)
        .await
        .unwrap();
    let claim = |endpoint: &EndpointId, limit| unordered(endpoint, lease, limit);
    // A first failure starts the recovering endpoint's streak.
    let first = store
        .claim_tasks_of(&node, now, &[claim(&recovering.id, 1)])
        .await
        .unwrap();
    let retry_at = now + Duration::milliseconds(1);
    let failed = record(
        &first[0].0[0],
        &recovering,
        NextStep::RetryAt(retry_at),
        now,
    );
    store
        .complete_attempts(&node, &[failed], Duration::days(5), now)
        .await
        .unwrap();

    let later = now + Duration::milliseconds(5);
    let claimed = store
        .claim_tasks_of(
            &node,
            later,
            &[claim(&recovering.id, 10), claim(&flaky.id, 10)],
        )
        .await
        .unwrap();
    assert_eq!((claimed[0].0.len(), claimed[1].0.len()), (3, 3));
    let mut batch: Vec<_> = claimed[0]
        .0
        .iter()
        .map(|t| record(t, &recovering, NextStep::Done, later))
        .collect();
    batch.push(record(&claimed[1].0[0], &flaky, NextStep::Done, later));
    batch.push(record(
        &claimed[1].0[1],
        &flaky,
        NextStep::RetryAt(later + Duration::hours(1)),
        later,
    ));
    batch.push(record(&claimed[1].0[2], &flaky, NextStep::Done, later));
    let effects = store
        .complete_attempts(&node, &batch, Duration::days(5), later)
        .await
        .unwrap();
    // The recovering endpoint's streak ends with its first success; the flaky one's begins and
    // ends within the batch, in order.
    assert_eq!(
        effects.recovered,
        vec![batch[0].id.clone(), batch[5].id.clone()]
    );
    assert!(effects.disabled.is_empty() && effects.exhausted.is_empty());
    for msg in &msgs {
        assert_eq!(
            status_of(store, &msg.id, &recovering.id).await,
            Some(DeliveryStatus::Success)
        );
    }
    assert_eq!(
        status_of(store, &claimed[1].0[1].msg_id, &flaky.id).await,
        Some(DeliveryStatus::Pending)
    );
    for task in [&claimed[1].0[0], &claimed[1].0[2]] {
        assert_eq!(
            status_of(store, &task.msg_id, &flaky.id).await,
            Some(DeliveryStatus::Success)
        );
    }
    // A result for a task no longer leased to this node changes nothing.
    let stale = record(&claimed[0].0[0], &recovering, NextStep::Done, later);
    let effects = store
        .complete_attempts(&node, &[stale], Duration::days(5), later)
        .await
        .unwrap();
    assert!(effects.recovered.is_empty());
    let deliveries = store.deliveries_for_message(&msgs[0].id).await.unwrap();
    let delivery = deliveries
        .iter()
        .find(|d| d.endpoint_id == recovering.id)
        .unwrap();
    assert_eq!(delivery.attempts, 2);
}
