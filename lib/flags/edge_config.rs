//! Client for Vercel Edge Config's read API (`https://edge-config.vercel.com/<id>`).
//!
//! Wire format, as `@vercel/edge-config` speaks it (requests carry `?version=1`
//! and `Authorization: Bearer <token>`):
//! - `GET /items`: every item as one JSON object, with `ETag` and
//!   `x-edge-config-digest`; `If-None-Match` with the last ETag answers `304`
//!   without a body when nothing changed.
//! - `GET /item/<key>`: one item's JSON value.
//! - `GET /digest`: the current digest as a JSON string.
//! - `401`/`403`: the token is wrong or revoked.
//! - `404` answers both a missing item and a missing Edge Config. A missing
//!   item still carries `x-edge-config-digest` (the config exists, it has a
//!   digest) and the body code `edge_config_item_not_found`; a missing config
//!   has neither. The SDK tells them apart by the header; so do we.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};
use url::Url;

use crate::settings::{ExposeSecret, SecretString};

/// Version of the read API we speak, sent as `?version=` as the SDK does.
const API_VERSION: &str = "1";
/// The header that exists on every answer about an existing Edge Config.
pub const DIGEST_HEADER: &str = "x-edge-config-digest";
/// Edge Config stores at most 512 KB; anything far larger is not an answer.
const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;
/// Default per-request timeout: Edge Config answers in milliseconds from the
/// same region, and a request must not hang on it.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a read failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EdgeConfigError {
    /// 401/403: the token in the connection string is wrong or revoked.
    #[error("Edge Config refused the token ({0}); check the token in EDGE_CONFIG")]
    Unauthorized(StatusCode),
    /// 404 without a digest: no Edge Config with this id.
    #[error("no Edge Config with this id (404); check the id in EDGE_CONFIG")]
    ConfigNotFound,
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("request failed: {0}")]
    Network(String),
    /// Any other status, e.g. a 5xx.
    #[error("answered {0}")]
    Status(StatusCode),
    #[error("unusable answer: {0}")]
    Body(String),
}

impl EdgeConfigError {
    /// Whether retrying cannot help until someone changes the configuration.
    pub fn is_configuration_error(&self) -> bool {
        matches!(
            self,
            EdgeConfigError::Unauthorized(_) | EdgeConfigError::ConfigNotFound
        )
    }
}

/// The answer to `GET /items`.
#[derive(Debug, Clone, PartialEq)]
pub enum Items {
    /// `304`: the ETag sent still matches.
    NotModified,
    /// Every item, as the raw JSON object, and the validator for the next read.
    Changed { body: Bytes, etag: Option<String> },
}

/// Reads one Edge Config. Build it once per process; it shares the process's
/// `reqwest::Client` (and so its connection pool).
#[derive(Debug, Clone)]
pub struct EdgeConfigClient {
    http: reqwest::Client,
    base_url: Url,
    token: SecretString,
    timeout: Duration,
}

