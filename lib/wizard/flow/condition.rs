//! Conditions that show or hide steps and fields.
//!
//! JSON forms (exactly one key set per object):
//! - `{ "field": "step.field", "equals": <json> }` or `{ "field": "field", "equals": ... }`
//!   (a bare field name refers to the step the condition sits in)
//! - `{ "field": "...", "in": [<json>, ...] }`
//! - `{ "flag": "flagKey" }`: true when the flag is on
//! - `{ "not": <condition> }`, `{ "all": [<condition>, ...] }`, `{ "any": [<condition>, ...] }`
//!
//! A field that has no answer compares unequal to everything, so `equals` and
//! `in` are false and `not` of them is true.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::answers::AnswerMap;

/// A visibility rule, evaluated against the answers so far and the feature flags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Value", into = "Value")]
pub enum Condition {
    /// The referenced answer equals the value.
    Equals {
        /// Field reference as written: `step.field` or `field`.
        field: String,
        /// Value to compare with (JSON equality on the normalized answer).
        value: Value,
    },
    /// The referenced answer equals one of the values.
    In {
        /// Field reference as written: `step.field` or `field`.
        field: String,
        /// Candidate values.
        values: Vec<Value>,
    },
    /// The feature flag is on.
    Flag(String),
    /// Negation.
    Not(Box<Condition>),
    /// Every condition holds (true when empty).
    All(Vec<Condition>),
    /// At least one condition holds (false when empty).
    Any(Vec<Condition>),
}

/// A resolved field reference: which step, which field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldRef<'a> {
    /// Step id; `None` means "the step the condition belongs to".
    pub step: Option<&'a str>,
    /// Field name.
    pub field: &'a str,
}

impl<'a> FieldRef<'a> {
    /// Splits `step.field` or `field`.
    pub fn parse(reference: &'a str) -> FieldRef<'a> {
        match reference.split_once('.') {
            Some((step, field)) => FieldRef {
                step: Some(step),
                field,
            },
            None => FieldRef {
                step: None,
                field: reference,
            },
        }
    }
}

impl Condition {
    /// Evaluates the condition.
    ///
    /// `current_step` resolves bare field names; `current` holds the (normalized)
    /// answers of that step seen so far, which take precedence over `answers`
    /// for that step because they are the values being submitted right now.
    pub fn evaluate(
        &self,
        current_step: &str,
        current: Option<&serde_json::Map<String, Value>>,
        answers: &AnswerMap,
        flags: &dyn Fn(&str) -> bool,
    ) -> bool {
        let lookup = |reference: &str| -> Option<&Value> {
            let r = FieldRef::parse(reference);
            let step = r.step.unwrap_or(current_step);
            if step == current_step
                && let Some(map) = current
            {
                return map.get(r.field);
            }
            answers.get(step)?.as_object()?.get(r.field)
        };
        self.eval_with(&lookup, flags)
    }

    fn eval_with<'v>(
        &self,
        lookup: &dyn Fn(&str) -> Option<&'v Value>,
        flags: &dyn Fn(&str) -> bool,
    ) -> bool {
        match self {
            Condition::Equals { field, value } => lookup(field) == Some(value),
            Condition::In { field, values } => {
                lookup(field).is_some_and(|answer| values.contains(answer))
            }
            Condition::Flag(key) => flags(key),
            Condition::Not(inner) => !inner.eval_with(lookup, flags),
            Condition::All(items) => items.iter().all(|c| c.eval_with(lookup, flags)),
            Condition::Any(items) => items.iter().any(|c| c.eval_with(lookup, flags)),
        }
    }

    /// Every field reference in the condition, as written.
    pub fn field_references(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_refs(&mut out);
        out
    }

    fn collect_refs<'s>(&'s self, out: &mut Vec<&'s str>) {
        match self {
            Condition::Equals { field, .. } | Condition::In { field, .. } => out.push(field),
            Condition::Flag(_) => {}
            Condition::Not(inner) => inner.collect_refs(out),
            Condition::All(items) | Condition::Any(items) => {
                items.iter().for_each(|c| c.collect_refs(out))
            }
        }
    }

    /// Every flag key in the condition.
    pub fn flag_references(&self) -> Vec<&str> {
        match self {
            Condition::Flag(key) => vec![key.as_str()],
            Condition::Equals { .. } | Condition::In { .. } => Vec::new(),
            Condition::Not(inner) => inner.flag_references(),
            Condition::All(items) | Condition::Any(items) => {
                items.iter().flat_map(|c| c.flag_references()).collect()
            }
        }
    }
}

