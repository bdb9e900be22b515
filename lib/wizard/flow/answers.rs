//! The answers a flow is evaluated against. Kept apart from the definition so
//! that conditions, which read answers, and the definition, which holds
//! conditions, do not depend on each other.

use std::collections::BTreeMap;

use serde_json::Value;

/// Answers so far: step id → that step's answers as a (normalized) JSON object.
pub type AnswerMap = BTreeMap<String, Value>;
