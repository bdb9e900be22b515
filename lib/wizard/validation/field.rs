//! One present value of one field: its JSON type, normalization, and the
//! bounds of its kind. Every check pushes its error and says whether the value
//! may be kept, so one submission reports every broken field and list item at
//! once instead of stopping at the first.

use std::collections::BTreeSet;

use serde_json::{Number, Value, json};

use super::answers::AnswerValue;
use super::errors::{ErrorCode, FieldError, pointer};
use super::rules::{
    MULTI_LINE_THRESHOLD, has_control_character, is_iana_time_zone, is_valid_email, is_valid_url,
    normalize_text,
};
use crate::wizard::flow::{
    FieldDefinition, FieldKind, MAX_EMAIL_LENGTH, MAX_SLUG_LENGTH, MAX_URL_LENGTH, is_slug,
};

fn err(ptr: String, code: ErrorCode, message: String, limit: Option<Value>) -> FieldError {
    FieldError {
        pointer: ptr,
        code,
        message,
        limit,
        step: None,
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

/// `invalid_type`: `expected` is the JSON type wanted, with its article.
fn wrong_type(ptr: &str, expected: &str, value: &Value) -> FieldError {
    err(
        ptr.to_owned(),
        ErrorCode::InvalidType,
        format!("expected {expected}, got {}", type_name(value)),
        None,
    )
}

fn not_in_enum(ptr: String, options: &[String]) -> FieldError {
    err(
        ptr,
        ErrorCode::NotInEnum,
        "must be one of the offered options".into(),
        Some(json!(options)),
    )
}

fn listed_twice(ptr: String, item: &str) -> FieldError {
    err(
        ptr,
        ErrorCode::DuplicateItem,
        format!("`{item}` is listed twice"),
        None,
    )
}

/// Pushes `too_long` when `s` has more than `max` characters.
fn too_long(ptr: &str, s: &str, max: u32, errors: &mut Vec<FieldError>) -> bool {
    if s.chars().count() > usize::try_from(max).unwrap_or(usize::MAX) {
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
}

/// A value with a length cap and a shape (e-mail, URL, slug): the length is
/// checked first, so the shape check never runs on oversized input.
fn check_shape(
    ptr: &str,
    s: &str,
    max: u32,
    valid: impl Fn(&str) -> bool,
    code: ErrorCode,
    message: &str,
    errors: &mut Vec<FieldError>,
) -> bool {
    if too_long(ptr, s, max, errors) {
        return false;
    }
    if !valid(s) {
        errors.push(err(ptr.to_owned(), code, message.into(), None));
        return false;
    }
    true
}

/// An e-mail answer, or one item of an e-mail list.
fn check_email(ptr: &str, s: &str, errors: &mut Vec<FieldError>) -> bool {
    check_shape(
        ptr,
        s,
        MAX_EMAIL_LENGTH,
        is_valid_email,
        ErrorCode::InvalidEmail,
        "must be a valid e-mail address",
        errors,
    )
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
        errors.push(wrong_type(ptr, "a string", value));
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
pub(super) fn parse_field(
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
                errors.push(wrong_type(&ptr, "a boolean", other));
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
    match kind {
        FieldKind::Text {
            min_length,
            max_length,
        } => {
            if s.chars().count() < usize::try_from(*min_length).unwrap_or(usize::MAX) {
                errors.push(err(
                    ptr.to_owned(),
                    ErrorCode::TooShort,
                    format!("must be at least {min_length} characters"),
                    Some(json!(min_length)),
                ));
                return false;
            }
            !too_long(ptr, s, *max_length, errors)
        }
        FieldKind::Email => check_email(ptr, s, errors),
        FieldKind::Url => check_shape(
            ptr,
            s,
            MAX_URL_LENGTH,
            is_valid_url,
            ErrorCode::InvalidUrl,
            "must be an http:// or https:// address such as https://example.com",
            errors,
        ),
        FieldKind::Enum { options } => {
            if options.iter().any(|o| o == s) {
                true
            } else {
                errors.push(not_in_enum(ptr.to_owned(), options));
                false
            }
        }
        FieldKind::Slug { max_length } => check_shape(
            ptr,
            s,
            max_length.unwrap_or(MAX_SLUG_LENGTH),
            |s| is_slug(s, usize::MAX),
            ErrorCode::InvalidSlug,
            "must use lowercase letters, digits and inner hyphens only",
            errors,
        ),
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
        errors.push(wrong_type(ptr, "a number", value));
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
        errors.push(wrong_type(ptr, "an array", value));
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
            None => errors.push(not_in_enum(item_ptr, options)),
            Some(index) => {
                if let Some(slot) = chosen.get_mut(index) {
                    if *slot {
                        errors.push(listed_twice(item_ptr, &s));
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
    let mut seen = BTreeSet::new();
    for (i, item) in items.iter().enumerate() {
        let item_ptr = format!("{ptr}/{i}");
        let Some(s) = string_value(&item_ptr, item, false, errors) else {
            continue;
        };
        if !check_email(&item_ptr, &s, errors) {
            continue;
        }
        if seen.insert(s.to_ascii_lowercase()) {
            out.push(s);
        } else {
            errors.push(listed_twice(item_ptr, &s));
        }
    }
    Some(AnswerValue::List(out))
}
