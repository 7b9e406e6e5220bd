//! Background tasks: leases that one runner holds at a time and another takes over when they
//! lapse, progress recorded only under the lease, and replay steps whose deliveries commit with
//! their progress or not at all. And integrations, whose keys change with them.

use chrono::Duration;
use herald_core::background::{BackgroundTaskStatus, BackgroundTaskType};
use herald_core::id::BackgroundTaskId;
use herald_core::page::{ListParams, Order};
use serde_json::json;

use super::{sample_app, sample_endpoint, sample_message, secrets};
use crate::{
    BackgroundTask, BackgroundTaskFilter, ReplayBatch, ReplayMode, Store, TaskLease, TaskProgress,
};

fn new_task(task: BackgroundTaskType, app: Option<&herald_core::id::AppId>) -> BackgroundTask {
    let now = herald_core::time::now();
    BackgroundTask {
        id: BackgroundTaskId::generate_at(now),
        task,
        status: BackgroundTaskStatus::Running,
        app_id: app.cloned(),
        endpoint_id: None,
        params: json!({"since": "2026-01-01T00:00:00Z"}),
        data: json!({}),
        cursor: None,
        created_at: now,
        updated_at: now,
    }
}

fn progress(
    status: BackgroundTaskStatus,
    sent: u64,
    cursor: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
) -> TaskProgress {
    TaskProgress {
        status,
        data: json!({ "messagesSent": sent }),
        cursor: cursor.map(str::to_owned),
        now,
        lease_until: now + Duration::seconds(30),
    }
}

/// One runner holds a task at a time; a lapsed lease is taken over and the old holder records
/// nothing more; a finished task is claimed by no one; a released task is claimable at once.
pub async fn background_tasks_are_leased_and_resumed(store: &dyn Store) {
    let app = sample_app(None);
    store.create_app(&app).await.unwrap();
    let task = new_task(BackgroundTaskType::EndpointReplay, Some(&app.id));
    store.create_background_task(&task).await.unwrap();
    assert_eq!(
        store.get_background_task(&task.id).await.unwrap().as_ref(),
        Some(&task)
    );
    let now = herald_core::time::now();
    let lease_until = now + Duration::seconds(30);
    let claimed = store
        .claim_background_task("a", now, lease_until)
        .await
        .unwrap()
        .expect("an unowned running task is claimed");
    assert_eq!(claimed.id, task.id);
    assert!(
        store
            .claim_background_task("b", now, lease_until)
            .await
            .unwrap()
            .is_none(),
        "a held task is not claimed twice"
    );
    let a = TaskLease {
        id: task.id.clone(),
        owner: "a".into(),
    };
    let b = TaskLease {
        id: task.id.clone(),
        owner: "b".into(),
    };
    let step = progress(BackgroundTaskStatus::Running, 3, Some("msg_1"), now);
    assert!(store.save_background_task(&a, &step).await.unwrap());
    assert!(!store.save_background_task(&b, &step).await.unwrap());

    // The holder dies: its lease lapses (the step above renewed it to now + 30 s).
    let later = now + Duration::seconds(31);
    let resumed = store
        .claim_background_task("b", later, later + Duration::seconds(30))
        .await
        .unwrap()
        .expect("a lapsed lease is taken over");
    assert_eq!(resumed.cursor.as_deref(), Some("msg_1"));
    assert_eq!(resumed.data, json!({"messagesSent": 3}));
    assert!(
        !store.save_background_task(&a, &step).await.unwrap(),
        "the old holder records nothing"
    );
    let done = progress(BackgroundTaskStatus::Finished, 5, None, later);
    assert!(store.save_background_task(&b, &done).await.unwrap());
    let finished = store.get_background_task(&task.id).await.unwrap().unwrap();
    assert_eq!(finished.status, BackgroundTaskStatus::Finished);
    assert_eq!(finished.data, json!({"messagesSent": 5}));
    assert!(
        !store.save_background_task(&b, &step).await.unwrap(),
        "a finished task stays finished"
    );
    let far = later + Duration::days(1);
    assert!(
        store
            .claim_background_task("c", far, far)
            .await
            .unwrap()
            .is_none()
    );

    // Released at shutdown: claimable at once, without waiting for the lease.
    let other = new_task(BackgroundTaskType::EndpointRecover, None);
    store.create_background_task(&other).await.unwrap();
    store
        .claim_background_task("c", now, lease_until)
        .await
        .unwrap()
        .unwrap();
    store.release_background_tasks("c").await.unwrap();
    assert_eq!(
        store
            .claim_background_task("d", now, lease_until)
            .await
            .unwrap()
            .map(|t| t.id),
        Some(other.id.clone())
    );

    // Lists filter by status, type and application.
    let first = ListParams::first(50, Order::Descending);
    let list = |filter: BackgroundTaskFilter| async move {
        store
            .list_background_tasks(&filter, &ListParams::first(50, Order::Descending))
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|t| t.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        list(BackgroundTaskFilter::default()).await,
        vec![other.id.clone(), task.id.clone()]
    );
    assert_eq!(
        list(BackgroundTaskFilter {
            status: Some(BackgroundTaskStatus::Running),
            ..Default::default()
        })
        .await,
        vec![other.id.clone()]
    );
    assert_eq!(
        list(BackgroundTaskFilter {
            task: Some(BackgroundTaskType::EndpointReplay),
            ..Default::default()
        })
        .await,
        vec![task.id.clone()]
    );
    assert_eq!(
        list(BackgroundTaskFilter {
            app: Some(app.id.clone()),
            ..Default::default()
        })
        .await,
        vec![task.id.clone()]
    );
    let page = store
        .list_background_tasks(&BackgroundTaskFilter::default(), &first)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 2);

    // Finished tasks are purged after their time; running ones never.
    assert_eq!(
        store
            .purge_background_tasks(far + Duration::days(1))
            .await
            .unwrap(),
        1
    );
    assert!(store.get_background_task(&task.id).await.unwrap().is_none());
    assert!(
        store
            .get_background_task(&other.id)
            .await
            .unwrap()
            .is_some()
    );
}

