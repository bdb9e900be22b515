//! The Edge Config client and cache against a local axum server that speaks
//! Edge Config's wire format and counts what it is asked.

mod cache;
mod client;
mod file;
mod values;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use url::Url;

use super::edge_config::DIGEST_HEADER;
use super::{EdgeConfigClient, EdgeConfigStore};
use crate::wizard::flow::DEFAULT_EDGE_CONFIG_JSON;
// The store is tested with the real flow item, as the functions use it.
use crate::settings::SecretString;
pub(super) use crate::wizard::flow::Flow;

pub(super) const TOKEN: &str = "test-token";
pub(super) const ID: &str = "ecfg_test123";

/// How the server answers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Mode {
    Normal,
    /// Every request answers this status.
    Status(u16),
    /// Requests never answer (until the client gives up).
    Hang,
    /// Each request waits for a permit from [`EdgeConfigServer::release`].
    Gated,
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub(super) struct Seen {
    pub path: String,
    pub authorization: Option<String>,
    pub if_none_match: Option<String>,
    pub status: u16,
}

struct ServerState {
    items: Mutex<(u64, Value)>,
    mode: Mutex<Mode>,
    hits: AtomicUsize,
    seen: Mutex<Vec<Seen>>,
    gate: tokio::sync::Semaphore,
}

pub(super) struct EdgeConfigServer {
    /// `http://127.0.0.1:<port>/ecfg_test123`
    pub base_url: Url,
    state: Arc<ServerState>,
}

impl EdgeConfigServer {
    pub async fn start(items: Value) -> Self {
        let state = Arc::new(ServerState {
            items: Mutex::new((1, items)),
            mode: Mutex::new(Mode::Normal),
            hits: AtomicUsize::new(0),
            seen: Mutex::new(Vec::new()),
            gate: tokio::sync::Semaphore::new(0),
        });
        let app = Router::new()
            .route("/{id}/items", get(all_items))
            .route("/{id}/item/{key}", get(one_item))
            .route("/{id}/digest", get(digest))
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        let base_url = Url::parse(&format!("http://127.0.0.1:{port}/{ID}")).unwrap();
        Self { base_url, state }
    }

    /// Replaces the items; the digest and ETag change with them.
    pub fn set_items(&self, items: Value) {
        let mut current = self.state.items.lock().unwrap();
        *current = (current.0 + 1, items);
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    /// Requests received, answered or not.
    pub fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    /// Requests answered, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    /// Lets `n` gated requests answer.
    pub fn release(&self, n: usize) {
        self.state.gate.add_permits(n);
    }

    /// Waits (with a safety net) until the server has received `n` requests.
    pub async fn wait_for_hits(&self, n: usize) {
        let wait = async {
            while self.hits() < n {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(30), wait)
            .await
            .unwrap_or_else(|_| panic!("the server never received {n} requests"));
    }

    pub fn client(&self) -> EdgeConfigClient {
        self.client_with(self.base_url.clone(), TOKEN, Duration::from_secs(5))
    }

    pub fn client_with(&self, base_url: Url, token: &str, timeout: Duration) -> EdgeConfigClient {
        EdgeConfigClient::new(
            reqwest::Client::new(),
            base_url,
            SecretString::from(token),
            timeout,
        )
    }

    pub fn store(&self, ttl: Duration, timeout: Duration) -> EdgeConfigStore<Flow> {
        EdgeConfigStore::remote(self.client_with(self.base_url.clone(), TOKEN, timeout), ttl)
    }
}

/// Records the request and applies the mode; `Some` is the answer to send instead.
async fn admit(state: &ServerState, id: &str, headers: &HeaderMap) -> Result<(), Response> {
    state.hits.fetch_add(1, Ordering::SeqCst);
    let mode = *state.mode.lock().unwrap();
    match mode {
        Mode::Normal => {}
        Mode::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap();
            return Err(
                (status, axum::Json(json!({ "error": { "code": "test" } }))).into_response()
            );
        }
        Mode::Hang => std::future::pending::<()>().await,
        Mode::Gated => state.gate.acquire().await.unwrap().forget(),
    }
    let expected = format!("Bearer {TOKEN}");
    if headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        != Some(expected.as_str())
    {
        return Err((
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({ "error": { "code": "forbidden", "message": "Invalid token" } })),
        )
            .into_response());
    }
    if id != ID {
        // A missing Edge Config: 404 and no digest header.
        return Err((
            StatusCode::NOT_FOUND,
            axum::Json(json!({ "error": { "code": "edge_config_not_found" } })),
        )
            .into_response());
    }
    Ok(())
}

