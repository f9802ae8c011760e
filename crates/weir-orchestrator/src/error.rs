//! Errors of the orchestrator: configuration, checkpoints and the pipeline.

use weir_core::ErrorKind;

/// Result alias of the orchestrator.
pub type Result<T, E = OrchestratorError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum OrchestratorError {
    #[error("cannot read config `{path}`: {source}")]
    ConfigIo {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: {key}: {message}")]
    Config {
        file: String,
        key: String,
        message: String,
    },
    #[error("io error on `{path}`: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{path}` is corrupt: {reason}")]
    Corrupt { path: String, reason: String },
    #[error("log: {0}")]
    Log(#[from] weir_log::LogError),
    #[error("lake: {0}")]
    Lake(#[from] weir_lake::LakeError),
    #[error("{0}")]
    Sql(#[from] weir_sql::SqlError),
    #[error("{0}")]
    Connector(#[from] weir_connectors::ConnectorError),
    #[error("metadata store `{path}`: {reason}")]
    Store { path: String, reason: String },
    #[error("{reason}")]
    Dag { reason: String },
    #[error("table check: {reason}")]
    Check { reason: String },
    #[error(
        "checkpoint of batch {batch} needs offsets {from}..{to} of `{topic}` partition {partition}, but the log holds {start}..{end}"
    )]
    InputGone {
        batch: u64,
        topic: String,
        partition: u32,
        from: u64,
        to: u64,
        start: u64,
        end: u64,
    },
}

impl OrchestratorError {
    /// Whose fault the error is; see [`ErrorKind`].
    pub fn kind(&self) -> ErrorKind {
        match self {
            OrchestratorError::ConfigIo { .. } | OrchestratorError::Config { .. } => {
                ErrorKind::User
            }
            OrchestratorError::Io { .. } | OrchestratorError::Store { .. } => ErrorKind::External,
            OrchestratorError::Dag { .. } | OrchestratorError::Check { .. } => ErrorKind::User,
            OrchestratorError::Corrupt { .. } | OrchestratorError::InputGone { .. } => {
                ErrorKind::Internal
            }
            OrchestratorError::Log(e) => e.kind(),
            OrchestratorError::Lake(e) => e.kind(),
            OrchestratorError::Sql(e) => e.kind(),
            OrchestratorError::Connector(e) => e.kind(),
        }
    }
}
