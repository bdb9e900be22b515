//! AI enhancement, optional for the wizard: with AI off or failing, every other
//! route behaves the same.
//!
//! - `GET`/`PUT /api/onboarding/ai/preferences`: the caller's choice (off by
//!   default; `suggest` needs the consent text version they were shown).
//! - `POST /api/onboarding/ai/suggest` `{step, field}`: a validated suggestion
//!   stored as `pending` (201), or `{"suggestion": null, "reason": …}` (200)
//!   when the provider fails or its output stays invalid. Rate limited.
//! - `POST /api/onboarding/ai/suggestions/{id}/accept` writes the value into
//!   the answers (`If-Match` as for a save); `…/reject` records the rejection.

use std::collections::BTreeMap;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ai::preferences::{self, AiMode, PreferencesInput};
use crate::cache::rate_limit;
use crate::http::context::WizardRequest;
use crate::http::error::{ApiError, Problem, apply_rate_limit_headers};
use crate::http::extract::{
    IdempotencyKey, IfMatch, JsonBody, RawBody, Segment, SegmentName, etag, parse_json,
};
use crate::http::idempotency::{Reply, RequestFingerprint};
use crate::http::rate_limit::ClientIp;
use crate::routes::problems::{
    DatabaseProblems, JsonOnly, MalformedJson, OwnerRequired, StaleVersion, UnknownSuggestion,
    WriteLimits,
};
use crate::state::AppState;
use crate::wizard::save::ExpectedVersion;
use crate::wizard::suggest::{
    Decision, NoSuggestionReason, SuggestError, SuggestRequest, SuggestionOutcome, suggest,
};
use crate::wizard::suggestions::{Decided, decide_suggestion};
use crate::wizard::validation::{ErrorCode, FieldError};

/// The database's own bound on `ai_preferences.consent_version`.
const MAX_CONSENT_VERSION_CHARS: usize = 50;
/// `step.field`: two flow ids (at most 100 characters each) and a dot.
const MAX_OVERRIDE_KEY_CHARS: usize = 201;

const PREFERENCES_PATH: &str = "/api/onboarding/ai/preferences";
const SUGGEST_PATH: &str = "/api/onboarding/ai/suggest";
const ACCEPT_PATH: &str = "/api/onboarding/ai/suggestions/{id}/accept";
const REJECT_PATH: &str = "/api/onboarding/ai/suggestions/{id}/reject";

pub fn preferences_router() -> Router<AppState> {
    Router::new().route(
        PREFERENCES_PATH,
        get(read_preferences).put(write_preferences),
    )
}

pub fn suggest_router() -> Router<AppState> {
    Router::new().route(SUGGEST_PATH, post(request_suggestion))
}

pub fn accept_router() -> Router<AppState> {
    Router::new().route(ACCEPT_PATH, post(accept))
}

pub fn reject_router() -> Router<AppState> {
    Router::new().route(REJECT_PATH, post(reject))
}

/// `off` (nothing is sent to a provider) or `suggest`: the schema of every
/// AI mode (the Rust side keeps strings, so an unknown value is a 422 with a
/// pointer rather than a body-shape error).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum AiModeName {
    Off,
    Suggest,
}

/// Why a suggestion request produced no suggestion.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum NoSuggestionReasonName {
    /// The provider's output stayed invalid for the field.
    InvalidOutput,
    /// The provider declined.
    Refused,
    /// The provider failed, timed out, or its circuit is open.
    Unavailable,
}

/// The status of a suggestion just made.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum PendingStatus {
    Pending,
}

