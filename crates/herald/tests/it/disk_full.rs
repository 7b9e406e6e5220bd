//! Herald on a real full filesystem: its data directory on a size-limited tmpfs that fills up
//! under publishes, then gets its space back.
//!
//! The promise under test is the first one Herald makes: a publish answered 202 is on disk,
//! and every other answer is 503 or 507. The filesystem is mounted by the test, which needs
//! root; without it (or where `mount` is refused) the test skips and says so.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};

use crate::child::{ChildServer, TOKEN, free_port};
use crate::receiver::{Receiver, Step};
use crate::support::Tmpfs;

async fn post(server: &ChildServer, path: &str, body: Value) -> (u16, Value) {
    post_with_key(server, path, None, body).await
}

async fn post_with_key(
    server: &ChildServer,
    path: &str,
    key: Option<&str>,
    body: Value,
) -> (u16, Value) {
    let mut request = server.client.post(server.url(path)).bearer_auth(TOKEN);
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let response = request.json(&body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// 20 kB of payload, different for each message.
fn payload(i: usize) -> Value {
    json!({"i": i, "blob": format!("{i:08}").repeat(2_500)})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_never_loses_an_acknowledged_publish() {
    let fs = match Tmpfs::mount(32) {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!("skipping a_full_disk_never_loses_an_acknowledged_publish: {why}");
            return;
        }
    };
    let r = Receiver::start().await;
    r.always("/full", Step::Status(200));
    let server = ChildServer::start(fs.path(), free_port(), &[]).await;
    let (_, app) = post(&server, "/api/v1/app", json!({"name": "Full"})).await;
    let app = app["id"].as_str().unwrap().to_owned();
    let (status, _) = post(
        &server,
        &format!("/api/v1/app/{app}/endpoint"),
        json!({"url": r.url("/full")}),
    )
    .await;
    assert_eq!(status, 201);

    // About 3 MB left: room for some dozens of 20 kB messages with their attempts' logs.
    let filler = fs.fill(3 << 20);

    // Publish until well past full, four at a time so that group commits hold several, each
    // with an Idempotency-Key as the SDKs send it.
    let msg_path = format!("/api/v1/app/{app}/msg");
    let publish = |i: usize| {
        let (server, msg_path) = (&server, &msg_path);
        async move {
            let body = json!({"eventType": "disk.full", "eventId": format!("ev-{i}"),
                              "payload": payload(i)});
            let key = format!("fill-{i}");
            let (status, out) = post_with_key(server, msg_path, Some(&key), body).await;
            (i, status, out)
        }
    };
    let outcomes: Vec<(usize, u16, Value)> = futures::stream::iter(0..300)
        .map(publish)
        .buffer_unordered(4)
        .collect()
        .await;
    let mut by_status: HashMap<u16, usize> = HashMap::new();
    for (_, status, _) in &outcomes {
        *by_status.entry(*status).or_default() += 1;
    }
    eprintln!("while the disk filled: {by_status:?}");
    let acked: Vec<(usize, String)> = outcomes
        .iter()
        .filter(|(_, status, _)| *status == 202)
        .map(|(i, _, out)| (*i, out["id"].as_str().unwrap().to_owned()))
        .collect();
    assert!(
        !acked.is_empty(),
        "some publishes fit before the disk filled"
    );
    assert!(
        acked.len() < 300,
        "the disk never filled: every publish was accepted"
    );
    for (i, status, out) in &outcomes {
        assert!(
            matches!(status, 202 | 503 | 507),
            "publish {i} answered {status}: {out}"
        );
    }
    assert!(
        by_status.contains_key(&507),
        "a full disk is answered 507: {by_status:?}"
    );

    // Space returns: Herald recovers by itself.
    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut after = Vec::new();
    for j in 0..20 {
        loop {
            let body = json!({"eventType": "disk.full", "eventId": format!("after-{j}"),
                              "payload": payload(1000 + j)});
            let (status, out) = post(&server, &msg_path, body).await;
            if status == 202 {
                after.push(out["id"].as_str().unwrap().to_owned());
                break;
            }
            assert!(
                Instant::now() < deadline,
                "publishes still fail after space returned: {status} {out}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // The refused publishes, retried with their keys as a client would: each is published
    // now, or replayed if it had been stored after all; none twice (counted below).
    let mut retried = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    for (i, _, _) in outcomes.iter().filter(|(_, status, _)| *status != 202) {
        loop {
            let (_, status, out) = publish(*i).await;
            if status == 202 {
                retried.push((*i, out["id"].as_str().unwrap().to_owned()));
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the retry of publish {i} still fails: {status} {out}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // Every acknowledged message is stored and delivered, exactly as acknowledged.
    let mut expected: HashMap<String, Option<usize>> = acked
        .iter()
        .chain(&retried)
        .map(|(i, id)| (id.clone(), Some(*i)))
        .collect();
    expected.extend(after.iter().map(|id| (id.clone(), None)));
    assert_eq!(
        expected.len(),
        320,
        "every publish has a message of its own"
    );
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let got: HashMap<String, Vec<u8>> = r
            .received("/full")
            .into_iter()
            .map(|req| (req.header("webhook-id").unwrap().to_owned(), req.body))
            .collect();
        let missing: Vec<&String> = expected
            .keys()
            .filter(|id| !got.contains_key(*id))
            .collect();
        if missing.is_empty() {
            for (id, i) in &expected {
                let Some(i) = i else { continue };
                let body: Value = serde_json::from_slice(&got[id]).unwrap();
                assert_eq!(body, payload(*i), "{id} was delivered as acknowledged");
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} acknowledged messages never arrived, e.g. {:?}",
            missing.len(),
            expected.len(),
            &missing[..missing.len().min(5)]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (i, id) in &acked {
        let response = server
            .client
            .get(server.url(&format!("{msg_path}/{id}")))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "acknowledged publish {i} ({id})");
    }

    let status = server.terminate().await;
    assert!(status.success(), "herald exits cleanly: {status}");

    // The database is sound, and nothing is half-stored: every message has its task.
    let db = fs.path().join("herald-data/herald.db");
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&db)
        .read_only(true);
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect_with(&options)
        .await
        .unwrap();
    let check: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(check, vec!["ok".to_owned()]);
    let orphans: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM messages m WHERE NOT EXISTS
           (SELECT 1 FROM deliveries d WHERE d.msg_id = m.id)",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(orphans, 0, "messages stored without their delivery task");
    let (stored, events): (i64, i64) =
        sqlx::query_as("SELECT COUNT(*), COUNT(DISTINCT event_id) FROM messages")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!((stored, events), (320, 320), "no publish is stored twice");
    eprintln!(
        "{} acknowledged while filling, {} retried with their keys, {} published after: \
         {stored} stored",
        acked.len(),
        retried.len(),
        after.len()
    );
}
