//! The `file` source ingests each file exactly once, across restarts and across a crash in
//! the middle of a file.

use std::sync::Arc;

use weir_connectors::file::{FileConfig, FileFormat, FileSource};
use weir_log::{Log, LogConfig, Record, Topic};

fn config(format: FileFormat) -> FileConfig {
    FileConfig {
        path: "inbox".into(),
        format,
        partitions: 1,
        poll: "50ms".parse().unwrap(),
        max_line_size: "64B".parse().unwrap(),
        schema: None,
    }
}

fn keys(topic: &Topic) -> Vec<String> {
    let p = topic.partition(0).unwrap();
    p.read(0, 10_000, 1 << 30)
        .unwrap()
        .into_iter()
        .map(|r| String::from_utf8(r.key.unwrap()).unwrap())
        .collect()
}

fn source(dir: &std::path::Path, log: &Log, format: FileFormat) -> FileSource {
    let topic: Arc<Topic> = log.create_topic("drops", 1).unwrap();
    let dlq = log.create_topic("_dlq", 1).unwrap();
    FileSource::try_new(
        "drops",
        config(format),
        dir.join("inbox"),
        dir.join("state"),
        topic,
        dlq,
    )
    .unwrap()
}

#[test]
fn files_are_ingested_once_across_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("inbox")).unwrap();
    std::fs::write(
        tmp.path().join("inbox/a.csv"),
        "id,amount\n1,2.5\n2,\n3,x\n",
    )
    .unwrap();
    let log = Log::open(LogConfig::new(tmp.path().join("log"))).unwrap();
    let mut src = source(tmp.path(), &log, FileFormat::Csv);
    // the first pass only notes the size; the file is taken once its size is stable
    assert_eq!(src.poll_once().unwrap(), 0);
    assert_eq!(src.poll_once().unwrap(), 1);
    let topic = log.topic("drops").unwrap();
    assert_eq!(keys(&topic), vec!["a.csv#1", "a.csv#2", "a.csv#3"]);
    let values: Vec<serde_json::Value> = topic
        .partition(0)
        .unwrap()
        .read(0, 10, 1 << 20)
        .unwrap()
        .iter()
        .map(|r| serde_json::from_slice(&r.value).unwrap())
        .collect();
    assert_eq!(values[0], serde_json::json!({"id": 1, "amount": 2.5}));
    assert_eq!(values[1], serde_json::json!({"id": 2, "amount": null}));
    assert_eq!(values[2], serde_json::json!({"id": 3, "amount": "x"}));
    assert_eq!(src.poll_once().unwrap(), 0);
    drop(src);

    // a restart sees the ledger: nothing is ingested twice; a new file is
    let mut src = source(tmp.path(), &log, FileFormat::Csv);
    std::fs::write(tmp.path().join("inbox/b.csv"), "id,amount\n4,1\n").unwrap();
    src.poll_once().unwrap();
    src.poll_once().unwrap();
    assert_eq!(
        keys(&topic),
        vec!["a.csv#1", "a.csv#2", "a.csv#3", "b.csv#1"]
    );
}

