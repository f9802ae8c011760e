//! The `kafka` source and sink against a real Kafka-protocol broker (`WEIR_TEST_KAFKA_BROKERS`,
//! e.g. `127.0.0.1:9092`; `.ci/kafka.sh` installs and starts one). Built only with weir's
//! `kafka` feature: `cargo test --workspace --features weir/kafka --test kafka`.
//!
//! - Kafka → weir → Delta survives `kill -9` of `weir run` in the middle of the work: every
//!   message is in silver exactly once;
//! - a clean stop and start reads only what is new, and the offsets committed to the consumer
//!   group show no lag;
//! - a payload that is not UTF-8 becomes a dead letter with its Kafka position;
//! - a table's rows reach a Kafka topic, keyed by a column, with the `weir.batch` header;
//! - brokers that cannot be reached and topics that do not exist show in `/v1/status`;
//! - config mistakes are refused naming the key.
//!
//! Every test uses topics of its own, so the tests run in parallel on a shared broker.
#![cfg(feature = "kafka")]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::harness::*;
use rand::{Rng, SeedableRng};
use weir_connectors::kafka::rdkafka;
use weir_orchestrator::{Project, Weir};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

fn brokers() -> Option<String> {
    match std::env::var("WEIR_TEST_KAFKA_BROKERS") {
        Ok(b) if !b.is_empty() => Some(b),
        _ => {
            eprintln!(
                "SKIPPED: set WEIR_TEST_KAFKA_BROKERS (e.g. 127.0.0.1:9092; `eval \"$(bash .ci/kafka.sh)\"` starts a broker) to run the kafka source and sink tests"
            );
            None
        }
    }
}

/// A topic name no other test run uses.
fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            % 1_000_000_000
    )
}

