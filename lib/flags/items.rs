//! The Edge Config items the backend reads: `flags`, and the wizard's flow
//! under `onboardingFlow`. The flow's shape belongs to the domain, which
//! implements [`FlowItem`]; this module parses the flags and hands the flow
//! item over, collecting every problem of both at once.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::flags::FlagValue;

/// One problem found in the items.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemProblem {
    /// Where, e.g. `flags.beta` or `steps[2].fields[0].kind`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// Every problem found in the items, in order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid Edge Config items: {}", .problems.iter().map(|p| format!("{}: {}", p.path, p.message)).collect::<Vec<_>>().join("; "))]
pub struct InvalidItems {
    pub problems: Vec<ItemProblem>,
}

/// The flow definition carried by the `onboardingFlow` item.
pub trait FlowItem: Sized + Send + Sync + 'static {
    /// The items shipped with the code, served when the source never answered.
    const EMBEDDED_ITEMS: &'static str;

    /// Parses and checks the `onboardingFlow` item.
    fn from_item(value: Value) -> Result<Self, Vec<ItemProblem>>;
}

/// The parsed items: flags and flow.
#[derive(Debug, Clone)]
pub struct EdgeConfig<F> {
    flags: BTreeMap<String, FlagValue>,
    flow: F,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawItems {
    #[serde(default)]
    flags: BTreeMap<String, Value>,
    onboarding_flow: Value,
}

impl<F: FlowItem> EdgeConfig<F> {
    /// Parses the items (other items are ignored). Every problem, in the flags
    /// (`flags.<key>`) and in the flow, is reported at once.
    pub fn parse(json: &str) -> Result<Self, InvalidItems> {
        let items: RawItems = serde_json::from_str(json).map_err(|error| InvalidItems {
            problems: vec![ItemProblem {
                path: String::new(),
                message: error.to_string(),
            }],
        })?;
        let mut problems = Vec::new();
        let mut flags = BTreeMap::new();
        for (key, raw) in items.flags {
            match serde_json::from_value::<FlagValue>(raw) {
                Ok(value) => {
                    flags.insert(key, value);
                }
                Err(error) => problems.push(ItemProblem {
                    path: format!("flags.{key}"),
                    message: error.to_string(),
                }),
            }
        }
        match F::from_item(items.onboarding_flow) {
            Ok(flow) if problems.is_empty() => Ok(EdgeConfig { flags, flow }),
            Ok(_) => Err(InvalidItems { problems }),
            Err(flow_problems) => {
                problems.extend(flow_problems);
                Err(InvalidItems { problems })
            }
        }
    }
}

impl<F> EdgeConfig<F> {
    /// Whether `key` is on for `subject_id` (the user id, or the anonymous
    /// session id); unknown and `null` flags are off. See [`crate::flags::value`].
    pub fn is_enabled(&self, key: &str, subject_id: &str) -> bool {
        self.flags
            .get(key)
            .is_some_and(|value| value.is_enabled(key, subject_id))
    }

    /// The flag evaluator for one subject, in the shape the flow's conditions
    /// and the validators take. Build it once per request.
    pub fn flags_for<'a>(&'a self, subject_id: &'a str) -> impl Fn(&str) -> bool + Sync + 'a
    where
        F: Sync,
    {
        move |key| self.is_enabled(key, subject_id)
    }

    /// A flag's stored value, e.g. to read a string variant.
    pub fn flag_value(&self, key: &str) -> Option<&FlagValue> {
        self.flags.get(key)
    }

    /// All flags.
    pub fn flags(&self) -> &BTreeMap<String, FlagValue> {
        &self.flags
    }

    /// The onboarding flow.
    pub fn flow(&self) -> &F {
        &self.flow
    }

    pub fn into_flow(self) -> F {
        self.flow
    }
}
