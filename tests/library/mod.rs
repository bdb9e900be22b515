//! The flow, validation and transform library, checked from outside: the
//! exported JSON Schema against the validator, and properties over generated input.

mod agreement;
mod corpus;
mod properties;

/// A complete, valid answer per step of the default flow.
pub fn corpus_valid_answer(step: &str) -> serde_json::Value {
    corpus::valid_answer(step)
}
