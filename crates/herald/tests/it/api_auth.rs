//! Who may call what: the auth matrix.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{ADMIN_TOKEN, TestApp};

#[tokio::test]
async fn missing_and_wrong_tokens_get_401() {
    let t = TestApp::spawn().await;
    let none = t.client.get(t.url("/api/v1/app")).send().await.unwrap();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    let body: serde_json::Value = none.json().await.unwrap();
    assert_eq!(body["code"], "authentication_failed");
    for token in [
        "wrong",
        "hk_0000000000000000000000_0000000000000000000000000000000000000000",
        "Basic abc",
    ] {
        let (status, _) = t.call_as(token, Method::GET, "/api/v1/app", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token}");
    }
    let basic = t
        .client
        .get(t.url("/api/v1/app"))
        .header("authorization", format!("Basic {ADMIN_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
    t.stop().await;
}

#[tokio::test]
async fn app_scoped_and_read_only_tokens() {
    let t = TestApp::spawn().await;
    let own = t.create_app("Own").await;
    let foreign = t.create_app("Foreign").await;
    let foreign_ep = t
        .create_endpoint(&foreign, json!({"url": "https://example.com/f"}))
        .await;
    let app_token = t.api_key(json!({"role": "app", "appId": own})).await;
    let read_only = t.api_key(json!({"role": "read-only"})).await;
    let admin_key = t.api_key(json!({"role": "admin", "name": "ops"})).await;

    // An admin API key can do what the admin token can.
    assert_eq!(
        t.call_as(
            &admin_key,
            Method::POST,
            "/api/v1/app",
            Some(json!({"name": "By key"}))
        )
        .await
        .0,
        StatusCode::CREATED
    );

    // App-scoped: its own application works, another's is invisible (404, never 403).
    let own_get = t
        .call_as(&app_token, Method::GET, &format!("/api/v1/app/{own}"), None)
        .await;
    assert_eq!(own_get.0, StatusCode::OK);
    let ep = t
        .call_as(
            &app_token,
            Method::POST,
            &format!("/api/v1/app/{own}/endpoint"),
            Some(json!({"url": "https://example.com/o"})),
        )
        .await;
    assert_eq!(ep.0, StatusCode::CREATED);
    let msg = t
        .call_as(
            &app_token,
            Method::POST,
            &format!("/api/v1/app/{own}/msg"),
            Some(json!({"eventType": "a", "payload": {}})),
        )
        .await;
    assert_eq!(msg.0, StatusCode::ACCEPTED);
    for (method, path, body) in [
        (Method::GET, format!("/api/v1/app/{foreign}"), None),
        (
            Method::PATCH,
            format!("/api/v1/app/{foreign}"),
            Some(json!({"name": "x"})),
        ),
        (
            Method::PUT,
            format!("/api/v1/app/{foreign}"),
            Some(json!({"name": "x"})),
        ),
        (Method::DELETE, format!("/api/v1/app/{foreign}"), None),
        (Method::GET, format!("/api/v1/app/{foreign}/endpoint"), None),
        (
            Method::GET,
            format!("/api/v1/app/{foreign}/endpoint/{foreign_ep}"),
            None,
        ),
        (
            Method::GET,
            format!("/api/v1/app/{foreign}/endpoint/{foreign_ep}/secret"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/app/{foreign}/endpoint"),
            Some(json!({"url": "https://e.com"})),
        ),
        (
            Method::POST,
            format!("/api/v1/app/{foreign}/msg"),
            Some(json!({"eventType": "a", "payload": {}})),
        ),
        (Method::GET, format!("/api/v1/app/{foreign}/msg"), None),
        // Creating an application through an inline `application` is not for scoped tokens.
        (
            Method::POST,
            "/api/v1/app/new-one/msg".to_owned(),
            Some(json!({"eventType": "a", "payload": {}, "application": {"name": "n"}})),
        ),
    ] {
        let (status, body) = t.call_as(&app_token, method.clone(), &path, body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {body}");
    }
    // Listing applications shows only its own.
    let (_, list) = t
        .call_as(&app_token, Method::GET, "/api/v1/app", None)
        .await;
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![own.as_str()]);
    // Installation-wide operations are refused.
    for (method, path, body) in [
        (Method::POST, "/api/v1/app", Some(json!({"name": "x"}))),
        (
            Method::POST,
            "/api/v1/event-type",
            Some(json!({"name": "a.b", "description": "d"})),
        ),
        (Method::DELETE, "/api/v1/event-type/a.b", None),
        (
            Method::POST,
            "/api/v1/api-key",
            Some(json!({"role": "admin"})),
        ),
        (Method::GET, "/api/v1/api-key", None),
        (Method::DELETE, format!("/api/v1/app/{own}").as_str(), None),
        // A limited token cannot mint tokens (a portal session could renew itself forever).
        (
            Method::POST,
            format!("/api/v1/auth/app-portal-access/{own}").as_str(),
            Some(json!({})),
        ),
        (
            Method::POST,
            format!("/api/v1/auth/app-portal-access/{foreign}").as_str(),
            Some(json!({})),
        ),
    ] {
        let (status, body) = t.call_as(&app_token, method.clone(), path, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {body}");
        assert_eq!(body["code"], "insufficient_permissions");
    }
    // The catalogue is readable.
    assert_eq!(
        t.call_as(&app_token, Method::GET, "/api/v1/event-type", None)
            .await
            .0,
        StatusCode::OK
    );

    // Read-only: reads work everywhere except signing secrets, every write is refused.
    let (status, _) = t
        .call_as(
            &read_only,
            Method::GET,
            &format!("/api/v1/app/{foreign}/endpoint/{foreign_ep}/secret"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        t.call_as(
            &read_only,
            Method::GET,
            &format!("/api/v1/app/{foreign}/endpoint"),
            None
        )
        .await
        .0,
        StatusCode::OK
    );
    assert_eq!(
        t.call_as(&read_only, Method::GET, "/api/v1/app", None)
            .await
            .0,
        StatusCode::OK
    );
    for (method, path, body) in [
        (
            Method::POST,
            "/api/v1/app".to_owned(),
            Some(json!({"name": "x"})),
        ),
        (
            Method::PATCH,
            format!("/api/v1/app/{own}"),
            Some(json!({"name": "x"})),
        ),
        (Method::DELETE, format!("/api/v1/app/{own}"), None),
        (
            Method::POST,
            format!("/api/v1/app/{own}/msg"),
            Some(json!({"eventType": "a", "payload": {}})),
        ),
        (
            Method::POST,
            format!("/api/v1/app/{foreign}/endpoint/{foreign_ep}/secret/rotate"),
            Some(json!({})),
        ),
        (
            Method::PUT,
            "/api/v1/event-type/a.b".to_owned(),
            Some(json!({"description": "d"})),
        ),
    ] {
        let (status, body) = t.call_as(&read_only, method.clone(), &path, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {body}");
    }
    t.stop().await;
}

#[tokio::test]
async fn api_keys_are_shown_once_stored_hashed_and_revocable() {
    let t = TestApp::spawn().await;
    let (status, created) = t
        .post(
            "/api/v1/api-key",
            json!({"role": "read-only", "name": "dashboards"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let token = created["token"].as_str().unwrap();
    let id = created["id"].as_str().unwrap();
    assert!(token.starts_with("hk_"));
    let (status, listed) = t.get("/api/v1/api-key").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["data"][0]["id"], id);
    assert_eq!(listed["data"][0]["role"], "read-only");
    assert!(
        listed["data"][0].get("token").is_none(),
        "tokens are never listed"
    );
    assert_eq!(
        t.get(&format!("/api/v1/api-key/{id}")).await.1["name"],
        "dashboards"
    );

    // Only a hash is kept.
    let key = t
        .store
        .get_api_key(&herald_core::id::ApiKeyId::parse(id).unwrap())
        .await
        .unwrap()
        .unwrap();
    let secret = token.rsplit('_').next().unwrap();
    assert_ne!(key.secret_hash, secret.as_bytes());
    assert_eq!(
        key.secret_hash,
        herald_core::token::sha256(secret.as_bytes())
    );

    assert_eq!(
        t.call_as(token, Method::GET, "/api/v1/app", None).await.0,
        StatusCode::OK
    );
    // A token with a changed secret part is refused.
    // Change the last character to a different one (a fixed replacement would sometimes be
    // the same character).
    let last = if token.ends_with('X') { 'Y' } else { 'X' };
    let forged = format!("{}{last}", &token[..token.len() - 1]);
    assert_eq!(
        t.call_as(&forged, Method::GET, "/api/v1/app", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        t.call(Method::DELETE, &format!("/api/v1/api-key/{id}"), None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        t.call_as(token, Method::GET, "/api/v1/app", None).await.0,
        StatusCode::UNAUTHORIZED
    );

    // Bad requests.
    let (status, body) = t.post("/api/v1/api-key", json!({"role": "app"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, _) = t.post("/api/v1/api-key", json!({"role": "root"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = t
        .post("/api/v1/api-key", json!({"role": "app", "appId": "nope"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    t.stop().await;
}

#[tokio::test]
async fn expired_keys_stop_working() {
    let t = TestApp::spawn().await;
    let issued = herald_core::token::issue_api_token();
    let now = herald_core::time::now();
    t.store
        .create_api_key(&herald_core::model::ApiKey {
            id: issued.key_id.clone(),
            name: "old".into(),
            role: herald_core::model::Role::Admin,
            kind: herald_core::model::KeyKind::Api,
            app_id: None,
            secret_hash: issued.secret_hash.clone(),
            created_at: now - chrono::Duration::days(2),
            expires_at: Some(now - chrono::Duration::seconds(1)),
            parent_id: None,
            feature_flags: Vec::new(),
        })
        .await
        .unwrap();
    let (status, _) = t
        .call_as(&issued.token, Method::GET, "/api/v1/app", None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    t.stop().await;
}

#[tokio::test]
async fn portal_access_gives_an_app_scoped_expiring_token() {
    let t = TestApp::spawn().await;
    let app = t.create_app("Portal").await;
    let other = t.create_app("Other").await;
    let (status, access) = t
        .post(
            &format!("/api/v1/auth/app-portal-access/{app}"),
            json!({"expiry": 3600}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{access}");
    let token = access["token"].as_str().unwrap();
    let url = access["url"].as_str().unwrap();
    assert!(
        url.starts_with(&t.base) && url.contains("/portal#key=") && url.ends_with(token),
        "{url}"
    );
    let key_id = herald_core::token::parse_api_token(token).unwrap().0;
    let key = t.store.get_api_key(&key_id).await.unwrap().unwrap();
    let lifetime = key.expires_at.unwrap() - key.created_at;
    assert!(
        (3599..=3601).contains(&lifetime.num_seconds()),
        "{lifetime}"
    );
    assert_eq!(
        t.call_as(
            token,
            Method::GET,
            &format!("/api/v1/app/{app}/endpoint"),
            None
        )
        .await
        .0,
        StatusCode::OK
    );
    assert_eq!(
        t.call_as(token, Method::GET, &format!("/api/v1/app/{other}"), None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    // Portal tokens are listed with the keys, by kind, never with their secret.
    let (_, keys) = t.get("/api/v1/api-key").await;
    let listed = &keys["data"].as_array().unwrap()[0];
    assert_eq!(listed["id"], key_id.as_str());
    assert_eq!(listed["kind"], "portal");
    assert_eq!(listed["appId"], app.as_str());
    assert!(!keys.to_string().contains(token));

    // Default lifetime is seven days; out-of-range expiries are refused.
    let (_, week) = t
        .post(&format!("/api/v1/auth/app-portal-access/{app}"), json!({}))
        .await;
    let key = t
        .store
        .get_api_key(
            &herald_core::token::parse_api_token(week["token"].as_str().unwrap())
                .unwrap()
                .0,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((key.expires_at.unwrap() - key.created_at).num_days(), 7);
    for expiry in [10, 700_000] {
        let (status, _) = t
            .post(
                &format!("/api/v1/auth/app-portal-access/{app}"),
                json!({"expiry": expiry}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    // A read-only portal token cannot write.
    let (_, ro) = t
        .post(
            &format!("/api/v1/auth/app-portal-access/{app}"),
            json!({"readOnly": true}),
        )
        .await;
    let ro = ro["token"].as_str().unwrap();
    assert_eq!(
        t.call_as(
            ro,
            Method::POST,
            &format!("/api/v1/app/{app}/endpoint"),
            Some(json!({"url": "https://e.com"}))
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );

    // Creating the application inline.
    let (status, _) = t
        .post(
            "/api/v1/auth/app-portal-access/fresh-app",
            json!({"application": {"name": "Fresh"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(t.get("/api/v1/app/fresh-app").await.1["name"], "Fresh");
    assert_eq!(
        t.post("/api/v1/auth/app-portal-access/missing", json!({}))
            .await
            .0,
        StatusCode::NOT_FOUND
    );

    // Logout ends the session; other tokens cannot log out.
    assert_eq!(
        t.call_as(token, Method::POST, "/api/v1/auth/logout", None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        t.call_as(token, Method::GET, &format!("/api/v1/app/{app}"), None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        t.call(Method::POST, "/api/v1/auth/logout", None).await.0,
        StatusCode::FORBIDDEN
    );
    t.stop().await;
}

/// The routes the portal and console are built on: `whoami` describes the calling token, and
/// `console-session` mints a session of the caller's role, tied to the key signed in with, only
/// for unscoped credentials that are not sessions themselves.
#[tokio::test]
async fn whoami_and_console_sessions() {
    let t = TestApp::spawn().await;
    let app = t.create_app("Own").await;
    let (status, me) = t.get("/api/v1/auth/whoami").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["role"], "admin");
    assert!(me["keyId"].is_null() && me["kind"].is_null() && me["appId"].is_null());

    let read_only = t
        .api_key(json!({"role": "read-only", "name": "auditor"}))
        .await;
    let (status, who) = t
        .call_as(&read_only, Method::GET, "/api/v1/auth/whoami", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (&who["role"], &who["kind"]),
        (&json!("read-only"), &json!("api"))
    );
    let key_id = who["keyId"].as_str().unwrap().to_owned();

    // A read-only key may open a read-only console session, tied to it.
    let (status, session) = t
        .call_as(
            &read_only,
            Method::POST,
            "/api/v1/auth/console-session",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{session}");
    let token = session["token"].as_str().unwrap().to_owned();
    let (_, who) = t
        .call_as(&token, Method::GET, "/api/v1/auth/whoami", None)
        .await;
    assert_eq!(
        (&who["role"], &who["kind"]),
        (&json!("read-only"), &json!("portal"))
    );
    let (_, listed) = t
        .get(&format!(
            "/api/v1/api-key/{}",
            session["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(listed["parentId"], json!(key_id));

    // A session cannot open another (it would extend itself), nor can an app-scoped token.
    let (status, _) = t
        .call_as(&token, Method::POST, "/api/v1/auth/console-session", None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let app_token = t.api_key(json!({"role": "app", "appId": app})).await;
    let (status, _) = t
        .call_as(
            &app_token,
            Method::POST,
            "/api/v1/auth/console-session",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Revoking the key signed in with ends the session.
    let (status, _) = t
        .call(Method::DELETE, &format!("/api/v1/api-key/{key_id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = t
        .call_as(&token, Method::GET, "/api/v1/auth/whoami", None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    t.stop().await;
}
