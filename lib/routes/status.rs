//! `GET /api/onboarding/status`: for the Next.js middleware, on every navigation.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use crate::auth::Caller;
use crate::cache::keys::Subject;
use crate::cache::status_cache::{CacheEntry, Lookup};
use crate::http::error::{ApiError, Problem};
use crate::http::extract::CallerOf;
use crate::routes::support::own_progress;
use crate::routes::support::{flags_of, rollout_subject};
use crate::state::AppState;
use crate::wizard::flow::AnswerMap;
use crate::wizard::status::{self, Status};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/onboarding/status", get(status))
}

/// Where the caller's onboarding stands
///
/// For the Next.js middleware, on every navigation: cached per caller in
/// Redis, so a hit costs no database round trip. Anonymous callers get
/// `not_started`.
#[utoipa::path(
    get,
    path = "/api/onboarding/status",
    operation_id = "getStatus",
    tag = "onboarding",
    security((), ("bearer" = []), ("sessionCookie" = []), ("sessionHeader" = [])),
    responses(
        (status = 200, description = "The caller's status", body = Status),
        (status = 401, description = "A credential was presented and failed verification", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "An unexpected database error", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database or the identity provider's keys are unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all)]
async fn status(
    State(state): State<AppState>,
    CallerOf(caller): CallerOf,
) -> Result<Json<Status>, ApiError> {
    let config = state.flags().snapshot().await;
    let flow = config.flow();
    let rollout = rollout_subject(&caller);
    let flags = flags_of(config.config(), &rollout);
    let authenticated = matches!(caller, Caller::User(_));
    let subject = Subject::of(&caller);
    let cache = state.cache();
    // A hit costs no PostgreSQL round trip; writes invalidate after they commit.
    let ticket = match &subject {
        Some(subject) => match cache.get_json::<Status>(CacheEntry::Status, subject).await {
            Lookup::Hit(status) => return Ok(Json(status)),
            Lookup::Miss(ticket) => ticket,
        },
        None => None,
    };
    let (record, answers) = match own_progress(&state, &caller, flow.id()).await? {
        Some((record, answers)) => (Some(record), answers),
        None => (None, AnswerMap::new()),
    };
    let status = status::compute(
        flow,
        &flags,
        authenticated,
        record.as_ref(),
        &answers,
        &state.settings().http.redirect_paths,
    );
    if let Some(subject) = &subject {
        cache
            .set_json(CacheEntry::Status, subject, ticket.as_ref(), &status)
            .await;
    }
    Ok(Json(status))
}
