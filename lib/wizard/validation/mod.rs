//! Raw JSON → typed, normalized answers, or every field error at once.
//!
//! Rules shared by all fields (the contract with the frontend and the JSON
//! Schema export):
//! - Strings are trimmed with JavaScript's whitespace set and NFC-normalized
//!   before any check ([`normalize_text`]); lengths count Unicode scalar values.
//! - Control characters (Unicode Cc) are rejected with `control_character`.
//!   Text fields whose `maxLength` is above 200 may contain `\n` (multi-line
//!   goals); `\r` and tabs are always rejected.
//! - `null` is the same as leaving the key out. For string-typed fields an empty
//!   string (after trimming) is too: a required field reports `required`, an
//!   optional one is simply not answered. Inside lists there is no such rule.
//! - Keys that are not fields of the step: `unknown_field`. Fields hidden by
//!   their condition must be absent (or `null`): `hidden_field`.
//! - Before any work the input is checked against [`MAX_DEPTH`] and
//!   [`MAX_NODES`] without recursion (`too_deep`, `too_large`).
//! - The step itself must exist (`unknown_step`) and be visible (`hidden_step`);
//!   those errors have the pointer `""`.

pub mod rules;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value, json};
use utoipa::ToSchema;

use crate::wizard::flow::{AnswerMap, FieldDefinition, FieldKind, Flow, StepDefinition};

pub use rules::{
    EMAIL_PATTERN, MULTI_LINE_PATTERN, MULTI_LINE_THRESHOLD, SINGLE_LINE_PATTERN, SLUG_PATTERN,
    URL_PATTERN, has_control_character, is_iana_time_zone, is_js_trim_char, is_valid_email,
    is_valid_url, normalize_text,
};

/// Deepest accepted nesting (the answer object is depth 1; valid answers need 3).
pub const MAX_DEPTH: usize = 8;
/// Most JSON values (objects, arrays, scalars) accepted in one step's answers.
pub const MAX_NODES: usize = 10_000;

/// Stable machine-readable error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
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
    /// Nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// More than [`MAX_NODES`] values.
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

/// A field-level problem in a request body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    /// JSON pointer to the offending field, e.g. `/fullName`.
    pub pointer: String,
    /// Stable machine-readable code, e.g. `too_long`.
    #[schema(value_type = String)]
    pub code: ErrorCode,
    /// Human-readable explanation.
    pub message: String,
    /// The limit that failed, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<serde_json::Value>,
}

impl FieldError {
    /// The same error, pointing into a sub-document (`/steps/goals` + `/primaryGoal`).
    pub fn under(mut self, prefix: &str) -> Self {
        self.pointer = format!("{prefix}{}", self.pointer);
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

    /// Consumes into the list of errors.
    pub fn into_errors(self) -> Vec<FieldError> {
        self.0
    }

    fn single(pointer: String, code: ErrorCode, message: String, limit: Option<Value>) -> Self {
        ValidationErrors(vec![FieldError {
            pointer,
            code,
            message,
            limit,
        }])
    }
}

/// A typed, normalized answer.
#[derive(Debug, Clone, PartialEq)]
pub enum AnswerValue {
    /// Text, e-mail, URL, enum, slug and timezone answers.
    Text(String),
    /// Number answers (integers normalized to integer JSON numbers).
    Number(Number),
    /// Boolean answers.
    Bool(bool),
    /// Multi-enum (in option order) and e-mail list (in given order) answers.
    List(Vec<String>),
}

impl AnswerValue {
    /// Canonical JSON.
    pub fn to_json(&self) -> Value {
        match self {
            AnswerValue::Text(s) => Value::String(s.clone()),
            AnswerValue::Number(n) => Value::Number(n.clone()),
            AnswerValue::Bool(b) => Value::Bool(*b),
            AnswerValue::List(items) => {
                Value::Array(items.iter().cloned().map(Value::String).collect())
            }
        }
    }

    /// The text, for string-typed answers.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            AnswerValue::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The boolean, for boolean answers.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            AnswerValue::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The items, for list answers.
    pub fn as_list(&self) -> Option<&[String]> {
        match self {
            AnswerValue::List(items) => Some(items),
            _ => None,
        }
    }
}

/// The validated answers of one step. Only built by validation, so holding one
/// means every value is normalized and within bounds of its field.
#[derive(Debug, Clone, PartialEq)]
pub struct StepAnswers {
    step: String,
    values: BTreeMap<String, AnswerValue>,
}

impl StepAnswers {
    /// The step these answers belong to.
    pub fn step_id(&self) -> &str {
        &self.step
    }

    /// One answer by field name.
    pub fn get(&self, field: &str) -> Option<&AnswerValue> {
        self.values.get(field)
    }

