//! The `kafka` source: every message of its Kafka topics becomes one log record, exactly
//! once, however often weir crashes.
//!
//! **Records.** A message becomes a JSON object:
//!
//! ```json
//! {"topic": "orders", "partition": 3, "offset": 1042, "key": "c-17",
//!  "timestamp": 1768435200000, "value": {"order_id": "o-9", "amount": 12.5}}
//! ```
//!
//! `value` is the payload as JSON when it parses as JSON (an object, or any other JSON value),
//! else the payload as text; `null` for a message without a payload (a tombstone). `key` is
//! the key as text (`null` without one); a key that is not UTF-8 is stored as lowercase hex in
//! `key_hex` instead. `timestamp` is the message's Kafka timestamp in ms since the epoch
//! (`null` when the broker has none). A table reads the payload's fields with dotted names:
//! `schema = "value.order_id string, value.amount double, partition bigint, offset bigint"`
//! and `SELECT "value.order_id" AS order_id, ... FROM orders`. A payload that is not UTF-8
//! goes to the dead-letter topic, with `<topic>/<partition>@<offset>` as its offset.
//!
//! **Exactly once.** Kafka's own offset commits are not what weir resumes from: the position
//! of each message travels inside its record (`partition`, `offset`), so the log and the
//! position are written by the same append and cannot disagree after a crash. On start the
//! source finds the last offset stored for each Kafka partition ([`super::positions`]) and
//! reads on from the next one; a crash between the append and anything after it re-reads
//! nothing that was stored and loses nothing that was not. Records of one Kafka partition all
//! go to one weir partition (keyed `<topic>/<partition>`), in order. Kafka partitions with
//! nothing stored yet start at `start`: `earliest` (the default) or `latest`; ones that
//! appear while weir runs start at the beginning. A stored position that Kafka no longer
//! has (deleted by retention) restarts at the earliest message still there.
//!
//! **Consumer group.** weir reads every partition of its topics itself (it does not join the
//! group, so there is no rebalancing) and, after each append, commits the next offsets to the
//! group `group` (`weir-<source>` by default), only so that Kafka tools show the lag. Those
//! commits are never read back.
//!
//! **Failures.** Brokers that cannot be reached and a topic that does not exist show in the
//! source's health in `/v1/status`; a failed group commit is only logged (once at warn, then
//! at debug), since it affects the lag Kafka tools show and never what weir reads next.
//! librdkafka reconnects by itself and
//! metadata is fetched again with [`Backoff`] (200 ms doubling to 5 s), then every 10 s to
//! pick up partitions added to a topic. Writing to the log is retried until it succeeds.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::Message;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use super::positions::{self, Positions, record_key};
use super::{Reserved, check_brokers, check_config, check_topic_name, client_config, describe};
use crate::dlq::RejectReason;
use crate::error::{ConnectorError, Result};
use crate::source::{Appender, Backoff, OutRecord, PullSource, SourceContext, SourceHealth};

/// `[sources.<name>] type = "kafka"`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap brokers, `host:port` separated by commas (`"k1:9092,k2:9092"`); `${ENV}` is
    /// substituted at start.
    pub brokers: String,
    /// The Kafka topic to read (or `topics` for several).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Kafka topics to read, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topics: Vec<String>,
    /// Consumer group the read offsets are committed to (for lag in Kafka tools; weir
    /// resumes from its own log). Default `weir-<source>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Partitions of the source's weir topic (each Kafka partition goes to one of them).
    #[serde(default = "default_partitions")]
    pub partitions: u32,
    /// Where to begin in Kafka partitions weir has stored nothing of: `earliest` or `latest`.
    #[serde(default)]
    pub start: StartAt,
    /// Extra librdkafka consumer properties, e.g. `{ "security.protocol" = "sasl_plaintext",
    /// "sasl.mechanism" = "PLAIN", "sasl.username" = "weir", "sasl.password" = "${KAFKA_PW}" }`;
    /// values get `${ENV}` substitution.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
}

/// Where a Kafka partition without a stored position begins.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartAt {
    /// The oldest message Kafka still has.
    #[default]
    Earliest,
    /// Only messages produced from now on.
    Latest,
}

