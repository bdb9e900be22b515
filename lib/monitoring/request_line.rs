//! The one line every request writes (request id, method, path, route,
//! status, latencies, caller kind), formatted straight into the log sink.
//!
//! As a `tracing` event, that line cost the status function about 11,600
//! instructions of its 136,000 per request (`callgrind`, README: Benchmark):
//! the event's dispatch, a dynamic call per field into the formatter and the
//! float formatting of three latencies. Written directly it is the same
//! bytes at a fraction of that. It stays an event wherever the direct line
//! could differ: under the pretty format, when another subscriber was
//! installed first, and inside a span (whose fields the event would carry).

use std::fmt::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use tracing::Level;

use super::json_line::{write_string, write_timestamp, write_unsigned};
use super::{Served, millis};

/// The lines' target: the middleware that writes them, as when they were
/// `tracing::info!` events there, so filters naming it keep working.
const TARGET: &str = "onboarding::http::observe";

/// Whether the global subscriber is ours with JSON lines.
static DIRECT: AtomicBool = AtomicBool::new(false);

/// Called once the JSON subscriber is the global one.
pub(super) fn write_directly() {
    DIRECT.store(true, Ordering::Relaxed);
}

impl Served<'_> {
    /// Logs the request's line: `ERROR` for a 5xx (written at once), `INFO`
    /// otherwise (held while other requests are served), if the filter
    /// (`RUST_LOG`) lets it through.
    pub fn log(&self) {
        let level = if self.status >= 500 {
            Level::ERROR
        } else {
            Level::INFO
        };
        let enabled = if level == Level::ERROR {
            tracing::enabled!(target: TARGET, Level::ERROR)
        } else {
            tracing::enabled!(target: TARGET, Level::INFO)
        };
        if !enabled {
            return;
        }
        if DIRECT.load(Ordering::Relaxed) && tracing::Span::current().is_none() {
            let mut line = String::with_capacity(400);
            // When the answer was ready, from the clock readings the
            // request already took rather than one more.
            self.write_json_line(&mut line, self.started + self.total, level);
            super::write_line(line.as_bytes(), level == Level::ERROR);
        } else {
            self.event(level);
        }
    }

    /// The line as a `tracing` event, for any subscriber.
    fn event(&self, level: Level) {
        let Served {
            request_id,
            method,
            path,
            status,
            caller,
            ..
        } = self;
        let route = self.route.unwrap_or("");
        let latency_ms = millis(self.total);
        let db_ms = millis(self.db);
        let cache_ms = millis(self.cache);
        if level == Level::ERROR {
            tracing::error!(
                target: TARGET,
                request_id, method, path, route, status, latency_ms, db_ms, cache_ms, caller, "request"
            );
        } else {
            tracing::info!(
                target: TARGET,
                request_id, method, path, route, status, latency_ms, db_ms, cache_ms, caller, "request"
            );
        }
    }

    /// The bytes `json_line::JsonLine` writes for [`Served::event`].
    fn write_json_line(&self, out: &mut String, at: SystemTime, level: Level) {
        // Writing into a String cannot fail.
        out.push_str("{\"timestamp\":\"");
        let _ = write_timestamp(out, at);
        out.push_str("\",\"level\":\"");
        out.push_str(level.as_str());
        out.push_str("\",\"message\":\"request\",\"request_id\":");
        let _ = write_string(out, self.request_id);
        out.push_str(",\"method\":");
        let _ = write_string(out, self.method);
        out.push_str(",\"path\":");
        let _ = write_string(out, self.path);
        out.push_str(",\"route\":");
        let _ = write_string(out, self.route.unwrap_or(""));
        out.push_str(",\"status\":");
        let _ = write_unsigned(out, u64::from(self.status));
        out.push_str(",\"latency_ms\":");
        write_millis(out, self.total);
        out.push_str(",\"db_ms\":");
        write_millis(out, self.db);
        out.push_str(",\"cache_ms\":");
        write_millis(out, self.cache);
        out.push_str(",\"caller\":");
        let _ = write_string(out, self.caller);
        out.push_str(",\"target\":\"");
        out.push_str(TARGET);
        out.push_str("\"}\n");
    }
}

