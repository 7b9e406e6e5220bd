//! Polling endpoints (issue 25): created without a URL, never POSTed to; their consumers read
//! every message once in order, resume from their acknowledged position after a crash, are
//! answered within 50 ms of a publish when long-polling, and get signed messages.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_locs};

pub(crate) const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// An application with a polling endpoint subscribed to everything; returns (app, endpoint).
pub(crate) async fn polling_endpoint(t: &TestApp, extra: Value) -> (String, String) {
    let app = t.create_app("Acme").await;
    let mut body = json!({"type": "polling", "secret": SECRET});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let ep = t.create_endpoint(&app, body).await;
    (app, ep)
}

pub(crate) async fn publish_n(t: &TestApp, app: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(
            t.publish(
                app,
                json!({"eventType": "order.created", "payload": {"n": i}}),
            )
            .await,
        );
    }
    ids
}

pub(crate) fn ids_of(answer: &Value) -> Vec<String> {
    answer["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

/// A consumer's poll; `ack`: the iterator of its previous answer.
pub(crate) async fn consumer_poll(
    t: &TestApp,
    app: &str,
    ep: &str,
    consumer: &str,
    query: &str,
    ack: Option<&str>,
) -> Value {
    let mut path = format!("/api/v1/app/{app}/poller/{ep}/consumer/{consumer}?{query}");
    if let Some(iterator) = ack {
        path.push_str(&format!("&iterator={iterator}"));
    }
    let (status, body) = t.get(&path).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn a_polling_endpoint_has_no_url_and_is_never_posted_to() {
    let t = TestApp::spawn().await;
    let (app, ep) = polling_endpoint(&t, json!({})).await;
    let (status, out) = t.get(&format!("/api/v1/app/{app}/endpoint/{ep}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(out["type"], "polling");
    let url = out["url"].as_str().unwrap();
    assert_eq!(url, t.url(&format!("/api/v1/app/{app}/poller/{ep}")));
    let (_, list) = t.get(&format!("/api/v1/app/{app}/endpoint")).await;
    assert_eq!(list["data"][0]["type"], "polling");

    // Nothing silently ignored: an unknown type, a URL with polling, a change of type.
    let path = format!("/api/v1/app/{app}/endpoint");
    let (status, body) = t.post(&path, json!({"type": "smtp"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_locs(&body), ["body.type"]);
    let (status, body) = t
        .post(
            &path,
            json!({"type": "polling", "url": "https://example.com/hook"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_locs(&body), ["body.url"]);
    let (status, body) = t.post(&path, json!({"type": "http"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_locs(&body), ["body.url"]);
    // Settings of HTTP deliveries would do nothing here: each is named, none is ignored.
    let (status, body) = t
        .post(
            &path,
            json!({"type": "polling", "retrySchedule": [1], "envelope": "typed",
                   "headers": {"X-A": "1"}, "filterTypes": ["a.b"]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        error_locs(&body),
        ["body.retrySchedule", "body.envelope", "body.headers"]
    );
    let (status, body) = t
        .call(
            Method::PATCH,
            &format!("/api/v1/app/{app}/endpoint/{ep}"),
            Some(json!({"timeoutSeconds": 5})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_locs(&body), ["body.timeoutSeconds"]);
    for (method, route, body) in [
        (Method::PUT, "headers", json!({"headers": {"X-A": "1"}})),
        (
            Method::PATCH,
            "transformation",
            json!({"code": "function handler(w) { return w; }"}),
        ),
    ] {
        let (status, out) = t
            .call(
                method,
                &format!("/api/v1/app/{app}/endpoint/{ep}/{route}"),
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{route}: {out}");
    }
    let put = format!("/api/v1/app/{app}/endpoint/{ep}");
    let (status, body) = t
        .call(
            Method::PUT,
            &put,
            Some(json!({"type": "http", "url": "https://example.com/h"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = t
        .call(
            Method::PATCH,
            &put,
            Some(json!({"url": "https://example.com/h"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_locs(&body), ["body.url"]);
    // Sending back the URL shown (as the Svix SDK's update does) or none keeps it.
    let (status, body) = t
        .call(
            Method::PUT,
            &put,
            Some(json!({"url": url, "description": "pull"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["url"], url);
    assert_eq!(body["type"], "polling");

    // A publish gives it an entry, no delivery task; nothing resends to it.
    let msg = t
        .publish(
            &app,
            json!({"eventType": "order.created", "payload": {"a": 1}}),
        )
        .await;
    assert!(t.deliveries(&msg).await.is_empty());
    let (status, body) = t
        .post(
            &format!("/api/v1/app/{app}/msg/{msg}/endpoint/{ep}/resend"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, body) = t
        .post(
            &format!("/api/v1/app/{app}/endpoint/{ep}/recover"),
            json!({"since": "2020-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, answer) = t.get(&format!("/api/v1/app/{app}/poller/{ep}")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(ids_of(&answer), [&*msg]);

    // An HTTP endpoint has no poller.
    let http = t
        .create_endpoint(&app, json!({"url": "https://example.com/hook"}))
        .await;
    let (status, _) = t.get(&format!("/api/v1/app/{app}/poller/{http}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    t.stop().await;
}

#[tokio::test]
async fn two_consumers_each_see_every_message_once_in_order() {
    let t = TestApp::spawn().await;
    let (app, ep) = polling_endpoint(&t, json!({})).await;
    let published = publish_n(&t, &app, 200).await;
    let mut seen = [Vec::new(), Vec::new()];
    let mut acks: [Option<String>; 2] = [None, None];
    let mut done = [false, false];
    // The two read in turns, at different paces.
    while !(done[0] && done[1]) {
        for (k, (consumer, limit)) in [("billing", 37), ("audit", 50)].into_iter().enumerate() {
            if done[k] {
                continue;
            }
            let answer = consumer_poll(
                &t,
                &app,
                &ep,
                consumer,
                &format!("limit={limit}"),
                acks[k].as_deref(),
            )
            .await;
            seen[k].extend(ids_of(&answer));
            done[k] = answer["done"].as_bool().unwrap();
            acks[k] = Some(answer["iterator"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(
        seen[0], published,
        "billing saw every message once, in order"
    );
    assert_eq!(seen[1], published, "audit saw every message once, in order");
    let metrics = t
        .client
        .get(t.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"herald_polled_messages_total{kind="polling",reader="consumer"}"#),
        "{metrics}"
    );
    t.stop().await;
}

#[tokio::test]
async fn a_consumer_killed_mid_stream_resumes_from_its_cursor() {
    let t = TestApp::spawn().await;
    let (app, ep) = polling_endpoint(&t, json!({})).await;
    let published = publish_n(&t, &app, 30).await;
    // The first run: reads a batch, acknowledges it with its next poll, reads a second batch
    // and dies before acknowledging that one.
    let first = consumer_poll(&t, &app, &ep, "worker", "limit=10", None).await;
    assert_eq!(ids_of(&first), published[..10]);
    let second = consumer_poll(
        &t,
        &app,
        &ep,
        "worker",
        "limit=10",
        first["iterator"].as_str(),
    )
    .await;
    assert_eq!(ids_of(&second), published[10..20]);
    // A read-only key reads from the stored position but cannot acknowledge (move it).
    let reader = t.api_key(json!({"role": "read-only"})).await;
    let consumer = format!("/api/v1/app/{app}/poller/{ep}/consumer/worker");
    let (status, read) = t
        .call_as(&reader, Method::GET, &format!("{consumer}?limit=10"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(ids_of(&read), published[10..20]);
    let (status, refused) = t
        .call_as(
            &reader,
            Method::GET,
            &format!(
                "{consumer}?iterator={}",
                second["iterator"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    drop(second);

    // The restarted consumer knows nothing: Herald's cursor sends it the unacknowledged batch
    // again, then the rest.
    let mut seen = Vec::new();
    let mut ack: Option<String> = None;
    loop {
        let answer = consumer_poll(&t, &app, &ep, "worker", "limit=7", ack.as_deref()).await;
        seen.extend(ids_of(&answer));
        ack = Some(answer["iterator"].as_str().unwrap().to_owned());
        if answer["done"] == true {
            break;
        }
    }
    assert_eq!(
        seen,
        published[10..],
        "resumed at the first unacknowledged message"
    );
    // Acknowledged to the end: nothing more.
    let rest = consumer_poll(&t, &app, &ep, "worker", "", ack.as_deref()).await;
    assert!(ids_of(&rest).is_empty());
    let again = consumer_poll(&t, &app, &ep, "worker", "", None).await;
    assert!(ids_of(&again).is_empty(), "the cursor was stored");

    // A seek moves the cursor by time: back to the 25th message.
    let (status, msg) = t
        .get(&format!("/api/v1/app/{app}/msg/{}", published[25]))
        .await;
    assert_eq!(status, StatusCode::OK);
    let created: chrono::DateTime<chrono::Utc> =
        msg["timestamp"].as_str().unwrap().parse().unwrap();
    let (status, seek) = t
        .post(
            &format!("/api/v1/app/{app}/poller/{ep}/consumer/worker/seek"),
            json!({"after": created - chrono::Duration::milliseconds(1)}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{seek}");
    assert!(seek["iterator"].is_string());
    let after_seek = consumer_poll(&t, &app, &ep, "worker", "limit=2", None).await;
    assert_eq!(ids_of(&after_seek)[0], published[25]);
    t.stop().await;
}

#[tokio::test]
async fn a_long_poll_answers_within_50_ms_of_a_publish() {
    let t = TestApp::spawn().await;
    let (app, ep) = polling_endpoint(&t, json!({})).await;
    let (status, body) = t
        .get(&format!("/api/v1/app/{app}/poller/{ep}?wait=31"))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_locs(&body), ["query.wait"]);

    let mut iterator = consumer_poll(&t, &app, &ep, "live", "", None).await["iterator"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut delays = Vec::new();
    for round in 0..7 {
        let poll = {
            let client = t.client.clone();
            let url = t.url(&format!(
                "/api/v1/app/{app}/poller/{ep}/consumer/live?wait=10&iterator={iterator}"
            ));
            tokio::spawn(async move {
                let answer: Value = client
                    .get(url)
                    .bearer_auth(crate::helpers::ADMIN_TOKEN)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                (Instant::now(), answer)
            })
        };
        // The poll is waiting by now.
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(
            !poll.is_finished(),
            "round {round}: the poll waits for a message"
        );
        let msg = t
            .publish(
                &app,
                json!({"eventType": "tick", "payload": {"round": round}}),
            )
            .await;
        let acknowledged = Instant::now();
        let (answered, answer) = poll.await.unwrap();
        assert_eq!(ids_of(&answer), [msg]);
        iterator = answer["iterator"].as_str().unwrap().to_owned();
        delays.push(answered.saturating_duration_since(acknowledged));
    }
    delays.sort();
    eprintln!("publish acknowledgement to long-poll answer: {delays:?}");
    let median = delays[delays.len() / 2];
    assert!(
        median < Duration::from_millis(50),
        "median {median:?} from publish acknowledgement to answer ({delays:?})"
    );
    // Without a message the wait ends empty.
    let started = Instant::now();
    let empty = consumer_poll(&t, &app, &ep, "live", "wait=1", Some(&iterator)).await;
    assert!(ids_of(&empty).is_empty());
    assert!(started.elapsed() >= Duration::from_millis(900));
    t.stop().await;
}

#[tokio::test]
async fn a_poll_filters_by_event_type_channel_and_time() {
    let t = TestApp::spawn().await;
    let (app, ep) = polling_endpoint(&t, json!({"filterTypes": ["order.*"]})).await;
    let a = t
        .publish(
            &app,
            json!({"eventType": "order.created", "payload": {}, "channels": ["eu"]}),
        )
        .await;
    t.publish(&app, json!({"eventType": "user.signup", "payload": {}}))
        .await;
    let b = t
        .publish(
            &app,
            json!({"eventType": "order.paid", "payload": {}, "channels": ["us"]}),
        )
        .await;
    let c = t
        .publish(
            &app,
            json!({"eventType": "order.created", "payload": {}, "channels": ["us"]}),
        )
        .await;
    let poll = |query: &str| {
        let path = format!("/api/v1/app/{app}/poller/{ep}?{query}");
        let t = &t;
        async move { t.get(&path).await }
    };
    let (_, all) = poll("").await;
    assert_eq!(
        ids_of(&all),
        [&*a, &*b, &*c],
        "the endpoint's own event types apply"
    );
    assert_eq!(all["done"], true);
    let (_, created) = poll("event_type=order.created").await;
    assert_eq!(ids_of(&created), [&*a, &*c]);
    let (_, us) = poll("channel=us").await;
    assert_eq!(ids_of(&us), [&*b, &*c]);
    let (_, page) = poll("limit=1").await;
    assert_eq!(ids_of(&page), [&*a]);
    assert_eq!(page["done"], false);
    let (_, next) = poll(&format!(
        "limit=5&iterator={}",
        page["iterator"].as_str().unwrap()
    ))
    .await;
    assert_eq!(ids_of(&next), [&*b, &*c]);
    let (status, body) = poll("iterator=not-one").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (_, msg_b) = t.get(&format!("/api/v1/app/{app}/msg/{b}")).await;
    let b_time: chrono::DateTime<chrono::Utc> =
        msg_b["timestamp"].as_str().unwrap().parse().unwrap();
    let after = (b_time - chrono::Duration::milliseconds(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let (_, since) = poll(&format!("after={}", after.replace('+', "%2B"))).await;
    assert_eq!(ids_of(&since)[0], b);
    // `after` with an iterator would be ignored: a 422 naming it instead.
    let (status, body) = poll(&format!(
        "after={}&iterator={}",
        after.replace('+', "%2B"),
        page["iterator"].as_str().unwrap()
    ))
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_locs(&body), ["query.after"]);
    t.stop().await;
}

#[tokio::test]
async fn polled_messages_are_signed_over_the_payload_they_carry() {
    let t = TestApp::spawn().await;
    let (app, ep) = polling_endpoint(&t, json!({})).await;
    let msg = t
        .publish(
            &app,
            json!({"eventType": "order.created", "eventId": "evt-1", "payload": {"b": 2, "a": [1, "x"], "ü": "é"}}),
        )
        .await;
    let (_, answer) = t.get(&format!("/api/v1/app/{app}/poller/{ep}")).await;
    let item = &answer["data"][0];
    assert_eq!(item["id"], msg.as_str());
    assert_eq!(item["eventId"], "evt-1");
    assert_eq!(item["eventType"], "order.created");
    let headers = &item["headers"];
    assert_eq!(headers["webhook-id"], msg.as_str());
    let body = serde_json::to_vec(&item["payload"]).unwrap();
    assert!(crate::delivery::verify(
        SECRET,
        &msg,
        headers["webhook-timestamp"].as_str().unwrap(),
        &body,
        headers["webhook-signature"].as_str().unwrap(),
    ));
    assert!(!crate::delivery::verify(
        SECRET,
        &msg,
        headers["webhook-timestamp"].as_str().unwrap(),
        br#"{"a":[1,"x"],"b":3}"#,
        headers["webhook-signature"].as_str().unwrap(),
    ));
    t.stop().await;
}

/// A stopping server answers its waiting long polls at once instead of holding its shutdown.
#[tokio::test]
async fn a_stopping_server_ends_its_long_polls() {
    let t = TestApp::spawn().await;
    let (app, ep) = polling_endpoint(&t, json!({})).await;
    let url = t.url(&format!("/api/v1/app/{app}/poller/{ep}?wait=30"));
    let client = t.client.clone();
    let poll = tokio::spawn(async move {
        client
            .get(url)
            .bearer_auth(crate::helpers::ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .status()
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    t.stop().await;
    assert_eq!(poll.await.unwrap(), StatusCode::OK);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// Retention: an entry whose payload is gone is skipped, the iterator moving past it.
#[tokio::test]
async fn messages_past_their_payload_retention_are_skipped() {
    let t = TestApp::spawn().await;
    let (app, ep) = polling_endpoint(&t, json!({})).await;
    let old = publish_n(&t, &app, 3).await;
    let purged = t
        .store
        .purge_payloads(chrono::Utc::now() + chrono::Duration::days(400), 1000)
        .await
        .unwrap();
    assert!(purged >= 3, "{purged}");
    let fresh = publish_n(&t, &app, 1).await;
    let answer = consumer_poll(&t, &app, &ep, "late", "", None).await;
    assert_eq!(ids_of(&answer), fresh, "{old:?} expired unread");
    assert_eq!(answer["done"], true);
    t.stop().await;
}