/// The caller's AI choice (per identity: a session's choice does not follow it into an account).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreferencesView {
    /// `off` (the default) or `suggest`.
    #[schema(value_type = AiModeName)]
    pub mode: String,
    /// `step.field` → `off` | `suggest`, overriding `mode`.
    #[schema(value_type = BTreeMap<String, AiModeName>)]
    pub field_overrides: BTreeMap<String, String>,
    /// The version of the consent text the user accepted.
    #[schema(required = true)]
    pub consent_version: Option<String>,
    #[schema(required = true)]
    pub chosen_at: Option<DateTime<Utc>>,
    /// Whether this deployment has an AI provider configured.
    pub available: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PreferencesBody {
    /// `off` or `suggest`.
    #[schema(value_type = AiModeName)]
    pub mode: String,
    /// `step.field` → `off` | `suggest`, overriding `mode`.
    #[serde(default)]
    #[schema(value_type = BTreeMap<String, AiModeName>)]
    pub field_overrides: BTreeMap<String, String>,
    /// Required to opt in anywhere: the version of the consent text the user accepted.
    pub consent_version: Option<String>,
}

fn mode(raw: &str, pointer: String) -> Result<AiMode, FieldError> {
    AiMode::parse(raw).ok_or(FieldError {
        pointer,
        code: ErrorCode::NotInEnum,
        message: "must be `off` or `suggest`".into(),
        limit: Some(serde_json::json!(["off", "suggest"])),
        step: None,
    })
}

impl PreferencesView {
    fn of(stored: Option<preferences::AiPreferences>, available: bool) -> Self {
        match stored {
            Some(stored) => Self {
                mode: stored.mode.as_str().into(),
                field_overrides: stored
                    .field_overrides
                    .iter()
                    .map(|(field, mode)| (field.clone(), mode.as_str().to_string()))
                    .collect(),
                consent_version: stored.consent_version,
                chosen_at: Some(stored.chosen_at),
                available,
            },
            None => Self {
                mode: "off".into(),
                field_overrides: BTreeMap::new(),
                consent_version: None,
                chosen_at: None,
                available,
            },
        }
    }
}

/// The caller's AI preferences
///
/// Off by default; `available` says whether this deployment has a provider.
#[utoipa::path(get, path = PREFERENCES_PATH, operation_id = "getAiPreferences", tag = "ai",
    security(("bearer" = []), ("sessionCookie" = []), ("sessionHeader" = [])), responses(
        (status = 200, description = "The stored choice, or the default (`off`)", body = PreferencesView),
        OwnerRequired,
        DatabaseProblems,
    )
)]
async fn read_preferences(request: WizardRequest) -> Result<Json<PreferencesView>, ApiError> {
    request.require_owner()?;
    let state = &request.state;
    let stored = state
        .db()
        .transaction(&request.rls(), async |tx| preferences::fetch_own(tx).await)
        .await?;
    Ok(Json(PreferencesView::of(stored, state.ai().is_some())))
}

