//! Carrying drafts saved under an older flow version to the current one, by
//! the flow's declared rules only. Whatever no longer validates afterwards is
//! reported with its value, never silently dropped and never guessed at.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::wizard::flow::{AnswerMap, Flow, UpgradeRule};
use crate::wizard::validation::{Options, StepAnswers, Submission, validate_with};

/// Something the user has to look at again after an upgrade.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FieldAttention {
    /// Step id.
    pub step: String,
    /// JSON pointer inside the step (`""` for the whole step).
    pub pointer: String,
    /// Machine code: a validation error code (e.g. `not_in_enum`), or
    /// `rename_conflict`, `unknown_step`, `step_added`.
    pub reason: String,
    /// Human explanation.
    pub message: String,
    /// The stored value set aside (the whole field, or the whole step), so it can
    /// be shown to the user or kept for audit. `None` for `step_added`.
    #[schema(required = true)]
    pub value: Option<Value>,
}

/// Result of [`upgrade`].
#[derive(Debug, Clone, PartialEq)]
pub struct UpgradeOutcome {
    /// Answers that validate (as drafts) under the current flow version.
    pub answers: BTreeMap<String, StepAnswers>,
    /// Everything set aside or newly needed, in step order.
    pub needs_attention: Vec<FieldAttention>,
    /// The version the answers now belong to.
    pub version: u32,
}

/// Why drafts could not be upgraded at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpgradeError {
    /// The drafts are newer than the flow (a deploy is behind the data).
    #[error("drafts are from version {from}, newer than flow version {current}")]
    NewerThanFlow {
        /// Version of the drafts.
        from: u32,
        /// Version of the flow.
        current: u32,
    },
    /// No declared upgrade starts at this version.
    #[error("no upgrade declared from version {from} (flow is at version {current})")]
    NoPath {
        /// Version with no outgoing upgrade.
        from: u32,
        /// Version of the flow.
        current: u32,
    },
}

/// Applies the declared upgrade rules from `from_version` up to the flow's
/// version, then re-validates every step as a draft under the current flow.
pub fn upgrade(
    stored: &AnswerMap,
    from_version: u32,
    flow: &Flow,
) -> Result<UpgradeOutcome, UpgradeError> {
    let current = flow.version();
    if from_version > current {
        return Err(UpgradeError::NewerThanFlow {
            from: from_version,
            current,
        });
    }
    let mut work = stored.clone();
    let mut attention = Vec::new();
    let mut added_steps = BTreeSet::new();
    let mut version = from_version;
    while version < current {
        let Some(hop) = flow.upgrades().iter().find(|u| u.from_version == version) else {
            return Err(UpgradeError::NoPath {
                from: version,
                current,
            });
        };
        for rule in &hop.rules {
            apply_rule(rule, &mut work, &mut attention, &mut added_steps);
        }
        // Flow::parse guarantees to_version > from_version, so this terminates.
        version = hop.to_version;
    }
    let answers = revalidate(flow, work, &mut attention);
    for step in &added_steps {
        if flow.step(step).is_some() && !answers.contains_key(step) {
            attention.push(FieldAttention {
                step: step.clone(),
                pointer: String::new(),
                reason: "step_added".into(),
                message: format!("step `{step}` is new and has not been answered"),
                value: None,
            });
        }
    }
    let order = |step: &str| flow.steps().iter().position(|s| s.id == step);
    attention.sort_by_key(|a| order(&a.step));
    Ok(UpgradeOutcome {
        answers,
        needs_attention: attention,
        version: current,
    })
}

fn apply_rule(
    rule: &UpgradeRule,
    work: &mut AnswerMap,
    attention: &mut Vec<FieldAttention>,
    added_steps: &mut BTreeSet<String>,
) {
    match rule {
        UpgradeRule::RenameField { step, from, to } => {
            let Some(Value::Object(map)) = work.get_mut(step) else {
                return;
            };
            let Some(value) = map.remove(from) else {
                return;
            };
            if map.contains_key(to) {
                attention.push(FieldAttention {
                    step: step.clone(),
                    pointer: format!("/{to}"),
                    reason: "rename_conflict".into(),
                    message: format!("`{from}` was renamed to `{to}`, which already has an answer"),
                    value: Some(value),
                });
            } else {
                map.insert(to.clone(), value);
            }
        }
        UpgradeRule::MapEnumValue {
            step,
            field,
            from,
            to,
        } => {
            let Some(value) = work
                .get_mut(step)
                .and_then(Value::as_object_mut)
                .and_then(|m| m.get_mut(field))
            else {
                return;
            };
            match value {
                Value::String(s) if s == from => *s = to.clone(),
                Value::Array(items) => {
                    for item in items {
                        if item.as_str() == Some(from.as_str()) {
                            *item = Value::String(to.clone());
                        }
                    }
                }
                _ => {}
            }
        }
        UpgradeRule::AddStep { step } => {
            added_steps.insert(step.clone());
        }
        UpgradeRule::RemoveField { step, field } => {
            if let Some(Value::Object(map)) = work.get_mut(step) {
                map.remove(field);
            }
        }
    }
}

