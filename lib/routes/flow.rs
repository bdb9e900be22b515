//! `GET /api/onboarding/flow`: the steps and fields that apply to the caller,
//! after flags and conditions, each with its JSON Schema.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use crate::cache::keys::Subject;
use crate::cache::status_cache::{CacheEntry, Lookup};
use crate::http::error::{ApiError, Problem};
use crate::http::extract::CallerOf;
use crate::routes::support::own_progress;
use crate::routes::support::{flags_of, rollout_subject};
use crate::state::AppState;
use crate::wizard::flow::FieldDefinition;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/onboarding/flow", get(flow))
}

#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlowView {
    pub flow_id: String,
    pub version: u32,
    pub steps: Vec<StepView>,
}

/// A step as it applies to the caller.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = FlowStep)]
pub struct StepView {
    pub id: String,
    pub title: String,
    pub optional: bool,
    pub fields: Vec<FieldDefinition>,
    /// JSON Schema (2020-12) of a completed answer.
    #[schema(value_type = Object)]
    pub schema: serde_json::Value,
    /// JSON Schema of a draft (required fields may be missing).
    #[schema(value_type = Object)]
    pub draft_schema: serde_json::Value,
}

/// The steps and fields that apply to the caller
///
/// After flags and conditions (a one-person organization has no team step),
/// each step with the JSON Schema of a completed answer and of a draft.
#[utoipa::path(
    get,
    path = "/api/onboarding/flow",
    operation_id = "getFlow",
    tag = "onboarding",
    security((), ("bearer" = []), ("sessionCookie" = []), ("sessionHeader" = [])),
    responses(
        (status = 200, description = "The caller's flow", body = FlowView),
        (status = 401, description = "A credential was presented and failed verification", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "An unexpected database error", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database or the identity provider's keys are unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all)]
async fn flow(
    State(state): State<AppState>,
    CallerOf(caller): CallerOf,
) -> Result<Json<FlowView>, ApiError> {
    let config = state.flags().snapshot().await;
    let flow = config.flow();
    let rollout = rollout_subject(&caller);
    let flags = flags_of(config.config(), &rollout);
    let subject = Subject::of(&caller);
    let cache = state.cache();
    let ticket = match &subject {
        Some(subject) => match cache.get_json::<FlowView>(CacheEntry::Flow, subject).await {
            Lookup::Hit(view) => return Ok(Json(view)),
            Lookup::Miss(ticket) => ticket,
        },
        None => None,
    };
    // Conditions depend on earlier answers (a one-person organization has no team step).
    let answers = own_progress(&state, &caller, flow.id())
        .await?
        .map(|(_, answers)| answers)
        .unwrap_or_default();
    let steps = flow
        .visible_steps(&answers, &flags)
        .into_iter()
        .map(|step| StepView {
            id: step.id.clone(),
            title: step.title.clone(),
            optional: step.optional,
            fields: step.fields.clone(),
            schema: flow.step_json_schema(&step.id).unwrap_or_default(),
            draft_schema: flow.step_draft_json_schema(&step.id).unwrap_or_default(),
        })
        .collect();
    let view = FlowView {
        flow_id: flow.id().to_string(),
        version: flow.version(),
        steps,
    };
    if let Some(subject) = &subject {
        cache
            .set_json(CacheEntry::Flow, subject, ticket.as_ref(), &view)
            .await;
    }
    Ok(Json(view))
}
