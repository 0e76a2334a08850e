//! Logging: JSON lines (staging, production) or compact lines (development, test), filtered by `LOG_LEVEL`.
//! The request span carries `request_id`, so every line logged while handling a request names it.

use std::sync::atomic::{AtomicU32, Ordering};

use billing_config::{LogFormat, LogSettings};
use tracing_subscriber::EnvFilter;

/// One successful request in this many is access-logged (see [`LogSettings::access_sample`]).
static ACCESS_SAMPLE: AtomicU32 = AtomicU32::new(1);

/// The access-log sampling rate in effect.
pub fn access_sample() -> u32 {
    ACCESS_SAMPLE.load(Ordering::Relaxed).max(1)
}

/// Keeps the log writer's thread running; dropping it flushes what is buffered. Hold it until the process ends.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard {
    // Never read: held for its `Drop`, which flushes the writer.
    _writer: Option<tracing_appender::non_blocking::WorkerGuard>,
}

impl std::fmt::Debug for LogGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogGuard")
    }
}

/// Installs the global subscriber; a second call (tests) is a no-op. Lines are formatted on the thread that logs
/// and written by a thread of their own, so a request never waits on the terminal or a pipe; when that thread
/// falls behind by more than its buffer, logging waits rather than drops lines.
pub fn init(log: &LogSettings) -> Result<LogGuard, String> {
    ACCESS_SAMPLE.store(log.access_sample.max(1), Ordering::Relaxed);
    // tokio_postgres logs statement parameters at debug level: keep them out unless asked for by name.
    let directives = if log.filter.contains("tokio_postgres") {
        log.filter.clone()
    } else {
        format!("{},tokio_postgres=warn", log.filter)
    };
    let filter = EnvFilter::try_new(&directives).map_err(|e| format!("LOG_LEVEL: invalid filter: {e}"))?;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (writer, guard) =
        tracing_appender::non_blocking::NonBlockingBuilder::default().lossy(false).finish(std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).with_ansi(ansi);
    let installed = match log.format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).with_span_list(false).try_init(),
        LogFormat::Compact => builder.compact().try_init(),
    };
    Ok(LogGuard { _writer: installed.is_ok().then_some(guard) })
}
