//! Appending and reading: round trips across segment rolls, read limits and offset errors,
//! concurrent appenders with group commit, topics and partition choice.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use weir_core::ErrorKind;
use weir_log::{Log, LogConfig, LogError, Record};

#[test]
fn append_read_round_trip_across_segment_rolls() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(small_cfg(tmp.path())).unwrap();
    let topic = log.create_topic("events", 1).unwrap();
    let p = topic.partition(0).unwrap();
    assert_eq!((p.start_offset(), p.end_offset()), (0, 0));

    let mut next = 0;
    for n in [1, 7, 30, 2, 100, 5, 64, 1, 90] {
        let appended = append_range(p, next, n, 1_000 + next as i64);
        assert_eq!(appended.partition, 0);
        assert_eq!(appended.base_offset, next);
        assert_eq!(u64::from(appended.count), n);
        next += n;
        assert_eq!(p.end_offset(), next);
    }
    assert!(
        p.segment_count() > 3,
        "expected rolls, got {}",
        p.segment_count()
    );
    assert_eq!(
        segment_files(tmp.path(), "events", 0).len(),
        p.segment_count()
    );

    let all = read_all(p, 17);
    assert_eq!(all.len() as u64, next);
    assert_values(&all, 0);
    assert!(all.iter().all(|r| r.key.is_none()));

    // Seeking to every offset (through the sparse index) lands exactly there.
    for from in 0..next {
        let got = p.read(from, 3, usize::MAX).unwrap();
        assert_eq!(got[0].offset, from);
        assert_values(&got, from);
        assert_eq!(got.len() as u64, 3.min(next - from));
    }

    // Reopen: same data, appends continue at the end.
    drop(topic);
    drop(log);
    let log = Log::open(small_cfg(tmp.path())).unwrap();
    let p = log.topic("events").unwrap();
    let p = p.partition(0).unwrap();
    assert_eq!(p.end_offset(), next);
    assert_eq!(append_range(p, next, 10, 5).base_offset, next);
    let all = read_all(p, 1000);
    assert_eq!(all.len() as u64, next + 10);
    assert_values(&all, 0);
}

#[test]
fn keys_timestamps_and_large_records_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(small_cfg(tmp.path())).unwrap();
    let p = log.create_topic("t", 1).unwrap();
    let p = p.partition(0).unwrap();
    let big = vec![b'x'; 20_000]; // larger than a whole segment
    let records = [
        Record::with_key(b"user-1", b"a", -5),
        Record::new(b"", i64::MAX),
        Record::with_key(b"", &big, 0),
        Record::new(b"after", i64::MIN),
    ];
    let appended = p.append(&records).unwrap();
    assert_eq!((appended.base_offset, appended.count), (0, 4));
    assert_eq!(appended.next_offset(), 4);
    let got = p.read(0, 10, usize::MAX).unwrap();
    assert_eq!(got.len(), 4);
    for (g, r) in got.iter().zip(&records) {
        assert_eq!(g.key.as_deref(), r.key);
        assert_eq!(g.value, r.value);
        assert_eq!(g.timestamp_ms, r.timestamp_ms);
    }
    append_range(p, 4, 3, 0);
    assert_eq!(p.read(4, 10, usize::MAX).unwrap()[0].value, value(4));
}

#[test]
fn read_limits_and_offset_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(small_cfg(tmp.path())).unwrap();
    let p = log.create_topic("t", 1).unwrap();
    let p = p.partition(0).unwrap();
    append_range(p, 0, 50, 0);
    let size = value(0).len();

    assert_eq!(p.read(0, 10, usize::MAX).unwrap().len(), 10);
    assert_eq!(p.read(45, 10, usize::MAX).unwrap().len(), 5);
    assert!(p.read(3, 0, usize::MAX).unwrap().is_empty());
    // max_bytes counts values and never splits past the limit ...
    assert_eq!(p.read(0, 100, size * 3).unwrap().len(), 3);
    assert_eq!(p.read(0, 100, size * 3 + 1).unwrap().len(), 3);
    // ... but one record always comes back.
    assert_eq!(p.read(7, 100, 1).unwrap().len(), 1);
    assert_eq!(p.read(7, 100, 0).unwrap()[0].offset, 7);

    assert!(p.read(50, 10, usize::MAX).unwrap().is_empty());
    let err = p.read(51, 10, usize::MAX).unwrap_err();
    assert!(
        matches!(
            err,
            LogError::OffsetBeyondEnd {
                offset: 51,
                end: 50,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::User);

    // Empty appends are acknowledged without writing.
    let empty = p.append(&[]).unwrap();
    assert_eq!((empty.base_offset, empty.count), (50, 0));
    assert_eq!(p.end_offset(), 50);
}

#[test]
fn concurrent_appenders_get_distinct_contiguous_offsets() {
    const THREADS: u64 = 8;
    const APPENDS: u64 = 60;
    const PER_APPEND: u64 = 25;
    let tmp = tempfile::tempdir().unwrap();
    let cfg = LogConfig::new(tmp.path())
        .with_segment_bytes(64 * 1024)
        .with_index_interval_bytes(1024);
    let log = Arc::new(Log::open(cfg).unwrap());
    let topic = log.create_topic("busy", 1).unwrap();
    let done = Arc::new(AtomicBool::new(false));

    // A reader tails the partition while appends run: it must only ever see dense, durable data.
    let reader = {
        let topic = Arc::clone(&topic);
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let p = topic.partition(0).unwrap();
            let mut next = 0;
            while !done.load(Ordering::Acquire) || next < p.end_offset() {
                let end = p.end_offset();
                let got = p.read(next, 500, usize::MAX).unwrap();
                for r in &got {
                    assert_eq!(r.offset, next);
                    assert!(r.offset < p.end_offset());
                    next += 1;
                }
                assert!(next <= p.end_offset().max(end));
            }
            next
        })
    };

    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let topic = Arc::clone(&topic);
            std::thread::spawn(move || {
                let p = topic.partition(0).unwrap();
                let mut acks = Vec::new();
                for a in 0..APPENDS {
                    let values: Vec<String> =
                        (0..PER_APPEND).map(|j| format!("t{t}-a{a}-r{j}")).collect();
                    let records: Vec<Record<'_>> = values
                        .iter()
                        .map(|v| Record::new(v.as_bytes(), 7))
                        .collect();
                    let ack = p.append(&records).unwrap();
                    // Acknowledged means visible.
                    assert!(p.end_offset() >= ack.next_offset());
                    acks.push((ack, values));
                }
                acks
            })
        })
        .collect();
    let acks: Vec<_> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    done.store(true, Ordering::Release);
    let total = THREADS * APPENDS * PER_APPEND;
    assert_eq!(reader.join().unwrap(), total);

    let p = topic.partition(0).unwrap();
    assert_eq!(p.end_offset(), total);
    let mut ranges: Vec<(u64, u64)> = acks
        .iter()
        .map(|(a, _)| (a.base_offset, a.next_offset()))
        .collect();
    ranges.sort_unstable();
    let mut expected = 0;
    for (start, end) in ranges {
        assert_eq!(start, expected, "ranges are disjoint and leave no gap");
        expected = end;
    }
    assert_eq!(expected, total);

    let all = read_all(p, 10_000);
    assert_eq!(all.len() as u64, total);
    for (ack, values) in &acks {
        for (j, v) in values.iter().enumerate() {
            assert_eq!(
                all[(ack.base_offset + j as u64) as usize].value,
                v.as_bytes()
            );
        }
    }
}

