//! One client, two wire formats: OpenAI Chat Completions (which Azure OpenAI,
//! Groq, Together, Ollama, vLLM and LM Studio also speak behind their own base
//! URL) and the Anthropic Messages API. Both are asked for structured output
//! against a JSON Schema and answer a parsed JSON value.
//!
//! The request and response types are written out here rather than taken
//! from `async-openai`: that crate covers only one of the two formats, brings
//! its own retry loop (we need ours, which honours `Retry-After`, the overall
//! deadline and the circuit breaker) and a wide type surface for the few
//! fields we read; these types are the contract the test servers speak.
//!
//! Resilience: each call has [`AiSettings::timeout`]; the whole completion,
//! retries and waits included, has [`AiSettings::deadline`]. 429, 5xx,
//! Anthropic's 529, timeouts and network errors are retried with jittered
//! exponential backoff, waiting `Retry-After` when the provider sends it;
//! other 4xx are not. Nothing is spawned: dropping the future of
//! [`AiClient::complete`] cancels the HTTP request in flight.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::time::Instant;

use crate::ai::settings::{AiSettings, ProviderKind};
use crate::breaker::{CircuitBreaker, CircuitSettings};
use crate::settings::ExposeSecret;

/// The Anthropic API version this client speaks.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// First backoff step; doubled per retry, capped at [`MAX_BACKOFF`].
const BASE_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(4);

/// What to ask the model.
#[derive(Debug, Clone, PartialEq)]
pub struct CompletionRequest {
    pub system: String,
    pub user: String,
    /// Name of the output schema (OpenAI `json_schema.name`, Anthropic tool
    /// name); characters outside `[A-Za-z0-9_-]` are replaced.
    pub schema_name: String,
    /// JSON Schema of the output; for OpenAI strict mode every property must
    /// be required and `additionalProperties` false.
    pub schema: Value,
    pub max_tokens: u32,
}

/// Tokens as the provider counted them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: Option<u32>,
    pub output_tokens: Option<u32>,
}

/// A structured answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The output, parsed (not yet validated against anything but JSON syntax).
    pub value: Value,
    /// The model that answered, as the provider names it.
    pub model: String,
    pub usage: Usage,
    /// Wall time of the whole completion, retries included.
    pub latency: Duration,
    /// `finish_reason` (OpenAI) or `stop_reason` (Anthropic).
    pub finish_reason: Option<String>,
    /// HTTP calls made, retries included.
    pub attempts: u32,
}

impl Completion {
    /// One response as a wire format parsed it: the model it names, else the
    /// configured one. Latency and attempts stay zero until
    /// [`AiClient::complete`] knows them, after its last attempt.
    fn parsed(
        value: Value,
        model: Option<String>,
        configured_model: &str,
        usage: Usage,
        finish_reason: Option<String>,
    ) -> Self {
        Self {
            value,
            model: model.unwrap_or_else(|| configured_model.to_string()),
            usage,
            latency: Duration::ZERO,
            finish_reason,
            attempts: 0,
        }
    }
}

/// Why a completion failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AiError {
    /// AI is not configured (`AI_PROVIDER` unset).
    #[error("AI suggestions are off")]
    Off,
    /// A call or the overall deadline ran out.
    #[error("the AI provider did not answer in time")]
    Timeout,
    /// Still rate limited when retries or the deadline ran out.
    #[error("the AI provider is rate limiting us")]
    RateLimited { retry_after: Option<Duration> },
    /// The provider answered with an error status.
    #[error("the AI provider answered {status}")]
    Provider { status: u16 },
    /// The provider could not be reached.
    #[error("cannot reach the AI provider: {0}")]
    Network(String),
    /// The model declined to answer.
    #[error("the model refused")]
    Refused,
    /// The answer was not the structured output asked for.
    #[error("the model's output is unusable: {0}")]
    InvalidOutput(String),
    /// Too many recent failures; no call was made.
    #[error("the AI provider is failing; calls are paused")]
    CircuitOpen,
}

