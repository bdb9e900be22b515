//! [`AiSettings`]: which provider, where, with which key and limits.

use std::time::Duration;

use crate::settings::{ConfigError, Lookup, SecretString};

/// The wire format spoken to the model server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// OpenAI Chat Completions, also spoken by Azure OpenAI, Groq, Together,
    /// Ollama, vLLM and LM Studio behind their own base URL.
    OpenAi,
    /// Anthropic Messages API.
    Anthropic,
}

impl ProviderKind {
    /// The name stored with each suggestion and accepted in `AI_PROVIDER`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "openai",
            ProviderKind::Anthropic => "anthropic",
        }
    }

    /// The public endpoint used when `AI_BASE_URL` is unset.
    pub fn default_base_url(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "https://api.openai.com/v1",
            ProviderKind::Anthropic => "https://api.anthropic.com",
        }
    }
}

/// How the AI client is configured; present only when `AI_PROVIDER` is set.
#[derive(Debug, Clone)]
pub struct AiSettings {
    pub provider: ProviderKind,
    /// Without a trailing slash.
    pub base_url: String,
    /// Optional for OpenAI-compatible local servers (Ollama, vLLM, LM Studio).
    pub api_key: Option<SecretString>,
    pub model: String,
    /// Limit of one HTTP call.
    pub timeout: Duration,
    /// Limit of one completion, retries and waits included.
    pub deadline: Duration,
    pub max_retries: u32,
    /// Consecutive failed calls after which the circuit opens.
    pub breaker_threshold: u32,
    /// How long an open circuit refuses calls before letting one probe through.
    pub breaker_cooldown: Duration,
}

impl AiSettings {
    /// `None` when `AI_PROVIDER` is unset: AI is off.
    pub fn from_lookup(lookup: &dyn Lookup) -> Result<Option<Self>, ConfigError> {
        let provider = match lookup.get("AI_PROVIDER").as_deref().map(str::trim) {
            None => return Ok(None),
            Some("openai") => ProviderKind::OpenAi,
            Some("anthropic") => ProviderKind::Anthropic,
            Some(other) => {
                return Err(ConfigError::new(
                    "AI_PROVIDER",
                    format!("`{other}` is not one of openai, anthropic"),
                ));
            }
        };
        let base_url = lookup
            .get("AI_BASE_URL")
            .unwrap_or_else(|| provider.default_base_url().to_string());
        let parsed = url::Url::parse(base_url.trim())
            .map_err(|error| ConfigError::new("AI_BASE_URL", format!("is not a URL: {error}")))?;
        let local = parsed
            .host_str()
            .is_some_and(|host| host == "localhost" || host == "127.0.0.1" || host == "[::1]");
        if !(parsed.scheme() == "https" || (parsed.scheme() == "http" && local)) {
            return Err(ConfigError::new(
                "AI_BASE_URL",
                "must be https (http only for localhost)",
            ));
        }
        let base_url = base_url.trim().trim_end_matches('/').to_string();
        let api_key = lookup
            .get("AI_API_KEY")
            .map(|key| SecretString::from(key.trim()));
        let needs_key = provider == ProviderKind::Anthropic
            || base_url == ProviderKind::OpenAi.default_base_url();
        if needs_key && api_key.is_none() {
            return Err(ConfigError::new(
                "AI_API_KEY",
                format!("is required for AI_PROVIDER={}", provider.as_str()),
            ));
        }
        let model = lookup
            .get("AI_MODEL")
            .map(|model| model.trim().to_string())
            .ok_or_else(|| ConfigError::new("AI_MODEL", "is required when AI_PROVIDER is set"))?;
        let timeout = Duration::from_millis(number(lookup, "AI_TIMEOUT_MS", 10_000, 1, 120_000)?);
        let deadline = Duration::from_millis(number(lookup, "AI_DEADLINE_MS", 20_000, 1, 300_000)?);
        let max_retries =
            u32::try_from(number(lookup, "AI_MAX_RETRIES", 2, 0, 10)?).expect("bounded by 10");
        Ok(Some(AiSettings {
            provider,
            base_url,
            api_key,
            model,
            timeout,
            deadline,
            max_retries,
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(30),
        }))
    }
}

fn number(
    lookup: &dyn Lookup,
    variable: &'static str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    crate::settings::parse_number(lookup, variable, default, min..=max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::lookup_of as lookup;

    #[test]
    fn ai_is_off_when_no_provider_is_set() {
        assert!(
            AiSettings::from_lookup(&lookup(&[("AI_MODEL", "m")]))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn anthropic_gets_its_default_url_and_the_documented_limits() {
        let settings = AiSettings::from_lookup(&lookup(&[
            ("AI_PROVIDER", "anthropic"),
            ("AI_API_KEY", "sk-ant-secret"),
            ("AI_MODEL", "claude-haiku-4-5"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(settings.base_url, "https://api.anthropic.com");
        assert_eq!(settings.timeout, Duration::from_millis(10_000));
        assert_eq!(settings.deadline, Duration::from_millis(20_000));
        assert_eq!(settings.max_retries, 2);
    }

    #[test]
    fn a_local_openai_compatible_server_needs_no_key() {
        let settings = AiSettings::from_lookup(&lookup(&[
            ("AI_PROVIDER", "openai"),
            ("AI_BASE_URL", "http://localhost:11434/v1/"),
            ("AI_MODEL", "llama3.2"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(settings.base_url, "http://localhost:11434/v1");
        assert!(settings.api_key.is_none());
    }

    #[test]
    fn missing_or_malformed_values_name_their_variable() {
        let cases: [(&[(&str, &str)], &str); 5] = [
            (&[("AI_PROVIDER", "gemini")], "AI_PROVIDER"),
            (
                &[("AI_PROVIDER", "anthropic"), ("AI_MODEL", "m")],
                "AI_API_KEY",
            ),
            (
                &[("AI_PROVIDER", "openai"), ("AI_API_KEY", "k")],
                "AI_MODEL",
            ),
            (
                &[
                    ("AI_PROVIDER", "openai"),
                    ("AI_BASE_URL", "http://models.example.com/v1"),
                    ("AI_MODEL", "m"),
                ],
                "AI_BASE_URL",
            ),
            (
                &[
                    ("AI_PROVIDER", "openai"),
                    ("AI_API_KEY", "k"),
                    ("AI_MODEL", "m"),
                    ("AI_MAX_RETRIES", "11"),
                ],
                "AI_MAX_RETRIES",
            ),
        ];
        for (pairs, variable) in cases {
            let error = AiSettings::from_lookup(&lookup(pairs)).unwrap_err();
            assert_eq!(error.variable, variable, "{pairs:?}");
        }
    }

    #[test]
    fn the_api_key_never_shows_in_debug_output() {
        let settings = AiSettings::from_lookup(&lookup(&[
            ("AI_PROVIDER", "openai"),
            ("AI_API_KEY", "sk-live-s3cr3t"),
            ("AI_MODEL", "gpt-4o-mini"),
        ]))
        .unwrap();
        assert!(!format!("{settings:?}").contains("s3cr3t"));
    }
}
