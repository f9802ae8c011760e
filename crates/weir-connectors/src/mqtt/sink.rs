//! The `mqtt` sink: each row of a table published as one JSON object, on a topic built from
//! the row (`topic = "alerts/{device_id}"`), at least once.
//!
//! A row becomes the JSON object Arrow's JSON writer makes of it (every column, nulls as
//! `null`, timestamps as RFC 3339 text). In the topic template, `{column}` is replaced by the
//! row's value of that column as text; a null becomes the empty string, and the MQTT wildcards
//! `+` and `#` (which a published topic cannot hold) become `_`. A template naming a column
//! the table does not have stops the pipeline with an error naming the key and the columns.
//!
//! [`Sink::write`] publishes the batch's rows in order and returns once each is
//! acknowledged: with `qos = 1`, when the broker's PUBACK for every row has arrived; with
//! `qos = 0`, when every row has been written to the connection. Any failure (connection
//! refused or lost, no PUBACK within `timeout`) drops the connection and returns a retryable
//! error, and the pipeline writes the whole batch again on a new connection.
//!
//! **At least once, not exactly once.** MQTT has nowhere to keep a delivered batch id
//! atomically with the messages, so rows of a batch can be published twice: when a retry
//! follows a failure in the middle of a batch, and when weir restarts after a crash and the
//! pipeline replays its last batch. Subscribers that must not count a row twice should
//! deduplicate on a column of the row (an id or a device and timestamp pair).
//!
//! The connection is kept between batches (clean session, client id `weir-sink-<name>-<random>`
//! unless `client_id` is set); one idle for longer than `keep_alive` is replaced before use,
//! since the broker may have dropped it.

use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::time::{Duration, Instant};

use arrow::array::Array;
use arrow::datatypes::Schema;
use arrow::json::writer::{LineDelimited, WriterBuilder};
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use rumqttc::{AsyncClient, ClientError, Event, EventLoop, Outgoing, Packet, QoS};
use serde::{Deserialize, Serialize};
use weir_core::HumanDuration;

use super::{Broker, check_client_id, check_keep_alive, check_qos, check_topic, connection_error};
use crate::error::{ConnectorError, Result};
use crate::sink::{Sink, SinkWrite};

/// `[sinks.<name>] type = "mqtt"`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttSinkConfig {
    /// The weir table whose rows are published (a streaming table).
    pub from: String,
    /// Broker URL, `mqtt://[user[:password]@]host[:port]`; `${ENV}` is substituted at start.
    pub url: String,
    /// User name to log in with; takes precedence over one in the URL. `${ENV}` is substituted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Password to log in with; takes precedence over one in the URL. Write `${ENV}` rather
    /// than the password itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Topic of each row's message; `{column}` is replaced by the row's value of `column`,
    /// e.g. `alerts/{device_id}`.
    pub topic: String,
    /// 1 (each message acknowledged by the broker before the batch counts as delivered) or 0
    /// (fire and forget).
    #[serde(default = "default_qos")]
    pub qos: u8,
    /// Publish with the retain flag, so that the broker keeps the last message of each topic
    /// for new subscribers (e.g. the latest state per device).
    #[serde(default)]
    pub retain: bool,
    /// MQTT client id. Default: `weir-sink-<name>-<random>`, new at every start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Interval of keep-alive pings; a connection idle for longer is replaced before use.
    #[serde(default = "default_keep_alive")]
    pub keep_alive: HumanDuration,
    /// Longest wait for one batch (connect, publish, every PUBACK) before it is retried.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
}

fn default_qos() -> u8 {
    1
}
fn default_keep_alive() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}
fn default_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(60))
}

impl MqttSinkConfig {
    /// Checks the fields without IO; errors name the key.
    pub fn validate(&self, name: &str) -> Result<(), String> {
        let key = |k: &str| format!("sinks.{name}.{k}");
        if self.url.trim().is_empty() {
            return Err(format!(
                "{}: expected a broker URL like mqtt://127.0.0.1:1883",
                key("url")
            ));
        }
        let uses_env = [
            Some(&self.url),
            self.username.as_ref(),
            self.password.as_ref(),
        ]
        .into_iter()
        .flatten()
        .any(|s| s.contains("${"));
        if !uses_env {
            Broker::parse(
                &key("url"),
                &self.url,
                self.username.as_deref(),
                self.password.as_deref(),
            )?;
        }
        TopicTemplate::parse(&self.topic).map_err(|m| format!("{}: {m}", key("topic")))?;
        check_qos(&key("qos"), self.qos)?;
        if let Some(id) = &self.client_id {
            check_client_id(&key("client_id"), id)?;
        }
        check_keep_alive(&key("keep_alive"), self.keep_alive.0)?;
        if self.timeout.0.is_zero() {
            return Err(format!("{}: expected a positive duration", key("timeout")));
        }
        Ok(())
    }