    /// A string-typed answer.
    pub fn text(&self, field: &str) -> Option<&str> {
        self.get(field).and_then(AnswerValue::as_str)
    }

    /// A boolean answer.
    pub fn bool(&self, field: &str) -> Option<bool> {
        self.get(field).and_then(AnswerValue::as_bool)
    }

    /// A list answer.
    pub fn list(&self, field: &str) -> Option<&[String]> {
        self.get(field).and_then(AnswerValue::as_list)
    }

    /// All answers, by field name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &AnswerValue)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Canonical camelCase JSON object (unanswered fields are absent).
    pub fn to_json(&self) -> Value {
        Value::Object(
            self.values
                .iter()
                .map(|(k, v)| (k.clone(), v.to_json()))
                .collect(),
        )
    }
}

/// Validates a complete step submission: required fields must be present.
pub fn validate_step(
    flow: &Flow,
    step_id: &str,
    raw: &Value,
    answers: &AnswerMap,
    flags: &dyn Fn(&str) -> bool,
) -> Result<StepAnswers, ValidationErrors> {
    let options = Options {
        draft: false,
        context: Some((answers, flags)),
        check_step_visibility: true,
    };
    validate_with(flow, step_id, raw, &options)
}

/// Validates a draft (saved midway): required fields may be missing, but every
/// value present is checked as strictly as in [`validate_step`].
pub fn validate_draft(
    flow: &Flow,
    step_id: &str,
    raw: &Value,
    answers: &AnswerMap,
    flags: &dyn Fn(&str) -> bool,
) -> Result<StepAnswers, ValidationErrors> {
    let options = Options {
        draft: true,
        context: Some((answers, flags)),
        check_step_visibility: true,
    };
    validate_with(flow, step_id, raw, &options)
}

/// Trims and NFC-normalizes every string in a JSON value, as the frontend does
/// before validating against the exported JSON Schema (JS:
/// `s.trim().normalize("NFC")`). Values nested deeper than [`MAX_DEPTH`] are
/// left as they are (they are rejected anyway).
pub fn normalize_strings(value: &Value) -> Value {
    fn go(value: &Value, depth: usize) -> Value {
        if depth > MAX_DEPTH {
            return value.clone();
        }
        match value {
            Value::String(s) => Value::String(normalize_text(s)),
            Value::Array(items) => Value::Array(items.iter().map(|v| go(v, depth + 1)).collect()),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), go(v, depth + 1)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
    go(value, 1)
}

/// Answers so far and the flag lookup, for evaluating conditions.
pub(crate) type Context<'a> = (&'a AnswerMap, &'a dyn Fn(&str) -> bool);

/// How strictly to validate; crate-internal so `transform` can re-read stored
/// answers without the request context.
pub(crate) struct Options<'a> {
    /// Missing required fields are fine.
    pub(crate) draft: bool,
    /// Answers and flags for conditions. `None`: conditional fields are allowed
    /// when present and never required (stored data, validated when saved).
    pub(crate) context: Option<Context<'a>>,
    /// Reject submissions to steps hidden by their condition.
    pub(crate) check_step_visibility: bool,
}

/// JSON pointer token escaping (RFC 6901).
fn pointer(segments: &[&str]) -> String {
    segments
        .iter()
        .map(|s| format!("/{}", s.replace('~', "~0").replace('/', "~1")))
        .collect()
}

fn check_limits(raw: &Value) -> Result<(), ValidationErrors> {
    // Iterative on purpose: hostile input must not be able to overflow the stack.
    let mut stack: Vec<(&Value, usize)> = vec![(raw, 1)];
    let mut nodes = 1usize;
    while let Some((value, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(map) => Box::new(map.values()),
            _ => continue,
        };
        let (count, _) = children.size_hint();
        if count == 0 {
            continue;
        }
        if depth + 1 > MAX_DEPTH {
            return Err(ValidationErrors::single(
                String::new(),
                ErrorCode::TooDeep,
                format!("nested deeper than {MAX_DEPTH} levels"),
                Some(json!(MAX_DEPTH)),
            ));
        }
        nodes = nodes.saturating_add(count);
        if nodes > MAX_NODES {
            return Err(ValidationErrors::single(
                String::new(),
                ErrorCode::TooLarge,
                format!("more than {MAX_NODES} values"),
                Some(json!(MAX_NODES)),
            ));
        }
        stack.extend(children.map(|child| (child, depth + 1)));
    }
    Ok(())
}

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
                    let r = crate::wizard::flow::FieldRef::parse(r);
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
            }),
            (_, None) => {
                if field.required && !options.draft && visibility == Visibility::Shown {
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
                        if field.required && !options.draft && visibility == Visibility::Shown {
                            errors.push(required(field));
                        }
                    }
                    None => failed.push(&field.name),
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(StepAnswers {
            step: step.id.clone(),
            values,
        })
    } else {
        Err(ValidationErrors(errors))
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
    }
}

