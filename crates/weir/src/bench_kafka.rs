//! `weir bench kafka`: Kafka → log → silver → Delta events/s against a real broker (built with
//! the `kafka` feature). Each run produces `events` JSON orders to a fresh topic, then times
//! two readers of it in one run:
//!
//! - **baseline**: a bare librdkafka consumer reading every message and doing nothing with it,
//!   i.e. how fast the broker hands the topic to one client on this machine;
//! - **weir**: a project whose `kafka` source reads the topic into its log and whose silver
//!   table parses the payloads and commits them to Delta, timed from start until every
//!   message is committed to Delta.
//!
//! The result is the median of each over the runs and their ratio.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use weir_connectors::kafka::rdkafka;
use weir_orchestrator::{Project, Weir};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// Most messages in flight while producing.
const IN_FLIGHT: usize = 20_000;

fn kafka(e: rdkafka::error::KafkaError) -> anyhow::Error {
    anyhow::anyhow!("kafka: {e}")
}

async fn create_topic(brokers: &str, topic: &str, partitions: i32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .map_err(kafka)?;
    let res = admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .map_err(|e| anyhow::anyhow!("cannot create topic {topic} on {brokers}: {e}"))?;
    for r in res {
        r.map_err(|(t, e)| anyhow::anyhow!("cannot create topic {t} on {brokers}: {e}"))?;
    }
    Ok(())
}

async fn produce(brokers: &str, topic: &str, events: u64) -> anyhow::Result<()> {
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .create()
        .map_err(kafka)?;
    let mut pending = Vec::with_capacity(IN_FLIGHT);
    for i in 0..events {
        let key = format!("c{}", i % 997);
        let payload = format!(
            r#"{{"order_id": "o-{i}", "customer": "{key}", "amount": {}.25, "items": {}}}"#,
            i % 500,
            1 + i % 7
        );
        let d = p
            .send_result(FutureRecord::to(topic).key(&key).payload(&payload))
            .map_err(|(e, _)| kafka(e))?;
        pending.push(d);
        if pending.len() >= IN_FLIGHT {
            for d in pending.drain(..) {
                d.await?.map_err(|(e, _)| kafka(e))?;
            }
        }
    }
    for d in pending {
        d.await?.map_err(|(e, _)| kafka(e))?;
    }
    Ok(())
}