/// Choose AI suggestions on or off
///
/// Opting in (`suggest` as `mode` or for any field) needs the version of the
/// consent text the user was shown.
#[utoipa::path(put, path = PREFERENCES_PATH, operation_id = "setAiPreferences", tag = "ai",
    request_body = PreferencesBody, security(("bearer" = []), ("sessionCookie" = []), ("sessionHeader" = [])), responses(
        (status = 200, description = "Stored", body = PreferencesView),
        MalformedJson,
        OwnerRequired,
        WriteLimits,
        JsonOnly,
        (status = 422, description = "The body has the wrong shape, a mode is not `off` or `suggest`, or opting in without `consentVersion`", body = Problem, content_type = "application/problem+json"),
        DatabaseProblems,
    )
)]
async fn write_preferences(
    request: WizardRequest,
    JsonBody(body): JsonBody<PreferencesBody>,
) -> Result<Json<PreferencesView>, ApiError> {
    request.require_owner()?;
    let state = &request.state;
    let mut errors = Vec::new();
    let chosen = mode(&body.mode, "/mode".into())
        .map_err(|e| errors.push(e))
        .ok();
    let mut overrides = BTreeMap::new();
    for (field, raw) in &body.field_overrides {
        match mode(raw, format!("/fieldOverrides/{field}")) {
            Ok(mode) => {
                overrides.insert(field.clone(), mode);
            }
            Err(error) => errors.push(error),
        }
    }
    let wants_ai =
        chosen == Some(AiMode::Suggest) || overrides.values().any(|m| *m == AiMode::Suggest);
    for field in overrides.keys() {
        if field.chars().count() > MAX_OVERRIDE_KEY_CHARS || field.chars().any(char::is_control) {
            errors.push(FieldError {
                pointer: "/fieldOverrides".into(),
                code: ErrorCode::UnknownField,
                message: format!(
                    "keys are `step.field` names: at most {MAX_OVERRIDE_KEY_CHARS} characters, no control characters"
                ),
                limit: Some(serde_json::json!(MAX_OVERRIDE_KEY_CHARS)),
                step: None,
            });
            break;
        }
    }
    let consent = body
        .consent_version
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty());
    if let Some(consent) = &consent {
        if consent.chars().count() > MAX_CONSENT_VERSION_CHARS {
            errors.push(FieldError {
                pointer: "/consentVersion".into(),
                code: ErrorCode::TooLong,
                message: format!("at most {MAX_CONSENT_VERSION_CHARS} characters"),
                limit: Some(serde_json::json!(MAX_CONSENT_VERSION_CHARS)),
                step: None,
            });
        } else if consent.chars().any(char::is_control) {
            errors.push(FieldError {
                pointer: "/consentVersion".into(),
                code: ErrorCode::ControlCharacter,
                message: "must not contain control characters".into(),
                limit: None,
                step: None,
            });
        }
    }
    if wants_ai && consent.is_none() {
        errors.push(FieldError {
            pointer: "/consentVersion".into(),
            code: ErrorCode::Required,
            message: "opting in needs the version of the consent text the user accepted".into(),
            limit: None,
            step: None,
        });
    }
    let Some(chosen) = chosen.filter(|_| errors.is_empty()) else {
        return Err(ApiError::UnprocessableEntity {
            detail: "the preferences are invalid".into(),
            errors,
        });
    };
    let context = request.rls();
    let input = PreferencesInput {
        mode: chosen,
        field_overrides: overrides,
        consent_version: consent,
    };
    let stored = state
        .db()
        .transaction(&context, async |tx| {
            preferences::set_own(tx, context.role(), &input).await
        })
        .await?;
    Ok(Json(PreferencesView::of(
        Some(stored),
        state.ai().is_some(),
    )))
}

/// The field to suggest an answer for.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuggestBody {
    pub step: String,
    pub field: String,
}

/// A validated suggestion, not yet in the answers.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SuggestionView {
    /// For `…/suggestions/{id}/accept` and `…/reject`.
    pub id: uuid::Uuid,
    pub step: String,
    pub field: String,
    /// A value that passes the field's validation.
    pub value: serde_json::Value,
    /// `pending`.
    #[schema(value_type = PendingStatus)]
    pub status: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SuggestReply {
    #[schema(required = true)]
    pub suggestion: Option<SuggestionView>,
    /// Why there is none: `invalid_output`, `refused` or `unavailable`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<NoSuggestionReasonName>)]
    pub reason: Option<String>,
}

