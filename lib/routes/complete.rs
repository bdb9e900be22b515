//! `POST /api/onboarding/complete`: checks every required step, runs the
//! completion transform, marks the flow completed. Repeating it is harmless.

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::http::extract::{CallerOf, IdempotencyKey, RawBody};
use crate::routes::support::invalidate_cached;
use crate::routes::support::{flags_of, rollout_subject};
use crate::state::AppState;
use crate::wizard::RequestFingerprint;
use crate::wizard::complete::{Completer, complete};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/onboarding/complete", post(handle))
}

#[tracing::instrument(skip_all)]
async fn handle(
    State(state): State<AppState>,
    CallerOf(caller): CallerOf,
    IdempotencyKey(key): IdempotencyKey,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let Caller::User(user) = &caller else {
        return Err(ApiError::sign_in_required(
            "sign in to complete onboarding; anonymous drafts are merged on sign-in",
        ));
    };
    let config = state.flags().snapshot().await;
    let rollout = rollout_subject(&caller);
    let flags = flags_of(config.config(), &rollout);
    let fingerprint = RequestFingerprint::new("POST", "/api/onboarding/complete", &body);
    let reply = complete(
        state.db(),
        &Completer {
            user_id: user.user_id().as_str(),
            organization_id: user.organization_id().map(|org| org.as_str()),
            session_hash: user.session().map(|session| session.hash_hex()),
        },
        config.flow(),
        &flags,
        &state.settings().http.redirect_paths,
        key.as_deref(),
        &fingerprint,
    )
    .await?;
    invalidate_cached(&state, &caller).await;
    Ok(reply.into_response())
}
