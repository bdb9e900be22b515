//! [`Flow`]: a definition that passed every check, the only form the rest of
//! the domain holds. Its field is private to this file, so the constructors
//! here, which run the checks of `check`, are the only way to get one.

use serde_json::Value;

use super::check::{FlowError, check_definition, serde_problem};
use super::condition::FieldRef;
use super::definition::{FlowDefinition, StepDefinition, UpgradeDefinition};
use super::schema;

/// A checked flow. Built only by [`Flow::parse`] / `TryFrom<FlowDefinition>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Flow {
    definition: FlowDefinition,
    /// Derived from `definition` once, for reads that need no other answers.
    steps_read_by_visibility: Vec<String>,
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

    /// The steps whose answers a step's `condition` or `skipWhen` reads, each
    /// once: the only answers that decide which steps are visible, so the
    /// only ones the status and flow reads parse.
    pub fn steps_read_by_visibility(&self) -> &[String] {
        &self.steps_read_by_visibility
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
            let steps_read_by_visibility = steps_read_by_visibility(&definition);
            Ok(Flow {
                definition,
                steps_read_by_visibility,
            })
        } else {
            Err(FlowError { problems })
        }
    }
}

/// See [`Flow::steps_read_by_visibility`]. (A step's conditions name the
/// step of each field; a bare name would be the step's own.)
fn steps_read_by_visibility(definition: &FlowDefinition) -> Vec<String> {
    let mut steps: Vec<String> = Vec::new();
    for step in &definition.steps {
        let conditions = step.condition.iter().chain(&step.skip_when);
        for reference in conditions.flat_map(|condition| condition.field_references()) {
            let read = FieldRef::parse(reference).step.unwrap_or(&step.id);
            if !steps.iter().any(|seen| seen == read) {
                steps.push(read.to_string());
            }
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::wizard::flow::default_flow;

    #[test]
    fn the_default_flow_decides_visibility_on_the_organization_answers_alone() {
        let flow = default_flow().unwrap();
        assert_eq!(flow.steps_read_by_visibility(), ["organization"]);
    }

    #[test]
    fn steps_read_by_visibility_are_those_step_conditions_name_each_once() {
        let flow = Flow::from_value(json!({
            "id": "reads", "version": 1,
            "steps": [
                {"id": "first", "title": "First", "fields": [
                    {"name": "kind", "label": "Kind", "kind": {"type": "enum", "options": ["a", "b"]}}]},
                {"id": "second", "title": "Second",
                 "condition": {"all": [{"field": "first.kind", "equals": "a"}, {"flag": "beta"}]},
                 "skipWhen": {"not": {"field": "first.kind", "in": ["a", "b"]}},
                 "fields": [{"name": "skip", "label": "Skip", "kind": {"type": "boolean"}}]},
                {"id": "third", "title": "Third",
                 "condition": {"any": [{"field": "first.kind", "equals": "b"}]},
                 "skipWhen": {"field": "second.skip", "equals": true},
                 "fields": [{"name": "note", "label": "Note", "kind": {"type": "text", "maxLength": 100}}]}
            ]
        }))
        .unwrap();
        assert_eq!(flow.steps_read_by_visibility(), ["first", "second"]);
    }
}
