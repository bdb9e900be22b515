//! `GET /api/onboarding/flow`: the steps and fields that apply to the caller,
//! after flags and conditions, each with its JSON Schema.

use axum::routing::get;
use axum::{Json, Router};

use crate::http::context::WizardRequest;
use crate::http::error::ApiError;
use crate::routes::problems::{CredentialRejected, DatabaseProblems};
use crate::state::AppState;
use crate::wizard::reads::FlowView;

const PATH: &str = "/api/onboarding/flow";

pub fn router() -> Router<AppState> {
    Router::new().route(PATH, get(flow))
}

/// The steps and fields that apply to the caller
///
/// After flags and conditions (a one-person organization has no team step),
/// each step with the JSON Schema of a completed answer and of a draft.
#[utoipa::path(get, path = PATH, operation_id = "getFlow", tag = "onboarding",
    security((), ("bearer" = []), ("sessionCookie" = []), ("sessionHeader" = [])), responses(
        (status = 200, description = "The caller's flow", body = FlowView),
        CredentialRejected,
        DatabaseProblems,
    )
)]
#[tracing::instrument(level = "debug", skip_all)]
async fn flow(request: WizardRequest) -> Result<Json<FlowView>, ApiError> {
    let flags = request.flags();
    let view = request.reader(&flags).flow().await?;
    Ok(Json(view))
}
