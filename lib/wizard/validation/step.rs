//! One step's answers object: the entry points, the step itself (exists,
//! applies), and the walk over its fields — unknown keys, fields hidden by
//! their condition, required fields — handing each present value to `field`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::answers::StepAnswers;
use super::errors::{ErrorCode, FieldError, ValidationErrors, pointer};
use super::field::parse_field;
use super::limits::check_limits;
use crate::wizard::flow::{AnswerMap, FieldDefinition, FieldRef, Flow, StepDefinition};

/// What a submission of a step's answers must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submission {
    /// The step is completed: required fields must be present.
    Complete,
    /// Saved midway: required fields may be missing, but every value present
    /// is checked as strictly as in a complete one.
    Draft,
}

/// Validates a step's answers as submitted in a request.
pub fn validate_step(
    flow: &Flow,
    step_id: &str,
    raw: &Value,
    answers: &AnswerMap,
    flags: &dyn Fn(&str) -> bool,
    submission: Submission,
) -> Result<StepAnswers, ValidationErrors> {
    let options = Options {
        submission,
        context: Some((answers, flags)),
        check_step_visibility: true,
    };
    validate_with(flow, step_id, raw, &options)
}

/// Answers so far and the flag lookup, for evaluating conditions.
pub(crate) type Context<'a> = (&'a AnswerMap, &'a dyn Fn(&str) -> bool);

/// How strictly to validate; crate-internal so `transform` can re-read stored
/// answers without the request context.
pub(crate) struct Options<'a> {
    /// Whether required fields must be present.
    pub(crate) submission: Submission,
    /// Answers and flags for conditions. `None`: conditional fields are allowed
    /// when present and never required (stored data, validated when saved).
    pub(crate) context: Option<Context<'a>>,
    /// Reject submissions to steps hidden by their condition.
    pub(crate) check_step_visibility: bool,
}

/// Validates one step's answers as `options` say. [`validate_step`] uses a
/// request's settings; `transform` chooses its own
/// (stored answers, the completion plan, upgrades).
pub(crate) fn validate_with(
    flow: &Flow,
    step_id: &str,
    raw: &Value,
    options: &Options<'_>,
) -> Result<StepAnswers, ValidationErrors> {
    check_limits(raw)?;
    let Some(step) = flow.step(step_id) else {
        return Err(ValidationErrors::single(
            String::new(),
            ErrorCode::UnknownStep,
            format!("no step `{step_id}` in flow `{}`", flow.id()),
            None,
        ));
    };
    if options.check_step_visibility
        && let Some((answers, flags)) = options.context
        && !flow.is_step_visible(step, answers, flags)
    {
        return Err(ValidationErrors::single(
            String::new(),
            ErrorCode::HiddenStep,
            format!("step `{step_id}` does not apply"),
            None,
        ));
    }
    let Value::Object(raw) = raw else {
        return Err(ValidationErrors::single(
            String::new(),
            ErrorCode::NotAnObject,
            "answers must be a JSON object".into(),
            None,
        ));
    };
    validate_object(step, raw, options)
}

fn validate_object(
    step: &StepDefinition,
    raw: &Map<String, Value>,
    options: &Options<'_>,
) -> Result<StepAnswers, ValidationErrors> {
    let mut errors = Vec::new();
    for key in raw.keys() {
        if !step.fields.iter().any(|f| &f.name == key) {
            errors.push(FieldError {
                pointer: pointer(&[key]),
                code: ErrorCode::UnknownField,
                message: format!("`{key}` is not a field of step `{}`", step.id),
                limit: None,
                step: None,
            });
        }
    }
    let mut values = BTreeMap::new();
    // Normalized answers of this step so far, for same-step conditions.
    let mut current = Map::new();
    let mut failed: Vec<&str> = Vec::new();
    for field in &step.fields {
        let visibility = match (&field.condition, options.context) {
            (None, _) => Visibility::Shown,
            (Some(cond), _)
                if cond.field_references().iter().any(|r| {
                    let r = FieldRef::parse(r);
                    r.step.is_none_or(|s| s == step.id) && failed.contains(&r.field)
                }) =>
            {
                // Depends on a field of this step that is itself wrong: its
                // visibility is unknowable until that is fixed, so say nothing.
                continue;
            }
            (Some(cond), Some((answers, flags))) => {
                if cond.evaluate(&step.id, Some(&current), answers, flags) {
                    Visibility::Shown
                } else {
                    Visibility::Hidden
                }
            }
            (Some(_), None) => Visibility::Unknown,
        };
        let raw_value = raw.get(&field.name).filter(|v| !v.is_null());
        match (visibility, raw_value) {
            (Visibility::Hidden, None) => {}
            (Visibility::Hidden, Some(_)) => errors.push(FieldError {
                pointer: pointer(&[&field.name]),
                code: ErrorCode::HiddenField,
                message: format!("`{}` does not apply and must be left out", field.name),
                limit: None,
                step: None,
            }),
            (_, None) => {
                if field.required
                    && options.submission == Submission::Complete
                    && visibility == Visibility::Shown
                {
                    errors.push(required(field));
                }
            }
            (_, Some(value)) => {
                let before = errors.len();
                match parse_field(field, value, &mut errors) {
                    Some(parsed) => {
                        current.insert(field.name.clone(), parsed.to_json());
                        values.insert(field.name.clone(), parsed);
                    }
                    None if errors.len() == before => {
                        // An empty string: unanswered.
                        if field.required
                            && options.submission == Submission::Complete
                            && visibility == Visibility::Shown
                        {
                            errors.push(required(field));
                        }
                    }
                    None => failed.push(&field.name),
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(StepAnswers::new(step.id.clone(), values))
    } else {
        Err(ValidationErrors::new(errors))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Visibility {
    Shown,
    Hidden,
    Unknown,
}

fn required(field: &FieldDefinition) -> FieldError {
    FieldError {
        pointer: pointer(&[&field.name]),
        code: ErrorCode::Required,
        message: format!("{} is required", field.label),
        limit: None,
        step: None,
    }
}
