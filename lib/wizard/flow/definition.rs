//! The serde shape of a flow as written in configuration, and the hard caps on
//! its bounds. Nothing here is checked yet: a definition becomes usable only as
//! a [`Flow`](super::Flow), through the checks in `check`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::condition::Condition;

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
    /// An IANA time zone name from [`IANA_TIME_ZONES`](super::IANA_TIME_ZONES).
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

#[cfg(test)]
mod tests {
    use crate::wizard::flow::{Flow, default_flow};

    #[test]
    fn the_definition_serializes_back_to_an_equivalent_flow() {
        let flow = default_flow().expect("parses");
        let json = serde_json::to_value(flow.definition()).expect("serializes");
        assert_eq!(json["steps"][0]["fields"][0]["kind"]["type"], "text");
        assert_eq!(json["steps"][3]["skipWhen"]["field"], "organization.size");
        assert_eq!(Flow::from_value(json).expect("parses again"), flow);
    }
}
