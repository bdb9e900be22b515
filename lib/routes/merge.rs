//! `POST /api/onboarding/session/merge`: after sign-in, the anonymous
//! session's drafts move to the user (rule in `wizard::merge`), and the
//! session cookie is cleared.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use crate::auth::{Caller, SessionCookies, cookie_is_secure};
use crate::db::RlsContext;
use crate::http::error::{ApiError, Problem};
use crate::http::extract::{CallerOf, IdempotencyKey, RawBody};
use crate::http::idempotency::{Reply, RequestFingerprint, run_once};
use crate::routes::problems::{
    DatabaseProblems, MalformedIdempotencyKey, SignedInRequired, WriteLimits,
};
use crate::state::AppState;
use crate::wizard::merge::{Merged, merge};
use crate::wizard::reads::forget_cached;

const PATH: &str = "/api/onboarding/session/merge";

pub fn router() -> Router<AppState> {
    Router::new().route(PATH, post(handle))
}

/// Move the anonymous session's drafts to the signed-in user
///
/// Send the user's token and the session (cookie or `X-Onboarding-Session`).
/// Per step, **the more recently saved answer wins**; on a tie the account's
/// answer is kept. The answer lists, per flow, the steps taken from the
/// session and the ones kept, and clears the session cookie. Merging again
/// finds nothing and changes nothing; so does merging without a session (or
/// with one that expired or does not verify): the browser cannot know
/// whether its HttpOnly cookie holds one, so that is a 200 with nothing in
/// `merged`, not an error. Any body is ignored but for `Idempotency-Key`
/// matching.
#[utoipa::path(post, path = PATH, operation_id = "mergeSession", tag = "session",
    params(IdempotencyKey),
    security(("bearer" = [], "sessionCookie" = []), ("bearer" = [], "sessionHeader" = [])), responses(
        (status = 200, description = "Merged; `merged` is empty when there was no session to merge", body = Merged,
            headers(("Set-Cookie" = String, description = "Clears `onboarding_session` (`Max-Age=0`)"))),
        MalformedIdempotencyKey,
        SignedInRequired,
        WriteLimits,
        (status = 422, description = "The `Idempotency-Key` was used for a different request", body = Problem, content_type = "application/problem+json"),
        DatabaseProblems,
    )
)]
#[tracing::instrument(level = "debug", skip_all)]
async fn handle(
    State(state): State<AppState>,
    CallerOf(caller): CallerOf,
    IdempotencyKey(key): IdempotencyKey,
    headers: axum::http::HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let Caller::User(_) = &caller else {
        return Err(ApiError::sign_in_required(
            "merging needs the signed-in user's token",
        ));
    };
    let fingerprint = RequestFingerprint::new("POST", PATH, &body);
    let context = RlsContext::for_caller(&caller);
    let reply = run_once(
        state.db(),
        &context,
        key.as_deref(),
        &fingerprint,
        async |tx| {
            let merged = merge(tx).await?;
            Ok(Reply::json(StatusCode::OK, &merged))
        },
    )
    .await?;
    forget_cached(&state.cache(), &caller).await;
    // Merged, the session is no one's any more: its cached liveness goes too,
    // so presented again it is refused at once, as PostgreSQL refuses it.
    if let Some(session) = caller.session() {
        state.sessions().forget(session).await;
    }
    let mut response = reply.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        SessionCookies::clear_cookie_header(cookie_is_secure(&headers)),
    );
    Ok(response)
}
