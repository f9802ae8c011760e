//! Rough throughput check, ignored by default. Run it with
//! `cargo test -p weir-log --release --test throughput -- --ignored --nocapture`.

use std::sync::Arc;
use std::time::Instant;

use weir_log::{Log, LogConfig, Record};

#[test]
#[ignore = "measures performance; run explicitly in release mode"]
fn append_and_read_throughput() {
    const RECORDS: usize = 1_000_000;
    const BATCH: usize = 5_000;
    let tmp = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(LogConfig::new(tmp.path())).unwrap());
    let topic = log.create_topic("bench", 4).unwrap();
    let value = format!(
        "{{\"id\":12345,\"user\":\"someone\",\"pad\":\"{}\"}}",
        "x".repeat(150)
    );
    let records: Vec<Record<'_>> = (0..BATCH)
        .map(|i| Record::new(value.as_bytes(), i as i64))
        .collect();

    let started = Instant::now();
    let p = topic.partition(0).unwrap();
    for _ in 0..RECORDS / BATCH {
        p.append(&records).unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "1 appender:  {:.0} records/s ({} B values)",
        RECORDS as f64 / secs,
        value.len()
    );

    let started = Instant::now();
    std::thread::scope(|s| {
        for t in 0..4 {
            let p = topic.partition(t).unwrap();
            let records = &records;
            s.spawn(move || {
                for _ in 0..RECORDS / BATCH / 4 {
                    p.append(records).unwrap();
                }
            });
        }
    });
    let secs = started.elapsed().as_secs_f64();
    println!(
        "4 appenders on 4 partitions: {:.0} records/s",
        RECORDS as f64 / secs
    );

    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..RECORDS / BATCH / 4 {
                    p.append(&records[..BATCH / 10]).unwrap();
                }
            });
        }
    });
    let secs = started.elapsed().as_secs_f64();
    println!(
        "4 appenders on 1 partition, batches of {}: {:.0} records/s",
        BATCH / 10,
        (RECORDS / 10) as f64 / secs
    );

    let started = Instant::now();
    let mut next = 0;
    let mut n = 0;
    while next < p.end_offset() {
        let got = p.read(next, 20_000, usize::MAX).unwrap();
        n += got.len();
        next = got.last().map_or(next, |r| r.offset + 1);
    }
    let secs = started.elapsed().as_secs_f64();
    println!("read: {:.0} records/s ({n} records)", n as f64 / secs);
}
