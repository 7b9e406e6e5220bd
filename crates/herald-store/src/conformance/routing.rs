//! Fan-out as the store performs it: event-type patterns, channels and payload filters decide
//! which endpoints get a task; an example goes to one endpoint only; an application's sealed
//! GraphQL API settings persist and are re-sealed with everything else.

use herald_core::model::{DeliveryStatus, EndpointOptions, SealedGraphqlApi};
use serde_json::json;

use super::{sample_app, sample_endpoint, sample_message, secrets};
use crate::{Store, StoreError};

/// Fan-out: event-type patterns, channels and payload filters pick the endpoints that get a
/// task; the message is stored even when none does.
pub async fn fan_out_follows_patterns_channels_and_filters(store: &dyn Store) {
    let app = sample_app(None);
    store.create_app(&app).await.unwrap();
    let mut readings = sample_endpoint(&app.id);
    readings.event_types = Some(vec!["reading.*".into()]);
    let mut qa = sample_endpoint(&app.id);
    qa.event_types = None;
    qa.channels = Some(vec!["team:qa".into()]);
    let mut low_battery = sample_endpoint(&app.id);
    low_battery.event_types = None;
    low_battery.options = EndpointOptions {
        filter: Some(json!({"device.kind": {"$in": ["private", "local"]}, "battery": {"$lt": 20}})),
        ..Default::default()
    };
    for endpoint in [&readings, &qa, &low_battery] {
        store.create_endpoint(endpoint, &secrets(1)).await.unwrap();
    }
    let send = |event_type: &str, channels: Option<Vec<String>>, payload: &str| {
        let mut msg = sample_message(&app.id, event_type, channels);
        msg.payload = Some(payload.to_owned());
        msg
    };
    let cases = [
        (send("reading.weight", None, "{}"), vec![&readings.id]),
        (
            send("device.status", Some(vec!["team:qa".into()]), "{}"),
            vec![&qa.id],
        ),
        (
            send(
                "device.lowBattery",
                None,
                r#"{"device": {"kind": "local"}, "battery": 7}"#,
            ),
            vec![&low_battery.id],
        ),
        (
            send(
                "device.lowBattery",
                None,
                r#"{"device": {"kind": "public"}, "battery": 7}"#,
            ),
            vec![],
        ),
        (
            send("order.status", Some(vec!["team:ops".into()]), "{}"),
            vec![],
        ),
    ];
    for (msg, expected) in cases {
        let mut got = store.create_message(&msg).await.unwrap();
        got.sort();
        let mut expected: Vec<_> = expected.into_iter().cloned().collect();
        expected.sort();
        assert_eq!(got, expected, "{}", msg.event_type);
        assert_eq!(
            store.deliveries_for_message(&msg.id).await.unwrap().len(),
            expected.len()
        );
        // The message is stored even when it goes nowhere.
        assert!(store.get_message(&app.id, &msg.id).await.unwrap().is_some());
    }
}

/// An example goes to the endpoint it names whatever the routing; a disabled endpoint is
/// `NotFound` and nothing is stored.
pub async fn examples_go_to_one_endpoint(store: &dyn Store) {
    let app = sample_app(None);
    store.create_app(&app).await.unwrap();
    let target = sample_endpoint(&app.id);
    let other = sample_endpoint(&app.id);
    let mut disabled = sample_endpoint(&app.id);
    disabled.disabled = true;
    for endpoint in [&target, &other, &disabled] {
        store.create_endpoint(endpoint, &secrets(2)).await.unwrap();
    }
    // Routing would pick neither endpoint for this event type: the example goes anyway.
    let msg = sample_message(&app.id, "not.subscribed", None);
    store
        .create_message_for_endpoint(&msg, &target.id)
        .await
        .unwrap();
    let deliveries = store.deliveries_for_message(&msg.id).await.unwrap();
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].endpoint_id, target.id);
    assert_eq!(deliveries[0].status, DeliveryStatus::Pending);

    let msg = sample_message(&app.id, "user.signup", None);
    assert!(matches!(
        store.create_message_for_endpoint(&msg, &disabled.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(store.get_message(&app.id, &msg.id).await.unwrap().is_none());
}

/// An application's sealed GraphQL API settings are stored, read back and re-sealed by
/// `reseal_all`.
pub async fn graphql_api_is_stored_sealed_and_resealed(store: &dyn Store) {
    let api = |headers: Option<&[u8]>| SealedGraphqlApi {
        url: "https://api.example.com/graphql".into(),
        headers: headers.map(<[u8]>::to_vec),
    };
    let mut app = sample_app(None);
    app.graphql_api = Some(api(Some(b"sealed-api-1")));
    store.create_app(&app).await.unwrap();
    let got = store.get_app(app.id.as_str()).await.unwrap().unwrap();
    assert_eq!(got.graphql_api, Some(api(Some(b"sealed-api-1"))));

    app.graphql_api = Some(api(Some(b"sealed-api-2")));
    store.update_app(&app).await.unwrap();
    let reseal = |value: &[u8]| -> Result<Option<Vec<u8>>, String> {
        Ok((value == b"sealed-api-2").then(|| b"resealed".to_vec()))
    };
    assert!(store.reseal_all(&reseal).await.unwrap() >= 1);
    let got = store.get_app(app.id.as_str()).await.unwrap().unwrap();
    assert_eq!(got.graphql_api, Some(api(Some(b"resealed"))));

    app.graphql_api = Some(api(None));
    store.update_app(&app).await.unwrap();
    let got = store.get_app(app.id.as_str()).await.unwrap().unwrap();
    assert_eq!(got.graphql_api, Some(api(None)));
    app.graphql_api = None;
    store.update_app(&app).await.unwrap();
    let got = store.get_app(app.id.as_str()).await.unwrap().unwrap();
    assert_eq!(got.graphql_api, None);
}
