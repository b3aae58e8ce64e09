//! Log output of every `orrery` command: on stderr, plain text with colour only when stderr
//! is a terminal (a file or a pipe gets no ANSI escapes), or one JSON object a line with
//! `--log-format json`.
//!
//! Owns: the chosen format (set once by the CLI) and the one subscriber set-up. Never:
//! decides what is logged or at which level (each command passes its filter).

use std::io::IsTerminal;
use std::sync::OnceLock;

/// `--log-format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Records the format chosen on the command line; the first call wins.
pub fn set_format(format: LogFormat) {
    let _ = FORMAT.set(format);
}

/// The format chosen on the command line (text when none was).
pub fn format() -> LogFormat {
    FORMAT.get().copied().unwrap_or_default()
}

/// Installs the subscriber with `filter` (`RUST_LOG` wins when set); a second call is a
/// no-op.
pub fn init(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format() {
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
}
