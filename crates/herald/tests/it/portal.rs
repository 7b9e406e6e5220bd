//! The portal and console over plain HTTP: one application's portal session cannot see or
//! change another's data through any page or form, the CSRF guard, and the session cookies.

use std::collections::HashMap;
use std::time::Duration;

use herald_core::model::DeliveryStatus;
use reqwest::{StatusCode, header};
use serde_json::json;

use crate::helpers::{ADMIN_TOKEN, TestApp};
use crate::receiver::Receiver;

/// A browser without JavaScript: keeps cookies, does not follow redirects.
pub(crate) struct Browser {
    base: String,
    client: reqwest::Client,
    cookies: HashMap<String, String>,
    /// Every `Set-Cookie` received, as sent.
    set_cookies: Vec<String>,
}

pub(crate) struct Page {
    pub(crate) status: StatusCode,
    location: String,
    pub(crate) body: String,
}

impl Browser {
    pub(crate) fn new(t: &TestApp) -> Self {
        Self {
            base: t.base.clone(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: HashMap::new(),
            set_cookies: Vec::new(),
        }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let cookie = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let res = req.header(header::COOKIE, cookie).send().await.unwrap();
        for set in res.headers().get_all(header::SET_COOKIE) {
            let set = set.to_str().unwrap().to_owned();
            let (name, rest) = set.split_once('=').unwrap();
            let value = rest.split(';').next().unwrap();
            if value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
            self.set_cookies.push(set);
        }
        let status = res.status();
        let location = res
            .headers()
            .get(header::LOCATION)
            .map(|l| l.to_str().unwrap().to_owned())
            .unwrap_or_default();
        Page {
            status,
            location,
            body: res.text().await.unwrap(),
        }
    }

    pub(crate) async fn get(&mut self, path: &str) -> Page {
        let req = self.client.get(format!("{}{path}", self.base));
        self.send(req).await
    }

    pub(crate) async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let req = self.client.post(format!("{}{path}", self.base));
        self.send(with_form(req, form)).await
    }

    /// The CSRF token the page at `path` puts into its forms.
    pub(crate) async fn csrf(&mut self, path: &str) -> String {
        let page = self.get(path).await;
        csrf_in(&page.body)
    }
}

fn with_form(req: reqwest::RequestBuilder, form: &[(&str, &str)]) -> reqwest::RequestBuilder {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
}