    /// The running sink; reads `${ENV}` but does no network IO (it connects on its first
    /// write).
    pub fn build(&self, name: &str) -> Result<MqttSink> {
        let config_err = |reason| ConnectorError::Config {
            source_name: name.to_owned(),
            reason,
        };
        let broker = Broker::parse(
            &format!("sinks.{name}.url"),
            &self.url,
            self.username.as_deref(),
            self.password.as_deref(),
        )
        .map_err(config_err)?;
        let template = TopicTemplate::parse(&self.topic)
            .map_err(|m| config_err(format!("sinks.{name}.topic: {m}")))?;
        let qos = check_qos(&format!("sinks.{name}.qos"), self.qos).map_err(config_err)?;
        let client_id = self.client_id.clone().unwrap_or_else(|| {
            let r = std::collections::hash_map::RandomState::new().hash_one((
                name,
                weir_core::now_ms(),
                std::process::id(),
            ));
            format!("weir-sink-{name}-{:08x}", r as u32)
        });
        Ok(MqttSink {
            name: name.to_owned(),
            cfg: self.clone(),
            broker,
            template,
            qos,
            client_id,
            conn: None,
        })
    }
}

/// A topic with `{column}` placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicTemplate {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Column(String),
}

impl TopicTemplate {
    /// Parses a template; errors say what is wrong with it (the caller adds the key).
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        if s.is_empty() {
            return Err("expected a topic like `alerts/{device_id}`, got an empty string".into());
        }
        let mut parts = Vec::new();
        let mut rest = s;
        while !rest.is_empty() {
            match rest.find(['{', '}']) {
                None => {
                    parts.push(Part::Text(rest.to_owned()));
                    rest = "";
                }
                Some(i) if rest.as_bytes()[i] == b'}' => {
                    return Err(format!("`{s}`: `}}` without an opening `{{`"));
                }
                Some(i) => {
                    if i > 0 {
                        parts.push(Part::Text(rest[..i].to_owned()));
                    }
                    let after = &rest[i + 1..];
                    let Some(j) = after.find('}') else {
                        return Err(format!("`{s}`: `{{` without a closing `}}`"));
                    };
                    let col = after[..j].trim();
                    if col.is_empty() || col.contains('{') {
                        return Err(format!(
                            "`{s}`: expected a column name between `{{` and `}}`"
                        ));
                    }
                    parts.push(Part::Column(col.to_owned()));
                    rest = &after[j + 1..];
                }
            }
        }
        // The literal text must make a valid topic on its own (values are made valid).
        let literal: String = parts
            .iter()
            .map(|p| match p {
                Part::Text(t) => t.as_str(),
                Part::Column(_) => "x",
            })
            .collect();
        check_topic(&literal)?;
        Ok(TopicTemplate { parts })
    }

    /// The columns the template reads.
    pub fn columns(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Column(c) => Some(c.as_str()),
            Part::Text(_) => None,
        })
    }

    /// The topic for one row; `value` gives a column's value as text (None for null).
    pub fn render<'a>(&self, mut value: impl FnMut(&str) -> Option<String> + 'a) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Column(c) => {
                    let v = value(c).unwrap_or_default();
                    out.extend(v.chars().map(|ch| match ch {
                        '+' | '#' | '\0' => '_',
                        other => other,
                    }));
                }
            }
        }
        out
    }
}

/// The running `mqtt` sink.
pub struct MqttSink {
    name: String,
    cfg: MqttSinkConfig,
    broker: Broker,
    template: TopicTemplate,
    qos: QoS,
    client_id: String,
    conn: Option<Conn>,
}

struct Conn {
    client: AsyncClient,
    events: EventLoop,
    last_used: Instant,
}

/// Messages handed to the client before polling for acknowledgements.
const CHANNEL: usize = 256;

