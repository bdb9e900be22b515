//! Saving a step: a draft or a completed answer, under optimistic concurrency.
//!
//! Rules: a write to a step that has an answer must say which version it
//! replaces (HTTP: `If-Match`; 428 without, 412 when stale); a first write may
//! say nothing or version 0. Writers of one caller take turns on their
//! progress row, so two tabs never interleave and no acknowledged write is lost.

use futures_util::future::try_join;
use serde::Serialize;

use crate::db::Tx;
use crate::db::answers::{self, NewAnswer, StoredAnswer, Write};
use crate::db::progress::{self, ProgressRecord, ProgressState, RecordedSteps};
use crate::wizard::WizardError;
use crate::wizard::error::CurrentAnswer;
use crate::wizard::flow::{AnswerMap, Flow};
use crate::wizard::status::{self, RedirectPaths, Status};
use crate::wizard::transform::to_stored;
use crate::wizard::validation::{Submission, validate_step};

/// The version a write expects to replace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// The caller did not say.
    Absent,
    /// Whatever is stored, as long as something is (`If-Match: *`, RFC 9110:
    /// with nothing stored the precondition fails).
    Any,
    /// Exactly this version (0: nothing stored yet).
    Version(i64),
}

/// What a write of answers needs besides the answers: the caller's flow and
/// flags, their `If-Match`, and what the status after the write depends on.
#[derive(Clone, Copy)]
pub struct WriteContext<'a> {
    pub flow: &'a Flow,
    pub flags: &'a (dyn Fn(&str) -> bool + Sync),
    pub expected: ExpectedVersion,
    pub authenticated: bool,
    pub paths: &'a RedirectPaths,
}

/// The answers to write to one step.
#[derive(Clone, Copy)]
pub struct StepWrite<'a> {
    pub step: &'a str,
    pub answers: &'a serde_json::Value,
    pub completion: Completion,
    /// `answers` holds only some fields, merged over the stored ones.
    pub merge: bool,
}

/// One step's saved answer and its version (`GET /api/onboarding/steps/{step}`).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = StepAnswer)]
pub struct StepView {
    pub step: String,
    /// The stored (normalized) answers, or `null` before the first save.
    #[schema(value_type = Option<Object>, required = true)]
    pub answers: Option<serde_json::Value>,
    /// 0 before the first save; send it back in `If-Match`.
    pub version: i64,
    pub completed: bool,
    #[schema(required = true)]
    pub flow_version: Option<i32>,
    /// Answers from an older flow version that its upgrade rules could not
    /// carry over; they are kept here, not dropped, for the user to redo.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs_attention: Vec<crate::wizard::transform::FieldAttention>,
}

impl StepView {
    /// The view of a stored answer, upgraded to `flow`'s version by its
    /// declared rules when it was saved under an older one. The version (and
    /// ETag) stays the stored one: saving the upgraded answers is a normal write.
    pub fn upgraded(step: &str, stored: Option<&StoredAnswer>, flow: &Flow) -> Self {
        let mut view = Self::of(step, stored);
        let Some(stored) = stored else {
            return view;
        };
        let from = u32::try_from(stored.flow_version).unwrap_or(0);
        if from >= flow.version() {
            return view;
        }
        let answers: AnswerMap = [(step.to_string(), stored.answers.clone())]
            .into_iter()
            .collect();
        match crate::wizard::transform::upgrade(&answers, from, flow) {
            Ok(outcome) => {
                view.answers = Some(
                    outcome
                        .answers
                        .get(step)
                        .map(to_stored)
                        .unwrap_or_else(|| serde_json::json!({})),
                );
                view.needs_attention = outcome
                    .needs_attention
                    .into_iter()
                    .filter(|attention| attention.step == step)
                    .collect();
            }
            Err(error) => {
                view.needs_attention = vec![crate::wizard::transform::FieldAttention {
                    step: step.to_string(),
                    pointer: String::new(),
                    reason: "no_upgrade_path".into(),
                    message: error.to_string(),
                    value: Some(stored.answers.clone()),
                }];
            }
        }
        view
    }