impl EdgeConfigClient {
    /// `base_url` is the connection string's URL without the token, e.g.
    /// `https://edge-config.vercel.com/ecfg_abc` (see
    /// [`super::EdgeConfigSource::parse_connection_string`]).
    pub fn new(
        http: reqwest::Client,
        base_url: Url,
        token: SecretString,
        timeout: Duration,
    ) -> Self {
        Self {
            http,
            base_url,
            token,
            timeout,
        }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// `GET /items`, conditional on `etag` when there is one.
    #[tracing::instrument(level = "debug", skip_all, fields(conditional = etag.is_some()))]
    pub async fn items(&self, etag: Option<&str>) -> Result<Items, EdgeConfigError> {
        let (status, headers, body) = self.get(&["items"], etag).await?;
        match status {
            StatusCode::NOT_MODIFIED if etag.is_some() => Ok(Items::NotModified),
            status if status.is_success() => Ok(Items::Changed {
                body,
                etag: headers
                    .get(header::ETAG)
                    .and_then(|value| value.to_str().ok())
                    .map(str::to_owned),
            }),
            // Nothing but the config itself can be missing here.
            StatusCode::NOT_FOUND => Err(EdgeConfigError::ConfigNotFound),
            status => Err(status_error(status)),
        }
    }

    /// `GET /item/<key>`: `Ok(None)` when the config exists but the key does not.
    #[tracing::instrument(level = "debug", skip_all, fields(key = %key))]
    pub async fn item(&self, key: &str) -> Result<Option<serde_json::Value>, EdgeConfigError> {
        let (status, headers, body) = self.get(&["item", key], None).await?;
        match status {
            status if status.is_success() => serde_json::from_slice(&body)
                .map(Some)
                .map_err(|error| EdgeConfigError::Body(error.to_string())),
            StatusCode::NOT_FOUND if is_missing_item(&headers, &body) => Ok(None),
            StatusCode::NOT_FOUND => Err(EdgeConfigError::ConfigNotFound),
            status => Err(status_error(status)),
        }
    }

    /// `GET /digest`: changes whenever any item changes.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn digest(&self) -> Result<String, EdgeConfigError> {
        let (status, _, body) = self.get(&["digest"], None).await?;
        match status {
            status if status.is_success() => serde_json::from_slice::<String>(&body)
                .map_err(|error| EdgeConfigError::Body(error.to_string())),
            StatusCode::NOT_FOUND => Err(EdgeConfigError::ConfigNotFound),
            status => Err(status_error(status)),
        }
    }

    /// One GET under the base URL, the whole exchange (body included) bounded
    /// by the timeout.
    async fn get(
        &self,
        segments: &[&str],
        etag: Option<&str>,
    ) -> Result<(StatusCode, HeaderMap, Bytes), EdgeConfigError> {
        let mut url = self.base_url.clone();
        url.path_segments_mut()
            .map_err(|_| EdgeConfigError::Network("the base URL cannot take a path".into()))?
            .pop_if_empty()
            // Pushed as segments, so a key is percent-encoded and cannot change the path.
            .extend(segments);
        url.query_pairs_mut().append_pair("version", API_VERSION);
        let mut request = self
            .http
            .get(url)
            .bearer_auth(self.token.expose_secret())
            .timeout(self.timeout);
        if let Some(etag) = etag {
            request = request.header(header::IF_NONE_MATCH, etag);
        }
        let exchange = async {
            let response = request
                .send()
                .await
                .map_err(|error| request_error(error, self.timeout))?;
            let status = response.status();
            let headers = response.headers().clone();
            if response
                .content_length()
                .is_some_and(|len| len > MAX_BODY_BYTES as u64)
            {
                return Err(EdgeConfigError::Body("body too large".into()));
            }
            let body = response
                .bytes()
                .await
                .map_err(|error| request_error(error, self.timeout))?;
            if body.len() > MAX_BODY_BYTES {
                return Err(EdgeConfigError::Body("body too large".into()));
            }
            Ok((status, headers, body))
        };
        // reqwest's timeout should fire first; this also bounds DNS and slow bodies.
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| EdgeConfigError::Timeout(self.timeout))?
    }
}

fn request_error(error: reqwest::Error, timeout: Duration) -> EdgeConfigError {
    if error.is_timeout() {
        return EdgeConfigError::Timeout(timeout);
    }
    // Without the URL: it names the Edge Config id, which is not for logs.
    EdgeConfigError::Network(error.without_url().to_string())
}

fn status_error(status: StatusCode) -> EdgeConfigError {
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => EdgeConfigError::Unauthorized(status),
        status => EdgeConfigError::Status(status),
    }
}

/// A 404 about a missing item, not a missing config: the digest header, or
/// (should a proxy strip headers) the API's error code in the body.
fn is_missing_item(headers: &HeaderMap, body: &[u8]) -> bool {
    if headers.contains_key(DIGEST_HEADER) {
        return true;
    }
    serde_json::from_slice::<serde_json::Value>(body).is_ok_and(|value| {
        value.pointer("/error/code").and_then(|code| code.as_str())
            == Some("edge_config_item_not_found")
    })
}
