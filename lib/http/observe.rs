//! The middleware that measures each request: `Server-Timing`, one log line,
//! and, when configured, an OpenTelemetry span.

use std::time::Instant;

use axum::extract::{MatchedPath, State};
use axum::http::HeaderValue;

use crate::http::background::Background;
use crate::http::request_id;
use crate::monitoring::otlp::Exporter;
use crate::monitoring::{self, Served, millis};

/// Middleware: measures the request, adds `Server-Timing`, writes one log
/// line (request id, method, path without the query string, route, status,
/// latency, caller kind; never tokens, emails or answers) and, when
/// configured, exports the request as a span.
pub async fn observe(
    State(exporter): State<Option<Exporter>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let started = Instant::now();
    let started_at = std::time::SystemTime::now();
    let method = request.method().to_string();
    let path = request.uri().path().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|matched| matched.as_str().to_string());
    let traceparent = request
        .headers()
        .get("traceparent")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let background = request
        .extensions()
        .get::<Background>()
        .cloned()
        .unwrap_or_default();
    let (mut response, figures) = monitoring::record(next.run(request)).await;
    let served = Served {
        method,
        path,
        route,
        status: response.status().as_u16(),
        caller: figures.caller,
        request_id: request_id::current().unwrap_or_default(),
        started: started_at,
        total: started.elapsed(),
        db: figures.db,
        cache: figures.cache,
        traceparent,
    };
    if let Ok(value) = HeaderValue::from_str(&served.server_timing()) {
        response.headers_mut().append("server-timing", value);
    }
    let Served {
        request_id,
        method,
        path,
        status,
        caller,
        ..
    } = &served;
    let route = served.route.as_deref().unwrap_or("");
    let latency_ms = millis(served.total);
    let db_ms = millis(served.db);
    let cache_ms = millis(served.cache);
    if *status >= 500 {
        tracing::error!(
            request_id, method, path, route, status, latency_ms, db_ms, cache_ms, caller, "request"
        );
    } else {
        tracing::info!(
            request_id, method, path, route, status, latency_ms, db_ms, cache_ms, caller, "request"
        );
    }
    if let Some(exporter) = exporter {
        // On Vercel the function stays alive until the span is posted.
        background.spawn(exporter.export(served));
    }
    response
}
