//! A fake OpenAI-compatible AI provider on loopback, whose behaviour the fault
//! injection switches (normal, hanging, failing) to show that the wizard's
//! routes do not notice and that suggestions degrade instead of failing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::services::serve_loopback;
use crate::tokens::now;

/// How the fake AI provider answers: normally, not at all, or with a 500.
pub const AI_OK: u8 = 0;
pub const AI_HANG: u8 = 1;
pub const AI_ERROR: u8 = 2;

/// Serves `POST /v1/chat/completions` (the Chat Completions wire format),
/// answering as `mode` says; returns the base URL.
pub async fn serve(mode: Arc<AtomicU8>) -> anyhow::Result<String> {
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move || {
            let mode = mode.load(Ordering::Relaxed);
            async move {
                match mode {
                    AI_HANG => {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                        (StatusCode::GATEWAY_TIMEOUT, axum::Json(json!({})))
                    }
                    AI_ERROR => (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        axum::Json(json!({ "error": {
                            "message": "The server had an error while processing your request.",
                            "type": "server_error", "param": null, "code": null } })),
                    ),
                    _ => (
                        StatusCode::OK,
                        axum::Json(json!({
                            "id": "chatcmpl-reliability",
                            "object": "chat.completion",
                            "created": now(),
                            "model": "reliability",
                            "choices": [{
                                "index": 0,
                                "message": { "role": "assistant", "refusal": null,
                                             "content": json!({ "primaryGoal": "See every number in one place" }).to_string() },
                                "logprobs": null,
                                "finish_reason": "stop"
                            }],
                            "usage": { "prompt_tokens": 120, "completion_tokens": 12, "total_tokens": 132 }
                        })),
                    ),
                }
            }
        }),
    );
    let (address, _) = serve_loopback(app).await?;
    Ok(format!("http://{address}/v1"))
}
