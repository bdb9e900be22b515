//! The AI layer against local servers that speak each provider's wire format,
//! and against the real PostgreSQL.

/// Runs an async test body once per provider, as `<name>::with_openai` and
/// `<name>::with_anthropic`.
macro_rules! for_both_providers {
    ($name:ident, $body:path) => {
        mod $name {
            #[tokio::test]
            async fn with_openai() {
                $body(onboarding::ai::ProviderKind::OpenAi).await
            }

            #[tokio::test]
            async fn with_anthropic() {
                $body(onboarding::ai::ProviderKind::Anthropic).await
            }
        }
    };
}

mod pipeline;
mod prompts;
mod provider;
mod routes;
pub mod server;
