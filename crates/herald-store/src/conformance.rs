//! The behaviour every [`Store`] implementation must have: one check per `pub async fn`, run
//! against each backend as a test of its own ([`conformance_checks!`](crate::conformance_checks)
//! lists them; see `tests/conformance.rs`). A new backend is done when they all pass. Test
//! support only: compiled with the `testing` feature.
//!
//! Each check creates its own rows with fresh ids, so a check can run against a database that
//! already holds data (a shared Postgres test database, for instance).

// Test support: a failed step is a failed check, so unwrapping is the point.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use chrono::Duration;
use herald_core::id::{ApiKeyId, AppId, EndpointId, MessageId};
use herald_core::model::{
    ApiKey, Application, Endpoint, EndpointOptions, EventType, KeyKind, Message, Role,
    SealedEndpointSecrets,
};
use herald_core::page::{Cursor, ListParams, Order};
use herald_core::token::random_base62;

use crate::queue::{AttemptRecord, NextStep, Task, TaskClaim};
use crate::{
    IdempotencyCompletion, IdempotencyState, MessageFilter, QueueStore, Store, StoreError,
    StoredResponse,
};
use chrono::{DateTime, Utc};
use herald_core::id::AttemptId;
use herald_core::model::{DeliveryStatus, Ordering, Trigger};

pub mod batches;
pub mod devices;
pub mod inbox;
pub mod inbox_firebase;
pub mod leases;
pub mod polls;
pub mod routing;
pub mod serials;
pub mod tasks;
pub mod transformations;

/// A dispatcher's one read: the endpoint, its sealed secrets and its application's delivery
/// settings; nothing for an endpoint that is gone.
pub async fn dispatch_target(store: &dyn Store) {
    let mut app = sample_app(None);
    app.rate_limit = Some(7);
    store.create_app(&app).await.unwrap();
    let endpoint = sample_endpoint(&app.id);
    store
        .create_endpoint(&endpoint, &sample_secrets())
        .await
        .unwrap();
    let target = store
        .dispatch_target(&endpoint.id)
        .await
        .unwrap()
        .expect("the endpoint exists");
    assert_eq!(target.endpoint, endpoint);
    assert_eq!(target.secrets, sample_secrets());
    assert_eq!(target.app_rate_limit, Some(7));
    assert_eq!(target.graphql_api, None);

    assert!(store.delete_endpoint(&app.id, &endpoint.id).await.unwrap());
    assert_eq!(store.dispatch_target(&endpoint.id).await.unwrap(), None);
}

/// The dispatch version, where a backend has one, moves after every change a dispatcher
/// reads: the endpoint, its secrets, its application, its deletion, and a result that disables
/// it. A dispatcher that kept what it loaded under an older version reloads.
pub async fn dispatch_version(store: &dyn Store) {
    let Some(mut version) = store.dispatch_version() else {
        return;
    };
    let mut moved = |what: &str| {
        let now = store
            .dispatch_version()
            .expect("a backend with a version keeps it");
        assert_ne!(now, version, "the dispatch version stayed put after {what}");
        version = now;
    };
    let mut app = sample_app(None);
    store.create_app(&app).await.unwrap();
    moved("creating an application");
    let mut endpoint = sample_endpoint(&app.id);
    store
        .create_endpoint(&endpoint, &sample_secrets())
        .await
        .unwrap();
    moved("creating an endpoint");
    endpoint.url = "https://example.com/moved".into();
    store.update_endpoint(&endpoint).await.unwrap();
    moved("changing the endpoint");
    let secrets = store
        .get_endpoint_secrets(&endpoint.id)
        .await
        .unwrap()
        .unwrap();
    assert!(
        store
            .set_endpoint_secrets(&endpoint.id, &secrets)
            .await
            .unwrap()
    );
    moved("rotating its secret");
    app.rate_limit = Some(3);
    store.update_app(&app).await.unwrap();
    moved("changing its application");

    // A result that disables it (410 Gone).
    let msg = sample_message(&app.id, "user.signup", None);
    store.create_message(&msg).await.unwrap();
    let now = herald_core::time::now();
    let lease = now + chrono::Duration::seconds(30);
    store
        .claim_due_endpoints("node", now, lease, 10)
        .await
        .unwrap();
    let (tasks, _) = store
        .claim_tasks("node", &endpoint.id, now, lease, 10, false)
        .await
        .unwrap();
    let records: Vec<_> = tasks
        .iter()
        .map(|t| record(t, &endpoint, NextStep::DisableEndpoint, now))
        .collect();
    let effects = store
        .complete_attempts("node", &records, chrono::Duration::days(5), now)
        .await
        .unwrap();
    assert_eq!(effects.disabled.len(), 1);
    moved("a result that disabled the endpoint");

    assert!(store.delete_endpoint(&app.id, &endpoint.id).await.unwrap());
    moved("deleting the endpoint");
}

/// Claims one endpoint's tasks: [`QueueStore::claim_tasks_of`] with a single claim, as the
/// checks use it (the worker always claims for several endpoints at once). Returns the tasks
/// and the endpoint's queue version (-1 when `node` does not own it).
#[async_trait::async_trait]
pub trait ClaimTasks {
    /// Claims up to `limit` due tasks of `endpoint` for `node`, leased until `lease_until`.
    async fn claim_tasks(
        &self,
        node: &str,
        endpoint: &EndpointId,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
        fifo: bool,
    ) -> crate::Result<(Vec<Task>, i64)>;
}

#[async_trait::async_trait]
impl<S: QueueStore + ?Sized> ClaimTasks for S {
    async fn claim_tasks(
        &self,
        node: &str,
        endpoint: &EndpointId,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
        fifo: bool,
    ) -> crate::Result<(Vec<Task>, i64)> {
        let claim = TaskClaim {
            endpoint: endpoint.clone(),
            lease_until,
            limit,
            fifo,
        };
        let mut claimed = self.claim_tasks_of(node, now, &[claim]).await?;
        Ok(claimed.pop().unwrap_or_default())
    }
}

