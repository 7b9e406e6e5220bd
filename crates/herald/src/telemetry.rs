//! Logging set-up. Filtering follows `RUST_LOG` (default `info`); the format is chosen with
//! `--log-format`. Request headers are never logged, so bearer tokens cannot leak into logs.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // A log line that cannot be written (stderr closed: the log collector went away) is
    // dropped. tracing-subscriber's default is to report that with `eprintln!`, which panics on
    // the same closed stderr, and a panic in whatever task was logging: the signal handler's,
    // say, which then never stops the server.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    // `try_init`: a second initialisation (tests) is not an error worth stopping for.
    let _ = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