/// Ask the AI provider for a suggested answer
///
/// Only for fields that offer it, after the caller opted in. The suggestion
/// is validated like an answer and stored as `pending`; it reaches the
/// answers only when accepted. A provider failure or output that stays
/// invalid is 200 with no suggestion, never an error page.
#[utoipa::path(post, path = SUGGEST_PATH, operation_id = "requestSuggestion", tag = "ai",
    request_body = SuggestBody, security(("bearer" = []), ("sessionCookie" = []), ("sessionHeader" = [])), responses(
        (status = 200, description = "No suggestion: `reason` says why (`invalid_output`, `refused`, `unavailable`)", body = SuggestReply),
        (status = 201, description = "A pending suggestion", body = SuggestReply),
        MalformedJson,
        OwnerRequired,
        (status = 403, description = "Not opted in for this field, or the organization does not allow AI suggestions", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "AI suggestions are off on this deployment, or the field has no published prompt", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is larger than `BODY_LIMIT_BYTES`", body = Problem, content_type = "application/problem+json"),
        JsonOnly,
        (status = 422, description = "The body has the wrong shape, or the field does not offer AI suggestions", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many writes or AI calls; retry after `Retry-After` seconds", body = Problem, content_type = "application/problem+json"),
        DatabaseProblems,
    )
)]
async fn request_suggestion(
    request: WizardRequest,
    ClientIp(client): ClientIp,
    JsonBody(body): JsonBody<SuggestBody>,
) -> Result<Response, ApiError> {
    request.require_owner()?;
    let state = &request.state;
    // AI calls cost money and time: their own, tighter limits per user, session and IP.
    let checks =
        state
            .settings()
            .rate_limits
            .checks(rate_limit::Kind::Ai, Some(&request.caller), client);
    let decision = state
        .rate_limiter()
        .enforce(&checks)
        .await
        .map_err(ApiError::RateLimited)?;
    let flow = request.flow();
    let flags = request.flags();
    // Every answer: the prompt may quote any of them.
    let answers = request.reader(&flags).own_answers().await?;
    let suggestion = SuggestRequest {
        flow,
        step: &body.step,
        field: &body.field,
        answers: &answers,
        flags: &flags,
    };
    let outcome = suggest(state.db(), &request.rls(), state.ai(), &suggestion)
        .await
        .map_err(|error| match error {
            SuggestError::Off => {
                ApiError::Conflict("AI suggestions are off on this deployment".into())
            }
            SuggestError::NotOptedIn => {
                ApiError::Forbidden("opt in to AI suggestions for this field first".into())
            }
            SuggestError::OrganizationForbids => {
                ApiError::Forbidden("your organization does not allow AI suggestions".into())
            }
            SuggestError::NotEnhanceable(key) => ApiError::UnprocessableEntity {
                detail: format!("{key} does not offer AI suggestions"),
                errors: vec![FieldError {
                    pointer: "/field".into(),
                    code: ErrorCode::NotEnhanceable,
                    message: "this field does not offer AI suggestions".into(),
                    limit: None,
                    step: None,
                }],
            },
            SuggestError::NoPrompt(key) => {
                ApiError::Conflict(format!("no published prompt for {key}"))
            }
            SuggestError::Database(error) => ApiError::from(error),
        })?;
    let response = match outcome {
        SuggestionOutcome::Suggested { id, value } => (
            StatusCode::CREATED,
            Json(SuggestReply {
                suggestion: Some(SuggestionView {
                    id,
                    step: body.step,
                    field: body.field,
                    value,
                    status: "pending".into(),
                }),
                reason: None,
            }),
        ),
        SuggestionOutcome::NoSuggestion { reason } => {
            let reason = match reason {
                NoSuggestionReason::InvalidOutput => "invalid_output",
                NoSuggestionReason::Refused => "refused",
                NoSuggestionReason::Unavailable(_) => "unavailable",
            };
            (
                StatusCode::OK,
                Json(SuggestReply {
                    suggestion: None,
                    reason: Some(reason.into()),
                }),
            )
        }
    };
    let mut response = response.into_response();
    if let Some(decision) = decision {
        apply_rate_limit_headers(&decision.headers(), response.headers_mut());
    }
    Ok(response)
}

/// The `[id]` of `api/onboarding/ai/suggestions/[id]/accept.rs` and `reject.rs`.
pub struct IdSegment;

impl SegmentName for IdSegment {
    const NAME: &'static str = "id";
}

/// The suggestion the segment names; one that is not a UUID is a 404.
fn suggestion_id(segment: String) -> Result<uuid::Uuid, ApiError> {
    segment
        .parse()
        .map_err(|_| ApiError::NotFound("no such suggestion".into()))
}

