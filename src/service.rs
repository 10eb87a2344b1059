//! Process-level integration: the tracing subscriber (journald, text or JSON lines).
//!
//! Logging is best-effort: if journald cannot be reached, text on stderr is used instead and a
//! warning says so.

use std::io::IsTerminal;

use tracing_subscriber::{fmt, prelude::*, EnvFilter};

use crate::config::LogFormat;

/// Installs the global tracing subscriber. `RUST_LOG` overrides the default `info` level.
pub fn init_logging(format: LogFormat) {
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let journald = format == LogFormat::Auto && std::env::var_os("JOURNAL_STREAM").is_some();
    if journald {
        match tracing_journald::layer() {
            Ok(layer) => {
                let layer = layer.with_syslog_identifier("bintrail".into());
                tracing_subscriber::registry()
                    .with(filter())
                    .with(layer)
                    .init();
                return;
            }
            Err(e) => eprintln!("bintrail: journald unavailable ({e}), logging to stderr"),
        }
    }
    let registry = tracing_subscriber::registry().with(filter());
    if format == LogFormat::Json {
        registry
            .with(fmt::layer().json().with_writer(std::io::stderr))
            .init();
    } else {
        registry
            .with(
                fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_target(false)
                    .with_ansi(std::io::stderr().is_terminal()),
            )
            .init();
    }
}
