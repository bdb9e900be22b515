//! The flow as an item of the Vercel Edge Config: how the flags store parses
//! it, and the shipped items embedded in the binary as the fallback and the
//! default flow.

use serde_json::Value;

use super::check::FlowError;
use super::checked::Flow;
use crate::flags::{FlowItem, ItemProblem};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
