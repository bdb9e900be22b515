//! `GET /api/onboarding/analytics/funnel?from=&to=&flowVersion=`: per step,
//! how many reached, completed and dropped, and the median time spent, for
//! the admins of the caller's active organization.

use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::db::funnel::{self, StepFunnel};
use crate::db::{DbError, domain};
use crate::http::context::WizardRequest;
use crate::http::error::{ApiError, Problem};
use crate::http::extract::QueryParams;
use crate::routes::problems::{DatabaseProblems, OrganizationAdminRequired, SignedInRequired};
use crate::state::AppState;

const PATH: &str = "/api/onboarding/analytics/funnel";

pub fn router() -> Router<AppState> {
    Router::new().route(PATH, get(handle))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FunnelQuery {
    /// Start of the range (RFC 3339); default 30 days before `to`.
    pub from: Option<DateTime<Utc>>,
    /// End of the range, exclusive; default now.
    pub to: Option<DateTime<Utc>>,
    /// Only events recorded under this flow version.
    pub flow_version: Option<i32>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Funnel {
    pub flow_id: String,
    #[schema(required = true)]
    pub flow_version: Option<i32>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// In the flow's step order.
    pub steps: Vec<StepFunnel>,
}

/// Per step: reached, completed, dropped, median time
///
/// For the admins of the caller's active organization (membership is checked
/// in the database, not taken from the token). The range is at most a year;
/// by default the 30 days before `to`.
#[utoipa::path(get, path = PATH, operation_id = "getFunnel", tag = "analytics",
    params(FunnelQuery), security(("bearer" = [])), responses(
        (status = 200, description = "The funnel, in the flow's step order", body = Funnel),
        (status = 400, description = "A malformed or unknown query parameter, or `from` not before `to` or more than a year apart", body = Problem, content_type = "application/problem+json"),
        SignedInRequired,
        OrganizationAdminRequired,
        DatabaseProblems,
    )
)]
async fn handle(
    request: WizardRequest,
    QueryParams(query): QueryParams<FunnelQuery>,
) -> Result<Json<Funnel>, ApiError> {
    let user =
        request.require_user("sign in as an admin of the organization to read its funnel")?;
    if user.organization_id().is_none() {
        return Err(ApiError::Forbidden("select an organization first".into()));
    }
    let to = query.to.unwrap_or_else(Utc::now);
    let from = query.from.unwrap_or(to - Duration::days(30));
    if from >= to || to - from > Duration::days(366) {
        return Err(ApiError::BadRequest(
            "`from` must be before `to`, at most a year apart".into(),
        ));
    }
    let flow = request.flow();
    let rows = request
        .state
        .db()
        .transaction(&request.rls(), async |tx| {
            // Membership is checked by the database, not trusted from the token.
            if !domain::is_admin_of_active_organization(tx).await? {
                return Ok::<_, DbError>(None);
            }
            funnel::by_step(tx, flow.id(), from, to, query.flow_version)
                .await
                .map(Some)
        })
        .await?
        .ok_or_else(|| ApiError::Forbidden("only organization admins read the funnel".into()))?;
    let mut steps: Vec<StepFunnel> = flow
        .steps()
        .iter()
        .filter_map(|step| rows.iter().find(|row| row.step == step.id).cloned())
        .collect();
    steps.extend(
        rows.into_iter()
            .filter(|row| flow.step(&row.step).is_none()),
    );
    Ok(Json(Funnel {
        flow_id: flow.id().to_string(),
        flow_version: query.flow_version,
        from,
        to,
        steps,
    }))
}
