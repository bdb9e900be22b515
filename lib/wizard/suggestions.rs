//! Accepting or rejecting an AI suggestion. Accepting writes the value into
//! the caller's answers under the same version and idempotency rules as a
//! save, in the same transaction that records the decision; AI output never
//! reaches the answers without it.

use serde::Serialize;
use uuid::Uuid;

use crate::db::{Tx, answers};
use crate::wizard::WizardError;
use crate::wizard::save::{Completion, Saved, StepView, StepWrite, WriteContext, write_answer};
use crate::wizard::suggest::{DecideOutcome, Decision, decide};

/// What became of a suggestion: the schema of [`Decided::status`].
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum DecisionName {
    Accepted,
    Rejected,
}

/// The answer of accepting or rejecting a suggestion.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Decided {
    pub id: Uuid,
    /// `accepted` or `rejected`.
    #[schema(value_type = DecisionName)]
    pub status: String,
    /// For an acceptance: the step as saved, with its new version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saved: Option<Saved>,
    /// For a retried acceptance: the step as it is now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<StepView>,
}

/// Records the caller's decision on a suggestion; an accepted one is written
/// to the step and field the suggestion names.
pub async fn decide_suggestion(
    tx: &Tx<'_>,
    write: WriteContext<'_>,
    id: Uuid,
    decision: Decision,
) -> Result<Decided, WizardError> {
    let decided = match decide(tx, id, decision).await? {
        DecideOutcome::NotFound => {
            return Err(WizardError::NotFound("no such suggestion".into()));
        }
        DecideOutcome::Conflict { status } => {
            return Err(WizardError::Conflict(format!(
                "the suggestion is already {}",
                status.as_str()
            )));
        }
        DecideOutcome::AlreadyDecided(decided) => {
            // A retry: the first attempt wrote (or did not need to); show the step now.
            let stored = answers::fetch_own_step(tx, &decided.flow_id, &decided.step).await?;
            let body = Decided {
                id,
                status: decided.status.as_str().into(),
                saved: None,
                step: Some(StepView::of(&decided.step, stored.as_ref())),
            };
            return Ok(body);
        }
        DecideOutcome::Decided(decided) => decided,
    };
    let Some(value) = decided.value.clone() else {
        let body = Decided {
            id,
            status: decided.status.as_str().into(),
            saved: None,
            step: None,
        };
        return Ok(body);
    };
    if decided.flow_id != write.flow.id() {
        return Err(WizardError::Conflict(
            "the suggestion belongs to another flow".into(),
        ));
    }
    let patch = serde_json::json!({ decided.field.clone(): value });
    let answer = StepWrite {
        step: &decided.step,
        answers: &patch,
        completion: Completion::Keep,
        merge: true,
    };
    let saved = write_answer(tx, &write, answer).await?;
    Ok(Decided {
        id,
        status: decided.status.as_str().into(),
        saved: Some(saved),
        step: None,
    })
}
