//! `GET /api/onboarding/status`: for the Next.js middleware, on every navigation.

use axum::routing::get;
use axum::{Json, Router};

use crate::http::context::WizardRequest;
use crate::http::error::{ApiError, Problem};
use crate::state::AppState;
use crate::wizard::status::Status;

const PATH: &str = "/api/onboarding/status";

pub fn router() -> Router<AppState> {
    Router::new().route(PATH, get(status))
}

/// Where the caller's onboarding stands
///
/// For the Next.js middleware, on every navigation: cached per caller in
/// Redis, so a hit costs no database round trip. Anonymous callers get
/// `not_started`.
#[utoipa::path(
    get,
    path = PATH,
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
async fn status(request: WizardRequest) -> Result<Json<Status>, ApiError> {
    let flags = request.flags();
    let status = request.reader(&flags).status(request.paths()).await?;
    Ok(Json(status))
}