fn default_partitions() -> u32 {
    1
}

/// Properties weir sets on the consumer itself.
const RESERVED: Reserved = &[
    ("bootstrap.servers", "use `brokers`"),
    ("group.id", "use `group`"),
    (
        "enable.auto.commit",
        "weir commits offsets itself, after storing the messages",
    ),
    (
        "enable.auto.offset.store",
        "weir commits offsets itself, after storing the messages",
    ),
    ("auto.offset.reset", "use `start`"),
    ("enable.partition.eof", "weir reads partitions continuously"),
];

/// Most messages stored by one append.
const MAX_BATCH: usize = 10_000;
/// Most payload bytes stored by one append (one log frame, so an append is all or nothing).
const MAX_BATCH_BYTES: usize = 4 << 20;
/// How long a batch waits for more messages after its first.
const LINGER: Duration = Duration::from_millis(20);
/// Longest pause between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Interval of metadata fetches (new partitions, broker liveness) while all is well.
const REFRESH: Duration = Duration::from_secs(10);
/// Longest wait for metadata.
const METADATA_TIMEOUT: Duration = Duration::from_secs(3);

impl KafkaConfig {
    /// The Kafka topics read, from `topic` or `topics`.
    pub fn topic_names(&self) -> Vec<&str> {
        self.topic
            .iter()
            .chain(&self.topics)
            .map(String::as_str)
            .collect()
    }

    /// The consumer group offsets are committed to.
    pub fn group_id(&self, name: &str) -> String {
        self.group.clone().unwrap_or_else(|| format!("weir-{name}"))
    }

    /// Checks the fields without IO; errors name the key.
    pub fn validate(&self, name: &str) -> Result<(), String> {
        let key = |k: &str| format!("sources.{name}.{k}");
        check_brokers(&key("brokers"), &self.brokers)?;
        match (&self.topic, self.topics.is_empty()) {
            (Some(_), false) => {
                return Err(format!(
                    "{}: set either `topic` or `topics`, not both",
                    key("topics")
                ));
            }
            (None, true) => {
                return Err(format!(
                    "{}: expected the Kafka topic to read, e.g. topic = \"orders\" (or topics = [\"a\", \"b\"])",
                    key("topic")
                ));
            }
            _ => {}
        }
        let which = if self.topic.is_some() {
            key("topic")
        } else {
            key("topics")
        };
        let names = self.topic_names();
        for (i, t) in names.iter().enumerate() {
            check_topic_name(t).map_err(|m| format!("{which}: {m}"))?;
            if names[..i].contains(t) {
                return Err(format!("{which}: `{t}` is listed twice"));
            }
        }
        if let Some(g) = &self.group
            && g.trim().is_empty()
        {
            return Err(format!(
                "{}: expected a consumer group id, got an empty string",
                key("group")
            ));
        }
        check_config(&format!("sources.{name}"), &self.properties, RESERVED)
    }

    /// The running source; reads `${ENV}` but does no network IO (it connects in `run`).
    pub fn build(&self, name: &str) -> Result<KafkaSource> {
        let config_err = |reason| ConnectorError::Config {
            source_name: name.to_owned(),
            reason,
        };
        self.validate(name).map_err(config_err)?;
        let settings = [
            ("group.id", self.group_id(name)),
            ("enable.auto.commit", "false".to_owned()),
            ("enable.auto.offset.store", "false".to_owned()),
            // Only for a stored position Kafka no longer has; see the module doc.
            ("auto.offset.reset", "earliest".to_owned()),
            ("client.id", format!("weir-{name}")),
        ];
        let client = client_config(
            &format!("sources.{name}"),
            &self.brokers,
            &self.properties,
            RESERVED,
            &settings,
        )
        .map_err(config_err)?;
        Ok(KafkaSource {
            name: name.to_owned(),
            topics: self.topic_names().iter().map(|t| (*t).to_owned()).collect(),
            start: self.start,
            brokers: client
                .get("bootstrap.servers")
                .unwrap_or_default()
                .to_owned(),
            client,
        })
    }
}

/// A running `kafka` source.
pub struct KafkaSource {
    name: String,
    topics: Vec<String>,
    start: StartAt,
    brokers: String,
    client: ClientConfig,
}

