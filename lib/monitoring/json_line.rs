//! The JSON log line: one object per event, as `tracing-subscriber`'s JSON
//! format with flattened fields writes it (`timestamp`, `level`, the event's
//! fields, `spans` when the event is inside any, `target`), written straight
//! into the line's buffer.
//!
//! `tracing-subscriber`'s own formatter serializes through `serde_json` into
//! an `io::Write` adaptor that re-checks every token as UTF-8; for the one
//! line each request writes, that was about a tenth of the status
//! function's instructions (README: Benchmark).

use std::fmt::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The event formatter. Span fields are expected in `JsonFields`' shape (a
/// JSON object), which the subscriber is configured with.
pub(super) struct JsonLine;

impl<S, N> FormatEvent<S, N> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let metadata = event.metadata();
        writer.write_str("{\"timestamp\":\"")?;
        write_timestamp(&mut writer, SystemTime::now())?;
        writer.write_str("\",\"level\":\"")?;
        writer.write_str(metadata.level().as_str())?;
        writer.write_char('"')?;
        let mut fields = Members {
            writer: &mut writer,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        if let Some(scope) = ctx.event_scope() {
            writer.write_str(",\"spans\":[")?;
            for (index, span) in scope.from_root().enumerate() {
                if index > 0 {
                    writer.write_char(',')?;
                }
                writer.write_char('{')?;
                let extensions = span.extensions();
                let members = extensions
                    .get::<FormattedFields<N>>()
                    .and_then(|fields| {
                        let object = fields.fields.trim();
                        object.strip_prefix('{')?.strip_suffix('}')
                    })
                    .filter(|members| !members.is_empty());
                if let Some(members) = members {
                    writer.write_str(members)?;
                    writer.write_char(',')?;
                }
                writer.write_str("\"name\":")?;
                write_string(&mut writer, span.name())?;
                writer.write_char('}')?;
            }
            writer.write_char(']')?;
        }
        writer.write_str(",\"target\":")?;
        write_string(&mut writer, metadata.target())?;
        writer.write_str("}\n")
    }
}

/// Writes each field as a `,"name":value` member.
struct Members<'a, 'w> {
    writer: &'a mut Writer<'w>,
    result: fmt::Result,
}

impl Members<'_, '_> {
    fn member(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        self.result = (|| {
            self.writer.write_char(',')?;
            write_string(self.writer, field.name())?;
            self.writer.write_char(':')?;
            value(self.writer)
        })();
    }
}