/// `Missing` gives an endpoint only the messages it never got, once; `Again` makes every one
/// due again; a step whose lease was lost writes nothing; destinations are counted per
/// application.
pub async fn replay_batches_commit_with_their_progress(store: &dyn Store) {
    let app = sample_app(None);
    store.create_app(&app).await.unwrap();
    let mut old = sample_endpoint(&app.id);
    old.event_types = None;
    store.create_endpoint(&old, &secrets(1)).await.unwrap();
    let messages: Vec<_> = (0..4)
        .map(|_| sample_message(&app.id, "a.b", None))
        .collect();
    for msg in &messages {
        store.create_message(msg).await.unwrap();
    }
    // Created after the messages: it never got them.
    let mut new = sample_endpoint(&app.id);
    new.event_types = None;
    store.create_endpoint(&new, &secrets(2)).await.unwrap();

    let task = new_task(BackgroundTaskType::EndpointReplay, Some(&app.id));
    store.create_background_task(&task).await.unwrap();
    let now = herald_core::time::now();
    store
        .claim_background_task("runner", now, now + Duration::seconds(30))
        .await
        .unwrap()
        .unwrap();
    let lease = TaskLease {
        id: task.id.clone(),
        owner: "runner".into(),
    };
    let lost = TaskLease {
        id: task.id.clone(),
        owner: "someone-else".into(),
    };
    let step = |endpoint, mode| ReplayBatch {
        endpoint,
        messages: &messages,
        mode,
        now,
    };
    let record = |n: u64| progress(BackgroundTaskStatus::Running, n, Some("cursor"), now);

    assert_eq!(
        store
            .replay_batch(&lost, step(&new.id, ReplayMode::Missing), &record)
            .await
            .unwrap(),
        None,
        "without the lease nothing is written"
    );
    let deliveries = store.deliveries_for_message(&messages[0].id).await.unwrap();
    assert_eq!(deliveries.len(), 1, "the lost step left no delivery");

    assert_eq!(
        store
            .replay_batch(&lease, step(&new.id, ReplayMode::Missing), &record)
            .await
            .unwrap(),
        Some(4)
    );
    let saved = store.get_background_task(&task.id).await.unwrap().unwrap();
    assert_eq!(saved.data, json!({"messagesSent": 4}));
    assert_eq!(saved.cursor.as_deref(), Some("cursor"));
    assert_eq!(
        store
            .replay_batch(&lease, step(&new.id, ReplayMode::Missing), &record)
            .await
            .unwrap(),
        Some(0),
        "a message is replayed once"
    );
    assert_eq!(
        store
            .replay_batch(&lease, step(&old.id, ReplayMode::Missing), &record)
            .await
            .unwrap(),
        Some(0),
        "the old endpoint got them all"
    );
    for msg in &messages {
        let deliveries = store.deliveries_for_message(&msg.id).await.unwrap();
        assert_eq!(deliveries.len(), 2);
        assert!(
            deliveries
                .iter()
                .all(|d| d.status == herald_core::model::DeliveryStatus::Pending)
        );
    }
    let due = now + Duration::seconds(1);
    assert!(
        store
            .claim_due_endpoints("node", due, due + Duration::seconds(30), 100)
            .await
            .unwrap()
            .contains(&new.id),
        "the replayed endpoint's queue is due"
    );
    assert_eq!(
        store
            .replay_batch(&lease, step(&old.id, ReplayMode::Again), &record)
            .await
            .unwrap(),
        Some(4),
        "a bulk replay makes each delivery due again"
    );

    let since = now - Duration::hours(1);
    assert_eq!(
        store
            .message_destinations(
                std::slice::from_ref(&app.id),
                since,
                now + Duration::hours(1)
            )
            .await
            .unwrap(),
        vec![(app.id.clone(), 8)]
    );
    assert!(
        store
            .message_destinations(
                std::slice::from_ref(&app.id),
                now + Duration::hours(1),
                now + Duration::hours(2)
            )
            .await
            .unwrap()
            .is_empty()
    );
}

