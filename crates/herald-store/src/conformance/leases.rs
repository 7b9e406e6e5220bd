//! Task leases. A claim writes only a task's lease (which node, until when) and leaves its
//! status and due time as they were, so that it rewrites no index entry; these checks hold the
//! queue to what the old claims did: a task under a lease is not claimed again, is reported as
//! sending, keeps its endpoint due for when the lease lapses, and is claimed again after that.

use chrono::Duration;
use herald_core::model::DeliveryStatus;
use herald_core::token::random_base62;

use super::{ClaimTasks, record, sample_app, sample_endpoint, sample_message, secrets, status_of};
use crate::Store;
use crate::queue::NextStep;

/// A node that dies with tasks in flight: its endpoint was released with the leases as its next
/// due time, another node takes the endpoint and the tasks when the leases lapse, and the dead
/// node's late result moves nothing. Then the same with FIFO, where only the head counts.
pub async fn lapsed_leases_make_tasks_due_again(store: &dyn Store) {
    for fifo in [false, true] {
        let node = format!("node-{}", random_base62(6));
        let other = format!("node-{}", random_base62(6));
        let app = sample_app(None);
        store.create_app(&app).await.unwrap();
        let mut endpoint = sample_endpoint(&app.id);
        endpoint.event_types = None;
        store.create_endpoint(&endpoint, &secrets(1)).await.unwrap();
        let messages: Vec<_> = (0..3)
            .map(|_| sample_message(&app.id, "a.b", None))
            .collect();
        for msg in &messages {
            store.create_message(msg).await.unwrap();
        }
        let now = messages[2].created_at + Duration::milliseconds(1);
        let lease = now + Duration::seconds(30);
        assert!(
            store
                .claim_due_endpoints(&node, now, lease, 100)
                .await
                .unwrap()
                .contains(&endpoint.id)
        );
        let limit = if fifo { 1 } else { 2 };
        let (first, version) = store
            .claim_tasks(&node, &endpoint.id, now, lease, limit, fifo)
            .await
            .unwrap();
        assert_eq!(first.len(), limit);
        assert_eq!(first[0].msg_id, messages[0].id);
        // Leased tasks are not claimed again; without FIFO the unleased one still is.
        let (rest, _) = store
            .claim_tasks(&node, &endpoint.id, now, lease, 10, fifo)
            .await
            .unwrap();
        assert_eq!(rest.len(), if fifo { 0 } else { 1 }, "fifo: {fifo}");
        assert_eq!(
            status_of(store, &messages[0].id, &endpoint.id).await,
            Some(DeliveryStatus::Sending)
        );
        let in_flight = store.deliveries_for_message(&messages[0].id).await.unwrap();
        assert_eq!(
            in_flight[0].next_attempt_at,
            Some(lease),
            "a task in flight is next attempted when its lease ends"
        );
        if fifo {
            assert_eq!(
                status_of(store, &messages[1].id, &endpoint.id).await,
                Some(DeliveryStatus::Pending)
            );
        }

        // Nothing is due but the leases: the endpoint is released, due when they lapse.
        assert!(
            store
                .release_endpoint(&node, &endpoint.id, version, fifo, now)
                .await
                .unwrap(),
            "fifo: {fifo}"
        );
        let almost = lease - Duration::milliseconds(1);
        assert!(
            !store
                .claim_due_endpoints(&other, almost, almost + Duration::seconds(30), 100)
                .await
                .unwrap()
                .contains(&endpoint.id),
            "not due while the leases hold (fifo: {fifo})"
        );
        let lapsed = lease + Duration::milliseconds(1);
        let other_lease = lapsed + Duration::seconds(30);
        assert!(
            store
                .claim_due_endpoints(&other, lapsed, other_lease, 100)
                .await
                .unwrap()
                .contains(&endpoint.id),
            "due when the leases lapse (fifo: {fifo})"
        );
        let (again, _) = store
            .claim_tasks(&other, &endpoint.id, lapsed, other_lease, 10, fifo)
            .await
            .unwrap();
        let expected = if fifo {
            vec![&messages[0].id]
        } else {
            messages.iter().map(|m| &m.id).collect()
        };
        assert_eq!(
            again.iter().map(|t| &t.msg_id).collect::<Vec<_>>(),
            expected
        );

        // The dead node's result comes late: its lease is gone, nothing moves.
        let day = Duration::days(1);
        store
            .complete_attempts(
                &node,
                &[record(&first[0], &endpoint, NextStep::Done, now)],
                day,
                lapsed,
            )
            .await
            .unwrap();
        let d = store.deliveries_for_message(&messages[0].id).await.unwrap();
        assert_eq!(
            (d[0].status, d[0].attempts, d[0].next_attempt_at),
            (DeliveryStatus::Sending, 0, Some(other_lease))
        );
        // The new owner's result does.
        store
            .complete_attempts(
                &other,
                &[record(&again[0], &endpoint, NextStep::Done, lapsed)],
                day,
                lapsed,
            )
            .await
            .unwrap();
        assert_eq!(
            status_of(store, &messages[0].id, &endpoint.id).await,
            Some(DeliveryStatus::Success)
        );
        store.abandon_endpoint(&other, &endpoint.id).await.unwrap();
        store.delete_app(&app.id).await.unwrap();
    }
}

