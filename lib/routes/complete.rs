//! `POST /api/onboarding/complete`: checks every required step, runs the
//! completion transform, marks the flow completed. Repeating it is harmless.

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use crate::auth::Caller;
use crate::http::error::{ApiError, Problem};
use crate::http::extract::{CallerOf, IdempotencyKey, RawBody};
use crate::routes::support::invalidate_cached;
use crate::routes::support::{flags_of, rollout_subject};
use crate::state::AppState;
use crate::wizard::RequestFingerprint;
use crate::wizard::complete::{Completed, Completer, complete};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/onboarding/complete", post(handle))
}

/// Complete onboarding
///
/// Checks every required visible step, then writes the profile, the
/// organization (the caller becomes its owner) and the invitations, and marks
/// the flow completed, in one transaction. Repeating it answers the same and
/// writes nothing. Any body is ignored but for `Idempotency-Key` matching.
#[utoipa::path(
    post,
    path = "/api/onboarding/complete",
    operation_id = "completeOnboarding",
    tag = "onboarding",
    params(IdempotencyKey),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Completed (now or before)", body = Completed),
        (status = 400, description = "A malformed `Idempotency-Key`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in (anonymous drafts are merged on sign-in), or a credential that failed verification", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is larger than `BODY_LIMIT_BYTES`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Onboarding was not started, a required step is not completed or no longer fits the flow, the organization's slug is taken (`errors[]` points at `/steps/<step>/...`), or the `Idempotency-Key` was used for a different request", body = Problem, content_type = "application/problem+json"),
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
