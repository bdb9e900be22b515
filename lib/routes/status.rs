//! `GET /api/onboarding/status`: for the Next.js middleware, on every navigation.

use axum::Router;
use axum::response::Response;
use axum::routing::get;

use crate::http::context::WizardRequest;
use crate::http::error::ApiError;
use crate::http::written_json;
use crate::routes::problems::{CredentialRejected, DatabaseProblems};
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
#[utoipa::path(get, path = PATH, operation_id = "getStatus", tag = "onboarding",
    security((), ("bearer" = []), ("sessionCookie" = []), ("sessionHeader" = [])), responses(
        (status = 200, description = "The caller's status", body = Status),
        CredentialRejected,
        DatabaseProblems,
    )
)]
#[tracing::instrument(level = "debug", skip_all)]
async fn status(request: WizardRequest) -> Result<Response, ApiError> {
    let flags = request.flags();
    let status = request.reader(&flags).status(request.paths()).await?;
    Ok(written_json(status.to_json()))
}
