//! What validation reports: the stable error codes clients branch on, one
//! field error, and the list of every error of a submission. Shared with the
//! HTTP layer (problem+json) and the AI routes, so the codes stay one set.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// Stable machine-readable error codes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// A required field is missing, `null` or empty.
    Required,
    /// Shorter than `minLength`.
    TooShort,
    /// Longer than `maxLength`.
    TooLong,
    /// Wrong JSON type.
    InvalidType,
    /// Not a valid e-mail address.
    InvalidEmail,
    /// Not a valid http(s) URL.
    InvalidUrl,
    /// Not one of the options.
    NotInEnum,
    /// Fewer items than `minItems`.
    TooFewItems,
    /// More items than `maxItems`.
    TooManyItems,
    /// An item appears twice.
    DuplicateItem,
    /// Outside `minimum..=maximum`.
    OutOfRange,
    /// Not a whole number.
    NotInteger,
    /// Not a slug.
    InvalidSlug,
    /// Not an IANA time zone name.
    InvalidTimezone,
    /// Contains a control character.
    ControlCharacter,
    /// Not a field of this step.
    UnknownField,
    /// A field hidden by its condition has a value.
    HiddenField,
    /// The answers are not a JSON object.
    NotAnObject,
    /// Nested deeper than [`MAX_DEPTH`](super::MAX_DEPTH).
    TooDeep,
    /// More than [`MAX_NODES`](super::MAX_NODES) values.
    TooLarge,
    /// No such step in the flow.
    UnknownStep,
    /// The step does not apply given the answers and flags.
    HiddenStep,
    /// Completion: a required visible step has no answers.
    StepMissing,
    /// Completion: a visible step's answers do not validate as complete.
    StepIncomplete,
    /// Completion: the flow lacks a field the completion needs.
    StepNotInFlow,
    /// Completion: another organization has this slug.
    SlugTaken,
    /// AI: the field is not marked `aiEnhanceable`.
    NotEnhanceable,
}

impl ErrorCode {
    /// The code as sent to clients, e.g. `too_long`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Required => "required",
            ErrorCode::TooShort => "too_short",
            ErrorCode::TooLong => "too_long",
            ErrorCode::InvalidType => "invalid_type",
            ErrorCode::InvalidEmail => "invalid_email",
            ErrorCode::InvalidUrl => "invalid_url",
            ErrorCode::NotInEnum => "not_in_enum",
            ErrorCode::TooFewItems => "too_few_items",
            ErrorCode::TooManyItems => "too_many_items",
            ErrorCode::DuplicateItem => "duplicate_item",
            ErrorCode::OutOfRange => "out_of_range",
            ErrorCode::NotInteger => "not_integer",
            ErrorCode::InvalidSlug => "invalid_slug",
            ErrorCode::InvalidTimezone => "invalid_timezone",
            ErrorCode::ControlCharacter => "control_character",
            ErrorCode::UnknownField => "unknown_field",
            ErrorCode::HiddenField => "hidden_field",
            ErrorCode::NotAnObject => "not_an_object",
            ErrorCode::TooDeep => "too_deep",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::UnknownStep => "unknown_step",
            ErrorCode::HiddenStep => "hidden_step",
            ErrorCode::StepMissing => "step_missing",
            ErrorCode::StepIncomplete => "step_incomplete",
            ErrorCode::StepNotInFlow => "step_not_in_flow",
            ErrorCode::SlugTaken => "slug_taken",
            ErrorCode::NotEnhanceable => "not_enhanceable",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A field-level problem. One convention on every route: an error about a
/// step's answers names the step in `step`, and `pointer` points into that
/// step's answers object (`/slug`, `/invites/1/email`; `""` for the step as a
/// whole), whether the route was a save, an accepted suggestion or
/// `/complete`. An error without `step` is about the request body itself, and
/// `pointer` points into the body as sent (`/complete`, `/events/3/type`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    /// RFC 6901 JSON pointer: into the answers of `step` when `step` is
    /// present (`/fullName`), else into the request body.
    pub pointer: String,
    /// Stable machine-readable code, e.g. `too_long`.
    pub code: ErrorCode,
    /// Human-readable explanation.
    pub message: String,
    /// The limit that failed, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<serde_json::Value>,
    /// The step whose answers `pointer` points into; absent for an error in
    /// the request body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
}

impl FieldError {
    /// The same error, about the answers of `step`.
    pub fn in_step(mut self, step: &str) -> Self {
        self.step = Some(step.to_string());
        self
    }
}

/// Every error found in one submission; serializes as `[{pointer, code, message, limit}]`.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[serde(transparent)]
#[error("{} validation error(s): {}", .0.len(), .0.iter().map(|e| format!("{} {}", e.pointer, e.code)).collect::<Vec<_>>().join(", "))]
pub struct ValidationErrors(Vec<FieldError>);

impl ValidationErrors {
    /// The errors, in field order.
    pub fn errors(&self) -> &[FieldError] {
        &self.0
    }

    /// The same errors, about the answers of `step`.
    pub fn in_step(self, step: &str) -> Self {
        ValidationErrors(self.0.into_iter().map(|e| e.in_step(step)).collect())
    }

    /// Consumes into the list of errors.
    pub fn into_errors(self) -> Vec<FieldError> {
        self.0
    }

    /// The errors of one submission, when there are any.
    pub(super) fn new(errors: Vec<FieldError>) -> Self {
        ValidationErrors(errors)
    }

    /// A submission rejected as a whole, before its fields were looked at.
    pub(super) fn single(
        pointer: String,
        code: ErrorCode,
        message: String,
        limit: Option<Value>,
    ) -> Self {
        ValidationErrors(vec![FieldError {
            pointer,
            code,
            message,
            limit,
            step: None,
        }])
    }
}

/// JSON pointer token escaping (RFC 6901).
pub(super) fn pointer(segments: &[&str]) -> String {
    segments
        .iter()
        .map(|s| format!("/{}", s.replace('~', "~0").replace('/', "~1")))
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::ErrorCode;

    #[test]
    fn every_error_code_has_a_distinct_stable_name() {
        let all = [
            ErrorCode::Required,
            ErrorCode::TooShort,
            ErrorCode::TooLong,
            ErrorCode::InvalidType,
            ErrorCode::InvalidEmail,
            ErrorCode::InvalidUrl,
            ErrorCode::NotInEnum,
            ErrorCode::TooFewItems,
            ErrorCode::TooManyItems,
            ErrorCode::DuplicateItem,
            ErrorCode::OutOfRange,
            ErrorCode::NotInteger,
            ErrorCode::InvalidSlug,
            ErrorCode::InvalidTimezone,
            ErrorCode::ControlCharacter,
            ErrorCode::UnknownField,
            ErrorCode::HiddenField,
            ErrorCode::NotAnObject,
            ErrorCode::TooDeep,
            ErrorCode::TooLarge,
            ErrorCode::UnknownStep,
            ErrorCode::HiddenStep,
        ];
        let names: std::collections::BTreeSet<&str> = all.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), all.len());
        for code in all {
            assert_eq!(serde_json::to_value(code).ok(), Some(json!(code.as_str())));
        }
    }
}