impl Visit for Members<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.member(field, |writer| write_string(writer, value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.member(field, |writer| write!(writer, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.member(field, |writer| write_unsigned(writer, value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.member(field, |writer| write!(writer, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // JSON has no NaN or infinity; serde_json writes them as null too.
        self.member(field, |writer| {
            if value.is_finite() {
                write!(writer, "{value}")
            } else {
                writer.write_str("null")
            }
        });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.member(field, |writer| {
            writer.write_char('"')?;
            write!(Escaped(writer), "{value:?}")?;
            writer.write_char('"')
        });
    }
}

/// `text` as a JSON string.
pub(super) fn write_string(writer: &mut impl Write, text: &str) -> fmt::Result {
    writer.write_char('"')?;
    Escaped(&mut *writer).write_str(text)?;
    writer.write_char('"')
}

/// Escapes what it is given for the inside of a JSON string.
struct Escaped<'a, W: Write>(&'a mut W);

impl<W: Write> Write for Escaped<'_, W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        // The request line's strings (its id, method, path, route) seldom
        // need an escape: looked at 16 bytes at a time, then copied whole,
        // they cost a fraction of a byte-by-byte walk.
        if !needs_escape(text.as_bytes()) {
            return self.0.write_str(text);
        }
        let mut clean_from = 0;
        for (at, byte) in text.bytes().enumerate() {
            let escape = match byte {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0..=0x1f => "",
                _ => continue,
            };
            self.0.write_str(&text[clean_from..at])?;
            if escape.is_empty() {
                write!(self.0, "\\u{byte:04x}")?;
            } else {
                self.0.write_str(escape)?;
            }
            clean_from = at + 1;
        }
        self.0.write_str(&text[clean_from..])
    }
}

/// Whether any byte of `bytes` must be escaped inside a JSON string.
fn needs_escape(bytes: &[u8]) -> bool {
    // Folded without a branch per byte, so each chunk compiles to a few
    // vector comparisons.
    let escaped = |byte: u8| (byte < 0x20) | (byte == b'"') | (byte == b'\\');
    let (chunks, rest) = bytes.as_chunks::<16>();
    chunks.iter().any(|chunk| {
        chunk
            .iter()
            .fold(false, |found, &byte| found | escaped(byte))
    }) || rest.iter().any(|&byte| escaped(byte))
}

/// RFC 3339 in UTC with microseconds, e.g. `2026-12-01T22:12:35.760579Z`.
pub(super) fn write_timestamp(writer: &mut impl Write, at: SystemTime) -> fmt::Result {
    let since_epoch = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since_epoch.as_secs();
    let (year, month, day) = civil_from_days((seconds / 86_400) as i64);
    let of_day = seconds % 86_400;
    // Filled in place: `write!` with padded fields costs several times more,
    // on every log line.
    let mut text = *b"0000-00-00T00:00:00.000000Z";
    put_digits(&mut text[0..4], year.unsigned_abs());
    put_digits(&mut text[5..7], u64::from(month));
    put_digits(&mut text[8..10], u64::from(day));
    put_digits(&mut text[11..13], of_day / 3600);
    put_digits(&mut text[14..16], of_day % 3600 / 60);
    put_digits(&mut text[17..19], of_day % 60);
    put_digits(&mut text[20..26], u64::from(since_epoch.subsec_micros()));
    if year > 9999 {
        // Past RFC 3339's four digits (a clock set absurdly far ahead).
        write!(writer, "{year}")?;
        return writer.write_str(std::str::from_utf8(&text[4..]).map_err(|_| fmt::Error)?);
    }
    writer.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
}

/// Writes the last `slot.len()` decimal digits of `value` into `slot`,
/// zero-padded.
fn put_digits(slot: &mut [u8], mut value: u64) {
    for byte in slot.iter_mut().rev() {
        *byte = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// `value` in decimal, as `Display` writes it: two digits at a time and no
/// UTF-8 check of its own digits, half the instructions of a digit-by-digit
/// loop read back through `str::from_utf8`, for the dozen numbers a request
/// writes (its status answer, `Server-Timing` and its log line).
pub(super) fn write_unsigned(writer: &mut impl Write, value: u64) -> fmt::Result {
    writer.write_str(itoa::Buffer::new().format(value))
}

/// The proleptic Gregorian date of a day counted from 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// What a subscriber with [`JsonLine`] writes, for the tests of this
/// module and of the lines written without it.
#[cfg(test)]
pub(super) mod capture {
    use std::io;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;
    use tracing_subscriber::fmt::format::JsonFields;

    use super::JsonLine;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    /// The text written for the events of `log`, at debug level and above.
    pub fn written_by(log: impl FnOnce()) -> String {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(captured.clone())
            .fmt_fields(JsonFields::new())
            .event_format(JsonLine)
            .finish();
        tracing::subscriber::with_default(subscriber, log);
        String::from_utf8(captured.0.lock().unwrap().clone()).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::capture::written_by;
    use super::*;

    /// The lines `log` writes at debug level, each parsed as JSON.
    fn lines_of(log: impl FnOnce()) -> Vec<serde_json::Value> {
        written_by(log)
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect()
    }

    #[test]
    fn an_event_is_one_json_object_with_its_fields_level_and_target() {
        let lines = lines_of(|| {
            let (request_id, status, latency_ms, ok, delta) = ("r-1", 200_u64, 0.537, true, -3_i64);
            let weird = "quote \" backslash \\ newline \n tab \t bell \u{7} é";
            tracing::info!(request_id, status, latency_ms, ok, delta, weird, error = %"a \"b\"", "request");
            tracing::warn!(nan = f64::NAN, "odd {}", "message");
        });
        assert_eq!(lines.len(), 2);
        let line = &lines[0];
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["message"], "request");
        assert_eq!(line["request_id"], "r-1");
        assert_eq!(line["status"], 200);
        assert_eq!(line["latency_ms"], 0.537);
        assert_eq!(line["ok"], true);
        assert_eq!(line["delta"], -3);
        assert_eq!(
            line["weird"],
            "quote \" backslash \\ newline \n tab \t bell \u{7} é"
        );
        assert_eq!(line["error"], "a \"b\"");
        assert_eq!(line["target"], module_path!());
        assert!(line.get("spans").is_none());
        assert_eq!(lines[1]["level"], "WARN");
        assert_eq!(lines[1]["message"], "odd message");
        assert!(lines[1]["nan"].is_null());
    }

    #[test]
    fn an_event_inside_spans_lists_them_from_the_root_with_their_fields() {
        let lines = lines_of(|| {
            let outer = tracing::debug_span!("status");
            let _outer = outer.enter();
            let inner = tracing::debug_span!("fetch", flow_id = "default");
            let _inner = inner.enter();
            tracing::error!("inside");
        });
        assert_eq!(
            lines[0]["spans"],
            serde_json::json!([{ "name": "status" }, { "flow_id": "default", "name": "fetch" }])
        );
    }

    #[test]
    fn timestamps_are_rfc_3339_in_utc_with_microseconds() {
        for (seconds, micros) in [
            (0, 0),
            (951_782_400, 1), // 2000-02-29
            (1_796_165_555, 760_579),
            (4_107_542_399, 999_999), // 2100-02-28T23:59:59
            (253_402_300_799, 42),    // 9999-12-31T23:59:59
        ] {
            let at = UNIX_EPOCH + Duration::new(seconds, micros * 1000);
            let mut written = String::new();
            write_timestamp(&mut written, at).unwrap();
            let expected = chrono::DateTime::<chrono::Utc>::from(at)
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            assert_eq!(written, expected);
        }
    }

    #[test]
    fn a_year_past_9999_is_written_whole() {
        let mut written = String::new();
        write_timestamp(
            &mut written,
            UNIX_EPOCH + Duration::new(253_402_300_800, 7_000),
        )
        .unwrap();
        assert_eq!(written, "10000-01-01T00:00:00.000007Z");
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them_wherever_the_escape_falls() {
        // Every length around the 16-byte chunks, with each character that
        // needs an escape at every position, and none.
        for length in 0..40 {
            for special in ['"', '\\', '\n', '\r', '\t', '\u{1}', '\u{1f}', 'é'] {
                for at in 0..=length {
                    let mut text: String = "a".repeat(length);
                    if at < length {
                        text.replace_range(at..at + 1, &special.to_string());
                    }
                    let mut written = String::new();
                    write_string(&mut written, &text).unwrap();
                    assert_eq!(written, serde_json::to_string(&text).unwrap(), "{text:?}");
                }
            }
        }
    }

    #[test]
    fn unsigned_numbers_are_written_as_display_writes_them() {
        let edges = [
            0,
            1,
            9,
            10,
            99,
            100,
            65_535,
            999_999,
            1_000_000,
            u64::MAX - 1,
            u64::MAX,
        ];
        let powers = (0..20).map(|exponent| 10_u64.pow(exponent));
        for value in edges.into_iter().chain(powers) {
            let mut written = String::new();
            write_unsigned(&mut written, value).unwrap();
            assert_eq!(written, value.to_string());
        }
    }
}
