//! Where log lines go: standard error, one `write` per batch of lines while
//! requests overlap instead of one per line.
//!
//! Each request writes one log line, and on a busy instance that `write` to
//! the pipe Vercel reads was about 2 µs of the status function's 27 µs of CPU
//! per request (README: Benchmark). So a line written while a request is
//! being served is held, and the held lines are written together when:
//! - no request is being served any more (the last one's line goes out with
//!   them, before its response: nothing is held while the instance is idle,
//!   when Vercel or Lambda may freeze it);
//! - they reach [`HOLD_BYTES`], or the oldest has waited [`HOLD_FOR`];
//! - a warning or an error is written (it goes out at once, after them).
//!
//! What can be lost: if the process dies while requests are in flight, the
//! lines held for them (at most `HOLD_BYTES`, none older than `HOLD_FOR`)
//! die with it.
//! Lines keep their order; outside requests (start-up, work after the
//! response) nothing is held.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// Held lines are written once they reach this many bytes (about 25 request lines).
pub const HOLD_BYTES: usize = 8 * 1024;
/// Held lines are written once the oldest has waited this long (checked when
/// a line is written or a request ends).
pub const HOLD_FOR: Duration = Duration::from_millis(50);

/// A [`MakeWriter`] for `tracing_subscriber` over `out` (standard error in
/// the functions). Clones share the held lines.
pub struct LogSink<W> {
    shared: Arc<Shared<W>>,
}

struct Shared<W> {
    hold_for: Duration,
    serving: AtomicUsize,
    held: Mutex<Held<W>>,
}

struct Held<W> {
    out: W,
    lines: Vec<u8>,
    oldest: Option<Instant>,
}

impl<W> Clone for LogSink<W> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<W: Write> LogSink<W> {
    pub fn new(out: W) -> Self {
        Self::holding_for(out, HOLD_FOR)
    }

    /// With another wait than [`HOLD_FOR`] for the oldest held line.
    fn holding_for(out: W, hold_for: Duration) -> Self {
        Self {
            shared: Arc::new(Shared {
                hold_for,
                serving: AtomicUsize::new(0),
                held: Mutex::new(Held {
                    out,
                    lines: Vec::with_capacity(HOLD_BYTES),
                    oldest: None,
                }),
            }),
        }
    }

    /// Marks a request as being served until the guard is dropped; the last
    /// guard dropped writes what is held.
    pub fn serving(&self) -> Serving<W> {
        self.shared.serving.fetch_add(1, Ordering::AcqRel);
        Serving {
            shared: self.shared.clone(),
        }
    }

    /// Writes one whole line (or several), held while requests are being
    /// served unless `urgent`.
    pub(super) fn write_line(&self, line: &[u8], urgent: bool) -> std::io::Result<()> {
        let mut held = self.shared.lock();
        let hold = !urgent && self.shared.serving.load(Ordering::Acquire) > 0;
        if hold {
            held.lines.extend_from_slice(line);
            let oldest = *held.oldest.get_or_insert_with(Instant::now);
            if held.lines.len() < HOLD_BYTES && oldest.elapsed() < self.shared.hold_for {
                return Ok(());
            }
            return held.write_out();
        }
        if held.lines.is_empty() {
            return held.out.write_all(line);
        }
        held.lines.extend_from_slice(line);
        held.write_out()
    }
}

impl<W> Shared<W> {
    fn lock(&self) -> MutexGuard<'_, Held<W>> {
        // A panic while holding the lock leaves whole lines behind: keep going.
        self.held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<W: Write> Held<W> {
    fn write_out(&mut self) -> std::io::Result<()> {
        self.oldest = None;
        let written = self.out.write_all(&self.lines);
        // A failed write drops the lines rather than growing without bound,
        // and one outsized line does not keep its memory.
        self.lines.clear();
        self.lines.shrink_to(HOLD_BYTES);
        written
    }
}

/// See [`LogSink::serving`].
#[must_use = "the request counts as served until this is dropped"]
pub struct Serving<W: Write> {
    shared: Arc<Shared<W>>,
}

impl<W: Write> Drop for Serving<W> {
    fn drop(&mut self) {
        let mut held = self.shared.lock();
        let others = self.shared.serving.fetch_sub(1, Ordering::AcqRel) - 1;
        let stale = held
            .oldest
            .is_some_and(|oldest| oldest.elapsed() >= self.shared.hold_for);
        if !held.lines.is_empty() && (others == 0 || stale) {
            // Nowhere to report a failed log write.
            let _ = held.write_out();
        }
    }
}

/// The writer `tracing_subscriber` gets for one event.
pub struct EventWriter<'a, W> {
    sink: &'a LogSink<W>,
    urgent: bool,
}

