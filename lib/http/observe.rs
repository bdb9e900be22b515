//! The outermost middleware: it gives each request its id, measures it
//! (`Server-Timing`, one log line and, when configured, an OpenTelemetry
//! span), answers a panic as a 500, and marks every answer
//! `Cache-Control: no-store` unless the route said otherwise.

use std::panic::AssertUnwindSafe;
use std::time::Instant;

use axum::extract::{MatchedPath, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::IntoResponse;
use futures_util::FutureExt;

use crate::http::background::Background;
use crate::http::error::ApiError;
use crate::http::request_id;
use crate::monitoring::otlp::Exporter;
use crate::monitoring::{self, Served};

// Named once: a header looked up or added by a `&str` is parsed on every call.
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");

/// Middleware: assigns the request id ([`request_id::assign`]) and serves
/// the request in its scope, measures it, adds `Server-Timing`, echoes the
/// id, writes one log line (request id, method, path without the query
/// string, route, status, latency, caller kind; never tokens, emails or
/// answers) and, when configured, exports the request as a span.
///
/// One layer instead of one per concern: each layer of the router is cloned
/// and boxed on every request.
pub async fn observe(
    State(exporter): State<Option<Exporter>>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    // Dropped last, after the request's log line.
    let _serving = monitoring::serving();
    let (request_id, id_header) = request_id::assign(&mut request);
    let mut response = request_id::scope(
        request_id.clone(),
        measured(exporter, request_id, request, next),
    )
    .await;
    let headers = response.headers_mut();
    headers.insert(request_id::HEADER.clone(), id_header);
    // Personal data: nothing may be cached by a browser or CDN unless a
    // route says otherwise.
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

async fn measured(
    exporter: Option<Exporter>,
    request_id: String,
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
        .get(TRACEPARENT)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let background = request
        .extensions()
        .get::<Background>()
        .cloned()
        .unwrap_or_default();
    let (mut response, figures) = monitoring::record(answering_panics(next.run(request))).await;
    let served = Served {
        method,
        path,
        route,
        status: response.status().as_u16(),
        caller: figures.caller,
        request_id,
        started: started_at,
        total: started.elapsed(),
        db: figures.db,
        cache: figures.cache,
        traceparent,
    };
    if let Ok(value) = HeaderValue::from_str(&served.server_timing()) {
        response.headers_mut().append(SERVER_TIMING, value);
    }
    served.log();
    if let Some(exporter) = exporter {
        // On Vercel the function stays alive until the span is posted.
        background.spawn(exporter.export(served));
    }
    response
}

/// A panic in a handler is answered as any internal error is, a 500 with the
/// request id whose cause goes to the log, instead of a closed connection.
///
/// Not an `async fn`: one that awaits a future it was given holds that
/// future twice over in its own state, and this one wraps every request.
fn answering_panics(
    serve: impl Future<Output = axum::response::Response>,
) -> impl Future<Output = axum::response::Response> {
    AssertUnwindSafe(serve)
        .catch_unwind()
        .map(|served| match served {
            Ok(response) => response,
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|message| message.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "no message".into());
                ApiError::Internal(anyhow::anyhow!("a handler panicked: {message}")).into_response()
            }
        })
}
