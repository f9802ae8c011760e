//! Retention by size and by age (only whole closed segments, oldest first; `start_offset`
//! follows) and consumer cursors surviving a reopen.

mod common;

use std::time::Duration;

use common::*;
use weir_core::ErrorKind;
use weir_log::{Log, LogError, RetentionReason};

const HOUR_MS: i64 = 3_600_000;

#[test]
fn retention_by_size_deletes_oldest_closed_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = small_cfg(tmp.path()).with_retention_bytes(Some(3 * 4096));
    let log = Log::open(cfg.clone()).unwrap();
    let topic = log.create_topic("t", 2).unwrap();
    let p = topic.partition(0).unwrap();
    for i in 0..40 {
        append_range(p, i * 25, 25, 0);
    }
    let before = p.segment_count();
    assert!(before > 5, "{before}");
    let size_before = p.size_bytes();

    let report = log.enforce_retention(weir_core::now_ms()).unwrap();
    assert!(report.segments() > 0);
    assert!(
        report
            .removed
            .iter()
            .all(|r| r.reason == RetentionReason::Size && r.topic == "t")
    );
    assert!(
        report.removed.iter().all(|r| r.partition == 0),
        "partition 1 is empty"
    );
    assert_eq!(p.segment_count(), before - report.segments());
    assert_eq!(p.size_bytes(), size_before - report.bytes());
    assert!(p.size_bytes() <= 3 * 4096);
    // Oldest first and contiguous: the first removed starts at 0, each ends where the next begins.
    assert_eq!(report.removed[0].base_offset, 0);
    for w in report.removed.windows(2) {
        assert_eq!(w[0].end_offset, w[1].base_offset);
    }
    let start = p.start_offset();
    assert_eq!(start, report.removed.last().unwrap().end_offset);
    assert_eq!(segment_files(tmp.path(), "t", 0).len(), p.segment_count());

    let err = p.read(start - 1, 10, usize::MAX).unwrap_err();
    assert!(
        matches!(err, LogError::OffsetBelowStart { offset, start: s, .. } if offset == start - 1 && s == start)
    );
    assert_eq!(err.kind(), ErrorKind::User);
    assert!(err.to_string().contains(&start.to_string()), "{err}");
    let rest = read_all(p, 100);
    assert_eq!(rest.len() as u64, 1000 - start);
    assert_values(&rest, start);

    // Idempotent, and the active segment alone is never deleted even when over the limit.
    assert_eq!(
        log.enforce_retention(weir_core::now_ms())
            .unwrap()
            .segments(),
        0
    );
    drop(topic);
    drop(log);
    let log = Log::open(cfg.with_retention_bytes(Some(0))).unwrap();
    let topic = log.topic("t").unwrap();
    let p = topic.partition(0).unwrap();
    assert_eq!(p.start_offset(), start, "start survives a reopen");
    log.enforce_retention(weir_core::now_ms()).unwrap();
    assert_eq!(p.segment_count(), 1);
    assert_eq!(p.end_offset(), 1000);
    assert_eq!(append_range(p, 1000, 1, 0).base_offset, 1000);
}

