//! One error type for the whole API, answered as `application/problem+json`
//! (RFC 9457). 5xx causes go to the log with the request id, never to the client.

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::cache::rate_limit::RateLimitHeaders;
use crate::db::DbError;
use crate::db::event_writer::Refused;
use crate::http::request_id;
use crate::wizard::WizardError;
use crate::wizard::error::CurrentAnswer;
use crate::wizard::validation::{FieldError, ValidationErrors};

/// Crate-wide result, defaulting to [`ApiError`].
pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// Everything a route can answer besides success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{detail}")]
    Unauthorized {
        detail: String,
        www_authenticate: HeaderValue,
    },
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{0}")]
    Conflict(String),
    /// A stale `If-Match`: answered with the current version as `ETag` and,
    /// when known, the current answer as problem members.
    #[error("{detail}")]
    PreconditionFailed {
        detail: String,
        current: Option<CurrentAnswer>,
    },
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{detail}")]
    UnprocessableEntity {
        detail: String,
        errors: Vec<FieldError>,
    },
    #[error("{0}")]
    PreconditionRequired(String),
    /// The `Idempotency-Key` was first used for another request (method,
    /// path or body); a 422 of its own problem type, without `errors[]`.
    #[error(
        "this Idempotency-Key was used for a different request; use a new key for a new request"
    )]
    IdempotencyKeyReused,
    /// A rate limit was reached; answered with `Retry-After` and the `RateLimit-*` headers.
    #[error("too many requests; retry in {} seconds", .0.retry_after_seconds.unwrap_or(1))]
    RateLimited(RateLimitHeaders),
    /// A dependency the request cannot do without is down; the client should retry.
    #[error("service unavailable: {0}")]
    ServiceUnavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// 401 for a request that needs a signed-in user (or, with
    /// `require_owner`, a session) and came without one.
    pub fn sign_in_required(detail: impl Into<String>) -> Self {
        ApiError::Unauthorized {
            detail: detail.into(),
            www_authenticate: HeaderValue::from_static("Bearer realm=\"onboarding\""),
        }
    }
}

impl From<DbError> for ApiError {
    fn from(error: DbError) -> Self {
        match error {
            DbError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "database unavailable");
                ApiError::ServiceUnavailable("the database is unavailable".into())
            }
            DbError::Query(error) => ApiError::Internal(anyhow::Error::new(error)),
            missing @ DbError::MissingRow(_) => ApiError::Internal(anyhow::Error::new(missing)),
        }
    }
}

impl From<WizardError> for ApiError {
    fn from(error: WizardError) -> Self {
        match error {
            WizardError::Invalid { detail, errors } => {
                ApiError::UnprocessableEntity { detail, errors }
            }
            WizardError::VersionMismatch { detail, current } => {
                ApiError::PreconditionFailed { detail, current }
            }
            WizardError::VersionRequired(detail) => ApiError::PreconditionRequired(detail),
            WizardError::Conflict(detail) => ApiError::Conflict(detail),
            WizardError::NotFound(detail) => ApiError::NotFound(detail),
            WizardError::Db(error) => ApiError::from(error),
        }
    }
}

impl From<ValidationErrors> for ApiError {
    fn from(errors: ValidationErrors) -> Self {
        ApiError::from(WizardError::from(errors))
    }
}

impl From<Refused> for ApiError {
    fn from(refused: Refused) -> Self {
        tracing::warn!(reason = %refused, "event batch refused");
        ApiError::ServiceUnavailable(format!("{refused}; send the events again later"))
    }
}

/// The seconds a client should wait before retrying after a 503.
pub const RETRY_AFTER_SECONDS: u64 = 2;