/// Receives librdkafka's logs, errors and commit results.
struct Context {
    name: String,
    health: Arc<SourceHealth>,
    brokers: String,
    /// Whether a failed commit was logged at warn level already (the next ones go to debug).
    commit_warned: AtomicBool,
}

impl ClientContext for Context {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        super::log_line(&self.name, level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let msg = format!("brokers {}: {}: {reason}", self.brokers, describe(&error));
        tracing::warn!(source = %self.name, error = %msg, "kafka client error");
        self.health.failed(&msg);
    }
}

impl ConsumerContext for Context {
    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(e) = result {
            let first = !self.commit_warned.swap(true, Ordering::Relaxed);
            if first {
                tracing::warn!(source = %self.name, error = %describe(&e), "committing offsets to the consumer group failed (they only show the lag; weir resumes from its log)");
            } else {
                tracing::debug!(source = %self.name, error = %describe(&e), "committing offsets failed");
            }
        }
    }
}

/// A message's Kafka topic, partition and offset.
type KafkaPosition = (String, i32, i64);

/// One message, ready to be stored.
enum Taken {
    Record {
        topic: String,
        partition: i32,
        offset: i64,
        record: OutRecord,
    },
    Dead {
        topic: String,
        partition: i32,
        offset: i64,
        detail: String,
        raw: Vec<u8>,
    },
}

impl PullSource for KafkaSource {
    fn run(&mut self, ctx: &SourceContext) -> Result<()> {
        let appender = ctx.appender();
        let mut positions = Positions::recover(
            &self.name,
            appender.topic(),
            appender.dead_letter_topic(),
            &ctx.state_dir,
        )?;
        let context = Context {
            name: self.name.clone(),
            health: ctx.health.clone(),
            brokers: self.brokers.clone(),
            commit_warned: AtomicBool::new(false),
        };
        let consumer: BaseConsumer<Context> =
            self.client
                .create_with_context(context)
                .map_err(|e| ConnectorError::Config {
                    source_name: self.name.clone(),
                    reason: format!("cannot create the Kafka consumer: {}", describe(&e)),
                })?;
        tracing::info!(source = %self.name, brokers = %self.brokers, topics = ?self.topics, "kafka source starting");
        let mut assigned: BTreeSet<(String, i32)> = BTreeSet::new();
        let mut seen_topics: BTreeSet<String> = BTreeSet::new();
        let mut backoff = Backoff::new(MAX_BACKOFF);
        let mut refresh_at = Instant::now();
        let mut store_backoff = Backoff::new(MAX_BACKOFF);
        while !ctx.stopping() {
            if Instant::now() >= refresh_at {
                match self.refresh(&consumer, &mut assigned, &mut seen_topics, &positions) {
                    Ok(()) => {
                        ctx.health.ok();
                        backoff.reset();
                        refresh_at = Instant::now() + REFRESH;
                    }
                    Err(reason) => {
                        tracing::warn!(source = %self.name, error = %reason, "kafka metadata");
                        ctx.health.failed(&reason);
                        refresh_at = Instant::now() + backoff.next_delay();
                    }
                }
            }
            if assigned.is_empty() {
                ctx.sleep(
                    refresh_at
                        .saturating_duration_since(Instant::now())
                        .min(Duration::from_millis(100)),
                );
                continue;
            }
            let batch = self.poll_batch(&consumer, ctx);
            if batch.is_empty() {
                continue;
            }
            if !self.store(ctx, &appender, batch, &mut positions, &mut store_backoff)? {
                break;
            }
            ctx.health.ok();
            self.commit(&consumer, &positions);
            positions.save(appender.topic(), appender.dead_letter_topic(), false)?;
        }
        positions.save(appender.topic(), appender.dead_letter_topic(), true)?;
        tracing::info!(source = %self.name, "kafka source stopped");
        Ok(())
    }
}

