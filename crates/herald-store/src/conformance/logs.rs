//! Conformance of the delivery logs, statistics, operational-webhook effects, retention and
//! metrics queries.

use chrono::Duration;
use herald_core::id::{AppId, AttemptId, MessageId};
use herald_core::model::{DeliveryStatus, OPERATIONAL_APP_ID, Trigger};
use herald_core::page::{Cursor, ListParams, Order};
use herald_core::token::random_base62;

use super::{ClaimTasks, record, sample_app, sample_endpoint, sample_message, secrets};
use crate::queue::NextStep;
use crate::{AttemptFilter, DeliveryLogFilter, EndpointMessageFilter, EndpointStats, Store};

/// The reserved operational-webhook application is never found or listed, while its
/// endpoints are ordinary endpoints.
pub async fn operational_app_is_hidden(store: &dyn Store) {
    assert!(store.get_app(OPERATIONAL_APP_ID).await.unwrap().is_none());
    let listed = store
        .list_apps(&ListParams::first(250, Order::Ascending), None)
        .await
        .unwrap();
    assert!(
        listed
            .items
            .iter()
            .all(|a| a.id.as_str() != OPERATIONAL_APP_ID)
    );
    // Its endpoints are ordinary endpoints of an existing application.
    let op = herald_core::model::operational_app_id();
    let ep = sample_endpoint(&op);
    store.create_endpoint(&ep, &secrets(3)).await.unwrap();
    assert_eq!(
        store
            .list_endpoints(&op, &ListParams::first(10, Order::Ascending))
            .await
            .unwrap()
            .items
            .iter()
            .filter(|e| e.id == ep.id)
            .count(),
        1
    );
    assert!(store.delete_endpoint(&op, &ep.id).await.unwrap());
}

/// Claims every due task of `endpoint` for `node` and completes each with `next`.
async fn deliver_all(
    store: &dyn Store,
    node: &str,
    endpoint: &herald_core::model::Endpoint,
    at: chrono::DateTime<chrono::Utc>,
    next: impl Fn(&crate::Task) -> NextStep,
) -> Vec<AttemptId> {
    store
        .claim_due_endpoints(node, at, at + Duration::seconds(30), 1000)
        .await
        .unwrap();
    let (tasks, version) = store
        .claim_tasks(
            node,
            &endpoint.id,
            at,
            at + Duration::seconds(30),
            100,
            false,
        )
        .await
        .unwrap();
    let records: Vec<_> = tasks
        .iter()
        .map(|t| record(t, endpoint, next(t), at))
        .collect();
    store
        .complete_attempts(node, &records, Duration::days(5), at)
        .await
        .unwrap();
    store
        .release_endpoint(node, &endpoint.id, version, false, at)
        .await
        .unwrap();
    records.into_iter().map(|r| r.id).collect()
}

