//! Logging: JSON lines by default (what Vercel's log drains ingest), pretty
//! text for a human at a terminal. Never tokens, emails or answers.

use std::sync::Once;

use tracing_subscriber::EnvFilter;

static INIT: Once = Once::new();

/// Installs the global subscriber once; later calls do nothing.
pub fn init() {
    INIT.call_once(|| {
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
        let pretty = std::env::var("LOG_FORMAT").is_ok_and(|format| format == "pretty");
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr);
        let _ = if pretty {
            builder.try_init()
        } else {
            builder
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .try_init()
        };
    });
}

/// Middleware: one log line per request (request id, method, path without the
/// query string, status, latency, caller kind; never tokens, emails or
/// answers), and a `Server-Timing` header with the time spent in the app.
pub async fn observe(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let started = std::time::Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let caller = match request.extensions().get::<crate::auth::Caller>() {
        Some(crate::auth::Caller::User(_)) => "user",
        Some(crate::auth::Caller::Anonymous(anonymous)) if anonymous.session().is_some() => {
            "session"
        }
        Some(crate::auth::Caller::Anonymous(_)) => "anonymous",
        None => "unverified",
    };
    let mut response = next.run(request).await;
    let elapsed = started.elapsed();
    let millis = elapsed.as_secs_f64() * 1000.0;
    if let Ok(value) = axum::http::HeaderValue::from_str(&format!("app;dur={millis:.2}")) {
        response.headers_mut().append("server-timing", value);
    }
    let status = response.status().as_u16();
    let request_id = crate::http::request_id::current().unwrap_or_default();
    if status >= 500 {
        tracing::error!(request_id, %method, path, status, latency_ms = millis, caller, "request");
    } else {
        tracing::info!(request_id, %method, path, status, latency_ms = millis, caller, "request");
    }
    response
}