async fn decide_route(
    request: WizardRequest,
    expected: ExpectedVersion,
    key: Option<String>,
    id: uuid::Uuid,
    decision: Decision,
    body: &[u8],
) -> Result<Response, ApiError> {
    request.require_owner()?;
    if !body.is_empty() {
        let _: serde_json::Map<String, serde_json::Value> = parse_json(body)?;
    }
    let flags = request.flags();
    let path = if decision == Decision::Accept {
        ACCEPT_PATH
    } else {
        REJECT_PATH
    };
    let fingerprint = RequestFingerprint::new("POST", path.replace("{id}", &id.to_string()), body);
    let write = request.write_context(&flags, expected);
    request
        .write_once(key.as_deref(), &fingerprint, async |tx| {
            let decided = decide_suggestion(tx, write, id, decision).await?;
            let reply = Reply::json(StatusCode::OK, &decided);
            Ok(match &decided.saved {
                Some(saved) => reply.with_header(header::ETAG, etag(saved.step.version)),
                None => reply,
            })
        })
        .await
}

/// Accept a suggestion: write its value into the answers
///
/// Under the same rules as a save (`If-Match` with the step's version once it
/// has an answer). Accepting again answers with the step as it is now. Any
/// body must be a JSON object and is otherwise ignored.
#[utoipa::path(post, path = ACCEPT_PATH, operation_id = "acceptSuggestion", tag = "ai",
    params(("id" = uuid::Uuid, Path, description = "The suggestion's id"), IfMatch, IdempotencyKey),
    security(("bearer" = []), ("sessionCookie" = []), ("sessionHeader" = [])), responses(
        (status = 200, description = "Accepted: `saved` is the step with its new version (and `ETag`); for a repeat, `step` is the step now", body = Decided,
            headers(("ETag" = String, description = "The step's new version, quoted, when this request wrote it"))),
        (status = 400, description = "A body that is not JSON, a malformed `If-Match` or `Idempotency-Key`, or an id segment or query string that does not decode", body = Problem, content_type = "application/problem+json"),
        OwnerRequired,
        UnknownSuggestion,
        (status = 409, description = "The suggestion was rejected, belongs to another flow, or onboarding is already completed", body = Problem, content_type = "application/problem+json"),
        StaleVersion,
        WriteLimits,
        (status = 422, description = "A body that is not a JSON object, a value that no longer validates with the other answers, or the `Idempotency-Key` was used for a different request", body = Problem, content_type = "application/problem+json"),
        (status = 428, description = "The step has an answer and the request sent no `If-Match`", body = Problem, content_type = "application/problem+json"),
        DatabaseProblems,
    )
)]
async fn accept(
    request: WizardRequest,
    IfMatch(expected): IfMatch,
    IdempotencyKey(key): IdempotencyKey,
    Segment(segment, _): Segment<IdSegment>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let id = suggestion_id(segment)?;
    decide_route(request, expected, key, id, Decision::Accept, &body).await
}

/// Reject a suggestion
///
/// Records the decision; the answers are not touched. Rejecting again is
/// harmless. Any body must be a JSON object and is otherwise ignored.
#[utoipa::path(post, path = REJECT_PATH, operation_id = "rejectSuggestion", tag = "ai",
    params(("id" = uuid::Uuid, Path, description = "The suggestion's id"), IdempotencyKey),
    security(("bearer" = []), ("sessionCookie" = []), ("sessionHeader" = [])), responses(
        (status = 200, description = "Rejected", body = Decided),
        (status = 400, description = "A body that is not JSON, a malformed `Idempotency-Key`, or an id segment or query string that does not decode", body = Problem, content_type = "application/problem+json"),
        OwnerRequired,
        UnknownSuggestion,
        (status = 409, description = "The suggestion was already accepted", body = Problem, content_type = "application/problem+json"),
        WriteLimits,
        (status = 422, description = "A body that is not a JSON object, or the `Idempotency-Key` was used for a different request", body = Problem, content_type = "application/problem+json"),
        DatabaseProblems,
    )
)]
async fn reject(
    request: WizardRequest,
    IdempotencyKey(key): IdempotencyKey,
    Segment(segment, _): Segment<IdSegment>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let id = suggestion_id(segment)?;
    decide_route(
        request,
        ExpectedVersion::Absent,
        key,
        id,
        Decision::Reject,
        &body,
    )
    .await
}