#[test]
fn retention_by_age_uses_the_newest_record_of_each_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = small_cfg(tmp.path()).with_retention_age(Some(Duration::from_secs(3600)));
    let now = weir_core::now_ms();
    let old_end;
    {
        let log = Log::open(cfg.clone()).unwrap();
        let topic = log.create_topic("t", 1).unwrap();
        let p = topic.partition(0).unwrap();
        for i in 0..20 {
            append_range(p, i * 25, 25, now - 3 * HOUR_MS);
        }
        old_end = p.end_offset();
        // One young record in an otherwise old segment keeps that segment.
        append_range(p, old_end, 1, now);
        for i in 0..10 {
            append_range(p, old_end + 1 + i * 25, 25, now - 10_000);
        }
    }
    // Reopen first, so the age of segments closed by an earlier process is read from disk.
    let log = Log::open(cfg).unwrap();
    let topic = log.topic("t").unwrap();
    let p = topic.partition(0).unwrap();
    let report = log.enforce_retention(now).unwrap();
    assert!(report.segments() > 0);
    assert!(
        report
            .removed
            .iter()
            .all(|r| r.reason == RetentionReason::Age)
    );
    let last_removed = report.removed.last().unwrap();
    assert!(
        last_removed.end_offset <= old_end,
        "only segments of old records go"
    );
    let start = p.start_offset();
    assert_eq!(start, last_removed.end_offset);
    assert!(start > 0 && start <= old_end);
    assert_values(&read_all(p, 100), start);
    // Nothing more is old enough.
    assert_eq!(log.enforce_retention(now).unwrap().segments(), 0);
    // Much later everything closed is old; the active segment stays.
    let later = log.enforce_retention(now + 10 * HOUR_MS).unwrap();
    assert!(later.segments() > 0);
    assert_eq!(p.segment_count(), 1);
}

#[test]
fn no_retention_configured_deletes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(small_cfg(tmp.path())).unwrap();
    let topic = log.create_topic("t", 1).unwrap();
    append_range(topic.partition(0).unwrap(), 0, 500, 0);
    assert_eq!(log.enforce_retention(i64::MAX).unwrap().segments(), 0);
    assert_eq!(topic.partition(0).unwrap().start_offset(), 0);
}

#[test]
fn cursors_persist_across_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let log = Log::open(small_cfg(tmp.path())).unwrap();
        log.create_topic("a", 2).unwrap();
        log.create_topic("b", 1).unwrap();
        assert_eq!(log.cursor("etl", "a", 0).unwrap(), None);
        log.commit_cursor("etl", "a", 0, 10).unwrap();
        log.commit_cursor("etl", "a", 1, 7).unwrap();
        log.commit_cursor("etl", "a", 0, 12).unwrap();
        log.commit_cursor("other", "b", 0, 3).unwrap();
        assert_eq!(log.cursor("etl", "a", 0).unwrap(), Some(12));

        let err = log.commit_cursor("etl", "nope", 0, 1).unwrap_err();
        assert!(matches!(err, LogError::UnknownTopic { .. }));
        let err = log.commit_cursor("etl", "a", 2, 1).unwrap_err();
        assert!(matches!(
            err,
            LogError::UnknownPartition {
                partition: 2,
                count: 2,
                ..
            }
        ));
        let err = log.commit_cursor("../escape", "a", 0, 1).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::User);
    }
    assert!(tmp.path().join("cursors/etl.json").exists());
    assert!(!tmp.path().join("cursors/etl.json.tmp").exists());
    let log = Log::open(small_cfg(tmp.path())).unwrap();
    assert_eq!(log.cursor("etl", "a", 0).unwrap(), Some(12));
    assert_eq!(log.cursor("etl", "a", 1).unwrap(), Some(7));
    assert_eq!(log.cursor("etl", "b", 0).unwrap(), None);
    assert_eq!(log.cursor("other", "b", 0).unwrap(), Some(3));
    assert_eq!(log.cursor("nobody", "a", 0).unwrap(), None);
}

#[test]
fn corrupt_cursor_file_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let log = Log::open(small_cfg(tmp.path())).unwrap();
        log.create_topic("a", 1).unwrap();
    }
    std::fs::write(tmp.path().join("cursors/broken.json"), b"{not json").unwrap();
    let log = Log::open(small_cfg(tmp.path())).unwrap();
    let err = log.cursor("broken", "a", 0).unwrap_err();
    assert!(matches!(err, LogError::CorruptCursor { .. }));
    assert!(err.to_string().contains("broken.json"), "{err}");
    // Other groups are unaffected.
    assert_eq!(log.cursor("fine", "a", 0).unwrap(), None);
}
