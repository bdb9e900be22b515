//! Idempotent writes (Stripe semantics): a write sent again with the same
//! `Idempotency-Key` is answered from its stored reply, byte for byte, and
//! runs once. The record is stored in the write's own transaction.

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::auth::hex_lower;
use crate::db::idempotency::{self, StoredResponse};
use crate::db::{Database, RlsContext, Tx};
use crate::http::error::ApiError;

/// Marks an answer replayed from a stored one.
pub(crate) const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// A successful answer that can be stored under an idempotency key and
/// replayed byte for byte.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(status: StatusCode, body: &impl serde::Serialize) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: serde_json::to_vec(body).expect("response bodies serialize"),
        }
    }

    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    fn to_stored(&self, fingerprint: String) -> StoredResponse {
        let headers: serde_json::Map<String, serde_json::Value> = self
            .headers
            .iter()
            .filter_map(|(name, value)| {
                value
                    .to_str()
                    .ok()
                    .map(|value| (name.as_str().to_string(), value.into()))
            })
            .collect();
        StoredResponse {
            fingerprint,
            status: self.status.as_u16(),
            headers: headers.into(),
            body: self.body.clone(),
        }
    }

    fn from_stored(stored: StoredResponse) -> Self {
        let headers = stored
            .headers
            .as_object()
            .map(|map| {
                map.iter()
                    .filter_map(|(name, value)| {
                        Some((
                            HeaderName::try_from(name.as_str()).ok()?,
                            HeaderValue::from_str(value.as_str()?).ok()?,
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            status: StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK),
            headers,
            body: stored.body,
        }
        .with_header(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"))
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        for (name, value) in self.headers {
            headers.insert(name, value);
        }
        response
    }
}

/// The identity of a request for idempotency: method, path and body. Its
/// digest is taken only for a request that carries a key ([`at_most_once`]).
#[derive(Debug, Clone)]
pub struct RequestFingerprint<'a> {
    pub method: &'static str,
    pub path: String,
    body: &'a [u8],
}

impl<'a> RequestFingerprint<'a> {
    pub fn new(method: &'static str, path: impl Into<String>, body: &'a [u8]) -> Self {
        Self {
            method,
            path: path.into(),
            body,
        }
    }

    /// SHA-256 of method, path and body, in hex: what a stored answer is
    /// matched against.
    pub fn digest(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.method.as_bytes());
        hasher.update([0]);
        hasher.update(self.path.as_bytes());
        hasher.update([0]);
        hasher.update(self.body);
        hex_lower(&hasher.finalize())
    }
}

/// Runs `write` at most once per idempotency key (Stripe semantics), inside
/// the caller's transaction: a stored answer is replayed; the same key with
/// another request is a 422 of its own type
/// (`idempotency-key-reused`); the answer is stored with the write, atomically.
/// Only successful answers are stored: a failed write changed nothing, so
/// running it again is safe.
pub async fn at_most_once(
    tx: &Tx<'_>,
    key: Option<&str>,
    request: &RequestFingerprint<'_>,
    write: impl AsyncFnOnce() -> Result<Reply, ApiError>,
) -> Result<Reply, ApiError> {
    let Some(key) = key else {
        return write().await;
    };
    let digest = request.digest();
    idempotency::lock(tx, key).await?;
    if let Some(stored) = idempotency::find(tx, key).await? {
        if stored.fingerprint != digest {
            return Err(ApiError::IdempotencyKeyReused);
        }
        return Ok(Reply::from_stored(stored));
    }
    let reply = write().await?;
    let stored = reply.to_stored(digest);
    if idempotency::store(tx, key, request.method, &request.path, &stored).await? {
        Ok(reply)
    } else {
        // The key's advisory lock is held since before `find`, and `store`
        // takes over expired records, so no other writer can have stored it.
        Err(ApiError::Internal(anyhow::anyhow!(
            "an idempotency record appeared under its own lock"
        )))
    }
}

/// One write in its own transaction under `context`, at most once per
/// idempotency key: what every idempotent route runs.
pub async fn run_once(
    db: &Database,
    context: &RlsContext,
    key: Option<&str>,
    request: &RequestFingerprint<'_>,
    write: impl AsyncFnOnce(&Tx<'_>) -> Result<Reply, ApiError> + Clone,
) -> Result<Reply, ApiError> {
    db.transaction(context, async |tx| {
        at_most_once(tx, key, request, async || write(tx).await).await
    })
    .await
}
