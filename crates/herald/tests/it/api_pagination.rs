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
