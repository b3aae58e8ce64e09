//! Configuration problems, reported with the key's path.
//!
//! Every config section in this crate has a `validate(&self, path, issues)` method that
//! pushes one [`ConfigIssue`] per bad value; the process crate collects them all and refuses
//! to start if any were found, so the operator sees every mistake at once.

use std::fmt;

/// One bad configuration value: where it is, what it was, and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// Dotted key path, e.g. `risk.max_loss_pct`.
    pub key: String,
    /// The offending value as the operator wrote it.
    pub value: String,
    /// What is allowed instead.
    pub allowed: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "config key `{}`: bad value {}; allowed: {}",
            self.key, self.value, self.allowed
        )
    }
}

/// Collects issues while walking a config tree.
#[derive(Debug, Default)]
pub struct Issues(pub Vec<ConfigIssue>);

impl Issues {
    pub fn push(
        &mut self,
        key: impl Into<String>,
        value: impl fmt::Debug,
        allowed: impl Into<String>,
    ) {
        self.0.push(ConfigIssue {
            key: key.into(),
            value: format!("{value:?}"),
            allowed: allowed.into(),
        });
    }

    /// Pushes an issue unless `ok` holds.
    pub fn check(
        &mut self,
        ok: bool,
        key: impl Into<String>,
        value: impl fmt::Debug,
        allowed: impl Into<String>,
    ) {
        if !ok {
            self.push(key, value, allowed);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Joins a parent path and a key: `join("risk", "max_loss")` is `risk.max_loss`.
pub fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}
