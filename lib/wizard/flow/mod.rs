//! A wizard flow is data, not code.
//!
//! A [`FlowDefinition`] is the serde shape read from configuration (a Vercel Edge
//! Config item). [`Flow::parse`] checks it once and returns every problem at
//! once; a [`Flow`] can only be obtained that way, so code that holds a `Flow`
//! never re-checks ids, references or bounds.

mod condition;
mod schema;
pub mod timezones;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::flags::{FlowItem, ItemProblem};

pub use condition::{Condition, FieldRef};
pub use timezones::IANA_TIME_ZONES;

/// Answers so far: step id → that step's answers as a (normalized) JSON object.
pub type AnswerMap = BTreeMap<String, Value>;

/// Hard cap on a text field's `maxLength`, in Unicode scalar values.
pub const MAX_TEXT_LENGTH: u32 = 10_000;
/// Hard cap on `maxItems` of list fields; keeps a valid answer far below the
/// validator's node limit (see `crate::wizard::validation::MAX_NODES`).
pub const MAX_LIST_ITEMS: u32 = 100;
/// Hard cap on fields per step, for the same reason.
pub const MAX_FIELDS_PER_STEP: usize = 50;
/// Longest accepted URL, in characters.
pub const MAX_URL_LENGTH: u32 = 2048;
/// Longest accepted e-mail address (RFC 5321 path limit minus brackets).
pub const MAX_EMAIL_LENGTH: u32 = 254;
/// Longest slug (one DNS label).
pub const MAX_SLUG_LENGTH: u32 = 63;

/// Serde shape of a flow as stored in configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FlowDefinition {
    /// Flow id, a slug (e.g. `default`).
    pub id: String,
    /// Version, > 0; bumped whenever stored drafts may stop validating.
    pub version: u32,
    /// Steps in wizard order.
    pub steps: Vec<StepDefinition>,
    /// Declared upgrades of drafts saved under older versions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upgrades: Vec<UpgradeDefinition>,
}

/// One wizard step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StepDefinition {
    /// Step id, a slug, unique in the flow.
    pub id: String,
    /// Human title.
    pub title: String,
    /// Fields in display order.
    #[serde(default)]
    pub fields: Vec<FieldDefinition>,
    /// An optional step may be left out when completing the wizard.
    #[serde(default)]
    pub optional: bool,
    /// The step applies only when this holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<Condition>,
    /// The step is skipped when this holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_when: Option<Condition>,
}

/// One input field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FieldDefinition {
    /// camelCase identifier, unique in the step; the JSON key of the answer.
    pub name: String,
    /// Human label.
    pub label: String,
    /// Must be answered to complete the step (drafts may omit it).
    #[serde(default)]
    pub required: bool,
    /// Type and bounds.
    pub kind: FieldKind,
    /// The field applies only when this holds; otherwise it must be absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<Condition>,
    /// The frontend may offer an AI rewrite of this answer.
    #[serde(default)]
    pub ai_enhanceable: bool,
}

/// Field type and bounds; JSON: `{"type": "text", "minLength": 1, "maxLength": 100}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum FieldKind {
    /// Free text; lengths in Unicode scalar values after trim + NFC.
    // utoipa does not read serde's `rename_all_fields`.
    #[schema(rename_all = "camelCase")]
    Text {
        /// Minimum length (default 0).
        #[serde(default)]
        min_length: u32,
        /// Maximum length, at most [`MAX_TEXT_LENGTH`]. Above 200, `\n` is allowed.
        max_length: u32,
    },
    /// An address matching the WHATWG `input[type=email]` rule.
    Email,
    /// An absolute `http`/`https` URL, at most [`MAX_URL_LENGTH`] characters.
    Url,
    /// One of the options.
    Enum {
        /// Allowed values.
        options: Vec<String>,
    },
    /// Several distinct options.
    #[schema(rename_all = "camelCase")]
    MultiEnum {
        /// Allowed values.
        options: Vec<String>,
        /// Fewest items (default 0).
        #[serde(default)]
        min_items: u32,
        /// Most items (default: number of options).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_items: Option<u32>,
    },
    /// A JSON number.
    Number {
        /// Inclusive lower bound.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        minimum: Option<f64>,
        /// Inclusive upper bound.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        maximum: Option<f64>,
        /// Whole numbers only.
        #[serde(default)]
        integer: bool,
    },
    /// `true` or `false`.
    Boolean,
    /// Lowercase DNS-label-like identifier.
    #[schema(rename_all = "camelCase")]
    Slug {
        /// Maximum length (default and cap [`MAX_SLUG_LENGTH`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_length: Option<u32>,
    },
    /// An IANA time zone name from [`IANA_TIME_ZONES`].
    Timezone,
    /// Distinct (case-insensitively) e-mail addresses.
    #[schema(rename_all = "camelCase")]
    EmailList {
        /// Most items, at most [`MAX_LIST_ITEMS`].
        max_items: u32,
    },
}

