//! Helpers shared by the integration tests: small-segment configs, appending numbered values and
//! reading a whole partition back.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use weir_log::{Appended, LogConfig, Partition, Record, StoredRecord};

/// A config with tiny segments and a dense index so a few KiB exercise rolls and seeks.
pub fn small_cfg(dir: &Path) -> LogConfig {
    LogConfig::new(dir)
        .with_segment_bytes(4096)
        .with_index_interval_bytes(256)
}

/// The value of record `i`: distinct, self-describing, around 40 bytes.
pub fn value(i: u64) -> Vec<u8> {
    format!("{{\"n\":{i},\"pad\":\"abcdefghijklmnopqrst\"}}").into_bytes()
}

/// Appends records `first..first + n` (values from [`value`], timestamps `ts`), as one call.
pub fn append_range(p: &Partition, first: u64, n: u64, ts: i64) -> Appended {
    let values: Vec<Vec<u8>> = (first..first + n).map(value).collect();
    let records: Vec<Record<'_>> = values.iter().map(|v| Record::new(v, ts)).collect();
    p.append(&records).expect("append")
}

/// Every durable record from `start_offset()` on, read in chunks of `chunk` records.
pub fn read_all(p: &Partition, chunk: usize) -> Vec<StoredRecord> {
    let mut out = Vec::new();
    let mut next = p.start_offset();
    loop {
        let batch = p.read(next, chunk, usize::MAX).expect("read");
        let Some(last) = batch.last() else {
            return out;
        };
        next = last.offset + 1;
        out.extend(batch);
    }
}

/// Checks `records` are exactly offsets `first..` with the values [`value`] gives them.
pub fn assert_values(records: &[StoredRecord], first: u64) {
    for (i, r) in records.iter().enumerate() {
        let offset = first + i as u64;
        assert_eq!(r.offset, offset, "offsets are dense");
        assert_eq!(r.value, value(offset), "value at offset {offset}");
    }
}

/// The partition's directory.
pub fn partition_dir(log_dir: &Path, topic: &str, partition: u32) -> PathBuf {
    log_dir
        .join("topics")
        .join(topic)
        .join(partition.to_string())
}

/// The partition's `.log` files, oldest first.
pub fn segment_files(log_dir: &Path, topic: &str, partition: u32) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(partition_dir(log_dir, topic, partition))
        .expect("list partition")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files
}

pub fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).expect("stat").len()
}