    pub fn of(step: &str, stored: Option<&StoredAnswer>) -> Self {
        match stored {
            Some(stored) => Self {
                step: step.to_string(),
                answers: Some(stored.answers.clone()),
                version: stored.version,
                completed: stored.completed,
                flow_version: Some(stored.flow_version),
                needs_attention: Vec::new(),
            },
            None => Self {
                step: step.to_string(),
                answers: None,
                version: 0,
                completed: false,
                flow_version: None,
                needs_attention: Vec::new(),
            },
        }
    }
}

/// The body of a successful save: the step and the caller's new status.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = SavedStep)]
pub struct Saved {
    #[serde(flatten)]
    pub step: StepView,
    pub status: Status,
}

/// Checks the expected version against what is stored.
pub(crate) fn precondition(
    existing: Option<&StoredAnswer>,
    expected: ExpectedVersion,
) -> Result<Write, WizardError> {
    match (existing, expected) {
        (None, ExpectedVersion::Absent | ExpectedVersion::Version(0)) => Ok(Write::Insert),
        (None, _) => Err(WizardError::version_mismatch(
            "the step has no saved answer, so no version (and not `*`) matches; send no If-Match (or \"0\")",
        )),
        (Some(_), ExpectedVersion::Absent) => Err(WizardError::VersionRequired(
            "the step has a saved answer: send If-Match with the version from its ETag".into(),
        )),
        (Some(stored), ExpectedVersion::Any) => Ok(Write::ReplaceAt(stored.version)),
        (Some(stored), ExpectedVersion::Version(version)) if version == stored.version => {
            Ok(Write::ReplaceAt(version))
        }
        (Some(stored), ExpectedVersion::Version(_)) => Err(WizardError::version_mismatch(format!(
            "the step was saved since you read it; its version is now {}",
            stored.version
        ))),
    }
}

/// What a read of the step would answer now, for a refused write.
fn current_answer(step: &str, stored: Option<&StoredAnswer>, flow: &Flow) -> CurrentAnswer {
    let view = StepView::upgraded(step, stored, flow);
    CurrentAnswer {
        version: view.version,
        answers: view.answers,
        completed: view.completed,
    }
}

/// How a write treats the step's completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// A draft: required fields may be missing; the step is not complete.
    Draft,
    /// Complete the step: required fields enforced.
    Complete,
    /// Keep whatever the stored answer was (an accepted AI suggestion).
    Keep,
}

