//! `GET` and `PUT /api/onboarding/steps/{step}`: one step's saved answers
//! (with `ETag`), and saving a draft or a completed answer (`If-Match`).
//!
//! Vercel routes the function file `api/onboarding/steps/[step].rs` with the
//! segment in `?step=`, so both `/steps/profile` and `/steps/[step]?step=profile`
//! name the same step.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::db::answers;
use crate::http::context::WizardRequest;
use crate::http::error::{ApiError, Problem};
use crate::http::extract::{
    IdempotencyKey, IfMatch, JsonBytes, Segment, SegmentName, etag, parse_json,
};
use crate::http::idempotency::{Reply, RequestFingerprint};
use crate::routes::problems::{
    CredentialRejected, DatabaseProblems, JsonOnly, OwnerRequired, StaleVersion, UnknownStep,
    WriteLimits,
};
use crate::state::AppState;
use crate::wizard::save::{Completion, Saved, StepView, StepWrite, write_answer};

const PATH: &str = "/api/onboarding/steps/{step}";

pub fn router() -> Router<AppState> {
    Router::new().route(PATH, get(read).put(write))
}

/// The `[step]` of `api/onboarding/steps/[step].rs`.
pub struct StepSegment;

impl SegmentName for StepSegment {
    const NAME: &'static str = "step";
}

/// The body of a save.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SaveBody {
    /// The step's answers, keyed by field name.
    #[schema(value_type = Object)]
    pub answers: serde_json::Value,
    /// `true` to complete the step (required fields enforced); `false` or absent saves a draft.
    #[serde(default)]
    pub complete: bool,
}

/// The step the segment names; none is a 404.
fn step_name(name: String) -> Result<String, ApiError> {
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

/// One step's saved answers and their version
///
/// `version` is 0 (and `answers` null) before the first save; the `ETag`
/// carries the version to send back in `If-Match`. Answers saved under an
/// older flow version are upgraded by its declared rules; what they could not
/// carry over is listed in `needsAttention`.
#[utoipa::path(get, path = PATH, operation_id = "getStep", tag = "onboarding",
    params(("step" = String, Path, description = "Step id from the flow")),
    security((), ("bearer" = []), ("sessionCookie" = []), ("sessionHeader" = [])), responses(
        (status = 200, description = "The step's answer", body = StepView,
            headers(("ETag" = String, description = "The version, quoted: `\"3\"`"))),
        (status = 400, description = "The step segment or the query string does not decode", body = Problem, content_type = "application/problem+json"),
        CredentialRejected,
        UnknownStep,
        DatabaseProblems,
    )
)]
#[tracing::instrument(level = "debug", skip_all)]
async fn read(
    request: WizardRequest,
    Segment(segment, _): Segment<StepSegment>,
) -> Result<Response, ApiError> {
    let step = step_name(segment)?;
    let flow = request.flow();
    if flow.step(&step).is_none() {
        return Err(unknown_step(&step));
    }
    let stored = if request.caller.user().is_some() || request.caller.session().is_some() {
        answers::fetch_own_in_one_trip(request.state.db(), &request.rls(), flow.id(), &step).await?
    } else {
        None
    };
    let view = StepView::upgraded(&step, stored.as_ref(), flow);
    let tag = etag(view.version);
    Ok(([(header::ETAG, tag)], Json(view)).into_response())
}

/// Save a draft or complete a step
///
/// A draft may leave required fields out; `complete: true` enforces them.
/// Every field error is reported at once (422). Overwriting an answer needs
/// `If-Match` with its version: without it 428, stale 412, never a lost
/// update.
#[utoipa::path(put, path = PATH, operation_id = "saveStep", tag = "onboarding",
    params(("step" = String, Path, description = "Step id from the flow"), IfMatch, IdempotencyKey),
    request_body = SaveBody, security(("bearer" = []), ("sessionCookie" = []), ("sessionHeader" = [])), responses(
        (status = 200, description = "Saved: the step with its new version, and the caller's new status", body = Saved,
            headers(("ETag" = String, description = "The new version, quoted: `\"4\"`"))),
        (status = 400, description = "Malformed JSON, a malformed `If-Match` or `Idempotency-Key`, or a step segment or query string that does not decode", body = Problem, content_type = "application/problem+json"),
        OwnerRequired,
        UnknownStep,
        (status = 409, description = "Onboarding is already completed; its answers are final", body = Problem, content_type = "application/problem+json"),
        StaleVersion,
        WriteLimits,
        JsonOnly,
        (status = 422, description = "The body has the wrong shape or the answers are invalid (`errors[]` lists each field), or the `Idempotency-Key` was used for a different request", body = Problem, content_type = "application/problem+json"),
        (status = 428, description = "The step has an answer and the write sent no `If-Match`", body = Problem, content_type = "application/problem+json"),
        DatabaseProblems,
    )
)]
#[tracing::instrument(level = "debug", skip_all)]
async fn write(
    request: WizardRequest,
    IfMatch(expected): IfMatch,
    IdempotencyKey(key): IdempotencyKey,
    Segment(segment, _): Segment<StepSegment>,
    JsonBytes(body): JsonBytes,
) -> Result<Response, ApiError> {
    let step = step_name(segment)?;
    request.require_owner()?;
    let flow = request.flow();
    if flow.step(&step).is_none() {
        return Err(unknown_step(&step));
    }
    let parsed: SaveBody = parse_json(&body)?;
    let flags = request.flags();
    let context = request.write_context(&flags, expected);
    let answer = StepWrite {
        step: &step,
        answers: &parsed.answers,
        completion: if parsed.complete {
            Completion::Complete
        } else {
            Completion::Draft
        },
        merge: false,
    };
    let fingerprint = RequestFingerprint::new("PUT", PATH.replace("{step}", &step), &body);
    request
        .write_once(key.as_deref(), &fingerprint, async |tx| {
            let saved = write_answer(tx, &context, answer).await?;
            Ok(saved_reply(&saved))
        })
        .await
}

/// A saved step, with its version as the `ETag`.
pub fn saved_reply(saved: &Saved) -> Reply {
    Reply::json(StatusCode::OK, saved).with_header(header::ETAG, etag(saved.step.version))
}
