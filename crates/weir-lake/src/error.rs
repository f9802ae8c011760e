//! Errors of the lake layer.

use weir_core::ErrorKind;

/// Result alias of the lake layer.
pub type Result<T, E = LakeError> = std::result::Result<T, E>;

/// What can go wrong while reading or writing Delta tables.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("lake path `{path}` cannot be used: {reason}")]
    BadLocation { path: String, reason: String },
    #[error("table `{table}` does not exist in the lake at `{root}`")]
    NoSuchTable { table: String, root: String },
    #[error("table `{table}` has no version {version} (latest is {latest})")]
    NoSuchVersion {
        table: String,
        version: i64,
        latest: i64,
    },
    #[error("delta operation `{op}` on table `{table}` failed: {source}")]
    Delta {
        table: String,
        op: &'static str,
        #[source]
        source: Box<deltalake::DeltaTableError>,
    },
    #[error("io error on `{path}`: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the lake `{url}` (bucket `{bucket}` at {endpoint}) cannot be listed: {source}{hint}")]
    Unreachable {
        url: String,
        bucket: String,
        endpoint: String,
        /// What to check, from the server's answer; empty when there is nothing to add.
        hint: String,
        #[source]
        source: Box<deltalake::logstore::object_store::Error>,
    },
    #[error("cannot {op} `{location}` in the object store: {source}")]
    Store {
        op: &'static str,
        location: String,
        #[source]
        source: Box<deltalake::logstore::object_store::Error>,
    },
}

impl LakeError {
    /// Whose fault the error is; see [`ErrorKind`].
    pub fn kind(&self) -> ErrorKind {
        match self {
            LakeError::BadLocation { .. }
            | LakeError::NoSuchTable { .. }
            | LakeError::NoSuchVersion { .. } => ErrorKind::User,
            LakeError::Delta { source, .. } => match source.as_ref() {
                deltalake::DeltaTableError::SchemaMismatch { .. }
                | deltalake::DeltaTableError::NotATable(_)
                | deltalake::DeltaTableError::InvalidTableLocation(_) => ErrorKind::User,
                _ => ErrorKind::External,
            },
            // Nothing retried fixes a bucket that does not exist or keys that are refused.
            LakeError::Unreachable { hint, .. } if !hint.is_empty() => ErrorKind::User,
            LakeError::Io { .. } | LakeError::Store { .. } | LakeError::Unreachable { .. } => {
                ErrorKind::External
            }
        }
    }
}