fn err(ptr: String, code: ErrorCode, message: String, limit: Option<Value>) -> FieldError {
    FieldError {
        pointer: ptr,
        code,
        message,
        limit,
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Normalizes a string value and rejects control characters. `Ok(None)` for
/// an empty string.
fn string_value(
    ptr: &str,
    value: &Value,
    allow_newline: bool,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    let Value::String(s) = value else {
        errors.push(err(
            ptr.to_owned(),
            ErrorCode::InvalidType,
            format!("expected a string, got {}", type_name(value)),
            None,
        ));
        return None;
    };
    let s = normalize_text(s);
    if has_control_character(&s, allow_newline) {
        errors.push(err(
            ptr.to_owned(),
            ErrorCode::ControlCharacter,
            "must not contain control characters".into(),
            None,
        ));
        return None;
    }
    Some(s)
}

/// Parses one present, non-null value. `None` with no new error means "empty
/// string" (unanswered).
fn parse_field(
    field: &FieldDefinition,
    value: &Value,
    errors: &mut Vec<FieldError>,
) -> Option<AnswerValue> {
    let ptr = pointer(&[&field.name]);
    let before = errors.len();
    let parsed = match &field.kind {
        FieldKind::Boolean => match value {
            Value::Bool(b) => Some(AnswerValue::Bool(*b)),
            other => {
                errors.push(err(
                    ptr,
                    ErrorCode::InvalidType,
                    format!("expected a boolean, got {}", type_name(other)),
                    None,
                ));
                None
            }
        },
        FieldKind::Number {
            minimum,
            maximum,
            integer,
        } => parse_number(&ptr, value, *minimum, *maximum, *integer, errors),
        FieldKind::MultiEnum {
            options,
            min_items,
            max_items,
        } => {
            let max = FieldKind::multi_max(options, *max_items);
            parse_multi_enum(&ptr, value, options, *min_items, max, errors)
        }
        FieldKind::EmailList { max_items } => parse_email_list(&ptr, value, *max_items, errors),
        kind => {
            let allow_newline = matches!(kind, FieldKind::Text { max_length, .. } if *max_length > MULTI_LINE_THRESHOLD);
            let s = string_value(&ptr, value, allow_newline, errors)?;
            if s.is_empty() {
                return None;
            }
            check_string_kind(&ptr, kind, &s, errors).then_some(AnswerValue::Text(s))
        }
    };
    if errors.len() > before { None } else { parsed }
}

fn check_string_kind(ptr: &str, kind: &FieldKind, s: &str, errors: &mut Vec<FieldError>) -> bool {
    let len = s.chars().count();
    let too_long = |max: u32, errors: &mut Vec<FieldError>| -> bool {
        if len > usize::try_from(max).unwrap_or(usize::MAX) {
            errors.push(err(
                ptr.to_owned(),
                ErrorCode::TooLong,
                format!("must be at most {max} characters"),
                Some(json!(max)),
            ));
            true
        } else {
            false
        }
    };
    match kind {
        FieldKind::Text {
            min_length,
            max_length,
        } => {
            if len < usize::try_from(*min_length).unwrap_or(usize::MAX) {
                errors.push(err(
                    ptr.to_owned(),
                    ErrorCode::TooShort,
                    format!("must be at least {min_length} characters"),
                    Some(json!(min_length)),
                ));
                return false;
            }
            !too_long(*max_length, errors)
        }
        FieldKind::Email => {
            if too_long(crate::wizard::flow::MAX_EMAIL_LENGTH, errors) {
                return false;
            }
            if !is_valid_email(s) {
                errors.push(err(
                    ptr.to_owned(),
                    ErrorCode::InvalidEmail,
                    "must be a valid e-mail address".into(),
                    None,
                ));
                return false;
            }
            true
        }
        FieldKind::Url => {
            if too_long(crate::wizard::flow::MAX_URL_LENGTH, errors) {
                return false;
            }
            if !is_valid_url(s) {
                errors.push(err(
                    ptr.to_owned(),
                    ErrorCode::InvalidUrl,
                    "must be an http:// or https:// address such as https://example.com".into(),
                    None,
                ));
                return false;
            }
            true
        }
        FieldKind::Enum { options } => {
            if options.iter().any(|o| o == s) {
                true
            } else {
                errors.push(err(
                    ptr.to_owned(),
                    ErrorCode::NotInEnum,
                    "must be one of the offered options".into(),
                    Some(json!(options)),
                ));
                false
            }
        }
        FieldKind::Slug { max_length } => {
            let max = max_length.unwrap_or(crate::wizard::flow::MAX_SLUG_LENGTH);
            if too_long(max, errors) {
                return false;
            }
            if !crate::wizard::flow::is_slug(s, usize::MAX) {
                errors.push(err(
                    ptr.to_owned(),
                    ErrorCode::InvalidSlug,
                    "must use lowercase letters, digits and inner hyphens only".into(),
                    None,
                ));
                return false;
            }
            true
        }
        FieldKind::Timezone => {
            if is_iana_time_zone(s) {
                true
            } else {
                errors.push(err(
                    ptr.to_owned(),
                    ErrorCode::InvalidTimezone,
                    "must be an IANA time zone such as Europe/Berlin".into(),
                    None,
                ));
                false
            }
        }
        FieldKind::Boolean
        | FieldKind::Number { .. }
        | FieldKind::MultiEnum { .. }
        | FieldKind::EmailList { .. } => false,
    }
}

fn parse_number(
    ptr: &str,
    value: &Value,
    minimum: Option<f64>,
    maximum: Option<f64>,
    integer: bool,
    errors: &mut Vec<FieldError>,
) -> Option<AnswerValue> {
    let Value::Number(n) = value else {
        errors.push(err(
            ptr.to_owned(),
            ErrorCode::InvalidType,
            format!("expected a number, got {}", type_name(value)),
            None,
        ));
        return None;
    };
    let f = n.as_f64()?;
    let canonical = if integer {
        if n.is_i64() || n.is_u64() {
            n.clone()
        } else if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 {
            // JSON Schema counts 3.0 as an integer; store it as 3. The bound is
            // 2^53 so the conversion below is exact.
            #[allow(clippy::cast_possible_truncation)]
            Number::from(f as i64)
        } else {
            errors.push(err(
                ptr.to_owned(),
                ErrorCode::NotInteger,
                "must be a whole number".into(),
                None,
            ));
            return None;
        }
    } else {
        n.clone()
    };
    if minimum.is_some_and(|m| f < m) || maximum.is_some_and(|m| f > m) {
        errors.push(err(
            ptr.to_owned(),
            ErrorCode::OutOfRange,
            match (minimum, maximum) {
                (Some(lo), Some(hi)) => format!("must be between {lo} and {hi}"),
                (Some(lo), None) => format!("must be at least {lo}"),
                (_, Some(hi)) => format!("must be at most {hi}"),
                (None, None) => "out of range".into(),
            },
            Some(json!({ "minimum": minimum, "maximum": maximum })),
        ));
        return None;
    }
    Some(AnswerValue::Number(canonical))
}

fn list_items<'v>(
    ptr: &str,
    value: &'v Value,
    min: u32,
    max: u32,
    errors: &mut Vec<FieldError>,
) -> Option<&'v [Value]> {
    let Value::Array(items) = value else {
        errors.push(err(
            ptr.to_owned(),
            ErrorCode::InvalidType,
            format!("expected an array, got {}", type_name(value)),
            None,
        ));
        return None;
    };
    let len = items.len();
    if len > usize::try_from(max).unwrap_or(usize::MAX) {
        errors.push(err(
            ptr.to_owned(),
            ErrorCode::TooManyItems,
            format!("choose at most {max}"),
            Some(json!(max)),
        ));
    } else if len < usize::try_from(min).unwrap_or(usize::MAX) {
        errors.push(err(
            ptr.to_owned(),
            ErrorCode::TooFewItems,
            format!("choose at least {min}"),
            Some(json!(min)),
        ));
    }
    Some(items)
}