/// A failed call, with what the retry loop needs to know about it.
struct Failure {
    error: AiError,
    retryable: bool,
    /// Whether it says the provider is unhealthy (counts for the breaker).
    unhealthy: bool,
    retry_after: Option<Duration>,
}

impl Failure {
    fn transient(error: AiError, retry_after: Option<Duration>) -> Self {
        Self {
            error,
            retryable: true,
            unhealthy: true,
            retry_after,
        }
    }

    fn fatal(error: AiError) -> Self {
        Self {
            error,
            retryable: false,
            unhealthy: false,
            retry_after: None,
        }
    }
}

/// The AI client: built once per process, cloned cheaply.
#[derive(Clone)]
pub struct AiClient {
    inner: Arc<Inner>,
}

struct Inner {
    settings: AiSettings,
    http: reqwest::Client,
    breaker: CircuitBreaker,
}

impl std::fmt::Debug for AiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // AiSettings' Debug redacts the key.
        f.debug_struct("AiClient")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl AiClient {
    /// Builds the client with its own connection pool. Timeouts are applied
    /// per call by [`AiClient::complete`], not by reqwest.
    pub fn new(settings: AiSettings) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3).min(settings.timeout))
            .build()?;
        Ok(Self::with_http(settings, http))
    }

    /// Uses a given reqwest client (its own timeout, if any, also applies).
    pub fn with_http(settings: AiSettings, http: reqwest::Client) -> Self {
        let breaker = CircuitBreaker::new(CircuitSettings {
            failures: settings.breaker_threshold,
            cooldown: settings.breaker_cooldown,
        });
        Self {
            inner: Arc::new(Inner {
                settings,
                http,
                breaker,
            }),
        }
    }

    pub fn provider(&self) -> ProviderKind {
        self.inner.settings.provider
    }

    /// The configured model name.
    pub fn model(&self) -> &str {
        &self.inner.settings.model
    }

    pub fn settings(&self) -> &AiSettings {
        &self.inner.settings
    }

    /// Whether the circuit breaker currently refuses calls.
    pub fn circuit_open(&self) -> bool {
        self.inner.breaker.is_open()
    }

    /// Asks for structured output, retrying transient failures within the deadline.
    #[tracing::instrument(level = "debug", skip_all, fields(ai.provider = self.provider().as_str(), ai.model = %self.model(), ai.attempts))]
    pub async fn complete(&self, request: &CompletionRequest) -> Result<Completion, AiError> {
        let settings = &self.inner.settings;
        let started = Instant::now();
        let deadline = started + settings.deadline;
        let mut attempt: u32 = 0;
        loop {
            let Some(permit) = self.inner.breaker.try_acquire() else {
                tracing::warn!("AI circuit open; not calling the provider");
                return Err(AiError::CircuitOpen);
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(AiError::Timeout);
            }
            attempt += 1;
            tracing::Span::current().record("ai.attempts", attempt);
            let outcome = match tokio::time::timeout(
                settings.timeout.min(remaining),
                self.call_once(request),
            )
            .await
            {
                Ok(outcome) => outcome,
                Err(_elapsed) => Err(Failure::transient(AiError::Timeout, None)),
            };
            let failure = match outcome {
                Ok(mut completion) => {
                    permit.success();
                    completion.latency = started.elapsed();
                    completion.attempts = attempt;
                    return Ok(completion);
                }
                Err(failure) => failure,
            };
            if failure.unhealthy {
                permit.failure();
            } else {
                permit.success();
            }
            if !failure.retryable || attempt > settings.max_retries {
                return Err(failure.error);
            }
            let wait = failure.retry_after.unwrap_or_else(|| backoff(attempt - 1));
            if Instant::now() + wait >= deadline {
                tracing::warn!(error = %failure.error, wait_ms = wait.as_millis() as u64, "AI call failed; no time left to retry");
                return Err(failure.error);
            }
            tracing::warn!(error = %failure.error, wait_ms = wait.as_millis() as u64, attempt, "AI call failed; retrying");
            tokio::time::sleep(wait).await;
        }
    }

    async fn call_once(&self, request: &CompletionRequest) -> Result<Completion, Failure> {
        let settings = &self.inner.settings;
        let name = schema_name(&request.schema_name);
        let builder = match settings.provider {
            ProviderKind::OpenAi => {
                let body = ChatRequest {
                    model: &settings.model,
                    messages: [
                        ChatMessageOut {
                            role: "system",
                            content: &request.system,
                        },
                        ChatMessageOut {
                            role: "user",
                            content: &request.user,
                        },
                    ],
                    max_tokens: request.max_tokens,
                    response_format: ResponseFormat {
                        kind: "json_schema",
                        json_schema: JsonSchemaFormat {
                            name: &name,
                            schema: &request.schema,
                            strict: true,
                        },
                    },
                };
                let mut builder = self
                    .inner
                    .http
                    .post(format!("{}/chat/completions", settings.base_url))
                    .json(&body);
                if let Some(key) = &settings.api_key {
                    builder = builder.bearer_auth(key.expose_secret());
                    if is_azure(&settings.base_url) {
                        builder = builder.header("api-key", key.expose_secret());
                    }
                }
                builder
            }
            ProviderKind::Anthropic => {
                let body = MessagesRequest {
                    model: &settings.model,
                    max_tokens: request.max_tokens,
                    system: &request.system,
                    messages: [AnthropicMessageOut {
                        role: "user",
                        content: &request.user,
                    }],
                    tools: [ToolOut {
                        name: &name,
                        description: "Return the result in this shape.",
                        input_schema: &request.schema,
                    }],
                    tool_choice: ToolChoice {
                        kind: "tool",
                        name: &name,
                    },
                };
                let mut builder = self
                    .inner
                    .http
                    .post(format!("{}/v1/messages", settings.base_url))
                    .header("anthropic-version", ANTHROPIC_VERSION)
                    .json(&body);
                if let Some(key) = &settings.api_key {
                    builder = builder.header("x-api-key", key.expose_secret());
                }
                builder
            }
        };
        let response = builder.send().await.map_err(|error| {
            // Without the URL: it is ours, and the error text is enough.
            Failure::transient(AiError::Network(error.without_url().to_string()), None)
        })?;
        let status = response.status();
        if !status.is_success() {
            return Err(classify_status(status, response.headers()));
        }
        let body = response.bytes().await.map_err(|error| {
            Failure::transient(AiError::Network(error.without_url().to_string()), None)
        })?;
        match settings.provider {
            ProviderKind::OpenAi => parse_chat(&body, &settings.model),
            ProviderKind::Anthropic => parse_messages(&body, &settings.model, &name),
        }
        .map_err(Failure::fatal)
    }
}

