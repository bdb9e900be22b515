//! A local webhook receiver (and identity-provider stand-in): records every
//! request it gets (method, path, headers, body) and answers as the test
//! says: 2xx, another status (with `Retry-After`), or never.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// How the receiver answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    Status(u16),
    /// A status with `Retry-After: <seconds>`.
    RetryAfter(u16, u64),
    /// JSON with 200, as an identity provider answers with the user.
    Json(serde_json::Value),
    /// Never answers (the caller's timeout, or its death, ends it).
    Hang,
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: String,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

type Policy = Arc<dyn Fn(usize, &Received) -> Reply + Send + Sync>;

#[derive(Clone)]
struct Shared {
    received: Arc<Mutex<Vec<Received>>>,
    policy: Arc<Mutex<Policy>>,
}

pub struct Receiver {
    pub url: String,
    shared: Shared,
}

impl Receiver {
    /// A receiver answering 204 to everything, on a free local port.
    pub async fn start() -> Self {
        let shared = Shared {
            received: Arc::default(),
            policy: Arc::new(Mutex::new(Arc::new(|_, _| Reply::Status(204)))),
        };
        let app = axum::Router::new()
            .fallback(receive)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, shared }
    }

    /// From now on, request number `n` (counting every request since the
    /// start, from 0) is answered by `policy(n, request)`.
    pub fn answer(&self, policy: impl Fn(usize, &Received) -> Reply + Send + Sync + 'static) {
        *self.shared.policy.lock().unwrap() = Arc::new(policy);
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// Waits until `done(received)` holds or 30 s pass; returns what was
    /// received, for the caller to assert on.
    pub async fn until(&self, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        for _ in 0..300 {
            let received = self.received();
            if done(&received) {
                return received;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        self.received()
    }
}

async fn receive(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received = Received {
        method,
        path: uri.path().to_string(),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let reply = {
        let mut all = shared.received.lock().unwrap();
        let index = all.len();
        all.push(received.clone());
        let policy = shared.policy.lock().unwrap().clone();
        policy(index, &received)
    };
    match reply {
        Reply::Status(status) => StatusCode::from_u16(status).unwrap().into_response(),
        Reply::RetryAfter(status, seconds) => (
            StatusCode::from_u16(status).unwrap(),
            [("retry-after", seconds.to_string())],
        )
            .into_response(),
        Reply::Json(body) => axum::Json(body).into_response(),
        Reply::Hang => std::future::pending().await,
    }
}