fn parse_multi_enum(
    ptr: &str,
    value: &Value,
    options: &[String],
    min: u32,
    max: u32,
    errors: &mut Vec<FieldError>,
) -> Option<AnswerValue> {
    let items = list_items(ptr, value, min, max, errors)?;
    let mut chosen = vec![false; options.len()];
    for (i, item) in items.iter().enumerate() {
        let item_ptr = format!("{ptr}/{i}");
        let Some(s) = string_value(&item_ptr, item, false, errors) else {
            continue;
        };
        match options.iter().position(|o| *o == s) {
            None => errors.push(err(
                item_ptr,
                ErrorCode::NotInEnum,
                "must be one of the offered options".into(),
                Some(json!(options)),
            )),
            Some(index) => {
                if let Some(slot) = chosen.get_mut(index) {
                    if *slot {
                        errors.push(err(
                            item_ptr,
                            ErrorCode::DuplicateItem,
                            format!("`{s}` is listed twice"),
                            None,
                        ));
                    }
                    *slot = true;
                }
            }
        }
    }
    // Canonical order is option order, so the stored value does not depend on
    // the order the user clicked in.
    Some(AnswerValue::List(
        options
            .iter()
            .zip(&chosen)
            .filter(|(_, c)| **c)
            .map(|(o, _)| o.clone())
            .collect(),
    ))
}

