//! Routes panic messages to `tracing` so they land in the engine's log with the rest.
//!
//! Owns: the process-wide panic hook. Never: recovery; supervisors capture and handle the
//! panics of their children, this hook only makes sure each one is logged once, with its
//! thread and location.

/// Installs a panic hook that logs every panic with `tracing::error!`. The process crate
/// calls it once at start; library code and tests do not.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let thread = thread.name().unwrap_or("<unnamed>");
        let location = info
            .location()
            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
            .unwrap_or_else(|| "<unknown>".to_string());
        let message = super::runner::panic_message(info.payload());
        tracing::error!(thread, location = %location, "panic: {message}");
    }));
}