fn classify_status(status: StatusCode, headers: &HeaderMap) -> Failure {
    let retry_after = retry_after(headers);
    tracing::warn!(
        status = status.as_u16(),
        retry_after_ms = retry_after.map(|d| d.as_millis() as u64),
        "AI provider answered an error"
    );
    match status.as_u16() {
        429 => Failure::transient(AiError::RateLimited { retry_after }, retry_after),
        // 529: Anthropic's "overloaded".
        code @ (500..=599) => Failure::transient(AiError::Provider { status: code }, retry_after),
        // 408 is the server giving up on us: transient too.
        408 => Failure::transient(AiError::Timeout, retry_after),
        code => Failure::fatal(AiError::Provider { status: code }),
    }
}

/// `retry-after-ms` (OpenAI) or `Retry-After` in seconds or as an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = header("retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_millis(ms as u64));
    }
    let raw = header("retry-after")?;
    if let Ok(seconds) = raw.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = chrono::DateTime::parse_from_rfc2822(raw).ok()?;
    let wait = date.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// Jittered exponential backoff for retry `n` (0-based): a random point in
/// the upper half of `BASE_BACKOFF * 2^n`, so concurrent callers spread out.
fn backoff(n: u32) -> Duration {
    let ceiling = BASE_BACKOFF
        .saturating_mul(1u32.checked_shl(n).unwrap_or(u32::MAX))
        .min(MAX_BACKOFF);
    let half = ceiling / 2;
    let random = getrandom::u64().unwrap_or(0);
    let jitter_ms = random % (half.as_millis() as u64 + 1);
    half + Duration::from_millis(jitter_ms)
}

