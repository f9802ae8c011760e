//! The `http` source: JSON lines pushed to `POST /v1/sources/<name>/records`.
//!
//! The server crate owns the socket; this module owns what happens to a body: split into
//! lines, reject what cannot be a record (non-UTF-8, over `max_line_size`, failing the schema
//! named by `schema`) to the dead-letter topic, append the rest to the source's topic, and
//! return only once everything is durable.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use weir_core::ByteSize;
use weir_log::{Record, Topic};

use crate::dlq::{self, RejectReason};
use crate::error::{ConnectorError, Result};
use crate::schema::SchemaValidator;

/// `[sources.<name>] type = "http"`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Partitions of the source's topic.
    #[serde(default = "default_partitions")]
    pub partitions: u32,
    /// Field of each JSON record whose value picks the partition (hash); round-robin when
    /// absent.
    #[serde(default)]
    pub key: Option<String>,
    /// Largest accepted line; longer lines go to the dead-letter topic.
    #[serde(default = "default_max_line")]
    pub max_line_size: ByteSize,
    /// Largest accepted request body; larger bodies are refused with 413.
    #[serde(default = "default_max_body")]
    pub max_body_size: ByteSize,
    /// Schema registry subject whose latest schema every record must match; records that do
    /// not go to the dead-letter topic with the path and the reason.
    #[serde(default)]
    pub schema: Option<String>,
}

fn default_partitions() -> u32 {
    1
}
fn default_max_line() -> ByteSize {
    ByteSize(1 << 20)
}
fn default_max_body() -> ByteSize {
    ByteSize(64 << 20)
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            partitions: default_partitions(),
            key: None,
            schema: None,
            max_line_size: default_max_line(),
            max_body_size: default_max_body(),
        }
    }
}

impl HttpConfig {
    pub fn validate(&self, name: &str) -> Result<(), String> {
        if self.max_line_size.0 == 0 {
            return Err(format!(
                "sources.{name}.max_line_size: expected more than 0 bytes"
            ));
        }
        if self.max_body_size.0 < self.max_line_size.0 {
            return Err(format!(
                "sources.{name}.max_body_size: expected at least max_line_size ({}), got {}",
                self.max_line_size, self.max_body_size
            ));
        }
        Ok(())
    }
}

/// What happened to one request body.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct IngestReport {
    /// Records durable in the source's topic.
    pub accepted: u64,
    /// Lines durable in the dead-letter topic instead.
    pub rejected: u64,
}

/// Splits bodies into records and appends them durably. Shared by the HTTP endpoint and
/// `weir ingest`.
pub struct LineIngest {
    name: String,
    topic: Arc<Topic>,
    dlq: Arc<Topic>,
    key: Option<String>,
    max_line: usize,
    validator: Option<Arc<SchemaValidator>>,
}

impl LineIngest {
    pub fn new(
        name: &str,
        topic: Arc<Topic>,
        dlq: Arc<Topic>,
        key: Option<String>,
        max_line: ByteSize,
    ) -> Self {
        Self {
            name: name.to_owned(),
            topic,
            dlq,
            key,
            max_line: usize::try_from(max_line.0).unwrap_or(usize::MAX),
            validator: None,
        }
    }

    /// Validates every line against the source's schema: lines that fail go to the
    /// dead-letter topic (reason `schema_mismatch`) instead of the topic.
    #[must_use]
    pub fn with_validator(mut self, validator: Arc<SchemaValidator>) -> Self {
        self.validator = Some(validator);
        self
    }

    pub fn source_name(&self) -> &str {
        &self.name
    }