fn parse_email_list(
    ptr: &str,
    value: &Value,
    max: u32,
    errors: &mut Vec<FieldError>,
) -> Option<AnswerValue> {
    let items = list_items(ptr, value, 0, max, errors)?;
    let mut out = Vec::with_capacity(items.len());
    // Case-insensitive: the same inbox typed twice with different case.
    let mut seen = std::collections::BTreeSet::new();
    for (i, item) in items.iter().enumerate() {
        let item_ptr = format!("{ptr}/{i}");
        let Some(s) = string_value(&item_ptr, item, false, errors) else {
            continue;
        };
        if s.chars().count() > crate::wizard::flow::MAX_EMAIL_LENGTH as usize {
            errors.push(err(
                item_ptr,
                ErrorCode::TooLong,
                format!(
                    "must be at most {} characters",
                    crate::wizard::flow::MAX_EMAIL_LENGTH
                ),
                Some(json!(crate::wizard::flow::MAX_EMAIL_LENGTH)),
            ));
        } else if !is_valid_email(&s) {
            errors.push(err(
                item_ptr,
                ErrorCode::InvalidEmail,
                "must be a valid e-mail address".into(),
                None,
            ));
        } else if !seen.insert(s.to_ascii_lowercase()) {
            errors.push(err(
                item_ptr,
                ErrorCode::DuplicateItem,
                format!("`{s}` is listed twice"),
                None,
            ));
        } else {
            out.push(s);
        }
    }
    Some(AnswerValue::List(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wizard::flow::default_flow;

    fn no_flags(_: &str) -> bool {
        false
    }

    fn team_on(key: &str) -> bool {
        key == "teamInvites"
    }

    /// A flow with every field kind, for the kinds the default flow lacks.
    fn kitchen_sink() -> Flow {
        Flow::from_value(json!({
            "id": "sink", "version": 1,
            "steps": [{ "id": "all", "title": "All", "fields": [
                { "name": "short", "label": "Short", "kind": { "type": "text", "minLength": 2, "maxLength": 5 } },
                { "name": "long", "label": "Long", "kind": { "type": "text", "maxLength": 1000 } },
                { "name": "email", "label": "Email", "kind": { "type": "email" } },
                { "name": "count", "label": "Count", "kind": { "type": "number", "minimum": 1, "maximum": 10, "integer": true } },
                { "name": "ratio", "label": "Ratio", "kind": { "type": "number", "minimum": 0, "maximum": 1 } },
                { "name": "hasSite", "label": "Has site", "kind": { "type": "boolean" } },
                { "name": "site", "label": "Site", "required": true, "kind": { "type": "url" },
                  "condition": { "field": "hasSite", "equals": true } },
                { "name": "beta", "label": "Beta", "kind": { "type": "boolean" },
                  "condition": { "flag": "beta" } }
            ]}]
        }))
        .expect("valid flow")
    }

    fn sink(raw: Value) -> Result<StepAnswers, ValidationErrors> {
        validate_draft(&kitchen_sink(), "all", &raw, &AnswerMap::new(), &no_flags)
    }

    fn codes(result: Result<StepAnswers, ValidationErrors>) -> Vec<(String, &'static str)> {
        match result {
            Ok(_) => Vec::new(),
            Err(e) => e
                .errors()
                .iter()
                .map(|e| (e.pointer.clone(), e.code.as_str()))
                .collect(),
        }
    }

    fn step(step: &str, raw: Value) -> Result<StepAnswers, ValidationErrors> {
        let flow = default_flow().expect("parses");
        let mut answers = AnswerMap::new();
        answers.insert("organization".into(), json!({ "size": "2-10" }));
        validate_step(&flow, step, &raw, &answers, &team_on)
    }

    fn one(step_id: &str, raw: Value) -> (String, &'static str) {
        let c = codes(step(step_id, raw));
        assert_eq!(c.len(), 1, "{c:?}");
        c.into_iter().next().unwrap_or_default()
    }

    #[test]
    fn accepts_a_complete_profile_and_normalizes_it() {
        let ok = step(
            "profile",
            json!({ "fullName": "  Zoe\u{0308} Ada ", "jobRole": "founder" }),
        )
        .expect("valid");
        assert_eq!(ok.text("fullName"), Some("Zo\u{eb} Ada"));
        assert_eq!(
            ok.to_json(),
            json!({ "fullName": "Zo\u{eb} Ada", "jobRole": "founder" })
        );
    }

    #[test]
    fn rejects_a_missing_required_field() {
        assert_eq!(one("profile", json!({})), ("/fullName".into(), "required"));
    }

    #[test]
    fn treats_null_and_blank_strings_as_unanswered() {
        assert_eq!(
            one("profile", json!({ "fullName": null })),
            ("/fullName".into(), "required")
        );
        assert_eq!(
            one("profile", json!({ "fullName": " \t " })),
            ("/fullName".into(), "required")
        );
        let ok = step("profile", json!({ "fullName": "Ada", "jobRole": "" })).expect("valid");
        assert_eq!(ok.get("jobRole"), None);
    }

    #[test]
    fn rejects_text_that_is_too_short() {
        assert_eq!(
            codes(sink(json!({ "short": "a" }))),
            [("/short".into(), "too_short")]
        );
    }

    #[test]
    fn rejects_text_that_is_too_long_counting_unicode_scalars() {
        let e = step("profile", json!({ "fullName": "x".repeat(101) })).expect_err("long");
        assert_eq!(e.errors()[0].code, ErrorCode::TooLong);
        assert_eq!(e.errors()[0].limit, Some(json!(100)));
        // 100 four-byte characters are 100 long, not 400.
        assert!(step("profile", json!({ "fullName": "😀".repeat(100) })).is_ok());
    }

    #[test]
    fn counts_length_after_nfc_composition() {
        // 5 letters with combining accents are 10 scalars raw, 5 after NFC.
        assert!(sink(json!({ "short": "e\u{301}e\u{301}e\u{301}e\u{301}e\u{301}" })).is_ok());
    }

    #[test]
    fn rejects_a_value_of_the_wrong_type() {
        assert_eq!(
            one("profile", json!({ "fullName": 7 })),
            ("/fullName".into(), "invalid_type")
        );
        assert_eq!(
            one("goals", json!({ "useCases": "analytics" })),
            ("/useCases".into(), "invalid_type")
        );
        assert_eq!(
            one(
                "preferences",
                json!({ "productUpdates": "yes", "weeklyDigest": true,
                                        "timezone": "UTC", "locale": "en-US" })
            ),
            ("/productUpdates".into(), "invalid_type")
        );
    }

    #[test]
    fn rejects_an_email_without_a_domain() {
        assert_eq!(
            codes(sink(json!({ "email": "ada@" }))),
            [("/email".into(), "invalid_email")]
        );
    }

    #[test]
    fn rejects_an_email_longer_than_254_characters() {
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(
            codes(sink(json!({ "email": long }))),
            [("/email".into(), "too_long")]
        );
    }

    #[test]
    fn rejects_a_url_that_is_not_http_or_https() {
        let raw = json!({ "name": "Acme", "slug": "acme", "size": "1", "industry": "saas",
                          "website": "ftp://acme.test" });
        assert_eq!(one("organization", raw), ("/website".into(), "invalid_url"));
    }

    #[test]
    fn rejects_a_url_longer_than_2048_characters() {
        let raw = json!({ "name": "Acme", "slug": "acme", "size": "1", "industry": "saas",
                          "website": format!("https://acme.test/{}", "a".repeat(2048)) });
        assert_eq!(one("organization", raw), ("/website".into(), "too_long"));
    }

    #[test]
    fn rejects_an_option_that_is_not_offered() {
        let e = step("profile", json!({ "fullName": "Ada", "jobRole": "ceo" })).expect_err("bad");
        assert_eq!(e.errors()[0].code, ErrorCode::NotInEnum);
        assert!(e.errors()[0].limit.as_ref().is_some_and(Value::is_array));
    }

    #[test]
    fn rejects_too_few_and_too_many_choices() {
        assert_eq!(
            one("goals", json!({ "useCases": [] })),
            ("/useCases".into(), "too_few_items")
        );
        let six = json!({ "useCases": ["analytics", "automation", "collaboration", "reporting",
                                       "integrations", "other"] });
        assert_eq!(one("goals", six), ("/useCases".into(), "too_many_items"));
    }

    #[test]
    fn rejects_a_choice_listed_twice_and_sorts_choices_in_option_order() {
        assert_eq!(
            one("goals", json!({ "useCases": ["reporting", "reporting"] })),
            ("/useCases/1".into(), "duplicate_item")
        );
        let ok = step("goals", json!({ "useCases": ["reporting", "analytics"] })).expect("valid");
        assert_eq!(
            ok.list("useCases"),
            Some(&["analytics".to_owned(), "reporting".to_owned()][..])
        );
    }

    #[test]
    fn rejects_invites_that_differ_only_in_case() {
        assert_eq!(
            one(
                "team",
                json!({ "invites": ["ada@example.com", "ADA@example.com"] })
            ),
            ("/invites/1".into(), "duplicate_item")
        );
    }

    #[test]
    fn rejects_more_than_twenty_invites() {
        let many: Vec<String> = (0..21).map(|i| format!("u{i}@example.com")).collect();
        assert_eq!(
            one("team", json!({ "invites": many })),
            ("/invites".into(), "too_many_items")
        );
    }

    #[test]
    fn reports_the_position_of_a_bad_invite() {
        assert_eq!(
            one(
                "team",
                json!({ "invites": ["ok@example.com", "not-an-email"] })
            ),
            ("/invites/1".into(), "invalid_email")
        );
    }

    #[test]
    fn rejects_a_number_out_of_range_or_not_whole() {
        assert_eq!(
            codes(sink(json!({ "count": 11 }))),
            [("/count".into(), "out_of_range")]
        );
        assert_eq!(
            codes(sink(json!({ "ratio": -0.5 }))),
            [("/ratio".into(), "out_of_range")]
        );
        assert_eq!(
            codes(sink(json!({ "count": 2.5 }))),
            [("/count".into(), "not_integer")]
        );
        assert_eq!(
            codes(sink(json!({ "count": "3" }))),
            [("/count".into(), "invalid_type")]
        );
        let ok = sink(json!({ "count": 3.0, "ratio": 0.25 })).expect("valid");
        assert_eq!(ok.to_json(), json!({ "count": 3, "ratio": 0.25 }));
    }

    #[test]
    fn rejects_an_uppercase_slug() {
        let raw = json!({ "name": "Acme", "slug": "Acme", "size": "1", "industry": "saas" });
        assert_eq!(one("organization", raw), ("/slug".into(), "invalid_slug"));
    }

    #[test]
    fn rejects_a_slug_longer_than_63_characters() {
        let raw =
            json!({ "name": "Acme", "slug": "a".repeat(64), "size": "1", "industry": "saas" });
        assert_eq!(one("organization", raw), ("/slug".into(), "too_long"));
    }

    #[test]
    fn rejects_a_time_zone_that_is_not_iana() {
        let raw = json!({ "productUpdates": true, "weeklyDigest": true,
                          "timezone": "Central European Time", "locale": "de-DE" });
        assert_eq!(
            one("preferences", raw),
            ("/timezone".into(), "invalid_timezone")
        );
    }

    #[test]
    fn rejects_control_characters_in_single_line_text() {
        for bad in [
            "Ada\u{0}Lovelace",
            "Ada\tLovelace",
            "Ada\nLovelace",
            "Ada\u{9B}",
        ] {
            assert_eq!(
                one("profile", json!({ "fullName": bad })),
                ("/fullName".into(), "control_character"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn allows_newlines_but_not_carriage_returns_in_long_text() {
        assert!(sink(json!({ "long": "line one\nline two" })).is_ok());
        assert_eq!(
            codes(sink(json!({ "long": "a\r\nb" }))),
            [("/long".into(), "control_character")]
        );
        // primaryGoal (maxLength 500) is multi-line.
        assert!(
            step(
                "goals",
                json!({ "useCases": ["other"], "primaryGoal": "a\nb" })
            )
            .is_ok()
        );
    }

    #[test]
    fn rejects_an_unknown_field() {
        assert_eq!(
            one("profile", json!({ "fullName": "Ada", "is_admin": true })),
            ("/is_admin".into(), "unknown_field")
        );
        // Pointer tokens are escaped per RFC 6901.
        assert_eq!(
            one("profile", json!({ "fullName": "Ada", "a/b~c": 1 })),
            ("/a~1b~0c".into(), "unknown_field")
        );
    }

    #[test]
    fn rejects_answers_that_are_not_an_object() {
        assert_eq!(
            one("profile", json!(["Ada"])),
            (String::new(), "not_an_object")
        );
    }

    #[test]
    fn reports_all_errors_at_once() {
        let raw = json!({ "name": "", "slug": "-bad-", "size": "huge", "industry": 3,
                          "website": "nope", "extra": 1 });
        let c = codes(step("organization", raw));
        assert_eq!(
            c,
            [
                ("/extra".into(), "unknown_field"),
                ("/name".into(), "required"),
                ("/slug".into(), "invalid_slug"),
                ("/size".into(), "not_in_enum"),
                ("/industry".into(), "invalid_type"),
                ("/website".into(), "invalid_url"),
            ]
        );
    }

    #[test]
    fn a_draft_may_omit_required_fields_but_not_break_rules() {
        let flow = default_flow().expect("parses");
        let draft =
            |raw: Value| validate_draft(&flow, "organization", &raw, &AnswerMap::new(), &no_flags);
        assert!(draft(json!({ "name": "Acme" })).is_ok());
        assert!(draft(json!({})).is_ok());
        assert_eq!(
            codes(draft(json!({ "name": "x".repeat(101) }))),
            [("/name".into(), "too_long")]
        );
        assert_eq!(
            codes(draft(json!({ "name": 1 }))),
            [("/name".into(), "invalid_type")]
        );
        assert_eq!(
            codes(draft(json!({ "nope": 1 }))),
            [("/nope".into(), "unknown_field")]
        );
    }

    #[test]
    fn a_field_shown_by_a_condition_is_required_and_hidden_it_must_be_absent() {
        let flow = kitchen_sink();
        let complete = |raw: Value| validate_step(&flow, "all", &raw, &AnswerMap::new(), &no_flags);
        assert_eq!(
            codes(complete(json!({ "hasSite": true }))),
            [("/site".into(), "required")]
        );
        assert!(complete(json!({ "hasSite": true, "site": "https://a.io" })).is_ok());
        assert!(complete(json!({ "hasSite": false })).is_ok());
        assert_eq!(
            codes(complete(
                json!({ "hasSite": false, "site": "https://a.io" })
            )),
            [("/site".into(), "hidden_field")]
        );
        // A hidden field sent as null is the same as absent.
        assert!(complete(json!({ "hasSite": false, "site": null })).is_ok());
    }

    #[test]
    fn a_field_behind_a_flag_is_hidden_while_the_flag_is_off() {
        let flow = kitchen_sink();
        let raw = json!({ "beta": true });
        let off = validate_draft(&flow, "all", &raw, &AnswerMap::new(), &no_flags);
        assert_eq!(codes(off), [("/beta".into(), "hidden_field")]);
        assert!(validate_draft(&flow, "all", &raw, &AnswerMap::new(), &|k| k == "beta").is_ok());
    }

    #[test]
    fn a_field_depending_on_a_broken_field_gets_no_extra_error() {
        let c = codes(sink(json!({ "hasSite": "yes", "site": "https://a.io" })));
        assert_eq!(c, [("/hasSite".into(), "invalid_type")]);
    }

    #[test]
    fn rejects_a_submission_to_a_hidden_or_unknown_step() {
        let flow = default_flow().expect("parses");
        let mut answers = AnswerMap::new();
        answers.insert("organization".into(), json!({ "size": "1" }));
        let e = validate_step(&flow, "team", &json!({}), &answers, &team_on).expect_err("hidden");
        assert_eq!(e.errors()[0].code, ErrorCode::HiddenStep);
        let e =
            validate_step(&flow, "billing", &json!({}), &answers, &team_on).expect_err("unknown");
        assert_eq!(e.errors()[0].code, ErrorCode::UnknownStep);
    }

    #[test]
    fn rejects_deep_nesting_without_recursing() {
        // Built by hand: serde_json's parser would stop at 128 levels, but a
        // Value can be constructed deeper than any stack allows recursion for.
        let mut deep = json!(1);
        for _ in 0..100_000 {
            deep = Value::Array(vec![deep]);
        }
        // Not json!: it would serialize `deep` recursively.
        let raw = Value::Object(Map::from_iter([("fullName".to_owned(), deep)]));
        let flow = default_flow().expect("parses");
        let e = validate_step(&flow, "profile", &raw, &AnswerMap::new(), &no_flags)
            .expect_err("too deep");
        assert_eq!(e.errors()[0].code, ErrorCode::TooDeep);
        assert_eq!(e.errors()[0].pointer, "");
        // Dropping such a value recursively would overflow the stack, so take it apart iteratively.
        let mut stack = vec![raw];
        while let Some(v) = stack.pop() {
            match v {
                Value::Array(items) => stack.extend(items),
                Value::Object(map) => stack.extend(map.into_iter().map(|(_, v)| v)),
                _ => {}
            }
        }
    }

    #[test]
    fn rejects_too_many_values_before_doing_any_work() {
        let raw = json!({ "invites": vec![json!(0); MAX_NODES + 1] });
        assert_eq!(one("team", raw), (String::new(), "too_large"));
    }

    #[test]
    fn errors_serialize_as_a_list_of_pointer_code_message_limit() {
        let e = step("profile", json!({ "fullName": "x".repeat(101) })).expect_err("long");
        let v = serde_json::to_value(&e).expect("serializes");
        assert_eq!(v[0]["pointer"], "/fullName");
        assert_eq!(v[0]["code"], "too_long");
        assert_eq!(v[0]["limit"], 100);
        assert!(v[0]["message"].as_str().is_some_and(|m| !m.is_empty()));
        let as_error: &dyn std::error::Error = &e;
        assert!(as_error.to_string().contains("too_long"));
    }

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