impl FieldKind {
    /// Effective `maxItems` of a multi-enum.
    pub(crate) fn multi_max(options: &[String], max_items: Option<u32>) -> u32 {
        max_items.unwrap_or(u32::try_from(options.len()).unwrap_or(u32::MAX))
    }
}

/// Rules that carry drafts from `from_version` to `to_version`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpgradeDefinition {
    /// Version the drafts were saved under.
    pub from_version: u32,
    /// Version they are carried to.
    pub to_version: u32,
    /// Applied in order.
    pub rules: Vec<UpgradeRule>,
}

/// One declared change between flow versions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum UpgradeRule {
    /// A field was renamed.
    #[serde(rename_all = "camelCase")]
    RenameField {
        /// Step id.
        step: String,
        /// Old field name.
        from: String,
        /// New field name.
        to: String,
    },
    /// An enum option was renamed (also applied to items of a multi-enum).
    #[serde(rename_all = "camelCase")]
    MapEnumValue {
        /// Step id.
        step: String,
        /// Field name.
        field: String,
        /// Old option.
        from: String,
        /// New option.
        to: String,
    },
    /// A step was added; it has no answers yet.
    #[serde(rename_all = "camelCase")]
    AddStep {
        /// Step id.
        step: String,
    },
    /// A field was removed on purpose; its answers are dropped.
    #[serde(rename_all = "camelCase")]
    RemoveField {
        /// Step id.
        step: String,
        /// Field name.
        field: String,
    },
}

/// One problem found in a flow definition, where, e.g. `steps[2].fields[0].kind`.
pub type FlowProblem = ItemProblem;

/// Every problem found in a flow definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("invalid flow definition: {}", .problems.iter().map(|p| format!("{}: {}", p.path, p.message)).collect::<Vec<_>>().join("; "))]
pub struct FlowError {
    /// All problems, in definition order.
    pub problems: Vec<FlowProblem>,
}

/// A checked flow. Built only by [`Flow::parse`] / `TryFrom<FlowDefinition>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Flow {
    definition: FlowDefinition,
}

impl Flow {
    /// Parses and checks a flow from JSON text.
    pub fn parse(json: &str) -> Result<Flow, FlowError> {
        let definition: FlowDefinition = serde_json::from_str(json).map_err(serde_problem)?;
        Flow::try_from(definition)
    }

    /// Parses and checks a flow from a JSON value.
    pub fn from_value(value: Value) -> Result<Flow, FlowError> {
        let definition: FlowDefinition = serde_json::from_value(value).map_err(serde_problem)?;
        Flow::try_from(definition)
    }

    /// Flow id.
    pub fn id(&self) -> &str {
        &self.definition.id
    }

    /// Flow version.
    pub fn version(&self) -> u32 {
        self.definition.version
    }

    /// All steps in order, visible or not.
    pub fn steps(&self) -> &[StepDefinition] {
        &self.definition.steps
    }

    /// A step by id.
    pub fn step(&self, id: &str) -> Option<&StepDefinition> {
        self.definition.steps.iter().find(|s| s.id == id)
    }

    /// Declared upgrades.
    pub fn upgrades(&self) -> &[UpgradeDefinition] {
        &self.definition.upgrades
    }

