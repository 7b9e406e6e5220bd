//! A Herald started in-process on a free port, with a client that knows its admin token.

use std::path::PathBuf;

use herald::{Application, Config};
use reqwest::{Method, Response, StatusCode};
use serde_json::Value;
use tokio::sync::oneshot;
use zeroize::Zeroizing;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub store: std::sync::Arc<dyn herald_store::Store>,
    pub data_dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    dir: Option<tempfile::TempDir>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> Self {
        Self::spawn_adjusted(adjust, |_| {}).await
    }

    /// Like `spawn_with`, also adjusting the built application (its worker's settings) before
    /// it runs.
    pub async fn spawn_adjusted(
        adjust: impl FnOnce(&mut Config),
        adjust_app: impl FnOnce(&mut Application),
    ) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::for_data_dir(dir.path());
        config.admin_token = Some(Zeroizing::new(ADMIN_TOKEN.to_owned()));
        // Test receivers listen on loopback.
        config.allow_networks = vec!["127.0.0.0/8".parse().unwrap()];
        config.delivery.shutdown_grace = std::time::Duration::from_secs(5);
        adjust(&mut config);
        let mut app = Application::build(config).await.expect("herald starts");
        adjust_app(&mut app);
        let base = format!("http://{}", app.local_addr());
        let store = app.store();
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            app.run_until_stopped(async {
                let _ = stopped.await;
            })
            .await
            .expect("herald runs");
        });
        Self {
            base,
            client: reqwest::Client::new(),
            store,
            data_dir: dir.path().to_owned(),
            stop: Some(stop),
            task: Some(task),
            dir: Some(dir),
        }
    }

    /// Stops the server and waits until it has shut down. The data directory lives on in the
    /// returned value (until it is dropped).
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task");
        }
        self.dir.take().expect("the data directory")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A request with the admin token.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.request_as(ADMIN_TOKEN, method, path)
    }

    pub fn request_as(&self, token: &str, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(token)
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call_as(ADMIN_TOKEN, method, path, body).await
    }

    pub async fn call_as(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.request_as(token, method, path);
        if let Some(body) = body {
            req = req.json(&body);
        }
        json(req.send().await.expect("request is sent")).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    /// Creates an application and returns its id.
    pub async fn create_app(&self, name: &str) -> String {
        let (status, body) = self
            .post("/api/v1/app", serde_json::json!({"name": name}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    /// Creates an endpoint and returns its id.
    pub async fn create_endpoint(&self, app: &str, body: Value) -> String {
        let (status, out) = self
            .post(&format!("/api/v1/app/{app}/endpoint"), body)
            .await;
        assert_eq!(status, StatusCode::CREATED, "{out}");
        out["id"].as_str().unwrap().to_owned()
    }

    /// Creates an API key and returns its token.
    pub async fn api_key(&self, body: Value) -> String {
        let (status, out) = self.post("/api/v1/api-key", body).await;
        assert_eq!(status, StatusCode::CREATED, "{out}");
        out["token"].as_str().unwrap().to_owned()
    }
}

/// Status and JSON body (`Value::Null` when the body is empty).
pub async fn json(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let bytes = response.bytes().await.expect("body");
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("non-JSON body ({e}): {}", String::from_utf8_lossy(&bytes)))
    };
    (status, value)
}

/// The `loc` of every item of a 422 body, joined with dots.
pub fn error_locs(body: &Value) -> Vec<String> {
    body["detail"]
        .as_array()
        .unwrap_or_else(|| panic!("not a validation error: {body}"))
        .iter()
        .map(|d| {
            d["loc"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
                .join(".")
        })
        .collect()
}

impl TestApp {
    /// Publishes a message and returns its id.
    pub async fn publish(&self, app: &str, body: Value) -> String {
        let (status, out) = self.post(&format!("/api/v1/app/{app}/msg"), body).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{out}");
        out["id"].as_str().unwrap().to_owned()
    }

    pub async fn deliveries(&self, msg: &str) -> Vec<herald_store::Delivery> {
        let id = herald_core::id::MessageId::parse(msg).unwrap();
        self.store.deliveries_for_message(&id).await.unwrap()
    }

    pub async fn attempts(&self, msg: &str) -> Vec<herald_store::Attempt> {
        let id = herald_core::id::MessageId::parse(msg).unwrap();
        self.store.attempts_for_message(&id).await.unwrap()
    }

    /// Waits until the message's delivery to `endpoint` has `status`.
    pub async fn wait_status(
        &self,
        msg: &str,
        endpoint: &str,
        status: herald_core::model::DeliveryStatus,
        timeout: std::time::Duration,
    ) -> herald_store::Delivery {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let found = self
                .deliveries(msg)
                .await
                .into_iter()
                .find(|d| d.endpoint_id.as_str() == endpoint);
            if let Some(d) = found.as_ref().filter(|d| d.status == status) {
                return d.clone();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{msg} to {endpoint}: expected {status:?} within {timeout:?}, have {found:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}
