//! Scheduled messages (`deliverAt`), tags, attempt lists with their messages, and fields Herald
//! does not implement (refused by name, never dropped).

use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use herald_core::model::DeliveryStatus;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_locs};
use crate::receiver::Receiver;

fn ids(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

fn rfc3339(at: chrono::DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[tokio::test]
async fn deliver_at_holds_every_delivery_until_its_time() {
    let r = Receiver::start().await;
    let t = TestApp::spawn().await;
    let app = t.create_app("Acme").await;
    let first = t.create_endpoint(&app, json!({"url": r.url("/a")})).await;
    t.create_endpoint(&app, json!({"url": r.url("/b")})).await;

    let at = Utc::now() + chrono::Duration::milliseconds(1500);
    let (status, scheduled) = t
        .post(
            &format!("/api/v1/app/{app}/msg"),
            json!({"eventType": "a.b", "payload": {"n": 1}, "deliverAt": rfc3339(at)}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{scheduled}");
    let scheduled_id = scheduled["id"].as_str().unwrap().to_owned();
    assert_eq!(scheduled["deliverAt"], rfc3339(at));
    // A message published after it, without a schedule, goes at once.
    let now_id = t
        .publish(&app, json!({"eventType": "a.b", "payload": {"n": 2}}))
        .await;
    r.wait_for("/a", 1, Duration::from_secs(5)).await;
    r.wait_for("/b", 1, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let early: Vec<_> = r
        .all_received()
        .into_iter()
        .filter(|q| q.header("webhook-id") == Some(scheduled_id.as_str()))
        .collect();
    assert!(early.is_empty(), "the scheduled message went early");
    let pending = t.deliveries(&scheduled_id).await;
    assert!(pending.iter().all(|d| d.status == DeliveryStatus::Pending));

    // Both endpoints get it once its time has come, not before.
    let got = r.wait_for("/a", 2, Duration::from_secs(10)).await;
    r.wait_for("/b", 2, Duration::from_secs(10)).await;
    let sent = got
        .iter()
        .find(|q| q.header("webhook-id") == Some(scheduled_id.as_str()))
        .unwrap();
    let sent_at = sent
        .header("webhook-timestamp")
        .unwrap()
        .parse::<i64>()
        .unwrap();
    assert!(sent_at >= at.timestamp(), "sent at {sent_at}, due {at}");
    t.wait_status(
        &scheduled_id,
        &first,
        DeliveryStatus::Success,
        Duration::from_secs(5),
    )
    .await;
    assert_ne!(now_id, scheduled_id);
    let (_, shown) = t
        .get(&format!("/api/v1/app/{app}/msg/{scheduled_id}"))
        .await;
    assert_eq!(shown["deliverAt"], rfc3339(at));

    // At most five days ahead; a time already past is no schedule.
    let (status, body) = t
        .post(
            &format!("/api/v1/app/{app}/msg"),
            json!({"eventType": "a.b", "payload": {},
                   "deliverAt": rfc3339(Utc::now() + chrono::Duration::days(6))}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_locs(&body), vec!["body.deliverAt"]);
    let (status, past) = t
        .post(
            &format!("/api/v1/app/{app}/msg"),
            json!({"eventType": "a.b", "payload": {},
                   "deliverAt": rfc3339(Utc::now() - chrono::Duration::hours(1))}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(past["deliverAt"], Value::Null);
    t.stop().await;
}

#[tokio::test]
async fn tags_are_stored_shown_and_filter_message_and_attempt_lists() {
    let r = Receiver::start().await;
    let t = TestApp::spawn().await;
    let app = t.create_app("Acme").await;
    let ep = t.create_endpoint(&app, json!({"url": r.url("/t")})).await;
    let tagged = t
        .publish(
            &app,
            json!({"eventType": "a.b", "payload": {"x": 1}, "tags": ["project.x", "urgent"]}),
        )
        .await;
    let other = t
        .publish(
            &app,
            json!({"eventType": "a.b", "payload": {}, "tags": ["project.y"]}),
        )
        .await;
    let untagged = t
        .publish(&app, json!({"eventType": "a.b", "payload": {}}))
        .await;
    r.wait_for("/t", 3, Duration::from_secs(5)).await;
    for msg in [&tagged, &other, &untagged] {
        t.wait_status(msg, &ep, DeliveryStatus::Success, Duration::from_secs(5))
            .await;
    }

    let base = format!("/api/v1/app/{app}/msg");
    let (_, shown) = t.get(&format!("{base}/{tagged}")).await;
    assert_eq!(shown["tags"], json!(["project.x", "urgent"]));
    assert_eq!(
        ids(&t.get(&format!("{base}?tag=urgent")).await.1),
        vec![tagged.clone()]
    );
    assert_eq!(
        ids(&t.get(&format!("{base}?tag=project.y")).await.1),
        vec![other.clone()]
    );
    // A tag is matched whole, not as a part of another.
    assert!(ids(&t.get(&format!("{base}?tag=project")).await.1).is_empty());
    assert_eq!(ids(&t.get(&base).await.1).len(), 3);

    // Attempts by endpoint: the tag filter, and each attempt's message without its payload.
    let (_, attempts) = t
        .get(&format!(
            "/api/v1/app/{app}/attempt/endpoint/{ep}?tag=urgent&with_msg=true"
        ))
        .await;
    let data = attempts["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "{attempts}");
    assert_eq!(data[0]["msgId"], tagged.as_str());
    assert_eq!(data[0]["msg"]["id"], tagged.as_str());
    assert_eq!(data[0]["msg"]["tags"], json!(["project.x", "urgent"]));
    assert_eq!(data[0]["msg"]["payload"], json!({}));
    let (_, plain) = t
        .get(&format!("/api/v1/app/{app}/attempt/endpoint/{ep}"))
        .await;
    assert_eq!(plain["data"].as_array().unwrap().len(), 3);
    assert!(plain["data"][0].get("msg").is_none());
    // Attempts by message.
    let (_, by_msg) = t
        .get(&format!(
            "/api/v1/app/{app}/attempt/msg/{other}?with_msg=true&tag=project.y"
        ))
        .await;
    assert_eq!(by_msg["data"][0]["msg"]["id"], other.as_str());
    let (_, none) = t
        .get(&format!("/api/v1/app/{app}/attempt/msg/{other}?tag=urgent"))
        .await;
    assert!(none["data"].as_array().unwrap().is_empty());

    // At most five, each a valid name, no duplicates; the filter is checked too.
    for (tags, loc) in [
        (json!(["a", "b", "c", "d", "e", "f"]), "body.tags"),
        (json!(["has space"]), "body.tags.0"),
        (json!(["a,b"]), "body.tags.0"),
        (json!(["same", "same"]), "body.tags.1"),
    ] {
        let (status, body) = t
            .post(
                &base,
                json!({"eventType": "a.b", "payload": {}, "tags": tags}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(error_locs(&body), vec![loc], "{body}");
    }
    let (status, _) = t.get(&format!("{base}?tag=a%2Cb")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    t.stop().await;
}

/// A field Herald does not implement is refused by name, never accepted and dropped.
#[tokio::test]
async fn message_fields_herald_does_not_implement_are_refused_by_name() {
    let t = TestApp::spawn().await;
    let app = t.create_app("Acme").await;
    for field in [
        "payloadRetentionHours",
        "transformationsParams",
        "noSuchField",
    ] {
        let (status, body) = t
            .post(
                &format!("/api/v1/app/{app}/msg"),
                json!({"eventType": "a.b", "payload": {}, field: 24}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {body}");
        assert_eq!(error_locs(&body), vec![format!("body.{field}")], "{body}");
    }
    assert!(
        ids(&t.get(&format!("/api/v1/app/{app}/msg")).await.1).is_empty(),
        "nothing was published"
    );
    t.stop().await;
}

/// `POST …/msg/precheck/active` says whether any enabled endpoint would get such a message.
#[tokio::test]
async fn precheck_says_whether_an_endpoint_would_receive_a_message() {
    let t = TestApp::spawn().await;
    let app = t.create_app("Acme").await;
    let path = format!("/api/v1/app/{app}/msg/precheck/active");
    let active = |body: Value| {
        let t = &t;
        let path = path.clone();
        async move {
            let (status, out) = t.post(&path, body).await;
            assert_eq!(status, StatusCode::OK, "{out}");
            out["active"].as_bool().unwrap()
        }
    };
    assert!(
        !active(json!({"eventType": "a.b"})).await,
        "no endpoint yet"
    );
    t.create_endpoint(
        &app,
        json!({"url": "https://example.com/x", "eventTypes": ["reading.*"], "channels": ["ward.3"]}),
    )
    .await;
    assert!(
        !active(json!({"eventType": "reading.weight"})).await,
        "channel missing"
    );
    assert!(active(json!({"eventType": "reading.weight", "channels": ["ward.3"]})).await);
    assert!(!active(json!({"eventType": "order.paid", "channels": ["ward.3"]})).await);
    t.create_endpoint(
        &app,
        json!({"url": "https://example.com/y", "disabled": true}),
    )
    .await;
    assert!(
        !active(json!({"eventType": "order.paid"})).await,
        "disabled endpoints do not count"
    );
    let (status, body) = t.post(&path, json!({"eventType": "bad type"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    t.stop().await;
}

/// A message whose content is expunged before it went cannot be sent: its waiting deliveries
/// are canceled (here a scheduled one), and nothing goes out at its time.
#[tokio::test]
async fn expunging_a_waiting_message_cancels_its_deliveries() {
    let r = Receiver::start().await;
    let t = TestApp::spawn().await;
    let app = t.create_app("Acme").await;
    let ep = t.create_endpoint(&app, json!({"url": r.url("/x")})).await;
    let at = Utc::now() + chrono::Duration::milliseconds(800);
    let (_, msg) = t
        .post(
            &format!("/api/v1/app/{app}/msg"),
            json!({"eventType": "a.b", "payload": {"secret": 1}, "deliverAt": rfc3339(at)}),
        )
        .await;
    let id = msg["id"].as_str().unwrap().to_owned();
    let (status, _) = t
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/app/{app}/msg/{id}/content"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    t.wait_status(&id, &ep, DeliveryStatus::Canceled, Duration::from_secs(2))
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        r.received("/x").is_empty(),
        "nothing is sent without its content"
    );
    t.stop().await;
}