    /// The checked definition (e.g. to serve it to the frontend).
    pub fn definition(&self) -> &FlowDefinition {
        &self.definition
    }

    /// Whether a step applies given the answers so far and the flags.
    pub fn is_step_visible(
        &self,
        step: &StepDefinition,
        answers: &AnswerMap,
        flags: &dyn Fn(&str) -> bool,
    ) -> bool {
        let shown = step
            .condition
            .as_ref()
            .is_none_or(|c| c.evaluate(&step.id, None, answers, flags));
        let skipped = step
            .skip_when
            .as_ref()
            .is_some_and(|c| c.evaluate(&step.id, None, answers, flags));
        shown && !skipped
    }

    /// The steps that apply after conditions and flags, in order.
    pub fn visible_steps(
        &self,
        answers: &AnswerMap,
        flags: &dyn Fn(&str) -> bool,
    ) -> Vec<&StepDefinition> {
        self.steps()
            .iter()
            .filter(|s| self.is_step_visible(s, answers, flags))
            .collect()
    }

    /// The visible step after `current` (which need not be visible itself).
    /// `None` at the end, or when `current` is not a step of this flow.
    pub fn next_step(
        &self,
        current: &str,
        answers: &AnswerMap,
        flags: &dyn Fn(&str) -> bool,
    ) -> Option<&StepDefinition> {
        let index = self.steps().iter().position(|s| s.id == current)?;
        self.steps()[index + 1..]
            .iter()
            .find(|s| self.is_step_visible(s, answers, flags))
    }

    /// JSON Schema (draft 2020-12) of a complete answer to `step_id`, or `None`
    /// for an unknown step. See the `schema` module docs for what it describes.
    pub fn step_json_schema(&self, step_id: &str) -> Option<Value> {
        Some(schema::step_schema(self.step(step_id)?, false))
    }

    /// Like [`Flow::step_json_schema`] but for a draft: nothing is required.
    pub fn step_draft_json_schema(&self, step_id: &str) -> Option<Value> {
        Some(schema::step_schema(self.step(step_id)?, true))
    }
}

impl TryFrom<FlowDefinition> for Flow {
    type Error = FlowError;

    fn try_from(definition: FlowDefinition) -> Result<Self, Self::Error> {
        let problems = check_definition(&definition);
        if problems.is_empty() {
            Ok(Flow { definition })
        } else {
            Err(FlowError { problems })
        }
    }
}

fn serde_problem(error: serde_json::Error) -> FlowError {
    FlowError {
        problems: vec![FlowProblem {
            path: String::new(),
            message: error.to_string(),
        }],
    }
}

/// The flow is the item of the Edge Config that the domain defines; the
/// flags store parses it through this.
impl FlowItem for Flow {
    const EMBEDDED_ITEMS: &'static str = DEFAULT_EDGE_CONFIG_JSON;

    fn from_item(value: Value) -> Result<Self, Vec<ItemProblem>> {
        Flow::from_value(value).map_err(|error| error.problems)
    }
}

/// The Edge Config the wizard reads: its flags and its flow.
pub type EdgeConfig = crate::flags::EdgeConfig<Flow>;

/// The shipped Edge Config items, embedded at compile time.
pub const DEFAULT_EDGE_CONFIG_JSON: &str = include_str!("../../../config/edge-config.json");

/// The shipped Edge Config (flags + default flow).
pub fn default_edge_config() -> Result<EdgeConfig, FlowError> {
    EdgeConfig::parse(DEFAULT_EDGE_CONFIG_JSON).map_err(|error| FlowError {
        problems: error.problems,
    })
}

