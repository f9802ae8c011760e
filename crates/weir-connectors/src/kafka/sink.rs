//! The `kafka` sink: each row of a table produced as one JSON message to a Kafka topic, with
//! the idempotent producer, at least once.
//!
//! A row becomes the JSON object Arrow's JSON writer makes of it (every column, nulls as
//! `null`, timestamps as RFC 3339 text). With `key = "column"`, the message key is that
//! column's value as text (no key when it is null), so Kafka's partitioner keeps all rows of
//! one key in one partition, in order. Every message carries the header `weir.batch`: the id
//! of the micro-batch the row came from, as decimal text.
//!
//! [`Sink::write`] hands every row of the batch to the producer and returns once Kafka has
//! acknowledged each (`acks = all`: written to every in-sync replica). The producer is
//! idempotent (`enable.idempotence = true`), so its own retries after a lost acknowledgement
//! do not write a message twice. A delivery that fails (the brokers unreachable for
//! `timeout`, a topic that does not exist) makes the write fail with a retryable error, and the
//! pipeline writes the whole batch again.
//!
//! **At least once, not exactly once.** Rows of a batch can reach the topic twice: when a
//! retry follows a failure in the middle of a batch, and when weir restarts after a crash and
//! the pipeline replays its last batch (with the same batch id and rows). Consumers that must
//! not count a row twice can drop messages whose `weir.batch` header they have already seen
//! complete, or deduplicate on a column of the row. Kafka transactions (a transactional
//! producer writing the batch id and the rows atomically) would make it exactly once; weir
//! does not use them.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use arrow::datatypes::Schema;
use arrow::json::writer::{LineDelimited, WriterBuilder};
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::future_producer::OwnedDeliveryResult;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use serde::{Deserialize, Serialize};
use weir_core::HumanDuration;

use super::{Reserved, check_brokers, check_config, check_topic_name, client_config, describe};
use crate::error::{ConnectorError, Result};
use crate::sink::{Sink, SinkWrite};

/// `[sinks.<name>] type = "kafka"`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSinkConfig {
    /// The weir table whose rows are produced (a streaming table).
    pub from: String,
    /// Bootstrap brokers, `host:port` separated by commas; `${ENV}` is substituted at start.
    pub brokers: String,
    /// The Kafka topic to produce to (it must exist).
    pub topic: String,
    /// Column whose value (as text) is each message's key; without it messages have no key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Extra librdkafka producer properties (e.g. `compression.type`, security settings);
    /// values get `${ENV}` substitution.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
    /// Longest wait for Kafka to acknowledge a message (librdkafka's `message.timeout.ms`)
    /// before the batch is retried.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
}

fn default_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(60))
}

/// The header naming the micro-batch a message came from.
pub const BATCH_HEADER: &str = "weir.batch";

/// Properties weir sets on the producer itself.
const RESERVED: Reserved = &[
    ("bootstrap.servers", "use `brokers`"),
    ("enable.idempotence", "the producer is always idempotent"),
    (
        "acks",
        "weir always waits for all in-sync replicas (acks = all)",
    ),
    ("request.required.acks", "weir always uses acks = all"),
    ("message.timeout.ms", "use `timeout`"),
    ("delivery.timeout.ms", "use `timeout`"),
    (
        "transactional.id",
        "the sink does not use Kafka transactions",
    ),
];

impl KafkaSinkConfig {
    /// Checks the fields without IO; errors name the key.
    pub fn validate(&self, name: &str) -> Result<(), String> {
        let key = |k: &str| format!("sinks.{name}.{k}");
        check_brokers(&key("brokers"), &self.brokers)?;
        check_topic_name(&self.topic).map_err(|m| format!("{}: {m}", key("topic")))?;
        if let Some(k) = &self.key
            && k.trim().is_empty()
        {
            return Err(format!(
                "{}: expected the name of a column of `{}`, got an empty string",
                key("key"),
                self.from
            ));
        }
        let ms = self.timeout.0.as_millis();
        if !(1..=i32::MAX as u128).contains(&ms) {
            return Err(format!(
                "{}: expected a duration from 1ms to 24 days, got {:?}",
                key("timeout"),
                self.timeout.0
            ));
        }
        check_config(&format!("sinks.{name}"), &self.properties, RESERVED)
    }

    /// The running sink; reads `${ENV}` but does no network IO (it connects on its first
    /// write).
    pub fn build(&self, name: &str) -> Result<KafkaSink> {
        let config_err = |reason| ConnectorError::Config {
            source_name: name.to_owned(),
            reason,
        };
        self.validate(name).map_err(config_err)?;
        let settings = [
            ("enable.idempotence", "true".to_owned()),
            ("acks", "all".to_owned()),
            ("message.timeout.ms", self.timeout.0.as_millis().to_string()),
            ("client.id", format!("weir-sink-{name}")),
        ];
        let client = client_config(
            &format!("sinks.{name}"),
            &self.brokers,
            &self.properties,
            RESERVED,
            &settings,
        )
        .map_err(config_err)?;
        Ok(KafkaSink {
            name: name.to_owned(),
            cfg: self.clone(),
            client,
            producer: None,
        })
    }
}