/// Saves a step inside the caller's transaction: lock the caller's
/// progress, check the expected version, validate, store, record the step.
pub async fn write_answer(
    tx: &Tx<'_>,
    write: &WriteContext<'_>,
    answer: StepWrite<'_>,
) -> Result<Saved, WizardError> {
    let StepWrite {
        step,
        answers,
        completion,
        merge,
    } = answer;
    let flow = write.flow;
    let first_step = flow.steps().first().map(|s| s.id.as_str()).unwrap_or("");
    let (record, stored) = progress::fetch_or_start_for_update_with_answers(
        tx,
        flow.id(),
        flow.version() as i32,
        first_step,
    )
    .await?;
    if record.state == ProgressState::Completed {
        return Err(WizardError::Conflict(
            "onboarding is already completed; its answers are final".into(),
        ));
    }
    let existing = stored.get(step);
    let precondition = precondition(existing, write.expected)
        .map_err(|error| error.with_current(current_answer(step, existing, flow)))?;
    let newly_completed =
        completion == Completion::Complete && !existing.is_some_and(|answer| answer.completed);
    let complete = match completion {
        Completion::Draft => false,
        Completion::Complete => true,
        Completion::Keep => existing.is_some_and(|answer| answer.completed),
    };
    let merged;
    let answers = if merge {
        let mut object = existing
            .and_then(|answer| answer.answers.as_object().cloned())
            .unwrap_or_default();
        if let Some(fields) = answers.as_object() {
            object.extend(fields.clone());
        }
        merged = serde_json::Value::Object(object);
        &merged
    } else {
        answers
    };

    let mut context_answers: AnswerMap = stored
        .iter()
        .filter(|(other, _)| other.as_str() != step)
        .map(|(step, answer)| (step.clone(), answer.answers.clone()))
        .collect();
    let submission = if complete {
        Submission::Complete
    } else {
        Submission::Draft
    };
    let validated = validate_step(
        flow,
        step,
        answers,
        &context_answers,
        write.flags,
        submission,
    )
    .map_err(|errors| errors.in_step(step))?;
    context_answers.insert(step.to_string(), to_stored(&validated));
    let value = &context_answers[step];

    let mut completed_steps: Vec<String> = record
        .completed_steps
        .iter()
        .filter(|other| other.as_str() != step)
        .cloned()
        .collect();
    let current_step = if complete {
        completed_steps.push(step.to_string());
        if completion == Completion::Complete {
            flow.next_step(step, &context_answers, write.flags)
                .map(|next| next.id.as_str())
                .unwrap_or(step)
        } else {
            record.current_step.as_deref().unwrap_or(step)
        }
    } else {
        step
    };
    // The answer with the steps recorded (one call) and the event of a step
    // completed now need nothing of each other's results: they go out
    // together, in one round trip. Should the answer's write find its
    // precondition gone, nothing is recorded and the error rolls the event
    // back.
    let storing = progress::store_answer_and_record_step(
        tx,
        record.id,
        flow.version() as i32,
        NewAnswer {
            step,
            answers: value,
            completed: complete,
            write: precondition,
        },
        RecordedSteps {
            completed_steps: &completed_steps,
            current_step,
        },
    );
    let reporting = async {
        if !newly_completed {
            return Ok(());
        }
        let reported = ProgressRecord {
            flow_version: flow.version() as i32,
            ..record.clone()
        };
        crate::outbox::step_completed(tx, &reported, step).await
    };
    let (saved, ()) = try_join(storing, reporting).await?;
    let Some((saved, recorded)) = saved else {
        // Another writer took the version between our read and write; a new
        // statement sees what it committed.
        let now = answers::all_for_progress(tx, record.id).await?;
        return Err(
            WizardError::version_mismatch("the step was saved concurrently; reload it")
                .with_current(current_answer(step, now.get(step), flow)),
        );
    };
    let status = status::compute(
        flow,
        write.flags,
        write.authenticated,
        Some(recorded),
        &context_answers,
        write.paths,
    );
    Ok(Saved {
        step: StepView::of(step, Some(&saved)),
        status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn stored(version: i64) -> StoredAnswer {
        StoredAnswer {
            step: "profile".into(),
            answers: serde_json::json!({}),
            completed: false,
            flow_version: 1,
            version,
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn a_first_write_needs_no_if_match() {
        assert_eq!(
            precondition(None, ExpectedVersion::Absent).unwrap(),
            Write::Insert
        );
        assert_eq!(
            precondition(None, ExpectedVersion::Version(0)).unwrap(),
            Write::Insert
        );
        assert!(matches!(
            precondition(None, ExpectedVersion::Version(3)),
            Err(WizardError::VersionMismatch { .. })
        ));
    }

    #[test]
    fn overwriting_an_answer_without_if_match_is_428() {
        assert!(matches!(
            precondition(Some(&stored(2)), ExpectedVersion::Absent),
            Err(WizardError::VersionRequired(_))
        ));
    }

    #[test]
    fn a_stale_version_is_412_and_the_current_one_replaces() {
        assert!(matches!(
            precondition(Some(&stored(2)), ExpectedVersion::Version(1)),
            Err(WizardError::VersionMismatch { .. })
        ));
        assert_eq!(
            precondition(Some(&stored(2)), ExpectedVersion::Version(2)).unwrap(),
            Write::ReplaceAt(2)
        );
        assert_eq!(
            precondition(Some(&stored(2)), ExpectedVersion::Any).unwrap(),
            Write::ReplaceAt(2)
        );
    }
}