fn csrf_in(html: &str) -> String {
    let at = html
        .find(r#"name="_csrf" value=""#)
        .expect("a form with a CSRF token");
    let rest = &html[at + r#"name="_csrf" value=""#.len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

/// Signs a browser in with a portal token, as the entry page's script does.
pub(crate) async fn portal_session(t: &TestApp, token: &str) -> Browser {
    let mut b = Browser::new(t);
    let csrf = b.csrf("/portal").await;
    let page = b
        .post("/portal/session", &[("_csrf", &csrf), ("key", token)])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    b
}

pub(crate) async fn portal_token(t: &TestApp, app: &str) -> String {
    let (status, out) = t
        .post(&format!("/api/v1/auth/app-portal-access/{app}"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    out["token"].as_str().unwrap().to_owned()
}

/// An application with an endpoint that got one message, delivered: (app, endpoint, message,
/// attempt).
async fn delivered(t: &TestApp, receiver: &Receiver, name: &str) -> [String; 4] {
    let app = t.create_app(name).await;
    let ep = t
        .create_endpoint(&app, json!({"url": receiver.url(&format!("/{name}-hook"))}))
        .await;
    let msg = t
        .publish(
            &app,
            json!({"eventType": "order.status", "payload": {"of": name}}),
        )
        .await;
    t.wait_status(&msg, &ep, DeliveryStatus::Success, Duration::from_secs(10))
        .await;
    let attempt = t.attempts(&msg).await[0].id.as_str().to_owned();
    [app, ep, msg, attempt]
}

#[tokio::test]
async fn a_portal_session_cannot_see_or_change_another_application() {
    let t = TestApp::spawn().await;
    let receiver = Receiver::start().await;
    t.post(
        "/api/v1/event-type",
        json!({"name": "order.status", "description": "",
            "schemas": {"1": {"examples": [{"id": 1}]}}}),
    )
    .await;
    let [a, ep_a, msg_a, _] = delivered(&t, &receiver, "alpha").await;
    let [b, ep_b, msg_b, at_b] = delivered(&t, &receiver, "bravo").await;
    let (_, secret_before) = t
        .get(&format!("/api/v1/app/{b}/endpoint/{ep_b}/secret"))
        .await;
    let mut browser = portal_session(&t, &portal_token(&t, &a).await).await;

    // Its own data is there (so the refusals below are not an empty portal's).
    let own = browser
        .get(&format!("/portal/app/{a}/endpoint/{ep_a}"))
        .await;
    assert_eq!(own.status, StatusCode::OK);
    assert!(own.body.contains("alpha-hook"));
    let own = browser
        .get(&format!("/portal/app/{a}/message/{msg_a}"))
        .await;
    assert_eq!(own.status, StatusCode::OK);

    let secret_b = secret_before["key"].as_str().unwrap();
    let pages = [
        format!("/portal/app/{b}/endpoint"),
        format!("/portal/app/{b}/endpoint/{ep_b}"),
        format!("/portal/app/{a}/endpoint/{ep_b}"),
        format!("/portal/app/{a}/endpoint/{ep_b}/edit"),
        format!("/portal/app/{a}/endpoint/{ep_b}/secret?reveal=1"),
        format!("/portal/app/{b}/endpoint/{ep_b}/secret?reveal=1"),
        format!("/portal/app/{a}/endpoint/{ep_b}/delete"),
        format!("/portal/app/{b}/message"),
        format!("/portal/app/{a}/message/{msg_b}"),
        format!("/portal/app/{b}/message/{msg_b}"),
        format!("/portal/app/{a}/message/{msg_b}/attempt/{at_b}"),
        format!("/portal/app/{b}/message/{msg_b}/attempt/{at_b}"),
        format!("/portal/app/{b}/event-type"),
    ];
    for path in &pages {
        let page = browser.get(path).await;
        assert_eq!(
            page.status,
            StatusCode::NOT_FOUND,
            "GET {path}: {}",
            page.body
        );
        for leak in ["bravo", ep_b.as_str(), secret_b] {
            assert!(!page.body.contains(leak), "GET {path} shows {leak}");
        }
    }
    // The console's pages need the console's session.
    let page = browser.get(&format!("/admin/app/{b}/endpoint")).await;
    assert!(
        page.status.is_redirection() && page.location == "/admin",
        "{}",
        page.status
    );

    let csrf = browser.csrf(&format!("/portal/app/{a}/endpoint")).await;
    let edit = [
        ("_csrf", csrf.as_str()),
        ("url", "https://attacker.example/steal"),
    ];
    let with_csrf = [("_csrf", csrf.as_str())];
    let example = [("_csrf", csrf.as_str()), ("eventType", "order.status")];
    let recover = [("_csrf", csrf.as_str()), ("since", "2020-01-01T00:00")];
    let send_to_b = [
        ("_csrf", csrf.as_str()),
        ("eventType", "order.status"),
        ("endpoint", ep_b.as_str()),
    ];
    let forms: Vec<(String, &[(&str, &str)])> = vec![
        (format!("/portal/app/{a}/endpoint/{ep_b}/edit"), &edit),
        (format!("/portal/app/{b}/endpoint/{ep_b}/edit"), &edit),
        (format!("/portal/app/{b}/endpoint/new"), &edit),
        (
            format!("/portal/app/{a}/endpoint/{ep_b}/disable"),
            &with_csrf,
        ),
        (
            format!("/portal/app/{a}/endpoint/{ep_b}/delete"),
            &with_csrf,
        ),
        (
            format!("/portal/app/{b}/endpoint/{ep_b}/delete"),
            &with_csrf,
        ),
        (
            format!("/portal/app/{a}/endpoint/{ep_b}/secret/rotate"),
            &with_csrf,
        ),
        (
            format!("/portal/app/{a}/endpoint/{ep_b}/send-example"),
            &example,
        ),
        (format!("/portal/app/{a}/endpoint/{ep_b}/recover"), &recover),
        (
            format!("/portal/app/{a}/event-type/send-example"),
            &send_to_b,
        ),
        (
            format!("/portal/app/{a}/message/{msg_b}/endpoint/{ep_b}/resend"),
            &with_csrf,
        ),
        (
            format!("/portal/app/{a}/message/{msg_a}/endpoint/{ep_b}/resend"),
            &with_csrf,
        ),
        (
            format!("/portal/app/{b}/message/{msg_b}/endpoint/{ep_b}/resend"),
            &with_csrf,
        ),
    ];
    for (path, form) in &forms {
        let page = browser.post(path, form).await;
        assert_eq!(
            page.status,
            StatusCode::NOT_FOUND,
            "POST {path}: {}",
            page.body
        );
        assert!(!page.body.contains("bravo"), "POST {path} shows B's data");
    }

    // B is as it was.
    let (_, e) = t.get(&format!("/api/v1/app/{b}/endpoint/{ep_b}")).await;
    assert!(e["url"].as_str().unwrap().ends_with("/bravo-hook"));
    assert_eq!(e["disabled"], false);
    let (_, secret_after) = t
        .get(&format!("/api/v1/app/{b}/endpoint/{ep_b}/secret"))
        .await;
    assert_eq!(secret_after, secret_before);
    let (_, list) = t.get(&format!("/api/v1/app/{b}/endpoint")).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let (_, msgs) = t.get(&format!("/api/v1/app/{b}/msg")).await;
    assert_eq!(msgs["data"].as_array().unwrap().len(), 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(t.attempts(&msg_b).await.len(), 1);
    assert_eq!(receiver.received("/bravo-hook").len(), 1);
    t.stop().await;
}

#[tokio::test]
async fn forms_need_the_session_csrf_token_and_cookies_are_strict() {
    let t = TestApp::spawn().await;
    let a = t.create_app("alpha").await;
    let ep = t
        .create_endpoint(&a, json!({"url": "https://example.com/hook"}))
        .await;
    let token = portal_token(&t, &a).await;

    // Signing in needs the pre-session cookie's token.
    let mut stranger = Browser::new(&t);
    let page = stranger
        .post("/portal/session", &[("_csrf", "guess"), ("key", &token)])
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(!stranger.cookies.contains_key("herald_portal"));

    let mut browser = portal_session(&t, &token).await;
    let session = browser
        .set_cookies
        .iter()
        .find(|c| c.starts_with("herald_portal="))
        .unwrap();
    for attribute in ["; Path=/", "; HttpOnly", "; SameSite=Strict"] {
        assert!(session.contains(attribute), "{session}");
    }
    assert!(!session.contains("Secure"), "the public URL is http");

    let disable = format!("/portal/app/{a}/endpoint/{ep}/disable");
    let csrf = browser
        .csrf(&format!("/portal/app/{a}/endpoint/{ep}"))
        .await;
    let enabled = || async {
        let (_, e) = t.get(&format!("/api/v1/app/{a}/endpoint/{ep}")).await;
        e["disabled"] == false
    };
    for form in [vec![], vec![("_csrf", "wrong")]] {
        let page = browser.post(&disable, &form).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
        assert!(enabled().await);
    }
    // A form posted from another site, even with the token.
    let cross = browser
        .client
        .post(format!("{}{disable}", t.base))
        .header("sec-fetch-site", "cross-site");
    let cross = with_form(cross, &[("_csrf", csrf.as_str())]);
    assert_eq!(browser.send(cross).await.status, StatusCode::FORBIDDEN);
    assert!(enabled().await);
    // Another session's token does not do either.
    let other = portal_session(&t, &portal_token(&t, &a).await).await;
    let mut other = other;
    let other_csrf = other.csrf(&format!("/portal/app/{a}/endpoint")).await;
    assert_ne!(other_csrf, csrf);
    let page = browser.post(&disable, &[("_csrf", &other_csrf)]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    let page = browser.post(&disable, &[("_csrf", &csrf)]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert!(!enabled().await);

    // Portal tokens and app keys do not open the console; the admin token opens a session of
    // its own, which signing out revokes.
    let mut console = Browser::new(&t);
    let pre = console.csrf("/admin").await;
    let app_key = t.api_key(json!({"role": "app", "appId": a})).await;
    for credential in [token.as_str(), app_key.as_str(), "nonsense"] {
        let page = console
            .post("/admin/session", &[("_csrf", &pre), ("token", credential)])
            .await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
        assert!(!console.cookies.contains_key("herald_admin"));
    }
    let page = console
        .post("/admin/session", &[("_csrf", &pre), ("token", ADMIN_TOKEN)])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let session = console.cookies["herald_admin"].clone();
    assert!(!session.contains(ADMIN_TOKEN));
    assert_eq!(console.get("/admin").await.status, StatusCode::OK);
    assert_eq!(console.get("/admin/app").await.status, StatusCode::OK);
    let csrf = console.csrf("/admin").await;
    let page = console.post("/admin/logout", &[("_csrf", &csrf)]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let (status, _) = t
        .call_as(&session, reqwest::Method::GET, "/api/v1/app", None)
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the session key is revoked"
    );

    // Signing out of the portal revokes the portal token.
    let csrf = browser.csrf(&format!("/portal/app/{a}/endpoint")).await;
    browser.post("/portal/logout", &[("_csrf", &csrf)]).await;
    let (status, _) = t
        .call_as(
            &token,
            reqwest::Method::GET,
            &format!("/api/v1/app/{a}/endpoint"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    t.stop().await;
}

/// The attempt page's data: the request's headers as sent with the values that are secrets at
/// rest replaced, and the body only when shaping changed it; deleting the content deletes it.
#[tokio::test]
async fn attempts_record_the_request_as_sent_without_secrets() {
    let t = TestApp::spawn().await;
    let receiver = Receiver::start().await;
    let app = t.create_app("alpha").await;
    let plain = t
        .create_endpoint(&app, json!({"url": receiver.url("/plain")}))
        .await;
    let shaped = t
        .create_endpoint(
            &app,
            json!({"url": receiver.url("/shaped"), "envelope": "typed",
                "headers": {"X-Tenant-Key": "tenant-secret-1"},
                "signature": {"scheme": "static-header"}, "secret": "static-secret-2"}),
        )
        .await;
    let msg = t
        .publish(
            &app,
            json!({"eventType": "order.status", "payload": {"id": 7}}),
        )
        .await;
    let mut found = HashMap::new();
    for ep in [&plain, &shaped] {
        t.wait_status(&msg, ep, DeliveryStatus::Success, Duration::from_secs(10))
            .await;
    }
    for a in t.attempts(&msg).await {
        let path = format!("/api/v1/app/{app}/msg/{msg}/attempt/{}", a.id.as_str());
        let (status, body) = t.get(&path).await;
        assert_eq!(status, StatusCode::OK);
        found.insert(a.endpoint_id.as_str().to_owned(), (path, body));
    }
    let (_, plain_attempt) = &found[&plain];
    assert_eq!(plain_attempt["requestHeaders"]["webhook-id"], json!(msg));
    assert!(
        plain_attempt["requestHeaders"]["webhook-signature"]
            .as_str()
            .unwrap()
            .starts_with("v1,")
    );
    assert!(
        plain_attempt.get("requestBody").is_none(),
        "the payload itself was sent"
    );

    let (path, shaped_attempt) = &found[&shaped];
    let text = shaped_attempt.to_string();
    assert!(
        !text.contains("tenant-secret-1") && !text.contains("static-secret-2"),
        "{text}"
    );
    let headers = &shaped_attempt["requestHeaders"];
    assert!(
        headers["x-tenant-key"]
            .as_str()
            .unwrap()
            .starts_with("(hidden")
    );
    assert!(
        headers["impilo-webhook-secret"]
            .as_str()
            .unwrap()
            .starts_with("(hidden")
    );
    let sent: serde_json::Value =
        serde_json::from_str(shaped_attempt["requestBody"].as_str().unwrap()).unwrap();
    assert_eq!(sent["payload"], json!({"id": 7}));
    assert_eq!(
        receiver.received("/shaped")[0].body,
        shaped_attempt["requestBody"].as_str().unwrap().as_bytes()
    );
    let (status, _) = t
        .call(reqwest::Method::DELETE, &format!("{path}/content"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, after) = t.get(path).await;
    assert!(after.get("requestBody").is_none());
    assert_eq!(after["requestHeaders"], *headers);
    t.stop().await;
}

/// Every page of the console answers for an operator, with the data it lists: applications,
/// an application's pages, devices and their history, operational webhook endpoints (created,
/// edited and deleted through their forms), inboxes, API keys (created and revoked), portal
/// links. A read-only session sees them and is refused changes with the API's message.
#[tokio::test]
async fn console_pages_render_and_their_forms_work() {
    let t = TestApp::spawn().await;
    let receiver = Receiver::start().await;
    t.post("/api/v1/event-type/import", json!({"catalog": "kobiton"}))
        .await;
    let [a, ep, msg, attempt] = delivered(&t, &receiver, "alpha").await;
    let (status, out) = t
        .call(
            reqwest::Method::PUT,
            &format!("/api/v1/app/{a}/device/dev-1"),
            Some(json!({"name": "Galaxy Note 8", "kind": "private", "group": "lab-1"})),
        )
        .await;
    assert!(status.is_success(), "{out}");
    t.post(
        &format!("/api/v1/app/{a}/device/dev-1/status"),
        json!({"status": "online"}),
    )
    .await;
    t.post("/api/v1/inbox", json!({"name": "factory"})).await;

    let mut console = Browser::new(&t);
    let pre = console.csrf("/admin").await;
    let page = console
        .post("/admin/session", &[("_csrf", &pre), ("token", ADMIN_TOKEN)])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let pages = [
        ("/admin".to_owned(), "Delivery queue"),
        ("/admin/app".to_owned(), "alpha"),
        (format!("/admin/app/{a}/endpoint"), "alpha-hook"),
        (format!("/admin/app/{a}/endpoint/new"), "Create endpoint"),
        (format!("/admin/app/{a}/endpoint/{ep}"), "Deliveries"),
        (format!("/admin/app/{a}/endpoint/{ep}?range=30d"), "<svg"),
        (format!("/admin/app/{a}/endpoint/{ep}/edit"), "alpha-hook"),
        (
            format!("/admin/app/{a}/endpoint/{ep}/secret?reveal=1"),
            "whsec_",
        ),
        (
            format!("/admin/app/{a}/endpoint/{ep}/delete"),
            "cannot be undone",
        ),
        (format!("/admin/app/{a}/event-type"), "device.status.online"),
        (
            format!("/admin/app/{a}/message?status=success"),
            msg.as_str(),
        ),
        (format!("/admin/app/{a}/message/{msg}"), "alpha"),
        (
            format!("/admin/app/{a}/message/{msg}/attempt/{attempt}"),
            "webhook-signature",
        ),
        (format!("/admin/app/{a}/device"), "Galaxy Note 8"),
        (
            format!("/admin/app/{a}/device?status=online"),
            "Galaxy Note 8",
        ),
        (format!("/admin/app/{a}/device/dev-1"), "online"),
        (format!("/admin/app/{a}/portal-link"), "Create portal link"),
        ("/admin/operational".to_owned(), "Add operational endpoint"),
        ("/admin/inbox".to_owned(), "factory"),
        ("/admin/inbox/factory".to_owned(), "Export CSV"),
        ("/admin/api-key".to_owned(), "New API key"),
    ];
    for (path, expect) in &pages {
        let page = console.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "GET {path}: {}", page.body);
        assert!(page.body.contains(expect), "GET {path} lacks {expect}");
    }
    let bad = console
        .get(&format!("/admin/app/{a}/message?since=yesterday"))
        .await;
    assert!(
        bad.body.contains("role=\"alert\""),
        "a bad filter is shown, not a failure"
    );

    // Forms: a portal link, an operational endpoint's life, an API key's.
    let csrf = console.csrf("/admin").await;
    let link = console
        .post(
            &format!("/admin/app/{a}/portal-link"),
            &[("_csrf", &csrf), ("expiry", "3600")],
        )
        .await;
    assert!(link.body.contains("/portal#key=hk_"), "{}", link.body);
    let created = console
        .post(
            "/admin/operational/new",
            &[
                ("_csrf", &csrf),
                ("url", "https://ops.example.com/herald"),
                ("eventTypes", "endpoint.disabled"),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    let (_, ops) = t.get("/api/v1/operational-webhook/endpoint").await;
    let op = ops["data"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(ops["data"][0]["eventTypes"], json!(["endpoint.disabled"]));
    for path in [
        format!("/admin/operational/{op}"),
        format!("/admin/operational/{op}/secret?reveal=1"),
    ] {
        assert_eq!(console.get(&path).await.status, StatusCode::OK, "{path}");
    }
    let edited = console
        .post(
            &format!("/admin/operational/{op}/edit"),
            &[
                ("_csrf", &csrf),
                ("url", "https://ops.example.com/v2"),
                ("timeoutSeconds", "abc"),
            ],
        )
        .await;
    assert_eq!(edited.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        edited.body.contains("timeoutSeconds"),
        "the API's message names the field"
    );
    let edited = console
        .post(
            &format!("/admin/operational/{op}/edit"),
            &[("_csrf", &csrf), ("url", "https://ops.example.com/v2")],
        )
        .await;
    assert_eq!(edited.status, StatusCode::SEE_OTHER, "{}", edited.body);
    let (_, e) = t
        .get(&format!("/api/v1/operational-webhook/endpoint/{op}"))
        .await;
    assert_eq!(e["url"], "https://ops.example.com/v2");
    assert!(e["eventTypes"].is_null(), "unticked: all event types again");
    let deleted = console
        .post(
            &format!("/admin/operational/{op}/delete"),
            &[("_csrf", &csrf)],
        )
        .await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER);
    // A console session lists every credential but cannot mint keys.
    let keys = console.get("/admin/api-key").await;
    assert_eq!(keys.status, StatusCode::OK);
    assert!(keys.body.contains("console session"), "{}", keys.body);
    let minted = console
        .post(
            "/admin/api-key",
            &[("_csrf", &csrf), ("name", "reader"), ("role", "read-only")],
        )
        .await;
    assert_eq!(minted.status, StatusCode::METHOD_NOT_ALLOWED);
    let token = t
        .api_key(json!({"role": "read-only", "name": "reader"}))
        .await;

    // A read-only console sees the pages and gets the API's refusal for changes.
    let mut reader = Browser::new(&t);
    let pre = reader.csrf("/admin").await;
    reader
        .post("/admin/session", &[("_csrf", &pre), ("token", &token)])
        .await;
    let page = reader.get(&format!("/admin/app/{a}/endpoint/{ep}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("read-only") && !page.body.contains(">Disable<"));
    let csrf = reader.csrf("/admin").await;
    let refused = reader
        .post(
            &format!("/admin/app/{a}/endpoint/{ep}/disable"),
            &[("_csrf", &csrf)],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.body.contains("read-only"));
    t.stop().await;
}

/// Every credential can be listed and revoked: a customer's portal token, a console session
/// (directly, or by revoking the key it was signed in with), and all of an application's
/// portal tokens at once with `expire-all`. A session cannot sign in again to extend itself,
/// nor create API keys.
#[tokio::test]
async fn every_credential_is_listed_and_revoked_at_once() {
    let t = TestApp::spawn().await;
    let (a, b) = (t.create_app("A").await, t.create_app("B").await);
    let portal_token = |app: String| {
        let t = &t;
        async move {
            let (_, access) = t
                .post(&format!("/api/v1/auth/app-portal-access/{app}"), json!({}))
                .await;
            access["token"].as_str().unwrap().to_owned()
        }
    };
    let works = |token: String| {
        let t = &t;
        async move {
            t.call_as(&token, reqwest::Method::GET, "/api/v1/app", None)
                .await
                .0
                == StatusCode::OK
        }
    };
    let key_id = |token: &str| {
        herald_core::token::parse_api_token(token)
            .unwrap()
            .0
            .into_string()
    };

    // A portal token is listed (kind portal, its application) and revoked like any key.
    let customer = portal_token(a.clone()).await;
    let (_, keys) = t.get("/api/v1/api-key").await;
    let listed = keys["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == key_id(&customer).as_str())
        .expect("the portal token is listed")
        .clone();
    assert_eq!(
        (listed["kind"].as_str(), listed["appId"].as_str()),
        (Some("portal"), Some(a.as_str()))
    );
    assert!(works(customer.clone()).await);
    let (status, _) = t
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/api-key/{}", key_id(&customer)),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(
        !works(customer).await,
        "a revoked portal token works no more"
    );

    // A console session ends when the key it was signed in with is revoked.
    let signer = t.api_key(json!({"role": "admin", "name": "ops"})).await;
    let mut console = Browser::new(&t);
    let pre = console.csrf("/admin").await;
    let page = console
        .post("/admin/session", &[("_csrf", &pre), ("token", &signer)])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let session = console.cookies["herald_admin"].clone();
    assert_eq!(console.get("/admin").await.status, StatusCode::OK);
    let (_, keys) = t.get("/api/v1/api-key").await;
    assert!(keys["data"].as_array().unwrap().iter().any(|k| {
        k["id"] == key_id(&session).as_str() && k["parentId"] == key_id(&signer).as_str()
    }));
    // It cannot renew itself by signing in with its own token, nor mint keys.
    let mut again = Browser::new(&t);
    let pre = again.csrf("/admin").await;
    let page = again
        .post("/admin/session", &[("_csrf", &pre), ("token", &session)])
        .await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    let (status, _) = t
        .call_as(
            &session,
            reqwest::Method::POST,
            "/api/v1/api-key",
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = t
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/api-key/{}", key_id(&signer)),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(!works(session).await, "the session ended with its key");
    assert_eq!(
        console.get("/admin/app").await.status,
        StatusCode::SEE_OTHER
    );

    // expire-all ends every portal token of one application, at once or later.
    let (a1, a2, b1) = (
        portal_token(a.clone()).await,
        portal_token(a.clone()).await,
        portal_token(b.clone()).await,
    );
    let (status, _) = t
        .post(&format!("/api/v1/auth/app/{a}/expire-all"), json!({}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(!works(a1).await && !works(a2).await);
    assert!(
        works(b1.clone()).await,
        "another application's tokens go on"
    );
    let (status, _) = t
        .post(
            &format!("/api/v1/auth/app/{b}/expire-all"),
            json!({"expiry": 60}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let b_key = t
        .store
        .get_api_key(&herald_core::token::parse_api_token(&b1).unwrap().0)
        .await
        .unwrap()
        .unwrap();
    let left = b_key.expires_at.unwrap() - herald_core::time::now();
    assert!((50..=60).contains(&left.num_seconds()), "{left}");
    let (status, body) = t
        .post(
            &format!("/api/v1/auth/app/{b}/expire-all"),
            json!({"sessionIds": ["s1"]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    t.stop().await;
}

/// An endpoint following a seed system's profile is offered that system's event types only,
/// and the form keeps its name and profile when saved.
#[tokio::test]
async fn a_profiled_endpoint_is_offered_its_catalogues_event_types() {
    let t = TestApp::spawn().await;
    let app = t.create_app("Lab").await;
    for catalog in ["kobiton", "impilo"] {
        let (status, _) = t
            .post("/api/v1/event-type/import", json!({"catalog": catalog}))
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let kobiton = t
        .create_endpoint(
            &app,
            json!({"url": "https://example.com/k", "profile": "kobiton", "name": "Lab hook"}),
        )
        .await;
    let plain = t
        .create_endpoint(&app, json!({"url": "https://example.com/p"}))
        .await;
    let token = portal_token(&t, &app).await;
    let mut browser = portal_session(&t, &token).await;
    let page = browser
        .get(&format!("/portal/app/{app}/endpoint/{kobiton}/edit"))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(r#"value="device.status.online""#));
    assert!(
        !page.body.contains(r#"value="reading.weight""#),
        "Impilo's event types are not offered to a Kobiton webhook"
    );
    assert!(page.body.contains(r#"value="Lab hook""#));
    let page = browser
        .get(&format!("/portal/app/{app}/endpoint/{plain}/edit"))
        .await;
    assert!(page.body.contains(r#"value="device.status.online""#));
    assert!(page.body.contains(r#"value="reading.weight""#));
    // Saving the form keeps the name and the profile.
    let path = format!("/portal/app/{app}/endpoint/{kobiton}/edit");
    let csrf = browser.csrf(&path).await;
    let saved = browser
        .post(
            &path,
            &[
                ("_csrf", &csrf),
                ("url", "https://example.com/k2"),
                ("name", "Lab hook"),
                ("profile", "kobiton"),
                ("eventTypes", "device.status.online"),
            ],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    let (_, out) = t
        .get(&format!("/api/v1/app/{app}/endpoint/{kobiton}"))
        .await;
    assert_eq!(
        (&out["url"], &out["name"], &out["profile"]),
        (
            &json!("https://example.com/k2"),
            &json!("Lab hook"),
            &json!("kobiton")
        )
    );
    t.stop().await;
}
