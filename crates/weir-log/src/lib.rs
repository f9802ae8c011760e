//! weir's embedded durable log: topics split into partitions, each an append-only sequence of
//! segment files on local disk, like a small Kafka inside the weir process. Sources append
//! records here; the SQL engine reads them back by offset and commits consumer cursors.
//!
//! Start at [`Log::open`]; [`Topic`] picks partitions, [`Partition`] appends (durable on
//! return, with group commit) and reads. On-disk framing is in `batch.rs`, startup repair in
//! `recovery.rs`, deletion of old data in `retention.rs`. No async: callers in async code run
//! appends on a blocking thread.

mod batch;
mod config;
mod cursor;
pub mod error;
mod index;
mod log;
mod partition;
mod record;
mod recovery;
mod retention;
mod segment;
mod topic;

use std::fs::File;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

pub use batch::MAX_RECORD_BYTES;
pub use config::{DEFAULT_INDEX_INTERVAL_BYTES, DEFAULT_SEGMENT_BYTES, LogConfig};
pub use error::{LogError, Result};
pub use log::Log;
pub use partition::Partition;
pub use record::{Appended, Record, StoredRecord};
pub use retention::{RemovedSegment, RetentionReason, RetentionReport};
pub use topic::Topic;

/// Longest topic or consumer group name.
pub const MAX_NAME_LEN: usize = 200;
/// Most partitions a topic may have.
pub const MAX_PARTITIONS: u32 = 4096;

/// Checks that `name` is usable as a file name on every platform we run on.
pub(crate) fn validate_name(what: &'static str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(LogError::InvalidName {
            what,
            name: name.to_string(),
        })
    }
}

/// Makes a directory's entries (created, renamed or deleted files) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| LogError::io("fsync directory", dir, e))
}

// Poisoning only means another thread panicked while holding the lock. The state behind every
// lock in this crate is updated only after the IO it describes succeeded, so it is consistent at
// every point a panic could occur, and continuing is safe.

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn read_lock<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn write_lock<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in [
            "events",
            "a",
            "orders.v2",
            "click_stream-1",
            &"x".repeat(MAX_NAME_LEN),
        ] {
            assert!(validate_name("topic", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".hidden",
            "a/b",
            "..",
            "sp ace",
            "é",
            &"x".repeat(MAX_NAME_LEN + 1),
        ] {
            let err = validate_name("topic", bad).unwrap_err();
            assert_eq!(err.kind(), weir_core::ErrorKind::User);
        }
    }

    #[test]
    fn handles_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Log>();
        check::<Topic>();
        check::<Partition>();
    }
}
