use std::fmt;

/// A configuration problem, always naming the key (or file) it is about.
///
/// `Display` renders one line, `KEY: reason`, which the binaries print before exiting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The configuration key (or file name for file-level problems).
    pub key: String,
    /// Why the value was refused; never contains a secret value.
    pub reason: String,
}

impl ConfigError {
    /// A problem with `key`.
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { key: key.into(), reason: reason.into() }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.reason)
    }
}
