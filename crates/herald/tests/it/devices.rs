//! Devices end to end: the status rules for every (from, to) pair and device kind, concurrent
//! reports, channel scoping by team, Electric Imp's blessing and BlinkUp (JSON and form
//! encoded), device groups, list filters and the catalogues.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, TestApp};
use crate::receiver::Receiver;

const WAIT: Duration = Duration::from_secs(10);
const STATUSES: [&str; 4] = ["online", "offline", "utilizing", "unplugged"];

async fn put_device(t: &TestApp, app: &str, id: &str, body: Value) -> Value {
    let (status, out) = t
        .call(
            Method::PUT,
            &format!("/api/v1/app/{app}/device/{id}"),
            Some(body),
        )
        .await;
    assert!(status.is_success(), "{out}");
    out
}

async fn report(t: &TestApp, app: &str, id: &str, status: &str) -> Value {
    let (code, out) = t
        .post(
            &format!("/api/v1/app/{app}/device/{id}/status"),
            json!({"status": status}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{out}");
    out
}

fn event_type(status: &str) -> &'static str {
    match status {
        "online" => "device.status.online",
        "offline" => "device.status.offline",
        "utilizing" => "device.state.utilizing",
        _ => "device.state.unplugged",
    }
}

fn description(status: &str) -> &'static str {
    match status {
        "online" => "Online",
        "offline" => "Offline",
        "utilizing" => "Utilizing",
        _ => "Unplugged",
    }
}

