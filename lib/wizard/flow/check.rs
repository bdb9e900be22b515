//! The checks a definition must pass to become a [`Flow`](super::Flow), and
//! the error that lists every problem at once (a flow author fixes them in one
//! round). What passes here is never checked again: ids are slugs and unique,
//! conditions only look backwards, bounds are within the caps, and upgrades
//! name steps and fields that exist.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::condition::{Condition, FieldRef};
use super::definition::{
    FieldKind, FlowDefinition, MAX_FIELDS_PER_STEP, MAX_LIST_ITEMS, MAX_SLUG_LENGTH,
    MAX_TEXT_LENGTH, UpgradeRule,
};
use crate::flags::ItemProblem;
use crate::wizard::validation::rules::normalize_text;

/// One problem found in a flow definition, where, e.g. `steps[2].fields[0].kind`.
pub type FlowProblem = ItemProblem;

/// Every problem found in a flow definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("invalid flow definition: {}", .problems.iter().map(|p| format!("{}: {}", p.path, p.message)).collect::<Vec<_>>().join("; "))]
pub struct FlowError {
    /// All problems, in definition order.
    pub problems: Vec<FlowProblem>,
}

pub(super) fn serde_problem(error: serde_json::Error) -> FlowError {
    FlowError {
        problems: vec![FlowProblem {
            path: String::new(),
            message: error.to_string(),
        }],
    }
}

pub(crate) fn is_slug(s: &str, max_len: usize) -> bool {
    let b = s.as_bytes();
    let inner_ok = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-';
    let edge_ok = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty()
        && b.len() <= max_len
        && b.iter().all(inner_ok)
        && b.first().is_some_and(edge_ok)
        && b.last().is_some_and(edge_ok)
}

fn is_camel_identifier(s: &str) -> bool {
    let b = s.as_bytes();
    b.first().is_some_and(u8::is_ascii_lowercase)
        && b.len() <= 64
        && b.iter().all(u8::is_ascii_alphanumeric)
}

struct Checker {
    problems: Vec<FlowProblem>,
}

impl Checker {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(FlowProblem {
            path: path.into(),
            message: message.into(),
        });
    }
}

pub(super) fn check_definition(def: &FlowDefinition) -> Vec<FlowProblem> {
    let mut c = Checker {
        problems: Vec::new(),
    };
    if !is_slug(&def.id, 63) {
        c.push("id", "must be a slug");
    }
    if def.version == 0 {
        c.push("version", "must be greater than 0");
    }
    if def.steps.is_empty() {
        c.push("steps", "a flow needs at least one step");
    }
    // Fields declared so far, per step: conditions may only look backwards, so
    // the wizard can always evaluate them with what the user has answered.
    let mut seen: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (si, step) in def.steps.iter().enumerate() {
        let sp = format!("steps[{si}]");
        if !is_slug(&step.id, 63) {
            c.push(format!("{sp}.id"), format!("`{}` is not a slug", step.id));
        }
        if seen.contains_key(step.id.as_str()) {
            c.push(
                format!("{sp}.id"),
                format!("duplicate step id `{}`", step.id),
            );
        }
        if step.title.trim().is_empty() {
            c.push(format!("{sp}.title"), "must not be empty");
        }
        if step.fields.len() > MAX_FIELDS_PER_STEP {
            c.push(
                format!("{sp}.fields"),
                format!("at most {MAX_FIELDS_PER_STEP} fields per step"),
            );
        }
        for (key, cond) in [
            ("condition", &step.condition),
            ("skipWhen", &step.skip_when),
        ] {
            if let Some(cond) = cond {
                check_condition(&mut c, &format!("{sp}.{key}"), cond, &seen, None);
            }
        }
        let mut fields: BTreeSet<&str> = BTreeSet::new();
        for (fi, field) in step.fields.iter().enumerate() {
            let fp = format!("{sp}.fields[{fi}]");
            if !is_camel_identifier(&field.name) {
                c.push(
                    format!("{fp}.name"),
                    format!("`{}` is not a camelCase identifier", field.name),
                );
            }
            if fields.contains(field.name.as_str()) {
                c.push(
                    format!("{fp}.name"),
                    format!("duplicate field name `{}`", field.name),
                );
            }
            if field.label.trim().is_empty() {
                c.push(format!("{fp}.label"), "must not be empty");
            }
            if let Some(cond) = &field.condition {
                check_condition(
                    &mut c,
                    &format!("{fp}.condition"),
                    cond,
                    &seen,
                    Some((&step.id, &fields)),
                );
            }
            check_kind(&mut c, &format!("{fp}.kind"), &field.kind);
            fields.insert(&field.name);
        }
        seen.entry(&step.id).or_insert(fields);
    }
    check_upgrades(&mut c, def, &seen);
    c.problems
}

