//! Measures the delivery log on SQLite with a million deliveries: a page and its total, under
//! each filter, at the first page and far into the log.
//!
//! ```sh
//! cargo run --release -p herald-store --example delivery_log_bench [ROWS] [DB_PATH]
//! ```
//!
//! It fills a fresh database (default 1,000,000 deliveries: 100,000 messages to 10 endpoints of
//! one application, plus 10% as many in a second application), then prints the time of each
//! query. An existing database at DB_PATH is reused as it is.

// Tests (and this measuring tool) unwrap: a failed step should stop them loudly.
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use chrono::{Duration, Utc};
use herald_core::id::{AppId, EndpointId, MessageId};
use herald_core::model::DeliveryStatus;
use herald_store::prelude::*;
use herald_store::{DeliveryLogFilter, SqliteStore};
use sqlx::Connection;

const ENDPOINTS: usize = 10;
const EVENT_TYPES: [&str; 5] = [
    "order.status",
    "order.statusFull",
    "patient.created",
    "reading.weight",
    "return.status",
];

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let rows: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let path = args.next().unwrap_or_else(|| {
        std::env::temp_dir()
            .join("herald-log-bench.db")
            .display()
            .to_string()
    });
    let url = format!("sqlite://{path}");
    let fresh = !std::path::Path::new(&path).exists();
    let store = SqliteStore::open(&url).await?;
    let apps = if fresh {
        let started = Instant::now();
        let big = fill(&url, rows).await?;
        let small = fill(&url, rows / 10).await?;
        println!(
            "filled {} deliveries in {:.1}s",
            rows + rows / 10,
            started.elapsed().as_secs_f64()
        );
        vec![big, small]
    } else {
        let ids: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT app_id FROM deliveries ORDER BY app_id")
                .fetch_all(&mut sqlx::SqliteConnection::connect(&url).await?)
                .await?;
        ids.into_iter().map(AppId::from_trusted).collect()
    };
    let app = apps[0].clone();
    let endpoint: String =
        sqlx::query_scalar("SELECT endpoint_id FROM deliveries WHERE app_id = $1 LIMIT 1")
            .bind(app.as_str())
            .fetch_one(&mut sqlx::SqliteConnection::connect(&url).await?)
            .await?;
    let now = Utc::now();
    let in_app = |f: DeliveryLogFilter| DeliveryLogFilter {
        app: Some(app.clone()),
        ..f
    };
    let cases: Vec<(&str, DeliveryLogFilter)> = vec![
        ("app, no filter", in_app(DeliveryLogFilter::default())),
        (
            "app, status=fail",
            in_app(DeliveryLogFilter {
                status: Some(DeliveryStatus::Fail),
                ..Default::default()
            }),
        ),
        (
            "app, eventType",
            in_app(DeliveryLogFilter {
                event_type: Some("reading.weight".into()),
                ..Default::default()
            }),
        ),
        (
            "app, endpointId",
            in_app(DeliveryLogFilter {
                endpoint: Some(EndpointId::from_trusted(endpoint)),
                ..Default::default()
            }),
        ),
        (
            "app, last 24h created",
            in_app(DeliveryLogFilter {
                created_from: Some(now - Duration::days(1)),
                created_to: Some(now),
                ..Default::default()
            }),
        ),
        (
            "app, lastRetry window + status + eventType",
            in_app(DeliveryLogFilter {
                last_attempt_from: Some(now - Duration::days(20)),
                last_attempt_to: Some(now - Duration::days(10)),
                status: Some(DeliveryStatus::Success),
                event_type: Some("order.status".into()),
                ..Default::default()
            }),
        ),
        ("server-wide, no filter", DeliveryLogFilter::default()),
        (
            "server-wide, status=fail",
            DeliveryLogFilter {
                status: Some(DeliveryStatus::Fail),
                ..Default::default()
            },
        ),
    ];
    println!(
        "{:<45} {:>9} {:>12} {:>14}",
        "filter", "total", "page 1 (ms)", "last page (ms)"
    );
    for (name, filter) in cases {
        // Warm the cache once, as a running server would be.
        store.delivery_log(&filter, 0, 50).await?;
        let started = Instant::now();
        let first = store.delivery_log(&filter, 0, 50).await?;
        let first_ms = started.elapsed().as_secs_f64() * 1000.0;
        let last_offset = first.total.saturating_sub(50);
        let started = Instant::now();
        let last = store.delivery_log(&filter, last_offset, 50).await?;
        let last_ms = started.elapsed().as_secs_f64() * 1000.0;
        assert_eq!(first.total, last.total);
        println!(
            "{name:<45} {:>9} {first_ms:>12.1} {last_ms:>14.1}",
            first.total
        );
    }
    store.close().await;
    Ok(())
}

