//! Firebase's REST details on an inbox: `shallow` and `print` on reads and writes, `DELETE`
//! (of a path and of the whole inbox), and `PUT null` whatever the content type.

use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::testresult;
use crate::helpers::TestApp;
use crate::inbox::{in_url, inbox, read, send};

/// An inbox with its token and some data: (token, the POSTed key).
async fn factory(t: &TestApp) -> (String, String) {
    let (_, token) = inbox(t, json!({"name": "factory", "publicWrite": true})).await;
    let (_, posted) = send(
        t,
        Method::POST,
        "factory/testresult",
        &token,
        Some(testresult()),
    )
    .await;
    send(
        t,
        Method::PUT,
        "factory/devices/abc",
        &token,
        Some(json!({"t": 1, "n": "x"})),
    )
    .await;
    send(t, Method::PUT, "factory/flag", &token, Some(json!(true))).await;
    (token, posted["name"].as_str().unwrap().to_owned())
}

/// A request to `/in/{path}` with the token and `query`; the status and the body as text.
async fn raw(
    t: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    query: &[(&str, &str)],
    body: Option<(&str, &str)>,
) -> (StatusCode, String) {
    let mut req = t
        .client
        .request(method, in_url(t, &format!("/in/{path}"), token, query));
    if let Some((content_type, text)) = body {
        req = req.header(CONTENT_TYPE, content_type).body(text.to_owned());
    }
    let response = req.send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

/// A 400 with Firebase's body: `{"error": "…"}` and nothing else.
fn firebase_error(status: StatusCode, text: &str) {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    let body: Value = serde_json::from_str(text).unwrap();
    let fields = body.as_object().unwrap();
    assert_eq!(fields.len(), 1, "{text}");
    assert!(
        fields["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{text}"
    );
}

#[tokio::test]
async fn shallow_and_print_as_firebase() {
    let t = TestApp::spawn().await;
    let (token, key) = factory(&t).await;
    // shallow: the children's keys, each `true`; a primitive as it is.
    assert_eq!(
        read(&t, "factory/.json", &token, &[("shallow", "true")]).await,
        json!({"devices": true, "flag": true, "testresult": true})
    );
    assert_eq!(
        read(
            &t,
            "factory/testresult.json",
            &token,
            &[("shallow", "true")]
        )
        .await,
        json!({key.clone(): true})
    );
    assert_eq!(
        read(&t, "factory/flag.json", &token, &[("shallow", "true")]).await,
        json!(true)
    );
    assert_eq!(
        read(&t, "factory/none.json", &token, &[("shallow", "true")]).await,
        Value::Null
    );
    // Not mixed with a query: Firebase's 400.
    for mixed in [
        ("orderBy", "\"$key\""),
        ("limitToFirst", "1"),
        ("limitToLast", "1"),
        ("startAt", "\"a\""),
        ("endAt", "\"z\""),
    ] {
        let (status, text) = raw(
            &t,
            Method::GET,
            "factory/.json",
            &token,
            &[("shallow", "true"), mixed],
            None,
        )
        .await;
        firebase_error(status, &text);
    }
    // shallow is for reads.
    let (status, text) = raw(
        &t,
        Method::POST,
        "factory/x",
        &token,
        &[("shallow", "true")],
        Some(("application/json", "1")),
    )
    .await;
    firebase_error(status, &text);

    // print=pretty: Firebase's layout, on reads and on writes.
    let (status, text) = raw(
        &t,
        Method::GET,
        "factory/devices/abc.json",
        &token,
        &[("print", "pretty")],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(text, "{\n  \"n\" : \"x\",\n  \"t\" : 1\n}");
    let (status, text) = raw(
        &t,
        Method::POST,
        "factory/testresult.json",
        &token,
        &[("print", "pretty")],
        Some(("application/json", "{\"a\":1}")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        text.starts_with("{\n  \"name\" : \"-") && text.ends_with("\"\n}"),
        "{text}"
    );
    let (_, text) = raw(
        &t,
        Method::PUT,
        "factory/p",
        &token,
        &[("print", "pretty")],
        Some(("application/json", "{\"b\":[1]}")),
    )
    .await;
    assert_eq!(text, "{\n  \"b\" : [\n    1\n  ]\n}");
    // print=silent: 204 and no body, the write done.
    let (status, text) = raw(
        &t,
        Method::PUT,
        "factory/quiet",
        &token,
        &[("print", "silent")],
        Some(("application/json", "7")),
    )
    .await;
    assert_eq!((status, text.as_str()), (StatusCode::NO_CONTENT, ""));
    assert_eq!(read(&t, "factory/quiet", &token, &[]).await, json!(7));
    let (status, text) = raw(
        &t,
        Method::GET,
        "factory/quiet.json",
        &token,
        &[("print", "silent")],
        None,
    )
    .await;
    assert_eq!((status, text.as_str()), (StatusCode::NO_CONTENT, ""));
    // Any other print is a 400, and the write is not done.
    let (status, text) = raw(
        &t,
        Method::PUT,
        "factory/loud",
        &token,
        &[("print", "loud")],
        Some(("application/json", "1")),
    )
    .await;
    firebase_error(status, &text);
    assert_eq!(read(&t, "factory/loud", &token, &[]).await, Value::Null);
    let (status, text) = raw(
        &t,
        Method::GET,
        "factory/.json",
        &token,
        &[("print", "")],
        None,
    )
    .await;
    firebase_error(status, &text);
    // A parameter Herald does not support is named, never ignored.
    let (status, text) = raw(
        &t,
        Method::GET,
        "factory/.json",
        &token,
        &[("format", "export")],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{text}");
    assert!(text.contains("`format`"), "{text}");
}

#[tokio::test]
async fn delete_and_put_null_as_firebase() {
    let t = TestApp::spawn().await;
    let (token, _) = factory(&t).await;
    // DELETE removes the value and everything under it, answers null, and is kept as an entry.
    let (status, text) = raw(
        &t,
        Method::DELETE,
        "factory/devices.json",
        &token,
        &[],
        None,
    )
    .await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, "null"));
    assert_eq!(read(&t, "factory/devices", &token, &[]).await, Value::Null);
    let (_, entries) = t.get("/api/v1/inbox/factory/entries?path=devices").await;
    let entries = entries["data"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(
        (&entries[0]["method"], &entries[0]["value"]),
        (&json!("DELETE"), &Value::Null)
    );
    // Deleting what is not there is fine; a DELETE with a body is not.
    let (status, _) = raw(&t, Method::DELETE, "factory/never/there", &token, &[], None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = raw(
        &t,
        Method::DELETE,
        "factory/flag",
        &token,
        &[],
        Some(("application/json", "1")),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(read(&t, "factory/flag", &token, &[]).await, json!(true));
    // A tokenless DELETE is a write: a publicWrite inbox takes it.
    let anonymous = t
        .client
        .delete(t.url("/in/factory/flag.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::OK);
    assert_eq!(read(&t, "factory/flag", &token, &[]).await, Value::Null);

    // PUT null deletes, whatever the content type says.
    for (i, content_type) in [
        "application/json",
        "text/plain",
        "application/octet-stream",
        "",
    ]
    .iter()
    .enumerate()
    {
        let at = format!("factory/put/{i}");
        send(&t, Method::PUT, &at, &token, Some(json!({"v": i}))).await;
        let mut req = t
            .client
            .put(in_url(&t, &format!("/in/{at}"), &token, &[]))
            .body(" null ");
        if !content_type.is_empty() {
            req = req.header(CONTENT_TYPE, *content_type);
        }
        let response = req.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{content_type}");
        assert_eq!(response.text().await.unwrap(), "null");
        assert_eq!(
            read(&t, &at, &token, &[]).await,
            Value::Null,
            "{content_type}"
        );
    }
    // A text body that is not `null` is kept as a string, as before.
    let (status, _) = raw(
        &t,
        Method::PUT,
        "factory/put/text",
        &token,
        &[],
        Some(("text/plain", "nullish")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        read(&t, "factory/put/text", &token, &[]).await,
        json!("nullish")
    );

    // DELETE of the root empties the inbox; the deletion is the one entry left.
    let (status, text) = raw(&t, Method::DELETE, "factory/.json", &token, &[], None).await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, "null"));
    assert_eq!(read(&t, "factory/.json", &token, &[]).await, Value::Null);
    assert_eq!(
        read(&t, "factory/.json", &token, &[("shallow", "true")]).await,
        Value::Null
    );
    let (_, entries) = t.get("/api/v1/inbox/factory/entries").await;
    let entries = entries["data"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(
        (
            &entries[0]["method"],
            &entries[0]["path"],
            &entries[0]["key"]
        ),
        (&json!("DELETE"), &json!(""), &json!(""))
    );
    let (status, exported) = t.get("/api/v1/inbox/factory/export?format=tree").await;
    assert_eq!((status, exported), (StatusCode::OK, Value::Null));
    // PUT and PATCH still need a path.
    let (status, _) = raw(
        &t,
        Method::PUT,
        "factory/.json",
        &token,
        &[],
        Some(("application/json", "1")),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
