//! Logging: JSON lines (staging, production) or compact lines (development, test), filtered by `LOG_LEVEL`.
//! The request span carries `request_id`, so every line logged while handling a request names it.

use billing_config::{LogFormat, LogSettings};
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; a second call (tests) is a no-op.
pub fn init(log: &LogSettings) -> Result<(), String> {
    // tokio_postgres logs statement parameters at debug level: keep them out unless asked for by name.
    let directives = if log.filter.contains("tokio_postgres") {
        log.filter.clone()
    } else {
        format!("{},tokio_postgres=warn", log.filter)
    };
    let filter = EnvFilter::try_new(&directives).map_err(|e| format!("LOG_LEVEL: invalid filter: {e}"))?;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let _already_installed = match log.format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).with_span_list(false).try_init(),
        LogFormat::Compact => builder.compact().try_init(),
    };
    Ok(())
}