/// Inserts an application, its endpoints, and `rows` deliveries of `rows / ENDPOINTS` messages
/// spread over the last 30 days, in one transaction.
async fn fill(url: &str, rows: usize) -> Result<AppId, Box<dyn std::error::Error>> {
    let mut conn = sqlx::SqliteConnection::connect(url).await?;
    let mut tx = conn.begin().await?;
    let app = AppId::generate();
    let now = Utc::now().timestamp_millis();
    sqlx::query(
        "INSERT INTO applications (id, uid, name, rate_limit, metadata, created_at, updated_at)
         VALUES ($1, NULL, 'bench', NULL, '{}', $2, $2)",
    )
    .bind(app.as_str())
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let mut endpoints = Vec::new();
    for _ in 0..ENDPOINTS {
        let id = EndpointId::generate();
        sqlx::query(
            "INSERT INTO endpoints (id, app_id, uid, url, description, event_types, channels,
             disabled, rate_limit, metadata, options, secret, created_at, updated_at)
             VALUES ($1, $2, NULL, 'https://example.com/hook', '', NULL, NULL, FALSE, NULL, '{}',
             '{}', x'00', $3, $3)",
        )
        .bind(id.as_str())
        .bind(app.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        endpoints.push(id);
    }
    let messages = rows / ENDPOINTS;
    let span_ms: i64 = 30 * 86_400_000;
    for i in 0..messages {
        let created = now - span_ms + span_ms * i as i64 / messages as i64;
        let at = chrono::DateTime::from_timestamp_millis(created).expect("in range");
        // Not `generate_at`: ids stay increasing within a process, so after the application's
        // id (stamped now) it would stamp every message now. Messages here are seconds apart.
        let msg = MessageId::lower_bound_at(at);
        let event_type = EVENT_TYPES[i % EVENT_TYPES.len()];
        sqlx::query(
            "INSERT INTO messages (id, app_id, event_type, event_id, channels, payload, created_at,
             payload_expires_at) VALUES ($1, $2, $3, NULL, NULL, '{\"id\": 1234}', $4, $5)",
        )
        .bind(msg.as_str())
        .bind(app.as_str())
        .bind(event_type)
        .bind(created)
        .bind(created + 90 * 86_400_000)
        .execute(&mut *tx)
        .await?;
        for (e, endpoint) in endpoints.iter().enumerate() {
            // Mostly delivered at once; one endpoint in ten failing, a few still retrying.
            let (status, attempts, code) = match (i + e) % 50 {
                0..=44 => (0, 1, 200),
                45..=48 => (2, 8, 500),
                _ => (1, 2, 503),
            };
            sqlx::query(
                "INSERT INTO deliveries (msg_id, endpoint_id, app_id, event_type, status, attempts,
                 next_attempt_at, created_at, last_attempt_at, last_status_code)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(msg.as_str())
            .bind(endpoint.as_str())
            .bind(app.as_str())
            .bind(event_type)
            .bind(status)
            .bind(attempts)
            .bind(if status == 1 {
                Some(now + 60_000)
            } else {
                None
            })
            .bind(created)
            .bind(created + 1_000)
            .bind(code)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    Ok(app)
}
