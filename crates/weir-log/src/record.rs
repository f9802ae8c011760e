//! The values that cross the log's public API: [`Record`] going in, [`StoredRecord`] coming
//! out, [`Appended`] acknowledging a write. How they are framed on disk is in `batch.rs`.

/// One record to append. Borrowed so callers can append straight from their own buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// Optional key; [`crate::Topic::partition_for`] hashes it to pick a partition.
    pub key: Option<&'a [u8]>,
    pub value: &'a [u8],
    /// Event or ingest time in milliseconds since the Unix epoch; retention by age uses it.
    pub timestamp_ms: i64,
}

impl<'a> Record<'a> {
    /// A record without a key.
    pub fn new(value: &'a [u8], timestamp_ms: i64) -> Self {
        Record {
            key: None,
            value,
            timestamp_ms,
        }
    }

    /// A record with a key.
    pub fn with_key(key: &'a [u8], value: &'a [u8], timestamp_ms: i64) -> Self {
        Record {
            key: Some(key),
            value,
            timestamp_ms,
        }
    }
}

/// A durable record read back from a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Position in the partition; offsets are dense and start at 0.
    pub offset: u64,
    pub timestamp_ms: i64,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
}

/// Acknowledgement of a durable append: records got offsets `base_offset..base_offset + count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub partition: u32,
    pub base_offset: u64,
    pub count: u32,
}

impl Appended {
    /// The offset after the last appended record.
    pub fn next_offset(&self) -> u64 {
        self.base_offset.saturating_add(u64::from(self.count))
    }
}
