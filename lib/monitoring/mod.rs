//! Logging, timings and traces: the primitives every layer may use.
//!
//! Logs are JSON lines by default (what Vercel's log drains ingest), pretty
//! text for a human at a terminal; never tokens, emails or answers. Lines
//! written while requests overlap go out together ([`log_sink`]). Every
//! response carries `Server-Timing` with the time spent in PostgreSQL, in
//! Redis and in total, measured through a per-request record that the
//! database and cache clients add to. With `OTEL_EXPORTER_OTLP_ENDPOINT` set,
//! each request is also exported as an OpenTelemetry span ([`otlp`]). The
//! middleware that measures a request is `http::observe`; this module knows
//! nothing of HTTP frameworks or callers.

mod json_line;
pub mod log_sink;
pub mod otlp;
mod request_line;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Once, OnceLock};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tracing_subscriber::EnvFilter;

use crate::monitoring::log_sink::{LogSink, Serving};

static INIT: Once = Once::new();

/// Standard error, as every log line of the process reaches it.
fn stderr_sink() -> &'static LogSink<std::io::Stderr> {
    static SINK: OnceLock<LogSink<std::io::Stderr>> = OnceLock::new();
    SINK.get_or_init(|| LogSink::new(std::io::stderr()))
}

/// Writes whole log lines to standard error as the subscriber's lines go:
/// held while requests are being served unless `urgent`.
fn write_line(line: &[u8], urgent: bool) {
    // Nowhere to report a failed log write.
    let _ = stderr_sink().write_line(line, urgent);
}

/// Appends `text` as a JSON string, quoted and escaped as `serde_json`
/// writes it, for JSON written directly on a hot path (the log line, the
/// status answer).
pub fn write_json_string(out: &mut String, text: &str) {
    // Writing into a String cannot fail.
    let _ = json_line::write_string(out, text);
}

/// Appends `value` as its decimal digits, as `Display` writes it.
pub fn write_json_unsigned(out: &mut String, value: u64) {
    // Writing into a String cannot fail.
    let _ = json_line::write_unsigned(out, value);
}

/// Marks a request as being served until dropped, so its log lines and those
/// of the requests it overlaps are written together ([`log_sink`]).
pub fn serving() -> Serving<std::io::Stderr> {
    stderr_sink().serving()
}

/// Installs the global subscriber once; later calls do nothing.
pub fn init() {
    INIT.call_once(|| {
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
        let pretty = std::env::var("LOG_FORMAT").is_ok_and(|format| format == "pretty");
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(stderr_sink().clone());
        if pretty {
            let _ = builder.try_init();
        } else if builder
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(json_line::JsonLine)
            .try_init()
            .is_ok()
        {
            request_line::write_directly();
        }
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

/// Notes what kind of caller this is (`user`, `session`, `anonymous`), once
/// identified, for the request's log line and span.
pub fn note_caller(kind: &'static str) {
    let _ = RECORD.try_with(|record| record.caller.set(kind));
}

/// What the timers and [`note_caller`] recorded while a request was served.
#[derive(Debug, Clone, Copy)]
pub struct Figures {
    pub db: Duration,
    pub cache: Duration,
    /// `unverified` when the request never got as far as identifying its caller.
    pub caller: &'static str,
}

/// Runs `serve` as one request: the [`Timer`]s and [`note_caller`] inside it
/// add to the figures returned with its output.
///
/// Not an `async fn`: one that awaits a future it was given holds that
/// future twice over in its own state, and this one wraps every request.
pub fn record<F: Future>(serve: F) -> impl Future<Output = (F::Output, Figures)> {
    let record = Arc::new(RequestRecord::default());
    RECORD.scope(record.clone(), serve).map(move |output| {
        let figures = Figures {
            db: Duration::from_micros(record.db_micros.load(Ordering::Relaxed)),
            cache: Duration::from_micros(record.cache_micros.load(Ordering::Relaxed)),
            caller: record.caller.get().copied().unwrap_or("unverified"),
        };
        (output, figures)
    })
}

/// The figures of one served request, borrowed from the request they
/// describe: the log line and the span are written from them at once, so
/// nothing of the request is copied for them.
#[derive(Debug, Clone, Copy)]
pub struct Served<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// The route's pattern, e.g. `/api/onboarding/steps/{step}`, when one matched.
    pub route: Option<&'a str>,
    pub status: u16,
    pub caller: &'static str,
    pub request_id: &'a str,
    pub started: std::time::SystemTime,
    pub total: Duration,
    pub db: Duration,
    pub cache: Duration,
    /// The W3C `traceparent` the caller sent, to join its trace.
    pub traceparent: Option<&'a str>,
}

impl Served<'_> {
    /// `Server-Timing` (W3C): database, cache and total, in milliseconds
    /// with two decimals.
    pub fn server_timing(&self) -> String {
        let mut header = String::with_capacity(64);
        for (name, duration) in [
            ("db;dur=", self.db),
            (", cache;dur=", self.cache),
            (", total;dur=", self.total),
        ] {
            header.push_str(name);
            write_two_decimal_millis(&mut header, duration);
        }
        header
    }
}

/// A duration as milliseconds with two decimals, rounded half up, in
/// integer arithmetic: formatting a float with a precision, or even
/// `write!` with padded integers, costs more than the rest of the header.
fn write_two_decimal_millis(out: &mut String, duration: Duration) {
    let hundredths = u64::try_from((duration.as_micros() + 5) / 10).unwrap_or(u64::MAX);
    // Writing into a String cannot fail.
    let _ = json_line::write_unsigned(out, hundredths / 100);
    let cents = hundredths % 100;
    out.push('.');
    out.push(char::from(b'0' + (cents / 10) as u8));
    out.push(char::from(b'0' + (cents % 10) as u8));
}

/// Milliseconds with microsecond precision, so logs show `0.167`, not
/// `0.16699999999999998`.
pub fn millis(duration: Duration) -> f64 {
    duration.as_micros() as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_timing_shows_milliseconds_with_two_decimals() {
        let served = Served {
            method: "GET",
            path: "/",
            route: None,
            status: 200,
            caller: "user",
            request_id: "",
            started: std::time::SystemTime::UNIX_EPOCH,
            total: Duration::from_micros(12_345_678),
            db: Duration::from_micros(504),
            cache: Duration::ZERO,
            traceparent: None,
        };
        assert_eq!(
            served.server_timing(),
            "db;dur=0.50, cache;dur=0.00, total;dur=12345.68"
        );
        let rounded = |micros| {
            let mut written = String::new();
            write_two_decimal_millis(&mut written, Duration::from_micros(micros));
            written
        };
        assert_eq!(rounded(4), "0.00");
        assert_eq!(rounded(5), "0.01");
        assert_eq!(rounded(995), "1.00");
        assert_eq!(rounded(1_009), "1.01");
    }
}
