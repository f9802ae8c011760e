//! The `mqtt` source: messages on subscribed topic filters become log records, at least once,
//! with a persistent session so that what devices publish while weir is down waits at the
//! broker.
//!
//! **Records.** Each message becomes one record keyed by its MQTT topic (so one device's
//! readings land in one partition, in order), timestamped with its arrival. The value is a
//! JSON object a table's `schema` can read directly:
//!
//! - a payload that is a JSON object keeps its fields, and weir adds `topic` (the MQTT topic)
//!   and `received_at` (arrival, ms since the epoch). A payload field already called `topic`
//!   or `received_at` is kept as `payload_topic` / `payload_received_at`;
//! - any other payload (a number like `21.5`, a JSON array or string, plain text) is stored
//!   under `payload`: as its JSON value when it parses as JSON, else as the text.
//!
//! So `{"value": 21.5}` on `sensors/dev1/temperature` is stored as
//! `{"value": 21.5, "topic": "sensors/dev1/temperature", "received_at": 1768435200000}`, and a
//! table reads it with `schema = "topic string, value double, received_at timestamp"` and
//! `SELECT split_part(topic, '/', 2) AS device, value FROM readings`. A payload that is not
//! UTF-8 or is over `max_payload_size` goes to the dead-letter topic with its reason.
//!
//! **Delivery.** The source acknowledges nothing itself (rumqttc's manual acks): a QoS 1
//! message is acknowledged (PUBACK) only after [`Appender::append`] returned, i.e. once it is
//! durable in weir's log. A crash between the append and the PUBACK makes the broker deliver
//! the message again on reconnect, so a message can be stored twice, never lost. MQTT 3.1.1
//! messages carry no id of their own, so deduplication needs one in the payload: have
//! devices send e.g. `{"msg_id": "dev1-1042", ...}` and declare
//! `dedup = { key = "msg_id", within = "10m" }` on the table reading the source.
//! Acknowledgements go only over the connection the message came on; after a reconnect the
//! broker redelivers what was not acknowledged (another way to get a duplicate).
//!
//! **Sessions.** With `clean_session = false` (the default) the broker keeps the subscriptions
//! and queues QoS 1 messages for the client id while weir is away (Mosquitto keeps at most
//! `max_queued_messages` per client, 1000 by default, and never queues QoS 0). The client id
//! must therefore stay the same across restarts: without `client_id` in the config, weir picks
//! `weir-<source>-<random>` on first start and keeps it in the source's state folder
//! (`mqtt.json`, beside the subscriptions it made), so it survives restarts and two projects
//! on one broker never share one. Filters added to or removed from `topics` are subscribed or
//! unsubscribed on the next start; a broker that lost the session (session present = 0 on a
//! reconnect) is logged as a warning, since what it had queued is gone.
//!
//! **Failures.** Connection errors are retried forever with [`Backoff`] (200 ms doubling to
//! 5 s) and shown in the source's health in `/v1/status`; a refused subscription (a broker
//! ACL) is shown there too.

use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, Outgoing, Packet, Publish, QoS, SubscribeFilter};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use weir_core::{ByteSize, HumanDuration};

use super::{Broker, check_client_id, check_filter, check_keep_alive, check_qos, describe};
use crate::dlq::RejectReason;
use crate::error::{ConnectorError, Result};
use crate::source::{Appender, Backoff, OutRecord, PullSource, SourceContext};