/// The body of every error response (`application/problem+json`, RFC 9457).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// `https://onboarding.dev/problems/<slug>`; the slug names the kind of problem.
    #[serde(rename = "type")]
    #[schema(pattern = r"^https://onboarding\.dev/problems/[a-z-]+$")]
    pub type_uri: String,
    /// The status's reason phrase, e.g. `Unprocessable Entity`.
    pub title: String,
    /// The HTTP status, repeated.
    #[schema(minimum = 400, maximum = 599)]
    pub status: u16,
    /// What went wrong, for a human; never the cause of a 5xx.
    pub detail: String,
    /// The `x-request-id` of the request; quote it when reporting a problem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Every field error at once (422 only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// 412 of a write to a step: the version stored now (0: none), as the
    /// `ETag` header says; send it in `If-Match` to overwrite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_version: Option<i64>,
    /// 412 of a write to a step: the answers stored now, as `GET` would
    /// answer them (`null` before the first save).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub current_answers: Option<serde_json::Value>,
    /// 412 of a write to a step: whether the stored answer completes the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_completed: Option<bool>,
}

impl ApiError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PreconditionFailed { .. } => StatusCode::PRECONDITION_FAILED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::UnprocessableEntity { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::PreconditionRequired(_) => StatusCode::PRECONDITION_REQUIRED,
            ApiError::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::ServiceUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable slug that ends the problem `type` URI.
    fn slug(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad-request",
            ApiError::Unauthorized { .. } => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not-found",
            ApiError::MethodNotAllowed => "method-not-allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::PreconditionFailed { .. } => "precondition-failed",
            ApiError::PayloadTooLarge(_) => "payload-too-large",
            ApiError::UnsupportedMediaType(_) => "unsupported-media-type",
            ApiError::UnprocessableEntity { .. } => "validation-failed",
            ApiError::PreconditionRequired(_) => "precondition-required",
            ApiError::IdempotencyKeyReused => "idempotency-key-reused",
            ApiError::RateLimited(_) => "rate-limited",
            ApiError::ServiceUnavailable(_) => "service-unavailable",
            ApiError::Internal(_) => "internal",
        }
    }
}

/// Base of every problem `type`; the README documents each slug under it.
pub const PROBLEM_TYPE_BASE: &str = "https://onboarding.dev/problems/";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let request_id = request_id::current();
        let detail = match &self {
            ApiError::Internal(cause) => {
                tracing::error!(request_id = request_id.as_deref().unwrap_or("-"), error = ?cause, "internal error");
                "an unexpected error occurred; quote the request id when reporting it".to_string()
            }
            other => other.to_string(),
        };
        let errors = match &self {
            ApiError::UnprocessableEntity { errors, .. } => errors.clone(),
            _ => Vec::new(),
        };
        let current = match &self {
            ApiError::PreconditionFailed { current, .. } => current.clone(),
            _ => None,
        };
        let body = Problem {
            type_uri: format!("{PROBLEM_TYPE_BASE}{}", self.slug()),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail,
            request_id,
            errors,
            current_version: current.as_ref().map(|current| current.version),
            current_answers: current
                .as_ref()
                .map(|current| current.answers.clone().unwrap_or(serde_json::Value::Null)),
            current_completed: current.as_ref().map(|current| current.completed),
        };
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = (status, bytes).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        match self {
            ApiError::Unauthorized {
                www_authenticate, ..
            } => {
                headers.insert(header::WWW_AUTHENTICATE, www_authenticate);
            }
            ApiError::RateLimited(limits) => {
                apply_rate_limit_headers(&limits, headers);
                if !headers.contains_key(header::RETRY_AFTER) {
                    headers.insert(header::RETRY_AFTER, HeaderValue::from(1u64));
                }
            }
            ApiError::ServiceUnavailable(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
            }
            ApiError::PreconditionFailed {
                current: Some(current),
                ..
            } => {
                let etag = HeaderValue::from_str(&format!("\"{}\"", current.version))
                    .expect("digits are a valid header value");
                headers.insert(header::ETAG, etag);
            }
            _ => {}
        }
        response
    }
}

