//! The outermost middleware: it gives each request its id, measures it
//! (`Server-Timing`, one log line and, when configured, an OpenTelemetry
//! span), answers a panic as a 500, and marks every answer
//! `Cache-Control: no-store` unless the route said otherwise.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::MatchedPath;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::IntoResponse;
use futures_util::FutureExt;

use crate::http::background::Background;
use crate::http::error::ApiError;
use crate::http::middleware::{self, Middleware, Next};
use crate::http::request_id;
use crate::monitoring::otlp::Exporter;
use crate::monitoring::{self, Served};

/// `observe` below as the outermost middleware, with the span exporter when
/// one is configured.
#[derive(Clone)]
pub struct Observe(pub Option<Exporter>);

impl Middleware for Observe {
    fn serve(
        self,
        request: axum::extract::Request,
        next: impl Next,
    ) -> impl Future<Output = axum::response::Response> + Send {
        observe(self.0, request, next)
    }
}

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
async fn observe(
    exporter: Option<Exporter>,
    mut request: axum::extract::Request,
    next: impl Next,
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
    request_id: Arc<str>,
    request: axum::extract::Request,
    next: impl Next,
) -> axum::response::Response {
    let started = Instant::now();
    let started_at = std::time::SystemTime::now();
    // Kept for the log line and the span, by reference count, not copied:
    // a standard method is a constant, the path shares the request's
    // buffer, the route its router's pattern.
    let method = request.method().clone();
    let uri = request.uri().clone();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let traceparent = request.headers().get(TRACEPARENT).cloned();
    let background = request
        .extensions()
        .get::<Background>()
        .cloned()
        .unwrap_or_default();
    let (mut response, figures) =
        monitoring::record(answering_panics(middleware::run(next, request))).await;
    let served = Served {
        method: method.as_str(),
        path: uri.path(),
        route: route.as_ref().map(MatchedPath::as_str),
        status: response.status().as_u16(),
        caller: figures.caller,
        request_id: &request_id,
        started: started_at,
        total: started.elapsed(),
        db: figures.db,
        cache: figures.cache,
        traceparent: traceparent.as_ref().and_then(|value| value.to_str().ok()),
    };
    if let Ok(value) = HeaderValue::from_str(&served.server_timing()) {
        response.headers_mut().append(SERVER_TIMING, value);
    }
    served.log();
    if let Some(exporter) = exporter {
        // On Vercel the function stays alive until the span is posted.
        background.spawn(exporter.export(&served));
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