fn check_condition(
    c: &mut Checker,
    path: &str,
    cond: &Condition,
    earlier_steps: &BTreeMap<&str, BTreeSet<&str>>,
    same_step: Option<(&str, &BTreeSet<&str>)>,
) {
    for reference in cond.field_references() {
        let r = FieldRef::parse(reference);
        let found = match (r.step, same_step) {
            (None, None) => {
                c.push(
                    path,
                    format!("`{reference}`: step conditions must name the step (`step.field`)"),
                );
                continue;
            }
            (None, Some((_, fields))) => fields.contains(r.field),
            (Some(step), Some((current, fields))) if step == current => fields.contains(r.field),
            (Some(step), _) => earlier_steps
                .get(step)
                .is_some_and(|fields| fields.contains(r.field)),
        };
        if !found {
            c.push(
                path,
                format!("`{reference}` does not name a field declared earlier in the flow"),
            );
        }
    }
    for flag in cond.flag_references() {
        if flag.is_empty() {
            c.push(path, "flag key must not be empty");
        }
    }
}

fn check_options(c: &mut Checker, path: &str, options: &[String]) {
    if options.is_empty() {
        c.push(path, "options must not be empty");
    }
    let mut unique = BTreeSet::new();
    for option in options {
        if !unique.insert(option.as_str()) {
            c.push(path, format!("duplicate option `{option}`"));
        }
        // Answers are trimmed and NFC-normalized before matching, so an option
        // that is not already in that form could never be chosen.
        if normalize_text(option) != *option || option.is_empty() {
            c.push(
                path,
                format!("option `{option}` must be non-empty, trimmed and NFC-normalized"),
            );
        }
        if option.chars().any(char::is_control) {
            c.push(
                path,
                format!("option `{option}` contains a control character"),
            );
        }
    }
}

/// A bound that must lie in `1..=cap`, e.g. `maxLength` of a text field.
fn check_within(c: &mut Checker, path: &str, bound: &str, value: u32, cap: u32) {
    if value == 0 || value > cap {
        c.push(path, format!("{bound} must be within 1..={cap}"));
    }
}

fn check_kind(c: &mut Checker, path: &str, kind: &FieldKind) {
    match kind {
        FieldKind::Text {
            min_length,
            max_length,
        } => {
            check_within(c, path, "maxLength", *max_length, MAX_TEXT_LENGTH);
            if min_length > max_length {
                c.push(path, "minLength must not exceed maxLength");
            }
        }
        FieldKind::Enum { options } => check_options(c, path, options),
        FieldKind::MultiEnum {
            options,
            min_items,
            max_items,
        } => {
            check_options(c, path, options);
            let max = FieldKind::multi_max(options, *max_items);
            check_within(c, path, "maxItems", max, MAX_LIST_ITEMS);
            if *min_items > max {
                c.push(path, "minItems must not exceed maxItems");
            }
            if usize::try_from(*min_items).unwrap_or(usize::MAX) > options.len() {
                c.push(path, "minItems must not exceed the number of options");
            }
        }
        FieldKind::Number {
            minimum,
            maximum,
            integer: _,
        } => {
            if minimum.is_some_and(|m| !m.is_finite()) || maximum.is_some_and(|m| !m.is_finite()) {
                c.push(path, "bounds must be finite");
            }
            if let (Some(lo), Some(hi)) = (minimum, maximum)
                && lo > hi
            {
                c.push(path, "minimum must not exceed maximum");
            }
        }
        FieldKind::Slug { max_length } => {
            if let Some(max_length) = max_length {
                check_within(c, path, "maxLength", *max_length, MAX_SLUG_LENGTH);
            }
        }
        FieldKind::EmailList { max_items } => {
            check_within(c, path, "maxItems", *max_items, MAX_LIST_ITEMS);
        }
        FieldKind::Email | FieldKind::Url | FieldKind::Boolean | FieldKind::Timezone => {}
    }
}

