//! The three answers every weir error gives to "whose fault is it, and is a retry worth it".

use serde::Serialize;

/// Who caused an error. Retries (orchestrator) and HTTP status codes (server) are decided from
/// this alone: `User` errors are 4xx and never retried, `External` errors are retried with
/// backoff, `Internal` errors are weir's own bugs or broken invariants (5xx).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Bad input or configuration: fix it and try again.
    User,
    /// A disk, network or other service failed: a retry may help.
    External,
    /// weir itself is wrong.
    Internal,
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ErrorKind::User => "user",
            ErrorKind::External => "external",
            ErrorKind::Internal => "internal",
        })
    }
}