/// Conditions nest; flows come from configuration, but a bound keeps a broken
/// config from recursing deeply at evaluation time.
const MAX_CONDITION_DEPTH: usize = 16;

impl TryFrom<Value> for Condition {
    type Error = String;

    fn try_from(value: Value) -> Result<Self, Self::Error> {
        parse_condition(value, 0)
    }
}

fn parse_condition(value: Value, depth: usize) -> Result<Condition, String> {
    if depth > MAX_CONDITION_DEPTH {
        return Err(format!(
            "condition nested deeper than {MAX_CONDITION_DEPTH}"
        ));
    }
    let Value::Object(mut map) = value else {
        return Err("a condition must be a JSON object".into());
    };
    let mut keys: Vec<&str> = map.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let shape = keys.join(",");
    let take_string = |map: &mut serde_json::Map<String, Value>, key: &str| match map.remove(key) {
        Some(Value::String(s)) => Ok(s),
        _ => Err(format!("condition key `{key}` must be a string")),
    };
    let take_list = |map: &mut serde_json::Map<String, Value>, key: &str| match map.remove(key) {
        Some(Value::Array(items)) => Ok(items),
        _ => Err(format!("condition key `{key}` must be an array")),
    };
    match shape.as_str() {
        "equals,field" => Ok(Condition::Equals {
            field: take_string(&mut map, "field")?,
            value: map.remove("equals").unwrap_or(Value::Null),
        }),
        "field,in" => Ok(Condition::In {
            field: take_string(&mut map, "field")?,
            values: take_list(&mut map, "in")?,
        }),
        "flag" => Ok(Condition::Flag(take_string(&mut map, "flag")?)),
        "not" => Ok(Condition::Not(Box::new(parse_condition(
            map.remove("not").unwrap_or(Value::Null),
            depth + 1,
        )?))),
        "all" => Ok(Condition::All(
            take_list(&mut map, "all")?
                .into_iter()
                .map(|v| parse_condition(v, depth + 1))
                .collect::<Result<_, _>>()?,
        )),
        "any" => Ok(Condition::Any(
            take_list(&mut map, "any")?
                .into_iter()
                .map(|v| parse_condition(v, depth + 1))
                .collect::<Result<_, _>>()?,
        )),
        other => Err(format!(
            "unrecognized condition with keys [{other}]; expected field+equals, field+in, flag, not, all or any"
        )),
    }
}

impl From<Condition> for Value {
    fn from(condition: Condition) -> Value {
        match condition {
            Condition::Equals { field, value } => {
                serde_json::json!({ "field": field, "equals": value })
            }
            Condition::In { field, values } => serde_json::json!({ "field": field, "in": values }),
            Condition::Flag(key) => serde_json::json!({ "flag": key }),
            Condition::Not(inner) => serde_json::json!({ "not": Value::from(*inner) }),
            Condition::All(items) => {
                serde_json::json!({ "all": items.into_iter().map(Value::from).collect::<Vec<_>>() })
            }
            Condition::Any(items) => {
                serde_json::json!({ "any": items.into_iter().map(Value::from).collect::<Vec<_>>() })
            }
        }
    }
}

/// The JSON forms in the module docs as a schema, by hand: conditions
/// (de)serialize through `serde_json::Value`, which the derive cannot see into.
impl utoipa::PartialSchema for Condition {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{
            AdditionalProperties, ArrayBuilder, ObjectBuilder, OneOfBuilder, Ref, Type,
        };
        let string = || ObjectBuilder::new().schema_type(Type::String);
        let any =
            || ObjectBuilder::new().schema_type(utoipa::openapi::schema::SchemaType::AnyValue);
        let conditions = || ArrayBuilder::new().items(Ref::from_schema_name("Condition"));
        let form = |description: &str,
                    keys: Vec<(
            &str,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>| {
            let mut object = ObjectBuilder::new()
                .schema_type(Type::Object)
                .description(Some(description))
                .additional_properties(Some(AdditionalProperties::FreeForm(false)));
            for (key, schema) in keys {
                object = object.property(key, schema).required(key);
            }
            object
        };
        OneOfBuilder::new()
            .description(Some(
                "Shows or hides a step or field. A field that has no answer compares unequal to everything.",
            ))
            .item(form(
                "The referenced answer (`step.field`, or `field` in the same step) equals the value",
                vec![("field", string().into()), ("equals", any().into())],
            ))
            .item(form(
                "The referenced answer equals one of the values",
                vec![
                    ("field", string().into()),
                    ("in", ArrayBuilder::new().items(any()).into()),
                ],
            ))
            .item(form("The feature flag is on", vec![("flag", string().into())]))
            .item(form(
                "Negation",
                vec![("not", Ref::from_schema_name("Condition").into())],
            ))
            .item(form(
                "Every condition holds (true when empty)",
                vec![("all", conditions().into())],
            ))
            .item(form(
                "At least one condition holds (false when empty)",
                vec![("any", conditions().into())],
            ))
            .into()
    }
}