/// `[sources.<name>] type = "mqtt"`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// Broker URL, `mqtt://[user[:password]@]host[:port]` (port 1883 by default); `${ENV}` is
    /// substituted at start.
    pub url: String,
    /// User name to log in with; takes precedence over one in the URL. `${ENV}` is substituted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Password to log in with; takes precedence over one in the URL. Write `${ENV}` rather
    /// than the password itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Topic filters to subscribe to, e.g. `["sensors/+/temperature", "alarms/#"]`: `+`
    /// matches one whole level, `#` the rest of the topic (last level only).
    #[serde(default)]
    pub topics: Vec<String>,
    /// Quality of service of the subscriptions: 1 (at least once: messages are acknowledged
    /// once stored, and queued by the broker while weir is away) or 0 (at most once).
    #[serde(default = "default_qos")]
    pub qos: u8,
    /// MQTT client id, which names the broker-side session. Default: `weir-<source>-<random>`,
    /// chosen on first start and kept in the source's state folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Start a fresh session on every connect: the broker forgets the subscriptions and
    /// drops what arrived while weir was away. Default false (a persistent session).
    #[serde(default)]
    pub clean_session: bool,
    /// Interval of keep-alive pings; the broker drops the connection after 1.5 times this
    /// without traffic. `0s` turns pings off.
    #[serde(default = "default_keep_alive")]
    pub keep_alive: HumanDuration,
    /// Partitions of the source's topic (messages are spread by their MQTT topic).
    #[serde(default = "default_partitions")]
    pub partitions: u32,
    /// Largest accepted payload; larger messages go to the dead-letter topic.
    #[serde(default = "default_max_payload")]
    pub max_payload_size: ByteSize,
}

fn default_qos() -> u8 {
    1
}
fn default_keep_alive() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}
fn default_partitions() -> u32 {
    1
}
fn default_max_payload() -> ByteSize {
    ByteSize(1 << 20)
}

/// Most messages stored (and acknowledged) together.
const MAX_BATCH: usize = 512;
/// Longest pause between reconnect attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// File in the source's state folder holding the client id and the subscriptions made.
const SESSION_FILE: &str = "mqtt.json";

impl MqttConfig {
    /// Checks the fields without IO; errors name the key.
    pub fn validate(&self, name: &str) -> Result<(), String> {
        let key = |k: &str| format!("sources.{name}.{k}");
        if self.url.trim().is_empty() {
            return Err(format!(
                "{}: expected a broker URL like mqtt://127.0.0.1:1883",
                key("url")
            ));
        }
        // With `${ENV}` the URL is checked at start, when the variables are read.
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
        if self.topics.is_empty() {
            return Err(format!(
                "{}: expected at least one topic filter, e.g. topics = [\"sensors/+/temperature\"]",
                key("topics")
            ));
        }
        for (i, t) in self.topics.iter().enumerate() {
            check_filter(t).map_err(|m| format!("{}: {m}", key("topics")))?;
            if self.topics[..i].contains(t) {
                return Err(format!("{}: `{t}` is listed twice", key("topics")));
            }
        }
        check_qos(&key("qos"), self.qos)?;
        if let Some(id) = &self.client_id {
            check_client_id(&key("client_id"), id)?;
        }
        check_keep_alive(&key("keep_alive"), self.keep_alive.0)?;
        if self.max_payload_size.0 == 0 {
            return Err(format!(
                "{}: expected a positive size like \"1MiB\"",
                key("max_payload_size")
            ));
        }
        Ok(())
    }

    /// The running source; reads `${ENV}` but does no network IO.
    pub fn build(&self, name: &str) -> Result<MqttSource> {
        let config_err = |reason| ConnectorError::Config {
            source_name: name.to_owned(),
            reason,
        };
        let broker = Broker::parse(
            &format!("sources.{name}.url"),
            &self.url,
            self.username.as_deref(),
            self.password.as_deref(),
        )
        .map_err(config_err)?;
        let qos = check_qos(&format!("sources.{name}.qos"), self.qos).map_err(config_err)?;
        Ok(MqttSource {
            name: name.to_owned(),
            cfg: self.clone(),
            broker,
            qos,
        })
    }
}

/// A running `mqtt` source.
pub struct MqttSource {
    name: String,
    cfg: MqttConfig,
    broker: Broker,
    qos: QoS,
}

/// What the source remembers between runs: the client id and the subscriptions the broker
/// holds for it (filter → QoS).
#[derive(Debug, Default, Serialize, Deserialize)]
struct Session {
    client_id: String,
    #[serde(default)]
    subscribed: BTreeMap<String, u8>,
}