/// Calls `$callback! { name => check, … }` with every check of the suite, in the order they
/// were written, each an `async fn(&dyn Store)`. A backend's test file expands one test per
/// check from it (see `tests/conformance.rs`), so that each check passes or fails on its own.
#[macro_export]
macro_rules! conformance_checks {
    ($callback:ident) => {
        $callback! {
            settings => $crate::conformance::settings,
            applications => $crate::conformance::applications,
            pagination_survives_inserts => $crate::conformance::pagination_survives_inserts,
            event_types => $crate::conformance::event_types,
            endpoints => $crate::conformance::endpoints,
            endpoint_quota_holds_under_concurrency => $crate::conformance::endpoint_quota_holds_under_concurrency,
            attempts_keep_the_url_they_were_sent_to => $crate::conformance::attempts_keep_the_url_they_were_sent_to,
            messages => $crate::conformance::messages,
            api_keys => $crate::conformance::api_keys,
            idempotency => $crate::conformance::idempotency,
            delivery_queue => $crate::conformance::delivery_queue,
            fifo_and_recovery => $crate::conformance::fifo_and_recovery,
            dispatch_target => $crate::conformance::dispatch_target,
            dispatch_version => $crate::conformance::dispatch_version,
            fan_out_follows_patterns_channels_and_filters => $crate::conformance::routing::fan_out_follows_patterns_channels_and_filters,
            examples_go_to_one_endpoint => $crate::conformance::routing::examples_go_to_one_endpoint,
            graphql_api_is_stored_sealed_and_resealed => $crate::conformance::routing::graphql_api_is_stored_sealed_and_resealed,
            devices => $crate::conformance::devices::devices,
            operational_app_is_hidden => $crate::conformance::logs::operational_app_is_hidden,
            logs_and_stats => $crate::conformance::logs::logs_and_stats,
            completion_effects => $crate::conformance::logs::completion_effects,
            retention => $crate::conformance::logs::retention,
            log_retention => $crate::conformance::logs::log_retention,
            storage_stats => $crate::conformance::logs::storage_stats,
            operational_outbox => $crate::conformance::logs::operational_outbox,
            attempts_by_day => $crate::conformance::logs::attempts_by_day,
            metrics => $crate::conformance::logs::metrics,
            concurrent_claims_do_not_overlap => $crate::conformance::concurrent_claims_do_not_overlap,
            publishes_racing_releases_are_never_stranded => $crate::conformance::publishes_racing_releases_are_never_stranded,
            concurrent_publishes_fail_alone => $crate::conformance::batches::concurrent_publishes_fail_alone,
            claims_of_several_endpoints => $crate::conformance::batches::claims_of_several_endpoints,
            lapsed_leases_make_tasks_due_again => $crate::conformance::leases::lapsed_leases_make_tasks_due_again,
            scheduled_messages_wait_in_the_queue => $crate::conformance::leases::scheduled_messages_wait_in_the_queue,
            results_in_bulk => $crate::conformance::batches::results_in_bulk,
            background_tasks_are_leased_and_resumed => $crate::conformance::tasks::background_tasks_are_leased_and_resumed,
            replay_batches_commit_with_their_progress => $crate::conformance::tasks::replay_batches_commit_with_their_progress,
            integrations_keep_their_key_in_step => $crate::conformance::tasks::integrations_keep_their_key_in_step,
            inbox_records => $crate::conformance::inbox::inbox_records,
            post_put_and_patch_build_the_tree => $crate::conformance::inbox::post_put_and_patch_build_the_tree,
            tree_reads_select_children_by_key => $crate::conformance::inbox::tree_reads_select_children_by_key,
            entries_list_with_filters_and_paging => $crate::conformance::inbox::entries_list_with_filters_and_paging,
            forwarding_commits_with_the_write => $crate::conformance::inbox::forwarding_commits_with_the_write,
            verification_secrets_are_resealed => $crate::conformance::inbox::verification_secrets_are_resealed,
            a_replayed_signed_request_is_refused => $crate::conformance::inbox::a_replayed_signed_request_is_refused,
            public_write_is_kept => $crate::conformance::inbox_firebase::public_write_is_kept,
            deletions_and_shallow_reads => $crate::conformance::inbox_firebase::deletions_and_shallow_reads,
            serials_and_seed_fields => $crate::conformance::serials::serials_and_seed_fields,
            transformations_are_stored_sealed_and_resealed => $crate::conformance::transformations::transformations_are_stored_sealed_and_resealed,
            a_canceled_delivery_ends_alone => $crate::conformance::transformations::a_canceled_delivery_ends_alone,
            polling_endpoints_collect_entries => $crate::conformance::polls::polling_endpoints_collect_entries,
            polls_see_every_entry_once_in_commit_order => $crate::conformance::polls::polls_see_every_entry_once_in_commit_order,
        }
    };
}

pub mod logs;

/// A fresh application (new id, `uid` as given, one metadata pair), not yet stored.
pub fn sample_app(uid: Option<String>) -> Application {
    let now = herald_core::time::now();
    Application {
        id: AppId::generate(),
        uid,
        name: "Sample".into(),
        rate_limit: None,
        metadata: BTreeMap::from([("tier".into(), "gold".into())]),
        graphql_api: None,
        org_id: None,
        created_at: now,
        updated_at: now,
    }
}

/// A serial no other sample of this process or an earlier run has: samples are made without
/// the store, and endpoint serials are unique in the database, which tests may share.
pub fn sample_serial() -> i64 {
    use std::sync::atomic::{AtomicI64, Ordering};
    static NEXT: AtomicI64 = AtomicI64::new(0);
    let base = herald_core::time::now().timestamp_micros() * 1000;
    let _ = NEXT.compare_exchange(0, base, Ordering::SeqCst, Ordering::SeqCst);
    NEXT.fetch_add(1, Ordering::SeqCst)
}

/// A fresh endpoint of `app`, not yet stored: enabled, subscribed to `user.signup` only,
/// rate-limited to 5 a second, no uid, no channels.
pub fn sample_endpoint(app: &AppId) -> Endpoint {
    let now = herald_core::time::now();
    Endpoint {
        id: EndpointId::generate(),
        app_id: app.clone(),
        uid: None,
        serial: sample_serial(),
        name: None,
        url: "https://example.com/hook".into(),
        url_version: 0,
        description: String::new(),
        event_types: Some(vec!["user.signup".into()]),
        channels: None,
        disabled: false,
        rate_limit: Some(5),
        metadata: BTreeMap::new(),
        options: EndpointOptions::default(),
        created_at: now,
        updated_at: now,
    }
}

/// A fresh message of `app`, not yet stored: created at its id's time, with a JSON payload
/// kept for 90 days and no `eventId`.
pub fn sample_message(app: &AppId, event_type: &str, channels: Option<Vec<String>>) -> Message {
    let id = MessageId::generate();
    let at = id.timestamp().expect("fresh ids carry their time");
    Message {
        id,
        app_id: app.clone(),
        serial: sample_serial(),
        event_type: event_type.into(),
        event_id: None,
        channels,
        payload: Some(r#"{"a": 1,  "b":[true]}"#.into()),
        created_at: at,
        payload_expires_at: at + Duration::days(90),
        deliver_at: None,
        tags: None,
    }
}

/// Sealed secrets of an endpoint (opaque bytes: the store never opens them).
pub fn sample_secrets() -> SealedEndpointSecrets {
    secrets(1)
}

pub(crate) fn secrets(tag: u8) -> SealedEndpointSecrets {
    SealedEndpointSecrets {
        secret: vec![tag; 40],
        previous: None,
        headers: Some(vec![tag, 1, 2]),
        credentials: Some(vec![tag, 3]),
        version: 0,
    }
}

/// Settings: `insert_setting` stores only a new key, `set_setting` overwrites.
pub async fn settings(store: &dyn Store) {
    let key = format!("test.{}", random_base62(8));
    assert_eq!(store.get_setting(&key).await.unwrap(), None);
    assert!(store.insert_setting(&key, "one").await.unwrap());
    assert!(!store.insert_setting(&key, "two").await.unwrap());
    assert_eq!(
        store.get_setting(&key).await.unwrap().as_deref(),
        Some("one")
    );
}

/// Applications: found by id or uid (an id wins over a uid spelling it), uid conflicts,
/// updates (`NotFound` once deleted), app-scoped listing, and deletion.
pub async fn applications(store: &dyn Store) {
    let uid = format!("uid-{}", random_base62(10));
    let app = sample_app(Some(uid.clone()));
    store.create_app(&app).await.unwrap();
    assert_eq!(
        store.get_app(app.id.as_str()).await.unwrap().as_ref(),
        Some(&app)
    );
    assert_eq!(store.get_app(&uid).await.unwrap().as_ref(), Some(&app));
    assert!(store.get_app("app_missing").await.unwrap().is_none());

    let clash = sample_app(Some(uid.clone()));
    assert!(matches!(
        store.create_app(&clash).await,
        Err(StoreError::Conflict(_))
    ));

    // An id wins over a uid that happens to spell another application's id.
    let tricky = sample_app(Some(app.id.as_str().to_owned()));
    store.create_app(&tricky).await.unwrap();
    assert_eq!(
        store.get_app(app.id.as_str()).await.unwrap().unwrap().id,
        app.id
    );

    let mut changed = app.clone();
    changed.name = "Renamed".into();
    changed.rate_limit = Some(100);
    changed.uid = None;
    store.update_app(&changed).await.unwrap();
    assert_eq!(
        store.get_app(app.id.as_str()).await.unwrap(),
        Some(changed.clone())
    );
    assert!(store.get_app(&uid).await.unwrap().is_none());

    let listed = store
        .list_apps(&ListParams::first(10, Order::Ascending), Some(&app.id))
        .await
        .unwrap();
    assert_eq!(listed.items, vec![changed]);
    assert!(listed.done());

    assert!(store.delete_app(&app.id).await.unwrap());
    assert!(!store.delete_app(&app.id).await.unwrap());
    assert!(matches!(
        store.update_app(&app).await,
        Err(StoreError::NotFound)
    ));
    store.delete_app(&tricky.id).await.unwrap();
}

/// Walks 600 endpoints page by page in both orders, inserting new endpoints between pages:
/// every original item is seen exactly once.
pub async fn pagination_survives_inserts(store: &dyn Store) {
    let app = sample_app(None);
    store.create_app(&app).await.unwrap();
    let mut originals = Vec::new();
    for _ in 0..600 {
        let ep = sample_endpoint(&app.id);
        store.create_endpoint(&ep, &secrets(1)).await.unwrap();
        originals.push(ep.id);
    }
    for order in [Order::Ascending, Order::Descending] {
        let mut seen = Vec::new();
        let mut params = ListParams::first(50, order);
        loop {
            let page = store.list_endpoints(&app.id, &params).await.unwrap();
            seen.extend(page.items.iter().map(|e| e.id.clone()));
            // Newcomers between pages.
            for _ in 0..3 {
                store
                    .create_endpoint(&sample_endpoint(&app.id), &secrets(1))
                    .await
                    .unwrap();
            }
            if page.done() {
                break;
            }
            let last = page
                .items
                .last()
                .expect("a page that is not done has items");
            params.cursor = Some(Cursor {
                key: last.id.as_str().to_owned(),
                backwards: false,
            });
        }
        let mut sorted = seen.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), seen.len(), "{order:?}: an item was repeated");
        for id in &originals {
            assert!(seen.contains(id), "{order:?}: {id} was skipped");
        }
        let mut expected = seen.clone();
        expected.sort();
        if order == Order::Descending {
            expected.reverse();
        }
        assert_eq!(seen, expected, "{order:?}: pages out of order");
    }

    // Going back from the second page gives the first page again.
    let first = store
        .list_endpoints(&app.id, &ListParams::first(50, Order::Ascending))
        .await
        .unwrap();
    let second = store
        .list_endpoints(
            &app.id,
            &ListParams {
                limit: 50,
                cursor: Some(Cursor::after(first.items.last().unwrap().id.as_str())),
                order: Order::Ascending,
            },
        )
        .await
        .unwrap();
    let back = store
        .list_endpoints(
            &app.id,
            &ListParams {
                limit: 50,
                cursor: Some(Cursor::before(second.items[0].id.as_str())),
                order: Order::Ascending,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        back.items.iter().map(|e| &e.id).collect::<Vec<_>>(),
        first.items.iter().map(|e| &e.id).collect::<Vec<_>>()
    );
    assert!(!back.done());
    // 600 originals plus 3 newcomers per page read (13 pages each way).
    let count = store.count_endpoints(&app.id).await.unwrap();
    assert!(count > 600, "{count}");
    store.delete_app(&app.id).await.unwrap();
    assert_eq!(store.count_endpoints(&app.id).await.unwrap(), 0);
}

