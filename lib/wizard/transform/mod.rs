//! Wizard answers ↔ stored shape, upgrades of old drafts, and the completion plan.
//!
//! Stored shape: one JSONB object per step, exactly [`StepAnswers::to_json`]
//! (canonical and normalized, unanswered fields absent).

mod completion;
mod upgrade;

use serde_json::Value;

use crate::wizard::flow::Flow;
use crate::wizard::validation::{
    Options, StepAnswers, Submission, ValidationErrors, validate_with,
};

pub use completion::{
    CompletionPlan, InvitationRow, MissingStep, MissingStepReason, MissingSteps, OrganizationRow,
    ProfileRow, completion_plan,
};
pub use upgrade::{FieldAttention, UpgradeError, UpgradeOutcome, upgrade};

/// The JSONB object to store for one step.
pub fn to_stored(answers: &StepAnswers) -> Value {
    answers.to_json()
}

/// Reads a stored step back into typed answers.
///
/// Stored rows are parsed, not trusted: they go through draft validation
/// (required fields may be missing). Field conditions are not evaluated here
/// because the other steps are not at hand; they were checked when saved.
pub fn from_stored(
    flow: &Flow,
    step_id: &str,
    stored: &Value,
) -> Result<StepAnswers, ValidationErrors> {
    let options = Options {
        submission: Submission::Draft,
        context: None,
        check_step_visibility: false,
    };
    validate_with(flow, step_id, stored, &options)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wizard::flow::{AnswerMap, default_flow};
    use crate::wizard::validation::validate_step;
    use serde_json::json;

    #[test]
    fn stored_answers_round_trip() {
        let flow = default_flow().expect("parses");
        let raw = json!({ "name": "  Acme\u{0301} ", "slug": "acme", "size": "2-10",
                          "industry": "saas", "website": "https://acme.test" });
        let answers = validate_step(
            &flow,
            "organization",
            &raw,
            &AnswerMap::new(),
            &|_| false,
            Submission::Complete,
        )
        .expect("valid");
        let stored = to_stored(&answers);
        assert_eq!(stored["name"], "Acm\u{e9}");
        let back = from_stored(&flow, "organization", &stored).expect("reads back");
        assert_eq!(back, answers);
        assert_eq!(to_stored(&back), stored);
    }

    #[test]
    fn from_stored_rejects_tampered_rows() {
        let flow = default_flow().expect("parses");
        let err = from_stored(&flow, "profile", &json!({ "fullName": 42 })).expect_err("bad");
        assert_eq!(err.errors()[0].code.as_str(), "invalid_type");
        // A draft row may lack required fields.
        assert!(from_stored(&flow, "profile", &json!({})).is_ok());
    }
}
