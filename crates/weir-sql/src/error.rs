//! Errors of the SQL layer: planning, expectations, streaming operators and queries.

use weir_core::ErrorKind;

/// Result alias of the SQL layer.
pub type Result<T, E = SqlError> = std::result::Result<T, E>;

/// What can go wrong while planning or running a table's SQL.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    #[error("sql of table `{table}` failed: {source}")]
    Plan {
        table: String,
        #[source]
        source: datafusion::error::DataFusionError,
    },
    #[error("query failed: {source}")]
    Query {
        #[source]
        source: datafusion::error::DataFusionError,
    },
    #[error(
        "expectation `{expectation}` of table `{table}` has an invalid check `{check}`: {reason}"
    )]
    BadExpectation {
        table: String,
        expectation: String,
        check: String,
        reason: String,
    },
    #[error(
        "expectation `{expectation}` of table `{table}` failed (action = fail) on {rows} row(s); first failing input: {example}"
    )]
    ExpectationFailed {
        table: String,
        expectation: String,
        rows: usize,
        example: String,
    },
    #[error(
        "table `{table}`: column `{column}` needed for {purpose} is missing from its input (columns: {available})"
    )]
    MissingColumn {
        table: String,
        column: String,
        purpose: &'static str,
        available: String,
    },
    #[error(
        "table `{table}`: column `{column}` used for {purpose} must be {expected}, found {found}"
    )]
    ColumnType {
        table: String,
        column: String,
        purpose: &'static str,
        expected: &'static str,
        found: String,
    },
    #[error("arrow error while {context}: {source}")]
    Arrow {
        context: String,
        #[source]
        source: arrow::error::ArrowError,
    },
    #[error("state of table `{table}` cannot be restored: {reason}")]
    State { table: String, reason: String },
    #[error(transparent)]
    Lake(#[from] weir_lake::LakeError),
}

impl SqlError {
    /// Whose fault the error is; see [`ErrorKind`].
    pub fn kind(&self) -> ErrorKind {
        match self {
            SqlError::Plan { .. }
            | SqlError::Query { .. }
            | SqlError::BadExpectation { .. }
            | SqlError::ExpectationFailed { .. }
            | SqlError::MissingColumn { .. }
            | SqlError::ColumnType { .. } => ErrorKind::User,
            SqlError::Arrow { .. } | SqlError::State { .. } => ErrorKind::Internal,
            SqlError::Lake(e) => e.kind(),
        }
    }
}
