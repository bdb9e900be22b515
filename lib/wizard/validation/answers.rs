//! What a successful validation returns: typed, normalized answers. A
//! [`StepAnswers`] can only be built by validation, so holding one is proof
//! that its values passed.

use std::collections::BTreeMap;

use serde_json::{Number, Value};

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
    /// Only for validation, once every value has passed.
    pub(super) fn new(step: String, values: BTreeMap<String, AnswerValue>) -> Self {
        StepAnswers { step, values }
    }

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
