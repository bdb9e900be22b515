//! The suggestion pipeline, as one library call for the routes.
//!
//! 1. The field must exist, be visible and be `aiEnhanceable`.
//! 2. In one transaction (the caller's RLS context): their preferences, their
//!    organization's policy and the `production` prompt. Not opted in, or
//!    forbidden: a typed refusal, and nothing leaves the backend.
//! 3. Render the prompt from the declared variables only; call the provider.
//! 4. Validate the output with the same validation as user answers
//!    ([`crate::wizard::validation::validate_step`], as a draft, on a step
//!    object holding just the field); on invalid output, one repair attempt
//!    that sends the errors back.
//! 5. Store the suggestion (prompt version, model, field names sent, latency,
//!    tokens, status) in a second transaction. No transaction stays open while
//!    the model thinks.
//!
//! Invalid output, a refusal or a provider failure is a
//! [`SuggestionOutcome::NoSuggestion`], never an error: the wizard goes on
//! without a suggestion.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::{Value, json};
use tokio_postgres::Row;
use tokio_postgres::types::Type;
use uuid::Uuid;

use crate::ai::preferences;
use crate::ai::prompts::{self, Label, Prompt};
use crate::ai::provider::{AiClient, AiError, Completion, CompletionRequest};
use crate::db::{Database, DbError, DbRole, RlsContext, Statement, Tx};
use crate::wizard::flow::{AnswerMap, Flow};
use crate::wizard::validation::{self, ErrorCode, Submission};

/// Longest previous output echoed back in a repair request, in characters.
const MAX_ECHOED_OUTPUT: usize = 2000;

/// What the caller asks a suggestion for.
pub struct SuggestRequest<'a> {
    pub flow: &'a Flow,
    pub step: &'a str,
    pub field: &'a str,
    /// The caller's current answers (this step's draft included), step id → object.
    pub answers: &'a AnswerMap,
    pub flags: &'a (dyn Fn(&str) -> bool + Sync),
}

/// The result of a suggestion request that was allowed to run.
#[derive(Debug, Clone, PartialEq)]
pub enum SuggestionOutcome {
    /// A valid value for the field, stored as a `pending` suggestion.
    Suggested { id: Uuid, value: Value },
    /// Nothing to offer; the wizard carries on.
    NoSuggestion { reason: NoSuggestionReason },
}

/// Why there is no suggestion.
#[derive(Debug, Clone, PartialEq)]
pub enum NoSuggestionReason {
    /// The output failed validation, also after the repair attempt (stored as `invalid`).
    InvalidOutput,
    /// The model declined (stored as `invalid`).
    Refused,
    /// Timeout, rate limit, provider error, network, or an open circuit.
    Unavailable(AiError),
}