/// Event types: name conflicts, reads, archiving (archived ones listed only when asked for),
/// and deletion.
pub async fn event_types(store: &dyn Store) {
    let now = herald_core::time::now();
    let name = format!("test.{}", random_base62(8));
    let mut et = EventType {
        name: name.clone(),
        description: "A test happened".into(),
        archived: false,
        deprecated: false,
        feature_flags: Some(vec!["beta".into(), "lab".into()]),
        group_name: Some("tests".into()),
        schemas: Some(serde_json::json!({"1": {"type": "object"}})),
        created_at: now,
        updated_at: now,
    };
    store.create_event_type(&et).await.unwrap();
    assert!(matches!(
        store.create_event_type(&et).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.get_event_type(&name).await.unwrap(), Some(et.clone()));

    et.archived = true;
    et.feature_flags = None;
    et.group_name = Some("others".into());
    store.update_event_type(&et).await.unwrap();
    assert_eq!(store.get_event_type(&name).await.unwrap(), Some(et.clone()));
    let visible =
        |page: &herald_core::page::Page<EventType>| page.items.iter().any(|e| e.name == name);
    let mut params = ListParams::first(250, Order::Ascending);
    params.cursor = Some(Cursor {
        key: format!("{name}-"),
        backwards: true,
    });
    assert!(!visible(
        &store.list_event_types(&params, false).await.unwrap()
    ));
    assert!(visible(
        &store.list_event_types(&params, true).await.unwrap()
    ));

    assert!(store.delete_event_type(&name).await.unwrap());
    assert!(store.get_event_type(&name).await.unwrap().is_none());
}

/// An attempt names the URL it was sent to, which it keeps after the endpoint's URL changes;
/// an update that keeps the URL keeps its version.
pub async fn attempts_keep_the_url_they_were_sent_to(store: &dyn Store) {
    let node = format!("node-{}", random_base62(6));
    let app = sample_app(None);
    store.create_app(&app).await.unwrap();
    let mut ep = sample_endpoint(&app.id);
    ep.url = "https://first.example/hook".into();
    store.create_endpoint(&ep, &secrets(1)).await.unwrap();
    let deliver = |ep: Endpoint| {
        let node = node.clone();
        async move {
            let msg = sample_message(&ep.app_id, "user.signup", None);
            store.create_message(&msg).await.unwrap();
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
            assert_eq!(tasks.len(), 1);
            let done = record(&tasks[0], &ep, NextStep::Done, now);
            store
                .complete_attempts(&node, &[done], Duration::days(5), now)
                .await
                .unwrap();
            store
                .release_endpoint(&node, &ep.id, version, false, now)
                .await
                .unwrap();
            msg.id
        }
    };
    let ep = store.get_endpoint_by_id(&ep.id).await.unwrap().unwrap();
    assert_eq!(ep.url_version, 0);
    let first = deliver(ep.clone()).await;
    let mut moved = ep.clone();
    moved.url = "https://second.example/hook".into();
    store.update_endpoint(&moved).await.unwrap();
    let moved = store.get_endpoint_by_id(&ep.id).await.unwrap().unwrap();
    assert_eq!(moved.url_version, 1);
    let second = deliver(moved.clone()).await;
    let mut described = moved.clone();
    described.description = "same URL".into();
    store.update_endpoint(&described).await.unwrap();
    let described = store.get_endpoint_by_id(&ep.id).await.unwrap().unwrap();
    assert_eq!(described.url_version, 1);

    let url_of = |msg: MessageId| async move {
        store.attempts_for_message(&msg).await.unwrap()[0]
            .url
            .clone()
    };
    assert_eq!(url_of(first).await, "https://first.example/hook");
    assert_eq!(url_of(second).await, "https://second.example/hook");
    let filter = crate::AttemptFilter {
        endpoint: Some(ep.id.clone()),
        ..Default::default()
    };
    let listed = store
        .list_attempts(&app.id, &filter, &ListParams::first(10, Order::Descending))
        .await
        .unwrap();
    let urls: Vec<&str> = listed.items.iter().map(|a| a.url.as_str()).collect();
    assert_eq!(
        urls,
        ["https://second.example/hook", "https://first.example/hook"]
    );
    store.delete_app(&app.id).await.unwrap();
}

/// Fifty creates at once against a limit of eight leave eight: the count is taken inside each
/// insert's transaction, serialised per application.
pub async fn endpoint_quota_holds_under_concurrency(store: &dyn Store) {
    let app = sample_app(None);
    store.create_app(&app).await.unwrap();
    let other = sample_app(None);
    store.create_app(&other).await.unwrap();
    let creates = (0..50).map(|i| {
        // Another application's creates run alongside and count for it alone.
        let app = if i % 10 == 9 { &other } else { &app };
        let ep = sample_endpoint(&app.id);
        async move { store.create_endpoint_within(&ep, &secrets(1), 8).await }
    });
    let outcomes = futures::future::join_all(creates).await;
    let created = outcomes.iter().filter(|o| matches!(o, Ok(true))).count();
    assert!(outcomes.iter().all(|o| o.is_ok()), "{outcomes:?}");
    assert_eq!(store.count_endpoints(&app.id).await.unwrap(), 8);
    assert_eq!(store.count_endpoints(&other.id).await.unwrap(), 5);
    assert_eq!(created, 13);
    store.delete_app(&app.id).await.unwrap();
    store.delete_app(&other.id).await.unwrap();
}

/// Endpoints: scoped to their application, uids unique per application, versioned secret
/// rotation that refuses a stale version, URL versions, re-sealing, and deletion with the
/// application.
pub async fn endpoints(store: &dyn Store) {
    let app = sample_app(None);
    store.create_app(&app).await.unwrap();
    let other = sample_app(None);
    store.create_app(&other).await.unwrap();

    let mut ep = sample_endpoint(&app.id);
    ep.uid = Some("primary".into());
    ep.channels = Some(vec!["team:qa".into(), "group.a".into()]);
    store.create_endpoint(&ep, &secrets(7)).await.unwrap();
    assert_eq!(
        store.get_endpoint(&app.id, ep.id.as_str()).await.unwrap(),
        Some(ep.clone())
    );
    assert_eq!(
        store.get_endpoint(&app.id, "primary").await.unwrap(),
        Some(ep.clone())
    );
    // Scoped to the application.
    assert!(
        store
            .get_endpoint(&other.id, ep.id.as_str())
            .await
            .unwrap()
            .is_none()
    );
    assert!(!store.delete_endpoint(&other.id, &ep.id).await.unwrap());

    // uids are unique per application only.
    let mut same_uid = sample_endpoint(&app.id);
    same_uid.uid = Some("primary".into());
    assert!(matches!(
        store.create_endpoint(&same_uid, &secrets(1)).await,
        Err(StoreError::Conflict(_))
    ));
    let mut elsewhere = sample_endpoint(&other.id);
    elsewhere.uid = Some("primary".into());
    store
        .create_endpoint(&elsewhere, &secrets(1))
        .await
        .unwrap();

    let stored = store.get_endpoint_secrets(&ep.id).await.unwrap().unwrap();
    assert_eq!(stored, secrets(7));
    let rotated = SealedEndpointSecrets {
        secret: vec![9; 40],
        previous: Some(vec![7; 40]),
        headers: None,
        credentials: Some(vec![9, 4, 4]),
        version: stored.version,
    };
    assert!(store.set_endpoint_secrets(&ep.id, &rotated).await.unwrap());
    let now_stored = store.get_endpoint_secrets(&ep.id).await.unwrap().unwrap();
    assert_eq!(now_stored.secret, rotated.secret);
    assert_eq!(now_stored.credentials, rotated.credentials);
    assert_eq!(now_stored.version, stored.version + 1);
    // A change based on the old version is refused: it would undo the rotation.
    assert!(
        !store
            .set_endpoint_secrets(&ep.id, &secrets(3))
            .await
            .unwrap()
    );
    assert_eq!(
        store.get_endpoint_secrets(&ep.id).await.unwrap(),
        Some(now_stored)
    );

    ep.disabled = true;
    ep.event_types = None;
    ep.url = "https://example.org/other".into();
    store.update_endpoint(&ep).await.unwrap();
    // A new URL is a new version of it (the store counts them).
    ep.url_version += 1;
    assert_eq!(
        store.get_endpoint(&app.id, "primary").await.unwrap(),
        Some(ep.clone())
    );

    // Resealing passes every sealed value through the function, in one go.
    let flipped = |v: &[u8]| -> Result<Option<Vec<u8>>, String> {
        Ok((v.first() == Some(&9)).then(|| v.iter().map(|b| b ^ 0xff).collect()))
    };
    assert!(store.reseal_all(&flipped).await.unwrap() >= 1);
    let resealed = store.get_endpoint_secrets(&ep.id).await.unwrap().unwrap();
    assert_eq!(resealed.secret, vec![9 ^ 0xff; 40]);
    assert_eq!(
        resealed.credentials,
        Some(vec![9 ^ 0xff, 4 ^ 0xff, 4 ^ 0xff])
    );
    let failing = |_: &[u8]| -> Result<Option<Vec<u8>>, String> { Err("no key".into()) };
    assert!(matches!(
        store.reseal_all(&failing).await,
        Err(StoreError::Corrupt(_))
    ));
    assert_eq!(
        store
            .get_endpoint_secrets(&ep.id)
            .await
            .unwrap()
            .unwrap()
            .secret,
        resealed.secret
    );

    // Deleting the application takes its endpoints with it.
    store.delete_app(&app.id).await.unwrap();
    assert!(store.get_endpoint_secrets(&ep.id).await.unwrap().is_none());
    store.delete_app(&other.id).await.unwrap();
}

/// Messages: an `eventId` used twice is a `Conflict` that stores nothing, lookup by
/// `eventId`, and the list's filters (event types, exact and case-sensitive channels, times).
pub async fn messages(store: &dyn Store) {
    let app = sample_app(None);
    store.create_app(&app).await.unwrap();

    let mut with_event_id =
        sample_message(&app.id, "user.signup", Some(vec!["a".into(), "b".into()]));
    with_event_id.event_id = Some("evt-1".into());
    store.create_message(&with_event_id).await.unwrap();
    assert_eq!(
        store.get_message(&app.id, &with_event_id.id).await.unwrap(),
        Some(with_event_id.clone())
    );
    let mut duplicate = sample_message(&app.id, "user.signup", None);
    duplicate.event_id = Some("evt-1".into());
    assert!(matches!(
        store.create_message(&duplicate).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(
        store
            .get_message(&app.id, &duplicate.id)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store
            .get_message_by_event_id(&app.id, "evt-1")
            .await
            .unwrap()
            .map(|m| m.id),
        Some(with_event_id.id.clone())
    );

    let other_type = sample_message(&app.id, "user.deleted", Some(vec!["ab".into()]));
    store.create_message(&other_type).await.unwrap();
    let plain = sample_message(&app.id, "user.signup", None);
    store.create_message(&plain).await.unwrap();

    let list = |filter: MessageFilter| {
        let app = app.id.clone();
        async move {
            store
                .list_messages(&app, &filter, &ListParams::first(50, Order::Descending))
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|m| m.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        list(MessageFilter::default()).await,
        vec![
            plain.id.clone(),
            other_type.id.clone(),
            with_event_id.id.clone()
        ]
    );
    assert_eq!(
        list(MessageFilter {
            event_types: vec!["user.deleted".into()],
            ..Default::default()
        })
        .await,
        vec![other_type.id.clone()]
    );
    assert_eq!(
        list(MessageFilter {
            channel: Some("a".into()),
            ..Default::default()
        })
        .await,
        vec![with_event_id.id.clone()]
    );
    assert!(
        !list(MessageFilter {
            before: Some(other_type.created_at),
            ..Default::default()
        })
        .await
        .contains(&other_type.id)
    );
    // `_` in a channel name is matched literally.
    let underscored = sample_message(&app.id, "user.signup", Some(vec!["a_b".into()]));
    store.create_message(&underscored).await.unwrap();
    let lookalike = sample_message(&app.id, "user.signup", Some(vec!["axb".into()]));
    store.create_message(&lookalike).await.unwrap();
    assert_eq!(
        list(MessageFilter {
            channel: Some("a_b".into()),
            ..Default::default()
        })
        .await,
        vec![underscored.id.clone()]
    );
    // Channels match exactly, as routing compares them: case counts.
    let upper = sample_message(&app.id, "user.signup", Some(vec!["Upper".into()]));
    store.create_message(&upper).await.unwrap();
    assert!(
        list(MessageFilter {
            channel: Some("upper".into()),
            ..Default::default()
        })
        .await
        .is_empty()
    );
    assert_eq!(
        list(MessageFilter {
            channel: Some("Upper".into()),
            ..Default::default()
        })
        .await,
        vec![upper.id.clone()]
    );
    assert!(
        list(MessageFilter {
            after: Some(with_event_id.created_at - Duration::milliseconds(1)),
            ..Default::default()
        })
        .await
        .contains(&with_event_id.id)
    );
    store.delete_app(&app.id).await.unwrap();
}

/// API keys: every kind listed, expired ones purged, sessions deleted with the key they were
/// minted from, and an application's portal tokens expired later or at once.
pub async fn api_keys(store: &dyn Store) {
    let app = sample_app(None);
    store.create_app(&app).await.unwrap();
    let now = herald_core::time::now();
    let key = ApiKey {
        id: ApiKeyId::generate(),
        name: "ci".into(),
        role: Role::App,
        kind: KeyKind::Api,
        app_id: Some(app.id.clone()),
        secret_hash: vec![1, 2, 3],
        created_at: now,
        expires_at: None,
        parent_id: None,
        feature_flags: Vec::new(),
    };
    store.create_api_key(&key).await.unwrap();
    let portal = ApiKey {
        id: ApiKeyId::generate(),
        kind: KeyKind::Portal,
        expires_at: Some(now - Duration::seconds(1)),
        feature_flags: vec!["beta".into(), "lab".into()],
        ..key.clone()
    };
    store.create_api_key(&portal).await.unwrap();
    assert_eq!(
        store.get_api_key(&portal.id).await.unwrap(),
        Some(portal.clone()),
        "a portal token keeps its feature flags"
    );
    assert_eq!(store.get_api_key(&key.id).await.unwrap(), Some(key.clone()));
    // Every kind of key is listed.
    let listed = store
        .list_api_keys(&ListParams::first(250, Order::Descending))
        .await
        .unwrap();
    assert!(listed.items.contains(&key));
    assert!(listed.items.contains(&portal));
    assert!(store.purge_expired_api_keys(now).await.unwrap() >= 1);
    assert!(store.get_api_key(&portal.id).await.unwrap().is_none());

    // A session minted from a key ends with it.
    let admin = ApiKey {
        id: ApiKeyId::generate(),
        role: Role::Admin,
        app_id: None,
        ..key.clone()
    };
    store.create_api_key(&admin).await.unwrap();
    let session = ApiKey {
        id: ApiKeyId::generate(),
        kind: KeyKind::Portal,
        expires_at: Some(now + Duration::hours(12)),
        parent_id: Some(admin.id.clone()),
        ..admin.clone()
    };
    store.create_api_key(&session).await.unwrap();
    assert_eq!(
        store.get_api_key(&session.id).await.unwrap(),
        Some(session.clone())
    );
    assert!(store.delete_api_key(&admin.id).await.unwrap());
    assert!(store.get_api_key(&session.id).await.unwrap().is_none());

    // Expiring an application's portal tokens: later, or at once.
    let token = |expires_in: i64| ApiKey {
        id: ApiKeyId::generate(),
        kind: KeyKind::Portal,
        expires_at: Some(now + Duration::seconds(expires_in)),
        ..key.clone()
    };
    let (long, short) = (token(86_400), token(30));
    store.create_api_key(&long).await.unwrap();
    store.create_api_key(&short).await.unwrap();
    let soon = now + Duration::seconds(60);
    assert_eq!(
        store.expire_portal_keys(&app.id, soon, now).await.unwrap(),
        1
    );
    let expiry =
        |id: ApiKeyId| async move { store.get_api_key(&id).await.unwrap().map(|k| k.expires_at) };
    assert_eq!(expiry(long.id.clone()).await, Some(Some(soon)));
    assert_eq!(expiry(short.id.clone()).await, Some(short.expires_at));
    assert_eq!(
        store.expire_portal_keys(&app.id, now, now).await.unwrap(),
        2
    );
    assert_eq!(expiry(long.id.clone()).await, None);
    // API keys of the application are not portal tokens.
    assert!(store.get_api_key(&key.id).await.unwrap().is_some());
    assert!(store.delete_api_key(&key.id).await.unwrap());
    assert!(store.get_api_key(&key.id).await.unwrap().is_none());
    store.delete_app(&app.id).await.unwrap();
}

/// `Idempotency-Key` claims: one holder per key, fingerprint mismatches, only the holder
/// recording or releasing, takeover of abandoned claims, expiry and purge.
pub async fn idempotency(store: &dyn Store) {
    let scope = format!("scope-{}", random_base62(6));
    let now = herald_core::time::now();
    let day_ago = now - Duration::hours(24);
    let minute_ago = now - Duration::minutes(1);
    // Each request claims with a token of its own.
    let begin = |key: &'static str, claim: &'static str, fp: &'static [u8]| {
        let scope = scope.clone();
        async move {
            store
                .idempotency_begin(&scope, key, claim, fp, now, day_ago, minute_ago)
                .await
                .unwrap()
        }
    };
    assert_eq!(begin("k1", "a", b"fp").await, IdempotencyState::Started);
    assert_eq!(begin("k1", "b", b"fp").await, IdempotencyState::InProgress);
    assert_eq!(begin("k1", "c", b"other").await, IdempotencyState::Mismatch);
    let response = StoredResponse {
        status: 201,
        body: b"{\"id\":1}".to_vec(),
    };
    // Only the request holding the claim records its answer.
    let other = StoredResponse {
        status: 500,
        body: Vec::new(),
    };
    store
        .idempotency_complete(&scope, "k1", "b", &other)
        .await
        .unwrap();
    store
        .idempotency_complete(&scope, "k1", "a", &response)
        .await
        .unwrap();
    store
        .idempotency_complete(&scope, "k1", "a", &other)
        .await
        .unwrap();
    assert_eq!(
        begin("k1", "d", b"fp").await,
        IdempotencyState::Completed(response)
    );

    assert_eq!(begin("k2", "a", b"fp").await, IdempotencyState::Started);
    store.idempotency_abandon(&scope, "k2", "b").await.unwrap();
    assert_eq!(begin("k2", "c", b"fp").await, IdempotencyState::InProgress);
    store.idempotency_abandon(&scope, "k2", "a").await.unwrap();
    assert_eq!(begin("k2", "d", b"fp").await, IdempotencyState::Started);

    // A claim left unfinished (its request died) is taken over after a while; a finished
    // one is kept. The request that lost its claim can no longer record or release anything.
    assert_eq!(begin("k3", "a", b"fp").await, IdempotencyState::Started);
    let soon = now + Duration::minutes(2);
    let takeover = |key: &'static str, claim: &'static str| {
        let scope = scope.clone();
        async move {
            store
                .idempotency_begin(
                    &scope,
                    key,
                    claim,
                    b"fp",
                    soon,
                    soon - Duration::hours(24),
                    soon - Duration::minutes(1),
                )
                .await
                .unwrap()
        }
    };
    assert_eq!(takeover("k3", "b").await, IdempotencyState::Started);
    store
        .idempotency_complete(&scope, "k3", "a", &other)
        .await
        .unwrap();
    store.idempotency_abandon(&scope, "k3", "a").await.unwrap();
    assert_eq!(takeover("k3", "c").await, IdempotencyState::InProgress);
    assert!(matches!(
        takeover("k1", "e").await,
        IdempotencyState::Completed(_)
    ));

    // Past the window a key is fresh again.
    let later = now + Duration::hours(25);
    assert_eq!(
        store
            .idempotency_begin(
                &scope,
                "k1",
                "f",
                b"fp",
                later,
                later - Duration::hours(24),
                later - Duration::minutes(1)
            )
            .await
            .unwrap(),
        IdempotencyState::Started
    );
    assert!(store.purge_idempotency(later).await.unwrap() >= 1);

    idempotent_publishes(store, &scope).await;
}

/// A message create's key is completed by the publish's own transaction: committed with the
/// message, or not at all (so that a retry of a publish whose answer was lost is replayed if
/// it was stored, and run if it was not). A publish whose claim is gone publishes nothing.
async fn idempotent_publishes(store: &dyn Store, scope: &str) {
    let now = herald_core::time::now();
    let begin = |key: &'static str, claim: &'static str| async move {
        store
            .idempotency_begin(
                scope,
                key,
                claim,
                b"fp",
                now,
                now - Duration::hours(24),
                now - Duration::minutes(1),
            )
            .await
            .unwrap()
    };
    let app = sample_app(None);
    store.create_app(&app).await.unwrap();
    let answer = |key: &str, claim: &str, body: &[u8]| IdempotencyCompletion {
        scope: scope.to_owned(),
        key: key.to_owned(),
        claim: claim.to_owned(),
        response: StoredResponse {
            status: 202,
            body: body.to_vec(),
        },
    };
    let stored = |msg: Message| async move {
        store
            .get_message(&msg.app_id, &msg.id)
            .await
            .unwrap()
            .is_some()
    };

    assert_eq!(begin("publish-1", "a").await, IdempotencyState::Started);
    let mut msg = sample_message(&app.id, "user.signup", None);
    msg.event_id = Some("once".into());
    store
        .create_message_idempotent(&msg, &answer("publish-1", "a", b"first"))
        .await
        .unwrap();
    // What a 5xx answer does afterwards: it must not undo the committed answer.
    store
        .idempotency_abandon(scope, "publish-1", "a")
        .await
        .unwrap();
    assert_eq!(
        begin("publish-1", "b").await,
        IdempotencyState::Completed(answer("publish-1", "a", b"first").response)
    );

    // A publish that fails stores neither the message nor the answer.
    assert_eq!(begin("publish-2", "a").await, IdempotencyState::Started);
    let mut again = sample_message(&app.id, "user.signup", None);
    again.event_id = Some("once".into());
    assert!(matches!(
        store
            .create_message_idempotent(&again, &answer("publish-2", "a", b"second"))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(!stored(again.clone()).await);
    assert_eq!(begin("publish-2", "b").await, IdempotencyState::InProgress);
    store
        .idempotency_abandon(scope, "publish-2", "a")
        .await
        .unwrap();

    // A request that was dropped (its claim released) or taken over publishes nothing: the
    // retry that holds the key does.
    assert_eq!(begin("publish-2", "c").await, IdempotencyState::Started);
    let late = sample_message(&app.id, "user.signup", None);
    assert!(matches!(
        store
            .create_message_idempotent(&late, &answer("publish-2", "a", b"late"))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(!stored(late).await);
    let retry = sample_message(&app.id, "user.signup", None);
    store
        .create_message_idempotent(&retry, &answer("publish-2", "c", b"retry"))
        .await
        .unwrap();
    assert!(stored(retry).await);
    store
        .idempotency_abandon(scope, "publish-2", "c")
        .await
        .unwrap();
    assert!(matches!(
        store
            .idempotency_begin(scope, "publish-3", "a", b"fp", now, now, now)
            .await
            .unwrap(),
        IdempotencyState::Started
    ));
    store
        .idempotency_abandon(scope, "publish-3", "a")
        .await
        .unwrap();
    let dropped = sample_message(&app.id, "user.signup", None);
    assert!(
        store
            .create_message_idempotent(&dropped, &answer("publish-3", "a", b"dropped"))
            .await
            .is_err()
    );
    assert!(!stored(dropped).await);
    store.delete_app(&app.id).await.unwrap();
}

pub(crate) fn record(
    task: &crate::Task,
    endpoint: &Endpoint,
    next: NextStep,
    at: chrono::DateTime<chrono::Utc>,
) -> AttemptRecord {
    AttemptRecord {
        id: AttemptId::generate(),
        delivery_id: task.delivery_id,
        msg_id: task.msg_id.clone(),
        endpoint_id: endpoint.id.clone(),
        app_id: endpoint.app_id.clone(),
        url: endpoint.url.clone(),
        url_version: Some(endpoint.url_version),
        status_code: if next == NextStep::Done { 200 } else { 500 },
        response: "ok".into(),
        duration_ms: 3,
        trigger: if task.manual {
            Trigger::Manual
        } else {
            Trigger::Scheduled
        },
        error: None,
        request_headers: Some(r#"{"webhook-id":"x"}"#.into()),
        request_body: Some("sent".into()),
        started_at: at,
        next,
    }
}

async fn status_of(
    store: &dyn Store,
    msg: &MessageId,
    endpoint: &EndpointId,
) -> Option<DeliveryStatus> {
    store
        .deliveries_for_message(msg)
        .await
        .unwrap()
        .into_iter()
        .find(|d| &d.endpoint_id == endpoint)
        .map(|d| d.status)
}

/// The delivery queue end to end: fan-out, endpoint and task claims, retries and releases,
/// lost leases, 410 Gone, recovery and resends, disabling, shutdown and restart.
pub async fn delivery_queue(store: &dyn Store) {
    let node = format!("node-{}", random_base62(6));
    let other_node = format!("node-{}", random_base62(6));
    let day = Duration::days(1);
    let app = sample_app(None);
    store.create_app(&app).await.unwrap();
    let mut typed = sample_endpoint(&app.id);
    typed.event_types = Some(vec!["a.b".into()]);
    let mut channeled = sample_endpoint(&app.id);
    channeled.event_types = None;
    channeled.channels = Some(vec!["x".into()]);
    let mut disabled = sample_endpoint(&app.id);
    disabled.event_types = None;
    disabled.disabled = true;
    for ep in [&typed, &channeled, &disabled] {
        store.create_endpoint(ep, &secrets(1)).await.unwrap();
    }

    // Fan-out: the message and its tasks, for matching enabled endpoints only.
    let msg = sample_message(&app.id, "a.b", Some(vec!["x".into()]));
    let mut matched = store.create_message(&msg).await.unwrap();
    matched.sort();
    let mut expected = vec![typed.id.clone(), channeled.id.clone()];
    expected.sort();
    assert_eq!(matched, expected);
    let nothing = sample_message(&app.id, "c.d", None);
    assert!(store.create_message(&nothing).await.unwrap().is_empty());
    assert!(
        store
            .deliveries_for_message(&nothing.id)
            .await
            .unwrap()
            .is_empty()
    );
    let states = store.deliveries_for_message(&msg.id).await.unwrap();
    assert_eq!(states.len(), 2);
    assert!(
        states
            .iter()
            .all(|d| d.status == DeliveryStatus::Pending && d.attempts == 0)
    );

    // Endpoints with due work are claimed by one node at a time.
    let now = msg.created_at + Duration::milliseconds(1);
    let lease = now + Duration::seconds(30);
    let mut claimed = store
        .claim_due_endpoints(&node, now, lease, 100)
        .await
        .unwrap();
    claimed.retain(|e| matched.contains(e));
    claimed.sort();
    assert_eq!(claimed, expected);
    let theirs = store
        .claim_due_endpoints(&other_node, now, lease, 100)
        .await
        .unwrap();
    assert!(!theirs.iter().any(|e| matched.contains(e)));

    // Tasks: claimed once, with the payload.
    let (tasks, version) = store
        .claim_tasks(&node, &typed.id, now, lease, 10, false)
        .await
        .unwrap();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].payload, msg.payload);
    assert_eq!(tasks[0].event_type, "a.b");
    assert_eq!(tasks[0].attempts, 0);
    assert_eq!(
        status_of(store, &msg.id, &typed.id).await,
        Some(DeliveryStatus::Sending)
    );
    assert!(
        store
            .claim_tasks(&node, &typed.id, now, lease, 10, false)
            .await
            .unwrap()
            .0
            .is_empty()
    );
    // Another node does not own the endpoint and claims nothing.
    assert!(
        store
            .claim_tasks(&other_node, &typed.id, now, lease, 10, false)
            .await
            .unwrap()
            .0
            .is_empty()
    );

    // A failure schedules a retry; the task is not due before then.
    let retry_at = now + Duration::seconds(5);
    let effects = store
        .complete_attempts(
            &node,
            &[record(&tasks[0], &typed, NextStep::RetryAt(retry_at), now)],
            day,
            now,
        )
        .await
        .unwrap();
    assert!(effects.disabled.is_empty());
    let d = store
        .deliveries_for_message(&msg.id)
        .await
        .unwrap()
        .into_iter()
        .find(|d| d.endpoint_id == typed.id)
        .unwrap();
    assert_eq!(
        (d.status, d.attempts, d.next_attempt_at),
        (DeliveryStatus::Pending, 1, Some(retry_at))
    );
    assert_eq!(d.last_status_code, Some(500));
    assert!(
        store
            .claim_tasks(&node, &typed.id, now, lease, 10, false)
            .await
            .unwrap()
            .0
            .is_empty()
    );

    // Releasing records when work is next due; a publish in between keeps the owner.
    let second = sample_message(&app.id, "a.b", None);
    store.create_message(&second).await.unwrap();
    let now2 = second.created_at + Duration::milliseconds(1);
    assert!(
        !store
            .release_endpoint(&node, &typed.id, version, false, now2)
            .await
            .unwrap()
    );
    let (tasks2, version2) = store
        .claim_tasks(&node, &typed.id, now2, lease, 10, false)
        .await
        .unwrap();
    assert_eq!(
        tasks2.iter().map(|t| &t.msg_id).collect::<Vec<_>>(),
        vec![&second.id]
    );
    store
        .complete_attempts(
            &node,
            &[record(&tasks2[0], &typed, NextStep::Done, now2)],
            day,
            now2,
        )
        .await
        .unwrap();
    assert!(
        store
            .release_endpoint(&node, &typed.id, version2, false, now2)
            .await
            .unwrap()
    );
    // Not due before the retry time, due after.
    assert!(
        !store
            .claim_due_endpoints(&node, now2, lease, 100)
            .await
            .unwrap()
            .contains(&typed.id)
    );
    let later = retry_at + Duration::milliseconds(1);
    assert!(
        store
            .claim_due_endpoints(&node, later, later + Duration::seconds(30), 100)
            .await
            .unwrap()
            .contains(&typed.id)
    );
    let (retry, _) = store
        .claim_tasks(
            &node,
            &typed.id,
            later,
            later + Duration::seconds(30),
            10,
            false,
        )
        .await
        .unwrap();
    assert_eq!(retry.len(), 1);
    assert_eq!(retry[0].attempts, 1);

    // A completion from a node that lost the lease does not move the task, but is recorded.
    store
        .complete_attempts(
            &other_node,
            &[record(&retry[0], &typed, NextStep::Done, later)],
            day,
            later,
        )
        .await
        .unwrap();
    assert_eq!(
        status_of(store, &msg.id, &typed.id).await,
        Some(DeliveryStatus::Sending)
    );
    store
        .complete_attempts(
            &node,
            &[record(&retry[0], &typed, NextStep::Done, later)],
            day,
            later,
        )
        .await
        .unwrap();
    assert_eq!(
        status_of(store, &msg.id, &typed.id).await,
        Some(DeliveryStatus::Success)
    );
    let attempts = store.attempts_for_message(&msg.id).await.unwrap();
    assert_eq!(attempts.len(), 3);
    assert_eq!(attempts.iter().filter(|a| a.success).count(), 2);

    // 410 Gone: the endpoint is disabled and its pending work fails; it gets no new tasks.
    let (ch_tasks, _) = store
        .claim_tasks(&node, &channeled.id, now, lease, 10, false)
        .await
        .unwrap();
    let third = sample_message(&app.id, "z.z", Some(vec!["x".into()]));
    store.create_message(&third).await.unwrap();
    let effects = store
        .complete_attempts(
            &node,
            &[record(
                &ch_tasks[0],
                &channeled,
                NextStep::DisableEndpoint,
                now,
            )],
            day,
            now,
        )
        .await
        .unwrap();
    assert_eq!(
        effects.disabled,
        vec![crate::DisabledEndpoint {
            endpoint: channeled.id.clone(),
            failing_since: Some(now),
        }]
    );
    assert!(
        store
            .get_endpoint(&app.id, channeled.id.as_str())
            .await
            .unwrap()
            .unwrap()
            .disabled
    );
    assert_eq!(
        status_of(store, &msg.id, &channeled.id).await,
        Some(DeliveryStatus::Fail)
    );
    // The 410's own task fails; the one still waiting is canceled.
    assert_eq!(
        status_of(store, &third.id, &channeled.id).await,
        Some(DeliveryStatus::Canceled)
    );
    let fourth = sample_message(&app.id, "z.z", Some(vec!["x".into()]));
    assert!(store.create_message(&fourth).await.unwrap().is_empty());

    // Recover brings failed tasks of a window back; requeue makes a manual attempt due.
    let mut enabled = store
        .get_endpoint(&app.id, channeled.id.as_str())
        .await
        .unwrap()
        .unwrap();
    enabled.disabled = false;
    store.update_endpoint(&enabled).await.unwrap();
    let recovered = store
        .recover(&channeled.id, msg.created_at, third.created_at, now)
        .await
        .unwrap();
    assert_eq!(recovered, 1, "only the message inside the window");
    assert_eq!(
        status_of(store, &msg.id, &channeled.id).await,
        Some(DeliveryStatus::Pending)
    );
    assert_eq!(
        status_of(store, &third.id, &channeled.id).await,
        Some(DeliveryStatus::Canceled)
    );
    // Recover takes canceled tasks back too.
    assert_eq!(
        store
            .recover(
                &channeled.id,
                third.created_at,
                third.created_at + Duration::milliseconds(1),
                now
            )
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        status_of(store, &third.id, &channeled.id).await,
        Some(DeliveryStatus::Pending)
    );
    store.requeue(&fourth, &channeled.id, now).await.unwrap();
    assert_eq!(
        status_of(store, &fourth.id, &channeled.id).await,
        Some(DeliveryStatus::Pending)
    );
    store.requeue(&msg, &typed.id, now).await.unwrap();
    assert_eq!(
        status_of(store, &msg.id, &typed.id).await,
        Some(DeliveryStatus::Pending)
    );

    // Disabling through an update cancels pending retries too.
    enabled.disabled = true;
    store.update_endpoint(&enabled).await.unwrap();
    assert_eq!(
        status_of(store, &msg.id, &channeled.id).await,
        Some(DeliveryStatus::Canceled)
    );

    // Shutdown hands in-flight tasks back; a restart of an exclusive store ends every lease.
    let (inflight, _) = store
        .claim_tasks(
            &node,
            &typed.id,
            later,
            later + Duration::seconds(30),
            10,
            false,
        )
        .await
        .unwrap();
    assert!(inflight.iter().any(|t| t.manual));
    store.release_node(&node, later).await.unwrap();
    assert_eq!(
        status_of(store, &msg.id, &typed.id).await,
        Some(DeliveryStatus::Pending)
    );
    store
        .claim_due_endpoints(&other_node, later, later + Duration::seconds(30), 100)
        .await
        .unwrap();
    store
        .claim_tasks(
            &other_node,
            &typed.id,
            later,
            later + Duration::seconds(30),
            10,
            false,
        )
        .await
        .unwrap();
    store.reset_leases().await.unwrap();
    assert_eq!(
        status_of(store, &msg.id, &typed.id).await,
        Some(DeliveryStatus::Pending)
    );
    assert!(
        store
            .claim_due_endpoints(&node, later, later + Duration::seconds(30), 100)
            .await
            .unwrap()
            .contains(&typed.id)
    );
    store.abandon_endpoint(&node, &typed.id).await.unwrap();
    store.delete_app(&app.id).await.unwrap();
}

/// FIFO endpoints: only the oldest unfinished task is claimed and a failing head holds the
/// rest back; failing past the allowed period disables the endpoint.
pub async fn fifo_and_recovery(store: &dyn Store) {
    let node = format!("node-{}", random_base62(6));
    let app = sample_app(None);
    store.create_app(&app).await.unwrap();
    let mut ep = sample_endpoint(&app.id);
    ep.event_types = None;
    ep.options.ordering = Ordering::Fifo;
    store.create_endpoint(&ep, &secrets(1)).await.unwrap();
    let msgs: Vec<Message> = (0..3).map(|_| sample_message(&app.id, "e", None)).collect();
    for m in &msgs {
        store.create_message(m).await.unwrap();
    }
    let now = msgs[2].created_at + Duration::milliseconds(1);
    let lease = now + Duration::seconds(30);
    let day = Duration::days(1);
    assert!(
        store
            .claim_due_endpoints(&node, now, lease, 1000)
            .await
            .unwrap()
            .contains(&ep.id)
    );
    // Only the head, whatever the limit.
    let (head, version) = store
        .claim_tasks(&node, &ep.id, now, lease, 10, true)
        .await
        .unwrap();
    assert_eq!(
        head.iter().map(|t| &t.msg_id).collect::<Vec<_>>(),
        vec![&msgs[0].id]
    );
    assert!(
        store
            .claim_tasks(&node, &ep.id, now, lease, 10, true)
            .await
            .unwrap()
            .0
            .is_empty()
    );
    // A failing head holds back the rest until its retry.
    let retry_at = now + Duration::seconds(60);
    store
        .complete_attempts(
            &node,
            &[record(&head[0], &ep, NextStep::RetryAt(retry_at), now)],
            day,
            now,
        )
        .await
        .unwrap();
    assert!(
        store
            .claim_tasks(&node, &ep.id, now, lease, 10, true)
            .await
            .unwrap()
            .0
            .is_empty()
    );
    assert!(
        store
            .release_endpoint(&node, &ep.id, version, true, now)
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_due_endpoints(&node, now, lease, 1000)
            .await
            .unwrap()
            .contains(&ep.id)
    );
    let later = retry_at + Duration::milliseconds(1);
    assert!(
        store
            .claim_due_endpoints(&node, later, later + Duration::seconds(30), 1000)
            .await
            .unwrap()
            .contains(&ep.id)
    );
    let (head, _) = store
        .claim_tasks(
            &node,
            &ep.id,
            later,
            later + Duration::seconds(30),
            10,
            true,
        )
        .await
        .unwrap();
    assert_eq!(head[0].msg_id, msgs[0].id);

    // Failing past the allowed period disables the endpoint.
    let much_later = later + Duration::days(2);
    let effects = store
        .complete_attempts(
            &node,
            &[record(
                &head[0],
                &ep,
                NextStep::RetryAt(much_later),
                much_later,
            )],
            day,
            much_later,
        )
        .await
        .unwrap();
    assert_eq!(
        effects
            .disabled
            .iter()
            .map(|d| &d.endpoint)
            .collect::<Vec<_>>(),
        vec![&ep.id]
    );
    assert!(
        effects.disabled[0]
            .failing_since
            .is_some_and(|t| t <= later)
    );
    // Disabling cancels the head's retry and the tasks behind it.
    assert_eq!(
        status_of(store, &msgs[0].id, &ep.id).await,
        Some(DeliveryStatus::Canceled)
    );
    assert_eq!(
        status_of(store, &msgs[2].id, &ep.id).await,
        Some(DeliveryStatus::Canceled)
    );
    store.delete_app(&app.id).await.unwrap();
}

/// Claims running at the same moment (several nodes, or several statements of one) never take
/// the same endpoint or task twice, and together take everything due.
pub async fn concurrent_claims_do_not_overlap(store: &dyn Store) {
    let app = sample_app(None);
    store.create_app(&app).await.unwrap();
    let mut endpoints = Vec::new();
    for _ in 0..24 {
        let mut ep = sample_endpoint(&app.id);
        ep.event_types = None;
        store.create_endpoint(&ep, &secrets(1)).await.unwrap();
        endpoints.push(ep.id);
    }
    let mut last = None;
    for _ in 0..30 {
        let msg = sample_message(&app.id, "e", None);
        store.create_message(&msg).await.unwrap();
        last = Some(msg.created_at);
    }
    let now = last.unwrap() + Duration::milliseconds(1);
    let lease = now + Duration::seconds(30);

    let nodes: Vec<String> = (0..4)
        .map(|_| format!("node-{}", random_base62(6)))
        .collect();
    let claim_all = |node: &str| {
        let node = node.to_owned();
        async move {
            let mut mine = Vec::new();
            loop {
                let got = store
                    .claim_due_endpoints(&node, now, lease, 5)
                    .await
                    .unwrap();
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got);
            }
        }
    };
    let (a, b, c, d) = tokio::join!(
        claim_all(&nodes[0]),
        claim_all(&nodes[1]),
        claim_all(&nodes[2]),
        claim_all(&nodes[3])
    );
    let mut taken: Vec<&EndpointId> = [&a, &b, &c, &d].into_iter().flatten().collect();
    let total = taken.len();
    taken.sort();
    taken.dedup();
    assert_eq!(taken.len(), total, "an endpoint was claimed twice");
    assert!(endpoints.iter().all(|e| taken.contains(&e)));

    // One endpoint's tasks, claimed by several statements at once.
    let endpoint = &endpoints[0];
    let owner = [&nodes[0], &nodes[1], &nodes[2], &nodes[3]]
        .into_iter()
        .zip([&a, &b, &c, &d])
        .find(|(_, claimed)| claimed.contains(endpoint))
        .map(|(node, _)| node.clone())
        .unwrap();
    let claim_some = || async {
        store
            .claim_tasks(&owner, endpoint, now, lease, 4, false)
            .await
            .unwrap()
            .0
    };
    let (t1, t2, t3, t4, t5, t6, t7, t8) = tokio::join!(
        claim_some(),
        claim_some(),
        claim_some(),
        claim_some(),
        claim_some(),
        claim_some(),
        claim_some(),
        claim_some()
    );
    let mut ids: Vec<i64> = [t1, t2, t3, t4, t5, t6, t7, t8]
        .into_iter()
        .flatten()
        .map(|t| t.delivery_id)
        .collect();
    let total = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), total, "a task was claimed twice");
    let rest = store
        .claim_tasks(&owner, endpoint, now, lease, 100, false)
        .await
        .unwrap()
        .0;
    assert_eq!(total + rest.len(), 30, "every task is claimed exactly once");
    for node in &nodes {
        store.release_node(node, now).await.unwrap();
    }
    store.delete_app(&app.id).await.unwrap();
}

/// An owner claiming, finishing and releasing an endpoint while publishes to it commit: every
/// task ends up delivered, none left pending on a released endpoint with nothing due.
pub async fn publishes_racing_releases_are_never_stranded(store: &dyn Store) {
    const MESSAGES: usize = 60;
    let app = sample_app(None);
    store.create_app(&app).await.unwrap();
    let mut ep = sample_endpoint(&app.id);
    ep.event_types = None;
    store.create_endpoint(&ep, &secrets(1)).await.unwrap();
    let node = format!("node-{}", random_base62(6));
    let day = Duration::days(1);
    let published = std::sync::atomic::AtomicBool::new(false);

    let publish = async {
        for _ in 0..MESSAGES {
            store
                .create_message(&sample_message(&app.id, "e", None))
                .await
                .unwrap();
            tokio::task::yield_now().await;
        }
        published.store(true, std::sync::atomic::Ordering::SeqCst);
    };
    // The worker's loop, reduced: claim the endpoint, claim and finish its tasks, release it.
    let deliver = async {
        let mut done = 0;
        loop {
            let now = herald_core::time::now();
            let lease = now + Duration::seconds(30);
            let finished = published.load(std::sync::atomic::Ordering::SeqCst);
            let claimed = store
                .claim_due_endpoints(&node, now, lease, 1000)
                .await
                .unwrap();
            if claimed.contains(&ep.id) {
                loop {
                    let now = herald_core::time::now();
                    let (tasks, version) = store
                        .claim_tasks(&node, &ep.id, now, lease, 7, false)
                        .await
                        .unwrap();
                    let records: Vec<AttemptRecord> = tasks
                        .iter()
                        .map(|t| record(t, &ep, NextStep::Done, now))
                        .collect();
                    done += records.len();
                    store
                        .complete_attempts(&node, &records, day, now)
                        .await
                        .unwrap();
                    if records.is_empty()
                        && store
                            .release_endpoint(&node, &ep.id, version, false, now)
                            .await
                            .unwrap()
                    {
                        break;
                    }
                }
            }
            if finished && done == MESSAGES {
                return done;
            }
            assert!(
                !finished || !claimed.is_empty() || done == MESSAGES,
                "{} tasks stranded: the endpoint was released over them",
                MESSAGES - done
            );
            tokio::task::yield_now().await;
        }
    };
    let ((), done) = tokio::join!(publish, deliver);
    assert_eq!(done, MESSAGES);
    store.delete_app(&app.id).await.unwrap();
}
