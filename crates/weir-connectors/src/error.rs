//! Errors of the connectors.

use weir_core::ErrorKind;

/// Result alias of the connectors.
pub type Result<T, E = ConnectorError> = std::result::Result<T, E>;

/// What can go wrong in a source or sink.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    #[error("source `{source_name}`: {reason}")]
    Config { source_name: String, reason: String },
    #[error("source `{source_name}`: body is empty; send one JSON record per line")]
    EmptyBody { source_name: String },
    #[error("source `{source_name}`: cannot read `{path}`: {error}")]
    Io {
        source_name: String,
        path: String,
        #[source]
        error: std::io::Error,
    },
    #[error("source `{source_name}`: `{path}` line {line}: {reason}")]
    BadFile {
        source_name: String,
        path: String,
        line: u64,
        reason: String,
    },
    /// An outside system failed or refused an operation. `retry` says whether trying again
    /// later can help (connection lost, timeout, 5xx) or not (a missing table, a type the
    /// target cannot hold).
    #[error("`{connector}`: {operation}: {reason}")]
    Remote {
        connector: String,
        operation: String,
        reason: String,
        retry: bool,
    },
    #[error("source `{source_name}`: writing to the log failed: {error}")]
    Log {
        source_name: String,
        #[source]
        error: weir_log::LogError,
    },
}

impl ConnectorError {
    /// Whose fault the error is; see [`ErrorKind`].
    pub fn kind(&self) -> ErrorKind {
        match self {
            ConnectorError::Config { .. }
            | ConnectorError::EmptyBody { .. }
            | ConnectorError::BadFile { .. } => ErrorKind::User,
            ConnectorError::Io { .. } => ErrorKind::External,
            ConnectorError::Remote { retry: true, .. } => ErrorKind::External,
            ConnectorError::Remote { retry: false, .. } => ErrorKind::User,
            ConnectorError::Log { error, .. } => error.kind(),
        }
    }
}
