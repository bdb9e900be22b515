//! AI enhancement of answers: an opt-in suggestion for an `aiEnhanceable`
//! field, produced by a versioned prompt through an OpenAI-compatible or
//! Anthropic provider, validated like user input, and stored for the caller
//! to accept or reject.
//!
//! - [`settings`]: `AI_*` configuration ([`AiSettings`]); unset provider = off.
//! - [`provider`]: [`AiClient::complete`], both wire formats, timeouts,
//!   retries and the [`crate::breaker`].
//! - [`prompts`]: templates, [`prompts::publish_check`], [`prompts::render`].
//! - [`preferences`]: the caller's opt-in and the organization's policy.
//! - [`suggest`]: [`suggest::suggest`] and [`suggest::decide`].

pub mod preferences;
pub mod prompts;
pub mod provider;
pub mod settings;
pub mod suggest;

pub use provider::{AiClient, AiError, Completion, CompletionRequest, Usage};
pub use settings::{AiSettings, ProviderKind};
pub use suggest::{
    DecideOutcome, Decision, NoSuggestionReason, SuggestError, SuggestRequest, SuggestionOutcome,
    decide, suggest,
};
