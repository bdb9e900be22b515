//! The AI provider's client and what the AI layer stores: an opt-in
//! suggestion for an `aiEnhanceable` field is produced by a versioned prompt
//! through an OpenAI-compatible or Anthropic provider. Producing, validating
//! and deciding a suggestion is the domain's (`wizard::suggest`).
//!
//! - [`settings`]: `AI_*` configuration ([`AiSettings`]); unset provider = off.
//! - [`provider`]: [`AiClient::complete`], both wire formats, timeouts,
//!   retries and the [`crate::breaker`].
//! - [`prompts`]: templates, [`prompts::publish_check`], [`prompts::render`].
//! - [`preferences`]: the caller's opt-in and the organization's policy.

pub mod preferences;
pub mod prompts;
pub mod provider;
pub mod settings;

pub use provider::{AiClient, AiError, Completion, CompletionRequest, Usage};
pub use settings::{AiSettings, ProviderKind};