fn record(state: &ServerState, path: String, headers: &HeaderMap, response: Response) -> Response {
    let header_text = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    state.seen.lock().unwrap().push(Seen {
        path,
        authorization: header_text(header::AUTHORIZATION),
        if_none_match: header_text(header::IF_NONE_MATCH),
        status: response.status().as_u16(),
    });
    response
}

/// Admits the request as the real API would (or answers as the mode says),
/// answers it with `answer`, and records it under `path`.
async fn served(
    state: &ServerState,
    id: &str,
    headers: &HeaderMap,
    path: String,
    answer: impl FnOnce() -> Response,
) -> Response {
    let response = match admit(state, id, headers).await {
        Err(response) => response,
        Ok(()) => answer(),
    };
    record(state, path, headers, response)
}

fn digest_of(version: u64) -> String {
    format!("digest-{version}")
}

async fn all_items(
    State(state): State<Arc<ServerState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    served(&state, &id, &headers, "/items".into(), || {
        let (version, items) = state.items.lock().unwrap().clone();
        let digest = digest_of(version);
        let etag = format!("\"{digest}\"");
        let base = [
            (header::ETAG.as_str(), etag.clone()),
            (DIGEST_HEADER, digest),
        ];
        if headers
            .get(header::IF_NONE_MATCH)
            .is_some_and(|v| v.as_bytes() == etag.as_bytes())
        {
            (StatusCode::NOT_MODIFIED, base).into_response()
        } else {
            (StatusCode::OK, base, axum::Json(items)).into_response()
        }
    })
    .await
}

async fn one_item(
    State(state): State<Arc<ServerState>>,
    Path((id, key)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    served(&state, &id, &headers, format!("/item/{key}"), || {
        let (version, items) = state.items.lock().unwrap().clone();
        let digest = [(DIGEST_HEADER, digest_of(version))];
        match items.get(&key) {
            Some(value) => (StatusCode::OK, digest, axum::Json(value.clone())).into_response(),
            None => (
                StatusCode::NOT_FOUND,
                digest,
                axum::Json(json!({ "error": {
                    "code": "edge_config_item_not_found",
                    "message": format!("Could not find the edge config item: {key}"),
                } })),
            )
                .into_response(),
        }
    })
    .await
}

async fn digest(
    State(state): State<Arc<ServerState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    served(&state, &id, &headers, "/digest".into(), || {
        let version = state.items.lock().unwrap().0;
        axum::Json(digest_of(version)).into_response()
    })
    .await
}

/// The shipped items with `flags` replaced; `marker` tells versions apart.
pub(super) fn items_with_flags(flags: Value) -> Value {
    let mut items: Value = serde_json::from_str(DEFAULT_EDGE_CONFIG_JSON).unwrap();
    items["flags"] = flags;
    items
}

pub(super) fn items_marked(marker: &str) -> Value {
    items_with_flags(json!({ "teamInvites": true, "marker": marker }))
}

/// Items whose flow does not pass `Flow::parse`.
pub(super) fn items_with_an_invalid_flow(marker: &str) -> Value {
    let mut items = items_marked(marker);
    items["onboardingFlow"] = json!({ "id": "Not A Slug", "version": 0, "steps": [] });
    items
}

/// The `marker` flag of a snapshot's config.
pub(super) fn marker(snapshot: &super::Snapshot<Flow>) -> Option<String> {
    snapshot
        .config()
        .flag_value("marker")
        .and_then(|v| v.variant())
        .map(str::to_owned)
}
