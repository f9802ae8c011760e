//! Retention: deleting a partition's oldest closed segments once they are older than
//! `retention_age` (judged by the newest record timestamp in the segment) or while the partition
//! is larger than `retention_bytes`. Only whole segments, only from the front, never the active
//! one, so [`crate::Partition::start_offset`] simply moves to the next segment's base. Readers
//! holding a deleted segment keep reading it through their open file handle.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::error::Result;
use crate::partition::Partition;
use crate::recovery::remove_segment_files;
use crate::{read_lock, write_lock};

/// What one [`crate::Log::enforce_retention`] call deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Deleted segments, per partition oldest first.
    pub removed: Vec<RemovedSegment>,
}

impl RetentionReport {
    /// Number of deleted segments.
    pub fn segments(&self) -> usize {
        self.removed.len()
    }

    /// Bytes freed.
    pub fn bytes(&self) -> u64 {
        self.removed.iter().map(|r| r.bytes).sum()
    }
}

/// One deleted segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovedSegment {
    pub topic: String,
    pub partition: u32,
    /// First offset the segment held.
    pub base_offset: u64,
    /// Offset after the last record it held.
    pub end_offset: u64,
    pub bytes: u64,
    pub reason: RetentionReason,
}

/// Which limit deleted a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetentionReason {
    /// The partition was over `retention_bytes`.
    Size,
    /// The segment's newest record was older than `retention_age`.
    Age,
}

/// The limits to apply, from [`crate::LogConfig`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetentionPolicy {
    pub max_bytes: Option<u64>,
    pub max_age_ms: Option<i64>,
    pub now_ms: i64,
}

impl Partition {
    /// Deletes segments from the front while the policy says so; appends what it deleted.
    pub(crate) fn enforce_retention(
        &self,
        policy: RetentionPolicy,
        removed: &mut Vec<RemovedSegment>,
    ) -> Result<()> {
        loop {
            let (oldest, total) = {
                let segments = read_lock(&self.segments);
                let [oldest, _active, ..] = segments.as_slice() else {
                    return Ok(());
                };
                let total: u64 = segments.iter().map(|s| s.durable_len()).sum();
                (Arc::clone(oldest), total)
            };
            let reason = if policy.max_bytes.is_some_and(|limit| total > limit) {
                RetentionReason::Size
            } else if let Some(max_age) = policy.max_age_ms
                && policy.now_ms.saturating_sub(oldest.max_timestamp()?) > max_age
            {
                RetentionReason::Age
            } else {
                return Ok(());
            };
            {
                let mut segments = write_lock(&self.segments);
                // Another retention pass may have got here first; look again.
                if segments.len() < 2 || !Arc::ptr_eq(&segments[0], &oldest) {
                    continue;
                }
                segments.remove(0);
                if let Some(first) = segments.first() {
                    self.start.store(first.base_offset(), Ordering::Release);
                }
            }
            remove_segment_files(&oldest)?;
            let gone = RemovedSegment {
                topic: self.topic().to_string(),
                partition: self.id(),
                base_offset: oldest.base_offset(),
                end_offset: oldest.next_offset(),
                bytes: oldest.durable_len(),
                reason,
            };
            tracing::info!(
                topic = %gone.topic,
                partition = gone.partition,
                base_offset = gone.base_offset,
                end_offset = gone.end_offset,
                bytes = gone.bytes,
                reason = ?gone.reason,
                dir = %self.dir().display(),
                "deleted log segment by retention"
            );
            removed.push(gone);
        }
    }
}