/// [`millis`] as `f64`'s `Display` writes it (`0.688`, `12`, `1.5`), from
/// the integer microseconds. Below 2^40 µs (about 12 days) the shortest
/// decimal that reads back as `micros / 1000.0` is that quotient's own
/// digits without trailing zeros; beyond, the float is formatted.
fn write_millis(out: &mut String, duration: Duration) {
    let micros = duration.as_micros();
    if micros >= 1 << 40 {
        let _ = write!(out, "{}", millis(duration));
        return;
    }
    // Below 2^40, both fit a u64.
    let (whole, fraction) = ((micros / 1000) as u64, (micros % 1000) as u64);
    let _ = write_unsigned(out, whole);
    if fraction == 0 {
        return;
    }
    let digits = [
        b'.',
        b'0' + (fraction / 100) as u8,
        b'0' + (fraction / 10 % 10) as u8,
        b'0' + (fraction % 10) as u8,
    ];
    let trailing_zeros = if fraction % 100 == 0 {
        2
    } else {
        usize::from(fraction % 10 == 0)
    };
    out.push_str(std::str::from_utf8(&digits[..4 - trailing_zeros]).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitoring::json_line::capture::written_by;

    /// What the JSON subscriber writes for the request's event.
    fn as_event(served: &Served, level: Level) -> String {
        written_by(|| served.event(level))
    }

    fn served<'a>(
        path: &'a str,
        route: Option<&'a str>,
        status: u16,
        micros: [u64; 3],
    ) -> Served<'a> {
        Served {
            method: "GET",
            path,
            route,
            status,
            caller: "user",
            request_id: "9e97e482e1a94e8dab6e013c996825ed",
            started: SystemTime::UNIX_EPOCH,
            total: Duration::from_micros(micros[0]),
            db: Duration::from_micros(micros[1]),
            cache: Duration::from_micros(micros[2]),
            traceparent: None,
        }
    }

    /// The line without its timestamp, which each writer takes from the clock.
    fn after_timestamp(line: &str) -> &str {
        let start = "{\"timestamp\":\"".len();
        let end = line[start..].find('"').unwrap() + start;
        &line[end..]
    }

    #[test]
    fn the_direct_line_is_the_events_line_byte_for_byte() {
        for (served, level) in [
            (
                served(
                    "/api/onboarding/status",
                    Some("/api/onboarding/status"),
                    200,
                    [688, 683, 0],
                ),
                Level::INFO,
            ),
            (
                served(
                    "/api/onboarding/steps/a\"b\\c\u{1}é",
                    Some("/api/onboarding/steps/{step}"),
                    422,
                    [12_345_678, 1_000, 10],
                ),
                Level::INFO,
            ),
            (served("/nowhere", None, 503, [1, 0, 1 << 41]), Level::ERROR),
        ] {
            let expected = as_event(&served, level);
            let mut written = String::new();
            served.write_json_line(&mut written, SystemTime::now(), level);
            assert_eq!(after_timestamp(&written), after_timestamp(&expected));
            let parsed: serde_json::Value = serde_json::from_str(&written).unwrap();
            assert_eq!(parsed["path"], served.path);
            assert_eq!(parsed["level"], level.as_str());
        }
    }

    #[test]
    fn milliseconds_are_written_as_the_float_would_be() {
        let small = 0..200_000_u64;
        let large = (0..20_000_u64).map(|n| n.wrapping_mul(54_975_581_387) % (1 << 41));
        for micros in small.chain(large) {
            let duration = Duration::from_micros(micros);
            let mut written = String::new();
            write_millis(&mut written, duration);
            assert_eq!(written, millis(duration).to_string(), "{micros} µs");
        }
    }
}