fn schema_name(raw: &str) -> String {
    let name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if name.is_empty() {
        "output".to_string()
    } else {
        name
    }
}

fn is_azure(base_url: &str) -> bool {
    url::Url::parse(base_url)
        .ok()
        .and_then(|url| url.host_str().map(str::to_ascii_lowercase))
        .is_some_and(|host| {
            host.ends_with(".openai.azure.com") || host.ends_with(".cognitiveservices.azure.com")
        })
}

// ---- OpenAI Chat Completions ---------------------------------------------------

#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: [ChatMessageOut<'a>; 2],
    // `max_tokens` rather than `max_completion_tokens`: every compatible server
    // (Ollama, vLLM, LM Studio, Groq, Together) accepts it.
    max_tokens: u32,
    response_format: ResponseFormat<'a>,
}

#[derive(Serialize)]
struct ChatMessageOut<'a> {
    role: &'static str,
    content: &'a str,
}

#[derive(Serialize)]
struct ResponseFormat<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    json_schema: JsonSchemaFormat<'a>,
}

#[derive(Serialize)]
struct JsonSchemaFormat<'a> {
    name: &'a str,
    schema: &'a Value,
    strict: bool,
}

#[derive(Deserialize)]
struct ChatResponse {
    model: Option<String>,
    #[serde(default)]
    choices: Vec<ChatChoice>,
    usage: Option<ChatUsage>,
}

#[derive(Deserialize)]
struct ChatChoice {
    message: ChatMessageIn,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ChatMessageIn {
    content: Option<String>,
    refusal: Option<String>,
}

#[derive(Deserialize)]
struct ChatUsage {
    prompt_tokens: Option<u32>,
    completion_tokens: Option<u32>,
}

/// Why a provider stopped, read from its own fields: a refusal is
/// [`AiError::Refused`] (the user is told so), and output cut off at
/// `max_tokens` is invalid (it cannot be the whole JSON asked for).
fn check_stop(refused: bool, cut_off: bool) -> Result<(), AiError> {
    if refused {
        return Err(AiError::Refused);
    }
    if cut_off {
        return Err(AiError::InvalidOutput(
            "the output was cut off at max_tokens".into(),
        ));
    }
    Ok(())
}

fn parse_chat(body: &[u8], configured_model: &str) -> Result<Completion, AiError> {
    let response: ChatResponse = serde_json::from_slice(body).map_err(|error| {
        AiError::InvalidOutput(format!("not a chat completion response: {error}"))
    })?;
    let choice = response
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| AiError::InvalidOutput("no choices".into()))?;
    let finish_reason = choice.finish_reason.as_deref();
    let refused = choice
        .message
        .refusal
        .as_deref()
        .is_some_and(|refusal| !refusal.trim().is_empty())
        || finish_reason == Some("content_filter");
    check_stop(refused, finish_reason == Some("length"))?;
    let content = choice
        .message
        .content
        .ok_or_else(|| AiError::InvalidOutput("no content".into()))?;
    let value: Value = serde_json::from_str(&content)
        .map_err(|error| AiError::InvalidOutput(format!("content is not JSON: {error}")))?;
    let usage = response.usage.map(|usage| Usage {
        input_tokens: usage.prompt_tokens,
        output_tokens: usage.completion_tokens,
    });
    Ok(Completion::parsed(
        value,
        response.model,
        configured_model,
        usage.unwrap_or_default(),
        choice.finish_reason,
    ))
}