impl Session {
    fn load(source: &str, dir: &Path, configured: Option<&str>) -> Result<(Session, PathBuf)> {
        let io = |path: &Path, error| ConnectorError::Io {
            source_name: source.to_owned(),
            path: path.display().to_string(),
            error,
        };
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let path = dir.join(SESSION_FILE);
        let mut s: Session = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| ConnectorError::Config {
                source_name: source.to_owned(),
                reason: format!("session file `{}` is unreadable: {e}", path.display()),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Session::default(),
            Err(e) => return Err(io(&path, e)),
        };
        let id = match configured {
            Some(id) => id.to_owned(),
            None if !s.client_id.is_empty() => s.client_id.clone(),
            None => {
                let r = std::collections::hash_map::RandomState::new().hash_one((
                    source,
                    weir_core::now_ms(),
                    std::process::id(),
                ));
                format!("weir-{source}-{:08x}", r as u32)
            }
        };
        if id != s.client_id {
            // Another client id is another broker session: it holds none of these.
            s.subscribed.clear();
            s.client_id = id;
            s.save(source, &path)?;
        }
        Ok((s, path))
    }

    /// Replaces the file atomically (write, fsync, rename).
    fn save(&self, source: &str, path: &Path) -> Result<()> {
        let io = |error| ConnectorError::Io {
            source_name: source.to_owned(),
            path: path.display().to_string(),
            error,
        };
        let tmp = path.with_extension("json.tmp");
        // Serializing a struct of strings and numbers cannot fail.
        let bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(io)?;
            f.write_all(&bytes).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, path).map_err(io)
    }
}

/// What the task driving the connection reports to the source's loop.
enum Ev {
    /// A CONNACK; `generation` counts connections.
    Connected {
        generation: u64,
        session_present: bool,
    },
    Message {
        generation: u64,
        publish: Publish,
    },
    SubAck(rumqttc::SubAck),
    /// A failed connection attempt or a dropped connection, and the pause before the next.
    Failed(String, Duration),
}

/// Polls the event loop (which reconnects on the next poll after an error) until the client
/// disconnects or the source's loop is gone. Polling is never cancelled half-way: the loop
/// receives events from an unbounded channel, whose size the broker bounds for QoS 1 (it
/// sends at most its in-flight window of unacknowledged messages).
async fn drive(mut events: EventLoop, tx: mpsc::UnboundedSender<Ev>) {
    let mut backoff = Backoff::new(MAX_BACKOFF);
    let mut generation = 0u64;
    loop {
        let ev = match events.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(c))) => {
                backoff.reset();
                generation += 1;
                Ev::Connected {
                    generation,
                    session_present: c.session_present,
                }
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => Ev::Message {
                generation,
                publish,
            },
            Ok(Event::Incoming(Packet::SubAck(s))) => Ev::SubAck(s),
            Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
            Ok(_) => continue,
            Err(e) => {
                let pause = backoff.next_delay();
                if tx.send(Ev::Failed(describe(&e), pause)).is_err() {
                    return;
                }
                tokio::time::sleep(pause).await;
                continue;
            }
        };
        if tx.send(ev).is_err() {
            return;
        }
    }
}

impl PullSource for MqttSource {
    fn run(&mut self, ctx: &SourceContext) -> Result<()> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| ConnectorError::Io {
                source_name: self.name.clone(),
                path: "tokio runtime".into(),
                error,
            })?;
        rt.block_on(self.run_async(ctx))
    }
}

/// A received message and the connection it came on.
struct Received {
    generation: u64,
    publish: Publish,
}