impl<W: Write> Write for EventWriter<'_, W> {
    /// `tracing_subscriber` formats a whole line and writes it with one
    /// `write_all`, so `buf` is a line (or more).
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.sink.write_line(buf, self.urgent)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a, W: Write + 'a> MakeWriter<'a> for LogSink<W> {
    type Writer = EventWriter<'a, W>;

    fn make_writer(&'a self) -> Self::Writer {
        EventWriter {
            sink: self,
            urgent: true,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        EventWriter {
            sink: self,
            urgent: *meta.level() <= Level::WARN,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What reached the output, shared with the test.
    #[derive(Clone, Default)]
    struct Output(Arc<Mutex<Vec<u8>>>);

    impl Write for Output {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Output {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    /// A sink whose held lines never go out for their age: what a test
    /// sees held stays held however slow the machine.
    fn sink_and_output() -> (LogSink<Output>, Output) {
        sink_holding_for(Duration::MAX)
    }

    fn sink_holding_for(hold_for: Duration) -> (LogSink<Output>, Output) {
        let output = Output::default();
        (LogSink::holding_for(output.clone(), hold_for), output)
    }

    fn line(sink: &LogSink<Output>, text: &str) {
        sink.write_line(format!("{text}\n").as_bytes(), false)
            .unwrap();
    }

    #[test]
    fn outside_requests_a_line_is_written_at_once() {
        let (sink, output) = sink_and_output();
        line(&sink, "started");
        assert_eq!(output.text(), "started\n");
    }

    #[test]
    fn lines_of_overlapping_requests_go_out_together_when_the_last_one_ends() {
        let (sink, output) = sink_and_output();
        let first = sink.serving();
        let second = sink.serving();
        line(&sink, "a");
        line(&sink, "b");
        drop(first);
        assert_eq!(output.text(), "", "another request is still being served");
        line(&sink, "c");
        drop(second);
        assert_eq!(output.text(), "a\nb\nc\n");
    }

    #[test]
    fn a_warning_goes_out_at_once_after_the_held_lines() {
        let (sink, output) = sink_and_output();
        let _serving = sink.serving();
        line(&sink, "held");
        sink.write_line(b"warned\n", true).unwrap();
        assert_eq!(output.text(), "held\nwarned\n");
    }

    #[test]
    fn held_lines_go_out_once_they_fill_the_buffer() {
        let (sink, output) = sink_and_output();
        let _serving = sink.serving();
        let text = "x".repeat(1023);
        for _ in 0..HOLD_BYTES / 1024 - 1 {
            line(&sink, &text);
        }
        assert_eq!(output.text(), "");
        line(&sink, &text);
        assert_eq!(output.text().len(), HOLD_BYTES);
    }

    #[test]
    fn held_lines_go_out_once_the_oldest_has_waited_long_enough() {
        let (sink, output) = sink_holding_for(Duration::from_millis(10));
        let _serving = sink.serving();
        line(&sink, "old");
        std::thread::sleep(Duration::from_millis(10));
        line(&sink, "new");
        assert_eq!(output.text(), "old\nnew\n");
    }

    #[test]
    fn a_request_that_ends_after_the_wait_writes_what_is_held() {
        let (sink, output) = sink_holding_for(Duration::from_millis(10));
        let _other = sink.serving();
        let ending = sink.serving();
        line(&sink, "held");
        std::thread::sleep(Duration::from_millis(10));
        drop(ending);
        assert_eq!(output.text(), "held\n");
    }

    #[test]
    fn events_below_warn_are_held_and_warnings_are_not() {
        use tracing_subscriber::layer::SubscriberExt;
        let (sink, output) = sink_and_output();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_writer(sink.clone())
                .without_time()
                .with_target(false)
                .with_ansi(false),
        );
        tracing::subscriber::with_default(subscriber, || {
            let serving = sink.serving();
            tracing::info!("one");
            assert_eq!(output.text(), "");
            tracing::warn!("two");
            assert_eq!(output.text(), " INFO one\n WARN two\n");
            tracing::info!("three");
            drop(serving);
            assert_eq!(output.text(), " INFO one\n WARN two\n INFO three\n");
        });
    }
}
