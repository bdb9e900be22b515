//! `POST /api/onboarding/session/merge`: after sign-in, the anonymous
//! session's drafts move to the user (rule in `wizard::merge`), and the
//! session cookie is cleared.

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use crate::auth::{Caller, SessionCookies};
use crate::db::RlsContext;
use crate::http::error::{ApiError, Problem};
use crate::http::extract::{CallerOf, IdempotencyKey, RawBody};
use crate::routes::session::cookie_is_secure;
use crate::routes::support::invalidate_cached;
use crate::state::AppState;
use crate::wizard::RequestFingerprint;
use crate::wizard::merge::{Merged, merge};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/onboarding/session/merge", post(handle))
}

/// Move the anonymous session's drafts to the signed-in user
///
/// Send the user's token and the session (cookie or `X-Onboarding-Session`).
/// Per step, **the more recently saved answer wins**; on a tie the account's
/// answer is kept. The answer lists, per flow, the steps taken from the
/// session and the ones kept, and clears the session cookie. Merging again
/// finds nothing and changes nothing. Any body is ignored but for
/// `Idempotency-Key` matching.
#[utoipa::path(
    post,
    path = "/api/onboarding/session/merge",
    operation_id = "mergeSession",
    tag = "session",
    params(IdempotencyKey),
    security(("bearer" = [], "sessionCookie" = []), ("bearer" = [], "sessionHeader" = [])),
    responses(
        (status = 200, description = "Merged", body = Merged,
            headers(("Set-Cookie" = String, description = "Clears `onboarding_session` (`Max-Age=0`)"))),
        (status = 400, description = "No session presented (and no `Idempotency-Key` to replay), or a malformed `Idempotency-Key`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in, or a credential that failed verification", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is larger than `BODY_LIMIT_BYTES`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The `Idempotency-Key` was used for a different request", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many writes; retry after `Retry-After` seconds", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "An unexpected database error", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database or the identity provider's keys are unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all)]
async fn handle(
    State(state): State<AppState>,
    CallerOf(caller): CallerOf,
    IdempotencyKey(key): IdempotencyKey,
    headers: axum::http::HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let Caller::User(user) = &caller else {
        return Err(ApiError::sign_in_required(
            "merging needs the signed-in user's token",
        ));
    };
    if user.session().is_none() && key.is_none() {
        return Err(ApiError::BadRequest(
            "present the anonymous session (cookie or X-Onboarding-Session) to merge".into(),
        ));
    }
    let fingerprint = RequestFingerprint::new("POST", "/api/onboarding/session/merge", &body);
    let reply = merge(
        state.db(),
        &RlsContext::for_caller(&caller),
        key.as_deref(),
        &fingerprint,
    )
    .await?;
    invalidate_cached(&state, &caller).await;
    let mut response = reply.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        SessionCookies::clear_cookie_header(cookie_is_secure(&headers)),
    );
    Ok(response)
}