impl MqttSource {
    async fn run_async(&mut self, ctx: &SourceContext) -> Result<()> {
        let (mut session, session_path) =
            Session::load(&self.name, &ctx.state_dir, self.cfg.client_id.as_deref())?;
        let mut options = self.broker.options(
            &session.client_id,
            self.cfg.keep_alive.0,
            self.cfg.clean_session,
        );
        options.set_manual_acks(true);
        let (client, events) = AsyncClient::new(options, 1024);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut driver = tokio::spawn(drive(events, tx));
        tracing::info!(
            source = %self.name,
            broker = %format!("{}:{}", self.broker.host, self.broker.port),
            client_id = %session.client_id,
            topics = ?self.cfg.topics,
            "mqtt source connecting"
        );
        let appender = ctx.appender();
        // The connection acknowledgements may go over: the last CONNACK's generation, until a
        // failure is reported.
        let mut live: Option<u64> = None;
        let mut subscribing: Vec<SubscribeFilter> = Vec::new();
        let mut batch: Vec<Received> = Vec::new();
        let result = loop {
            if ctx.stopping() {
                break Ok(());
            }
            let first = match tokio::time::timeout(Duration::from_millis(100), rx.recv()).await {
                Err(_) => continue,
                Ok(None) => {
                    break Err(ConnectorError::Remote {
                        connector: self.name.clone(),
                        operation: "driving the MQTT connection".into(),
                        reason: "the connection task ended".into(),
                        retry: false,
                    });
                }
                Ok(Some(ev)) => ev,
            };
            let mut next = Some(first);
            while let Some(ev) = next.take() {
                match ev {
                    Ev::Connected {
                        generation,
                        session_present,
                    } => {
                        live = Some(generation);
                        ctx.health.ok();
                        subscribing = self
                            .resubscribe(&client, &mut session, &session_path, session_present)
                            .await?;
                    }
                    Ev::Message {
                        generation,
                        publish,
                    } => batch.push(Received {
                        generation,
                        publish,
                    }),
                    Ev::SubAck(ack) => {
                        self.on_suback(ctx, &ack, &subscribing, &mut session, &session_path)?;
                        subscribing.clear();
                    }
                    Ev::Failed(reason, pause) => {
                        live = None;
                        tracing::warn!(source = %self.name, error = %reason, retry_in = ?pause, "mqtt connection failed");
                        ctx.health.failed(&reason);
                    }
                }
                if batch.len() < MAX_BATCH {
                    next = rx.try_recv().ok();
                }
            }
            if batch.is_empty() {
                continue;
            }
            if !self.store(ctx, &appender, &batch).await {
                // Stopping before the messages were stored: they stay unacknowledged, and the
                // broker delivers them again next time.
                break Ok(());
            }
            for r in batch.drain(..) {
                if live == Some(r.generation) {
                    // A full request queue or a closed connection leaves the message
                    // unacknowledged; the broker then redelivers it (a duplicate, not a loss).
                    let _ = client.try_ack(&r.publish);
                }
            }
        };
        let _ = client.try_disconnect();
        if tokio::time::timeout(Duration::from_secs(2), &mut driver)
            .await
            .is_err()
        {
            driver.abort();
        }
        result
    }

    /// After a CONNACK: subscribes to the filters the broker's session lacks and unsubscribes
    /// from ones no longer configured. Returns the filters of the SUBSCRIBE sent, if any.
    async fn resubscribe(
        &self,
        client: &AsyncClient,
        session: &mut Session,
        path: &Path,
        session_present: bool,
    ) -> Result<Vec<SubscribeFilter>> {
        if !session_present && !self.cfg.clean_session && !session.subscribed.is_empty() {
            tracing::warn!(
                source = %self.name,
                client_id = %session.client_id,
                "the broker had no session for this client id: messages it queued while weir was away are lost"
            );
        }
        if !session_present {
            session.subscribed.clear();
        }
        let wanted: Vec<SubscribeFilter> = self
            .cfg
            .topics
            .iter()
            .filter(|t| session.subscribed.get(*t) != Some(&self.cfg.qos))
            .map(|t| SubscribeFilter::new(t.clone(), self.qos))
            .collect();
        let gone: Vec<String> = session
            .subscribed
            .keys()
            .filter(|t| !self.cfg.topics.contains(t))
            .cloned()
            .collect();
        let enqueue = |r: std::result::Result<(), rumqttc::ClientError>| {
            r.map_err(|_| ConnectorError::Remote {
                connector: self.name.clone(),
                operation: "subscribing".into(),
                reason: "the connection task ended".into(),
                retry: false,
            })
        };
        for t in &gone {
            enqueue(client.unsubscribe(t.clone()).await)?;
            session.subscribed.remove(t);
        }
        if !gone.is_empty() {
            tracing::info!(source = %self.name, topics = ?gone, "unsubscribed");
            session.save(&self.name, path)?;
        }
        if !wanted.is_empty() {
            enqueue(client.subscribe_many(wanted.clone()).await)?;
        }
        Ok(wanted)
    }