/// The running `kafka` sink.
pub struct KafkaSink {
    name: String,
    cfg: KafkaSinkConfig,
    client: ClientConfig,
    producer: Option<FutureProducer<Logs>>,
}

/// Sends librdkafka's logs and errors to weir's log.
struct Logs {
    name: String,
}

impl ClientContext for Logs {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        super::log_line(&self.name, level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(sink = %self.name, error = %describe(&error), reason = %reason, "kafka client error");
    }
}

impl KafkaSink {
    /// Each row as (key, JSON object), in order.
    fn messages(&self, rows: &[RecordBatch]) -> Result<Vec<(Option<String>, Vec<u8>)>> {
        let mut out = Vec::new();
        for batch in rows {
            if batch.num_rows() == 0 {
                continue;
            }
            let schema = batch.schema();
            let opts = FormatOptions::default();
            let key = match &self.cfg.key {
                None => None,
                Some(k) => {
                    let i = schema.index_of(k).map_err(|_| ConnectorError::Config {
                        source_name: self.name.clone(),
                        reason: format!(
                            "sinks.{}.key: table `{}` has no column `{k}` (columns: {})",
                            self.name,
                            self.cfg.from,
                            column_list(&schema)
                        ),
                    })?;
                    let col = batch.column(i);
                    let f = ArrayFormatter::try_new(col.as_ref(), &opts).map_err(|e| {
                        ConnectorError::Config {
                            source_name: self.name.clone(),
                            reason: format!(
                                "sinks.{}.key: cannot format column `{k}` as text: {e}",
                                self.name
                            ),
                        }
                    })?;
                    Some((col, f))
                }
            };
            let mut w = WriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, LineDelimited>(Vec::new());
            w.write(batch).map_err(|e| self.encode_error(&e))?;
            w.finish().map_err(|e| self.encode_error(&e))?;
            let json = w.into_inner();
            // JSON text escapes newlines, so each line is one row.
            let lines = json.split(|b| *b == b'\n').filter(|l| !l.is_empty());
            for (row, line) in lines.enumerate() {
                let k = key
                    .as_ref()
                    .and_then(|(col, f)| (!col.is_null(row)).then(|| f.value(row).to_string()));
                out.push((k, line.to_vec()));
            }
        }
        Ok(out)
    }

    fn encode_error(&self, e: &arrow::error::ArrowError) -> ConnectorError {
        ConnectorError::Remote {
            connector: self.name.clone(),
            operation: "encoding rows as JSON".into(),
            reason: e.to_string(),
            retry: false,
        }
    }

    fn producer(&mut self) -> Result<FutureProducer<Logs>> {
        if let Some(p) = &self.producer {
            return Ok(p.clone());
        }
        let p: FutureProducer<Logs> = self
            .client
            .create_with_context(Logs {
                name: self.name.clone(),
            })
            .map_err(|e| ConnectorError::Config {
                source_name: self.name.clone(),
                reason: format!("cannot create the Kafka producer: {}", describe(&e)),
            })?;
        self.producer = Some(p.clone());
        Ok(p)
    }

    /// A delivery failure as a connector error: retryable unless the message or the
    /// permissions are wrong, which a retry cannot fix.
    fn delivery_error(&self, e: &KafkaError) -> ConnectorError {
        let code = e.rdkafka_error_code();
        let retry = !matches!(
            code,
            Some(
                RDKafkaErrorCode::MessageSizeTooLarge
                    | RDKafkaErrorCode::InvalidMessageSize
                    | RDKafkaErrorCode::TopicAuthorizationFailed
                    | RDKafkaErrorCode::ClusterAuthorizationFailed
                    | RDKafkaErrorCode::InvalidRecord
            )
        );
        let mut reason = describe(e);
        if code == Some(RDKafkaErrorCode::UnknownTopicOrPartition)
            || code == Some(RDKafkaErrorCode::UnknownTopic)
        {
            reason = format!("topic `{}` does not exist ({reason})", self.cfg.topic);
        }
        ConnectorError::Remote {
            connector: self.name.clone(),
            operation: format!(
                "producing to topic `{}` at {}",
                self.cfg.topic,
                self.client.get("bootstrap.servers").unwrap_or_default()
            ),
            reason,
            retry,
        }
    }

