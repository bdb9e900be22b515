//! `DELETE /api/onboarding/me` and `GET /api/onboarding/me/export`: the
//! signed-in user's onboarding data, erased or handed over as a file (rules
//! in `wizard::erasure`; README: "Erasure and export").

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};

use crate::http::context::WizardRequest;
use crate::http::error::{ApiError, Problem};
use crate::routes::problems::{DatabaseProblems, SignedInRequired};
use crate::state::AppState;
use crate::wizard::erasure::{Erasure, Export, erase_caller, export};

const PATH: &str = "/api/onboarding/me";
const EXPORT_PATH: &str = "/api/onboarding/me/export";

/// The file name the export is saved as.
const EXPORT_DISPOSITION: &str = "attachment; filename=\"onboarding-export.json\"";

/// `DELETE /api/onboarding/me`, the route of `api/onboarding/me.rs`.
pub fn erase_router() -> Router<AppState> {
    Router::new().route(PATH, delete(erase))
}

/// `GET /api/onboarding/me/export`, the route of `api/onboarding/me/export.rs`.
pub fn export_router() -> Router<AppState> {
    Router::new().route(EXPORT_PATH, get(download))
}

/// Erase my onboarding data
///
/// Deletes everything onboarding holds of the signed-in user, in one
/// transaction: progress and answers, profile, memberships, the invitations
/// they sent, AI preferences and suggestions, analytics events, idempotency
/// records, and the anonymous sessions merged into them with what those
/// still hold. Organizations they alone own are deleted with their
/// memberships, invitations and AI policy; an organization with another
/// owner stays, without their id. The answer counts the rows per table.
/// Calling it again deletes nothing and answers zeros. Only ever the caller
/// of the token: no parameter names a user.
#[utoipa::path(delete, path = PATH, operation_id = "eraseMe", tag = "privacy",
    security(("bearer" = [])), responses(
        (status = 200, description = "Erased (now, or nothing was left): rows per table", body = Erasure),
        SignedInRequired,
        (status = 429, description = "Too many writes; retry after `Retry-After` seconds", body = Problem, content_type = "application/problem+json"),
        DatabaseProblems,
    )
)]
#[tracing::instrument(level = "debug", skip_all)]
async fn erase(request: WizardRequest) -> Result<Json<Erasure>, ApiError> {
    request.require_user("sign in to erase your onboarding data")?;
    let erased = request
        .state
        .db()
        .transaction(&request.rls(), async |tx| erase_caller(tx).await)
        .await?;
    tracing::info!(rows = erased.total_deleted(), "user erased on request");
    request.forget_cached().await;
    Ok(Json(erased))
}

/// Export my onboarding data
///
/// Everything onboarding holds of the signed-in user, as a JSON file:
/// profile, progress with every saved answer, memberships, the organizations
/// they belong to or created, the invitations they sent, AI preferences and
/// suggestions, and the funnel events recorded while signed in. Read in one
/// transaction under the user's own Row Level Security policies.
#[utoipa::path(get, path = EXPORT_PATH, operation_id = "exportMe", tag = "privacy",
    security(("bearer" = [])), responses(
        (status = 200, description = "The export", body = Export,
            headers(("Content-Disposition" = String, description = "`attachment; filename=\"onboarding-export.json\"`"))),
        SignedInRequired,
        DatabaseProblems,
    )
)]
#[tracing::instrument(level = "debug", skip_all)]
async fn download(request: WizardRequest) -> Result<Response, ApiError> {
    let user = request.require_user("sign in to export your onboarding data")?;
    let exported = request
        .state
        .db()
        .transaction(&request.rls(), async |tx| export(tx, user.user_id()).await)
        .await?;
    Ok((
        [
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static(EXPORT_DISPOSITION),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        Json(exported),
    )
        .into_response())
}
