//! Polling endpoints: a publish stores entries for them instead of tasks, readers read them in
//! commit order, consumers' positions persist.

use std::collections::HashSet;

use chrono::Duration;
use herald_core::id::EndpointId;
use herald_core::model::{EndpointKind, EndpointOptions};

use super::{sample_app, sample_endpoint, sample_message, secrets};
use crate::{PollPosition, Store};

/// A polling endpoint of `app` subscribed to `event_types` (`None`: all), stored.
pub(crate) async fn polling_endpoint(
    store: &dyn Store,
    app: &herald_core::id::AppId,
    event_types: Option<Vec<String>>,
) -> EndpointId {
    let mut endpoint = sample_endpoint(app);
    endpoint.url = String::new();
    endpoint.event_types = event_types;
    endpoint.options = EndpointOptions {
        kind: EndpointKind::Polling,
        ..Default::default()
    };
    store.create_endpoint(&endpoint, &secrets(1)).await.unwrap();
    endpoint.id
}

/// Reads after `from` until at least `count` entries are readable (at most 10 s). On Postgres an
/// entry becomes readable once every transaction older than it has ended, and the suite runs
/// its tests side by side in one database (one of them holds a publish open on purpose), so a
/// read right after a publish may see nothing yet.
pub(crate) async fn read_visible(
    store: &dyn Store,
    endpoint: &EndpointId,
    from: PollPosition,
    count: usize,
) -> Vec<crate::PolledMessage> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let read = store.read_polled(endpoint, from, 100).await.unwrap();
        if read.len() >= count || std::time::Instant::now() > deadline {
            return read;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Entries follow routing, carry the message, come in order after a position, never with a
/// delivery task; consumers' positions are stored and replaced; a seek by time finds the first
/// message after it.
pub async fn polling_endpoints_collect_entries(store: &dyn Store) {
    let app = sample_app(None);
    store.create_app(&app).await.unwrap();
    let orders = polling_endpoint(store, &app.id, Some(vec!["order.*".into()])).await;
    let mut http = sample_endpoint(&app.id);
    http.event_types = None;
    store.create_endpoint(&http, &secrets(2)).await.unwrap();

    let mut published = Vec::new();
    for event_type in [
        "order.created",
        "user.signup",
        "order.paid",
        "order.shipped",
    ] {
        let msg = sample_message(&app.id, event_type, None);
        let matched = store.create_message(&msg).await.unwrap();
        if event_type.starts_with("order.") {
            assert!(matched.contains(&orders), "{matched:?}");
            published.push(msg.id.clone());
        }
        let tasks = store.deliveries_for_message(&msg.id).await.unwrap();
        assert!(
            tasks.iter().all(|d| d.endpoint_id != orders),
            "a polling endpoint never gets a delivery task"
        );
        assert!(tasks.iter().any(|d| d.endpoint_id == http.id));
    }
    let all = read_visible(store, &orders, PollPosition::default(), published.len()).await;
    let ids: Vec<_> = all.iter().map(|p| p.message.id.clone()).collect();
    assert_eq!(ids, published);
    assert_eq!(
        all[0].message.payload.as_deref(),
        Some(r#"{"a": 1,  "b":[true]}"#)
    );
    assert!(all.windows(2).all(|w| w[0].position < w[1].position));
    let rest = store
        .read_polled(&orders, all[0].position, 1)
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].message.id, published[1]);
    assert!(
        store
            .read_polled(&orders, all[2].position, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // An example sent to the polling endpoint lands there too.
    let example = sample_message(&app.id, "user.signup", None);
    store
        .create_message_for_endpoint(&example, &orders)
        .await
        .unwrap();
    let after = read_visible(store, &orders, all[2].position, 1).await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].message.id, example.id);

    // Seeking by time: just before the first message created after it, or the end.
    let second_created = all[1].message.created_at;
    let seek = store
        .poll_position_after(&orders, second_created - Duration::milliseconds(1))
        .await
        .unwrap();
    let from_seek = store.read_polled(&orders, seek, 1).await.unwrap();
    assert_eq!(from_seek[0].message.id, published[1]);
    let end = store
        .poll_position_after(&orders, herald_core::time::now() + Duration::hours(1))
        .await
        .unwrap();
    assert!(
        store
            .read_polled(&orders, end, 10)
            .await
            .unwrap()
            .is_empty()
    );

    assert_eq!(store.poll_cursor(&orders, "a").await.unwrap(), None);
    store
        .set_poll_cursor(&orders, "a", all[0].position)
        .await
        .unwrap();
    store
        .set_poll_cursor(&orders, "b", all[2].position)
        .await
        .unwrap();
    store
        .set_poll_cursor(&orders, "a", all[1].position)
        .await
        .unwrap();
    assert_eq!(
        store.poll_cursor(&orders, "a").await.unwrap(),
        Some(all[1].position)
    );
    assert_eq!(
        store.poll_cursor(&orders, "b").await.unwrap(),
        Some(all[2].position)
    );
    assert_eq!(store.poll_cursor(&http.id, "a").await.unwrap(), None);
}

/// The ordering horizon under load: publishers racing a reader that follows its position; the
/// reader ends up with every message exactly once, each publisher's in its order. A reader that
/// read past a publish still open (its `seq` drawn, its commit to come) would skip it.
pub async fn polls_see_every_entry_once_in_commit_order(store: &dyn Store) {
    const PUBLISHERS: usize = 4;
    const EACH: usize = 40;
    let app = sample_app(None);
    store.create_app(&app).await.unwrap();
    let endpoint = polling_endpoint(store, &app.id, None).await;
    let publish = |p: usize| {
        let app = app.id.clone();
        async move {
            let mut ids = Vec::new();
            for _ in 0..EACH {
                let msg = sample_message(&app, &format!("p{p}.event"), None);
                store.create_message(&msg).await.unwrap();
                ids.push(msg.id);
            }
            ids
        }
    };
    let read = async {
        let mut position = PollPosition::default();
        let mut seen = Vec::new();
        while seen.len() < PUBLISHERS * EACH {
            let page = store.read_polled(&endpoint, position, 7).await.unwrap();
            if page.is_empty() {
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                continue;
            }
            for entry in page {
                assert!(entry.position > position);
                position = entry.position;
                seen.push(entry.message.id);
            }
        }
        seen
    };
    let read = tokio::time::timeout(std::time::Duration::from_secs(30), read);
    let (a, b, c, d, seen) = tokio::join!(publish(0), publish(1), publish(2), publish(3), read);
    let seen = seen.expect("the reader saw every message (none skipped)");
    let distinct: HashSet<_> = seen.iter().collect();
    assert_eq!(distinct.len(), seen.len(), "no message twice");
    for ids in [a, b, c, d] {
        let order: Vec<_> = seen.iter().filter(|id| ids.contains(id)).collect();
        assert_eq!(
            order,
            ids.iter().collect::<Vec<_>>(),
            "each publisher's order kept"
        );
    }
}