/// Why a suggestion request was refused before anything was sent.
#[derive(Debug, thiserror::Error)]
pub enum SuggestError {
    /// AI is not configured.
    #[error("AI suggestions are off")]
    Off,
    /// The caller has not opted in (for this field), or gave no consent.
    #[error("the caller has not opted in to AI suggestions for this field")]
    NotOptedIn,
    /// The caller's organization forbids AI.
    #[error("the organization does not allow AI suggestions")]
    OrganizationForbids,
    /// Unknown step or field, hidden, or not `aiEnhanceable`.
    #[error("{0} does not offer AI suggestions")]
    NotEnhanceable(String),
    /// No published prompt is labelled `production` for this field.
    #[error("no production prompt for {0}")]
    NoPrompt(String),
    #[error(transparent)]
    Database(#[from] DbError),
}

/// Asks for a suggestion for one field. See the module docs for the steps.
#[tracing::instrument(level = "debug", skip_all, fields(step = request.step, field = request.field, outcome))]
pub async fn suggest(
    db: &Database,
    context: &RlsContext,
    ai: Option<&AiClient>,
    request: &SuggestRequest<'_>,
) -> Result<SuggestionOutcome, SuggestError> {
    let key = format!("{}.{}", request.step, request.field);
    check_enhanceable(request).map_err(|()| SuggestError::NotEnhanceable(key.clone()))?;
    let ai = ai.ok_or(SuggestError::Off)?;

    let (preferences, allowed, prompt) = db
        .transaction(context, async |tx| {
            let preferences = preferences::fetch_own(tx).await?;
            // Anonymous visitors belong to no organization (and may not read policies).
            let allowed = match context.role() {
                DbRole::Authenticated => preferences::organization_allows(tx).await?,
                // The login role reads no preferences or prompts; it never gets here.
                DbRole::Anonymous | DbRole::Login => true,
            };
            let prompt = prompts::resolve(tx, &key, Label::Production).await?;
            Ok::<_, DbError>((preferences, allowed, prompt))
        })
        .await?;
    if !preferences.is_some_and(|p| p.allows(request.step, request.field)) {
        return Err(SuggestError::NotOptedIn);
    }
    if !allowed {
        return Err(SuggestError::OrganizationForbids);
    }
    let prompt = prompt.ok_or_else(|| SuggestError::NoPrompt(key.clone()))?;

    let (values, input_fields) = variable_values(request, &prompt);
    let completion_request = CompletionRequest {
        system: prompt.system.clone(),
        user: prompt.render(&values),
        schema_name: prompt.key.clone(),
        schema: prompt.output_schema.clone(),
        max_tokens: prompt.max_tokens,
    };

    let started = Instant::now();
    let mut record = Record {
        flow_id: request.flow.id().to_string(),
        step: request.step.to_string(),
        field: request.field.to_string(),
        prompt: &prompt,
        provider: ai.provider().as_str(),
        model: ai.model().to_string(),
        input_fields,
        output: None,
        value: None,
        input_tokens: None,
        output_tokens: None,
        latency_ms: 0,
    };
    let problems = match ai.complete(&completion_request).await {
        Ok(completion) => record.take(completion, request).err(),
        Err(AiError::InvalidOutput(problem)) => Some(vec![problem]),
        Err(AiError::Refused) => {
            return finish(db, context, record, started, NoSuggestionReason::Refused).await;
        }
        Err(error) => return Ok(unavailable(error)),
    };
    if let Some(problems) = problems {
        tracing::info!(
            problems = problems.len(),
            "AI output invalid; one repair attempt"
        );
        let repair = CompletionRequest {
            user: repair_message(&completion_request.user, &problems, record.output.as_ref()),
            ..completion_request
        };
        let failed = match ai.complete(&repair).await {
            Ok(completion) => record
                .take(completion, request)
                .err()
                .map(|_| NoSuggestionReason::InvalidOutput),
            Err(AiError::Refused) => Some(NoSuggestionReason::Refused),
            Err(AiError::InvalidOutput(_)) => Some(NoSuggestionReason::InvalidOutput),
            Err(error) => {
                // The first output was invalid; keep that on record, and say why nothing came.
                let _ = finish(
                    db,
                    context,
                    record,
                    started,
                    NoSuggestionReason::InvalidOutput,
                )
                .await?;
                return Ok(unavailable(error));
            }
        };
        if let Some(reason) = failed {
            return finish(db, context, record, started, reason).await;
        }
    }
    let value = record.value.clone().expect("a validated value");
    record.latency_ms = elapsed_ms(started);
    let id = db
        .transaction(context, async |tx| insert(tx, &record, "pending").await)
        .await?;
    tracing::Span::current().record("outcome", "suggested");
    Ok(SuggestionOutcome::Suggested { id, value })
}

fn unavailable(error: AiError) -> SuggestionOutcome {
    tracing::warn!(%error, "no AI suggestion: provider unavailable");
    tracing::Span::current().record("outcome", "unavailable");
    SuggestionOutcome::NoSuggestion {
        reason: NoSuggestionReason::Unavailable(error),
    }
}

async fn finish(
    db: &Database,
    context: &RlsContext,
    mut record: Record<'_>,
    started: Instant,
    reason: NoSuggestionReason,
) -> Result<SuggestionOutcome, SuggestError> {
    record.latency_ms = elapsed_ms(started);
    record.value = None;
    db.transaction(context, async |tx| insert(tx, &record, "invalid").await)
        .await?;
    tracing::Span::current().record("outcome", "invalid");
    Ok(SuggestionOutcome::NoSuggestion { reason })
}

fn elapsed_ms(started: Instant) -> i32 {
    i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX)
}

/// What will be stored about one suggestion.
struct Record<'a> {
    flow_id: String,
    step: String,
    field: String,
    prompt: &'a Prompt,
    provider: &'static str,
    model: String,
    input_fields: Vec<String>,
    output: Option<Value>,
    value: Option<Value>,
    input_tokens: Option<i32>,
    output_tokens: Option<i32>,
    latency_ms: i32,
}

impl Record<'_> {
    /// Takes a completion's output and counts; `Ok` when it validates.
    fn take(
        &mut self,
        completion: Completion,
        request: &SuggestRequest<'_>,
    ) -> Result<(), Vec<String>> {
        let add = |total: Option<i32>, more: Option<u32>| match (total, more) {
            (None, None) => None,
            (total, more) => Some(
                total
                    .unwrap_or(0)
                    .saturating_add(more.map_or(0, |m| i32::try_from(m).unwrap_or(i32::MAX))),
            ),
        };
        self.input_tokens = add(self.input_tokens, completion.usage.input_tokens);
        self.output_tokens = add(self.output_tokens, completion.usage.output_tokens);
        self.model = completion.model;
        let checked = check_output(request, &completion.value);
        self.output = Some(completion.value);
        self.value = checked.as_ref().ok().cloned();
        checked.map(|_| ())
    }
}

