//! Pagination over 600 items with inserts between pages.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::TestApp;

async fn walk(t: &TestApp, app: &str, order: &str, start: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let mut iterator: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/app/{app}/endpoint?limit=50&order={order}");
        if let Some(it) = &iterator {
            path.push_str(&format!("&iterator={it}"));
        }
        let (status, page) = t.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        for ep in page["data"].as_array().unwrap() {
            seen.push(ep["id"].as_str().unwrap().to_owned());
        }
        // Newcomers arrive while the client pages.
        for i in 0..3 {
            t.create_endpoint(
                app,
                json!({"url": format!("https://example.com/{start}{i}")}),
            )
            .await;
        }
        if page["done"] == Value::Bool(true) {
            return seen;
        }
        iterator = Some(page["iterator"].as_str().unwrap().to_owned());
    }
}

#[tokio::test]
async fn six_hundred_items_both_orders_with_inserts_between_pages() {
    let t = TestApp::spawn().await;
    let app = t.create_app("Many").await;
    let mut originals = Vec::new();
    for i in 0..600 {
        originals.push(
            t.create_endpoint(&app, json!({"url": format!("https://example.com/{i}")}))
                .await,
        );
    }
    for order in ["ascending", "descending"] {
        let seen = walk(&t, &app, order, order).await;
        let unique: BTreeSet<&String> = seen.iter().collect();
        assert_eq!(unique.len(), seen.len(), "{order}: an item was repeated");
        for id in &originals {
            assert!(unique.contains(id), "{order}: {id} was skipped");
        }
        let mut sorted = seen.clone();
        sorted.sort();
        if order == "descending" {
            sorted.reverse();
        }
        assert_eq!(seen, sorted, "{order}: out of order");
    }

    // prevIterator leads back to the previous page.
    let (_, first) = t.get(&format!("/api/v1/app/{app}/endpoint?limit=50")).await;
    let (_, second) = t
        .get(&format!(
            "/api/v1/app/{app}/endpoint?limit=50&iterator={}",
            first["iterator"].as_str().unwrap()
        ))
        .await;
    let (_, back) = t
        .get(&format!(
            "/api/v1/app/{app}/endpoint?limit=50&iterator={}",
            second["prevIterator"].as_str().unwrap()
        ))
        .await;
    assert_eq!(back["data"], first["data"]);
    assert_eq!(back["done"], false);
    // Defaults: 50 items.
    let (_, default) = t.get(&format!("/api/v1/app/{app}/endpoint")).await;
    assert_eq!(default["data"].as_array().unwrap().len(), 50);
    let (_, max) = t
        .get(&format!("/api/v1/app/{app}/endpoint?limit=250"))
        .await;
    assert_eq!(max["data"].as_array().unwrap().len(), 250);
    t.stop().await;
}

/// An iterator Herald did not hand out is a 422 naming `iterator`, on every kind of list: not
/// an empty page that looks like the end.
#[tokio::test]
async fn an_iterator_that_was_not_handed_out_is_refused() {
    let t = TestApp::spawn().await;
    let app = t.create_app("Pages").await;
    let ep = t
        .create_endpoint(&app, json!({"url": "https://example.com/a"}))
        .await;
    t.post(
        "/api/v1/event-type",
        json!({"name": "order.created", "description": "d"}),
    )
    .await;
    let lists = [
        "/api/v1/app".to_owned(),
        format!("/api/v1/app/{app}/endpoint"),
        format!("/api/v1/app/{app}/msg"),
        "/api/v1/event-type".to_owned(),
        format!("/api/v1/app/{app}/attempt/endpoint/{ep}"),
    ];
    for list in &lists {
        let (status, page) = t.get(&format!("{list}?limit=1")).await;
        assert_eq!(status, StatusCode::OK, "{list}: {page}");
        let issued = page["iterator"].as_str().map(str::to_owned);
        let mut made_up = vec![
            "app_2Kx7cVlFQHZ6jyEhyGgyqr".to_owned(),
            "garbage".to_owned(),
            "-order.created".to_owned(),
        ];
        if let Some(issued) = &issued {
            // Cut short, or with another key under the same check.
            made_up.push(issued[..issued.len() - 2].to_owned());
            made_up.push(format!("x{issued}"));
            let (status, _) = t.get(&format!("{list}?iterator={issued}")).await;
            assert_eq!(status, StatusCode::OK, "{list}: the issued iterator reads");
        }
        for iterator in made_up {
            let (status, body) = t.get(&format!("{list}?iterator={iterator}")).await;
            assert_eq!(
                status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{list}?iterator={iterator}: {body}"
            );
            assert_eq!(
                body["detail"][0]["loc"],
                json!(["query", "iterator"]),
                "{body}"
            );
        }
    }
    t.stop().await;
}
