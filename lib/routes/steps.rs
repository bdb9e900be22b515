//! `GET` and `PUT /api/onboarding/steps/{step}`: one step's saved answers
//! (with `ETag`), and saving a draft or a completed answer (`If-Match`).
//!
//! Vercel routes the function file `api/onboarding/steps/[step].rs` with the
//! segment in `?step=`, so both `/steps/profile` and `/steps/[step]?step=profile`
//! name the same step.

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use crate::auth::Caller;
use crate::db::{RlsContext, answers};
use crate::error::ApiError;
use crate::http::extract::{CallerOf, IdempotencyKey, IfMatch, JsonBytes, etag, parse_json};
use crate::routes::support::invalidate_cached;
use crate::routes::support::{flags_of, require_owner, rollout_subject};
use crate::state::AppState;
use crate::wizard::RequestFingerprint;
use crate::wizard::save::{Completion, StepAnswer, StepView, WriteContext, save_step};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/onboarding/steps/{step}", get(read).put(write))
}

#[derive(Debug, Deserialize)]
pub struct StepQuery {
    step: Option<String>,
}

/// The body of a save.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SaveBody {
    /// The step's answers, keyed by field name.
    pub answers: serde_json::Value,
    /// `true` to complete the step (required fields enforced); `false` or absent saves a draft.
    #[serde(default)]
    pub complete: bool,
}

/// The step named by the path, or by `?step=` when Vercel routed the dynamic segment.
fn step_name(path: String, query: StepQuery) -> Result<String, ApiError> {
    let name = if path == "[step]" {
        query.step.unwrap_or_default()
    } else {
        path
    };
    if name.is_empty() {
        return Err(ApiError::NotFound("no step named".into()));
    }
    Ok(name)
}

fn unknown_step(step: &str) -> ApiError {
    ApiError::NotFound(format!(
        "the flow has no step `{}`",
        step.chars().take(100).collect::<String>()
    ))
}

#[tracing::instrument(skip_all)]
async fn read(
    State(state): State<AppState>,
    CallerOf(caller): CallerOf,
    Path(path): Path<String>,
    Query(query): Query<StepQuery>,
) -> Result<Response, ApiError> {
    let step = step_name(path, query)?;
    let config = state.flags().snapshot().await;
    let flow = config.flow();
    if flow.step(&step).is_none() {
        return Err(unknown_step(&step));
    }
    let stored = if caller.user().is_some() || caller.session().is_some() {
        answers::fetch_own_in_one_trip(
            state.db(),
            &RlsContext::for_caller(&caller),
            flow.id(),
            &step,
        )
        .await?
    } else {
        None
    };
    let view = StepView::upgraded(&step, stored.as_ref(), flow);
    let tag = etag(view.version);
    Ok(([(header::ETAG, tag)], Json(view)).into_response())
}

#[tracing::instrument(skip_all)]
#[allow(clippy::too_many_arguments)]
async fn write(
    State(state): State<AppState>,
    CallerOf(caller): CallerOf,
    if_match: IfMatch,
    IdempotencyKey(key): IdempotencyKey,
    Path(path): Path<String>,
    Query(query): Query<StepQuery>,
    JsonBytes(body): JsonBytes,
) -> Result<Response, ApiError> {
    let step = step_name(path, query)?;
    require_owner(&caller)?;
    let config = state.flags().snapshot().await;
    let flow = config.flow();
    if flow.step(&step).is_none() {
        return Err(unknown_step(&step));
    }
    let parsed: SaveBody = parse_json(&body)?;
    let rollout = rollout_subject(&caller);
    let flags = flags_of(config.config(), &rollout);
    let fingerprint =
        RequestFingerprint::new("PUT", format!("/api/onboarding/steps/{step}"), &body);
    let reply = save_step(
        state.db(),
        &RlsContext::for_caller(&caller),
        WriteContext {
            flow,
            flags: &flags,
            if_match,
            authenticated: matches!(caller, Caller::User(_)),
            paths: &state.settings().http.redirect_paths,
        },
        StepAnswer {
            step: &step,
            answers: &parsed.answers,
            completion: if parsed.complete {
                Completion::Complete
            } else {
                Completion::Draft
            },
            merge: false,
        },
        key.as_deref(),
        &fingerprint,
    )
    .await?;
    invalidate_cached(&state, &caller).await;
    Ok(reply.into_response())
}