    /// Produces every message and waits for every acknowledgement.
    async fn produce_all(
        &mut self,
        batch_id: u64,
        messages: Vec<(Option<String>, Vec<u8>)>,
    ) -> Result<()> {
        let producer = self.producer()?;
        let batch = batch_id.to_string();
        let headers = OwnedHeaders::new().insert(Header {
            key: BATCH_HEADER,
            value: Some(batch.as_str()),
        });
        let topic = self.cfg.topic.clone();
        let mut pending = VecDeque::new();
        for (key, payload) in &messages {
            let mut record = FutureRecord::<str, [u8]>::to(&topic)
                .payload(payload.as_slice())
                .headers(headers.clone());
            if let Some(k) = key {
                record = record.key(k.as_str());
            }
            loop {
                match producer.send_result(record) {
                    Ok(delivery) => {
                        pending.push_back(delivery);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        // The producer's queue is full: wait for the oldest delivery first.
                        record = back;
                        match pending.pop_front() {
                            Some(d) => self.delivered(d.await)?,
                            None => tokio::time::sleep(Duration::from_millis(10)).await,
                        }
                    }
                    Err((e, _)) => return Err(self.failed(&e)),
                }
            }
        }
        while let Some(d) = pending.pop_front() {
            self.delivered(d.await)?;
        }
        Ok(())
    }

    /// Checks one delivery; `Err(_)` of the outer result means the producer went away.
    fn delivered<E>(&mut self, r: std::result::Result<OwnedDeliveryResult, E>) -> Result<()> {
        match r {
            Ok(Ok(_)) => Ok(()),
            Ok(Err((e, _))) => Err(self.failed(&e)),
            Err(_) => Err(ConnectorError::Remote {
                connector: self.name.clone(),
                operation: "producing".into(),
                reason: "the producer went away before the delivery was confirmed".into(),
                retry: true,
            }),
        }
    }

    /// The error for a failed delivery; a producer in a fatal state (an idempotent producer
    /// that lost track of its sequence numbers) is dropped, and the retry makes a new one.
    fn failed(&mut self, e: &KafkaError) -> ConnectorError {
        if let Some(p) = &self.producer
            && let Some((code, reason)) = p.client().fatal_error()
        {
            tracing::warn!(sink = %self.name, error = %code, reason = %reason, "the kafka producer failed fatally; making a new one");
            self.producer = None;
        }
        self.delivery_error(e)
    }
}

fn column_list(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[async_trait::async_trait]
impl Sink for KafkaSink {
    async fn write(
        &mut self,
        batch_id: u64,
        _offsets: &str,
        rows: &[RecordBatch],
    ) -> Result<SinkWrite> {
        let messages = self.messages(rows)?;
        let n = messages.len() as u64;
        if n > 0 {
            self.produce_all(batch_id, messages).await?;
        }
        Ok(SinkWrite {
            rows: n,
            skipped: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field};
    use std::sync::Arc;

    fn cfg(json: &str) -> KafkaSinkConfig {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn rows_become_json_objects_keyed_by_a_column() {
        let s = cfg(r#"{"from": "t", "brokers": "h:1", "topic": "out", "key": "id"}"#)
            .build("k")
            .unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
        ]));
        let b = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![Some("a"), None])),
                Arc::new(Int64Array::from(vec![Some(1), None])),
            ],
        )
        .unwrap();
        let m = s.messages(std::slice::from_ref(&b)).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].0.as_deref(), Some("a"));
        assert_eq!(m[0].1, br#"{"id":"a","n":1}"#);
        assert_eq!(m[1].0, None, "a null key is no key");
        assert_eq!(m[1].1, br#"{"id":null,"n":null}"#);

        let s = cfg(r#"{"from": "t", "brokers": "h:1", "topic": "out", "key": "nope"}"#)
            .build("k")
            .unwrap();
        let e = s.messages(&[b]).unwrap_err().to_string();
        assert!(
            e.contains("sinks.k.key: table `t` has no column `nope` (columns: id, n)"),
            "{e}"
        );
    }

    #[test]
    fn config_errors_name_the_key() {
        assert!(
            cfg(r#"{"from": "t", "brokers": "h:1", "topic": "out"}"#)
                .validate("k")
                .is_ok()
        );
        for (json, want) in [
            (
                r#"{"from": "t", "brokers": "h", "topic": "out"}"#,
                "sinks.k.brokers: ",
            ),
            (
                r#"{"from": "t", "brokers": "h:1", "topic": "a/b"}"#,
                "sinks.k.topic: ",
            ),
            (
                r#"{"from": "t", "brokers": "h:1", "topic": "o", "key": ""}"#,
                "sinks.k.key: ",
            ),
            (
                r#"{"from": "t", "brokers": "h:1", "topic": "o", "timeout": "0s"}"#,
                "sinks.k.timeout: ",
            ),
            (
                r#"{"from": "t", "brokers": "h:1", "topic": "o", "properties": {"acks": "1"}}"#,
                "sinks.k.properties: `acks` is set by weir",
            ),
            (
                r#"{"from": "t", "brokers": "h:1", "topic": "o", "properties": {"compression.type": "brotli"}}"#,
                "sinks.k.properties.\"compression.type\": ",
            ),
        ] {
            let e = cfg(json).validate("k").unwrap_err();
            assert!(e.starts_with(want), "{json}: {e}");
        }
        assert!(
            cfg(r#"{"from": "t", "brokers": "h:1", "topic": "o", "properties": {"compression.type": "lz4"}}"#)
                .validate("k")
                .is_ok()
        );
    }
}
