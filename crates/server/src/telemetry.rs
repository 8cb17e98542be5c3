//! Structured logs: one line per request (written by the HTTP gate), text or JSON.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// `filter` is `RUST_LOG`'s syntax (`info`, `adapters_http=debug,info`); a bad one falls back to
/// `info`.
pub fn init(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    // A second init (tests) keeps the first subscriber; that is fine.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