/// Whether the field exists, is enhanceable, and its step and the field apply.
fn check_enhanceable(request: &SuggestRequest<'_>) -> Result<(), ()> {
    let step = request.flow.step(request.step).ok_or(())?;
    let field = step
        .fields
        .iter()
        .find(|f| f.name == request.field)
        .ok_or(())?;
    if !field.ai_enhanceable {
        return Err(());
    }
    // An empty draft of the step fails only when the step itself does not apply.
    match validation::validate_step(
        request.flow,
        request.step,
        &json!({}),
        request.answers,
        request.flags,
        Submission::Draft,
    ) {
        Err(errors)
            if errors
                .errors()
                .iter()
                .any(|e| matches!(e.code, ErrorCode::UnknownStep | ErrorCode::HiddenStep)) =>
        {
            Err(())
        }
        _ => Ok(()),
    }
}

/// Validates a model's output as an answer to the field: an object holding
/// exactly the field, whose value passes the same validation as user input.
/// Returns the normalized value, or the problems to send back.
fn check_output(request: &SuggestRequest<'_>, output: &Value) -> Result<Value, Vec<String>> {
    let Some(object) = output.as_object() else {
        return Err(vec!["the output must be a JSON object".to_string()]);
    };
    let mut problems: Vec<String> = object
        .keys()
        .filter(|key| *key != request.field)
        .map(|key| format!("/{key}: unexpected property"))
        .collect();
    let Some(value) = object.get(request.field) else {
        problems.push(format!("/{}: required", request.field));
        return Err(problems);
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    let candidate = json!({ request.field: value });
    match validation::validate_step(
        request.flow,
        request.step,
        &candidate,
        request.answers,
        request.flags,
        Submission::Draft,
    ) {
        Ok(answers) => answers
            .get(request.field)
            .map(|v| v.to_json())
            .ok_or_else(|| vec![format!("/{}: required (it was empty)", request.field)]),
        Err(errors) => Err(errors
            .errors()
            .iter()
            .map(|e| match &e.limit {
                Some(limit) => format!("{}: {} ({}; limit {limit})", e.pointer, e.code, e.message),
                None => format!("{}: {} ({})", e.pointer, e.code, e.message),
            })
            .collect()),
    }
}

fn repair_message(original: &str, problems: &[String], previous: Option<&Value>) -> String {
    let mut message = format!(
        "{original}\n\nYour previous output was rejected by validation:\n{}\n",
        problems
            .iter()
            .map(|p| format!("- {p}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    if let Some(previous) = previous {
        let previous: String = previous
            .to_string()
            .chars()
            .take(MAX_ECHOED_OUTPUT)
            .collect();
        message.push_str(&format!("Previous output: {previous}\n"));
    }
    message.push_str("Answer again with output that fixes every problem listed.");
    message
}

/// The values of the prompt's declared variables, and the `step.field` names
/// they came from. A variable names a field of the requested step
/// (`primaryGoal`) or a step id followed by a field in camelCase
/// (`organizationIndustry` → `organization.industry`).
fn variable_values(
    request: &SuggestRequest<'_>,
    prompt: &Prompt,
) -> (BTreeMap<String, String>, Vec<String>) {
    let mut values = BTreeMap::new();
    let mut fields = Vec::new();
    for variable in &prompt.variables {
        let Some((step, field)) = resolve_variable(request.flow, request.step, variable) else {
            tracing::warn!(prompt = %prompt.key, variable, "prompt variable names no field of the flow");
            continue;
        };
        let value = request
            .answers
            .get(&step)
            .and_then(|answers| answers.get(&field))
            .map(display)
            .unwrap_or_default();
        fields.push(format!("{step}.{field}"));
        values.insert(variable.clone(), value);
    }
    (values, fields)
}

fn resolve_variable(flow: &Flow, step_id: &str, variable: &str) -> Option<(String, String)> {
    let has_field = |step: &str, field: &str| {
        flow.step(step)
            .is_some_and(|s| s.fields.iter().any(|f| f.name == field))
    };
    if has_field(step_id, variable) {
        return Some((step_id.to_string(), variable.to_string()));
    }
    flow.steps().iter().find_map(|step| {
        let rest = variable.strip_prefix(step.id.as_str())?;
        let mut chars = rest.chars();
        let first = chars.next().filter(char::is_ascii_uppercase)?;
        let field = format!("{}{}", first.to_ascii_lowercase(), chars.as_str());
        has_field(&step.id, &field).then(|| (step.id.clone(), field))
    })
}

fn display(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(display).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

// ---- Storage ---------------------------------------------------------------------

const INSERT: Statement = Statement::new(
    "insert into onboarding.ai_suggestions
       (user_id, session_id, organization_id, flow_id, step, field, prompt_key, prompt_version,
        provider, model, input_fields, output, value, status, latency_ms, input_tokens, output_tokens)
     select onboarding.current_user_id(),
            case when onboarding.current_user_id() is null then onboarding.current_session_id() end,
            onboarding.current_organization_id(),
            $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14
     returning id",
    &[
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::INT4,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT_ARRAY,
        Type::JSONB,
        Type::JSONB,
        Type::TEXT,
        Type::INT4,
        Type::INT4,
        Type::INT4,
    ],
);

async fn insert(tx: &Tx<'_>, record: &Record<'_>, status: &str) -> Result<Uuid, DbError> {
    let row = tx
        .query_one(
            &INSERT,
            &[
                &record.flow_id,
                &record.step,
                &record.field,
                &record.prompt.key,
                &record.prompt.version,
                &record.provider,
                &record.model,
                &record.input_fields,
                &record.output,
                &record.value,
                &status,
                &record.latency_ms,
                &record.input_tokens,
                &record.output_tokens,
            ],
        )
        .await?;
    Ok(row.get(0))
}

// ---- Decisions -------------------------------------------------------------------

/// The caller's decision on a suggestion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Accept,
    Reject,
}

/// A suggestion's stored state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuggestionStatus {
    Pending,
    Accepted,
    Rejected,
    Invalid,
}

impl SuggestionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SuggestionStatus::Pending => "pending",
            SuggestionStatus::Accepted => "accepted",
            SuggestionStatus::Rejected => "rejected",
            SuggestionStatus::Invalid => "invalid",
        }
    }

    fn parse(raw: &str) -> Self {
        match raw {
            "accepted" => SuggestionStatus::Accepted,
            "rejected" => SuggestionStatus::Rejected,
            "invalid" => SuggestionStatus::Invalid,
            _ => SuggestionStatus::Pending,
        }
    }
}