/// First reference token of a JSON pointer, unescaped (RFC 6901).
fn first_token(pointer: &str) -> Option<String> {
    let token = pointer.strip_prefix('/')?.split('/').next()?;
    Some(token.replace("~1", "/").replace("~0", "~"))
}

fn revalidate(
    flow: &Flow,
    work: AnswerMap,
    attention: &mut Vec<FieldAttention>,
) -> BTreeMap<String, StepAnswers> {
    let no_flags = |_: &str| false;
    let context = work.clone();
    let mut answers = BTreeMap::new();
    for (step_id, value) in work {
        if flow.step(&step_id).is_none() {
            attention.push(FieldAttention {
                message: format!("step `{step_id}` is no longer part of the flow"),
                step: step_id,
                pointer: String::new(),
                reason: "unknown_step".into(),
                value: Some(value),
            });
            continue;
        }
        // Flags are not part of stored drafts; step visibility is not checked,
        // and field conditions that use flags see them as off. That only
        // matters for hidden_field, which then sets the value aside for review.
        let options = Options {
            submission: Submission::Draft,
            context: Some((&context, &no_flags)),
            check_step_visibility: false,
        };
        let mut current = value;
        // Each round removes at least one field, so this ends; the bound is a
        // belt-and-braces guard.
        let mut rounds = flow.step(&step_id).map_or(0, |s| s.fields.len()) + 2;
        loop {
            match validate_with(flow, &step_id, &current, &options) {
                Ok(parsed) => {
                    answers.insert(step_id.clone(), parsed);
                    break;
                }
                Err(errors) => {
                    let Value::Object(map) = &mut current else {
                        set_aside_step(attention, &step_id, errors.errors(), current);
                        break;
                    };
                    let mut removed: Map<String, Value> = Map::new();
                    let mut step_level = false;
                    for e in errors.errors() {
                        let Some(field) = first_token(&e.pointer) else {
                            step_level = true;
                            continue;
                        };
                        let value = map.remove(&field).or_else(|| removed.get(&field).cloned());
                        attention.push(FieldAttention {
                            step: step_id.clone(),
                            pointer: e.pointer.clone(),
                            reason: e.code.as_str().into(),
                            message: e.message.clone(),
                            value: value.clone(),
                        });
                        if let Some(v) = value {
                            removed.insert(field, v);
                        }
                    }
                    rounds = rounds.saturating_sub(1);
                    if step_level || removed.is_empty() || rounds == 0 {
                        set_aside_step(attention, &step_id, errors.errors(), current);
                        break;
                    }
                }
            }
        }
    }
    answers
}