impl utoipa::ToSchema for Condition {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cond(v: Value) -> Condition {
        Condition::try_from(v).expect("valid condition")
    }

    fn answers() -> AnswerMap {
        let mut a = AnswerMap::new();
        a.insert(
            "organization".into(),
            json!({ "size": "1", "industry": "saas" }),
        );
        a
    }

    #[test]
    fn equals_compares_the_answer_of_another_step() {
        let c = cond(json!({ "field": "organization.size", "equals": "1" }));
        assert!(c.evaluate("team", None, &answers(), &|_| false));
        let c = cond(json!({ "field": "organization.size", "equals": "2-10" }));
        assert!(!c.evaluate("team", None, &answers(), &|_| false));
    }

    #[test]
    fn in_matches_any_listed_value() {
        let c = cond(json!({ "field": "organization.industry", "in": ["fintech", "saas"] }));
        assert!(c.evaluate("team", None, &answers(), &|_| false));
    }

    #[test]
    fn a_missing_answer_is_unequal_to_everything() {
        let c = cond(json!({ "field": "organization.website", "equals": null }));
        assert!(!c.evaluate("team", None, &answers(), &|_| false));
        let c = cond(json!({ "not": { "field": "nowhere.x", "in": ["a"] } }));
        assert!(c.evaluate("team", None, &answers(), &|_| false));
    }

    #[test]
    fn a_bare_field_name_refers_to_the_current_step_values() {
        let c = cond(json!({ "field": "size", "equals": "1" }));
        let current = json!({ "size": "2-10" });
        assert!(!c.evaluate("organization", current.as_object(), &answers(), &|_| false));
        assert!(c.evaluate("organization", None, &answers(), &|_| false));
    }

    #[test]
    fn flags_and_combinators_compose() {
        let c = cond(json!({ "all": [
            { "flag": "teamInvites" },
            { "not": { "field": "organization.size", "equals": "1" } }
        ]}));
        assert!(!c.evaluate("team", None, &answers(), &|k| k == "teamInvites"));
        let c = cond(json!({ "any": [{ "flag": "a" }, { "flag": "b" }] }));
        assert!(c.evaluate("x", None, &AnswerMap::new(), &|k| k == "b"));
        assert!(!c.evaluate("x", None, &AnswerMap::new(), &|_| false));
        assert!(cond(json!({ "all": [] })).evaluate("x", None, &AnswerMap::new(), &|_| false));
    }

    #[test]
    fn rejects_ambiguous_or_unknown_condition_shapes() {
        assert!(Condition::try_from(json!({ "flag": "a", "not": { "flag": "b" } })).is_err());
        assert!(Condition::try_from(json!({ "field": "a.b" })).is_err());
        assert!(Condition::try_from(json!("flag")).is_err());
        assert!(Condition::try_from(json!({ "flag": 3 })).is_err());
    }

    #[test]
    fn round_trips_through_json() {
        let v = json!({ "any": [
            { "field": "a.b", "equals": 1 },
            { "field": "c", "in": ["x"] },
            { "not": { "flag": "f" } },
            { "all": [] }
        ]});
        assert_eq!(Value::from(cond(v.clone())), v);
    }

    #[test]
    fn rejects_absurdly_deep_conditions() {
        let mut v = json!({ "flag": "f" });
        for _ in 0..40 {
            v = json!({ "not": v });
        }
        assert!(Condition::try_from(v).is_err());
    }
}