#[test]
fn topics_are_created_idempotently_and_reloaded() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let log = Log::open(small_cfg(tmp.path())).unwrap();
        let a = log.create_topic("orders", 3).unwrap();
        assert_eq!(a.name(), "orders");
        assert_eq!(a.partition_count(), 3);
        assert!(a.partition(2).is_some() && a.partition(3).is_none());
        let again = log.create_topic("orders", 3).unwrap();
        assert!(Arc::ptr_eq(&a, &again));
        let err = log.create_topic("orders", 4).unwrap_err();
        assert!(matches!(
            err,
            LogError::PartitionCountMismatch {
                existing: 3,
                requested: 4,
                ..
            }
        ));
        assert_eq!(err.kind(), ErrorKind::User);
        log.create_topic("clicks", 1).unwrap();
        for bad in ["", "../x", ".hidden", "a b"] {
            assert_eq!(
                log.create_topic(bad, 1).unwrap_err().kind(),
                ErrorKind::User
            );
        }
        assert_eq!(
            log.create_topic("zero", 0).unwrap_err().kind(),
            ErrorKind::User
        );
        append_range(a.partition(1).unwrap(), 0, 5, 0);
        assert!(log.topic("missing").is_none());
    }
    // A topic whose creation was interrupted is cleaned up, not loaded.
    std::fs::create_dir_all(tmp.path().join("topics/.creating-half/0")).unwrap();
    let log = Log::open(small_cfg(tmp.path())).unwrap();
    assert_eq!(
        log.topic_names(),
        vec!["clicks".to_string(), "orders".to_string()]
    );
    assert!(!tmp.path().join("topics/.creating-half").exists());
    let orders = log.topic("orders").unwrap();
    assert_eq!(orders.partition_count(), 3);
    assert_eq!(orders.partition(1).unwrap().end_offset(), 5);
    assert_eq!(orders.partition(0).unwrap().end_offset(), 0);
    assert_eq!(log.create_topic("orders", 3).unwrap().partition_count(), 3);
}

#[test]
fn partition_for_is_stable_for_keys_and_round_robins_without() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(small_cfg(tmp.path())).unwrap();
    let topic = log.create_topic("keyed", 4).unwrap();
    let keys: Vec<String> = (0..200).map(|i| format!("customer-{i}")).collect();
    let first: Vec<u32> = keys
        .iter()
        .map(|k| topic.partition_for(Some(k.as_bytes())))
        .collect();
    for (k, p) in keys.iter().zip(&first) {
        assert_eq!(topic.partition_for(Some(k.as_bytes())), *p);
        assert_eq!(*p, crc32c::crc32c(k.as_bytes()) % 4, "documented hash");
    }
    // Keys spread over all partitions.
    assert_eq!(first.iter().collect::<HashSet<_>>().len(), 4);

    let rr: Vec<u32> = (0..8).map(|_| topic.partition_for(None)).collect();
    let start = rr[0];
    for (i, p) in rr.iter().enumerate() {
        assert_eq!(*p, (start + i as u32) % 4);
    }

    // Stable across processes: a reopened log maps keys the same way.
    drop(topic);
    drop(log);
    let log = Log::open(small_cfg(tmp.path())).unwrap();
    let topic = log.topic("keyed").unwrap();
    let again: Vec<u32> = keys
        .iter()
        .map(|k| topic.partition_for(Some(k.as_bytes())))
        .collect();
    assert_eq!(first, again);
}

#[test]
fn works_without_fsync() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(small_cfg(tmp.path()).with_fsync(false)).unwrap();
    let p = log.create_topic("fast", 1).unwrap();
    let p = p.partition(0).unwrap();
    append_range(p, 0, 300, 0);
    assert_values(&read_all(p, 64), 0);
    log.commit_cursor("g", "fast", 0, 300).unwrap();
    assert_eq!(log.cursor("g", "fast", 0).unwrap(), Some(300));
}
