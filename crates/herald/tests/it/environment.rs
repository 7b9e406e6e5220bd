//! Environments: the catalogue, and with an option the applications and endpoints, move from
//! one server to another without a secret; importing twice changes nothing more; a bad file
//! writes nothing.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{TestApp, error_locs};

#[tokio::test]
async fn an_environment_moves_between_servers_without_its_secrets() {
    let source = TestApp::spawn().await;
    for body in [
        json!({"name": "order.paid", "description": "Paid", "schemas": {"1": {"type": "object"}}}),
        json!({"name": "beta.thing", "description": "Flagged", "featureFlags": ["beta"], "groupName": "beta"}),
        json!({"name": "old.thing", "description": "Retired", "archived": true}),
    ] {
        let (status, out) = source.post("/api/v1/event-type", body).await;
        assert_eq!(status, StatusCode::CREATED, "{out}");
    }
    let (_, app) = source
        .post(
            "/api/v1/app",
            json!({"name": "Acme", "uid": "acme", "metadata": {"tier": "gold"}}),
        )
        .await;
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let (status, ep) = source
        .post(
            "/api/v1/app/acme/endpoint",
            json!({"url": "https://hooks.acme.example/in", "uid": "main", "filterTypes": ["order.paid"],
                   "secret": secret, "headers": {"X-Api-Key": "hunter2-credential"},
                   "retrySchedule": [60, 600]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ep}");

    let (status, catalogue) = source
        .call(Method::POST, "/api/v1/environment/export", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{catalogue}");
    assert_eq!(catalogue["eventTypes"].as_array().map(Vec::len), Some(3));
    assert!(catalogue.get("applications").is_none(), "only when asked");
    let (status, file) = source
        .call(
            Method::POST,
            "/api/v1/environment/export?include_applications=true",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let text = file.to_string();
    assert!(
        !text.contains("MfKQ9r8GKYqr") && !text.contains("hunter2"),
        "no secret leaves: {text}"
    );
    assert_eq!(file["applications"][0]["uid"], "acme");
    assert_eq!(file["applications"][0]["endpoints"][0]["uid"], "main");

    let target = TestApp::spawn_with(|c| c.limits.max_endpoints_per_app = 5).await;
    let (status, done) = target
        .post("/api/v1/environment/import", file.clone())
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["eventTypes"]["created"], 3);
    assert_eq!(done["applications"]["created"], 1);
    assert_eq!(done["endpoints"]["created"], 1);
    let (_, beta) = target.get("/api/v1/event-type/beta.thing").await;
    assert_eq!(beta["featureFlags"], json!(["beta"]));
    assert_eq!(beta["groupName"], "beta");
    let (_, old) = target.get("/api/v1/event-type/old.thing").await;
    assert_eq!(old["archived"], true);
    let (_, copied) = target.get("/api/v1/app/acme").await;
    assert_eq!(copied["id"], app["id"], "the application keeps its id");
    assert_eq!(copied["metadata"], json!({"tier": "gold"}));
    let (_, copied_ep) = target.get("/api/v1/app/acme/endpoint/main").await;
    assert_eq!(copied_ep["id"], ep["id"]);
    assert_eq!(copied_ep["url"], "https://hooks.acme.example/in");
    assert_eq!(copied_ep["retrySchedule"], json!([60, 600]));
    let (_, new_secret) = target.get("/api/v1/app/acme/endpoint/main/secret").await;
    assert_ne!(new_secret["key"], secret, "a new secret");
    let (_, headers) = target.get("/api/v1/app/acme/endpoint/main/headers").await;
    assert_eq!(headers["headers"], json!({}), "header values stay behind");

    // Twice: nothing new.
    let (_, again) = target
        .post("/api/v1/environment/import", file.clone())
        .await;
    assert_eq!(again["eventTypes"]["unchanged"], 3, "{again}");
    assert_eq!(again["applications"]["unchanged"], 1);
    assert_eq!(again["endpoints"]["unchanged"], 1);
    let (_, list) = target.get("/api/v1/app/acme/endpoint").await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(1));

    // A bad file writes nothing, and says where.
    let bad = json!({
        "eventTypes": [{"name": "fresh.type", "description": "New"}],
        "settings": {"colorPaletteLight": "#fff"},
        "connectors": [{"name": "x"}],
        "applications": [{"name": "Bad", "endpoints": [{"url": "not a url"}, {"url": "https://x.example", "bogus": 1}]}]
    });
    let (status, out) = target.post("/api/v1/environment/import", bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{out}");
    let locs = error_locs(&out);
    for want in [
        "body.settings.colorPaletteLight",
        "body.connectors",
        "body.applications.0.endpoints.0.url",
        "body.applications.0.endpoints.1",
    ] {
        assert!(locs.contains(&want.to_owned()), "{want} in {locs:?}");
    }
    let (status, _) = target.get("/api/v1/event-type/fresh.type").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing written");
    // What only the database knows is checked before writing too: a uid another application
    // holds, and the endpoint limit.
    let (status, _) = target
        .post("/api/v1/app", json!({"name": "Other", "uid": "taken"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let mut clash = file.clone();
    clash["applications"][0]["uid"] = json!("taken");
    clash["eventTypes"] = json!([{"name": "fresh.type", "description": "New"}]);
    let (status, out) = target.post("/api/v1/environment/import", clash).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{out}");
    assert_eq!(error_locs(&out), vec!["body.applications.0.uid"]);
    let many: Vec<_> = (0..6)
        .map(|n| json!({"url": format!("https://hooks.example/{n}")}))
        .collect();
    let (status, out) = target
        .post(
            "/api/v1/environment/import",
            json!({"eventTypes": [{"name": "fresh.type", "description": "New"}],
                   "applications": [{"name": "Big", "endpoints": many}]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{out}");
    assert_eq!(error_locs(&out), vec!["body.applications.0.endpoints"]);
    let (status, _) = target.get("/api/v1/event-type/fresh.type").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "still nothing written");

    // Operators only.
    let (_, app_b) = target.get("/api/v1/app/acme").await;
    let scoped = target
        .api_key(json!({"role": "app", "appId": app_b["id"]}))
        .await;
    let (status, _) = target
        .call_as(&scoped, Method::POST, "/api/v1/environment/export", None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}
