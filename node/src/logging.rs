//! Logging setup: text or JSON lines on stderr, filtered by the configured
//! level. Request spans carry the request id; no secret is ever a field.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::prelude::*;
use tracing_subscriber::reload;

use crate::config::LogFormat;

/// A handle to change the log filter at runtime (reload).
pub type FilterHandle = reload::Handle<EnvFilter, tracing_subscriber::Registry>;

/// Installs the global subscriber. Returns the filter handle.
pub fn init(format: LogFormat, level: &str) -> FilterHandle {
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                    .with_target(true),
            )
            .init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .init(),
    }
    handle
}