fn check_upgrades(c: &mut Checker, def: &FlowDefinition, steps: &BTreeMap<&str, BTreeSet<&str>>) {
    let mut from_versions = BTreeSet::new();
    for (ui, upgrade) in def.upgrades.iter().enumerate() {
        let up = format!("upgrades[{ui}]");
        if upgrade.from_version == 0
            || upgrade.from_version >= upgrade.to_version
            || upgrade.to_version > def.version
        {
            c.push(
                &up,
                "need 0 < fromVersion < toVersion <= the flow's version",
            );
        }
        if !from_versions.insert(upgrade.from_version) {
            c.push(
                &up,
                format!(
                    "more than one upgrade from version {}",
                    upgrade.from_version
                ),
            );
        }
        // Only the last hop can be checked against the current steps; names in
        // intermediate versions are not known here.
        if upgrade.to_version != def.version {
            continue;
        }
        for (ri, rule) in upgrade.rules.iter().enumerate() {
            let rp = format!("{up}.rules[{ri}]");
            let (step, field) = match rule {
                UpgradeRule::RenameField { step, to, .. } => (step, Some(to)),
                UpgradeRule::MapEnumValue { step, field, .. } => (step, Some(field)),
                UpgradeRule::AddStep { step } => (step, None),
                UpgradeRule::RemoveField { .. } => continue,
            };
            match (steps.get(step.as_str()), field) {
                (None, _) => c.push(rp, format!("step `{step}` is not in the flow")),
                (Some(fields), Some(field)) if !fields.contains(field.as_str()) => {
                    c.push(rp, format!("field `{step}.{field}` is not in the flow"));
                }
                (Some(_), _) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::is_slug;
    use crate::wizard::flow::Flow;

    fn minimal(steps: Value) -> Value {
        json!({ "id": "t", "version": 1, "steps": steps })
    }

    #[test]
    fn reports_every_problem_of_a_broken_flow_at_once() {
        let def = json!({ "id": "Bad Id", "version": 0, "steps": [
            { "id": "a", "title": "A", "fields": [
                { "name": "x", "label": "X", "kind": { "type": "enum", "options": [] } },
                { "name": "x", "label": "X", "kind": { "type": "text", "minLength": 30000, "maxLength": 20000 } },
                { "name": "Bad-name", "label": "", "kind": { "type": "enum", "options": ["a", "a", " b"] } }
            ]},
            { "id": "a", "title": "", "condition": { "field": "later.x", "equals": 1 } },
            { "id": "later", "title": "L", "fields": [
                { "name": "x", "label": "X", "kind": { "type": "boolean" } }
            ]}
        ]});
        let err = Flow::from_value(def).expect_err("broken");
        let text: Vec<String> = err
            .problems
            .iter()
            .map(|p| format!("{} {}", p.path, p.message))
            .collect();
        let has = |needle: &str| text.iter().any(|t| t.contains(needle));
        assert!(has("id must be a slug"), "{text:#?}");
        assert!(has("version must be greater than 0"));
        assert!(has("options must not be empty"));
        assert!(has("duplicate field name `x`"));
        assert!(has("maxLength must be within"));
        assert!(has("minLength must not exceed maxLength"));
        assert!(has("not a camelCase identifier"));
        assert!(has("steps[0].fields[2].label must not be empty"));
        assert!(has("duplicate option `a`"));
        assert!(has("option ` b` must be non-empty, trimmed"));
        assert!(has("duplicate step id `a`"));
        assert!(has("steps[1].title must not be empty"));
        assert!(has("`later.x` does not name a field declared earlier"));
        assert!(text.len() >= 13);
    }

    #[test]
    fn field_conditions_may_reference_earlier_fields_of_the_same_step() {
        let ok = minimal(json!([{ "id": "a", "title": "A", "fields": [
            { "name": "hasSite", "label": "Has site", "kind": { "type": "boolean" } },
            { "name": "site", "label": "Site", "kind": { "type": "url" },
              "condition": { "field": "hasSite", "equals": true } }
        ]}]));
        assert!(Flow::from_value(ok).is_ok());
        let forward = minimal(json!([{ "id": "a", "title": "A", "fields": [
            { "name": "site", "label": "Site", "kind": { "type": "url" },
              "condition": { "field": "hasSite", "equals": true } },
            { "name": "hasSite", "label": "Has site", "kind": { "type": "boolean" } }
        ]}]));
        assert!(Flow::from_value(forward).is_err());
    }

    #[test]
    fn step_conditions_must_name_the_step() {
        let def = minimal(json!([
            { "id": "a", "title": "A", "fields": [
                { "name": "x", "label": "X", "kind": { "type": "boolean" } }] },
            { "id": "b", "title": "B", "condition": { "field": "x", "equals": true } }
        ]));
        assert!(Flow::from_value(def).is_err());
    }

    #[test]
    fn rejects_unknown_keys_and_kinds_in_definitions() {
        let typo = minimal(json!([{ "id": "a", "title": "A", "feilds": [] }]));
        assert!(Flow::from_value(typo).is_err());
        let kind = minimal(json!([{ "id": "a", "title": "A", "fields": [
            { "name": "x", "label": "X", "kind": { "type": "color" } }] }]));
        assert!(Flow::from_value(kind).is_err());
        let text_without_max = minimal(json!([{ "id": "a", "title": "A", "fields": [
            { "name": "x", "label": "X", "kind": { "type": "text" } }] }]));
        assert!(Flow::from_value(text_without_max).is_err());
    }

    #[test]
    fn rejects_upgrades_that_point_at_missing_fields() {
        let def = json!({ "id": "t", "version": 2, "steps": [
            { "id": "a", "title": "A", "fields": [
                { "name": "x", "label": "X", "kind": { "type": "boolean" } }] }],
            "upgrades": [{ "fromVersion": 1, "toVersion": 2, "rules": [
                { "renameField": { "step": "a", "from": "old", "to": "y" } },
                { "addStep": { "step": "zzz" } }
            ]}]
        });
        let err = Flow::from_value(def).expect_err("broken");
        assert_eq!(err.problems.len(), 2, "{err}");
    }

    #[test]
    fn slug_rule_matches_the_dns_label_shape() {
        assert!(is_slug("acme", 63));
        assert!(is_slug("a", 63));
        assert!(is_slug("acme-corp-2", 63));
        assert!(!is_slug("-acme", 63));
        assert!(!is_slug("acme-", 63));
        assert!(!is_slug("Acme", 63));
        assert!(!is_slug("", 63));
        assert!(!is_slug(&"a".repeat(64), 63));
        assert!(!is_slug("ac me", 63));
    }
}
