//! `POST /api/onboarding/complete`: checks every required step, runs the
//! completion transform, marks the flow completed. Repeating it is harmless.

use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;

use crate::http::context::WizardRequest;
use crate::http::error::{ApiError, Problem};
use crate::http::extract::{IdempotencyKey, RawBody};
use crate::http::idempotency::{Reply, RequestFingerprint};
use crate::routes::problems::{DatabaseProblems, MalformedIdempotencyKey, WriteLimits};
use crate::state::AppState;
use crate::wizard::complete::{Completed, Completer, complete};

const PATH: &str = "/api/onboarding/complete";

pub fn router() -> Router<AppState> {
    Router::new().route(PATH, post(handle))
}

/// Complete onboarding
///
/// Checks every required visible step, then writes the profile, the
/// organization (the caller becomes its owner) and the invitations, and marks
/// the flow completed, in one transaction. Repeating it answers the same and
/// writes nothing. Any body is ignored but for `Idempotency-Key` matching.
#[utoipa::path(post, path = PATH, operation_id = "completeOnboarding", tag = "onboarding",
    params(IdempotencyKey), security(("bearer" = [])), responses(
        (status = 200, description = "Completed (now or before)", body = Completed),
        MalformedIdempotencyKey,
        (status = 401, description = "Not signed in (anonymous drafts are merged on sign-in), or a credential that failed verification", body = Problem, content_type = "application/problem+json"),
        WriteLimits,
        (status = 422, description = "Onboarding was not started, a required step is not completed or no longer fits the flow, the organization's slug is taken (each error of `errors[]` names its `step` and points into that step's answers, e.g. `step: \"organization\", pointer: \"/slug\"`), or the `Idempotency-Key` was used for a different request", body = Problem, content_type = "application/problem+json"),
        DatabaseProblems,
    )
)]
#[tracing::instrument(level = "debug", skip_all)]
async fn handle(
    request: WizardRequest,
    IdempotencyKey(key): IdempotencyKey,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let user = request
        .require_user("sign in to complete onboarding; anonymous drafts are merged on sign-in")?;
    let completer = Completer {
        user_id: user.user_id().as_str(),
        organization_id: user.organization_id().map(|org| org.as_str()),
        session_hash: user.session().map(|session| session.hash_hex()),
    };
    let flags = request.flags();
    let fingerprint = RequestFingerprint::new("POST", PATH, &body);
    request
        .write_once(key.as_deref(), &fingerprint, async |tx| {
            let completed =
                complete(tx, &completer, request.flow(), &flags, request.paths()).await?;
            Ok(Reply::json(StatusCode::OK, &completed))
        })
        .await
}
