//! `GET` and `PUT /api/onboarding/ai/policy`: whether the members of the
//! caller's active organization may use AI suggestions, read and set by its
//! admins. Admin rights are checked in the database (the membership's role),
//! never taken from the token, and the policy's own RLS lets only admins of
//! the organization in the context write it.

use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ai::preferences::{self, OrganizationPolicy};
use crate::db::{DbError, Tx, domain};
use crate::http::context::WizardRequest;
use crate::http::error::{ApiError, Problem};
use crate::http::extract::JsonBody;
use crate::routes::problems::{
    DatabaseProblems, JsonOnly, MalformedJson, OrganizationAdminRequired, SignedInRequired,
    WriteLimits,
};
use crate::state::AppState;

const PATH: &str = "/api/onboarding/ai/policy";

pub fn router() -> Router<AppState> {
    Router::new().route(PATH, get(read).put(write))
}

/// The organization's AI policy.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationAiPolicy {
    /// The caller's active organization.
    pub organization_id: String,
    /// Whether members may use AI suggestions (each still opts in). `true`
    /// until an admin says otherwise.
    pub ai_allowed: bool,
    /// When an admin last set it; `null` while it is the default.
    #[schema(required = true)]
    pub updated_at: Option<DateTime<Utc>>,
    /// Whether this deployment has an AI provider configured at all.
    pub available: bool,
}

/// The body of setting the policy.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicyBody {
    /// `false` forbids AI suggestions for every member of the organization.
    pub ai_allowed: bool,
}

/// The caller's active organization, for a signed-in caller who has one.
fn organization(request: &WizardRequest) -> Result<String, ApiError> {
    let user =
        request.require_user("sign in as an admin of the organization to manage its AI policy")?;
    user.organization_id()
        .map(|id| id.as_str().to_string())
        .ok_or_else(|| ApiError::Forbidden("select an organization first".into()))
}

/// Runs `body` in the caller's transaction once the database says they
/// administer the active organization; 403 otherwise.
async fn as_admin<T>(
    request: &WizardRequest,
    body: impl AsyncFnOnce(&Tx<'_>) -> Result<T, DbError> + Clone,
) -> Result<T, ApiError> {
    request
        .state
        .db()
        .transaction(&request.rls(), async |tx| {
            if !domain::is_admin_of_active_organization(tx).await? {
                return Ok(None);
            }
            body(tx).await.map(Some)
        })
        .await?
        .ok_or_else(|| {
            ApiError::Forbidden("only the organization's admins manage its AI policy".into())
        })
}

fn view(
    request: &WizardRequest,
    organization_id: String,
    stored: Option<OrganizationPolicy>,
) -> OrganizationAiPolicy {
    OrganizationAiPolicy {
        organization_id,
        ai_allowed: stored.is_none_or(|policy| policy.ai_allowed),
        updated_at: stored.map(|policy| policy.updated_at),
        available: request.state.ai().is_some(),
    }
}

/// The organization's AI policy
///
/// For the admins (owners and admins, checked in the database) of the
/// caller's active organization. No policy set means AI is allowed; members
/// still opt in themselves (`PUT /api/onboarding/ai/preferences`).
#[utoipa::path(get, path = PATH, operation_id = "getOrganizationAiPolicy", tag = "ai",
    security(("bearer" = [])), responses(
        (status = 200, description = "The policy, or the default (allowed)", body = OrganizationAiPolicy),
        SignedInRequired,
        OrganizationAdminRequired,
        DatabaseProblems,
    )
)]
async fn read(request: WizardRequest) -> Result<Json<OrganizationAiPolicy>, ApiError> {
    let organization_id = organization(&request)?;
    let stored = as_admin(&request, async |tx| {
        preferences::fetch_organization_policy(tx).await
    })
    .await?;
    Ok(Json(view(&request, organization_id, stored)))
}

/// Allow or forbid AI suggestions for the organization
///
/// Forbidding takes effect on the members' next suggestion request (`403`);
/// their own opt-in is kept for when it is allowed again.
#[utoipa::path(put, path = PATH, operation_id = "setOrganizationAiPolicy", tag = "ai",
    request_body = PolicyBody, security(("bearer" = [])), responses(
        (status = 200, description = "Stored", body = OrganizationAiPolicy),
        MalformedJson,
        SignedInRequired,
        OrganizationAdminRequired,
        WriteLimits,
        JsonOnly,
        (status = 422, description = "The body has the wrong shape (`aiAllowed` must be a boolean)", body = Problem, content_type = "application/problem+json"),
        DatabaseProblems,
    )
)]
async fn write(
    request: WizardRequest,
    JsonBody(body): JsonBody<PolicyBody>,
) -> Result<Json<OrganizationAiPolicy>, ApiError> {
    let organization_id = organization(&request)?;
    let stored = as_admin(&request, async |tx| {
        preferences::write_organization_policy(tx, body.ai_allowed).await
    })
    .await?;
    Ok(Json(view(&request, organization_id, Some(stored))))
}