    fn on_suback(
        &self,
        ctx: &SourceContext,
        ack: &rumqttc::SubAck,
        sent: &[SubscribeFilter],
        session: &mut Session,
        path: &Path,
    ) -> Result<()> {
        let mut refused = Vec::new();
        for (f, code) in sent.iter().zip(&ack.return_codes) {
            match code {
                rumqttc::SubscribeReasonCode::Success(_) => {
                    session.subscribed.insert(f.path.clone(), self.cfg.qos);
                }
                rumqttc::SubscribeReasonCode::Failure => refused.push(f.path.clone()),
            }
        }
        session.save(&self.name, path)?;
        if !refused.is_empty() {
            let reason = format!("the broker refused the subscription to {refused:?}");
            tracing::error!(source = %self.name, error = %reason, "mqtt subscription refused");
            ctx.health.failed(&reason);
        } else {
            tracing::info!(source = %self.name, topics = ?sent.iter().map(|f| &f.path).collect::<Vec<_>>(), "subscribed");
        }
        Ok(())
    }

    /// Stores a batch durably (records, then dead letters), retrying log failures until they
    /// pass; false when weir stops first.
    async fn store(&self, ctx: &SourceContext, appender: &Appender, batch: &[Received]) -> bool {
        let max = usize::try_from(self.cfg.max_payload_size.0).unwrap_or(usize::MAX);
        let mut records = Vec::with_capacity(batch.len());
        let mut dead = Vec::new();
        for r in batch {
            let p = &r.publish;
            let received_at = weir_core::now_ms();
            if p.payload.len() > max {
                dead.push((
                    RejectReason::LineTooLarge,
                    format!(
                        "message on topic `{}` has {} bytes, the limit (max_payload_size) is {max}",
                        p.topic,
                        p.payload.len()
                    ),
                    p,
                ));
                continue;
            }
            match std::str::from_utf8(&p.payload) {
                Ok(text) => records.push(OutRecord {
                    key: Some(p.topic.as_bytes().to_vec()),
                    value: record_value(&p.topic, text, received_at),
                    timestamp_ms: received_at,
                }),
                Err(e) => dead.push((
                    RejectReason::NotUtf8,
                    format!("message on topic `{}` is not UTF-8: {e}", p.topic),
                    p,
                )),
            }
        }
        let mut backoff = Backoff::new(MAX_BACKOFF);
        let mut failed = false;
        while let Err(e) = appender.append(&records) {
            failed = true;
            if !self.failed_write(ctx, &e, &mut backoff).await {
                return false;
            }
        }
        for (reason, detail, p) in &dead {
            while let Err(e) = appender.dead_letter(*reason, detail.clone(), &p.payload) {
                failed = true;
                if !self.failed_write(ctx, &e, &mut backoff).await {
                    return false;
                }
            }
        }
        if failed {
            // The failure shown was the log's, and it has passed.
            ctx.health.ok();
        }
        true
    }

