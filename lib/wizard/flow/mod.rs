//! A wizard flow is data, not code.
//!
//! A [`FlowDefinition`] is the serde shape read from configuration (a Vercel Edge
//! Config item). [`Flow::parse`] checks it once and returns every problem at
//! once; a [`Flow`] can only be obtained that way, so code that holds a `Flow`
//! never re-checks ids, references or bounds.
//!
//! - `definition`: the serde shape (steps, fields, kinds, upgrades) and the caps.
//! - `check`: the checks a definition must pass, and [`FlowError`].
//! - `checked`: [`Flow`] itself, its constructors and accessors.
//! - `visibility`: which steps apply given the answers and flags.
//! - `condition`: the conditions on steps and fields; `answers`: what they read.
//! - `schema`: the JSON Schema export of a step.
//! - `edge_config`: the flow as an Edge Config item, and the shipped default.

mod answers;
mod check;
mod checked;
mod condition;
mod definition;
mod edge_config;
mod schema;
pub mod timezones;
mod visibility;

pub use answers::AnswerMap;
pub(crate) use check::is_slug;
pub use check::{FlowError, FlowProblem};
pub use checked::Flow;
pub use condition::{Condition, FieldRef};
pub use definition::{
    FieldDefinition, FieldKind, FlowDefinition, MAX_EMAIL_LENGTH, MAX_FIELDS_PER_STEP,
    MAX_LIST_ITEMS, MAX_SLUG_LENGTH, MAX_TEXT_LENGTH, MAX_URL_LENGTH, StepDefinition,
    UpgradeDefinition, UpgradeRule,
};
pub use edge_config::{DEFAULT_EDGE_CONFIG_JSON, EdgeConfig, default_edge_config, default_flow};
pub use timezones::IANA_TIME_ZONES;
