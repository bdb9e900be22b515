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
