//! [`Flow`]: a definition that passed every check, the only form the rest of
//! the domain holds. Its field is private to this file, so the constructors
//! here, which run the checks of `check`, are the only way to get one.

use serde_json::Value;

use super::check::{FlowError, check_definition, serde_problem};
use super::definition::{FlowDefinition, StepDefinition, UpgradeDefinition};
use super::schema;

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
