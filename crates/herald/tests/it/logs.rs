//! Delivery logs end to end: the Svix attempt, destination and statistics routes, the delivery
//! log's filters and pages, and retention.

use std::collections::BTreeSet;
use std::time::Duration;

use herald_core::model::DeliveryStatus;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::receiver::{Receiver, Step};

const HOUR: Duration = Duration::from_secs(3600);

fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

fn ids(list: &Value, field: &str) -> Vec<String> {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x[field].as_str().unwrap().to_owned())
        .collect()
}

impl TestApp {
    /// Waits until `endpoint` has had `n` attempts of `msg`.
    async fn wait_attempts(&self, msg: &str, endpoint: &str, n: u32) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let found = self
                .deliveries(msg)
                .await
                .into_iter()
                .find(|d| d.endpoint_id.as_str() == endpoint);
            if found.as_ref().is_some_and(|d| d.attempts >= n) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{msg} to {endpoint}: {n} attempts expected, have {found:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn get_ok(&self, path: &str) -> Value {
        let (status, body) = self.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        body
    }
}

#[tokio::test]
async fn attempt_routes_filters_and_content_deletion() {
    let r = Receiver::start().await;
    r.always(
        "/bad",
        Step::Respond(500, vec![], r#"{"error":"down"}"#.into()),
    );
    let t = TestApp::spawn_with(|c| c.delivery.retry_schedule = vec![HOUR]).await;
    let app = t.create_app("Acme").await;
    let good = t
        .create_endpoint(&app, json!({"url": r.url("/good"), "uid": "good"}))
        .await;
    let bad = t.create_endpoint(&app, json!({"url": r.url("/bad")})).await;
    let m1 = t
        .publish(
            &app,
            json!({"eventType": "order.created", "payload": {"n": 1}, "channels": ["eu"]}),
        )
        .await;
    // The second message's attempts must come strictly later than the first's (the `before`
    // and `after` filters below compare millisecond timestamps).
    t.wait_status(&m1, &good, DeliveryStatus::Success, Duration::from_secs(10))
        .await;
    t.wait_attempts(&m1, &bad, 1).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let m2 = t
        .publish(
            &app,
            json!({"eventType": "order.paid", "payload": {"n": 2}}),
        )
        .await;
    for m in [&m1, &m2] {
        t.wait_status(m, &good, DeliveryStatus::Success, Duration::from_secs(10))
            .await;
        t.wait_attempts(m, &bad, 1).await;
    }
    let base = format!("/api/v1/app/{app}");

    // Attempts to an endpoint, newest first, in the reference shape.
    let list = t.get_ok(&format!("{base}/attempt/endpoint/{bad}")).await;
    assert_eq!(ids(&list, "msgId"), vec![m2.clone(), m1.clone()]);
    assert_eq!(list["done"], true);
    let first = &list["data"][0];
    assert_eq!(
        keys(first),
        BTreeSet::from([
            "id",
            "msgId",
            "endpointId",
            "url",
            "response",
            "responseStatusCode",
            "responseDurationMs",
            "status",
            "statusText",
            "timestamp",
            "triggerType"
        ])
    );
    assert_eq!(first["status"], 2);
    assert_eq!(first["statusText"], "fail");
    assert_eq!(first["responseStatusCode"], 500);
    assert_eq!(first["response"], r#"{"error":"down"}"#);
    assert_eq!(first["triggerType"], 0);
    assert_eq!(first["url"], r.url("/bad"));
    assert_eq!(first["endpointId"], bad.as_str());

    let count = |query: String| {
        let t = &t;
        let base = base.clone();
        async move {
            let (status, body) = t.get(&format!("{base}/attempt/{query}")).await;
            assert_eq!(status, StatusCode::OK, "{query}: {body}");
            body["data"].as_array().unwrap().len()
        }
    };
    assert_eq!(count(format!("endpoint/{bad}?status=0")).await, 0);
    assert_eq!(count(format!("endpoint/{bad}?status=2")).await, 2);
    assert_eq!(count(format!("endpoint/{bad}?status=1")).await, 0);
    assert_eq!(
        count(format!("endpoint/{bad}?status_code_class=500")).await,
        2
    );
    assert_eq!(
        count(format!("endpoint/{good}?status_code_class=200")).await,
        2
    );
    assert_eq!(
        count(format!("endpoint/{good}?status_code_class=400")).await,
        0
    );
    assert_eq!(
        count(format!("endpoint/{bad}?event_types=order.paid")).await,
        1
    );
    assert_eq!(
        count(format!(
            "endpoint/{bad}?event_types=order.paid,order.created"
        ))
        .await,
        2
    );
    assert_eq!(count(format!("endpoint/{bad}?channel=eu")).await, 1);
    assert_eq!(count("endpoint/good?channel=eu".into()).await, 1);
    let stamp = first["timestamp"].as_str().unwrap().to_owned();
    assert_eq!(count(format!("endpoint/{bad}?after={stamp}")).await, 0);
    assert_eq!(count(format!("endpoint/{bad}?before={stamp}")).await, 1);
    let no_content = t
        .get_ok(&format!("{base}/attempt/endpoint/{bad}?with_content=false"))
        .await;
    assert_eq!(no_content["data"][0]["response"], "");
    // Pages.
    let page1 = t
        .get_ok(&format!("{base}/attempt/endpoint/{bad}?limit=1"))
        .await;
    assert_eq!(ids(&page1, "msgId"), vec![m2.clone()]);
    assert_eq!(page1["done"], false);
    let page2 = t
        .get_ok(&format!(
            "{base}/attempt/endpoint/{bad}?limit=1&iterator={}",
            page1["iterator"].as_str().unwrap()
        ))
        .await;
    assert_eq!(ids(&page2, "msgId"), vec![m1.clone()]);
    assert_eq!(page2["done"], true);
    // Bad filters are 422, unknown endpoints 404.
    let (status, _) = t
        .get(&format!("{base}/attempt/endpoint/{bad}?status=7"))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = t
        .get(&format!(
            "{base}/attempt/endpoint/{bad}?status_code_class=404"
        ))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = t.get(&format!("{base}/attempt/endpoint/nope")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Attempts of a message, by endpoint id or uid.
    assert_eq!(count(format!("msg/{m1}")).await, 2);
    assert_eq!(count(format!("msg/{m1}?endpoint_id=good")).await, 1);
    assert_eq!(
        count(format!("msg/{m1}?endpoint_id={bad}&status=2")).await,
        1
    );
    assert_eq!(count(format!("msg/{m1}?endpoint_id=missing")).await, 0);
    let by_msg = t
        .get_ok(&format!("{base}/attempt/msg/{m1}?endpoint_id={bad}"))
        .await;
    let attempt = by_msg["data"][0].clone();
    let attempt_id = attempt["id"].as_str().unwrap();

    // One attempt; deleting its response body keeps the attempt.
    let mut one = t
        .get_ok(&format!("{base}/msg/{m1}/attempt/{attempt_id}"))
        .await;
    // The single attempt also has the request as sent (see `portal::attempts_record_…`).
    let request = one
        .as_object_mut()
        .unwrap()
        .remove("requestHeaders")
        .unwrap();
    assert_eq!(request["webhook-id"], json!(m1));
    assert_eq!(one, attempt);
    let (status, _) = t
        .get(&format!("{base}/msg/{m2}/attempt/{attempt_id}"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = t
        .call(
            Method::DELETE,
            &format!("{base}/msg/{m1}/attempt/{attempt_id}/content"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let one = t
        .get_ok(&format!("{base}/msg/{m1}/attempt/{attempt_id}"))
        .await;
    assert_eq!(one["response"], "");
    assert_eq!(one["responseStatusCode"], 500);

    // Where a message went, with each delivery's state.
    let dests = t.get_ok(&format!("{base}/msg/{m1}/endpoint")).await;
    assert_eq!(dests["data"].as_array().unwrap().len(), 2);
    for d in dests["data"].as_array().unwrap() {
        assert_eq!(
            keys(d),
            BTreeSet::from([
                "id",
                "uid",
                "url",
                "description",
                "eventTypes",
                "channels",
                "disabled",
                "throttleRate",
                "createdAt",
                "updatedAt",
                "status",
                "statusText",
                "nextAttempt"
            ])
        );
        if d["id"] == good.as_str() {
            assert_eq!(
                (d["status"].clone(), d["nextAttempt"].clone()),
                (json!(0), Value::Null)
            );
            assert_eq!(d["uid"], "good");
        } else {
            assert_eq!(d["status"], 1);
            assert_eq!(d["statusText"], "pending");
            let next: chrono::DateTime<chrono::Utc> =
                d["nextAttempt"].as_str().unwrap().parse().unwrap();
            assert!(next > chrono::Utc::now() + chrono::Duration::minutes(30));
        }
    }
    let one_dest = t.get_ok(&format!("{base}/msg/{m1}/endpoint?limit=1")).await;
    assert_eq!(one_dest["done"], false);

    // What an endpoint was sent, with each delivery's state.
    let sent = t.get_ok(&format!("{base}/endpoint/{bad}/msg")).await;
    assert_eq!(ids(&sent, "id"), vec![m2.clone(), m1.clone()]);
    assert_eq!(
        keys(&sent["data"][0]),
        BTreeSet::from([
            "id",
            "eventType",
            "eventId",
            "channels",
            "payload",
            "timestamp",
            "status",
            "statusText",
            "nextAttempt"
        ])
    );
    assert_eq!(sent["data"][0]["payload"], json!({"n": 2}));
    assert_eq!(sent["data"][0]["status"], 1);
    let sent_count = |query: &str| {
        let t = &t;
        let path = format!("{base}/endpoint/{query}");
        async move { t.get_ok(&path).await["data"].as_array().unwrap().len() }
    };
    assert_eq!(sent_count(&format!("{bad}/msg?status=1")).await, 2);
    assert_eq!(sent_count(&format!("{bad}/msg?status=0")).await, 0);
    assert_eq!(sent_count("good/msg?status=0").await, 2);
    assert_eq!(sent_count("good/msg?event_types=order.created").await, 1);
    assert_eq!(sent_count("good/msg?channel=eu").await, 1);
    assert_eq!(sent_count(&format!("good/msg?after={stamp}")).await, 0);
    let light = t
        .get_ok(&format!("{base}/endpoint/good/msg?with_content=false"))
        .await;
    assert_eq!(light["data"][0]["payload"], json!({}));

    // Statistics.
    let stats = t.get_ok(&format!("{base}/endpoint/{bad}/stats")).await;
    assert_eq!(
        stats,
        json!({"success": 0, "pending": 2, "sending": 0, "fail": 0, "canceled": 0})
    );
    let stats = t.get_ok(&format!("{base}/endpoint/good/stats")).await;
    assert_eq!(stats["success"], 2);
    let since = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let stats = t
        .get_ok(&format!(
            "{base}/endpoint/good/stats?since={}",
            urlencode(&since)
        ))
        .await;
    assert_eq!(stats["success"], 0);
    let (status, _) = t
        .get(&format!(
            "{base}/endpoint/good/stats?since={}&until=2020-01-01T00:00:00Z",
            urlencode(&since)
        ))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // Deleting a message's payload: the message, its deliveries and attempts stay; it cannot
    // be resent.
    let (status, _) = t
        .call(Method::DELETE, &format!("{base}/msg/{m2}/content"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let msg = t.get_ok(&format!("{base}/msg/{m2}")).await;
    assert_eq!(msg["payload"], json!({}));
    let (status, _) = t
        .post(
            &format!("{base}/msg/{m2}/endpoint/{good}/resend"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(count(format!("msg/{m2}")).await, 2);
    let (status, _) = t
        .call(Method::DELETE, &format!("{base}/msg/nope/content"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Another application's token sees none of it.
    let other = t.create_app("Other").await;
    let token = t.api_key(json!({"role": "app", "appId": other})).await;
    for path in [
        format!("{base}/attempt/endpoint/{bad}"),
        format!("{base}/attempt/msg/{m1}"),
        format!("{base}/msg/{m1}/attempt/{attempt_id}"),
        format!("{base}/msg/{m1}/endpoint"),
        format!("{base}/endpoint/{bad}/msg"),
        format!("{base}/endpoint/{bad}/stats"),
    ] {
        let (status, _) = t.call_as(&token, Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    t.stop().await;
}

fn urlencode(text: &str) -> String {
    text.replace('+', "%2B").replace(':', "%3A")
}

#[tokio::test]
async fn delivery_log_filters_pages_and_totals() {
    let r = Receiver::start().await;
    r.always("/fail", Step::Status(500));
    let t = TestApp::spawn_with(|c| c.delivery.retry_schedule = vec![HOUR]).await;
    let app = t.create_app("Acme").await;
    let ok = t
        .create_endpoint(&app, json!({"url": r.url("/ok"), "uid": "ok"}))
        .await;
    let failing = t
        .create_endpoint(&app, json!({"url": r.url("/fail")}))
        .await;
    let mut msgs = Vec::new();
    for (i, event_type) in [
        "order.status",
        "order.status",
        "reading.weight",
        "order.status",
    ]
    .iter()
    .enumerate()
    {
        msgs.push(
            t.publish(&app, json!({"eventType": event_type, "payload": {"i": i}}))
                .await,
        );
        // Distinct creation times, for the time filters.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for m in &msgs {
        t.wait_status(m, &ok, DeliveryStatus::Success, Duration::from_secs(10))
            .await;
        t.wait_attempts(m, &failing, 1).await;
    }
    let other = t.create_app("Other").await;
    let other_ep = t
        .create_endpoint(&other, json!({"url": r.url("/other")}))
        .await;
    let lone = t
        .publish(&other, json!({"eventType": "x", "payload": {}}))
        .await;
    t.wait_status(
        &lone,
        &other_ep,
        DeliveryStatus::Success,
        Duration::from_secs(10),
    )
    .await;

    let log = |query: String| {
        let t = &t;
        let app = app.clone();
        async move {
            let (status, body) = t
                .get(&format!("/api/v1/app/{app}/delivery-log?{query}"))
                .await;
            assert_eq!(status, StatusCode::OK, "{query}: {body}");
            body
        }
    };
    let total = |query: String| {
        let log = &log;
        async move { log(query).await["total"].as_u64().unwrap() }
    };

    // Paging: totals and first/last at both ends.
    let page1 = log("size=3".into()).await;
    assert_eq!(
        (
            page1["page"].clone(),
            page1["size"].clone(),
            page1["total"].clone(),
            page1["first"].clone(),
            page1["last"].clone()
        ),
        (json!(1), json!(3), json!(8), json!(true), json!(false))
    );
    assert_eq!(page1["content"].as_array().unwrap().len(), 3);
    let page2 = log("size=3&page=2".into()).await;
    assert_eq!(
        (page2["first"].clone(), page2["last"].clone()),
        (json!(false), json!(false))
    );
    let page3 = log("size=3&page=3".into()).await;
    assert_eq!(page3["content"].as_array().unwrap().len(), 2);
    assert_eq!(
        (page3["first"].clone(), page3["last"].clone()),
        (json!(false), json!(true))
    );
    assert_eq!(page3["total"], 8);
    let page4 = log("size=3&page=4".into()).await;
    assert!(page4["content"].as_array().unwrap().is_empty());
    assert_eq!(
        (page4["first"].clone(), page4["last"].clone()),
        (json!(false), json!(true))
    );
    let whole = log(String::new()).await;
    assert_eq!(
        (
            whole["size"].clone(),
            whole["first"].clone(),
            whole["last"].clone()
        ),
        (json!(50), json!(true), json!(true))
    );
    let rows = whole["content"].as_array().unwrap();
    assert_eq!(rows.len(), 8);
    // Newest first, and the pages cut the same list.
    let order: Vec<&str> = rows.iter().map(|r| r["msgId"].as_str().unwrap()).collect();
    assert_eq!(order[0], msgs[3]);
    assert_eq!(order[7], msgs[0]);
    let paged: Vec<Value> = [&page1, &page2, &page3]
        .iter()
        .flat_map(|p| p["content"].as_array().unwrap().clone())
        .collect();
    assert_eq!(&paged, rows);

    // A row: the issue's fields.
    let row = rows
        .iter()
        .find(|r| r["msgId"] == msgs[2].as_str() && r["endpointId"] == failing.as_str())
        .unwrap();
    assert_eq!(
        keys(row),
        BTreeSet::from([
            "appId",
            "msgId",
            "endpointId",
            "eventType",
            "url",
            "payload",
            "createTimestamp",
            "lastResponseStatus",
            "retryAttempts",
            "lastRetryTimestamp",
            "status",
            "nextAttempt"
        ])
    );
    assert_eq!(row["eventType"], "reading.weight");
    assert_eq!(row["url"], r.url("/fail"));
    assert_eq!(row["payload"], json!({"i": 2}));
    assert_eq!(row["lastResponseStatus"], 500);
    assert_eq!(row["retryAttempts"], 1);
    assert_eq!(row["status"], "pending");
    assert!(row["nextAttempt"].is_string());
    assert!(row["lastRetryTimestamp"].is_string());
    let delivered = rows
        .iter()
        .find(|r| r["msgId"] == msgs[2].as_str() && r["endpointId"] == ok.as_str())
        .unwrap();
    assert_eq!(delivered["status"], "success");
    assert_eq!(delivered["lastResponseStatus"], 200);
    assert_eq!(delivered["nextAttempt"], Value::Null);

    // Filters.
    assert_eq!(total("status=success".into()).await, 4);
    assert_eq!(total("status=pending".into()).await, 4);
    assert_eq!(total("status=2".into()).await, 0);
    assert_eq!(total("eventType=reading.weight".into()).await, 2);
    assert_eq!(
        total("eventType=reading.weight&status=pending".into()).await,
        1
    );
    assert_eq!(total("endpointId=ok".into()).await, 4);
    assert_eq!(total(format!("endpointId={failing}")).await, 4);
    assert_eq!(total("endpointId=missing".into()).await, 0);
    let created = |i: usize| {
        rows.iter()
            .find(|r| r["msgId"] == msgs[i].as_str())
            .unwrap()["createTimestamp"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(total(format!("startTimestamp={}", created(1))).await, 6);
    assert_eq!(total(format!("endTimestamp={}", created(1))).await, 4);
    assert_eq!(
        total(format!(
            "startTimestamp={}&endTimestamp={}",
            created(1),
            created(2)
        ))
        .await,
        4
    );
    let past = "2020-01-01T00:00:00Z";
    let future = "2100-01-01T00:00:00Z";
    assert_eq!(total(format!("startLastRetryTimestamp={future}")).await, 0);
    assert_eq!(total(format!("endLastRetryTimestamp={past}")).await, 0);
    assert_eq!(
        total(format!(
            "startLastRetryTimestamp={past}&endLastRetryTimestamp={future}"
        ))
        .await,
        8
    );
    let filtered = log("status=pending&size=3&page=2".into()).await;
    assert_eq!(
        (filtered["total"].clone(), filtered["last"].clone()),
        (json!(4), json!(true))
    );
    assert_eq!(filtered["content"].as_array().unwrap().len(), 1);

    // Bad requests.
    for query in [
        "size=251",
        "size=0",
        "page=0",
        "status=bogus",
        "startTimestamp=yesterday",
        "startTimestamp=2100-01-01T00:00:00Z&endTimestamp=2020-01-01T00:00:00Z",
    ] {
        let (status, body) = t
            .get(&format!("/api/v1/app/{app}/delivery-log?{query}"))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
    }

    // Server-wide, for admins only.
    let (status, all) = t.get("/api/v1/delivery-log").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all["total"], 9);
    let (_, by_endpoint) = t
        .get(&format!("/api/v1/delivery-log?endpointId={other_ep}"))
        .await;
    assert_eq!(by_endpoint["total"], 1);
    assert_eq!(by_endpoint["content"][0]["appId"], other.as_str());
    let (status, _) = t.get("/api/v1/delivery-log?endpointId=ok").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let token = t.api_key(json!({"role": "app", "appId": app})).await;
    let (status, _) = t
        .call_as(&token, Method::GET, "/api/v1/delivery-log", None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, own) = t
        .call_as(
            &token,
            Method::GET,
            &format!("/api/v1/app/{app}/delivery-log"),
            None,
        )
        .await;
    assert_eq!((status, own["total"].clone()), (StatusCode::OK, json!(8)));
    let (status, _) = t
        .call_as(
            &token,
            Method::GET,
            &format!("/api/v1/app/{other}/delivery-log"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let reader = t.api_key(json!({"role": "read-only"})).await;
    let (status, _) = t
        .call_as(&reader, Method::GET, "/api/v1/delivery-log", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    t.stop().await;
}

#[tokio::test]
async fn retention_removes_payloads_and_responses_and_keeps_the_log_rows() {
    let r = Receiver::start().await;
    r.always(
        "/hook",
        Step::Respond(200, vec![], r#"{"received":true}"#.into()),
    );
    let t = TestApp::spawn_with(|c| c.retention.payload_days = 7.0).await;
    let app = t.create_app("Acme").await;
    let ep = t
        .create_endpoint(&app, json!({"url": r.url("/hook")}))
        .await;
    // One message keeps the server's 7 days, one asks for 5; asking for more than the server
    // allows gets the server's.
    let kept_longer = t
        .publish(&app, json!({"eventType": "a", "payload": {"secret": "s1"}}))
        .await;
    let shorter = t
        .publish(
            &app,
            json!({"eventType": "a", "payload": {"secret": "s2"}, "payloadRetentionPeriod": 5}),
        )
        .await;
    let capped = t
        .publish(
            &app,
            json!({"eventType": "a", "payload": {"secret": "s3"}, "payloadRetentionPeriod": 90}),
        )
        .await;
    for m in [&kept_longer, &shorter, &capped] {
        t.wait_status(m, &ep, DeliveryStatus::Success, Duration::from_secs(10))
            .await;
    }
    let base = format!("/api/v1/app/{app}");
    let config = herald::retention::RetentionConfig {
        payload_days: 7.0,
        response_days: 30.0,
        log_days: 90.0,
    };
    let now = chrono::Utc::now();
    let purge = |days: i64| {
        let store = t.store.clone();
        async move {
            herald::retention::purge(store.as_ref(), &config, now + chrono::Duration::days(days))
                .await
                .unwrap()
        }
    };
    assert_eq!(purge(1).await, herald::retention::Purged::default());
    let after_six = purge(6).await;
    assert_eq!((after_six.payloads, after_six.responses), (1, 0));
    let payload = |m: &str| {
        let t = &t;
        let path = format!("{base}/msg/{m}");
        async move { t.get_ok(&path).await["payload"].clone() }
    };
    assert_eq!(payload(&shorter).await, json!({}));
    assert_eq!(payload(&kept_longer).await, json!({"secret": "s1"}));
    let after_eight = purge(8).await;
    assert_eq!((after_eight.payloads, after_eight.responses), (2, 0));
    assert_eq!(payload(&capped).await, json!({}));
    let after_a_month = purge(31).await;
    assert_eq!(after_a_month.responses, 3);

    // The log rows, attempts and statistics remain, without the content.
    let log = t.get_ok(&format!("{base}/delivery-log")).await;
    assert_eq!(log["total"], 3);
    for row in log["content"].as_array().unwrap() {
        assert_eq!(row["payload"], Value::Null);
        assert_eq!(row["status"], "success");
        assert_eq!(row["lastResponseStatus"], 200);
    }
    let attempts = t.get_ok(&format!("{base}/attempt/endpoint/{ep}")).await;
    assert_eq!(attempts["data"].as_array().unwrap().len(), 3);
    for a in attempts["data"].as_array().unwrap() {
        assert_eq!(a["response"], "");
        assert_eq!(a["status"], 0);
    }
    let stats = t.get_ok(&format!("{base}/endpoint/{ep}/stats")).await;
    assert_eq!(stats["success"], 3);
    let sent = t.get_ok(&format!("{base}/endpoint/{ep}/msg")).await;
    assert_eq!(sent["data"].as_array().unwrap().len(), 3);

    // Past the log retention the rows go too: messages, deliveries, attempts.
    let after_the_log_retention = purge(91).await;
    assert_eq!(
        (
            after_the_log_retention.messages,
            after_the_log_retention.deliveries,
            after_the_log_retention.attempts
        ),
        (3, 3, 3)
    );
    let log = t.get_ok(&format!("{base}/delivery-log")).await;
    assert_eq!(log["total"], 0);
    let attempts = t.get_ok(&format!("{base}/attempt/endpoint/{ep}")).await;
    assert!(attempts["data"].as_array().unwrap().is_empty());
    let (status, _) = t
        .call(Method::GET, &format!("{base}/msg/{shorter}"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    t.stop().await;
}

/// Attempts name their endpoint's URL instead of copying it: an 8,192-character URL costs its
/// endpoint one row, not every attempt a copy, and each attempt still shows the URL it was sent
/// to after the endpoint moves.
#[tokio::test]
async fn attempts_name_the_url_they_were_sent_to_without_copying_it() {
    let r = Receiver::start().await;
    let t = TestApp::spawn().await;
    let app = t.create_app("Long").await;
    let long = format!("/{}", "x".repeat(8_192 - r.url("/").len()));
    let url = r.url(&long);
    assert_eq!(url.len(), 8_192);
    let ep = t.create_endpoint(&app, json!({"url": url})).await;
    for i in 0..20 {
        t.publish(&app, json!({"eventType": "a", "payload": {"i": i}}))
            .await;
    }
    r.wait_for(&long, 20, Duration::from_secs(10)).await;
    let (status, _) = t
        .call(
            Method::PATCH,
            &format!("/api/v1/app/{app}/endpoint/{ep}"),
            Some(json!({"url": r.url("/moved")})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // A message published just after the change may still go to the old URL (an actor that
    // read the endpoint before it): publish until one reaches the new one.
    let mut published = 20;
    while r.received("/moved").is_empty() {
        assert!(published < 30, "nothing reached the new URL");
        t.publish(&app, json!({"eventType": "a", "payload": {"i": published}}))
            .await;
        published += 1;
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while r.received("/moved").is_empty()
            && r.received(&long).len() + r.received("/moved").len() < published
            && std::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let base = format!("/api/v1/app/{app}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let list = loop {
        let list = t
            .get_ok(&format!("{base}/attempt/endpoint/{ep}?limit=50"))
            .await;
        if list["data"].as_array().unwrap().len() == published {
            break list;
        }
        assert!(std::time::Instant::now() < deadline, "{list}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Each attempt shows the URL it was sent to: as many of each as each URL received.
    let urls: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["url"].as_str().unwrap())
        .collect();
    let moved = r.url("/moved");
    assert_eq!(
        urls.iter().filter(|u| **u == moved).count(),
        r.received("/moved").len()
    );
    assert_eq!(
        urls.iter().filter(|u| **u == url).count(),
        r.received(&long).len()
    );

    // In the database: no attempt holds a copy.
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!(
        "sqlite://{}?mode=ro",
        t.data_dir.join("herald.db").display()
    ))
    .await
    .unwrap();
    let copied: i64 = sqlx::query_scalar("SELECT COALESCE(SUM(length(url)), 0) FROM attempts")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(copied, 0);
    t.stop().await;
}

/// `…/endpoint/{ep}/attempt-stats`: the window's successes and failures, and the same by day.
#[tokio::test]
async fn attempt_stats_count_an_endpoints_attempts_by_outcome_and_day() {
    let r = Receiver::start().await;
    let t = TestApp::spawn().await;
    let app = t.create_app("Acme").await;
    let ep = t
        .create_endpoint(&app, json!({"url": r.url("/s"), "retrySchedule": [3600]}))
        .await;
    r.script(
        "/s",
        vec![Step::Status(200), Step::Status(500), Step::Status(204)],
    );
    for n in 0..3 {
        t.publish(&app, json!({"eventType": "a", "payload": {"n": n}}))
            .await;
        r.wait_for("/s", n + 1, Duration::from_secs(5)).await;
    }
    let path = format!("/api/v1/app/{app}/endpoint/{ep}/attempt-stats");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let stats = loop {
        let (status, stats) = t.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{stats}");
        if stats["success"].as_u64().unwrap() + stats["fail"].as_u64().unwrap() == 3 {
            break stats;
        }
        assert!(std::time::Instant::now() < deadline, "{stats}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        (stats["success"].as_u64(), stats["fail"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(stats["canceled"], 0);
    let today = chrono::Utc::now().date_naive().to_string();
    assert_eq!(stats["days"].as_array().unwrap().len(), 1, "{stats}");
    assert!(
        stats["days"][0]["day"]
            .as_str()
            .unwrap()
            .starts_with(&today)
    );
    // A window before any attempt is empty; one over 90 days, or inverted, is refused.
    let (_, empty) = t.get(&format!("{path}?until=2026-01-01T00:00:00Z")).await;
    assert_eq!(
        (
            empty["success"].as_u64(),
            empty["days"].as_array().map(Vec::len)
        ),
        (Some(0), Some(0))
    );
    let (status, _) = t
        .get(&format!(
            "{path}?since=2025-01-01T00:00:00Z&until=2026-01-01T00:00:00Z"
        ))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = t
        .get(&format!(
            "{path}?since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z"
        ))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    t.stop().await;
}