impl KafkaSource {
    /// Fetches the topics' metadata and assigns partitions not yet assigned, each at its
    /// stored position (or `start`). Errs with a message for status when the brokers cannot
    /// be reached or a topic does not exist (after assigning what it could).
    fn refresh(
        &self,
        consumer: &BaseConsumer<Context>,
        assigned: &mut BTreeSet<(String, i32)>,
        seen_topics: &mut BTreeSet<String>,
        positions: &Positions,
    ) -> std::result::Result<(), String> {
        let mut problems = Vec::new();
        let mut tpl = TopicPartitionList::new();
        let mut added = Vec::new();
        for topic in &self.topics {
            let md = match consumer.fetch_metadata(Some(topic), METADATA_TIMEOUT) {
                Ok(md) => md,
                Err(e) => {
                    return Err(format!(
                        "cannot reach the Kafka brokers at {}: {}",
                        self.brokers,
                        describe(&e)
                    ));
                }
            };
            let Some(t) = md.topics().iter().find(|t| t.name() == topic) else {
                problems.push(format!(
                    "topic `{topic}` is missing from the brokers' metadata"
                ));
                continue;
            };
            if let Some(err) = t.error() {
                let code = RDKafkaErrorCode::from(err);
                problems.push(if code == RDKafkaErrorCode::UnknownTopicOrPartition {
                    format!(
                        "topic `{topic}` does not exist on the brokers at {}",
                        self.brokers
                    )
                } else {
                    format!("topic `{topic}`: {code}")
                });
                continue;
            }
            if t.partitions().is_empty() {
                problems.push(format!(
                    "topic `{topic}` does not exist on the brokers at {} (no partitions)",
                    self.brokers
                ));
                continue;
            }
            // Partitions of a topic seen before in this run are new: read them whole.
            let known_topic = seen_topics.contains(topic);
            for p in t.partitions() {
                let tp = (topic.clone(), p.id());
                if assigned.contains(&tp) {
                    continue;
                }
                let offset = match positions.next(topic, p.id()) {
                    Some(n) => Offset::Offset(n),
                    None if known_topic => Offset::Beginning,
                    None => match self.start {
                        StartAt::Earliest => Offset::Beginning,
                        // The partition's end now, as a number: librdkafka's logical
                        // `End` delivered every later message twice from one broker tested.
                        StartAt::Latest => {
                            let (_, high) = consumer
                                .fetch_watermarks(topic, p.id(), METADATA_TIMEOUT)
                                .map_err(|e| {
                                    format!(
                                        "reading the end of {topic}/{}: {}",
                                        p.id(),
                                        describe(&e)
                                    )
                                })?;
                            Offset::Offset(high)
                        }
                    },
                };
                tpl.add_partition_offset(topic, p.id(), offset)
                    .map_err(|e| format!("assigning {topic}/{}: {}", p.id(), describe(&e)))?;
                added.push((tp, offset));
            }
            seen_topics.insert(topic.clone());
        }
        if !added.is_empty() {
            consumer
                .incremental_assign(&tpl)
                .map_err(|e| format!("assigning partitions: {}", describe(&e)))?;
            for (tp, offset) in added {
                tracing::info!(source = %self.name, topic = %tp.0, partition = tp.1, from = ?offset, "reading kafka partition");
                assigned.insert(tp);
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    /// Polls messages for one append: waits up to 100 ms for the first, then takes what
    /// arrives within [`LINGER`], up to [`MAX_BATCH`] messages or [`MAX_BATCH_BYTES`].
    fn poll_batch(&self, consumer: &BaseConsumer<Context>, ctx: &SourceContext) -> Vec<Taken> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let mut deadline = Instant::now() + Duration::from_millis(100);
        while out.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
            let wait = deadline.saturating_duration_since(Instant::now());
            match consumer.poll(wait) {
                None => break,
                Some(Ok(m)) => {
                    if out.is_empty() {
                        deadline = Instant::now() + LINGER;
                    }
                    bytes += m.payload_len() + m.key_len();
                    out.push(take(
                        m.topic(),
                        m.partition(),
                        m.offset(),
                        m.key(),
                        m.payload(),
                        m.timestamp().to_millis(),
                    ));
                }
                Some(Err(KafkaError::PartitionEOF(_))) => {}
                Some(Err(e)) => {
                    let msg = format!("brokers {}: {}", self.brokers, describe(&e));
                    tracing::warn!(source = %self.name, error = %msg, "kafka consumer error");
                    ctx.health.failed(&msg);
                    break;
                }
            }
            if wait.is_zero() {
                break;
            }
        }
        out
    }

    /// Stores a batch: dead letters first, then the records, one append per weir partition.
    /// Returns false when weir stops before all is stored (the rest is read again on the next
    /// start). A failed append is retried with only the records that did not make it.
    fn store(
        &self,
        ctx: &SourceContext,
        appender: &Appender,
        batch: Vec<Taken>,
        positions: &mut Positions,
        backoff: &mut Backoff,
    ) -> Result<bool> {
        let topic = appender.topic().clone();
        // Per weir partition: the Kafka positions of its records, and the records.
        let mut groups: BTreeMap<u32, (Vec<KafkaPosition>, Vec<OutRecord>)> = BTreeMap::new();
        for t in batch {
            match t {
                Taken::Dead {
                    topic: kt,
                    partition,
                    offset,
                    detail,
                    raw,
                } => {
                    let at = dlq_offset(&kt, partition, offset);
                    loop {
                        match appender.dead_letter_at(
                            RejectReason::NotUtf8,
                            detail.clone(),
                            &raw,
                            Some(&at),
                        ) {
                            Ok(()) => break,
                            Err(e) => {
                                if !self.failed_write(ctx, &e, backoff)? {
                                    return Ok(false);
                                }
                            }
                        }
                    }
                    positions.taken(&kt, partition, offset);
                }
                Taken::Record {
                    topic: kt,
                    partition,
                    offset,
                    record,
                } => {
                    let p = topic.partition_for(record.key.as_deref());
                    let g = groups.entry(p).or_default();
                    g.0.push((kt, partition, offset));
                    g.1.push(record);
                }
            }
        }
        for (p, (mut pos, mut recs)) in groups {
            let part = topic.partition(p).ok_or_else(|| ConnectorError::Config {
                source_name: self.name.clone(),
                reason: format!("partition {p} of the source's topic is missing"),
            })?;
            let before = part.end_offset();
            loop {
                match appender.append(&recs) {
                    Ok(()) => break,
                    Err(e) => {
                        if !self.failed_write(ctx, &e, backoff)? {
                            return Ok(false);
                        }
                        // Whatever of the failed append became durable is not appended again.
                        let mut landed: BTreeMap<(String, i32), i64> = BTreeMap::new();
                        positions::scan(
                            &self.name,
                            part,
                            before,
                            part.end_offset(),
                            |t, kp, o| {
                                landed.insert((t.to_owned(), kp), o);
                            },
                        )?;
                        let mut i = 0;
                        recs.retain(|_| {
                            let (t, kp, o) = &pos[i];
                            i += 1;
                            landed.get(&(t.clone(), *kp)).is_none_or(|l| o > l)
                        });
                        pos.retain(|(t, kp, o)| {
                            landed.get(&(t.clone(), *kp)).is_none_or(|l| o > l)
                        });
                        for ((t, kp), o) in landed {
                            positions.taken(&t, kp, o);
                        }
                        if recs.is_empty() {
                            break;
                        }
                    }
                }
            }
            for (t, kp, o) in &pos {
                positions.taken(t, *kp, *o);
            }
        }
        backoff.reset();
        Ok(true)
    }

    /// Reports a failed log write and waits before the retry. Ok(false) when weir stops
    /// first; Err when a retry cannot help.
    fn failed_write(
        &self,
        ctx: &SourceContext,
        e: &ConnectorError,
        backoff: &mut Backoff,
    ) -> Result<bool> {
        if e.kind() != weir_core::ErrorKind::External {
            return Err(ConnectorError::Config {
                source_name: self.name.clone(),
                reason: format!("storing kafka messages failed: {e}"),
            });
        }
        tracing::error!(source = %self.name, error = %e, "storing kafka messages failed; retrying");
        ctx.health.failed(&e.to_string());
        Ok(ctx.sleep(backoff.next_delay()))
    }

    /// Commits the next offsets of every partition to the group, for lag in Kafka tools.
    fn commit(&self, consumer: &BaseConsumer<Context>, positions: &Positions) {
        let mut tpl = TopicPartitionList::new();
        for (t, p, next) in positions.all_next() {
            if tpl
                .add_partition_offset(t, p, Offset::Offset(next))
                .is_err()
            {
                return;
            }
        }
        if tpl.count() == 0 {
            return;
        }
        if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
            tracing::debug!(source = %self.name, error = %describe(&e), "committing offsets failed");
        }
    }
}