impl MqttSink {
    /// Each row as (topic, JSON object), in order.
    fn messages(&self, rows: &[RecordBatch]) -> Result<Vec<(String, Vec<u8>)>> {
        let mut out = Vec::new();
        let opts = FormatOptions::default();
        for batch in rows {
            if batch.num_rows() == 0 {
                continue;
            }
            let schema = batch.schema();
            let mut cols = BTreeMap::new();
            for c in self.template.columns() {
                let Ok(i) = schema.index_of(c) else {
                    return Err(ConnectorError::Config {
                        source_name: self.name.clone(),
                        reason: format!(
                            "sinks.{}.topic: `{}` names column `{c}`, which table `{}` does not have (columns: {})",
                            self.name,
                            self.cfg.topic,
                            self.cfg.from,
                            column_list(&schema)
                        ),
                    });
                };
                let f = ArrayFormatter::try_new(batch.column(i).as_ref(), &opts).map_err(|e| {
                    ConnectorError::Config {
                        source_name: self.name.clone(),
                        reason: format!(
                            "sinks.{}.topic: cannot format column `{c}`: {e}",
                            self.name
                        ),
                    }
                })?;
                cols.insert(c.to_owned(), (i, f));
            }
            let mut w = WriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, LineDelimited>(Vec::new());
            w.write(batch).map_err(|e| self.encode_error(&e))?;
            w.finish().map_err(|e| self.encode_error(&e))?;
            let json = w.into_inner();
            let lines = json.split(|b| *b == b'\n').filter(|l| !l.is_empty());
            for (row, line) in lines.enumerate() {
                let topic = self.template.render(|c| {
                    let (i, f) = cols.get(c)?;
                    if batch.column(*i).is_null(row) {
                        None
                    } else {
                        Some(f.value(row).to_string())
                    }
                });
                out.push((topic, line.to_vec()));
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

    /// The connection, made anew when there is none or it idled past the keep-alive.
    async fn connection(&mut self) -> Result<&mut Conn> {
        let keep_alive = self.cfg.keep_alive.0;
        let stale = self
            .conn
            .as_ref()
            .is_some_and(|c| !keep_alive.is_zero() && c.last_used.elapsed() >= keep_alive);
        if stale {
            self.conn = None;
        }
        if self.conn.is_none() {
            let options = self.broker.options(&self.client_id, keep_alive, true);
            let (client, mut events) = AsyncClient::new(options, CHANNEL);
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => break,
                    Ok(_) => {}
                    Err(e) => return Err(connection_error(&self.name, "connecting", &e)),
                }
            }
            self.conn = Some(Conn {
                client,
                events,
                last_used: Instant::now(),
            });
        }
        // Set just above when it was None.
        Ok(self.conn.as_mut().expect("connected"))
    }

    /// Publishes every message and waits until each is acknowledged (QoS 1) or written (QoS 0).
    async fn publish_all(&mut self, messages: Vec<(String, Vec<u8>)>) -> Result<()> {
        let (qos, retain, name) = (self.qos, self.cfg.retain, self.name.clone());
        let conn = self.connection().await?;
        let total = messages.len();
        let mut queue = messages.into_iter().peekable();
        let mut done = 0usize;
        while done < total {
            while let Some((topic, payload)) = queue.peek_mut() {
                let (t, p) = (std::mem::take(topic), std::mem::take(payload));
                match conn.client.try_publish(t, qos, retain, p) {
                    Ok(()) => {
                        queue.next();
                    }
                    Err(ClientError::TryRequest(rumqttc::Request::Publish(back))) => {
                        // The request queue is full: put the message back and poll.
                        *topic = back.topic;
                        *payload = back.payload.to_vec();
                        break;
                    }
                    Err(_) => {
                        return Err(ConnectorError::Remote {
                            connector: name,
                            operation: "publishing".into(),
                            reason: "the MQTT client's request queue is closed".into(),
                            retry: true,
                        });
                    }
                }
            }
            match conn.events.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) if qos == QoS::AtLeastOnce => done += 1,
                Ok(Event::Outgoing(Outgoing::Publish(_))) if qos == QoS::AtMostOnce => done += 1,
                Ok(Event::Incoming(Packet::Disconnect)) => {
                    return Err(ConnectorError::Remote {
                        connector: name,
                        operation: "publishing".into(),
                        reason: "the broker closed the connection".into(),
                        retry: true,
                    });
                }
                Ok(_) => {}
                Err(e) => return Err(connection_error(&name, "publishing", &e)),
            }
        }
        conn.last_used = Instant::now();
        Ok(())
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
impl Sink for MqttSink {
    async fn write(
        &mut self,
        _batch_id: u64,
        _offsets: &str,
        rows: &[RecordBatch],
    ) -> Result<SinkWrite> {
        let messages = self.messages(rows)?;
        let n = messages.len() as u64;
        if n == 0 {
            return Ok(SinkWrite::default());
        }
        let timeout = self.cfg.timeout.0;
        let r = match tokio::time::timeout(timeout, self.publish_all(messages)).await {
            Ok(r) => r,
            Err(_) => Err(ConnectorError::Remote {
                connector: self.name.clone(),
                operation: "publishing".into(),
                reason: format!("not every message was acknowledged within {timeout:?}"),
                retry: true,
            }),
        };
        if r.is_err() {
            // The retry starts on a new connection; the half-done batch is published again.
            self.conn = None;
        }
        r.map(|()| SinkWrite {
            rows: n,
            skipped: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow::array::{Float64Array, StringArray};
    use arrow::datatypes::{DataType, Field};

    #[test]
    fn templates_parse_and_render() {
        let t = TopicTemplate::parse("alerts/{device_id}/{ kind }").unwrap();
        assert_eq!(t.columns().collect::<Vec<_>>(), vec!["device_id", "kind"]);
        let vals = BTreeMap::from([("device_id", "dev+1#"), ("kind", "hot")]);
        assert_eq!(
            t.render(|c| vals.get(c).map(|v| (*v).to_owned())),
            "alerts/dev_1_/hot"
        );
        assert_eq!(t.render(|_| None), "alerts//");
        assert_eq!(
            TopicTemplate::parse("plain/topic")
                .unwrap()
                .render(|_| None),
            "plain/topic"
        );
        for (bad, hint) in [
            ("", "empty"),
            ("a/{x", "without a closing"),
            ("a/x}", "without an opening"),
            ("a/{}", "column name"),
            ("a/{ }", "column name"),
            ("a/+/{x}", "wildcards"),
            ("a/#", "wildcards"),
        ] {
            let e = TopicTemplate::parse(bad).unwrap_err();
            assert!(e.contains(hint), "{bad}: {e}");
        }
    }

    fn sink(topic: &str) -> MqttSink {
        let cfg: MqttSinkConfig = serde_json::from_value(serde_json::json!({
            "from": "silver", "url": "mqtt://127.0.0.1:1", "topic": topic
        }))
        .unwrap();
        cfg.validate("alerts").unwrap();
        cfg.build("alerts").unwrap()
    }

    #[test]
    fn rows_become_json_objects_on_their_topics() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("device_id", DataType::Utf8, true),
            Field::new("value", DataType::Float64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![Some("dev1"), None])),
                Arc::new(Float64Array::from(vec![Some(21.5), None])),
            ],
        )
        .unwrap();
        let m = sink("alerts/{device_id}")
            .messages(std::slice::from_ref(&batch))
            .unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].0, "alerts/dev1");
        let v: serde_json::Value = serde_json::from_slice(&m[0].1).unwrap();
        assert_eq!(v, serde_json::json!({"device_id": "dev1", "value": 21.5}));
        assert_eq!(m[1].0, "alerts/");
        let v: serde_json::Value = serde_json::from_slice(&m[1].1).unwrap();
        assert_eq!(v, serde_json::json!({"device_id": null, "value": null}));
        let e = sink("alerts/{nope}")
            .messages(&[batch])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("sinks.alerts.topic")
                && e.contains("`nope`")
                && e.contains("device_id, value"),
            "{e}"
        );
    }

    #[test]
    fn config_errors_name_the_key() {
        let base = serde_json::json!({"from": "t", "url": "mqtt://h", "topic": "a/{x}"});
        let with = |k: &str, v: serde_json::Value| {
            let mut b = base.clone();
            b[k] = v;
            serde_json::from_value::<MqttSinkConfig>(b)
                .unwrap()
                .validate("k")
        };
        assert!(with("retain", true.into()).is_ok());
        assert!(
            with("qos", 2.into())
                .unwrap_err()
                .starts_with("sinks.k.qos: ")
        );
        assert!(
            with("topic", "a/#".into())
                .unwrap_err()
                .starts_with("sinks.k.topic: ")
        );
        assert!(
            with("url", "".into())
                .unwrap_err()
                .starts_with("sinks.k.url: ")
        );
        assert!(
            with("timeout", "0s".into())
                .unwrap_err()
                .starts_with("sinks.k.timeout")
        );
    }
}
