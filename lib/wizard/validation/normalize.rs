//! The frontend's normalization of a whole JSON value (trim + NFC of every
//! string), so the schema-agreement tests can hand the exported JSON Schema
//! exactly what the browser would. The server itself normalizes field by field
//! while validating.

use serde_json::Value;

use super::limits::MAX_DEPTH;
use super::rules::normalize_text;

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
