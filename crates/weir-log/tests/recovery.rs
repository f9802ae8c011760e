//! Crash recovery at open: torn and corrupted tails are cut at the first bad batch, everything
//! before survives, appends continue at the right offset; garbage files and missing or broken
//! indexes are handled; a second opener is locked out.

mod common;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use common::*;
use weir_core::ErrorKind;
use weir_log::{Log, LogConfig, LogError};

/// Appends `batches` batches of 10 records to `t`/0 in one segment; returns the offsets
/// appended and the byte range of the last batch in the segment file.
fn write_batches(dir: &Path, batches: u64) -> (u64, std::ops::Range<u64>) {
    let log = Log::open(LogConfig::new(dir).with_index_interval_bytes(128)).unwrap();
    let p = log.create_topic("t", 1).unwrap();
    let p = p.partition(0).unwrap();
    let segment = &segment_files(dir, "t", 0)[0];
    let mut before = 0;
    for b in 0..batches {
        before = file_len(segment);
        append_range(p, b * 10, 10, 100);
    }
    (batches * 10, before..file_len(segment))
}

/// Reopens and checks the partition holds exactly offsets `0..expected_end`, then appends 5
/// more and checks they land right after.
fn reopen_and_check(dir: &Path, expected_end: u64) {
    let log = Log::open(LogConfig::new(dir).with_index_interval_bytes(128)).unwrap();
    let topic = log.topic("t").unwrap();
    let p = topic.partition(0).unwrap();
    assert_eq!(p.end_offset(), expected_end);
    let all = read_all(p, 7);
    assert_eq!(all.len() as u64, expected_end);
    assert_values(&all, 0);
    let appended = append_range(p, expected_end, 5, 100);
    assert_eq!(appended.base_offset, expected_end);
    drop(topic);
    drop(log);
    // And the repaired log reopens cleanly with the new data.
    let log = Log::open(LogConfig::new(dir)).unwrap();
    let topic = log.topic("t").unwrap();
    let p = topic.partition(0).unwrap();
    assert_eq!(p.end_offset(), expected_end + 5);
    assert_values(&read_all(p, 1000), 0);
}

#[test]
fn torn_tail_is_truncated_at_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let (end, last) = write_batches(tmp.path(), 12);
    let segment = &segment_files(tmp.path(), "t", 0)[0];
    let torn_at = last.start + (last.end - last.start) / 2;
    OpenOptions::new()
        .write(true)
        .open(segment)
        .unwrap()
        .set_len(torn_at)
        .unwrap();
    reopen_and_check(tmp.path(), end - 10);
    assert!(
        file_len(segment) > last.start,
        "the batch after recovery was appended"
    );
}

#[test]
fn torn_length_field_is_truncated() {
    let tmp = tempfile::tempdir().unwrap();
    let (end, last) = write_batches(tmp.path(), 3);
    let segment = &segment_files(tmp.path(), "t", 0)[0];
    OpenOptions::new()
        .write(true)
        .open(segment)
        .unwrap()
        .set_len(last.start + 2)
        .unwrap();
    reopen_and_check(tmp.path(), end - 10);
}

#[test]
fn corrupted_tail_is_truncated_at_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let (end, last) = write_batches(tmp.path(), 12);
    let segment = &segment_files(tmp.path(), "t", 0)[0];
    let mut bytes = fs::read(segment).unwrap();
    bytes[(last.end - 5) as usize] ^= 0x20; // inside the last record's value
    fs::write(segment, &bytes).unwrap();
    reopen_and_check(tmp.path(), end - 10);
}

#[test]
fn corruption_in_an_earlier_batch_keeps_the_batches_before_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, _) = write_batches(tmp.path(), 12);
    let segment = &segment_files(tmp.path(), "t", 0)[0];
    let mut bytes = fs::read(segment).unwrap();
    let batch_len = bytes.len() / 12; // all batches have equal size here
    bytes[batch_len * 4 + 12] ^= 0xff; // the base offset field of the 5th batch
    fs::write(segment, &bytes).unwrap();
    reopen_and_check(tmp.path(), 40);
}

#[test]
fn zeroed_tail_is_truncated() {
    // What a file system can leave after a crash: the size grew, the data never arrived.
    let tmp = tempfile::tempdir().unwrap();
    let (end, _) = write_batches(tmp.path(), 4);
    let segment = &segment_files(tmp.path(), "t", 0)[0];
    let mut f = OpenOptions::new().append(true).open(segment).unwrap();
    f.write_all(&[0u8; 4096]).unwrap();
    drop(f);
    reopen_and_check(tmp.path(), end);
}

#[test]
fn garbage_trailing_segment_is_emptied_and_appends_continue() {
    let tmp = tempfile::tempdir().unwrap();
    let (end, _) = write_batches(tmp.path(), 5);
    let dir = partition_dir(tmp.path(), "t", 0);
    // A trailing segment named right after the data but holding garbage, without an index.
    let garbage: Vec<u8> = (0..5000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    fs::write(dir.join(format!("{end:020}.log")), &garbage).unwrap();
    // Stray files are reported and left alone.
    fs::write(dir.join("notes.txt"), b"hello").unwrap();
    reopen_and_check(tmp.path(), end);
    assert!(dir.join("notes.txt").exists());
    assert_eq!(segment_files(tmp.path(), "t", 0).len(), 2);
}

#[test]
fn empty_trailing_segment_with_a_wrong_name_is_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let (end, _) = write_batches(tmp.path(), 5);
    let dir = partition_dir(tmp.path(), "t", 0);
    fs::write(dir.join(format!("{:020}.log", end + 1000)), b"junk").unwrap();
    reopen_and_check(tmp.path(), end);
    let files = segment_files(tmp.path(), "t", 0);
    assert_eq!(files.len(), 2);
    assert!(files[1].ends_with(format!("{end:020}.log")));
}

