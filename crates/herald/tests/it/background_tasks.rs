//! Background tasks through the API: replays send exactly what they promise, purges and
//! statistics finish with their counts, and the task list is scoped like everything else.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::receiver::Receiver;

/// Polls a task until it is no longer running; returns it.
pub async fn wait_task(t: &TestApp, started: &Value) -> Value {
    let id = started["id"].as_str().unwrap_or_default();
    assert!(id.starts_with("qtask_"), "{started}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, task) = t.get(&format!("/api/v1/background-task/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{task}");
        if task["status"] != "running" {
            return task;
        }
        assert!(Instant::now() < deadline, "still running: {task}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ids_received(r: &Receiver, path: &str) -> HashMap<String, usize> {
    let mut ids = HashMap::new();
    for req in r.received(path) {
        *ids.entry(req.header("webhook-id").unwrap_or_default().to_owned())
            .or_insert(0) += 1;
    }
    ids
}

#[tokio::test]
async fn replay_missing_sends_exactly_the_missing_messages_once() {
    let t = TestApp::spawn().await;
    let r = Receiver::start().await;
    let app = t.create_app("Replay").await;
    let since = chrono::Utc::now() - chrono::Duration::seconds(1);
    let mut before = Vec::new();
    for (et, n) in [("a.b", 1), ("a.b", 2), ("c.d", 3)] {
        before.push(
            t.publish(&app, json!({"eventType": et, "payload": {"n": n}}))
                .await,
        );
    }
    // Created after those messages, subscribed to `a.b` only.
    let ep = t
        .create_endpoint(&app, json!({"url": r.url("/b"), "filterTypes": ["a.b"]}))
        .await;
    // Disabled for a while: a message published then does not reach it.
    let (status, _) = t
        .call(
            Method::PATCH,
            &format!("/api/v1/app/{app}/endpoint/{ep}"),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let while_disabled = t
        .publish(&app, json!({"eventType": "a.b", "payload": {"n": 4}}))
        .await;
    let (status, out) = t
        .post(
            &format!("/api/v1/app/{app}/endpoint/{ep}/replay-missing"),
            json!({"since": since}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "a disabled endpoint: {out}");
    t.call(
        Method::PATCH,
        &format!("/api/v1/app/{app}/endpoint/{ep}"),
        Some(json!({"disabled": false})),
    )
    .await;
    let normal = t
        .publish(&app, json!({"eventType": "a.b", "payload": {"n": 5}}))
        .await;
    r.wait_for("/b", 1, Duration::from_secs(10)).await;

    let (status, started) = t
        .post(
            &format!("/api/v1/app/{app}/endpoint/{ep}/replay-missing"),
            json!({"since": since}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    assert_eq!(started["task"], "endpoint.replay");
    let task = wait_task(&t, &started).await;
    assert_eq!(task["status"], "finished", "{task}");
    assert_eq!(task["data"]["messagesSent"], 3, "{task}");
    r.wait_for("/b", 4, Duration::from_secs(10)).await;

    // Again: nothing is missing any more.
    let (_, again) = t
        .post(
            &format!("/api/v1/app/{app}/endpoint/{ep}/replay-missing"),
            json!({"since": since}),
        )
        .await;
    let task = wait_task(&t, &again).await;
    assert_eq!(task["data"]["messagesSent"], 0, "{task}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = ids_received(&r, "/b");
    let mut want = vec![before[0].clone(), before[1].clone(), while_disabled, normal];
    want.sort();
    let mut have: Vec<String> = got.keys().cloned().collect();
    have.sort();
    assert_eq!(have, want, "the a.b messages, not the c.d one");
    assert!(got.values().all(|n| *n == 1), "each once: {got:?}");
}

#[tokio::test]
async fn bulk_replay_sends_a_filtered_window_again() {
    let t = TestApp::spawn().await;
    let r = Receiver::start().await;
    let app = t.create_app("Bulk").await;
    let ep = t
        .create_endpoint(&app, json!({"url": r.url("/bulk")}))
        .await;
    let since = chrono::Utc::now() - chrono::Duration::seconds(1);
    let tagged = t
        .publish(
            &app,
            json!({"eventType": "a.b", "payload": {"n": 1}, "tags": ["again"]}),
        )
        .await;
    t.publish(&app, json!({"eventType": "a.b", "payload": {"n": 2}}))
        .await;
    t.publish(&app, json!({"eventType": "c.d", "payload": {"n": 3}}))
        .await;
    r.wait_for("/bulk", 3, Duration::from_secs(10)).await;

    let (status, started) = t
        .post(
            &format!("/api/v1/app/{app}/endpoint/{ep}/bulk-replay"),
            json!({"since": since, "tag": "again", "status": 0, "statusCodeClass": 200}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    assert_eq!(started["task"], "endpoint.bulk-replay");
    let task = wait_task(&t, &started).await;
    assert_eq!(task["data"]["messagesSent"], 1, "{task}");
    r.wait_for("/bulk", 4, Duration::from_secs(10)).await;
    let got = ids_received(&r, "/bulk");
    assert_eq!(got.get(&tagged), Some(&2), "{got:?}");

    let (_, started) = t
        .post(
            &format!("/api/v1/app/{app}/endpoint/{ep}/bulk-replay"),
            json!({"since": since, "eventTypes": ["a.b"]}),
        )
        .await;
    let task = wait_task(&t, &started).await;
    assert_eq!(task["data"]["messagesSent"], 2, "{task}");
    r.wait_for("/bulk", 6, Duration::from_secs(10)).await;

    let (status, out) = t
        .post(
            &format!("/api/v1/app/{app}/endpoint/{ep}/bulk-replay"),
            json!({"since": since, "statusCodeClass": 250}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{out}");
}

#[tokio::test]
async fn expunging_all_contents_runs_as_a_task_and_bulk_expunge_answers_per_id() {
    let t = TestApp::spawn().await;
    let app = t.create_app("Purge").await;
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(
            t.publish(
                &app,
                json!({"eventType": "a.b", "eventId": format!("evt-{n}"), "payload": {"n": n}}),
            )
            .await,
        );
    }
    let (status, out) = t
        .post(
            &format!("/api/v1/app/{app}/msg/bulk-expunge"),
            json!({"ids": [ids[0], "evt-1", "nope"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(
        out["results"],
        json!({ids[0].clone(): "expunged", "evt-1": "expunged", "nope": "not-found"})
    );
    let (_, msg) = t.get(&format!("/api/v1/app/{app}/msg/{}", ids[1])).await;
    assert!(
        msg["payload"].is_null() || msg["payload"] == json!({}),
        "{msg}"
    );
    let (_, msg) = t.get(&format!("/api/v1/app/{app}/msg/{}", ids[2])).await;
    assert_eq!(msg["payload"], json!({"n": 2}));

    let (status, started) = t
        .call(
            Method::POST,
            &format!("/api/v1/app/{app}/msg/expunge-all-contents"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    assert_eq!(started["task"], "application.purge_content");
    let task = wait_task(&t, &started).await;
    assert_eq!(task["status"], "finished");
    assert_eq!(
        task["data"]["messagesPurged"], 1,
        "only one payload was left: {task}"
    );
    let (_, msg) = t.get(&format!("/api/v1/app/{app}/msg/{}", ids[2])).await;
    assert!(
        msg["payload"].is_null() || msg["payload"] == json!({}),
        "{msg}"
    );
}

#[tokio::test]
async fn usage_statistics_run_as_tasks_for_unscoped_tokens() {
    let t = TestApp::spawn().await;
    let r = Receiver::start().await;
    let one = t.create_app("One").await;
    let two = t.create_app("Two").await;
    t.create_endpoint(
        &one,
        json!({"url": r.url("/1"), "filterTypes": ["a.b", "c.d"]}),
    )
    .await;
    t.create_endpoint(&one, json!({"url": r.url("/2")})).await;
    t.create_endpoint(&two, json!({"url": r.url("/3"), "filterTypes": ["a.b"]}))
        .await;
    let since = chrono::Utc::now() - chrono::Duration::seconds(1);
    t.publish(&one, json!({"eventType": "a.b", "payload": {}}))
        .await;
    t.publish(&two, json!({"eventType": "a.b", "payload": {}}))
        .await;
    let until = chrono::Utc::now() + chrono::Duration::seconds(1);

    let (status, started) = t
        .post(
            "/api/v1/stats/usage/app",
            json!({"since": since, "until": until, "appIds": [one, "missing-app"]}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    assert_eq!(started["unresolvedAppIds"], json!(["missing-app"]));
    let task = wait_task(&t, &started).await;
    assert_eq!(task["task"], "application.stats");
    assert_eq!(
        task["data"]["appStats"],
        json!([{"appId": one, "appUid": null, "messageDestinations": 2}])
    );
    let (_, started) = t
        .post(
            "/api/v1/stats/usage/app",
            json!({"since": since, "until": until}),
        )
        .await;
    let task = wait_task(&t, &started).await;
    let stats = task["data"]["appStats"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(stats.len(), 2, "{task}");
    let (status, out) = t
        .post(
            "/api/v1/stats/usage/app",
            json!({"since": since, "until": until, "appIds": ["missing-app"]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{out}");

    let (status, started) = t
        .call(Method::PUT, "/api/v1/stats/usage/event-types", None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let task = wait_task(&t, &started).await;
    let rows = task["data"]["event_types"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let row_of = |app: &str| {
        rows.iter()
            .find(|row| row["appId"] == app)
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(
        row_of(&one),
        json!({"appId": one, "explicitlySubscribedEventTypes": ["a.b", "c.d"], "hasCatchAllEndpoint": true})
    );
    assert_eq!(
        row_of(&two),
        json!({"appId": two, "explicitlySubscribedEventTypes": ["a.b"], "hasCatchAllEndpoint": false})
    );

    let scoped = t.api_key(json!({"role": "app", "appId": one})).await;
    let (status, _) = t
        .call_as(
            &scoped,
            Method::PUT,
            "/api/v1/stats/usage/event-types",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_scoped_token_sees_only_its_applications_tasks() {
    let t = TestApp::spawn().await;
    let r = Receiver::start().await;
    let one = t.create_app("One").await;
    let two = t.create_app("Two").await;
    let ep_one = t.create_endpoint(&one, json!({"url": r.url("/1")})).await;
    let ep_two = t.create_endpoint(&two, json!({"url": r.url("/2")})).await;
    let since = chrono::Utc::now() - chrono::Duration::hours(1);
    let (_, mine) = t
        .post(
            &format!("/api/v1/app/{one}/endpoint/{ep_one}/recover"),
            json!({"since": since}),
        )
        .await;
    assert_eq!(mine["task"], "endpoint.recover");
    let (_, theirs) = t
        .post(
            &format!("/api/v1/app/{two}/endpoint/{ep_two}/replay-missing"),
            json!({"since": since}),
        )
        .await;
    wait_task(&t, &mine).await;
    wait_task(&t, &theirs).await;

    let scoped = t.api_key(json!({"role": "app", "appId": one})).await;
    let (status, list) = t
        .call_as(&scoped, Method::GET, "/api/v1/background-task", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let ids: Vec<&Value> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["id"])
        .collect();
    assert_eq!(ids, vec![&mine["id"]]);
    let (status, _) = t
        .call_as(
            &scoped,
            Method::GET,
            &format!("/api/v1/background-task/{}", theirs["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (_, all) = t.get("/api/v1/background-task?task=endpoint.replay").await;
    let ids: Vec<&Value> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["id"])
        .collect();
    assert_eq!(ids, vec![&theirs["id"]]);
    let (_, finished) = t.get("/api/v1/background-task?status=finished").await;
    assert_eq!(finished["data"].as_array().map(Vec::len), Some(2));
    let (status, _) = t.get("/api/v1/background-task?task=sdk.generate").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = t.get("/api/v1/background-task/qtask_nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
