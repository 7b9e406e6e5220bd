//! Kobiton (seed 002) as its receivers expect it: the callback body of the seed, field by field
//! and type by type (`webhookId` the webhook's number, `webhookName` its name, `orgId` the
//! organisation's number, `creationTime` the time the callback is sent, under the signature),
//! and the limits of Kobiton's webhook form with `profile: "kobiton"`.

use std::time::Duration;

use herald_core::model::DeliveryStatus;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::delivery::verify;
use crate::helpers::{TestApp, error_locs};
use crate::receiver::{Receiver, Step};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[tokio::test]
async fn a_device_callback_is_the_seeds_body_sent_and_signed_per_attempt() {
    let t = TestApp::spawn().await;
    let r = Receiver::start().await;
    let (status, app) = t
        .post("/api/v1/app", json!({"name": "Kobiton org", "orgId": 2}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    assert_eq!(app["orgId"], 2);
    let app = app["id"].as_str().unwrap().to_owned();
    let (status, endpoint) = t
        .post(
            &format!("/api/v1/app/{app}/endpoint"),
            json!({
                "url": r.url("/kobiton"),
                "name": "Webhook for All events",
                "profile": "kobiton",
                "secret": SECRET,
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{endpoint}");
    let serial = endpoint["serial"].as_i64().expect("an integer serial");
    assert_eq!(endpoint["name"], "Webhook for All events");
    let ep = endpoint["id"].as_str().unwrap().to_owned();

    let (status, _) = t
        .call(
            Method::PUT,
            &format!("/api/v1/app/{app}/device/ce0917198075440c057e"),
            Some(json!({"name": "Galaxy Note 8", "kind": "private"})),
        )
        .await;
    assert!(status.is_success());
    // The first attempt fails; the callback is sent again (asked for at once here).
    r.script("/kobiton", vec![Step::Status(503)]);
    let (status, reported) = t
        .post(
            &format!("/api/v1/app/{app}/device/ce0917198075440c057e/status"),
            json!({"status": "utilizing", "at": "2023-01-06T04:52:30.000Z"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{reported}");
    let msg = reported["messageId"].as_str().unwrap().to_owned();
    r.wait_for("/kobiton", 1, Duration::from_secs(10)).await;
    t.wait_status(&msg, &ep, DeliveryStatus::Pending, Duration::from_secs(10))
        .await;
    let (status, _) = t
        .post(
            &format!("/api/v1/app/{app}/msg/{msg}/endpoint/{ep}/resend"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let got = r.wait_for("/kobiton", 2, Duration::from_secs(10)).await;

    let mut sent_times = Vec::new();
    for request in &got[..2] {
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        // The seed's body: these fields, these types.
        let expected_keys = [
            "creationTime",
            "eventType",
            "eventActivity",
            "eventDescription",
            "deviceUdid",
            "deviceName",
            "orgId",
            "webhookId",
            "webhookName",
        ];
        let keys: Vec<&str> = body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys, expected_keys,
            "the seed's fields, in the seed's order"
        );
        assert_eq!(body["eventType"], "DEVICE");
        assert_eq!(body["eventActivity"], "device.state.utilizing");
        assert_eq!(body["eventDescription"], "Utilizing");
        assert_eq!(body["deviceUdid"], "ce0917198075440c057e");
        assert_eq!(body["deviceName"], "Galaxy Note 8");
        assert_eq!(body["orgId"], json!(2));
        assert_eq!(body["webhookId"], json!(serial));
        assert_eq!(body["webhookName"], "Webhook for All events");
        // `creationTime` is when this callback was sent (milliseconds, UTC), not when the
        // device changed; the signature covers it.
        let sent = body["creationTime"].as_str().unwrap();
        assert_eq!(sent.len(), "2023-01-06T04:52:36.963Z".len(), "{sent}");
        let sent_at = chrono::DateTime::parse_from_rfc3339(sent).unwrap();
        let timestamp = request.header("webhook-timestamp").unwrap();
        assert_eq!(sent_at.timestamp().to_string(), timestamp);
        assert!(verify(
            SECRET,
            request.header("webhook-id").unwrap(),
            timestamp,
            &request.body,
            request.header("webhook-signature").unwrap(),
        ));
        sent_times.push(sent.to_owned());
    }
    assert_ne!(
        sent_times[0], sent_times[1],
        "each attempt has its own time"
    );
    assert_eq!(
        got[0].header("webhook-id"),
        got[1].header("webhook-id"),
        "the webhook id is stable across attempts"
    );
}

#[tokio::test]
async fn the_kobiton_profile_keeps_the_webhook_forms_limits() {
    // A server that takes longer descriptions than Kobiton: the profile's limit still holds.
    let t = TestApp::spawn_with(|c| c.limits.max_description_length = 2000).await;
    let app = t.create_app("Lab").await;
    let other = t.create_app("Other lab").await;
    let create = |app: String, body: Value| {
        let t = &t;
        async move { t.post(&format!("/api/v1/app/{app}/endpoint"), body).await }
    };
    let url = "https://example.com/hook";

    let (status, out) = create(app.clone(), json!({"url": url, "profile": "kobiton"})).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a name is required: {out}"
    );
    assert_eq!(error_locs(&out), ["body.name"]);
    let long_name = "n".repeat(51);
    let (status, out) = create(app.clone(), json!({"url": url, "name": long_name})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{out}");
    let long_url = format!("https://example.com/{}", "a".repeat(512 - 20 + 1));
    assert_eq!(long_url.len(), 513);
    let (status, out) = create(
        app.clone(),
        json!({"url": long_url, "name": "A", "profile": "kobiton", "description": "d".repeat(513)}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{out}");
    assert_eq!(error_locs(&out), ["body.url", "body.description"]);
    let at_limit = format!("https://example.com/{}", "a".repeat(512 - 20));
    let (status, first) = create(
        app.clone(),
        json!({"url": at_limit, "name": "Webhook for online status", "profile": "kobiton",
               "description": "d".repeat(512)}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");

    // Names are case-sensitive and unique within the organisation (application).
    let (status, out) = create(
        app.clone(),
        json!({"url": url, "name": "Webhook for online status", "profile": "kobiton"}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{out}");
    let (status, _) = create(
        app.clone(),
        json!({"url": url, "name": "webhook for online status", "profile": "kobiton"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = create(
        other.clone(),
        json!({"url": url, "name": "Webhook for online status", "profile": "kobiton"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    // Removing the name of a Kobiton webhook is refused; serials are never reused.
    let ep = first["id"].as_str().unwrap();
    let (status, _) = t
        .call(
            Method::PATCH,
            &format!("/api/v1/app/{app}/endpoint/{ep}"),
            Some(json!({"name": null})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = t
        .call(
            Method::DELETE,
            &format!("/api/v1/app/{app}/endpoint/{ep}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, next) = create(app.clone(), json!({"url": url})).await;
    assert!(next["serial"].as_i64().unwrap() > first["serial"].as_i64().unwrap());
    // The application's orgId is a number within what JSON readers hold exactly.
    let (status, _) = t
        .call(
            Method::PATCH,
            &format!("/api/v1/app/{app}"),
            Some(json!({"orgId": 9007199254740992_i64})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}