/// The baseline: seconds a bare consumer takes to receive every message of `topic`.
fn bare_consumer(brokers: &str, topic: &str, partitions: i32, events: u64) -> anyhow::Result<f64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("{topic}-baseline"))
        .set("enable.auto.commit", "false")
        .create()
        .map_err(kafka)?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .map_err(kafka)?;
    }
    let t0 = Instant::now();
    c.assign(&tpl).map_err(kafka)?;
    let mut n = 0u64;
    let mut bytes = 0usize;
    while n < events {
        match c.poll(Duration::from_secs(1)) {
            Some(Ok(m)) => {
                bytes += m.payload_len();
                n += 1;
            }
            Some(Err(e)) => return Err(kafka(e)),
            None => {
                anyhow::ensure!(
                    t0.elapsed() < Duration::from_secs(600),
                    "the baseline consumer got only {n} of {events} messages in 600 s"
                );
            }
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    std::hint::black_box(bytes);
    Ok(secs)
}

/// weir: seconds from start until every message is committed to Delta through silver.
async fn weir_run(brokers: &str, topic: &str, partitions: i32, events: u64) -> anyhow::Result<f64> {
    let dir = std::env::temp_dir().join(format!("weir-bench-{topic}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("sql"))?;
    std::fs::write(
        dir.join("sql/silver_orders.sql"),
        "SELECT \"value.order_id\" AS order_id, \"value.customer\" AS customer, \
         \"value.amount\" AS amount, \"value.items\" AS items, \"partition\" AS kafka_partition, \
         \"offset\" AS kafka_offset FROM orders",
    )?;
    let config = dir.join("weir.toml");
    std::fs::write(
        &config,
        format!(
            r#"[project]
name = "bench_kafka"

[pipeline]
interval = "100ms"

[sources.orders]
type = "kafka"
brokers = "{brokers}"
topic = "{topic}"
partitions = {partitions}

[tables.silver_orders]
from = "orders"
sql = "sql/silver_orders.sql"
schema = "value.order_id string, value.customer string, value.amount double, value.items bigint, partition bigint, offset bigint"
"#
        ),
    )?;
    let weir = Weir::open(Project::load(&config)?)?;
    let t0 = Instant::now();
    weir.start(Vec::new())?;
    let limit = Duration::from_secs(1800);
    let result = loop {
        let st = weir.status_json();
        if let Some(e) = st["pipeline"]["error"].as_str() {
            break Err(anyhow::anyhow!("pipeline failed: {e}"));
        }
        let done = st["pipeline"]["records_processed"].as_u64().unwrap_or(0);
        if done >= events {
            break Ok(t0.elapsed().as_secs_f64());
        }
        if t0.elapsed() > limit {
            let health = &st["sources"]["orders"]["health"];
            break Err(anyhow::anyhow!(
                "only {done} of {events} messages in Delta after {limit:?}; source health: {health}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    weir.stop();
    let w = weir.clone();
    tokio::task::spawn_blocking(move || w.join()).await?;
    drop(weir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub async fn run(
    brokers: Option<String>,
    events: u64,
    partitions: i32,
    repeat: usize,
) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(events > 0, "--events: expected at least 1 message");
    anyhow::ensure!(
        partitions > 0,
        "--partitions: expected at least 1 partition"
    );
    let brokers = brokers
        .or_else(|| {
            std::env::var("WEIR_KAFKA_BROKERS")
                .ok()
                .filter(|b| !b.is_empty())
        })
        .unwrap_or_else(|| "127.0.0.1:9092".into());
    println!(
        "weir bench kafka: {events} messages on {partitions} partitions per run, {repeat} runs, brokers {brokers}"
    );
    let (mut base, mut weir) = (Vec::new(), Vec::new());
    for r in 0..repeat.max(1) {
        let topic = format!("weir-bench-{}-{r}", std::process::id());
        create_topic(&brokers, &topic, partitions).await?;
        let t0 = Instant::now();
        produce(&brokers, &topic, events).await?;
        let produced = t0.elapsed().as_secs_f64();
        let (b, t, p) = (brokers.clone(), topic.clone(), partitions);
        // Alternated, so neither reader always gets the broker's cold or warm cache.
        let (b_secs, w_secs) = if r % 2 == 0 {
            let b_secs =
                tokio::task::spawn_blocking(move || bare_consumer(&b, &t, p, events)).await??;
            (
                b_secs,
                weir_run(&brokers, &topic, partitions, events).await?,
            )
        } else {
            let w_secs = weir_run(&brokers, &topic, partitions, events).await?;
            let b_secs =
                tokio::task::spawn_blocking(move || bare_consumer(&b, &t, p, events)).await??;
            (b_secs, w_secs)
        };
        let (b_rate, w_rate) = (events as f64 / b_secs, events as f64 / w_secs);
        eprintln!(
            "  run {}: produced in {produced:.1} s; bare consumer {b_rate:.0} msg/s; weir kafka → Delta {w_rate:.0} events/s",
            r + 1
        );
        base.push(b_rate);
        weir.push(w_rate);
    }
    let (b, w) = (median(&mut base), median(&mut weir));
    println!(
        "kafka → Delta (source, log, silver SQL, Delta commit), median of {}: {w:.0} events/s (min {:.0}, max {:.0})",
        weir.len(),
        weir[0],
        weir[weir.len() - 1]
    );
    println!(
        "bare librdkafka consumer on the same topics (the broker's read speed), median: {b:.0} msg/s; weir / bare = {:.2}",
        w / b
    );
    Ok(ExitCode::SUCCESS)
}