/// The dead-letter offset of a message: `<topic>/<partition>@<offset>`.
pub fn dlq_offset(topic: &str, partition: i32, offset: i64) -> String {
    format!("{topic}/{partition}@{offset}")
}

fn take(
    topic: &str,
    partition: i32,
    offset: i64,
    key: Option<&[u8]>,
    payload: Option<&[u8]>,
    timestamp: Option<i64>,
) -> Taken {
    let text = match payload.map(std::str::from_utf8) {
        Some(Err(e)) => {
            return Taken::Dead {
                topic: topic.to_owned(),
                partition,
                offset,
                detail: format!(
                    "message {} is not UTF-8: {e}",
                    dlq_offset(topic, partition, offset)
                ),
                raw: payload.unwrap_or_default().to_vec(),
            };
        }
        Some(Ok(t)) => Some(t),
        None => None,
    };
    Taken::Record {
        topic: topic.to_owned(),
        partition,
        offset,
        record: OutRecord {
            key: Some(record_key(topic, partition).into_bytes()),
            value: record_value(topic, partition, offset, key, timestamp, text),
            timestamp_ms: weir_core::now_ms(),
        },
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[derive(Serialize)]
struct Stored<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
    key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_hex: Option<String>,
    timestamp: Option<i64>,
}

/// The record stored for a message (see the module doc for the shape).
pub fn record_value(
    topic: &str,
    partition: i32,
    offset: i64,
    key: Option<&[u8]>,
    timestamp: Option<i64>,
    payload: Option<&str>,
) -> Vec<u8> {
    let (key, key_hex) = match key.map(|k| (k, std::str::from_utf8(k))) {
        None => (None, None),
        Some((_, Ok(k))) => (Some(k), None),
        Some((raw, Err(_))) => (None, Some(hex(raw))),
    };
    let s = Stored {
        topic,
        partition,
        offset,
        key,
        key_hex,
        timestamp,
    };
    // Strings and numbers always serialize.
    let mut out = serde_json::to_vec(&s).unwrap_or_default();
    // The payload goes in as its own JSON text when it is JSON (kept byte for byte: no
    // reordered keys, no rounded numbers), else as a string.
    out.pop(); // the closing brace
    out.extend_from_slice(b",\"value\":");
    match payload {
        None => out.extend_from_slice(b"null"),
        Some(p) if serde_json::from_str::<serde::de::IgnoredAny>(p.trim()).is_ok() => {
            out.extend_from_slice(p.trim().as_bytes());
        }
        Some(p) => out.extend_from_slice(&serde_json::to_vec(p).unwrap_or_default()),
    }
    out.push(b'}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn parse(v: &[u8]) -> Value {
        serde_json::from_slice(v).unwrap()
    }

    #[test]
    fn records_carry_the_position_and_the_payload() {
        let v = parse(&record_value(
            "o",
            3,
            1042,
            Some(b"c-17"),
            Some(7),
            Some(r#" {"a": [1, 2.50]} "#),
        ));
        assert_eq!(
            v,
            json!({"topic": "o", "partition": 3, "offset": 1042, "key": "c-17", "timestamp": 7, "value": {"a": [1, 2.50]}})
        );
        let v = parse(&record_value("o", 0, 0, None, None, Some("21.5")));
        assert_eq!(v["value"], json!(21.5));
        assert_eq!(v["key"], Value::Null);
        assert_eq!(v["timestamp"], Value::Null);
        let v = parse(&record_value("o", 0, 0, None, None, Some("on fire")));
        assert_eq!(v["value"], "on fire");
        let v = parse(&record_value("o", 0, 0, None, None, Some("")));
        assert_eq!(v["value"], "");
        let v = parse(&record_value("o", 0, 0, Some(&[0xff, 0x01]), None, None));
        assert_eq!(v["value"], Value::Null, "a tombstone");
        assert_eq!(v["key"], Value::Null);
        assert_eq!(v["key_hex"], "ff01");
        // Numbers keep their text exactly.
        let raw = String::from_utf8(record_value(
            "o",
            0,
            0,
            None,
            None,
            Some("{\"n\":12345678901234567890}"),
        ))
        .unwrap();
        assert!(raw.contains("12345678901234567890"), "{raw}");
    }

    #[test]
    fn payloads_that_are_not_utf8_are_dead_letters() {
        match take("o", 2, 9, None, Some(&[b'x', 0xff]), None) {
            Taken::Dead { detail, raw, .. } => {
                assert!(detail.starts_with("message o/2@9 is not UTF-8"), "{detail}");
                assert_eq!(raw, vec![b'x', 0xff]);
            }
            Taken::Record { .. } => panic!("stored"),
        }
        match take("o", 2, 9, Some(b"k"), Some(b"{}"), Some(1)) {
            Taken::Record { record, .. } => assert_eq!(record.key.as_deref(), Some(&b"o/2"[..])),
            Taken::Dead { .. } => panic!("dead"),
        }
    }

    fn cfg(json: &str) -> KafkaConfig {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn config_errors_name_the_key() {
        let ok = cfg(r#"{"brokers": "127.0.0.1:9092", "topic": "orders"}"#);
        assert!(ok.validate("o").is_ok());
        assert_eq!(ok.group_id("o"), "weir-o");
        assert_eq!(ok.start, StartAt::Earliest);
        let c = ok.build("o").unwrap();
        assert_eq!(c.topics, vec!["orders"]);
        for (json, want) in [
            (
                r#"{"brokers": "", "topic": "t"}"#,
                "sources.o.brokers: expected brokers",
            ),
            (
                r#"{"brokers": "h", "topic": "t"}"#,
                "sources.o.brokers: `h` has no port",
            ),
            (
                r#"{"brokers": "h:1"}"#,
                "sources.o.topic: expected the Kafka topic",
            ),
            (
                r#"{"brokers": "h:1", "topic": "a", "topics": ["b"]}"#,
                "sources.o.topics: set either",
            ),
            (
                r#"{"brokers": "h:1", "topics": ["a", "a"]}"#,
                "sources.o.topics: `a` is listed twice",
            ),
            (
                r#"{"brokers": "h:1", "topic": "a b"}"#,
                "sources.o.topic: `a b`",
            ),
            (
                r#"{"brokers": "h:1", "topic": "a", "group": " "}"#,
                "sources.o.group: expected",
            ),
            (
                r#"{"brokers": "h:1", "topic": "a", "properties": {"enable.auto.commit": "true"}}"#,
                "sources.o.properties: `enable.auto.commit` is set by weir",
            ),
            (
                r#"{"brokers": "h:1", "topic": "a", "properties": {"group.id": "x"}}"#,
                "sources.o.properties: `group.id` is set by weir; use `group`",
            ),
            (
                r#"{"brokers": "h:1", "topic": "a", "properties": {"fetch.wait.max.ms": "soon"}}"#,
                "sources.o.properties.\"fetch.wait.max.ms\": ",
            ),
        ] {
            let e = cfg(json).validate("o").unwrap_err();
            assert!(e.starts_with(want), "{json}: {e}");
        }
        let e = serde_json::from_str::<KafkaConfig>(
            r#"{"brokers": "h:1", "topic": "a", "start": "middle"}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("earliest") && e.contains("latest"), "{e}");
        assert!(
            serde_json::from_str::<KafkaConfig>(r#"{"brokers": "h:1", "topik": "a"}"#).is_err()
        );
        let env = cfg(r#"{"brokers": "${WEIR_SURELY_UNSET_KAFKA}", "topic": "a"}"#);
        assert!(env.validate("o").is_ok(), "checked at start");
        let Err(e) = env.build("o") else {
            panic!("built with an unset variable")
        };
        assert!(e.to_string().contains("WEIR_SURELY_UNSET_KAFKA"), "{e}");
    }
}