fn set_aside_step(
    attention: &mut Vec<FieldAttention>,
    step: &str,
    errors: &[crate::wizard::validation::FieldError],
    value: Value,
) {
    let reason = errors
        .first()
        .map_or("invalid", |e| e.code.as_str())
        .to_owned();
    attention.push(FieldAttention {
        step: step.to_owned(),
        pointer: String::new(),
        reason,
        message: "the stored answers of this step could not be read".into(),
        value: Some(value),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Version 3 of a small flow; drafts exist from versions 1 and 2.
    fn flow_v3() -> Flow {
        Flow::from_value(json!({
            "id": "t", "version": 3,
            "steps": [
                { "id": "profile", "title": "Profile", "fields": [
                    { "name": "fullName", "label": "Name", "required": true,
                      "kind": { "type": "text", "minLength": 1, "maxLength": 20 } },
                    { "name": "jobRole", "label": "Role",
                      "kind": { "type": "enum", "options": ["engineering", "founder", "other"] } }
                ]},
                { "id": "goals", "title": "Goals", "fields": [
                    { "name": "useCases", "label": "Use cases",
                      "kind": { "type": "multiEnum", "options": ["analytics", "automation"], "maxItems": 2 } }
                ]},
                { "id": "billing", "title": "Billing", "fields": [
                    { "name": "plan", "label": "Plan", "required": true,
                      "kind": { "type": "enum", "options": ["free", "pro"] } }
                ]}
            ],
            "upgrades": [
                { "fromVersion": 1, "toVersion": 2, "rules": [
                    { "renameField": { "step": "profile", "from": "name", "to": "fullName" } },
                    { "mapEnumValue": { "step": "profile", "field": "jobRole", "from": "developer", "to": "engineering" } }
                ]},
                { "fromVersion": 2, "toVersion": 3, "rules": [
                    { "mapEnumValue": { "step": "goals", "field": "useCases", "from": "reports", "to": "analytics" } },
                    { "removeField": { "step": "profile", "field": "nickname" } },
                    { "addStep": { "step": "billing" } }
                ]}
            ]
        }))
        .expect("valid flow")
    }

    fn stored(v: Value) -> AnswerMap {
        serde_json::from_value(v).expect("map")
    }

    #[test]
    fn renames_fields_and_maps_enum_values_across_versions() {
        let old = stored(json!({
            "profile": { "name": "Ada", "jobRole": "developer", "nickname": "ada" },
            "goals": { "useCases": ["reports", "automation"] }
        }));
        let out = upgrade(&old, 1, &flow_v3()).expect("path exists");
        assert_eq!(out.version, 3);
        assert_eq!(
            out.answers["profile"].to_json(),
            json!({ "fullName": "Ada", "jobRole": "engineering" })
        );
        assert_eq!(
            out.answers["goals"].to_json(),
            json!({ "useCases": ["analytics", "automation"] })
        );
        // Only the added step needs attention.
        assert_eq!(out.needs_attention.len(), 1, "{:#?}", out.needs_attention);
        assert_eq!(out.needs_attention[0].step, "billing");
        assert_eq!(out.needs_attention[0].reason, "step_added");
    }

    #[test]
    fn an_answer_that_cannot_be_upgraded_needs_attention_and_is_kept_aside() {
        let old = stored(json!({
            "profile": { "fullName": "Ada", "jobRole": "astronaut" },
            "goals": { "useCases": "analytics" },
            "legacy": { "x": 1 }
        }));
        let out = upgrade(&old, 2, &flow_v3()).expect("path exists");
        assert_eq!(
            out.answers["profile"].to_json(),
            json!({ "fullName": "Ada" })
        );
        assert_eq!(out.answers["goals"].to_json(), json!({}));
        let find = |step: &str| {
            out.needs_attention
                .iter()
                .find(|a| a.step == step)
                .unwrap_or_else(|| panic!("no attention for {step}: {:#?}", out.needs_attention))
        };
        let role = find("profile");
        assert_eq!(role.pointer, "/jobRole");
        assert_eq!(role.reason, "not_in_enum");
        assert_eq!(role.value, Some(json!("astronaut")));
        assert_eq!(find("goals").reason, "invalid_type");
        assert_eq!(find("legacy").reason, "unknown_step");
        assert_eq!(find("legacy").value, Some(json!({ "x": 1 })));
        assert_eq!(find("billing").reason, "step_added");
    }

    #[test]
    fn a_rename_onto_an_existing_answer_is_a_conflict_not_an_overwrite() {
        let old = stored(json!({ "profile": { "name": "Old", "fullName": "New" } }));
        let out = upgrade(&old, 1, &flow_v3()).expect("path exists");
        assert_eq!(out.answers["profile"].text("fullName"), Some("New"));
        assert!(
            out.needs_attention
                .iter()
                .any(|a| a.reason == "rename_conflict" && a.value == Some(json!("Old")))
        );
    }

    #[test]
    fn a_step_that_is_not_an_object_is_set_aside_whole() {
        let old = stored(json!({ "profile": "Ada" }));
        let out = upgrade(&old, 3, &flow_v3()).expect("same version");
        assert!(!out.answers.contains_key("profile"));
        assert_eq!(out.needs_attention[0].reason, "not_an_object");
        assert_eq!(out.needs_attention[0].value, Some(json!("Ada")));
    }

    #[test]
    fn refuses_to_guess_without_a_declared_path() {
        let flow = flow_v3();
        assert_eq!(
            upgrade(&AnswerMap::new(), 0, &flow),
            Err(UpgradeError::NoPath {
                from: 0,
                current: 3
            })
        );
        assert_eq!(
            upgrade(&AnswerMap::new(), 4, &flow),
            Err(UpgradeError::NewerThanFlow {
                from: 4,
                current: 3
            })
        );
    }
}