pub(crate) const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
pub(crate) const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
pub(crate) const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// Writes `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` and,
/// for a denial, `Retry-After`.
pub fn apply_rate_limit_headers(limits: &RateLimitHeaders, headers: &mut HeaderMap) {
    headers.insert(RATELIMIT_LIMIT, HeaderValue::from(limits.limit));
    headers.insert(RATELIMIT_REMAINING, HeaderValue::from(limits.remaining));
    headers.insert(RATELIMIT_RESET, HeaderValue::from(limits.reset_seconds));
    if let Some(seconds) = limits.retry_after_seconds {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wizard::validation::ErrorCode;

    async fn body_json(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn an_internal_error_hides_its_cause_from_the_client() {
        let response =
            ApiError::Internal(anyhow::anyhow!("password=hunter2 leaked")).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = body_json(response).await;
        assert!(!body.to_string().contains("hunter2"));
        assert_eq!(body["type"], "https://onboarding.dev/problems/internal");
    }

    #[tokio::test]
    async fn a_validation_error_lists_every_field_error() {
        let errors = vec![
            FieldError {
                pointer: "/fullName".into(),
                code: ErrorCode::Required,
                message: "is required".into(),
                limit: None,
                step: None,
            },
            FieldError {
                pointer: "/slug".into(),
                code: ErrorCode::TooLong,
                message: "is too long".into(),
                limit: Some(63.into()),
                step: None,
            },
        ];
        let response = ApiError::UnprocessableEntity {
            detail: "2 fields are invalid".into(),
            errors,
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let body = body_json(response).await;
        assert_eq!(body["errors"].as_array().unwrap().len(), 2);
        assert_eq!(body["errors"][1]["limit"], 63);
    }

    #[tokio::test]
    async fn a_rate_limited_answer_carries_the_rate_limit_headers() {
        let response = ApiError::RateLimited(RateLimitHeaders {
            limit: 60,
            remaining: 0,
            reset_seconds: 17,
            retry_after_seconds: Some(17),
        })
        .into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "17");
        assert_eq!(response.headers()["ratelimit-limit"], "60");
        assert_eq!(response.headers()["ratelimit-remaining"], "0");
        assert_eq!(response.headers()["ratelimit-reset"], "17");
        let body = body_json(response).await;
        assert_eq!(body["type"], "https://onboarding.dev/problems/rate-limited");
    }

    #[test]
    fn a_missing_or_stale_version_is_428_or_412() {
        let required = ApiError::from(WizardError::VersionRequired("send If-Match".into()));
        assert_eq!(required.status(), StatusCode::PRECONDITION_REQUIRED);
        let stale = ApiError::from(WizardError::version_mismatch("saved since"));
        assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);
    }

    #[tokio::test]
    async fn a_stale_version_answers_the_current_one_as_etag_and_members() {
        let response = ApiError::from(WizardError::version_mismatch("saved since").with_current(
            CurrentAnswer {
                version: 4,
                answers: Some(serde_json::json!({ "fullName": "Ada" })),
                completed: true,
            },
        ))
        .into_response();
        assert_eq!(response.status(), StatusCode::PRECONDITION_FAILED);
        assert_eq!(response.headers()[header::ETAG], "\"4\"");
        let body = body_json(response).await;
        assert_eq!(body["currentVersion"], 4);
        assert_eq!(body["currentAnswers"]["fullName"], "Ada");
        assert_eq!(body["currentCompleted"], true);

        let none = ApiError::from(WizardError::version_mismatch("nothing saved").with_current(
            CurrentAnswer {
                version: 0,
                answers: None,
                completed: false,
            },
        ))
        .into_response();
        assert_eq!(none.headers()[header::ETAG], "\"0\"");
        let body = body_json(none).await;
        assert_eq!(body["currentVersion"], 0);
        assert!(body["currentAnswers"].is_null());
        assert!(body.as_object().unwrap().contains_key("currentAnswers"));
    }

    #[tokio::test]
    async fn service_unavailable_tells_the_client_when_to_retry() {
        let response = ApiError::ServiceUnavailable("db".into()).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response.headers()[header::RETRY_AFTER],
            RETRY_AFTER_SECONDS.to_string().as_str()
        );
    }
}
