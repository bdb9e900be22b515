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

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ai::preferences::{self, AiMode, PreferencesInput};
use crate::ai::{
    Decision, NoSuggestionReason, SuggestError, SuggestRequest, SuggestionOutcome, suggest,
};
use crate::auth::Caller;
use crate::cache::rate_limit;
use crate::db::RlsContext;
use crate::error::{ApiError, FieldError};
use crate::http::extract::{CallerOf, IdempotencyKey, IfMatch, JsonBody, RawBody, parse_json};
use crate::routes::support::own_progress;
use crate::routes::support::{flags_of, invalidate_cached, require_owner, rollout_subject};
use crate::state::AppState;
use crate::wizard::RequestFingerprint;
use crate::wizard::save::WriteContext;
use crate::wizard::suggestions::decide_suggestion;

pub fn preferences_router() -> Router<AppState> {
    Router::new().route(
        "/api/onboarding/ai/preferences",
        get(read_preferences).put(write_preferences),
    )
}

pub fn suggest_router() -> Router<AppState> {
    Router::new().route("/api/onboarding/ai/suggest", post(request_suggestion))
}

pub fn accept_router() -> Router<AppState> {
    Router::new().route("/api/onboarding/ai/suggestions/{id}/accept", post(accept))
}

pub fn reject_router() -> Router<AppState> {
    Router::new().route("/api/onboarding/ai/suggestions/{id}/reject", post(reject))
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PreferencesView {
    /// `off` (the default) or `suggest`.
    pub mode: String,
    /// `step.field` → `off` | `suggest`, overriding `mode`.
    pub field_overrides: BTreeMap<String, String>,
    pub consent_version: Option<String>,
    pub chosen_at: Option<DateTime<Utc>>,
    /// Whether this deployment has an AI provider configured.
    pub available: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PreferencesBody {
    pub mode: String,
    #[serde(default)]
    pub field_overrides: BTreeMap<String, String>,
    pub consent_version: Option<String>,
}

fn mode(raw: &str, pointer: String) -> Result<AiMode, FieldError> {
    AiMode::parse(raw).ok_or(FieldError {
        pointer,
        code: "not_in_enum".into(),
        message: "must be `off` or `suggest`".into(),
        limit: Some(serde_json::json!(["off", "suggest"])),
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

async fn read_preferences(
    State(state): State<AppState>,
    CallerOf(caller): CallerOf,
) -> Result<Json<PreferencesView>, ApiError> {
    require_owner(&caller)?;
    let stored = state
        .db()
        .transaction(&RlsContext::for_caller(&caller), async |tx| {
            preferences::fetch_own(tx).await
        })
        .await?;
    Ok(Json(PreferencesView::of(stored, state.ai().is_some())))
}

async fn write_preferences(
    State(state): State<AppState>,
    CallerOf(caller): CallerOf,
    JsonBody(body): JsonBody<PreferencesBody>,
) -> Result<Json<PreferencesView>, ApiError> {
    require_owner(&caller)?;
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
    let consent = body
        .consent_version
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty());
    if wants_ai && consent.is_none() {
        errors.push(FieldError {
            pointer: "/consentVersion".into(),
            code: "required".into(),
            message: "opting in needs the version of the consent text the user accepted".into(),
            limit: None,
        });
    }
    let Some(chosen) = chosen.filter(|_| errors.is_empty()) else {
        return Err(ApiError::UnprocessableEntity {
            detail: "the preferences are invalid".into(),
            errors,
        });
    };
    let context = RlsContext::for_caller(&caller);
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuggestBody {
    pub step: String,
    pub field: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SuggestionView {
    pub id: uuid::Uuid,
    pub step: String,
    pub field: String,
    pub value: serde_json::Value,
    pub status: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SuggestReply {
    pub suggestion: Option<SuggestionView>,
    /// Why there is none: `invalid_output`, `refused` or `unavailable`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

async fn request_suggestion(
    State(state): State<AppState>,
    CallerOf(caller): CallerOf,
    headers: axum::http::HeaderMap,
    JsonBody(body): JsonBody<SuggestBody>,
) -> Result<Response, ApiError> {
    require_owner(&caller)?;
    // AI calls cost money and time: their own, tighter limits per user, session and IP.
    let checks = state.settings().rate_limits.checks(
        rate_limit::Kind::Ai,
        Some(&caller),
        rate_limit::client_ip(&headers),
    );
    let decision = state.rate_limiter().enforce(&checks).await?;
    let snapshot = state.flags().snapshot().await;
    let flow = snapshot.flow();
    let rollout = rollout_subject(&caller);
    let flags = flags_of(snapshot.config(), &rollout);
    let context = RlsContext::for_caller(&caller);
    let answers = own_progress(&state, &caller, flow.id())
        .await?
        .map(|(_, answers)| answers)
        .unwrap_or_default();
    let request = SuggestRequest {
        flow,
        step: &body.step,
        field: &body.field,
        answers: &answers,
        flags: &flags,
    };
    let outcome = suggest(state.db(), &context, state.ai(), &request)
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
                    code: "not_enhanceable".into(),
                    message: "this field does not offer AI suggestions".into(),
                    limit: None,
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
        decision.headers().apply(response.headers_mut());
    }
    Ok(response)
}

#[derive(Debug, Deserialize)]
pub struct IdQuery {
    id: Option<String>,
}

/// The id from the path, or from `?id=` when Vercel routed the dynamic segment.
fn suggestion_id(path: String, query: IdQuery) -> Result<uuid::Uuid, ApiError> {
    let raw = if path == "[id]" {
        query.id.unwrap_or_default()
    } else {
        path
    };
    raw.parse()
        .map_err(|_| ApiError::NotFound("no such suggestion".into()))
}

#[allow(clippy::too_many_arguments)]
async fn decide_route(
    state: AppState,
    caller: Caller,
    if_match: IfMatch,
    key: Option<String>,
    id: uuid::Uuid,
    decision: Decision,
    body: &[u8],
) -> Result<Response, ApiError> {
    require_owner(&caller)?;
    if !body.is_empty() {
        let _: serde_json::Map<String, serde_json::Value> = parse_json(body)?;
    }
    let snapshot = state.flags().snapshot().await;
    let rollout = rollout_subject(&caller);
    let flags = flags_of(snapshot.config(), &rollout);
    let verb = if decision == Decision::Accept {
        "accept"
    } else {
        "reject"
    };
    let fingerprint = RequestFingerprint::new(
        "POST",
        format!("/api/onboarding/ai/suggestions/{id}/{verb}"),
        body,
    );
    let reply = decide_suggestion(
        state.db(),
        &RlsContext::for_caller(&caller),
        WriteContext {
            flow: snapshot.flow(),
            flags: &flags,
            if_match,
            authenticated: matches!(caller, Caller::User(_)),
            paths: &state.settings().http.redirect_paths,
        },
        id,
        decision,
        key.as_deref(),
        &fingerprint,
    )
    .await?;
    if decision == Decision::Accept {
        invalidate_cached(&state, &caller).await;
    }
    Ok(reply.into_response())
}

async fn accept(
    State(state): State<AppState>,
    CallerOf(caller): CallerOf,
    if_match: IfMatch,
    IdempotencyKey(key): IdempotencyKey,
    Path(path): Path<String>,
    Query(query): Query<IdQuery>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let id = suggestion_id(path, query)?;
    decide_route(state, caller, if_match, key, id, Decision::Accept, &body).await
}

async fn reject(
    State(state): State<AppState>,
    CallerOf(caller): CallerOf,
    IdempotencyKey(key): IdempotencyKey,
    Path(path): Path<String>,
    Query(query): Query<IdQuery>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let id = suggestion_id(path, query)?;
    decide_route(
        state,
        caller,
        IfMatch::Absent,
        key,
        id,
        Decision::Reject,
        &body,
    )
    .await
}