    async fn failed_write(
        &self,
        ctx: &SourceContext,
        e: &ConnectorError,
        backoff: &mut Backoff,
    ) -> bool {
        tracing::error!(source = %self.name, error = %e, "storing mqtt messages failed; retrying");
        ctx.health.failed(&e.to_string());
        let until = tokio::time::Instant::now() + backoff.next_delay();
        while tokio::time::Instant::now() < until {
            if ctx.stopping() {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        !ctx.stopping()
    }
}

/// The record stored for a message (see the module doc for the shape).
pub fn record_value(topic: &str, payload: &str, received_at: i64) -> Vec<u8> {
    let mut obj = match serde_json::from_str::<Value>(payload) {
        Ok(Value::Object(m)) => m,
        Ok(v) => Map::from_iter([("payload".to_owned(), v)]),
        Err(_) => Map::from_iter([("payload".to_owned(), Value::String(payload.to_owned()))]),
    };
    for (name, value) in [
        ("topic", Value::String(topic.to_owned())),
        ("received_at", Value::from(received_at)),
    ] {
        if let Some(own) = obj.remove(name) {
            let mut kept = format!("payload_{name}");
            while obj.contains_key(&kept) {
                kept = format!("payload_{kept}");
            }
            obj.insert(kept, own);
        }
        obj.insert(name.to_owned(), value);
    }
    // Serializing a map of JSON values cannot fail.
    serde_json::to_vec(&obj).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &[u8]) -> Value {
        serde_json::from_slice(v).unwrap()
    }

    #[test]
    fn records_keep_the_payload_and_add_topic_and_arrival() {
        let v = parse(&record_value(
            "s/dev1/t",
            r#"{"value": 21.5, "unit": "C"}"#,
            7,
        ));
        assert_eq!(
            v,
            serde_json::json!({"value": 21.5, "unit": "C", "topic": "s/dev1/t", "received_at": 7})
        );
        let v = parse(&record_value("s/dev1/t", "21.5", 7));
        assert_eq!(
            v,
            serde_json::json!({"payload": 21.5, "topic": "s/dev1/t", "received_at": 7})
        );
        let v = parse(&record_value("s/dev1/t", "on fire", 7));
        assert_eq!(v["payload"], "on fire");
        let v = parse(&record_value("s/dev1/t", "", 7));
        assert_eq!(v["payload"], "");
        let v = parse(&record_value(
            "s/x",
            r#"{"topic": "mine", "payload_topic": 1}"#,
            7,
        ));
        assert_eq!(v["topic"], "s/x");
        assert_eq!(v["payload_topic"], 1);
        assert_eq!(v["payload_payload_topic"], "mine");
    }

    #[test]
    fn config_errors_name_the_key() {
        let cfg = |extra: &str| -> MqttConfig {
            toml_like(&format!(
                r#"{{"url": "mqtt://127.0.0.1:1883", "topics": ["a/+/b"] {extra}}}"#
            ))
        };
        assert!(cfg("").validate("r").is_ok());
        let e = cfg(r#", "qos": 2"#).validate("r").unwrap_err();
        assert!(e.starts_with("sources.r.qos: "), "{e}");
        let mut c = cfg("");
        c.topics = vec!["a/#/b".into()];
        let e = c.validate("r").unwrap_err();
        assert!(e.starts_with("sources.r.topics: `a/#/b`"), "{e}");
        c.topics.clear();
        let e = c.validate("r").unwrap_err();
        assert!(
            e.starts_with("sources.r.topics: expected at least one"),
            "{e}"
        );
        c.topics = vec!["x".into(), "x".into()];
        assert!(c.validate("r").unwrap_err().contains("listed twice"));
        let e = cfg(r#", "client_id": """#).validate("r").unwrap_err();
        assert!(e.starts_with("sources.r.client_id"), "{e}");
        let mut c = cfg("");
        c.url = "mqtts://h".into();
        assert!(c.validate("r").unwrap_err().starts_with("sources.r.url"));
        c.url = "mqtt://${WEIR_SURELY_UNSET_MQTT}".into();
        assert!(c.validate("r").is_ok(), "checked at start");
        assert!(c.build("r").is_err());
        assert!(serde_json::from_str::<MqttConfig>(r#"{"url": "x", "topic": "a"}"#).is_err());
    }

    fn toml_like(json: &str) -> MqttConfig {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn the_client_id_is_chosen_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (a, path) = Session::load("readings", dir.path(), None).unwrap();
        assert!(a.client_id.starts_with("weir-readings-"), "{}", a.client_id);
        let (b, _) = Session::load("readings", dir.path(), None).unwrap();
        assert_eq!(a.client_id, b.client_id);
        let mut s = b;
        s.subscribed.insert("a/#".into(), 1);
        s.save("readings", &path).unwrap();
        let (c, _) = Session::load("readings", dir.path(), None).unwrap();
        assert_eq!(c.subscribed.len(), 1);
        // A configured id is another session: the subscriptions recorded are not its own.
        let (d, _) = Session::load("readings", dir.path(), Some("fixed")).unwrap();
        assert_eq!(d.client_id, "fixed");
        assert!(d.subscribed.is_empty());
    }
}