/// A scheduled message (`deliver_at`) is stored with its time and tags, and its tasks wait in
/// the queue until then: its endpoint is not due before, and is after; the tag filter finds
/// it by whole tag.
pub async fn scheduled_messages_wait_in_the_queue(store: &dyn Store) {
    let node = format!("node-{}", random_base62(6));
    let app = sample_app(None);
    store.create_app(&app).await.unwrap();
    let mut endpoint = sample_endpoint(&app.id);
    endpoint.event_types = None;
    store.create_endpoint(&endpoint, &secrets(1)).await.unwrap();
    let mut msg = sample_message(&app.id, "a.b", None);
    let at = msg.created_at + Duration::hours(1);
    msg.deliver_at = Some(at);
    msg.tags = Some(vec!["project.x".into(), "urgent".into()]);
    assert_eq!(
        store.create_message(&msg).await.unwrap(),
        vec![endpoint.id.clone()]
    );
    let stored = store.get_message(&app.id, &msg.id).await.unwrap().unwrap();
    assert_eq!(stored.deliver_at, Some(at));
    assert_eq!(stored.tags, msg.tags);
    let app_id = app.id.clone();
    let listed = |tag: &str| {
        let filter = crate::MessageFilter {
            tag: Some(tag.into()),
            ..Default::default()
        };
        let app_id = app_id.clone();
        async move {
            let first =
                herald_core::page::ListParams::first(50, herald_core::page::Order::Descending);
            store
                .list_messages(&app_id, &filter, &first)
                .await
                .unwrap()
                .items
                .len()
        }
    };
    assert_eq!(listed("urgent").await, 1);
    assert_eq!(listed("project").await, 0);

    let soon = msg.created_at + Duration::minutes(59);
    assert!(
        !store
            .claim_due_endpoints(&node, soon, soon + Duration::seconds(30), 100)
            .await
            .unwrap()
            .contains(&endpoint.id),
        "not due before its time"
    );
    let due = at + Duration::milliseconds(1);
    assert!(
        store
            .claim_due_endpoints(&node, due, due + Duration::seconds(30), 100)
            .await
            .unwrap()
            .contains(&endpoint.id)
    );
    let (tasks, _) = store
        .claim_tasks(
            &node,
            &endpoint.id,
            due,
            due + Duration::seconds(30),
            10,
            false,
        )
        .await
        .unwrap();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].msg_id, msg.id);
    store.abandon_endpoint(&node, &endpoint.id).await.unwrap();
    store.delete_app(&app.id).await.unwrap();
}
