//! [`Topic`]: a named, fixed set of partitions, and the choice of partition for a record
//! (stable key hash, or round-robin without a key). Creating topics and finding them on disk is
//! `log.rs`'s job; everything about one partition is in `partition.rs`.

use std::fmt;
use std::fs::File;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::partition::Partition;

/// A topic and its partitions. Shared as `Arc<Topic>`.
pub struct Topic {
    name: String,
    partitions: Vec<Partition>,
    round_robin: AtomicU32,
    /// Keeps the log directory locked while this handle can still append.
    _lock_file: Arc<File>,
}

impl fmt::Debug for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Topic")
            .field("name", &self.name)
            .field("partitions", &self.partitions)
            .finish_non_exhaustive()
    }
}

impl Topic {
    /// `partitions` is non-empty, indexed by partition number, at most `MAX_PARTITIONS` long.
    pub(crate) fn new(name: String, partitions: Vec<Partition>, lock_file: Arc<File>) -> Self {
        Topic {
            name,
            partitions,
            round_robin: AtomicU32::new(0),
            _lock_file: lock_file,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn partition_count(&self) -> u32 {
        // At most MAX_PARTITIONS partitions, so this never saturates.
        u32::try_from(self.partitions.len()).unwrap_or(u32::MAX)
    }

    /// Partition `p`, or `None` when `p >= partition_count()`.
    pub fn partition(&self, p: u32) -> Option<&Partition> {
        self.partitions.get(usize::try_from(p).ok()?)
    }

    /// All partitions, in partition-number order.
    pub fn partitions(&self) -> &[Partition] {
        &self.partitions
    }

    /// Picks a partition for a record: the CRC-32C of the key modulo the partition count when
    /// there is a key (stable across processes and versions, so equal keys stay in order), else
    /// the next partition in round-robin order.
    pub fn partition_for(&self, key: Option<&[u8]>) -> u32 {
        let n = self.partition_count().max(1);
        match key {
            Some(key) => crc32c::crc32c(key) % n,
            None => self.round_robin.fetch_add(1, Ordering::Relaxed) % n,
        }
    }
}
