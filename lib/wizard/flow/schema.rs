//! JSON Schema (draft 2020-12) export of a step, for the frontend's validator.
//!
//! Agreement contract: the schema describes the **normalized** value. The
//! frontend trims every string and NFC-normalizes it
//! (`s.trim().normalize("NFC")`, see `crate::wizard::validation::normalize_strings`)
//! before validating; then the schema accepts exactly what the server accepts,
//! with these documented exceptions:
//! - e-mail lists: the server rejects addresses that differ only in case
//!   (`duplicate_item`); `uniqueItems` is case-sensitive.
//! - URLs: the server additionally requires a successful WHATWG URL parse, which
//!   rejects a few grammar-valid hosts such as malformed punycode (`xn--…`).
//! - Fields with a `condition` are listed as optional: visibility depends on
//!   other answers and flags, which a static schema does not see. The server
//!   requires them when shown and rejects them (`hidden_field`) when hidden.
//!   (The default flow has no conditional fields.)
//!
//! `null` is allowed for optional fields and `""` for optional string fields,
//! matching the server, which treats both as "not answered".

use serde_json::{Value, json};

use super::definition::{
    FieldDefinition, FieldKind, MAX_EMAIL_LENGTH, MAX_SLUG_LENGTH, MAX_URL_LENGTH, StepDefinition,
};
use super::timezones::IANA_TIME_ZONES;
use crate::wizard::validation::rules::{
    EMAIL_PATTERN, MULTI_LINE_PATTERN, MULTI_LINE_THRESHOLD, SINGLE_LINE_PATTERN, SLUG_PATTERN,
    URL_PATTERN,
};

const DRAFT_2020_12: &str = "https://json-schema.org/draft/2020-12/schema";

pub(super) fn step_schema(step: &StepDefinition, draft: bool) -> Value {
    let mut properties = serde_json::Map::new();
    let mut required = Vec::new();
    for field in &step.fields {
        let must = field.required && !draft && field.condition.is_none();
        let mut schema = if must {
            answered_value_schema(&field.kind)
        } else {
            optional(field)
        };
        if let Value::Object(map) = &mut schema {
            map.insert("title".into(), Value::String(field.label.clone()));
        }
        properties.insert(field.name.clone(), schema);
        if must {
            required.push(Value::String(field.name.clone()));
        }
    }
    json!({
        "$schema": DRAFT_2020_12,
        "title": step.title,
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

fn is_string_kind(kind: &FieldKind) -> bool {
    !matches!(
        kind,
        FieldKind::Boolean
            | FieldKind::Number { .. }
            | FieldKind::MultiEnum { .. }
            | FieldKind::EmailList { .. }
    )
}

fn optional(field: &FieldDefinition) -> Value {
    let mut alternatives = vec![json!({ "type": "null" })];
    if is_string_kind(&field.kind) {
        alternatives.push(json!({ "const": "" }));
    }
    alternatives.push(answered_value_schema(&field.kind));
    json!({ "anyOf": alternatives })
}

/// Schema of an answered (present, non-null, non-empty) value.
fn answered_value_schema(kind: &FieldKind) -> Value {
    let email =
        json!({ "type": "string", "maxLength": MAX_EMAIL_LENGTH, "pattern": EMAIL_PATTERN });
    match kind {
        FieldKind::Text {
            min_length,
            max_length,
        } => json!({
            "type": "string",
            // An empty answer counts as unanswered, so an answer has at least 1.
            "minLength": (*min_length).max(1),
            "maxLength": max_length,
            "pattern": if *max_length > MULTI_LINE_THRESHOLD { MULTI_LINE_PATTERN } else { SINGLE_LINE_PATTERN },
        }),
        FieldKind::Email => email,
        FieldKind::Url => {
            json!({ "type": "string", "maxLength": MAX_URL_LENGTH, "pattern": URL_PATTERN })
        }
        FieldKind::Enum { options } => json!({ "type": "string", "enum": options }),
        FieldKind::MultiEnum {
            options,
            min_items,
            max_items,
        } => json!({
            "type": "array",
            "items": { "type": "string", "enum": options },
            "uniqueItems": true,
            "minItems": min_items,
            "maxItems": FieldKind::multi_max(options, *max_items),
        }),
        FieldKind::Number {
            minimum,
            maximum,
            integer,
        } => {
            let mut s = serde_json::Map::new();
            s.insert(
                "type".into(),
                json!(if *integer { "integer" } else { "number" }),
            );
            if let Some(m) = minimum {
                s.insert("minimum".into(), json!(m));
            }
            if let Some(m) = maximum {
                s.insert("maximum".into(), json!(m));
            }
            Value::Object(s)
        }
        FieldKind::Boolean => json!({ "type": "boolean" }),
        FieldKind::Slug { max_length } => json!({
            "type": "string",
            "maxLength": max_length.unwrap_or(MAX_SLUG_LENGTH),
            "pattern": SLUG_PATTERN,
        }),
        FieldKind::Timezone => json!({ "type": "string", "enum": IANA_TIME_ZONES }),
        FieldKind::EmailList { max_items } => json!({
            "type": "array",
            "items": email,
            // Case-insensitive uniqueness is checked by the server only;
            // the description tells the client (Ajv's `uniqueItems` compares
            // exactly, and an unknown keyword would fail Ajv's strict mode).
            "uniqueItems": true,
            "maxItems": max_items,
            "description": "Addresses must differ case-insensitively: the server answers `duplicate_item` for `Ada@x.io` next to `ada@x.io`. Compare lowercased copies before validating to agree with it.",
        }),
    }
}

#[cfg(test)]
mod tests {
    use crate::wizard::flow::default_flow;

    #[test]
    fn exports_a_closed_object_schema_per_step() {
        let flow = default_flow().expect("parses");
        let schema = flow.step_json_schema("profile").expect("known step");
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
        assert_eq!(schema["type"], "object");
        assert_eq!(schema["additionalProperties"], false);
        assert_eq!(schema["required"], serde_json::json!(["fullName"]));
        assert_eq!(schema["properties"]["fullName"]["maxLength"], 100);
        assert!(flow.step_json_schema("nope").is_none());
    }

    #[test]
    fn the_draft_schema_requires_nothing() {
        let flow = default_flow().expect("parses");
        let schema = flow
            .step_draft_json_schema("preferences")
            .expect("known step");
        assert_eq!(schema["required"], serde_json::json!([]));
    }

    #[test]
    fn email_uses_the_whatwg_pattern_not_only_format() {
        let flow = default_flow().expect("parses");
        let schema = flow.step_json_schema("team").expect("known step");
        let items = &schema["properties"]["invites"]["anyOf"][1]["items"];
        assert_eq!(items["pattern"], crate::wizard::validation::EMAIL_PATTERN);
    }
}