#[test]
fn a_crash_in_the_middle_of_a_file_neither_loses_nor_repeats_lines() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("inbox")).unwrap();
    std::fs::create_dir_all(tmp.path().join("state")).unwrap();
    let lines: Vec<String> = (1..=5).map(|i| format!("{{\"n\":{i}}}")).collect();
    std::fs::write(tmp.path().join("inbox/c.jsonl"), lines.join("\n") + "\n").unwrap();
    let log = Log::open(LogConfig::new(tmp.path().join("log"))).unwrap();
    let topic = log.create_topic("drops", 1).unwrap();
    // what a process killed after its second chunk leaves behind: two lines in the log and
    // the file marked in progress from offset 0
    let recs: Vec<Record<'_>> = ["c.jsonl#1", "c.jsonl#2"]
        .iter()
        .zip(&lines)
        .map(|(k, v)| Record {
            key: Some(k.as_bytes()),
            value: v.as_bytes(),
            timestamp_ms: 0,
        })
        .collect();
    topic.partition(0).unwrap().append(&recs).unwrap();
    std::fs::write(
        tmp.path().join("state/ledger.json"),
        r#"{"done":{},"in_progress":{"file":"c.jsonl","partition":0,"start_offset":0}}"#,
    )
    .unwrap();
    let mut src = source(tmp.path(), &log, FileFormat::Jsonl);
    assert_eq!(src.poll_once().unwrap(), 1);
    assert_eq!(
        keys(&topic),
        vec![
            "c.jsonl#1",
            "c.jsonl#2",
            "c.jsonl#3",
            "c.jsonl#4",
            "c.jsonl#5"
        ]
    );
    src.poll_once().unwrap();
    src.poll_once().unwrap();
    assert_eq!(keys(&topic).len(), 5);
}

#[test]
fn oversize_and_non_utf8_lines_go_to_the_dead_letter_topic() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("inbox")).unwrap();
    let mut body = b"{\"ok\":1}\n".to_vec();
    body.extend_from_slice(b"{\"bad\":\"\xff\"}\n");
    body.extend_from_slice(format!("{{\"long\":\"{}\"}}\n", "y".repeat(100)).as_bytes());
    std::fs::write(tmp.path().join("inbox/d.jsonl"), body).unwrap();
    let log = Log::open(LogConfig::new(tmp.path().join("log"))).unwrap();
    let mut src = source(tmp.path(), &log, FileFormat::Jsonl);
    src.poll_once().unwrap();
    src.poll_once().unwrap();
    assert_eq!(keys(&log.topic("drops").unwrap()), vec!["d.jsonl#1"]);
    let dead = log
        .topic("_dlq")
        .unwrap()
        .partition(0)
        .unwrap()
        .read(0, 10, 1 << 20)
        .unwrap();
    assert_eq!(dead.len(), 2);
    let reasons: Vec<String> = dead
        .iter()
        .map(|r| {
            serde_json::from_slice::<serde_json::Value>(&r.value).unwrap()["reason"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(reasons, vec!["not_utf8", "line_too_large"]);
    let raw: serde_json::Value = serde_json::from_slice(&dead[0].value).unwrap();
    assert_eq!(raw["raw_encoding"], "hex");
}

#[test]
fn http_lines_with_a_key_field_land_in_the_key_partition() {
    use weir_connectors::http::LineIngest;
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(LogConfig::new(tmp.path().join("log"))).unwrap();
    let topic = log.create_topic("events", 4).unwrap();
    let dlq = log.create_topic("_dlq", 1).unwrap();
    let ing = LineIngest::new(
        "events",
        topic.clone(),
        dlq,
        Some("customer".into()),
        "1MiB".parse().unwrap(),
    );
    let body: String = (0..200)
        .map(|i| format!("{{\"customer\":\"c{}\",\"i\":{i}}}\n", i % 7))
        .collect();
    let r = ing.ingest(body.as_bytes(), 0).unwrap();
    assert_eq!(r.accepted, 200);
    let mut seen: std::collections::BTreeMap<String, u32> = Default::default();
    let mut total = 0;
    for p in 0..4 {
        for rec in topic.partition(p).unwrap().read(0, 1000, 1 << 20).unwrap() {
            total += 1;
            let k = String::from_utf8(rec.key.unwrap()).unwrap();
            assert_eq!(
                *seen.entry(k.clone()).or_insert(p),
                p,
                "key {k} in two partitions"
            );
            assert_eq!(topic.partition_for(Some(k.as_bytes())), p);
        }
    }
    assert_eq!(total, 200);
    assert_eq!(seen.len(), 7);
    assert!(
        ing.ingest(b"\n  \n", 0).is_err(),
        "an empty body is an error"
    );
}