#[tokio::test]
async fn every_status_pair_for_every_kind() {
    let t = TestApp::spawn().await;
    let app = t.create_app("Kobiton").await;
    // Kobiton's `orgId` is the application's numeric `orgId`.
    let (status, _) = t
        .call(
            Method::PATCH,
            &format!("/api/v1/app/{app}"),
            Some(json!({"orgId": 2})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let org = 2;
    let mut n = 0;
    for kind in ["private", "local", "public"] {
        for from in [
            None,
            Some("online"),
            Some("offline"),
            Some("utilizing"),
            Some("unplugged"),
        ] {
            for to in STATUSES {
                n += 1;
                let id = format!("udid-{n}");
                put_device(
                    &t,
                    &app,
                    &id,
                    json!({"name": "Galaxy Note 8", "kind": kind}),
                )
                .await;
                if let Some(from) = from {
                    report(&t, &app, &id, from).await;
                }
                let out = report(&t, &app, &id, to).await;
                let expected = if from == Some(to) {
                    "unchanged"
                } else if to == "online" && from == Some("utilizing") {
                    "disallowed"
                } else if kind == "public" {
                    "changed"
                } else {
                    "published"
                };
                let case = format!("{kind} {from:?} -> {to}");
                assert_eq!(out["outcome"], expected, "{case}: {out}");
                let status_now = if matches!(expected, "published" | "changed") {
                    Some(to)
                } else {
                    from
                };
                assert_eq!(out["device"]["status"].as_str(), status_now, "{case}");
                if expected != "published" {
                    assert!(out["messageId"].is_null(), "{case}");
                    assert!(out["reason"].is_string(), "{case}");
                    continue;
                }
                let msg = out["messageId"].as_str().unwrap();
                let (_, message) = t.get(&format!("/api/v1/app/{app}/msg/{msg}")).await;
                assert_eq!(message["eventType"], event_type(to), "{case}");
                let payload = &message["payload"];
                assert_eq!(
                    payload,
                    &json!({
                        "creationTime": payload["creationTime"],
                        "eventType": "DEVICE",
                        "eventActivity": event_type(to),
                        "eventDescription": description(to),
                        "deviceUdid": id,
                        "deviceName": "Galaxy Note 8",
                        "orgId": org,
                        "webhookId": null,
                        "webhookName": null,
                    }),
                    "{case}"
                );
            }
        }
    }
    t.stop().await;
}

#[tokio::test]
async fn concurrent_reports_to_one_device_serialize() {
    let t = TestApp::spawn().await;
    let app = t.create_app("Busy").await;
    put_device(
        &t,
        &app,
        "dev-1",
        json!({"name": "Busy", "kind": "private"}),
    )
    .await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let client = t.client.clone();
        let url = t.url(&format!("/api/v1/app/{app}/device/dev-1/status"));
        tasks.push(tokio::spawn(async move {
            let response = client
                .post(url)
                .bearer_auth(ADMIN_TOKEN)
                .json(&json!({"status": STATUSES[(i * 7 + i / 3) % 4]}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            response.json::<Value>().await.unwrap()
        }));
    }
    let mut published = Vec::new();
    for task in tasks {
        let out = task.await.unwrap();
        if let Some(msg) = out["messageId"].as_str() {
            published.push(msg.to_owned());
        }
    }
    let (_, history) = t
        .get(&format!("/api/v1/app/{app}/device/dev-1/history?limit=250"))
        .await;
    let history = history["data"].as_array().unwrap().clone();
    assert!(!history.is_empty());
    // Every transition starts where the previous one ended, and each published one has its
    // own event: the history and the events agree.
    let mut previous: Option<String> = None;
    for (i, step) in history.iter().enumerate() {
        assert_eq!(step["seq"], i as i64 + 1);
        assert_eq!(step["from"].as_str().map(str::to_owned), previous, "{step}");
        assert_ne!(step["from"], step["to"]);
        previous = step["to"].as_str().map(str::to_owned);
    }
    let mut from_history: Vec<String> = history
        .iter()
        .map(|s| s["messageId"].as_str().unwrap().to_owned())
        .collect();
    from_history.sort();
    published.sort();
    assert_eq!(from_history, published);
    let (_, device) = t.get(&format!("/api/v1/app/{app}/device/dev-1")).await;
    assert_eq!(device["status"].as_str(), previous.as_deref());
    t.stop().await;
}

#[tokio::test]
async fn team_scoped_endpoints_get_their_devices_events_named_for_them() {
    let r = Receiver::start().await;
    let t = TestApp::spawn().await;
    let app = t.create_app("Lab").await;
    let qa = t
        .create_endpoint(
            &app,
            json!({"url": r.url("/qa"), "channels": ["team:qa"], "description": "QA hook"}),
        )
        .await;
    put_device(
        &t,
        &app,
        "qa-phone",
        json!({"name": "QA phone", "kind": "local", "teams": ["qa"]}),
    )
    .await;
    put_device(
        &t,
        &app,
        "ops-phone",
        json!({"name": "Ops phone", "kind": "private", "teams": ["ops"], "bundles": ["b1"]}),
    )
    .await;
    report(&t, &app, "ops-phone", "offline").await;
    report(&t, &app, "qa-phone", "utilizing").await;
    let got = r.wait_for("/qa", 1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(r.received("/qa").len(), 1, "only the qa team's device");
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body["deviceUdid"], "qa-phone");
    assert_eq!(body["eventActivity"], "device.state.utilizing");
    let (_, endpoint) = t.get(&format!("/api/v1/app/{app}/endpoint/{qa}")).await;
    assert_eq!(body["webhookId"], endpoint["serial"]);
    assert!(
        body["webhookId"].is_i64(),
        "Kobiton's webhookId is a number"
    );
    // Without a name, the description names the webhook.
    assert_eq!(body["webhookName"], "QA hook");
    // Every list filters by such channels.
    for list in [
        format!("/api/v1/app/{app}/msg?channel=team:qa"),
        format!("/api/v1/app/{app}/attempt/endpoint/{qa}?channel=team:qa"),
        format!("/api/v1/app/{app}/endpoint/{qa}/msg?channel=team:qa"),
    ] {
        let (status, out) = t.get(&list).await;
        assert_eq!(status, StatusCode::OK, "{list}: {out}");
        assert_eq!(out["data"].as_array().unwrap().len(), 1, "{list}: {out}");
    }
    t.stop().await;
}

#[tokio::test]
async fn blessing_and_blinkup_as_json_and_as_form() {
    let r = Receiver::start().await;
    let t = TestApp::spawn().await;
    let app = t.create_app("Imp").await;
    for (path, extra) in [("/json", json!({})), ("/form", json!({"encoding": "form"}))] {
        let mut body = json!({"url": r.url(path), "channels": ["group:production"], "eventTypes": ["blessing", "blinkup"]});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        t.create_endpoint(&app, body).await;
    }
    let test_hook = t
        .create_endpoint(
            &app,
            json!({"url": r.url("/test"), "channels": ["group:test-line"]}),
        )
        .await;
    assert!(test_hook.starts_with("ep_"));
    put_device(
        &t,
        &app,
        "30000c2a690a1e0b",
        json!({"name": "Imp 1", "kind": "private", "group": "production"}),
    )
    .await;
    let bless = format!("/api/v1/app/{app}/device/30000c2a690a1e0b/bless");
    let (status, out) = t.post(&bless, json!({"imp_id": "0c2a690a1e0b"})).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    let (status, _) = t.post(&bless, json!({"imp_id": "0c2a690a1e0b"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "blessing twice");
    let (status, out) = t
        .post(
            &format!("/api/v1/app/{app}/device/30000c2a690a1e0b/activate"),
            json!({"plan_id": "a1b2c3d4e5f60718", "token": "0123456789abcdef"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{out}");

    let json_bodies: Vec<String> = r
        .wait_for("/json", 2, WAIT)
        .await
        .iter()
        .map(|x| String::from_utf8(x.body.clone()).unwrap())
        .collect();
    assert!(
        json_bodies
            .contains(&r#"{"device_id":"30000c2a690a1e0b","imp_id":"0c2a690a1e0b"}"#.to_owned()),
        "{json_bodies:?}"
    );
    assert!(json_bodies.contains(&r#"{"device_id":"30000c2a690a1e0b","plan_id":"a1b2c3d4e5f60718","token":"0123456789abcdef"}"#.to_owned()), "{json_bodies:?}");
    let form = r.wait_for("/form", 2, WAIT).await;
    let mut form_bodies: Vec<String> = form
        .iter()
        .map(|x| String::from_utf8(x.body.clone()).unwrap())
        .collect();
    form_bodies.sort();
    assert_eq!(
        form_bodies,
        vec![
            "device_id=30000c2a690a1e0b&imp_id=0c2a690a1e0b".to_owned(),
            "device_id=30000c2a690a1e0b&plan_id=a1b2c3d4e5f60718&token=0123456789abcdef".to_owned(),
        ]
    );
    assert_eq!(
        form[0].header("content-type"),
        Some("application/x-www-form-urlencoded")
    );

    // A test group's device: not blessed, so activation needs the group's permission.
    put_device(
        &t,
        &app,
        "dut-7",
        json!({"name": "DUT", "kind": "private", "group": "test-line"}),
    )
    .await;
    let activate = format!("/api/v1/app/{app}/device/dut-7/activate");
    let body = json!({"plan_id": "p1", "token": "t1"});
    let (status, out) = t.post(&activate, body.clone()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{out}");
    let (status, out) = t
        .call(
            Method::PUT,
            &format!("/api/v1/app/{app}/device-group/test-line"),
            Some(json!({"test": true, "allowUnblessedActivation": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    let (status, out) = t.post(&activate, body).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    r.wait_for("/test", 1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        r.received("/json").len(),
        2,
        "production hooks see no test-group events"
    );
    t.stop().await;
}

#[tokio::test]
async fn device_list_filters() {
    let t = TestApp::spawn().await;
    let app = t.create_app("Fleet").await;
    put_device(&t, &app, "a", json!({"name": "Pixel 7", "kind": "private", "group": "g1", "teams": ["qa", "ops"], "metadata": {"os": "android"}})).await;
    put_device(&t, &app, "b", json!({"name": "iPhone 15", "kind": "public", "group": "g1", "bundles": ["b1"], "metadata": {"os": "ios"}})).await;
    put_device(
        &t,
        &app,
        "c",
        json!({"name": "Pixel 8", "kind": "local", "teams": ["qa"]}),
    )
    .await;
    report(&t, &app, "c", "offline").await;
    let cases = [
        ("", vec!["a", "b", "c"]),
        ("name=Pixel", vec!["a", "c"]),
        ("kind=public", vec!["b"]),
        ("group=g1", vec!["a", "b"]),
        ("teams=qa", vec!["a", "c"]),
        ("teams=qa&teams=ops", vec!["a"]),
        ("bundles=b1", vec!["b"]),
        ("status=offline", vec!["c"]),
        ("metadata=os%3Dios", vec!["b"]),
        ("name=Pixel&teams=ops", vec!["a"]),
        ("name=50%25", vec![]),
    ];
    for (query, expected) in cases {
        let (status, out) = t.get(&format!("/api/v1/app/{app}/device?{query}")).await;
        assert_eq!(status, StatusCode::OK, "{query}: {out}");
        let ids: Vec<&str> = out["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, expected, "{query}");
    }
    let (status, out) = t
        .get(&format!("/api/v1/app/{app}/device?metadata=nokey"))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{out}");
    // Replacing a device's description keeps its status.
    let out = put_device(
        &t,
        &app,
        "c",
        json!({"name": "Pixel 8 Pro", "kind": "local"}),
    )
    .await;
    assert_eq!(out["status"], "offline");
    t.stop().await;
}

#[tokio::test]
async fn catalogues_import_once_from_the_api_and_the_command_line() {
    let t = TestApp::spawn().await;
    let (status, out) = t
        .post("/api/v1/event-type/import", json!({"catalog": "impilo"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["created"].as_array().unwrap().len(), 16);
    let (_, again) = t
        .post("/api/v1/event-type/import", json!({"catalog": "impilo"}))
        .await;
    assert_eq!(again["created"], json!([]));
    assert_eq!(again["unchanged"].as_array().unwrap().len(), 16);
    let (status, _) = t
        .post("/api/v1/event-type/import", json!({"catalog": "nope"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, weight) = t.get("/api/v1/event-type/reading.weight").await;
    assert!(
        weight["schemas"]["1"]["examples"][0].is_object(),
        "{weight}"
    );

    let bin = env!("CARGO_BIN_EXE_herald");
    let base = t.base.clone();
    let run = move |name: &'static str| {
        let base = base.clone();
        async move {
            tokio::process::Command::new(bin)
                .args(["catalog", "import", name, "--server", &base])
                .env("HERALD_TOKEN", ADMIN_TOKEN)
                .output()
                .await
                .unwrap()
        }
    };
    let out = run("kobiton").await;
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("kobiton: 4 created"),
        "{out:?}"
    );
    let out = run("kobiton").await;
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("0 created, 4 already present"),
        "{out:?}"
    );
    let out = run("nope").await;
    assert_eq!(out.status.code(), Some(2));
    t.stop().await;
}