/// The delivery logs: attempt lists with filters and keyset pages, one attempt and expunging
/// its content, destinations, sent messages, statistics, and the delivery log's filters,
/// offsets and totals.
pub async fn logs_and_stats(store: &dyn Store) {
    let node = format!("node-{}", random_base62(6));
    let app = sample_app(None);
    store.create_app(&app).await.unwrap();
    let mut a = sample_endpoint(&app.id);
    a.event_types = None;
    let mut b = sample_endpoint(&app.id);
    b.event_types = None;
    for ep in [&a, &b] {
        store.create_endpoint(ep, &secrets(1)).await.unwrap();
    }
    let m1 = sample_message(&app.id, "order.created", Some(vec!["eu_1".into()]));
    let m2 = sample_message(&app.id, "order.paid", None);
    let m3 = sample_message(&app.id, "order.created", None);
    for m in [&m1, &m2, &m3] {
        store.create_message(m).await.unwrap();
    }
    let at = m3.created_at + Duration::milliseconds(5);
    // Endpoint a: m1 succeeds, m2 and m3 fail and are retried. Endpoint b: all succeed.
    let fail_ids = [m2.id.clone(), m3.id.clone()];
    deliver_all(store, &node, &a, at, |t| {
        if fail_ids.contains(&t.msg_id) {
            NextStep::RetryAt(at + Duration::hours(1))
        } else {
            NextStep::Done
        }
    })
    .await;
    deliver_all(store, &node, &b, at, |_| NextStep::Done).await;

    // Attempts by endpoint, newest first, with filters.
    let page = |limit| ListParams::first(limit, Order::Descending);
    let by_a = store
        .list_attempts(
            &app.id,
            &AttemptFilter {
                endpoint: Some(a.id.clone()),
                ..Default::default()
            },
            &page(10),
        )
        .await
        .unwrap();
    assert_eq!(by_a.items.len(), 3);
    assert!(by_a.items.windows(2).all(|w| w[0].id > w[1].id));
    let failed = store
        .list_attempts(
            &app.id,
            &AttemptFilter {
                endpoint: Some(a.id.clone()),
                status: Some(DeliveryStatus::Fail),
                ..Default::default()
            },
            &page(10),
        )
        .await
        .unwrap();
    assert_eq!(failed.items.len(), 2);
    assert!(
        failed
            .items
            .iter()
            .all(|x| !x.success && x.status_code == 500)
    );
    let class = |c| AttemptFilter {
        endpoint: Some(a.id.clone()),
        status_code_class: Some(c),
        ..Default::default()
    };
    for (c, n) in [(500, 2), (200, 1), (400, 0), (0, 0)] {
        let got = store
            .list_attempts(&app.id, &class(c), &page(10))
            .await
            .unwrap();
        assert_eq!(got.items.len(), n, "class {c}");
    }
    let pending = store
        .list_attempts(
            &app.id,
            &AttemptFilter {
                status: Some(DeliveryStatus::Pending),
                ..Default::default()
            },
            &page(10),
        )
        .await
        .unwrap();
    assert!(pending.items.is_empty());
    let typed = store
        .list_attempts(
            &app.id,
            &AttemptFilter {
                event_types: vec!["order.created".into()],
                ..Default::default()
            },
            &page(10),
        )
        .await
        .unwrap();
    assert_eq!(typed.items.len(), 4, "m1 and m3 to both endpoints");
    let channel = store
        .list_attempts(
            &app.id,
            &AttemptFilter {
                channel: Some("eu_1".into()),
                ..Default::default()
            },
            &page(10),
        )
        .await
        .unwrap();
    assert_eq!(channel.items.len(), 2);
    assert!(channel.items.iter().all(|x| x.msg_id == m1.id));
    let by_msg = store
        .list_attempts(
            &app.id,
            &AttemptFilter {
                msg: Some(m2.id.clone()),
                endpoint: Some(b.id.clone()),
                ..Default::default()
            },
            &page(10),
        )
        .await
        .unwrap();
    assert_eq!(by_msg.items.len(), 1);
    assert_eq!(by_msg.items[0].trigger, Trigger::Scheduled);
    let none_before = store
        .list_attempts(
            &app.id,
            &AttemptFilter {
                before: Some(at),
                ..Default::default()
            },
            &page(10),
        )
        .await
        .unwrap();
    assert!(none_before.items.is_empty());
    let after = store
        .list_attempts(
            &app.id,
            &AttemptFilter {
                after: Some(at - Duration::milliseconds(1)),
                ..Default::default()
            },
            &page(10),
        )
        .await
        .unwrap();
    assert_eq!(after.items.len(), 6);
    // Another application sees none of them.
    let other = sample_app(None);
    store.create_app(&other).await.unwrap();
    assert!(
        store
            .list_attempts(&other.id, &AttemptFilter::default(), &page(10))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    // Keyset pages.
    let first = store
        .list_attempts(&app.id, &AttemptFilter::default(), &page(4))
        .await
        .unwrap();
    assert_eq!(first.items.len(), 4);
    assert!(!first.done());
    let rest = store
        .list_attempts(
            &app.id,
            &AttemptFilter::default(),
            &ListParams {
                limit: 4,
                cursor: Some(Cursor::after(first.items[3].id.as_str())),
                order: Order::Descending,
            },
        )
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 2);
    assert!(rest.done());

    // One attempt, and deleting its response.
    let one = &by_msg.items[0];
    assert_eq!(
        store
            .get_attempt(&app.id, &m2.id, &one.id)
            .await
            .unwrap()
            .as_ref(),
        Some(one)
    );
    assert!(
        store
            .get_attempt(&other.id, &m2.id, &one.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .get_attempt(&app.id, &m1.id, &one.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .expunge_attempt_content(&app.id, &m2.id, &one.id)
            .await
            .unwrap()
    );
    assert!(
        !store
            .expunge_attempt_content(&other.id, &m2.id, &one.id)
            .await
            .unwrap()
    );
    let expunged = store
        .get_attempt(&app.id, &m2.id, &one.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(expunged.response, None);
    assert_eq!(expunged.status_code, one.status_code);
    // The request as sent is kept, its body deleted with the response's.
    assert_eq!(one.request_body.as_deref(), Some("sent"));
    assert_eq!(expunged.request_body, None);
    assert_eq!(expunged.request_headers, one.request_headers);

    // Destinations of a message and messages of an endpoint, with their delivery states.
    let dests = store
        .list_destinations(&app.id, &m2.id, &ListParams::first(10, Order::Ascending))
        .await
        .unwrap();
    let mut expected = vec![a.id.clone(), b.id.clone()];
    expected.sort();
    assert_eq!(
        dests
            .items
            .iter()
            .map(|d| d.endpoint.id.clone())
            .collect::<Vec<_>>(),
        expected
    );
    for d in &dests.items {
        if d.endpoint.id == a.id {
            assert_eq!(d.status, DeliveryStatus::Pending);
            assert_eq!(d.next_attempt_at, Some(at + Duration::hours(1)));
        } else {
            assert_eq!(
                (d.status, d.next_attempt_at),
                (DeliveryStatus::Success, None)
            );
        }
    }
    assert!(
        store
            .list_destinations(&other.id, &m2.id, &ListParams::first(10, Order::Ascending))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let sent = |filter: EndpointMessageFilter| {
        let a = a.id.clone();
        async move {
            store
                .list_sent_messages(&a, &filter, &ListParams::first(10, Order::Descending))
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|s| (s.message.id, s.status))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        sent(EndpointMessageFilter::default()).await,
        vec![
            (m3.id.clone(), DeliveryStatus::Pending),
            (m2.id.clone(), DeliveryStatus::Pending),
            (m1.id.clone(), DeliveryStatus::Success),
        ]
    );
    assert_eq!(
        sent(EndpointMessageFilter {
            status: Some(DeliveryStatus::Success),
            ..Default::default()
        })
        .await,
        vec![(m1.id.clone(), DeliveryStatus::Success)]
    );
    assert_eq!(
        sent(EndpointMessageFilter {
            event_types: vec!["order.paid".into()],
            ..Default::default()
        })
        .await
        .len(),
        1
    );
    assert_eq!(
        sent(EndpointMessageFilter {
            channel: Some("eu_1".into()),
            ..Default::default()
        })
        .await,
        vec![(m1.id.clone(), DeliveryStatus::Success)]
    );
    assert_eq!(
        sent(EndpointMessageFilter {
            before: Some(m2.created_at),
            after: Some(m1.created_at - Duration::milliseconds(1)),
            ..Default::default()
        })
        .await
        .len(),
        usize::from(m1.created_at < m2.created_at),
        "only m1 is strictly before m2 (unless they share a millisecond)"
    );

    // Statistics by status within a window of creation times.
    assert_eq!(
        store.endpoint_stats(&a.id, None, None).await.unwrap(),
        EndpointStats {
            success: 1,
            pending: 2,
            fail: 0,
            sending: 0,
            canceled: 0,
        }
    );
    assert_eq!(
        store.endpoint_stats(&a.id, Some(at), None).await.unwrap(),
        EndpointStats::default()
    );
    assert_eq!(
        store
            .endpoint_stats(&b.id, Some(m1.created_at), Some(at))
            .await
            .unwrap()
            .success,
        3
    );

    // The delivery log: newest first, filters, offset pages, totals.
    let log = |filter: DeliveryLogFilter, offset, limit| {
        let app = app.id.clone();
        async move {
            store
                .delivery_log(
                    &DeliveryLogFilter {
                        app: Some(app),
                        ..filter
                    },
                    offset,
                    limit,
                )
                .await
                .unwrap()
        }
    };
    let all = log(DeliveryLogFilter::default(), 0, 10).await;
    assert_eq!(all.total, 6);
    assert_eq!(all.entries.len(), 6);
    assert!(
        all.entries
            .windows(2)
            .all(|w| w[0].created_at >= w[1].created_at)
    );
    assert_eq!(all.entries[0].msg_id, m3.id);
    let row = all
        .entries
        .iter()
        .find(|e| e.msg_id == m2.id && e.endpoint_id == a.id)
        .unwrap();
    assert_eq!(row.event_type, "order.paid");
    assert_eq!(row.url, a.url);
    assert_eq!(row.payload, m2.payload);
    assert_eq!(row.created_at, m2.created_at);
    assert_eq!(row.last_status_code, Some(500));
    assert_eq!(row.attempts, 1);
    assert_eq!(row.last_attempt_at, Some(at));
    assert_eq!(row.status, DeliveryStatus::Pending);
    assert_eq!(row.next_attempt_at, Some(at + Duration::hours(1)));
    assert_eq!(row.app_id, app.id);
    let second_page = log(DeliveryLogFilter::default(), 4, 4).await;
    assert_eq!((second_page.total, second_page.entries.len()), (6, 2));
    assert_eq!(second_page.entries[..], all.entries[4..]);
    let beyond = log(DeliveryLogFilter::default(), 6, 4).await;
    assert_eq!((beyond.total, beyond.entries.len()), (6, 0));
    let filtered = |f: DeliveryLogFilter| async { log(f, 0, 10).await.total };
    assert_eq!(
        filtered(DeliveryLogFilter {
            status: Some(DeliveryStatus::Pending),
            ..Default::default()
        })
        .await,
        2
    );
    assert_eq!(
        filtered(DeliveryLogFilter {
            event_type: Some("order.created".into()),
            ..Default::default()
        })
        .await,
        4
    );
    assert_eq!(
        filtered(DeliveryLogFilter {
            endpoint: Some(b.id.clone()),
            ..Default::default()
        })
        .await,
        3
    );
    assert_eq!(
        filtered(DeliveryLogFilter {
            created_from: Some(m3.created_at),
            created_to: Some(m3.created_at),
            ..Default::default()
        })
        .await,
        2 * [&m1, &m2, &m3]
            .iter()
            .filter(|m| m.created_at == m3.created_at)
            .count() as u64
    );
    assert_eq!(
        filtered(DeliveryLogFilter {
            last_attempt_from: Some(at),
            last_attempt_to: Some(at),
            ..Default::default()
        })
        .await,
        6
    );
    assert_eq!(
        filtered(DeliveryLogFilter {
            last_attempt_from: Some(at + Duration::milliseconds(1)),
            ..Default::default()
        })
        .await,
        0
    );
    // Server-wide: this application's rows among others'.
    let everything = store
        .delivery_log(&DeliveryLogFilter::default(), 0, 250)
        .await
        .unwrap();
    assert!(everything.total >= 6);
    assert!(
        store
            .delivery_log(
                &DeliveryLogFilter {
                    app: Some(other.id.clone()),
                    ..Default::default()
                },
                0,
                10
            )
            .await
            .unwrap()
            .total
            == 0
    );

    // Deleting a payload keeps the message and its log rows.
    assert!(
        store
            .expunge_message_content(&app.id, &m2.id)
            .await
            .unwrap()
    );
    assert!(
        !store
            .expunge_message_content(&other.id, &m2.id)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .get_message(&app.id, &m2.id)
            .await
            .unwrap()
            .unwrap()
            .payload,
        None
    );
    assert!(
        store
            .attempts_for_message(&m2.id)
            .await
            .unwrap()
            .iter()
            .all(|a| a.request_body.is_none())
    );
    let after_expunge = log(DeliveryLogFilter::default(), 0, 10).await;
    assert_eq!(after_expunge.total, 6);
    assert!(
        after_expunge
            .entries
            .iter()
            .filter(|e| e.msg_id == m2.id)
            .all(|e| e.payload.is_none())
    );
    store.delete_app(&app.id).await.unwrap();
    store.delete_app(&other.id).await.unwrap();
}

/// What `complete_attempts` reports for operational webhooks: `failing` at most once an hour
/// per endpoint, `exhausted`, and `recovered` when a streak ends.
pub async fn completion_effects(store: &dyn Store) {
    let node = format!("node-{}", random_base62(6));
    let app = sample_app(None);
    store.create_app(&app).await.unwrap();
    let mut ep = sample_endpoint(&app.id);
    ep.event_types = None;
    store.create_endpoint(&ep, &secrets(1)).await.unwrap();
    let msgs: Vec<_> = (0..3).map(|_| sample_message(&app.id, "e", None)).collect();
    for m in &msgs {
        store.create_message(m).await.unwrap();
    }
    let t0 = msgs[2].created_at + Duration::milliseconds(1);
    store
        .claim_due_endpoints(&node, t0, t0 + Duration::seconds(30), 1000)
        .await
        .unwrap();
    let (tasks, _) = store
        .claim_tasks(&node, &ep.id, t0, t0 + Duration::seconds(30), 10, false)
        .await
        .unwrap();
    assert_eq!(tasks.len(), 3);
    let retry = NextStep::RetryAt(t0 + Duration::minutes(1));
    // Two failures in one batch: one `failing` for the endpoint; an exhausted task reports.
    let first = record(&tasks[0], &ep, retry, t0);
    let second = record(&tasks[1], &ep, retry, t0);
    let last = record(&tasks[2], &ep, NextStep::Exhausted, t0);
    let effects = store
        .complete_attempts(
            &node,
            &[first.clone(), second.clone(), last.clone()],
            Duration::days(5),
            t0,
        )
        .await
        .unwrap();
    assert_eq!(effects.failing, vec![first.id.clone()]);
    assert_eq!(effects.exhausted, vec![last.id.clone()]);
    assert!(effects.recovered.is_empty() && effects.disabled.is_empty());

    // Within the hour no second `failing`; after it, one again.
    let again = |at: chrono::DateTime<chrono::Utc>, next: NextStep| {
        let ep = ep.clone();
        let node = node.clone();
        async move {
            store
                .claim_due_endpoints(&node, at, at + Duration::seconds(30), 1000)
                .await
                .unwrap();
            let (tasks, _) = store
                .claim_tasks(&node, &ep.id, at, at + Duration::seconds(30), 1, false)
                .await
                .unwrap();
            let r = record(&tasks[0], &ep, next, at);
            let effects = store
                .complete_attempts(&node, std::slice::from_ref(&r), Duration::days(5), at)
                .await
                .unwrap();
            (r.id, effects)
        }
    };
    let t1 = t0 + Duration::minutes(1) + Duration::milliseconds(1);
    let (_, effects) = again(t1, NextStep::RetryAt(t1 + Duration::minutes(1))).await;
    assert!(effects.failing.is_empty(), "{effects:?}");
    let t2 = t1 + Duration::minutes(1) + Duration::milliseconds(1);
    let (_, effects) = again(t2, NextStep::RetryAt(t2 + Duration::minutes(1))).await;
    assert!(effects.failing.is_empty());
    // The first success ends the streak: `recovered` once.
    let t3 = t2 + Duration::minutes(1) + Duration::milliseconds(1);
    let (id, effects) = again(t3, NextStep::Done).await;
    assert_eq!(effects.recovered, vec![id]);
    let (_, effects) = again(t3 + Duration::minutes(2), NextStep::Done).await;
    assert!(effects.recovered.is_empty());
    // A new streak more than an hour after the last `failing`.
    let requeued = sample_message(&app.id, "e", None);
    store.create_message(&requeued).await.unwrap();
    let t4 = t3 + Duration::hours(2);
    let (id, effects) = again(t4, NextStep::RetryAt(t4 + Duration::hours(1))).await;
    assert_eq!(effects.failing, vec![id]);
    store.delete_app(&app.id).await.unwrap();
}

/// Retention: payloads past their retention and old response bodies are deleted in batches,
/// while messages, log rows and attempts stay.
pub async fn retention(store: &dyn Store) {
    let node = format!("node-{}", random_base62(6));
    let app = sample_app(None);
    store.create_app(&app).await.unwrap();
    let mut ep = sample_endpoint(&app.id);
    ep.event_types = None;
    store.create_endpoint(&ep, &secrets(1)).await.unwrap();
    let poller = super::polls::polling_endpoint(store, &app.id, None).await;
    let mut msgs = Vec::new();
    for days in [1, 1, 1, 30] {
        let mut m = sample_message(&app.id, "e", None);
        m.payload_expires_at = m.created_at + Duration::days(days);
        store.create_message(&m).await.unwrap();
        msgs.push(m);
    }
    let at = msgs[3].created_at + Duration::milliseconds(1);
    deliver_all(store, &node, &ep, at, |_| NextStep::Done).await;

    // Payloads past their retention go, in batches; the messages and their log rows stay.
    let later = at + Duration::days(2);
    let mut purged = 0;
    loop {
        let n = store.purge_payloads(later, 2).await.unwrap();
        assert!(n <= 2);
        if n == 0 {
            break;
        }
        purged += n;
    }
    assert!(purged >= 3, "at least this test's three expired payloads");
    for (i, m) in msgs.iter().enumerate() {
        let kept = store.get_message(&app.id, &m.id).await.unwrap().unwrap();
        assert_eq!(kept.payload.is_some(), i == 3, "message {i}");
    }
    // A polling endpoint's entries go with the payloads: un-polled messages follow the payload
    // retention, and the entries do not pile up.
    let left = super::polls::read_visible(store, &poller, crate::PollPosition::default(), 1).await;
    let left: Vec<_> = left.iter().map(|p| p.message.id.clone()).collect();
    assert_eq!(left, [msgs[3].id.clone()]);
    // Response bodies older than the cut-off go; the attempts stay.
    while store
        .purge_attempt_responses(at + Duration::milliseconds(1), 2)
        .await
        .unwrap()
        > 0
    {}
    let log = store
        .delivery_log(
            &DeliveryLogFilter {
                app: Some(app.id.clone()),
                ..Default::default()
            },
            0,
            10,
        )
        .await
        .unwrap();
    assert_eq!(log.total, 4);
    assert_eq!(
        log.entries.iter().filter(|e| e.payload.is_some()).count(),
        1
    );
    assert!(
        log.entries
            .iter()
            .all(|e| e.status == DeliveryStatus::Success)
    );
    for m in &msgs {
        let attempts = store.attempts_for_message(&m.id).await.unwrap();
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0].response, None);
        assert_eq!(attempts[0].request_body, None);
        assert_eq!(attempts[0].status_code, 200);
    }
    store.delete_app(&app.id).await.unwrap();
}

/// Queue metrics move as work becomes due, disabled endpoints are counted, and pool
/// statistics are consistent.
pub async fn metrics(store: &dyn Store) {
    let app = sample_app(None);
    store.create_app(&app).await.unwrap();
    let mut ep = sample_endpoint(&app.id);
    ep.event_types = None;
    store.create_endpoint(&ep, &secrets(1)).await.unwrap();
    let mut disabled = sample_endpoint(&app.id);
    disabled.disabled = true;
    store.create_endpoint(&disabled, &secrets(1)).await.unwrap();
    let m = sample_message(&app.id, "e", None);
    store.create_message(&m).await.unwrap();
    let before = store
        .queue_metrics(m.created_at - Duration::seconds(1))
        .await
        .unwrap();
    let after = store.queue_metrics(m.created_at).await.unwrap();
    // Other checks may leave rows behind in a shared database: compare, do not count.
    assert!(after.due > before.due || before.scheduled > after.scheduled);
    assert!(after.disabled_endpoints >= 1);
    let pools = store.pool_stats();
    assert!(!pools.is_empty());
    assert!(pools.iter().all(|p| p.idle <= p.size && p.size <= p.max));
    store.delete_app(&app.id).await.unwrap();
}

/// An endpoint's attempts counted by UTC day and outcome, within a window.
pub async fn attempts_by_day(store: &dyn Store) {
    let app = sample_app(None);
    store.create_app(&app).await.unwrap();
    let mut endpoint = sample_endpoint(&app.id);
    endpoint.event_types = None;
    store.create_endpoint(&endpoint, &secrets(1)).await.unwrap();
    let node = format!("node-{}", random_base62(6));
    let day =
        |d: u32| chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 11, d, 0, 0, 0).unwrap();
    // Results of two messages on 1 November (one success, one failure) and one on 2 November.
    let mut records = Vec::new();
    for (at, next) in [
        (day(1) + Duration::hours(1), NextStep::Done),
        (day(1) + Duration::hours(23), NextStep::Exhausted),
        (day(2) + Duration::minutes(5), NextStep::Exhausted),
    ] {
        let msg = sample_message(&app.id, "a.b", None);
        store.create_message(&msg).await.unwrap();
        let now = msg.created_at + Duration::milliseconds(1);
        store
            .claim_due_endpoints(&node, now, now + Duration::seconds(30), 100)
            .await
            .unwrap();
        let (tasks, _) = store
            .claim_tasks(
                &node,
                &endpoint.id,
                now,
                now + Duration::seconds(30),
                1,
                false,
            )
            .await
            .unwrap();
        records.push(record(&tasks[0], &endpoint, next, at));
    }
    store
        .complete_attempts(&node, &records, Duration::days(1), day(3))
        .await
        .unwrap();
    let days = store
        .attempt_days(&endpoint.id, day(1), day(3))
        .await
        .unwrap();
    assert_eq!(
        days,
        vec![
            crate::AttemptDay {
                day: day(1),
                success: 1,
                fail: 1
            },
            crate::AttemptDay {
                day: day(2),
                success: 0,
                fail: 1
            },
        ]
    );
    let second = store
        .attempt_days(&endpoint.id, day(2), day(3))
        .await
        .unwrap();
    assert_eq!(second.len(), 1);
    store.abandon_endpoint(&node, &endpoint.id).await.unwrap();
    store.delete_app(&app.id).await.unwrap();
}

/// Log retention: messages created before the cut-off whose tasks have all ended are deleted,
/// a few per call, with their tasks, attempts and polling entries; a message with a task still
/// to deliver (retrying, or scheduled ahead) stays however old, and so does a recent one.
pub async fn log_retention(store: &dyn Store) {
    let node = format!("node-{}", random_base62(6));
    let app = sample_app(None);
    store.create_app(&app).await.unwrap();
    let mut ep = sample_endpoint(&app.id);
    ep.event_types = None;
    store.create_endpoint(&ep, &secrets(1)).await.unwrap();
    let poller = super::polls::polling_endpoint(store, &app.id, None).await;
    // An application without endpoints: its message has no task at all.
    let quiet = sample_app(None);
    store.create_app(&quiet).await.unwrap();

    let delivered = sample_message(&app.id, "e", None);
    let failed = sample_message(&app.id, "e", None);
    let retrying = sample_message(&app.id, "e", None);
    let mut scheduled = sample_message(&app.id, "e", None);
    scheduled.deliver_at = Some(scheduled.created_at + Duration::days(365));
    let taskless = sample_message(&quiet.id, "e", None);
    for m in [&delivered, &failed, &retrying, &scheduled, &taskless] {
        store.create_message(m).await.unwrap();
    }
    let at = taskless.created_at + Duration::milliseconds(1);
    let outcome = |t: &crate::Task| {
        if t.msg_id == delivered.id {
            NextStep::Done
        } else if t.msg_id == failed.id {
            NextStep::Exhausted
        } else {
            NextStep::RetryAt(at + Duration::hours(1))
        }
    };
    assert_eq!(deliver_all(store, &node, &ep, at, outcome).await.len(), 3);
    // A message of after the cut-off, delivered.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let recent = sample_message(&app.id, "e", None);
    store.create_message(&recent).await.unwrap();
    let later = recent.created_at + Duration::milliseconds(1);
    deliver_all(store, &node, &ep, later, |_| NextStep::Done).await;
    let cutoff = recent.created_at;

    let purge = |before| async move {
        let mut total = crate::PurgedMessages::default();
        loop {
            let n = store.purge_messages(before, 2).await.unwrap();
            assert!(n.messages <= 2, "{n:?}");
            if n.messages == 0 {
                return total;
            }
            total.messages += n.messages;
            total.deliveries += n.deliveries;
            total.attempts += n.attempts;
            total.poll_entries += n.poll_entries;
        }
    };
    let purged = purge(cutoff).await;
    // This check's delivered, failed and task-less messages, with the first two's tasks and
    // attempts and the polling entries of all three (the database may hold more).
    assert!(purged.messages >= 3, "{purged:?}");
    assert!(purged.deliveries >= 2 && purged.attempts >= 2, "{purged:?}");
    assert!(purged.poll_entries >= 2, "{purged:?}");
    let exists = |id: &MessageId, app: &AppId| {
        let (id, app) = (id.clone(), app.clone());
        async move { store.get_message(&app, &id).await.unwrap().is_some() }
    };
    for (m, gone) in [
        (&delivered, true),
        (&failed, true),
        (&taskless, true),
        (&retrying, false),
        (&scheduled, false),
        (&recent, false),
    ] {
        assert_eq!(exists(&m.id, &m.app_id).await, !gone, "{}", m.id);
        let attempts = store.attempts_for_message(&m.id).await.unwrap();
        let tasks = store.deliveries_for_message(&m.id).await.unwrap();
        if gone {
            assert!(attempts.is_empty() && tasks.is_empty(), "{}", m.id);
        } else {
            assert_eq!(tasks.len(), 1, "{}", m.id);
        }
    }
    assert_eq!(
        store
            .attempts_for_message(&retrying.id)
            .await
            .unwrap()
            .len(),
        1
    );
    let log = |app: AppId| async move {
        store
            .delivery_log(
                &DeliveryLogFilter {
                    app: Some(app),
                    ..Default::default()
                },
                0,
                10,
            )
            .await
            .unwrap()
    };
    assert_eq!(log(app.id.clone()).await.total, 3);
    let polled =
        super::polls::read_visible(store, &poller, crate::PollPosition::default(), 2).await;
    let polled: Vec<_> = polled.iter().map(|p| p.message.id.clone()).collect();
    for m in [&delivered, &failed] {
        assert!(!polled.contains(&m.id), "{polled:?}");
    }
    assert!(polled.contains(&retrying.id) && polled.contains(&recent.id));

    // Once its retry succeeds, the retrying message goes too; the scheduled one still waits.
    let retry_at = at + Duration::hours(2);
    assert_eq!(
        deliver_all(store, &node, &ep, retry_at, |_| NextStep::Done)
            .await
            .len(),
        1
    );
    let purged = purge(cutoff).await;
    assert!(purged.messages >= 1 && purged.attempts >= 2, "{purged:?}");
    assert!(!exists(&retrying.id, &app.id).await);
    assert!(
        store
            .attempts_for_message(&retrying.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(exists(&scheduled.id, &app.id).await);
    assert!(exists(&recent.id, &app.id).await);
    assert_eq!(log(app.id.clone()).await.total, 2);
    store.delete_app(&app.id).await.unwrap();
    store.delete_app(&quiet.id).await.unwrap();
}

/// `herald stats storage`: every main table with its rows, the database's size, and the
/// oldest message and attempt.
pub async fn storage_stats(store: &dyn Store) {
    let node = format!("node-{}", random_base62(6));
    let app = sample_app(None);
    store.create_app(&app).await.unwrap();
    let mut ep = sample_endpoint(&app.id);
    ep.event_types = None;
    store.create_endpoint(&ep, &secrets(1)).await.unwrap();
    let msg = sample_message(&app.id, "e", None);
    store.create_message(&msg).await.unwrap();
    let at = msg.created_at + Duration::milliseconds(1);
    deliver_all(store, &node, &ep, at, |_| NextStep::Done).await;

    let stats = store.storage_stats().await.unwrap();
    assert!(["sqlite", "postgres"].contains(&stats.engine));
    assert!(stats.database_bytes > 0);
    let names: Vec<_> = stats.tables.iter().map(|t| t.name).collect();
    for table in [
        "messages",
        "deliveries",
        "attempts",
        "applications",
        "endpoints",
    ] {
        let found = stats.tables.iter().find(|t| t.name == table);
        let found = found.unwrap_or_else(|| panic!("{table} missing from {names:?}"));
        assert!(found.rows >= 1, "{found:?}");
        if let Some(bytes) = found.bytes {
            assert!(bytes > 0, "{found:?}");
        }
    }
    assert!(stats.oldest_message.is_some_and(|t| t <= msg.created_at));
    assert!(stats.oldest_attempt.is_some_and(|t| t <= at));
    store.delete_app(&app.id).await.unwrap();
}

/// Operational events are written with the change they report (`crate::outbox`): only while an
/// operational endpoint is enabled, never about the reserved application itself, each under
/// the message id it will be published with, oldest first, and kept until removed.
pub async fn operational_outbox(store: &dyn Store) {
    let pending = |limit| async move { store.pending_operational_events(limit).await.unwrap() };
    let app = sample_app(None);
    store.create_app(&app).await.unwrap();
    let quiet = sample_endpoint(&app.id);
    store.create_endpoint(&quiet, &secrets(1)).await.unwrap();
    // Nobody listens: nothing is written.
    assert!(pending(10).await.is_empty());

    // A listener (its own creation is not reported), then an endpoint's life.
    let op = herald_core::model::operational_app_id();
    let mut listener = sample_endpoint(&op);
    store.create_endpoint(&listener, &secrets(2)).await.unwrap();
    assert!(pending(10).await.is_empty());
    let mut ep = sample_endpoint(&app.id);
    store.create_endpoint(&ep, &secrets(3)).await.unwrap();
    ep.disabled = true;
    store.update_endpoint(&ep).await.unwrap();
    assert!(store.delete_endpoint(&app.id, &ep.id).await.unwrap());
    let events = pending(10).await;
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            crate::outbox::ENDPOINT_CREATED,
            crate::outbox::ENDPOINT_UPDATED,
            crate::outbox::ENDPOINT_DISABLED,
            crate::outbox::ENDPOINT_DELETED
        ]
    );
    for event in &events {
        assert_eq!(event.data["appId"], app.id.as_str());
        assert_eq!(event.data["endpointId"], ep.id.as_str());
    }
    assert_eq!(events[2].data["trigger"], "manual");
    let ids: std::collections::HashSet<_> = events.iter().map(|e| e.msg_id.clone()).collect();
    assert_eq!(ids.len(), 4, "each event has a message id of its own");
    assert_eq!(
        store.pending_operational_events(2).await.unwrap(),
        events[..2]
    );

    // Removed once published; the rest stay.
    store
        .remove_operational_events(&[events[0].id, events[1].id])
        .await
        .unwrap();
    assert_eq!(
        store.pending_operational_events(10).await.unwrap(),
        events[2..]
    );

    // The listener disabled: nothing more is written.
    listener.disabled = true;
    store.update_endpoint(&listener).await.unwrap();
    let other = sample_endpoint(&app.id);
    store.create_endpoint(&other, &secrets(4)).await.unwrap();
    assert_eq!(
        store.pending_operational_events(10).await.unwrap(),
        events[2..]
    );
}
