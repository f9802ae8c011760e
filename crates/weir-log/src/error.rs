//! Errors of the embedded log: one enum, [`LogError`], whose [`LogError::kind`] tells callers
//! whose fault a failure is. IO failures carry the path and what was being done; corruption
//! carries the file and byte position. Recovery problems that the log repairs by itself (a torn
//! tail) are not errors: they are logged with `tracing::warn!` in `recovery.rs`.

use std::path::PathBuf;

use weir_core::ErrorKind;

/// Result alias of the log crate.
pub type Result<T, E = LogError> = std::result::Result<T, E>;

/// What can go wrong while opening, appending to, reading or trimming the log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A file system call failed.
    #[error("cannot {action} `{}`: {source}", .path.display())]
    Io {
        /// What the log was doing, e.g. "fsync segment".
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Another process (or another [`crate::Log`] in this process) holds the directory.
    #[error(
        "log directory `{}` is locked by another weir process (or another open log in this \
         process); stop it or point this one at a different directory",
        .dir.display()
    )]
    Locked { dir: PathBuf },

    /// A [`crate::LogConfig`] value is out of range.
    #[error("invalid log setting `{field}`: {reason}")]
    InvalidConfig { field: &'static str, reason: String },

    /// A topic or consumer group name cannot be used as a file name.
    #[error(
        "invalid {what} name `{name}`: use 1 to {max} characters from `A-Z a-z 0-9 . _ -`, \
         not starting with `.`",
        max = crate::MAX_NAME_LEN
    )]
    InvalidName { what: &'static str, name: String },

    /// `create_topic` with a partition count that is zero or too large.
    #[error("topic `{topic}` cannot have {requested} partitions: allowed are 1 to {max}")]
    InvalidPartitionCount {
        topic: String,
        requested: u32,
        max: u32,
    },

    /// `create_topic` on an existing topic with a different partition count.
    #[error(
        "topic `{topic}` already exists with {existing} partitions, cannot create it with \
         {requested}"
    )]
    PartitionCountMismatch {
        topic: String,
        existing: u32,
        requested: u32,
    },

    /// The topic does not exist.
    #[error("topic `{topic}` does not exist")]
    UnknownTopic { topic: String },

    /// The topic exists but has no such partition.
    #[error("topic `{topic}` has {count} partitions, there is no partition {partition}")]
    UnknownPartition {
        topic: String,
        partition: u32,
        count: u32,
    },

    /// A read asked for records that retention already deleted.
    #[error(
        "offset {offset} of `{topic}` partition {partition} was deleted by retention: the \
         first stored offset is {start}"
    )]
    OffsetBelowStart {
        topic: String,
        partition: u32,
        offset: u64,
        start: u64,
    },

    /// A read asked for an offset past the end of the durable log.
    #[error(
        "offset {offset} of `{topic}` partition {partition} is past the end of the log: the \
         next offset to be written is {end}"
    )]
    OffsetBeyondEnd {
        topic: String,
        partition: u32,
        offset: u64,
        end: u64,
    },

    /// One record of an append is larger than the log accepts.
    #[error(
        "record {index} of an append to `{topic}` partition {partition} is {size} bytes, the \
         limit is {max} bytes"
    )]
    RecordTooLarge {
        topic: String,
        partition: u32,
        index: usize,
        size: usize,
        max: usize,
    },

    /// One append call carried more records than a `u32` counts.
    #[error(
        "an append to `{topic}` partition {partition} carried {records} records, the limit is \
         {max} per call"
    )]
    TooManyRecords {
        topic: String,
        partition: u32,
        records: usize,
        max: u32,
    },

    /// Offsets would exceed `u64::MAX`; only reachable with a doctored segment name.
    #[error("offsets of `{topic}` partition {partition} would overflow past {next_offset}")]
    OffsetOverflow {
        topic: String,
        partition: u32,
        next_offset: u64,
    },

    /// Durable data failed validation (CRC, framing or offsets).
    #[error("corrupt log data in `{}` at byte {position}: {detail}", .path.display())]
    Corrupt {
        path: PathBuf,
        position: u64,
        detail: String,
    },

    /// The directory tree of the log does not have the expected shape.
    #[error("unexpected log layout at `{}`: {detail}", .path.display())]
    CorruptLayout { path: PathBuf, detail: String },

    /// A consumer cursor file cannot be parsed.
    #[error("corrupt consumer cursor file `{}`: {detail}", .path.display())]
    CorruptCursor { path: PathBuf, detail: String },

    /// An earlier fsync or write failure left the partition in an unknown state; appends are
    /// refused until the log is reopened (which runs recovery).
    #[error(
        "`{topic}` partition {partition} refuses appends after an earlier failure ({reason}); \
         reopen the log to recover"
    )]
    PartitionFailed {
        topic: String,
        partition: u32,
        reason: String,
    },
}

impl LogError {
    /// Whose fault the error is; see [`ErrorKind`].
    pub fn kind(&self) -> ErrorKind {
        match self {
            LogError::Io { .. } | LogError::PartitionFailed { .. } => ErrorKind::External,
            LogError::Locked { .. }
            | LogError::InvalidConfig { .. }
            | LogError::InvalidName { .. }
            | LogError::InvalidPartitionCount { .. }
            | LogError::PartitionCountMismatch { .. }
            | LogError::UnknownTopic { .. }
            | LogError::UnknownPartition { .. }
            | LogError::OffsetBelowStart { .. }
            | LogError::OffsetBeyondEnd { .. }
            | LogError::RecordTooLarge { .. }
            | LogError::TooManyRecords { .. } => ErrorKind::User,
            LogError::OffsetOverflow { .. }
            | LogError::Corrupt { .. }
            | LogError::CorruptLayout { .. }
            | LogError::CorruptCursor { .. } => ErrorKind::Internal,
        }
    }

    /// Shorthand for [`LogError::Io`].
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        LogError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
