//! Extractors that parse the hostile edge of a request into typed values once:
//! who is calling, the JSON body, `If-Match` and `Idempotency-Key`, a route's
//! dynamic segment and the query string. Every rejection is an [`ApiError`],
//! so it answers in the problem+json shape.

use std::marker::PhantomData;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, header};
use serde::de::DeserializeOwned;
use utoipa::openapi::Required;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type as SchemaType};

use crate::auth::{AuthError, Caller};
use crate::http::error::ApiError;
use crate::state::AppState;
use crate::wizard::save::ExpectedVersion;
use crate::wizard::validation::{ErrorCode, FieldError};

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        if error.status() == axum::http::StatusCode::SERVICE_UNAVAILABLE {
            return ApiError::ServiceUnavailable(
                "the identity provider's keys are unavailable".into(),
            );
        }
        ApiError::Unauthorized {
            detail: format!("the credential was rejected: {error}"),
            www_authenticate: error.www_authenticate(),
        }
    }
}

/// The verified caller of this request. A missing credential is an
/// anonymous caller; a credential that fails any check is a 401. The caller
/// `identify` left is taken out of the extensions, not copied: the handler
/// is the last to read it (the rate limiter ran before), and a second
/// extraction would verify the credential again rather than go wrong.
pub struct CallerOf(pub Caller);

impl FromRequestParts<AppState> for CallerOf {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(caller) = parts.extensions.remove::<Caller>() {
            return Ok(CallerOf(caller));
        }
        if let Some(Rejected(error)) = parts.extensions.get::<Rejected>() {
            return Err(ApiError::from(*error));
        }
        // Only a router mounted without `admit` (which runs `identify`) gets here.
        Ok(CallerOf(
            state.authenticator().detect(&parts.headers).await?,
        ))
    }
}

/// Why `identify` rejected the request's credential, kept for [`CallerOf`].
#[derive(Clone, Copy)]
struct Rejected(AuthError);

/// Verifies the credential once and leaves the [`Caller`] in the request's
/// extensions, where the rate limiter and [`CallerOf`] find it (run by
/// [`crate::http::admit`]). A credential that fails is left, with the
/// reason, for [`CallerOf`] to reject with its 401, so routes that never ask
/// who is calling (health) still answer.
///
/// A session cookie the server no longer accepts (bad signature, a rotated
/// `SESSION_SECRET`, expired, merged) beside a signed-in user's token is
/// cleared on the way out ([`StaleCookie::clear_in`]): the cookie is
/// HttpOnly, so the page cannot drop it. A visitor's is not: its `401` is
/// answered by `POST /session`, whose new cookie replaces it, and a clearing
/// sent with a slow `401` could land after that new cookie and delete it,
/// leaving the page's next save under yet another session.
pub async fn identify(state: &AppState, request: &mut Request) -> StaleCookie {
    let detected = match state.authenticator().detect(request.headers()).await {
        Ok(caller) => with_live_session(state, caller).await,
        Err(error) => Err(error),
    };
    let stale = crate::auth::session_cookie_presented(request.headers())
        && matches!(&detected, Ok(Caller::User(user)) if user.session.is_none());
    let secure = crate::auth::cookie_is_secure(request.headers());
    match detected {
        Ok(caller) => {
            crate::monitoring::note_caller(caller.kind());
            request.extensions_mut().insert(caller);
        }
        Err(error) => {
            request.extensions_mut().insert(Rejected(error));
        }
    }
    StaleCookie { stale, secure }
}

/// Whether the request presented a session cookie the server no longer
/// accepts, which the response then clears.
pub struct StaleCookie {
    stale: bool,
    secure: bool,
}

impl StaleCookie {
    /// Clears the stale cookie, unless the route set (or cleared) it itself.
    pub fn clear_in(self, response: &mut axum::response::Response) {
        if self.stale && !sets_session_cookie(response.headers()) {
            response.headers_mut().append(
                header::SET_COOKIE,
                crate::auth::SessionCookies::clear_cookie_header(self.secure),
            );
        }
    }
}

/// Whether a response already sets (or clears) the session cookie itself.
fn sets_session_cookie(headers: &HeaderMap) -> bool {
    let prefix = format!("{}=", crate::auth::SESSION_COOKIE_NAME);
    headers
        .get_all(header::SET_COOKIE)
        .iter()
        .any(|value| value.as_bytes().starts_with(prefix.as_bytes()))
}

