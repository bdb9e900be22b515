//! Logging, timings and traces.
//!
//! Logs are JSON lines by default (what Vercel's log drains ingest), pretty
//! text for a human at a terminal; never tokens, emails or answers. Every
//! response carries `Server-Timing` with the time spent in PostgreSQL, in
//! Redis and in total, measured through a per-request record that the
//! database and cache clients add to. With `OTEL_EXPORTER_OTLP_ENDPOINT` set,
//! each request is also exported as an OpenTelemetry span ([`otlp`]).

pub mod otlp;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Once, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, State};
use axum::http::HeaderValue;
use tracing_subscriber::EnvFilter;

use crate::auth::Caller;

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

tokio::task_local! {
    static RECORD: Arc<RequestRecord>;
}

/// What the layers and clients learn about one request while serving it.
#[derive(Default)]
struct RequestRecord {
    db_micros: AtomicU64,
    cache_micros: AtomicU64,
    caller: OnceLock<&'static str>,
}

/// Which dependency a [`Timer`] measures.
#[derive(Debug, Clone, Copy)]
pub enum Dependency {
    Database,
    Cache,
}

/// Adds the time until it is dropped to the current request's figure for a
/// dependency. Outside a request (background work) it records nothing.
#[must_use = "the time is recorded when the timer is dropped"]
pub struct Timer {
    dependency: Dependency,
    started: Instant,
}

impl Timer {
    pub fn start(dependency: Dependency) -> Self {
        Self {
            dependency,
            started: Instant::now(),
        }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        let micros = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let _ = RECORD.try_with(|record| {
            let figure = match self.dependency {
                Dependency::Database => &record.db_micros,
                Dependency::Cache => &record.cache_micros,
            };
            figure.fetch_add(micros, Ordering::Relaxed);
        });
    }
}

/// Notes who is calling, once identified, for the request's log line and span.
pub fn note_caller(caller: &Caller) {
    let kind = match caller {
        Caller::User(_) => "user",
        Caller::Anonymous(anonymous) if anonymous.session().is_some() => "session",
        Caller::Anonymous(_) => "anonymous",
    };
    let _ = RECORD.try_with(|record| record.caller.set(kind));
}

/// The figures of one served request.
#[derive(Debug, Clone)]
pub struct Served {
    pub method: String,
    pub path: String,
    /// The route's pattern, e.g. `/api/onboarding/steps/{step}`, when one matched.
    pub route: Option<String>,
    pub status: u16,
    pub caller: &'static str,
    pub request_id: String,
    pub started: std::time::SystemTime,
    pub total: Duration,
    pub db: Duration,
    pub cache: Duration,
    /// The W3C `traceparent` the caller sent, to join its trace.
    pub traceparent: Option<String>,
}

impl Served {
    /// `Server-Timing` (W3C): database, cache and total, in milliseconds.
    pub fn server_timing(&self) -> String {
        format!(
            "db;dur={:.2}, cache;dur={:.2}, total;dur={:.2}",
            millis(self.db),
            millis(self.cache),
            millis(self.total)
        )
    }
}

/// Milliseconds with microsecond precision, so logs show `0.167`, not
/// `0.16699999999999998`.
fn millis(duration: Duration) -> f64 {
    duration.as_micros() as f64 / 1000.0
}

/// Middleware: measures the request, adds `Server-Timing`, writes one log
/// line (request id, method, path without the query string, route, status,
/// latency, caller kind; never tokens, emails or answers) and, when
/// configured, exports the request as a span.
pub async fn observe(
    State(exporter): State<Option<otlp::Exporter>>,
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
        .get::<crate::http::vercel::Background>()
        .cloned()
        .unwrap_or_default();
    let record = Arc::new(RequestRecord::default());
    let mut response = RECORD.scope(record.clone(), next.run(request)).await;
    let served = Served {
        method,
        path,
        route,
        status: response.status().as_u16(),
        caller: record.caller.get().copied().unwrap_or("unverified"),
        request_id: crate::http::request_id::current().unwrap_or_default(),
        started: started_at,
        total: started.elapsed(),
        db: Duration::from_micros(record.db_micros.load(Ordering::Relaxed)),
        cache: Duration::from_micros(record.cache_micros.load(Ordering::Relaxed)),
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
