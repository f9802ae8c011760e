//! [`LogConfig`]: where the log lives and how it sizes, syncs and trims its segments. This is
//! the runtime form; the user-facing `weir.toml` section (with units like "128MiB") lives in the
//! orchestrator's config and converts into this struct.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::{LogError, Result};

/// Default size at which the active segment is closed and a new one started.
pub const DEFAULT_SEGMENT_BYTES: u64 = 128 * 1024 * 1024;
/// Default spacing of sparse index entries.
pub const DEFAULT_INDEX_INTERVAL_BYTES: u64 = 4096;

/// How the log is laid out and kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Root directory: `topics/`, `cursors/` and the `LOCK` file live here.
    pub dir: PathBuf,
    /// The active segment is closed once the next batch would take it past this size (a single
    /// batch larger than this still gets a segment of its own). At most `u32::MAX`.
    pub segment_bytes: u64,
    /// A sparse index entry is written each time this many bytes were appended since the last
    /// entry; smaller values make seeks cheaper and index files bigger.
    pub index_interval_bytes: u64,
    /// Per partition: oldest closed segments are deleted while the partition is larger than this.
    pub retention_bytes: Option<u64>,
    /// Closed segments whose newest record timestamp is older than this are deleted.
    pub retention_age: Option<Duration>,
    /// `fsync` before acknowledging appends, cursor commits and segment rolls. Turning it off
    /// trades durability on power loss for speed (a process crash still loses nothing written).
    pub fsync: bool,
}

impl LogConfig {
    /// A config with the defaults: 128 MiB segments, an index entry every 4 KiB, no retention,
    /// fsync on.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        LogConfig {
            dir: dir.into(),
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            index_interval_bytes: DEFAULT_INDEX_INTERVAL_BYTES,
            retention_bytes: None,
            retention_age: None,
            fsync: true,
        }
    }

    /// Sets [`LogConfig::segment_bytes`].
    #[must_use]
    pub fn with_segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes;
        self
    }

    /// Sets [`LogConfig::index_interval_bytes`].
    #[must_use]
    pub fn with_index_interval_bytes(mut self, bytes: u64) -> Self {
        self.index_interval_bytes = bytes;
        self
    }

    /// Sets [`LogConfig::retention_bytes`].
    #[must_use]
    pub fn with_retention_bytes(mut self, bytes: Option<u64>) -> Self {
        self.retention_bytes = bytes;
        self
    }

    /// Sets [`LogConfig::retention_age`].
    #[must_use]
    pub fn with_retention_age(mut self, age: Option<Duration>) -> Self {
        self.retention_age = age;
        self
    }

    /// Sets [`LogConfig::fsync`].
    #[must_use]
    pub fn with_fsync(mut self, fsync: bool) -> Self {
        self.fsync = fsync;
        self
    }

    /// Checks the ranges [`crate::Log::open`] relies on; errors are `User` errors naming the field.
    pub fn validate(&self) -> Result<()> {
        if self.dir.as_os_str().is_empty() {
            return Err(LogError::InvalidConfig {
                field: "dir",
                reason: "must not be empty".into(),
            });
        }
        // Index entries store file positions as u32, and a batch only starts below
        // `segment_bytes`, so this bound keeps every indexed position representable.
        if self.segment_bytes == 0 || self.segment_bytes > u64::from(u32::MAX) {
            return Err(LogError::InvalidConfig {
                field: "segment_bytes",
                reason: format!(
                    "must be between 1 and {} bytes, got {}",
                    u32::MAX,
                    self.segment_bytes
                ),
            });
        }
        if self.index_interval_bytes == 0 {
            return Err(LogError::InvalidConfig {
                field: "index_interval_bytes",
                reason: "must be at least 1 byte, got 0".into(),
            });
        }
        Ok(())
    }

    /// Retention age in milliseconds, saturating.
    pub(crate) fn retention_age_ms(&self) -> Option<i64> {
        self.retention_age
            .map(|age| i64::try_from(age.as_millis()).unwrap_or(i64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_validation() {
        let cfg = LogConfig::new("/tmp/x");
        assert_eq!(cfg.segment_bytes, 128 * 1024 * 1024);
        assert_eq!(cfg.index_interval_bytes, 4096);
        assert!(cfg.fsync);
        assert!(cfg.validate().is_ok());
        let err = cfg.clone().with_segment_bytes(0).validate().unwrap_err();
        assert!(err.to_string().contains("segment_bytes"), "{err}");
        assert!(
            cfg.clone()
                .with_segment_bytes(u64::from(u32::MAX) + 1)
                .validate()
                .is_err()
        );
        assert!(cfg.with_index_interval_bytes(0).validate().is_err());
    }
}
