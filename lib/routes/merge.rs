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
use crate::error::ApiError;
use crate::http::extract::{CallerOf, IdempotencyKey, RawBody};
use crate::routes::session::cookie_is_secure;
use crate::routes::support::invalidate_cached;
use crate::state::AppState;
use crate::wizard::RequestFingerprint;
use crate::wizard::merge::merge;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/onboarding/session/merge", post(handle))
}

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