    /// Ingests a body of newline-separated records (`\r\n` accepted; blank lines skipped).
    /// Returns after every accepted record and every dead letter is durable.
    pub fn ingest(&self, body: &[u8], now_ms: i64) -> Result<IngestReport> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(ConnectorError::EmptyBody {
                source_name: self.name.clone(),
            });
        }
        let mut good: Vec<&[u8]> = Vec::new();
        let mut good_lines: Vec<usize> = Vec::new();
        let mut dead: Vec<Vec<u8>> = Vec::new();
        for (n, line) in body.split(|b| *b == b'\n').enumerate() {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if line.len() > self.max_line {
                dead.push(dlq::encode(
                    &self.name,
                    RejectReason::LineTooLarge,
                    format!(
                        "line {} has {} bytes, the limit is {}",
                        n + 1,
                        line.len(),
                        self.max_line
                    ),
                    line,
                ));
            } else if let Err(e) = std::str::from_utf8(line) {
                dead.push(dlq::encode(
                    &self.name,
                    RejectReason::NotUtf8,
                    format!("line {} is not UTF-8: {e}", n + 1),
                    line,
                ));
            } else {
                good.push(line);
                good_lines.push(n + 1);
            }
        }
        if let Some(v) = &self.validator {
            let verdicts = v.check(&good);
            let mut kept = Vec::with_capacity(good.len());
            for ((line, n), verdict) in good.into_iter().zip(good_lines).zip(verdicts) {
                match verdict {
                    None => kept.push(line),
                    Some(detail) => dead.push(dlq::encode(
                        &self.name,
                        RejectReason::SchemaMismatch,
                        format!("line {n}: {detail}"),
                        line,
                    )),
                }
            }
            good = kept;
        }
        let report = IngestReport {
            accepted: good.len() as u64,
            rejected: dead.len() as u64,
        };
        self.append(&good, now_ms)?;
        if !dead.is_empty() {
            let recs: Vec<Record<'_>> = dead
                .iter()
                .map(|v| Record {
                    key: Some(self.name.as_bytes()),
                    value: v,
                    timestamp_ms: now_ms,
                })
                .collect();
            let p = self.dlq.partition_for(Some(self.name.as_bytes()));
            self.append_to(&self.dlq, p, &recs)?;
        }
        Ok(report)
    }

    /// Appends already-validated lines to the topic, partitioned by key or round-robin.
    pub fn append(&self, lines: &[&[u8]], now_ms: i64) -> Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        match &self.key {
            None => {
                let recs: Vec<Record<'_>> = lines
                    .iter()
                    .map(|v| Record {
                        key: None,
                        value: v,
                        timestamp_ms: now_ms,
                    })
                    .collect();
                let p = self.topic.partition_for(None);
                self.append_to(&self.topic, p, &recs)
            }
            Some(field) => {
                let keys: Vec<Option<Vec<u8>>> = lines.iter().map(|l| key_of(l, field)).collect();
                let mut by_part: std::collections::BTreeMap<u32, Vec<Record<'_>>> =
                    Default::default();
                for (v, k) in lines.iter().zip(keys.iter()) {
                    let p = self.topic.partition_for(k.as_deref());
                    by_part.entry(p).or_default().push(Record {
                        key: k.as_deref(),
                        value: v,
                        timestamp_ms: now_ms,
                    });
                }
                for (p, recs) in by_part {
                    self.append_to(&self.topic, p, &recs)?;
                }
                Ok(())
            }
        }
    }

    fn append_to(&self, topic: &Topic, p: u32, recs: &[Record<'_>]) -> Result<()> {
        let part = topic.partition(p).ok_or_else(|| ConnectorError::Config {
            source_name: self.name.clone(),
            reason: format!("topic `{}` has no partition {p}", topic.name()),
        })?;
        part.append(recs).map_err(|error| ConnectorError::Log {
            source_name: self.name.clone(),
            error,
        })?;
        Ok(())
    }
}

/// The text of `field` in a JSON object line, used as the partition key.
fn key_of(line: &[u8], field: &str) -> Option<Vec<u8>> {
    let v: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(line).ok()?;
    match v.get(field)? {
        serde_json::Value::String(s) => Some(s.as_bytes().to_vec()),
        serde_json::Value::Null => None,
        other => Some(other.to_string().into_bytes()),
    }
}
