//! Polling endpoints beyond one SQLite node: the portal's pages for them, and consumers and
//! long polls across Postgres nodes.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::polling::{consumer_poll, ids_of, polling_endpoint};

/// The portal creates a polling endpoint, shows its type and how to consume it.
#[tokio::test]
async fn the_portal_creates_and_explains_a_polling_endpoint() {
    let t = TestApp::spawn().await;
    let app = t.create_app("Portal").await;
    let token = crate::portal::portal_token(&t, &app).await;
    let mut browser = crate::portal::portal_session(&t, &token).await;
    let new = format!("/portal/app/{app}/endpoint/new");
    let form = browser.get(&new).await;
    assert!(
        form.body.contains(r#"<option value="polling""#),
        "{}",
        form.body
    );
    let csrf = browser.csrf(&new).await;
    let page = browser
        .post(
            &new,
            &[
                ("_csrf", &csrf),
                ("type", "polling"),
                ("url", ""),
                ("description", "pull"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let (_, list) = t.get(&format!("/api/v1/app/{app}/endpoint")).await;
    let ep = list["data"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(list["data"][0]["type"], "polling");
    let detail = browser
        .get(&format!("/portal/app/{app}/endpoint/{ep}"))
        .await;
    assert_eq!(detail.status, StatusCode::OK);
    let poller = t.url(&format!("/api/v1/app/{app}/poller/{ep}"));
    assert!(
        detail.body.contains("polling (its consumers read it)"),
        "{}",
        detail.body
    );
    assert!(
        detail
            .body
            .contains(&format!("herald listen --poll {poller}")),
        "{}",
        detail.body
    );
    // Editing keeps it a polling endpoint with its poller URL.
    let edit = browser
        .get(&format!("/portal/app/{app}/endpoint/{ep}/edit"))
        .await;
    assert!(edit.body.contains(&poller), "{}", edit.body);
    t.stop().await;
}

/// Two nodes on one Postgres database: a consumer on each reads every message once in order,
/// whichever node published it, and a long poll on one node is woken by a publish on the other
/// (through the database's wake-ups).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_nodes_consumers_read_everything_and_long_polls_wake_across_nodes() {
    use herald::config::Role;
    use herald_store::testing::{TestDatabase, postgres_url_or_skip};
    let Some(base) = postgres_url_or_skip("polling on postgres nodes") else {
        return;
    };
    let db = TestDatabase::create(&base).await;
    let a = crate::postgres_nodes::spawn_node(&db, Role::All, |_| {}, |_| {}).await;
    let b = crate::postgres_nodes::spawn_node(&db, Role::All, |_| {}, |_| {}).await;
    let (app, ep) = polling_endpoint(&a, json!({})).await;
    let mut published = Vec::new();
    for i in 0..40 {
        let node = if i % 2 == 0 { &a } else { &b };
        published.push(
            node.publish(&app, json!({"eventType": "e", "payload": {"i": i}}))
                .await,
        );
    }
    for (node, consumer) in [(&a, "on-a"), (&b, "on-b")] {
        let mut seen = Vec::new();
        let mut ack: Option<String> = None;
        let deadline = Instant::now() + Duration::from_secs(20);
        while seen.len() < published.len() && Instant::now() < deadline {
            let answer =
                consumer_poll(node, &app, &ep, consumer, "limit=9&wait=1", ack.as_deref()).await;
            seen.extend(ids_of(&answer));
            ack = Some(answer["iterator"].as_str().unwrap().to_owned());
        }
        assert_eq!(seen, published, "{consumer}: every message once, in order");
    }

    let mut iterator = consumer_poll(&b, &app, &ep, "live", "", None).await["iterator"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut delays = Vec::new();
    for round in 0..5 {
        let url = b.url(&format!(
            "/api/v1/app/{app}/poller/{ep}/consumer/live?wait=10&iterator={iterator}"
        ));
        let client = b.client.clone();
        let poll = tokio::spawn(async move {
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
        });
        tokio::time::sleep(Duration::from_millis(150)).await;
        let msg = a
            .publish(
                &app,
                json!({"eventType": "tick", "payload": {"round": round}}),
            )
            .await;
        let acknowledged = Instant::now();
        let (answered, answer) = poll.await.unwrap();
        assert_eq!(ids_of(&answer), [&*msg]);
        iterator = answer["iterator"].as_str().unwrap().to_owned();
        delays.push(answered.saturating_duration_since(acknowledged));
    }
    delays.sort();
    eprintln!("publish on node A to long-poll answer on node B: {delays:?}");
    assert!(
        delays[delays.len() / 2] < Duration::from_millis(100),
        "woken through the database, not by the 250 ms re-check: {delays:?}"
    );
    b.stop().await;
    a.stop().await;
}