/// The shipped default onboarding flow (`id: default`).
pub fn default_flow() -> Result<Flow, FlowError> {
    Ok(default_edge_config()?.into_flow())
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

fn check_definition(def: &FlowDefinition) -> Vec<FlowProblem> {
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
        if crate::wizard::validation::rules::normalize_text(option) != *option || option.is_empty()
        {
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

fn check_kind(c: &mut Checker, path: &str, kind: &FieldKind) {
    match kind {
        FieldKind::Text {
            min_length,
            max_length,
        } => {
            if *max_length == 0 || *max_length > MAX_TEXT_LENGTH {
                c.push(
                    path,
                    format!("maxLength must be within 1..={MAX_TEXT_LENGTH}"),
                );
            }
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
            if max == 0 || max > MAX_LIST_ITEMS {
                c.push(
                    path,
                    format!("maxItems must be within 1..={MAX_LIST_ITEMS}"),
                );
            }
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
            if max_length.is_some_and(|m| m == 0 || m > MAX_SLUG_LENGTH) {
                c.push(
                    path,
                    format!("maxLength must be within 1..={MAX_SLUG_LENGTH}"),
                );
            }
        }
        FieldKind::EmailList { max_items } => {
            if *max_items == 0 || *max_items > MAX_LIST_ITEMS {
                c.push(
                    path,
                    format!("maxItems must be within 1..={MAX_LIST_ITEMS}"),
                );
            }
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
    use super::*;
    use serde_json::json;

    fn no_flags(_: &str) -> bool {
        false
    }

    fn edge() -> EdgeConfig {
        default_edge_config().expect("shipped edge-config.json parses")
    }

    #[test]
    fn the_shipped_default_flow_parses() {
        let config = edge();
        let flow = config.flow();
        assert_eq!(flow.id(), "default");
        assert_eq!(flow.version(), 1);
        let ids: Vec<&str> = flow.steps().iter().map(|s| s.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "profile",
                "organization",
                "goals",
                "team",
                "preferences",
                "review"
            ]
        );
        assert!(config.is_enabled("teamInvites", "any-subject"));
        assert!(!config.is_enabled("aiSuggestions", "any-subject"));
        assert!(!config.is_enabled("noSuchFlag", "any-subject"));
    }

    #[test]
    fn the_team_step_is_skipped_for_a_single_person_organization() {
        let flow = default_flow().expect("parses");
        let mut answers = AnswerMap::new();
        answers.insert("organization".into(), json!({ "size": "1" }));
        let on = |k: &str| k == "teamInvites";
        let ids: Vec<&str> = flow
            .visible_steps(&answers, &on)
            .iter()
            .map(|s| s.id.as_str())
            .collect();
        assert!(!ids.contains(&"team"));
        answers.insert("organization".into(), json!({ "size": "2-10" }));
        assert!(
            flow.visible_steps(&answers, &on)
                .iter()
                .any(|s| s.id == "team")
        );
    }

    #[test]
    fn the_team_step_is_hidden_when_the_team_invites_flag_is_off() {
        let flow = default_flow().expect("parses");
        let mut answers = AnswerMap::new();
        answers.insert("organization".into(), json!({ "size": "11-50" }));
        assert!(
            !flow
                .visible_steps(&answers, &no_flags)
                .iter()
                .any(|s| s.id == "team")
        );
    }

    #[test]
    fn next_step_skips_hidden_steps() {
        let flow = default_flow().expect("parses");
        let mut answers = AnswerMap::new();
        answers.insert("organization".into(), json!({ "size": "1" }));
        let on = |k: &str| k == "teamInvites";
        let next = flow
            .next_step("goals", &answers, &on)
            .map(|s| s.id.as_str());
        assert_eq!(next, Some("preferences"));
        answers.insert("organization".into(), json!({ "size": "2-10" }));
        let next = flow
            .next_step("goals", &answers, &on)
            .map(|s| s.id.as_str());
        assert_eq!(next, Some("team"));
        assert!(flow.next_step("review", &answers, &on).is_none());
        assert!(flow.next_step("nope", &answers, &on).is_none());
    }

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
    fn the_definition_serializes_back_to_an_equivalent_flow() {
        let flow = default_flow().expect("parses");
        let json = serde_json::to_value(flow.definition()).expect("serializes");
        assert_eq!(json["steps"][0]["fields"][0]["kind"]["type"], "text");
        assert_eq!(json["steps"][3]["skipWhen"]["field"], "organization.size");
        assert_eq!(Flow::from_value(json).expect("parses again"), flow);
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