/// Creates `topic` with `partitions` partitions and waits until the broker reports them.
async fn create_topic(brokers: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let res = admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .unwrap();
    for r in res {
        r.unwrap_or_else(|(t, e)| panic!("creating topic {t}: {e}"));
    }
    let c = consumer(brokers, None);
    let start = Instant::now();
    loop {
        let md = c.fetch_metadata(Some(topic), Duration::from_secs(5));
        if let Ok(md) = md
            && md.topics().iter().any(|t| {
                t.name() == topic
                    && t.error().is_none()
                    && t.partitions().len() == partitions as usize
            })
        {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "topic {topic} did not appear"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn consumer(brokers: &str, group: Option<&str>) -> BaseConsumer {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        .set("enable.auto.commit", "false")
        .set("group.id", group.unwrap_or("weir-test-reader"));
    c.create().unwrap()
}

/// Produces every (key, payload) to `topic` and returns once each is acknowledged.
async fn produce(brokers: &str, topic: &str, messages: &[(String, Vec<u8>)]) {
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .create()
        .unwrap();
    let mut pending = Vec::new();
    for (k, v) in messages {
        let d = p
            .send_result(
                FutureRecord::to(topic)
                    .key(k.as_str())
                    .payload(v.as_slice()),
            )
            .map_err(|(e, _)| e)
            .unwrap();
        pending.push(d);
        if pending.len() >= 5000 {
            for d in pending.drain(..) {
                d.await.unwrap().map_err(|(e, _)| e).unwrap();
            }
        }
    }
    for d in pending {
        d.await.unwrap().map_err(|(e, _)| e).unwrap();
    }
}

/// Orders `from..to` as (key, JSON payload) with ids `<tag>-<i>`.
fn orders(tag: &str, range: std::ops::Range<u32>) -> Vec<(String, Vec<u8>)> {
    range
        .map(|i| {
            (
                format!("c{}", i % 13),
                format!(
                    r#"{{"id": "{tag}-{i}", "n": {i}, "amount": {}.25}}"#,
                    i % 100
                )
                .into_bytes(),
            )
        })
        .collect()
}

/// A project reading Kafka `topic` into source `orders` (extra keys in `source`) and a silver
/// table of the payloads' fields.
fn project(dir: &Path, brokers: &str, topic: &str, source: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("sql")).unwrap();
    std::fs::write(
        dir.join("sql/silver_orders.sql"),
        "SELECT \"value.id\" AS id, \"value.n\" AS n, \"value.amount\" AS amount, \
         \"partition\" AS kafka_partition, \"offset\" AS kafka_offset, key FROM orders",
    )
    .unwrap();
    let toml = format!(
        r#"
[project]
name = "kafka_test"

[server]
listen = "127.0.0.1:0"
pg_listen = "127.0.0.1:0"

[pipeline]
interval = "20ms"

[sources.orders]
type = "kafka"
brokers = "{brokers}"
topic = "{topic}"
{source}

[tables.silver_orders]
from = "orders"
sql = "sql/silver_orders.sql"
schema = "value.id string, value.n bigint, value.amount double, partition bigint, offset bigint, key string"
"#
    );
    let path = dir.join("weir.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

fn start(config: &Path) -> Arc<Weir> {
    let weir = Weir::open(Project::load(config).unwrap()).unwrap();
    weir.start(Vec::new()).unwrap();
    weir
}

/// Rows of silver (0 before its first commit).
async fn silver_rows(config: &Path) -> i64 {
    let dir = config
        .parent()
        .unwrap()
        .join("data/lake/silver_orders/_delta_log");
    if !dir.exists() {
        return 0;
    }
    count(config, "silver_orders").await
}

/// Waits until silver holds `n` rows, failing on a pipeline error or after `limit`.
async fn wait_rows(config: &Path, weir: Option<&Weir>, n: i64, limit: Duration) {
    let start = Instant::now();
    loop {
        if let Some(w) = weir
            && let Some(e) = w.status_json()["pipeline"]["error"].as_str()
        {
            panic!("pipeline failed: {e}");
        }
        let got = silver_rows(config).await;
        if got >= n {
            return;
        }
        let status = weir
            .map(|w| w.status_json().to_string())
            .unwrap_or_default();
        assert!(
            start.elapsed() < limit,
            "silver_orders has {got} rows of {n} after {limit:?}; {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Silver's ids: (count, distinct count, the set).
async fn silver_ids(config: &Path) -> (usize, BTreeSet<String>) {
    let ids: Vec<String> = rows(config, "SELECT id FROM silver_orders")
        .await
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    let n = ids.len();
    (n, ids.into_iter().collect())
}

fn want_ids(tag: &str, n: u32) -> BTreeSet<String> {
    (0..n).map(|i| format!("{tag}-{i}")).collect()
}

/// Waits until the source's health satisfies `ok`.
fn wait_health(weir: &Weir, limit: Duration, what: &str, ok: impl Fn(&serde_json::Value) -> bool) {
    let start = Instant::now();
    loop {
        let h = weir.status_json()["sources"]["orders"]["health"].clone();
        if ok(&h) {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "waited {limit:?} for {what}; health: {h}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn weir_run(config: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("run")
        .arg("-c")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Stops `weir run` as Ctrl-C would and waits for it to exit.
fn interrupt(mut child: Child) {
    let st = Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(st.success());
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            assert!(s.success(), "weir run exited with {s}");
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "weir run did not stop"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_to_delta_is_exactly_once_across_kill_9() {
    let Some(brokers) = brokers() else { return };
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("weir-crash");
    // Four Kafka partitions on three weir partitions: some weir partition holds two Kafka
    // partitions, so resuming has to look past the last record of a weir partition.
    create_topic(&brokers, &topic, 4).await;
    let config = project(dir.path(), &brokers, &topic, "partitions = 3");
    let (first, total) = (30_000u32, 50_000u32);
    produce(&brokers, &topic, &orders("o", 0..first)).await;

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(
        std::env::var("WEIR_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(5),
    );
    let mut progress = Vec::new();
    for kill in 0..6 {
        if kill == 3 {
            // More messages arrive while weir is down.
            produce(&brokers, &topic, &orders("o", first..total)).await;
        }
        // Each run is killed once silver has grown by about 4 000 rows (startup time varies
        // too much on a loaded machine for fixed delays), a random moment later, so kills land
        // in reads, appends and commits alike.
        let produced = if kill < 3 { first } else { total };
        let before = silver_rows(&config).await;
        let mut child = weir_run(&config);
        let started = Instant::now();
        loop {
            if child.try_wait().unwrap().is_some() {
                panic!("weir run exited by itself");
            }
            let n = silver_rows(&config).await;
            if n >= (before + 4000).min(i64::from(produced))
                || started.elapsed() > Duration::from_secs(60)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let delay = rng.gen_range(0..400);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        progress.push((started.elapsed().as_millis(), silver_rows(&config).await));
    }
    eprintln!("after each kill (ms after start, silver rows): {progress:?}");
    assert!(
        progress
            .iter()
            .any(|(_, n)| *n > 0 && *n < i64::from(total)),
        "no kill landed in the middle of the work: {progress:?}"
    );

    let child = weir_run(&config);
    wait_rows(&config, None, i64::from(total), Duration::from_secs(300)).await;
    // Anything read twice would show up now.
    tokio::time::sleep(Duration::from_secs(2)).await;
    interrupt(child);

    let (n, ids) = silver_ids(&config).await;
    assert_eq!(ids.len(), n, "an order is in silver twice");
    assert_eq!(
        ids,
        want_ids("o", total),
        "silver differs from what was produced"
    );
    let bronze = rows(
        &config,
        "SELECT count(*), count(DISTINCT value) FROM bronze_orders",
    )
    .await;
    assert_eq!(
        bronze,
        vec![vec![total.to_string(), total.to_string()]],
        "each message once in the log"
    );
    // Each Kafka partition's offsets are dense from 0: nothing skipped.
    let per_partition = rows(
        &config,
        "SELECT kafka_partition, count(*), min(kafka_offset), max(kafka_offset) FROM silver_orders \
         GROUP BY kafka_partition ORDER BY kafka_partition",
    )
    .await;
    assert_eq!(per_partition.len(), 4, "{per_partition:?}");
    for r in &per_partition {
        let (c, lo, hi): (i64, i64, i64) = (
            r[1].parse().unwrap(),
            r[2].parse().unwrap(),
            r[3].parse().unwrap(),
        );
        assert_eq!((lo, hi), (0, c - 1), "partition {r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_restart_reads_only_new_messages_and_commits_the_group() {
    let Some(brokers) = brokers() else { return };
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("weir-resume");
    create_topic(&brokers, &topic, 3).await;
    let group = unique("weir-test-group");
    let config = project(
        dir.path(),
        &brokers,
        &topic,
        &format!("group = \"{group}\""),
    );
    let mut first = orders("r", 0..300);
    // Not UTF-8: a dead letter, which must not come back after the restart either.
    first.push(("bad".into(), vec![b'{', 0xff, b'}']));
    produce(&brokers, &topic, &first).await;

    let weir = start(&config);
    wait_rows(&config, Some(&weir), 300, Duration::from_secs(60)).await;
    let t = Instant::now();
    while weir.dead_letters() < 1 {
        assert!(t.elapsed() < Duration::from_secs(20), "no dead letter");
        std::thread::sleep(Duration::from_millis(20));
    }
    let st = weir.status_json();
    assert_eq!(st["sources"]["orders"]["kind"], "kafka", "{st}");
    assert_eq!(st["sources"]["orders"]["health"]["connected"], true, "{st}");
    weir.stop();
    weir.join();
    // The log stays locked until the last handle is gone.
    drop(weir);

    produce(&brokers, &topic, &orders("r", 300..500)).await;
    let weir = start(&config);
    wait_rows(&config, Some(&weir), 500, Duration::from_secs(60)).await;
    std::thread::sleep(Duration::from_secs(1));
    let st = weir.status_json();
    assert_eq!(
        st["dead_letters"], 1,
        "the dead letter was not written again: {st}"
    );
    weir.stop();
    weir.join();
    // `weir dlq list` below opens the project's log, which a live handle keeps locked.
    drop(weir);

    let (n, ids) = silver_ids(&config).await;
    assert_eq!((n, ids), (500, want_ids("r", 500)));
    // The JSON payload's fields, the Kafka key and position are columns.
    let one = rows(
        &config,
        "SELECT amount, key, kafka_offset >= 0 FROM silver_orders WHERE id = 'r-142'",
    )
    .await;
    assert_eq!(
        one,
        vec![vec!["42.25".to_string(), "c12".into(), "true".into()]]
    );
    // The dead letter names the message's position.
    let out = ok(&weir_cli(&["dlq", "list", "--json"], &config));
    assert!(
        out.contains("not_utf8") && out.contains(&format!("{topic}/")),
        "{out}"
    );

    // The group's committed offsets are the partitions' ends: Kafka tools show no lag.
    let c = consumer(&brokers, Some(&group));
    let mut tpl = TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition(&topic, p);
    }
    let committed = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
    let mut sum = 0;
    for e in committed.elements() {
        let (_, high) = c
            .fetch_watermarks(&topic, e.partition(), Duration::from_secs(5))
            .unwrap();
        assert_eq!(
            e.offset(),
            Offset::Offset(high),
            "partition {}",
            e.partition()
        );
        sum += high;
    }
    assert_eq!(sum, 501);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_latest_skips_what_was_there_before() {
    let Some(brokers) = brokers() else { return };
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("weir-latest");
    create_topic(&brokers, &topic, 2).await;
    produce(&brokers, &topic, &orders("old", 0..50)).await;
    let config = project(dir.path(), &brokers, &topic, "start = \"latest\"");
    let weir = start(&config);
    // Assigned once metadata was fetched and the source is connected.
    wait_health(&weir, Duration::from_secs(30), "a connection", |h| {
        h["connected"] == true
    });
    std::thread::sleep(Duration::from_secs(2));
    produce(&brokers, &topic, &orders("new", 0..40)).await;
    wait_rows(&config, Some(&weir), 40, Duration::from_secs(60)).await;
    std::thread::sleep(Duration::from_millis(500));
    weir.stop();
    weir.join();
    let (n, ids) = silver_ids(&config).await;
    assert_eq!((n, ids), (40, want_ids("new", 40)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_brokers_and_missing_topics_show_in_status() {
    // A port nothing listens on: refused at once, no broker needed.
    let dir = tempfile::tempdir().unwrap();
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = free.local_addr().unwrap().to_string();
    drop(free);
    let config = project(dir.path(), &dead, "nowhere", "");
    let weir = start(&config);
    wait_health(&weir, Duration::from_secs(30), "failed attempts", |h| {
        h["errors"].as_u64().unwrap_or(0) >= 2
            && h["connected"] == false
            && h["last_error"].as_str().is_some_and(|e| e.contains(&dead))
    });
    weir.stop();
    weir.join();
    drop(weir);

    let Some(brokers) = brokers() else { return };
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("weir-missing");
    let config = project(dir.path(), &brokers, &topic, "");
    let weir = start(&config);
    wait_health(&weir, Duration::from_secs(30), "the missing topic", |h| {
        h["last_error"]
            .as_str()
            .is_some_and(|e| e.contains(&format!("topic `{topic}` does not exist")))
    });
    // Created later, it is read without a restart.
    create_topic(&brokers, &topic, 2).await;
    produce(&brokers, &topic, &orders("late", 0..20)).await;
    wait_rows(&config, Some(&weir), 20, Duration::from_secs(60)).await;
    wait_health(&weir, Duration::from_secs(30), "recovery", |h| {
        h["connected"] == true
    });
    weir.stop();
    weir.join();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sink_produces_every_row_keyed_with_its_batch() {
    let Some(brokers) = brokers() else { return };
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("weir-sink");
    create_topic(&brokers, &topic, 3).await;
    std::fs::create_dir_all(dir.path().join("sql")).unwrap();
    std::fs::write(
        dir.path().join("sql/big.sql"),
        "SELECT order_id, customer, amount FROM orders WHERE amount >= 10",
    )
    .unwrap();
    let config = dir.path().join("weir.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
listen = "127.0.0.1:0"

[pipeline]
interval = "20ms"

[sources.orders]
type = "http"

[tables.big]
from = "orders"
sql = "sql/big.sql"
schema = "order_id string, customer string, amount double"

[sinks.big_orders]
type = "kafka"
from = "big"
brokers = "{brokers}"
topic = "{topic}"
key = "customer"
properties = {{ "compression.type" = "lz4" }}
"#
        ),
    )
    .unwrap();
    let weir = start(&config);
    let n = 2000u32;
    let lines: Vec<String> = (0..n)
        .map(|i| {
            let customer = if i % 50 == 0 {
                "null".to_string()
            } else {
                format!("\"cust-{}\"", i % 7)
            };
            format!(
                r#"{{"order_id": "s-{i}", "customer": {customer}, "amount": {}}}"#,
                i % 20
            )
        })
        .collect();
    for c in lines.chunks(300) {
        let body = c.join("\n") + "\n";
        weir.ingest("orders", body.as_bytes()).unwrap();
    }
    // amount = i % 20 >= 10: half the rows.
    let want: BTreeMap<String, Option<String>> = (0..n)
        .filter(|i| i % 20 >= 10)
        .map(|i| {
            (
                format!("s-{i}"),
                (i % 50 != 0).then(|| format!("cust-{}", i % 7)),
            )
        })
        .collect();

    let c = consumer(&brokers, None);
    let mut tpl = TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition_offset(&topic, p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut got: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut batches = BTreeSet::new();
    let mut messages = 0;
    let mut key_partitions: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
    let start_t = Instant::now();
    while got.len() < want.len() {
        assert!(
            start_t.elapsed() < Duration::from_secs(60),
            "read {} of {} rows; status: {}",
            got.len(),
            want.len(),
            weir.status_json()
        );
        let Some(m) = c.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m.unwrap();
        messages += 1;
        let v: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
        let key = m.key().map(|k| String::from_utf8(k.to_vec()).unwrap());
        assert_eq!(
            v["customer"].as_str().map(str::to_owned),
            key,
            "the key is the customer column: {v}"
        );
        if let Some(k) = &key {
            key_partitions
                .entry(k.clone())
                .or_default()
                .insert(m.partition());
        }
        let h = m.headers().expect("headers");
        let batch = h
            .iter()
            .find(|h| h.key == "weir.batch")
            .and_then(|h| h.value)
            .map(|b| String::from_utf8(b.to_vec()).unwrap())
            .expect("a weir.batch header");
        batches.insert(batch.parse::<u64>().unwrap());
        got.insert(v["order_id"].as_str().unwrap().to_owned(), key);
    }
    weir.stop();
    weir.join();
    assert_eq!(got, want);
    assert_eq!(messages, want.len(), "a row was produced twice");
    assert!(!batches.is_empty());
    // Kafka's partitioner keeps each key in one partition.
    for (k, ps) in key_partitions {
        assert_eq!(ps.len(), 1, "key {k} in partitions {ps:?}");
    }
}

#[test]
fn config_mistakes_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "brokers = \"localhost\"\ntopic = \"t\"",
            "sources.orders.brokers: `localhost` has no port",
        ),
        (
            "brokers = \"h:1\"",
            "sources.orders.topic: expected the Kafka topic",
        ),
        (
            "brokers = \"h:1\"\ntopic = \"a\"\ntopics = [\"b\"]",
            "sources.orders.topics: set either",
        ),
        (
            "brokers = \"h:1\"\ntopic = \"a,b\"",
            "sources.orders.topic: `a,b`",
        ),
        (
            "brokers = \"h:1\"\ntopic = \"t\"\nproperties = { \"enable.auto.commit\" = \"true\" }",
            "sources.orders.properties: `enable.auto.commit` is set by weir",
        ),
        (
            "brokers = \"h:1\"\ntopic = \"t\"\nproperties = { \"no.such.setting\" = \"1\" }",
            "sources.orders.properties.\"no.such.setting\"",
        ),
        (
            "brokers = \"h:1\"\ntopic = \"t\"\nstart = \"now\"",
            "earliest",
        ),
    ];
    for (i, (source, want)) in cases.iter().enumerate() {
        let d = dir.path().join(format!("c{i}"));
        // `topic = "t"` in the template is replaced by the case's own keys.
        let config = project(&d, "h:1", "t", "");
        let toml = std::fs::read_to_string(&config)
            .unwrap()
            .replace("brokers = \"h:1\"\ntopic = \"t\"\n", &format!("{source}\n"));
        std::fs::write(&config, toml).unwrap();
        let out = weir_cli(&["validate"], &config);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "case {i} was accepted");
        assert!(err.contains(want), "case {i}: expected `{want}` in: {err}");
    }
    // A sink's mistakes too.
    let d = dir.path().join("sink");
    let config = project(&d, "h:1", "t", "");
    let mut toml = std::fs::read_to_string(&config).unwrap();
    toml.push_str(
        "\n[sinks.out]\ntype = \"kafka\"\nfrom = \"silver_orders\"\nbrokers = \"h:1\"\ntopic = \"out\"\nproperties = { acks = \"1\" }\n",
    );
    std::fs::write(&config, toml).unwrap();
    let out = weir_cli(&["validate"], &config);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("sinks.out.properties: `acks` is set by weir"),
        "{err}"
    );
}

/// Kafka → Delta throughput: `WEIR_TEST_KAFKA_BROKERS=127.0.0.1:9092 cargo test --workspace
/// --features weir/kafka --test kafka -- --ignored --nocapture kafka_to_delta_throughput`
/// (`WEIR_KAFKA_BENCH_EVENTS` sets the number of messages, 500 000 by default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn kafka_to_delta_throughput() {
    let Some(brokers) = brokers() else { return };
    let n: u32 = std::env::var("WEIR_KAFKA_BENCH_EVENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500_000);
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("weir-bench");
    create_topic(&brokers, &topic, 4).await;
    let started = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(50_000) {
        produce(
            &brokers,
            &topic,
            &orders("b", chunk[0]..chunk[chunk.len() - 1] + 1),
        )
        .await;
    }
    let produce_s = started.elapsed().as_secs_f64();
    let config = project(dir.path(), &brokers, &topic, "partitions = 4");
    let started = Instant::now();
    let weir = start(&config);
    wait_rows(
        &config,
        Some(&weir),
        i64::from(n),
        Duration::from_secs(1800),
    )
    .await;
    let secs = started.elapsed().as_secs_f64();
    weir.stop();
    weir.join();
    eprintln!(
        "kafka → delta: {n} messages in {secs:.1} s = {:.0} events/s (producing them took {produce_s:.1} s); profile: {}",
        f64::from(n) / secs,
        if cfg!(debug_assertions) {
            "debug (dependencies at opt-level 2)"
        } else {
            "release"
        }
    );
}
