//! A fake model server: answers from a script in the provider's real wire
//! format and records every request it receives.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use onboarding::ai::{AiClient, AiSettings, ProviderKind};
use onboarding::settings::SecretString;
use serde_json::{Value, json};

pub const API_KEY: &str = "test-provider-key";
pub const MODEL: &str = "test-model";
/// The model name the fake server answers with (providers add a date).
pub const SERVED_MODEL: &str = "test-model-2026-11-01";

/// One scripted answer.
#[derive(Debug, Clone)]
pub enum Reply {
    Status {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: Value,
    },
    /// Never answers within this time.
    Hang(Duration),
}

/// A request as the server saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
    /// The raw body text, for "never contains" assertions.
    pub raw: String,
}

#[derive(Default)]
struct Script {
    replies: VecDeque<Reply>,
    requests: Vec<Recorded>,
}

/// A running fake provider.
pub struct FakeProvider {
    pub kind: ProviderKind,
    pub base_url: String,
    script: Arc<Mutex<Script>>,
}

impl FakeProvider {
    /// Starts on a random port. Replies are used in order; the last repeats.
    pub async fn start(kind: ProviderKind, replies: Vec<Reply>) -> Self {
        let script = Arc::new(Mutex::new(Script {
            replies: replies.into(),
            requests: Vec::new(),
        }));
        let app = axum::Router::new()
            .fallback(answer)
            .with_state((kind, script.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        let base_url = match kind {
            ProviderKind::OpenAi => format!("http://{address}/v1"),
            ProviderKind::Anthropic => format!("http://{address}"),
        };
        Self {
            kind,
            base_url,
            script,
        }
    }

    /// Replaces the remaining script.
    pub fn set_replies(&self, replies: Vec<Reply>) {
        self.script.lock().unwrap().replies = replies.into();
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.script.lock().unwrap().requests.clone()
    }

    pub fn count(&self) -> usize {
        self.script.lock().unwrap().requests.len()
    }

    /// Settings pointing at this server; tests adjust the limits.
    pub fn settings(&self) -> AiSettings {
        AiSettings {
            provider: self.kind,
            base_url: self.base_url.clone(),
            api_key: Some(SecretString::from(API_KEY)),
            model: MODEL.to_string(),
            timeout: Duration::from_secs(2),
            deadline: Duration::from_secs(5),
            max_retries: 2,
            breaker_threshold: 100,
            breaker_cooldown: Duration::from_secs(30),
        }
    }

    pub fn client(&self) -> AiClient {
        AiClient::new(self.settings()).unwrap()
    }

    pub fn client_with(&self, adjust: impl FnOnce(&mut AiSettings)) -> AiClient {
        let mut settings = self.settings();
        adjust(&mut settings);
        AiClient::new(settings).unwrap()
    }
}

async fn answer(
    State((kind, script)): State<(ProviderKind, Arc<Mutex<Script>>)>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let raw = String::from_utf8_lossy(&body).into_owned();
    let reply = {
        let mut script = script.lock().unwrap();
        script.requests.push(Recorded {
            path: uri.path().to_string(),
            headers,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            raw,
        });
        if script.replies.len() > 1 {
            script.replies.pop_front().unwrap()
        } else {
            script.replies.front().cloned().expect("a scripted reply")
        }
    };
    let expected = match kind {
        ProviderKind::OpenAi => "/v1/chat/completions",
        ProviderKind::Anthropic => "/v1/messages",
    };
    if uri.path() != expected {
        return (StatusCode::NOT_FOUND, "wrong path").into_response();
    }
    match reply {
        Reply::Hang(duration) => {
            tokio::time::sleep(duration).await;
            (StatusCode::GATEWAY_TIMEOUT, "hung").into_response()
        }
        Reply::Status {
            status,
            headers,
            body,
        } => {
            let mut response = (
                StatusCode::from_u16(status).unwrap(),
                [("content-type", "application/json")],
                body.to_string(),
            )
                .into_response();
            for (name, value) in headers {
                response.headers_mut().insert(name, value.parse().unwrap());
            }
            response
        }
    }
}

fn ok(body: Value) -> Reply {
    Reply::Status {
        status: 200,
        headers: Vec::new(),
        body,
    }
}

/// A successful structured answer holding `value`.
pub fn structured(kind: ProviderKind, value: Value) -> Reply {
    match kind {
        ProviderKind::OpenAi => ok(json!({
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1_764_288_000,
            "model": SERVED_MODEL,
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": value.to_string(), "refusal": null },
                "logprobs": null,
                "finish_reason": "stop"
            }],
            "usage": { "prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150 }
        })),
        ProviderKind::Anthropic => ok(json!({
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": SERVED_MODEL,
            "content": [{ "type": "tool_use", "id": "toolu_1", "name": "goals_primaryGoal", "input": value }],
            "stop_reason": "tool_use",
            "stop_sequence": null,
            "usage": { "input_tokens": 120, "output_tokens": 30 }
        })),
    }
}

/// A successful answer whose output is prose, not the JSON asked for.
pub fn prose(kind: ProviderKind, text: &str) -> Reply {
    match kind {
        ProviderKind::OpenAi => ok(json!({
            "id": "chatcmpl-2",
            "object": "chat.completion",
            "model": SERVED_MODEL,
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": text, "refusal": null },
                "finish_reason": "stop"
            }],
            "usage": { "prompt_tokens": 120, "completion_tokens": 12, "total_tokens": 132 }
        })),
        ProviderKind::Anthropic => ok(json!({
            "id": "msg_2",
            "type": "message",
            "role": "assistant",
            "model": SERVED_MODEL,
            "content": [{ "type": "text", "text": text }],
            "stop_reason": "end_turn",
            "usage": { "input_tokens": 120, "output_tokens": 12 }
        })),
    }
}

/// The model declines.
pub fn refusal(kind: ProviderKind) -> Reply {
    match kind {
        ProviderKind::OpenAi => ok(json!({
            "id": "chatcmpl-3",
            "object": "chat.completion",
            "model": SERVED_MODEL,
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": null, "refusal": "I'm sorry, I can't help with that." },
                "finish_reason": "stop"
            }],
            "usage": { "prompt_tokens": 120, "completion_tokens": 9, "total_tokens": 129 }
        })),
        ProviderKind::Anthropic => ok(json!({
            "id": "msg_3",
            "type": "message",
            "role": "assistant",
            "model": SERVED_MODEL,
            "content": [],
            "stop_reason": "refusal",
            "usage": { "input_tokens": 120, "output_tokens": 0 }
        })),
    }
}

/// An error status with the provider's error body.
pub fn error(kind: ProviderKind, status: u16, headers: &[(&'static str, &str)]) -> Reply {
    let body = match kind {
        ProviderKind::OpenAi => json!({
            "error": { "message": "scripted failure", "type": "server_error", "param": null, "code": null }
        }),
        ProviderKind::Anthropic => json!({
            "type": "error",
            "error": { "type": if status == 529 { "overloaded_error" } else { "api_error" }, "message": "scripted failure" }
        }),
    };
    Reply::Status {
        status,
        headers: headers.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        body,
    }
}