/// The caller, once its anonymous session is known to be live: a visitor's
/// expired (or merged, or unknown) session is a rejected credential on every
/// route, whether or not Redis still holds it, and a signed-in user's is
/// dropped. When the session store cannot answer, the session is kept: the
/// route, which needs the same database, answers for the outage.
async fn with_live_session(state: &AppState, caller: Caller) -> Result<Caller, AuthError> {
    let Some(session) = caller.session() else {
        return Ok(caller);
    };
    // Boxed: inline, the session store's state (about 6 KB) made every
    // request's middleware future that large, signed-in callers' included.
    match Box::pin(state.sessions().touch(session)).await {
        Ok(Some(_)) => Ok(caller),
        Ok(None) => match caller {
            Caller::User(mut user) => {
                user.session = None;
                Ok(Caller::User(user))
            }
            Caller::Anonymous(_) => Err(AuthError::SessionExpired),
        },
        Err(error) => {
            tracing::warn!(%error, "session liveness unknown; the session is kept");
            Ok(caller)
        }
    }
}

/// The caller of `POST /api/onboarding/session`: as [`CallerOf`], except that
/// a session the server no longer accepts (bad signature, a rotated
/// `SESSION_SECRET`, expired, merged) counts as none, so the visitor gets a fresh
/// session instead of a 401 it cannot leave (the cookie is HttpOnly).
pub struct CallerForNewSession(pub Caller);

impl FromRequestParts<AppState> for CallerForNewSession {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match parts.extensions.get::<Rejected>() {
            Some(Rejected(AuthError::BadSession | AuthError::SessionExpired)) => {
                Ok(CallerForNewSession(Caller::Anonymous(
                    crate::auth::AnonymousCaller { session: None },
                )))
            }
            _ => CallerOf::from_request_parts(parts, state)
                .await
                .map(|CallerOf(caller)| CallerForNewSession(caller)),
        }
    }
}

/// The name of a route's dynamic segment: `step` for the function file
/// `api/onboarding/steps/[step].rs`.
pub trait SegmentName {
    const NAME: &'static str;
}

/// A route's dynamic segment. Vercel routes a function file such as
/// `api/onboarding/steps/[step].rs` with the placeholder (`[step]`) in the
/// path and the segment in the query parameter of the same name, so the
/// value is the path's segment, or for the placeholder that parameter
/// (empty when it is missing). A segment that does not decode (invalid
/// UTF-8 once percent-decoded), or a query that gives the parameter twice,
/// is a 400 in the problem shape; axum's own rejection would be text/plain.
pub struct Segment<N>(pub String, pub PhantomData<N>);

impl<N: SegmentName, S: Send + Sync> FromRequestParts<S> for Segment<N> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(path) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
        let axum::extract::Query(pairs) =
            axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
                .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
        let mut named = pairs.into_iter().filter(|(key, _)| key == N::NAME);
        let from_query = named.next().map(|(_, value)| value);
        if named.next().is_some() {
            return Err(ApiError::BadRequest(format!(
                "Failed to deserialize query string: duplicate field `{}`",
                N::NAME
            )));
        }
        let placeholder = path
            .strip_prefix('[')
            .and_then(|name| name.strip_suffix(']'));
        let value = if placeholder == Some(N::NAME) {
            from_query.unwrap_or_default()
        } else {
            path
        };
        Ok(Segment(value, PhantomData))
    }
}

/// The query string as `T`; one that does not fit (e.g. a parameter given
/// twice) is a 400 in the problem shape, as for [`Segment`].
pub struct QueryParams<T>(pub T);

impl<T, S> FromRequestParts<S> for QueryParams<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| QueryParams(value))
            .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))
    }
}

/// Reads the whole body within the configured limit; too large is a 413 in
/// the problem shape (axum's own rejection would be text/plain).
async fn read_body(request: Request, state: &AppState) -> Result<Bytes, ApiError> {
    let limit = state.settings().http.body_limit_bytes;
    Bytes::from_request(request, state)
        .await
        .map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(format!("the body is larger than {limit} bytes"))
            } else {
                ApiError::BadRequest("the body could not be read".into())
            }
        })
}

fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    if is_json_content_type(headers) {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(
            "send the body as application/json".into(),
        ))
    }
}

/// A JSON request body: `application/json`, within the body limit, and
/// well-formed. Type errors are reported per field (422), syntax errors as 400.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        require_json(request.headers())?;
        parse_json(&read_body(request, state).await?).map(JsonBody)
    }
}

/// A JSON request body kept as bytes, for writes that fingerprint the exact
/// body for idempotency before parsing it with [`parse_json`].
pub struct JsonBytes(pub Bytes);

impl FromRequest<AppState> for JsonBytes {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        require_json(request.headers())?;
        read_body(request, state).await.map(JsonBytes)
    }
}

/// A body of any type (or none), within the limit; too large is a 413 in the
/// problem shape. For POSTs whose body only feeds the idempotency fingerprint.
pub struct RawBody(pub Bytes);

impl FromRequest<AppState> for RawBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        read_body(request, state).await.map(RawBody)
    }
}

/// Parses JSON bytes into `T`, telling syntax errors (400) from type errors (422).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Syntax first, with serde_json's own recursion limit against deep nesting.
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|error| {
        ApiError::BadRequest(format!(
            "the body is not valid JSON (line {}, column {})",
            error.line(),
            error.column()
        ))
    })?;
    serde_path_to_error::deserialize(value).map_err(|error| {
        let pointer = json_pointer(error.path());
        ApiError::UnprocessableEntity {
            detail: "the body does not have the expected shape".into(),
            errors: vec![FieldError {
                pointer,
                code: ErrorCode::InvalidType,
                message: error.inner().to_string(),
                limit: None,
                step: None,
            }],
        }
    })
}

fn json_pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut pointer = String::new();
    for segment in path.iter() {
        pointer.push('/');
        match segment {
            Segment::Seq { index } => pointer.push_str(&index.to_string()),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                pointer.push_str(&key.replace('~', "~0").replace('/', "~1"))
            }
            Segment::Unknown => pointer.push('?'),
        }
    }
    pointer
}

fn is_json_content_type(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json"
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
}

/// The version a write expects to replace, from `If-Match`: absent, `*`
/// (an answer exists, whatever its version: RFC 9110 §13.1.1, so a step
/// with no answer fails it) or `"N"` (`"0"`: no answer yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IfMatch(pub ExpectedVersion);

impl FromRequestParts<AppState> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        let Some(raw) = parts.headers.get(header::IF_MATCH) else {
            return Ok(IfMatch(ExpectedVersion::Absent));
        };
        let raw = raw
            .to_str()
            .map_err(|_| ApiError::BadRequest("If-Match is not ASCII".into()))?
            .trim();
        if raw == "*" {
            return Ok(IfMatch(ExpectedVersion::Any));
        }
        // Versions are strong validators; a weak one (W/) is not accepted for writes.
        raw.strip_prefix('"')
            .and_then(|rest| rest.strip_suffix('"'))
            .and_then(|digits| digits.parse::<i64>().ok())
            .filter(|version| *version >= 0)
            .map(|version| IfMatch(ExpectedVersion::Version(version)))
            .ok_or_else(|| {
                ApiError::BadRequest(
                    "If-Match must be the quoted version from the ETag, e.g. \"3\"".into(),
                )
            })
    }
}

impl utoipa::IntoParams for IfMatch {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![header_parameter(
            "If-Match",
            "The version this write replaces, as its `ETag` gave it (`\"3\"`), or `*`: \
             \"an answer exists, whatever its version\" (RFC 9110), so `*` on a step with no \
             answer is 412. Required once the step has an answer (else 428); a stale version is \
             412, with the current version as `ETag` and the current answer in the problem. \
             A first write may omit it or send `\"0\"`.",
            ObjectBuilder::new()
                .schema_type(SchemaType::String)
                .pattern(Some(r#"^(\*|"[0-9]+")$"#)),
        )]
    }
}

/// The ETag of a stored version.
pub fn etag(version: i64) -> axum::http::HeaderValue {
    axum::http::HeaderValue::from_str(&format!("\"{version}\""))
        .expect("digits are a valid header value")
}

pub(crate) const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// An `Idempotency-Key` (1 to 255 printable ASCII characters), when given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(pub Option<String>);

impl FromRequestParts<AppState> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        let Some(raw) = parts.headers.get(IDEMPOTENCY_KEY) else {
            return Ok(IdempotencyKey(None));
        };
        let key = raw
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|key| {
                (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
            })
            .ok_or_else(|| {
                ApiError::BadRequest(
                    "Idempotency-Key must be 1 to 255 printable ASCII characters".into(),
                )
            })?;
        Ok(IdempotencyKey(Some(key.to_string())))
    }
}