#[test]
fn missing_and_broken_indexes_are_rebuilt() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = || small_cfg(tmp.path());
    {
        let log = Log::open(cfg()).unwrap();
        let p = log.create_topic("t", 1).unwrap();
        for i in 0..20 {
            append_range(p.partition(0).unwrap(), i * 20, 20, 0);
        }
    }
    let dir = partition_dir(tmp.path(), "t", 0);
    let logs = segment_files(tmp.path(), "t", 0);
    assert!(logs.len() >= 4);
    let index_of = |log: &Path| log.with_extension("index");
    let original = fs::read(index_of(&logs[1])).unwrap();
    assert!(!original.is_empty(), "closed segments have index entries");
    fs::remove_file(index_of(&logs[0])).unwrap();
    fs::write(index_of(&logs[1]), b"\x01\x02\x03").unwrap();
    fs::write(index_of(&logs[2]), [0xffu8; 16]).unwrap();
    // An index whose log is gone is removed.
    fs::write(dir.join(format!("{:020}.index", 99_999)), b"").unwrap();

    let log = Log::open(cfg()).unwrap();
    let topic = log.topic("t").unwrap();
    let p = topic.partition(0).unwrap();
    assert_eq!(p.end_offset(), 400);
    for from in (0..400).step_by(13) {
        assert_eq!(p.read(from, 1, usize::MAX).unwrap()[0].value, value(from));
    }
    assert_values(&read_all(p, 50), 0);
    assert_eq!(
        fs::read(index_of(&logs[1])).unwrap(),
        original,
        "rebuilt index matches"
    );
    assert!(index_of(&logs[0]).exists());
    assert!(!dir.join(format!("{:020}.index", 99_999)).exists());
}

#[test]
fn second_open_of_the_same_dir_is_locked() {
    let tmp = tempfile::tempdir().unwrap();
    let first = Log::open(LogConfig::new(tmp.path())).unwrap();
    let err = Log::open(LogConfig::new(tmp.path())).unwrap_err();
    assert!(
        matches!(&err, LogError::Locked { dir } if dir == tmp.path()),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::User);
    assert!(err.to_string().contains(&tmp.path().display().to_string()));
    drop(first);
    Log::open(LogConfig::new(tmp.path())).expect("lock released on drop");
}

#[test]
fn invalid_config_is_a_user_error() {
    let tmp = tempfile::tempdir().unwrap();
    let err = Log::open(LogConfig::new(tmp.path()).with_segment_bytes(0)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::User);
    assert!(err.to_string().contains("segment_bytes"), "{err}");
}

#[test]
fn damaged_closed_segment_is_cut_and_reads_skip_the_gap() {
    // Only possible with fsync off and a power loss, but must not stop the log from opening.
    let tmp = tempfile::tempdir().unwrap();
    {
        let log = Log::open(small_cfg(tmp.path())).unwrap();
        let p = log.create_topic("t", 1).unwrap();
        for i in 0..20 {
            append_range(p.partition(0).unwrap(), i * 20, 20, 0);
        }
    }
    let logs = segment_files(tmp.path(), "t", 0);
    assert!(logs.len() >= 3);
    let len = file_len(&logs[0]);
    OpenOptions::new()
        .write(true)
        .open(&logs[0])
        .unwrap()
        .set_len(len - 10)
        .unwrap();
    let second_base: u64 = logs[1]
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();

    let log = Log::open(small_cfg(tmp.path())).unwrap();
    let topic = log.topic("t").unwrap();
    let p = topic.partition(0).unwrap();
    assert_eq!(p.end_offset(), 400);
    let all = read_all(p, 1000);
    // Offsets before the cut are dense, then reading jumps to the next segment.
    let gap_at = all
        .windows(2)
        .position(|w| w[1].offset != w[0].offset + 1)
        .unwrap();
    assert_eq!(all[gap_at + 1].offset, second_base);
    assert_values(&all[..=gap_at], 0);
    assert_values(&all[gap_at + 1..], second_base);
    // A read starting inside the gap continues at the next segment.
    let inside_gap = all[gap_at].offset + 1;
    assert_eq!(
        p.read(inside_gap, 1, usize::MAX).unwrap()[0].offset,
        second_base
    );
}

#[test]
fn topic_handles_keep_the_directory_locked() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(LogConfig::new(tmp.path())).unwrap();
    let topic = log.create_topic("t", 1).unwrap();
    drop(log);
    let err = Log::open(LogConfig::new(tmp.path())).unwrap_err();
    assert!(matches!(err, LogError::Locked { .. }), "{err}");
    drop(topic);
    Log::open(LogConfig::new(tmp.path())).expect("lock released with the last handle");
}
