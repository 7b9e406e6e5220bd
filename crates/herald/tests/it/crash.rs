//! `herald serve` as a child process: SIGKILL mid-delivery loses nothing, SIGTERM drains.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};

use crate::child::{ChildServer as Server, TOKEN, free_port};
use crate::receiver::{Receiver, Step};

async fn start(dir: &std::path::Path, port: u16) -> Server {
    Server::start(dir, port, &[]).await
}

async fn post(client: &reqwest::Client, url: String, body: Value) -> Value {
    let response = client
        .post(url)
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.unwrap()
}

/// A server on a fresh data directory with one application whose endpoint is `endpoint`.
async fn server_with_endpoint(endpoint: Value) -> (Server, tempfile::TempDir, u16, String) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = start(dir.path(), port).await;
    let client = reqwest::Client::new();
    let app = post(
        &client,
        format!("{}/api/v1/app", server.base),
        json!({"name": "Crash"}),
    )
    .await;
    let app = app["id"].as_str().unwrap().to_owned();
    post(
        &client,
        format!("{}/api/v1/app/{app}/endpoint", server.base),
        endpoint,
    )
    .await;
    (server, dir, port, app)
}

/// Distinct webhook ids seen, and the total number of requests.
fn tally(r: &Receiver, path: &str) -> (HashMap<String, usize>, usize) {
    let got = r.received(path);
    let mut ids = HashMap::new();
    for req in &got {
        *ids.entry(req.header("webhook-id").unwrap().to_owned())
            .or_insert(0) += 1;
    }
    (ids, got.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_delivery_loses_no_acknowledged_message() {
    let r = Receiver::start().await;
    // 10 attempts in flight at 40 ms each: about 250 deliveries a second, so the kill lands
    // in the middle of the run.
    r.always(
        "/crash",
        Step::Delay(Duration::from_millis(40), Box::new(Step::Status(200))),
    );
    let (mut server, dir, port, app) =
        server_with_endpoint(json!({"url": r.url("/crash"), "maxConcurrency": 10})).await;
    let client = reqwest::Client::new();

    // Publish 1,000 messages, 16 at a time; every one of them is acknowledged.
    let url = format!("{}/api/v1/app/{app}/msg", server.base);
    let acked: Vec<String> = futures::stream::iter(0..1000)
        .map(|i| {
            let client = client.clone();
            let url = url.clone();
            async move {
                let out = post(
                    &client,
                    url,
                    json!({"eventType": "crash.test", "payload": {"i": i}}),
                )
                .await;
                out["id"].as_str().unwrap().to_owned()
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert_eq!(acked.len(), 1000);

    // Kill it mid-delivery.
    let deadline = Instant::now() + Duration::from_secs(30);
    while r.received("/crash").len() < 300 {
        assert!(Instant::now() < deadline, "deliveries did not start");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.child.start_kill().unwrap();
    server.child.wait().await.unwrap();
    let (before, _) = tally(&r, "/crash");
    assert!(
        before.len() < 1000,
        "the kill must land mid-delivery ({} delivered)",
        before.len()
    );
    eprintln!("killed with {} of 1000 messages delivered", before.len());

    // Restart on the same data: everything acknowledged arrives.
    let mut server = start(dir.path(), port).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (ids, _) = tally(&r, "/crash");
        if acked.iter().all(|id| ids.contains_key(id)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of 1000 arrived after the restart",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let stragglers land, then count duplicates: at most one per attempt in flight at the kill
    // (the endpoint's cap is 10).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (ids, total) = tally(&r, "/crash");
    let duplicates = total - ids.len();
    eprintln!(
        "{total} requests for {} messages: {duplicates} duplicates",
        ids.len()
    );
    assert_eq!(ids.len(), 1000);
    assert!(duplicates <= 10, "{duplicates} duplicates");
    assert!(ids.values().all(|n| *n <= 2));
    server.child.start_kill().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_waits_for_attempts_in_flight_and_exits_0() {
    let r = Receiver::start().await;
    r.always(
        "/slow",
        Step::Delay(Duration::from_secs(1), Box::new(Step::Status(200))),
    );
    let (mut server, dir, port, app) = server_with_endpoint(json!({"url": r.url("/slow")})).await;
    let client = reqwest::Client::new();
    for i in 0..5 {
        post(
            &client,
            format!("{}/api/v1/app/{app}/msg", server.base),
            json!({"eventType": "a", "payload": {"i": i}}),
        )
        .await;
    }
    r.wait_for("/slow", 5, Duration::from_secs(10)).await;
    let pid = server.child.id().unwrap().to_string();
    let asked = Instant::now();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let status = server.child.wait().await.unwrap();
    assert!(status.success(), "SIGTERM must exit 0, got {status}");
    assert!(
        asked.elapsed() >= Duration::from_millis(500),
        "it waited for the attempts in flight"
    );

    // They were recorded as delivered: a restart sends nothing again.
    let mut server = start(dir.path(), port).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(r.received("/slow").len(), 5);
    server.child.start_kill().unwrap();
}

/// A publish's status and message id, if it got an answer.
type Answer = (u16, Option<String>);

/// Publishes retried with their `Idempotency-Key` after a crash are each stored exactly once,
/// and answered at once: a publish that was committed but not answered is replayed (its key
/// was completed by the publish's own transaction), and one whose request died before its
/// commit runs again (the restart ends the claims of the dead process). Three kills, each
/// while 16 publishes are in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_retried_with_their_idempotency_key_after_a_crash_are_stored_once() {
    let r = Receiver::start().await;
    r.always("/once", Step::Status(200));
    let (mut server, dir, port, app) = server_with_endpoint(json!({"url": r.url("/once")})).await;
    let client = reqwest::Client::new();
    let publish = |base: String, i: usize| {
        let client = client.clone();
        let app = app.clone();
        async move {
            let response = client
                .post(format!("{base}/api/v1/app/{app}/msg"))
                .bearer_auth(TOKEN)
                .header("idempotency-key", format!("publish-{i}"))
                .json(&json!({"eventType": "once", "payload": {"i": i}}))
                .send()
                .await;
            match response {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let body: Value = r.json().await.unwrap_or(Value::Null);
                    Some((status, body["id"].as_str().map(str::to_owned)))
                }
                // The answer was lost with the process: the outcome is unknown.
                Err(_) => None,
            }
        }
    };

    const PER_ROUND: usize = 300;
    let mut answered: HashMap<usize, String> = HashMap::new();
    let mut unknown = Vec::new();
    for round in 0..3 {
        let base = server.base.clone();
        let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = sent.clone();
        let results = futures::stream::iter(round * PER_ROUND..(round + 1) * PER_ROUND)
            .map(|i| {
                let publish = publish(base.clone(), i);
                let counter = counter.clone();
                async move {
                    let out = publish.await;
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    (i, out)
                }
            })
            .buffer_unordered(16);
        let killer = async {
            while sent.load(std::sync::atomic::Ordering::SeqCst) < PER_ROUND / 3 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            server.child.start_kill().unwrap();
        };
        let (outcomes, ()) = tokio::join!(results.collect::<Vec<_>>(), killer);
        server.child.wait().await.unwrap();
        for (i, out) in outcomes {
            match out {
                Some((202, Some(id))) => {
                    answered.insert(i, id);
                }
                Some((status, _)) if status < 500 => panic!("publish {i} answered {status}"),
                _ => unknown.push(i),
            }
        }
        server = start(dir.path(), port).await;
    }
    assert!(!unknown.is_empty(), "the kills landed mid-stream");

    // Every publish retried with its key: 202 at once (no "still being processed"), the same
    // message for those already answered.
    let base = server.base.clone();
    let retried: Vec<(usize, Option<Answer>)> = futures::stream::iter(0..3 * PER_ROUND)
        .map(|i| {
            let publish = publish(base.clone(), i);
            async move { (i, publish.await) }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let mut ids = std::collections::HashSet::new();
    for (i, out) in retried {
        let (status, id) = out.unwrap_or_else(|| panic!("retry of {i} got no answer"));
        assert_eq!(status, 202, "retry of publish {i}");
        let id = id.unwrap();
        if let Some(first) = answered.get(&i) {
            assert_eq!(&id, first, "publish {i} was replayed");
        }
        ids.insert(id);
    }
    assert_eq!(ids.len(), 3 * PER_ROUND);

    // And exactly that many messages exist: none was stored twice.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (delivered, _) = tally(&r, "/once");
        if delivered.len() >= 3 * PER_ROUND {
            assert_eq!(delivered.len(), 3 * PER_ROUND, "no publish is stored twice");
            assert!(delivered.keys().all(|id| ids.contains(id)));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} delivered",
            delivered.len(),
            3 * PER_ROUND
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "{} publishes answered before the kills, {} with no answer, all stored once",
        answered.len(),
        unknown.len()
    );
    server.child.start_kill().unwrap();
}

/// What became of one publish whose server was killed under it.
enum Outcome {
    /// 202, with the message's id.
    Answered(String),
    /// Another status: the publish failed and must not be stored.
    Refused(u16),
    /// No answer: the process died first.
    Unanswered,
}

/// A kill while publishes are being committed together (64 publishers keep several in every
/// group commit): each publish was either answered and is stored whole, or refused and not
/// stored, or not answered, and then stored whole or not at all. "Whole" is checked by the
/// restart delivering every stored message: its task was committed with it. Three kills.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_during_a_group_commit_leaves_each_publish_answered_and_stored_or_unanswered() {
    let r = Receiver::start().await;
    r.always("/batch", Step::Status(200));
    let (mut server, dir, port, app) = server_with_endpoint(json!({"url": r.url("/batch")})).await;
    let client = reqwest::Client::new();
    const PER_ROUND: usize = 600;
    let mut outcomes: Vec<(String, Outcome)> = Vec::new();
    for round in 0..3 {
        let url = format!("{}/api/v1/app/{app}/msg", server.base);
        let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = done.clone();
        let publishes = futures::stream::iter(round * PER_ROUND..(round + 1) * PER_ROUND)
            .map(|i| {
                let (client, url, counter) = (client.clone(), url.clone(), counter.clone());
                async move {
                    let event_id = format!("event-{i}");
                    let response = client
                        .post(url)
                        .bearer_auth(TOKEN)
                        .json(&json!({"eventType": "batch", "eventId": event_id, "payload": {"i": i}}))
                        .send()
                        .await;
                    let outcome = match response {
                        Ok(r) if r.status().as_u16() == 202 => {
                            let body: Value = r.json().await.unwrap_or(Value::Null);
                            match body["id"].as_str() {
                                Some(id) => Outcome::Answered(id.to_owned()),
                                None => Outcome::Unanswered,
                            }
                        }
                        Ok(r) => Outcome::Refused(r.status().as_u16()),
                        Err(_) => Outcome::Unanswered,
                    };
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    (event_id, outcome)
                }
            })
            .buffer_unordered(64);
        let killer = async {
            while done.load(std::sync::atomic::Ordering::SeqCst) < PER_ROUND / 3 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            server.child.start_kill().unwrap();
        };
        let (round_outcomes, ()) = tokio::join!(publishes.collect::<Vec<_>>(), killer);
        server.child.wait().await.unwrap();
        outcomes.extend(round_outcomes);
        server = start(dir.path(), port).await;
    }

    // What is stored now, looked up by each publish's `eventId`.
    let (mut stored_unanswered, mut lost_unanswered, mut answered) = (0, 0, 0);
    let mut stored_ids = Vec::new();
    for (event_id, outcome) in &outcomes {
        let found = client
            .get(format!("{}/api/v1/app/{app}/msg/{event_id}", server.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        let stored = match found.status().as_u16() {
            200 => Some(
                found.json::<Value>().await.unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            ),
            404 => None,
            other => panic!("looking up {event_id}: {other}"),
        };
        match (outcome, &stored) {
            (Outcome::Answered(id), Some(stored)) => {
                assert_eq!(id, stored, "{event_id} answered with another id");
                answered += 1;
            }
            (Outcome::Answered(id), None) => panic!("{event_id} answered {id} but not stored"),
            (Outcome::Refused(status), Some(_)) => {
                panic!("{event_id} refused with {status} but stored")
            }
            (Outcome::Refused(_), None) => {}
            (Outcome::Unanswered, Some(_)) => stored_unanswered += 1,
            (Outcome::Unanswered, None) => lost_unanswered += 1,
        }
        stored_ids.extend(stored);
    }
    eprintln!(
        "{answered} answered and stored; unanswered: {stored_unanswered} stored, \
         {lost_unanswered} not stored"
    );
    assert!(
        stored_unanswered + lost_unanswered > 0,
        "the kills landed while publishes were in flight"
    );

    // Stored whole: every stored message, answered or not, is delivered after the restart.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (ids, _) = tally(&r, "/batch");
        let missing = stored_ids
            .iter()
            .filter(|id| !ids.contains_key(*id))
            .count();
        if missing == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} stored messages were never delivered: stored without their task"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.child.start_kill().unwrap();
}

/// A scheduled message is held in the database, not in the process: killed before its time and
/// restarted, the server delivers it once, when it is due.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_message_survives_a_sigkill_and_goes_at_its_time() {
    let r = Receiver::start().await;
    let (mut server, dir, port, app) = server_with_endpoint(json!({"url": r.url("/later")})).await;
    let client = reqwest::Client::new();
    let at = chrono::Utc::now() + chrono::Duration::seconds(3);
    let msg = post(
        &client,
        format!("{}/api/v1/app/{app}/msg", server.base),
        json!({"eventType": "a.b", "payload": {"n": 1},
               "deliverAt": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)}),
    )
    .await;
    let id = msg["id"].as_str().unwrap().to_owned();
    server.child.start_kill().unwrap();
    server.child.wait().await.unwrap();

    let mut server = start(dir.path(), port).await;
    let got = r.wait_for("/later", 1, Duration::from_secs(15)).await;
    let arrived = chrono::Utc::now();
    assert_eq!(got[0].header("webhook-id"), Some(id.as_str()));
    assert!(arrived >= at, "arrived at {arrived}, due at {at}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(r.received("/later").len(), 1, "delivered once");
    server.child.start_kill().unwrap();
}

/// A replay is persisted before its call answers and survives the node: killed while the task
/// runs (or before it starts), the restarted node resumes it from its last committed step, and
/// every missing message reaches the endpoint.
#[tokio::test]
async fn a_background_replay_resumes_after_a_sigkill() {
    const MESSAGES: usize = 600; // three steps of 250
    let r = Receiver::start().await;
    let (mut server, dir, port, app) = server_with_endpoint(json!({
        "url": r.url("/old"), "filterTypes": ["nothing.matches"]
    }))
    .await;
    let client = reqwest::Client::new();
    let since = chrono::Utc::now() - chrono::Duration::seconds(1);
    let mut published = Vec::new();
    for chunk in 0..MESSAGES / 100 {
        let requests = (0..100).map(|n| {
            post(
                &client,
                format!("{}/api/v1/app/{app}/msg", server.base),
                json!({"eventType": "a.b", "payload": {"n": chunk * 100 + n}}),
            )
        });
        for msg in futures::future::join_all(requests).await {
            published.push(msg["id"].as_str().unwrap().to_owned());
        }
    }
    let endpoint = post(
        &client,
        format!("{}/api/v1/app/{app}/endpoint", server.base),
        json!({"url": r.url("/new")}),
    )
    .await;
    let ep = endpoint["id"].as_str().unwrap().to_owned();
    let started = post(
        &client,
        format!(
            "{}/api/v1/app/{app}/endpoint/{ep}/replay-missing",
            server.base
        ),
        json!({"since": since}),
    )
    .await;
    let task = started["id"].as_str().unwrap().to_owned();
    server.child.start_kill().unwrap();
    server.child.wait().await.unwrap();

    let mut server = start(dir.path(), port).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let finished = loop {
        let got: Value = client
            .get(format!("{}/api/v1/background-task/{task}", server.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if got["status"] != "running" {
            break got;
        }
        assert!(Instant::now() < deadline, "not resumed: {got}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(finished["status"], "finished", "{finished}");
    r.wait_for("/new", MESSAGES, Duration::from_secs(60)).await;
    let (ids, _) = tally(&r, "/new");
    let mut have: Vec<String> = ids.into_keys().collect();
    have.sort();
    published.sort();
    assert_eq!(have, published, "every missing message, none other");
    server.child.start_kill().unwrap();
}