impl utoipa::IntoParams for IdempotencyKey {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![header_parameter(
            "Idempotency-Key",
            "Makes a retry safe (Stripe semantics): the first successful answer is stored with \
             the write and replayed, with `Idempotent-Replayed: true`, for 24 hours; the same key \
             with a different request is 422 of type `idempotency-key-reused`.",
            ObjectBuilder::new()
                .schema_type(SchemaType::String)
                .min_length(Some(1))
                .max_length(Some(255))
                .pattern(Some("^[!-~]+$")),
        )]
    }
}

fn header_parameter(name: &str, description: &str, schema: ObjectBuilder) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Shape {
        items: Vec<Item>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Item {
        count: u32,
    }

    #[test]
    fn a_syntax_error_is_a_400() {
        let error = parse_json::<Shape>(b"{\"items\": [").unwrap_err();
        assert_eq!(error.status(), 400);
    }

    #[test]
    fn a_type_error_is_a_422_pointing_at_the_field() {
        let error =
            parse_json::<Shape>(br#"{"items": [{"count": 1}, {"count": "two"}]}"#).unwrap_err();
        let ApiError::UnprocessableEntity { errors, .. } = error else {
            panic!("expected 422");
        };
        assert_eq!(errors[0].pointer, "/items/1/count");
    }

    #[test]
    fn deeply_nested_json_is_rejected_without_overflowing_the_stack() {
        let deep = "[".repeat(100_000);
        assert_eq!(
            parse_json::<serde_json::Value>(deep.as_bytes())
                .unwrap_err()
                .status(),
            400
        );
    }

    struct StepName;

    impl SegmentName for StepName {
        const NAME: &'static str = "step";
    }

    /// The status and body of `GET uri` to a route that answers its segment.
    async fn segment_answer(uri: &str) -> (u16, String) {
        use tower::ServiceExt;
        let app = axum::Router::new().route(
            "/steps/{step}",
            axum::routing::get(|Segment(value, _): Segment<StepName>| async move { value }),
        );
        let request = Request::builder().uri(uri).body(axum::body::Body::empty());
        let response = app.oneshot(request.unwrap()).await.unwrap();
        let status = response.status().as_u16();
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn a_segment_comes_from_the_path_or_for_the_placeholder_from_the_query() {
        for (uri, expected) in [
            ("/steps/profile", "profile"),
            ("/steps/profile?step=team", "profile"),
            ("/steps/%5Bstep%5D?step=team", "team"),
            ("/steps/%5Bstep%5D?other=1&step=te%20am", "te am"),
            ("/steps/%5Bstep%5D", ""),
            ("/steps/%5Bid%5D?id=team", "[id]"),
        ] {
            assert_eq!(
                segment_answer(uri).await,
                (200, expected.to_string()),
                "{uri}"
            );
        }
    }

    #[tokio::test]
    async fn a_segment_named_twice_or_not_decoding_is_a_400_problem() {
        for uri in [
            "/steps/profile?step=a&step=b",
            "/steps/%5Bstep%5D?step=a&step=b",
            "/steps/%FF",
        ] {
            let (status, body) = segment_answer(uri).await;
            assert_eq!(status, 400, "{uri}: {body}");
            assert!(body.contains("\"status\":400"), "{uri}: {body}");
        }
    }

    #[test]
    fn json_content_types_are_recognised() {
        let mut headers = HeaderMap::new();
        for (value, ok) in [
            ("application/json", true),
            ("application/json; charset=utf-8", true),
            ("application/merge-patch+json", true),
            ("text/plain", false),
            ("application/x-www-form-urlencoded", false),
        ] {
            headers.insert(header::CONTENT_TYPE, value.parse().unwrap());
            assert_eq!(is_json_content_type(&headers), ok, "{value}");
        }
    }
}