/// An integration and its key are created, renamed, re-flagged, rotated and deleted together;
/// deleting the application takes both.
pub async fn integrations_keep_their_key_in_step(store: &dyn Store) {
    use herald_core::id::{ApiKeyId, IntegrationId};
    use herald_core::model::{ApiKey, Integration, KeyKind, Role};
    let app = sample_app(None);
    store.create_app(&app).await.unwrap();
    let now = herald_core::time::now();
    let key = |flags: Vec<String>| ApiKey {
        id: ApiKeyId::generate(),
        name: "integration: Zapier".into(),
        role: Role::App,
        kind: KeyKind::Integration,
        app_id: Some(app.id.clone()),
        secret_hash: vec![7; 32],
        created_at: now,
        expires_at: None,
        parent_id: None,
        feature_flags: flags,
    };
    let first = key(vec!["beta".into()]);
    let mut integration = Integration {
        id: IntegrationId::generate_at(now),
        app_id: app.id.clone(),
        name: "Zapier".into(),
        feature_flags: Some(vec!["beta".into()]),
        key_id: Some(first.id.clone()),
        created_at: now,
        updated_at: now,
    };
    store
        .create_integration(&integration, &first)
        .await
        .unwrap();
    assert_eq!(
        store
            .get_integration(&app.id, &integration.id)
            .await
            .unwrap(),
        Some(integration.clone())
    );
    let other = sample_app(None);
    store.create_app(&other).await.unwrap();
    assert_eq!(
        store
            .get_integration(&other.id, &integration.id)
            .await
            .unwrap(),
        None,
        "found only in its application"
    );
    let listed = store
        .list_integrations(&app.id, &ListParams::first(50, Order::Ascending))
        .await
        .unwrap();
    assert_eq!(listed.items, vec![integration.clone()]);

    integration.name = "Make".into();
    integration.feature_flags = Some(vec!["lab".into()]);
    assert!(store.update_integration(&integration).await.unwrap());
    let stored_key = store.get_api_key(&first.id).await.unwrap().unwrap();
    assert_eq!(stored_key.feature_flags, vec!["lab".to_owned()]);
    assert_eq!(stored_key.name, "integration: Make");

    let second = key(vec!["lab".into()]);
    integration.key_id = Some(second.id.clone());
    assert!(
        store
            .rotate_integration_key(&integration, &second)
            .await
            .unwrap()
    );
    assert!(
        store.get_api_key(&first.id).await.unwrap().is_none(),
        "the old key is gone"
    );
    assert!(store.get_api_key(&second.id).await.unwrap().is_some());
    assert_eq!(
        store
            .get_integration(&app.id, &integration.id)
            .await
            .unwrap()
            .and_then(|i| i.key_id),
        Some(second.id.clone())
    );
    // Its key revoked on its own, the integration stays, without a key.
    assert!(store.delete_api_key(&second.id).await.unwrap());
    assert_eq!(
        store
            .get_integration(&app.id, &integration.id)
            .await
            .unwrap()
            .map(|i| i.key_id),
        Some(None)
    );
    let third = key(vec![]);
    assert!(
        store
            .rotate_integration_key(&integration, &third)
            .await
            .unwrap()
    );
    assert!(
        store
            .delete_integration(&app.id, &integration.id)
            .await
            .unwrap()
    );
    assert!(
        store.get_api_key(&third.id).await.unwrap().is_none(),
        "deleted with it"
    );
    assert!(
        !store
            .delete_integration(&app.id, &integration.id)
            .await
            .unwrap()
    );

    let again = Integration {
        id: IntegrationId::generate_at(now),
        key_id: None,
        ..integration.clone()
    };
    let fourth = key(vec![]);
    store
        .create_integration(
            &Integration {
                key_id: Some(fourth.id.clone()),
                ..again.clone()
            },
            &fourth,
        )
        .await
        .unwrap();
    store.delete_app(&app.id).await.unwrap();
    assert!(store.get_api_key(&fourth.id).await.unwrap().is_none());
    assert!(
        store
            .get_integration(&app.id, &again.id)
            .await
            .unwrap()
            .is_none()
    );
}
