//! `POST /api/onboarding/events`: batched funnel events from the wizard.
//! Answered 202 once the batch is queued; it is stored after the response
//! (the function stays alive for it through Vercel's `wait_until`), grouped
//! with other callers' batches by [`crate::db::event_writer`]. A full queue or
//! an unreachable database is a 503: the client keeps the batch and retries.

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::cache::rate_limit;
use crate::http::background::Background;
use crate::http::context::WizardRequest;
use crate::http::error::{ApiError, Problem, apply_rate_limit_headers};
use crate::http::extract::JsonBody;
use crate::http::rate_limit::ClientIp;
use crate::routes::problems::{JsonOnly, MalformedJson, OwnerRequired};
use crate::state::AppState;
use crate::wizard::validation::{ErrorCode, FieldError};

const PATH: &str = "/api/onboarding/events";

pub fn router() -> Router<AppState> {
    Router::new().route(PATH, post(handle))
}

/// Events per request; a larger batch is a 413.
pub const MAX_EVENTS: usize = 100;
/// Size of one event's `properties`, serialized.
pub const MAX_PROPERTIES_BYTES: usize = 2048;

/// Up to 100 events.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    pub events: Vec<Event>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Event {
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub step: Option<String>,
    /// When it happened in the browser; defaults to now. Must be within the
    /// last 7 days and not more than 5 minutes ahead.
    pub occurred_at: Option<DateTime<Utc>>,
    /// Free-form, at most 2 KiB serialized.
    #[serde(default)]
    pub properties: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    FlowStarted,
    StepViewed,
    StepCompleted,
    ValidationFailed,
    StepSkipped,
    FlowCompleted,
    Abandoned,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Accepted {
    pub accepted: usize,
}

/// Record a batch of funnel events
///
/// Answered at once; the batch is stored after the response, in one
/// statement. `occurredAt` must be within the last 7 days and at most 5
/// minutes ahead.
#[utoipa::path(post, path = PATH, operation_id = "recordEvents", tag = "analytics",
    request_body = Batch, security(("bearer" = []), ("sessionCookie" = []), ("sessionHeader" = [])), responses(
        (status = 202, description = "Accepted; stored after the response", body = Accepted),
        MalformedJson,
        OwnerRequired,
        (status = 413, description = "More than 100 events, or a body larger than `BODY_LIMIT_BYTES`", body = Problem, content_type = "application/problem+json"),
        JsonOnly,
        (status = 422, description = "The body has the wrong shape (e.g. an unknown event `type`), or events name an unknown step, a time out of range or oversized properties (`errors[]` points at `/events/<index>/...`)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many writes, or too many events (counted one by one, `RATE_LIMIT_EVENTS_PER_MINUTE*`); retry after `Retry-After` seconds", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Not accepted, retry after `Retry-After`: the event queue stayed full for 2 s, the database is unreachable, or the identity provider's keys are unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(level = "debug", skip_all)]
async fn handle(
    request: WizardRequest,
    ClientIp(client): ClientIp,
    background: Background,
    JsonBody(batch): JsonBody<Batch>,
) -> Result<impl IntoResponse, ApiError> {
    request.require_owner()?;
    if batch.events.len() > MAX_EVENTS {
        return Err(ApiError::PayloadTooLarge(format!(
            "at most {MAX_EVENTS} events per batch"
        )));
    }
    let flow = request.flow();
    let now = Utc::now();
    let mut errors = Vec::new();
    let mut rows = Vec::with_capacity(batch.events.len());
    for (index, event) in batch.events.iter().enumerate() {
        if let Some(step) = &event.step
            && flow.step(step).is_none()
        {
            errors.push(field_error(
                index,
                "step",
                ErrorCode::UnknownStep,
                "the flow has no such step",
            ));
        }
        let occurred_at = event.occurred_at.unwrap_or(now);
        if occurred_at > now + Duration::minutes(5) || occurred_at < now - Duration::days(7) {
            errors.push(field_error(
                index,
                "occurredAt",
                ErrorCode::OutOfRange,
                "must be within the last 7 days",
            ));
        }
        let properties = serde_json::Value::Object(event.properties.clone());
        if holds_nul(&properties) {
            errors.push(field_error(
                index,
                "properties",
                ErrorCode::ControlCharacter,
                "PostgreSQL cannot store the character U+0000",
            ));
        } else if properties.to_string().len() > MAX_PROPERTIES_BYTES {
            errors.push(field_error(
                index,
                "properties",
                ErrorCode::TooLarge,
                "properties are limited to 2 KiB",
            ));
        }
        rows.push(serde_json::json!({
            "flow_id": flow.id(),
            "flow_version": flow.version(),
            "step": event.step,
            "event_type": event.event_type,
            "occurred_at": occurred_at,
            "properties": properties,
        }));
    }
    if !errors.is_empty() {
        return Err(ApiError::UnprocessableEntity {
            detail: format!("{} event field(s) are invalid", errors.len()),
            errors,
        });
    }
    let accepted = rows.len();
    // Events are counted one by one, not per batch: an onboarding visitor
    // sends a few dozen in all.
    let checks = request.state.settings().rate_limits.checks(
        rate_limit::Kind::Events,
        Some(&request.caller),
        client,
    );
    let decision = request
        .state
        .rate_limiter()
        .enforce_counting(&checks, u32::try_from(accepted).unwrap_or(u32::MAX))
        .await
        .map_err(ApiError::RateLimited)?;
    if accepted > 0 {
        let receipt = request
            .state
            .events()
            .enqueue(request.rls(), serde_json::Value::Array(rows), accepted)
            .await?;
        // The writer logs a failed write; waiting here keeps the function
        // alive until the batch is stored.
        background.spawn(async move {
            let _ = receipt.stored().await;
        });
    }
    let mut response = (StatusCode::ACCEPTED, Json(Accepted { accepted })).into_response();
    if let Some(decision) = decision {
        apply_rate_limit_headers(&decision.headers(), response.headers_mut());
    }
    Ok(response)
}

/// Whether a key or string holds U+0000, which `jsonb` cannot store: caught
/// here, so a batch is never acknowledged and then refused by the database.
fn holds_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(text) => text.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(holds_nul),
        serde_json::Value::Object(fields) => fields
            .iter()
            .any(|(key, value)| key.contains('\0') || holds_nul(value)),
        _ => false,
    }
}

fn field_error(index: usize, field: &str, code: ErrorCode, message: &str) -> FieldError {
    FieldError {
        pointer: format!("/events/{index}/{field}"),
        code,
        message: message.into(),
        limit: None,
        step: None,
    }
}