// ---- Anthropic Messages --------------------------------------------------------

#[derive(Serialize)]
struct MessagesRequest<'a> {
    model: &'a str,
    max_tokens: u32,
    system: &'a str,
    messages: [AnthropicMessageOut<'a>; 1],
    tools: [ToolOut<'a>; 1],
    tool_choice: ToolChoice<'a>,
}

#[derive(Serialize)]
struct AnthropicMessageOut<'a> {
    role: &'static str,
    content: &'a str,
}

#[derive(Serialize)]
struct ToolOut<'a> {
    name: &'a str,
    description: &'static str,
    input_schema: &'a Value,
}

#[derive(Serialize)]
struct ToolChoice<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'a str,
}

#[derive(Deserialize)]
struct MessagesResponse {
    model: Option<String>,
    #[serde(default)]
    content: Vec<ContentBlock>,
    stop_reason: Option<String>,
    usage: Option<AnthropicUsage>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ContentBlock {
    ToolUse {
        name: String,
        input: Value,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct AnthropicUsage {
    input_tokens: Option<u32>,
    output_tokens: Option<u32>,
}

fn parse_messages(body: &[u8], configured_model: &str, tool: &str) -> Result<Completion, AiError> {
    let response: MessagesResponse = serde_json::from_slice(body)
        .map_err(|error| AiError::InvalidOutput(format!("not a messages response: {error}")))?;
    let stop_reason = response.stop_reason.as_deref();
    check_stop(
        stop_reason == Some("refusal"),
        stop_reason == Some("max_tokens"),
    )?;
    let input = response
        .content
        .into_iter()
        .find_map(|block| match block {
            ContentBlock::ToolUse { name, input } if name == tool => Some(input),
            _ => None,
        })
        .ok_or_else(|| AiError::InvalidOutput(format!("no `{tool}` tool_use block")))?;
    let usage = response.usage.map(|usage| Usage {
        input_tokens: usage.input_tokens,
        output_tokens: usage.output_tokens,
    });
    Ok(Completion::parsed(
        input,
        response.model,
        configured_model,
        usage.unwrap_or_default(),
        response.stop_reason,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_reads_seconds_milliseconds_and_http_dates() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("3"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert("retry-after-ms", HeaderValue::from_static("1500"));
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(1500)));
        let mut headers = HeaderMap::new();
        headers.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
        headers.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn backoff_grows_stays_jittered_within_its_step_and_is_capped() {
        for n in 0..12 {
            let ceiling = BASE_BACKOFF
                .saturating_mul(1u32.checked_shl(n).unwrap_or(u32::MAX))
                .min(MAX_BACKOFF);
            let wait = backoff(n);
            assert!(wait >= ceiling / 2 && wait <= ceiling, "{n}: {wait:?}");
        }
    }

    #[test]
    fn schema_names_are_reduced_to_the_characters_both_apis_accept() {
        assert_eq!(schema_name("goals.primaryGoal"), "goals_primaryGoal");
        assert_eq!(schema_name(""), "output");
        assert_eq!(schema_name(&"x".repeat(100)).len(), 64);
    }

    #[test]
    fn an_openai_refusal_is_typed() {
        let body = br#"{"model":"m","choices":[{"message":{"role":"assistant","content":null,"refusal":"I can't help with that."},"finish_reason":"stop"}]}"#;
        assert_eq!(parse_chat(body, "m").unwrap_err(), AiError::Refused);
    }

    #[test]
    fn an_anthropic_answer_without_the_tool_block_is_invalid_output() {
        let body =
            br#"{"model":"m","content":[{"type":"text","text":"Sure!"}],"stop_reason":"end_turn"}"#;
        assert!(matches!(
            parse_messages(body, "m", "t").unwrap_err(),
            AiError::InvalidOutput(_)
        ));
    }
}