/// A decided suggestion: where its value goes, and the value when accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct DecidedSuggestion {
    pub id: Uuid,
    pub flow_id: String,
    pub step: String,
    pub field: String,
    pub status: SuggestionStatus,
    /// The value to write into the answers: `Some` only when accepted.
    pub value: Option<Value>,
}

/// What [`decide`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum DecideOutcome {
    /// Decided now.
    Decided(DecidedSuggestion),
    /// The same decision was already recorded (a retry); same result.
    AlreadyDecided(DecidedSuggestion),
    /// Already decided the other way, or invalid: nothing changed.
    Conflict { status: SuggestionStatus },
    /// No suggestion with this id that the caller may see.
    NotFound,
}

const DECIDE: Statement = Statement::new(
    "update onboarding.ai_suggestions
     set status = $2, decided_at = now()
     where id = $1 and status = 'pending'
     returning id, flow_id, step, field, status, value",
    &[Type::UUID, Type::TEXT],
);

const FETCH: Statement = Statement::new(
    "select id, flow_id, step, field, status, value from onboarding.ai_suggestions where id = $1",
    &[Type::UUID],
);

fn decided_from_row(row: &Row) -> DecidedSuggestion {
    let status = SuggestionStatus::parse(row.get("status"));
    DecidedSuggestion {
        id: row.get("id"),
        flow_id: row.get("flow_id"),
        step: row.get("step"),
        field: row.get("field"),
        status,
        value: if status == SuggestionStatus::Accepted {
            row.get("value")
        } else {
            None
        },
    }
}

/// Accepts or rejects a pending suggestion of the caller's. On accept the
/// returned value is what to write into the answers (with the usual version
/// and idempotency rules); this function does not touch the answers.
pub async fn decide(
    tx: &Tx<'_>,
    suggestion_id: Uuid,
    decision: Decision,
) -> Result<DecideOutcome, DbError> {
    let status = match decision {
        Decision::Accept => SuggestionStatus::Accepted,
        Decision::Reject => SuggestionStatus::Rejected,
    };
    if let Some(row) = tx
        .query_opt(&DECIDE, &[&suggestion_id, &status.as_str()])
        .await?
    {
        return Ok(DecideOutcome::Decided(decided_from_row(&row)));
    }
    Ok(match tx.query_opt(&FETCH, &[&suggestion_id]).await? {
        None => DecideOutcome::NotFound,
        Some(row) => {
            let current = decided_from_row(&row);
            if current.status == status {
                DecideOutcome::AlreadyDecided(current)
            } else {
                DecideOutcome::Conflict {
                    status: current.status,
                }
            }
        }
    })
}
