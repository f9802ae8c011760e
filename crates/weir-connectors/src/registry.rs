//! Every source and sink kind weir knows, listed by hand. The `type` key of
//! `[sources.<name>]` / `[sinks.<name>]` picks one; the kind name is the same in config,
//! module, cargo feature (`connector-<kind>`) and docs.

use serde::{Deserialize, Serialize};

use crate::file::FileConfig;
use crate::generator::GeneratorConfig;
use crate::http::HttpConfig;
use crate::sink::Sink;
use crate::source::PullSource;

/// `[sources.<name>]`: a source and the log topic it writes (named after the source).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SourceConfig {
    /// JSON lines pushed with `POST /v1/sources/<name>/records`.
    Http(HttpConfig),
    /// JSON-lines or CSV files dropped in a folder, each ingested exactly once.
    File(FileConfig),
    /// Synthetic shop events (for demos and benchmarks).
    Generator(GeneratorConfig),
    /// Messages on MQTT topic filters (IoT devices), at least once, with a persistent session.
    #[cfg(feature = "connector-mqtt")]
    Mqtt(crate::mqtt::MqttConfig),
    /// A JSON API polled on a schedule (`every`), following its pagination.
    #[cfg(feature = "connector-rest")]
    Rest(crate::rest::RestConfig),
    /// A PostgreSQL table or query polled on a cursor column, or tables' changes through
    /// logical replication (CDC).
    #[cfg(feature = "connector-postgres")]
    Postgres(crate::postgres::source::PostgresSourceConfig),
    /// Messages of Kafka topics, exactly once (the position travels in the records).
    #[cfg(feature = "connector-kafka")]
    Kafka(crate::kafka::KafkaConfig),
}

impl SourceConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            SourceConfig::Http(_) => "http",
            SourceConfig::File(_) => "file",
            SourceConfig::Generator(_) => "generator",
            #[cfg(feature = "connector-mqtt")]
            SourceConfig::Mqtt(_) => "mqtt",
            #[cfg(feature = "connector-rest")]
            SourceConfig::Rest(_) => "rest",
            #[cfg(feature = "connector-postgres")]
            SourceConfig::Postgres(_) => "postgres",
            #[cfg(feature = "connector-kafka")]
            SourceConfig::Kafka(_) => "kafka",
        }
    }

    /// Partitions of the source's topic.
    pub fn partitions(&self) -> u32 {
        match self {
            SourceConfig::Http(c) => c.partitions,
            SourceConfig::File(c) => c.partitions,
            SourceConfig::Generator(c) => c.partitions,
            #[cfg(feature = "connector-mqtt")]
            SourceConfig::Mqtt(c) => c.partitions,
            #[cfg(feature = "connector-rest")]
            SourceConfig::Rest(c) => c.partitions,
            #[cfg(feature = "connector-postgres")]
            SourceConfig::Postgres(c) => c.partitions,
            #[cfg(feature = "connector-kafka")]
            SourceConfig::Kafka(c) => c.partitions,
        }
    }

    /// The schema registry subject every record of the source must match (`schema = "..."`),
    /// for the kinds whose records are the payloads themselves (`http`, `file`, `rest`).
    pub fn schema(&self) -> Option<&str> {
        match self {
            SourceConfig::Http(c) => c.schema.as_deref(),
            SourceConfig::File(c) => c.schema.as_deref(),
            #[cfg(feature = "connector-rest")]
            SourceConfig::Rest(c) => c.schema.as_deref(),
            _ => None,
        }
    }

    /// Checks the fields; errors name the key and what was expected.
    pub fn validate(&self, name: &str) -> Result<(), String> {
        if let Some(s) = self.schema()
            && s.trim().is_empty()
        {
            return Err(format!(
                "sources.{name}.schema: expected a schema registry subject name, got an empty string"
            ));
        }
        if self.partitions() == 0 || self.partitions() > 1024 {
            return Err(format!(
                "sources.{name}.partitions: expected 1..=1024, got {}",
                self.partitions()
            ));
        }
        match self {
            SourceConfig::Http(c) => c.validate(name),
            SourceConfig::File(c) => c.validate(name),
            SourceConfig::Generator(c) => c.validate(name),
            #[cfg(feature = "connector-mqtt")]
            SourceConfig::Mqtt(c) => c.validate(name),
            #[cfg(feature = "connector-rest")]
            SourceConfig::Rest(c) => c.validate(name),
            #[cfg(feature = "connector-postgres")]
            SourceConfig::Postgres(c) => c.validate(name),
            #[cfg(feature = "connector-kafka")]
            SourceConfig::Kafka(c) => c.validate(name),
        }
    }

    /// Whether the source pulls from an outside system (and so has a health to show).
    pub fn pull_source_kind(&self) -> bool {
        !matches!(
            self,
            SourceConfig::Http(_) | SourceConfig::File(_) | SourceConfig::Generator(_)
        )
    }

    /// The running half of a source that pulls from an outside system (started by the
    /// runtime on a thread of its own); `None` for the kinds the runtime drives itself.
    pub fn pull_source(&self, _name: &str) -> crate::Result<Option<Box<dyn PullSource>>> {
        Ok(match self {
            SourceConfig::Http(_) | SourceConfig::File(_) | SourceConfig::Generator(_) => None,
            #[cfg(feature = "connector-mqtt")]
            SourceConfig::Mqtt(c) => Some(Box::new(c.build(_name)?)),
            #[cfg(feature = "connector-rest")]
            SourceConfig::Rest(c) => Some(Box::new(c.build(_name)?)),
            #[cfg(feature = "connector-postgres")]
            SourceConfig::Postgres(c) => Some(Box::new(c.build(_name)?)),
            #[cfg(feature = "connector-kafka")]
            SourceConfig::Kafka(c) => Some(Box::new(c.build(_name)?)),
        })
    }
}

/// `[sinks.<name>]`: where a table's rows go besides its Delta table.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SinkConfig {
    /// Rows appended or upserted into a PostgreSQL table, exactly once.
    #[cfg(feature = "connector-postgres")]
    Postgres(crate::postgres::sink::PostgresSinkConfig),
    /// Rows published as JSON objects on MQTT topics built from each row, at least once.
    #[cfg(feature = "connector-mqtt")]
    Mqtt(crate::mqtt::MqttSinkConfig),
    /// Rows produced as JSON messages to a Kafka topic (idempotent producer), at least once.
    #[cfg(feature = "connector-kafka")]
    Kafka(crate::kafka::KafkaSinkConfig),
}

impl SinkConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            #[cfg(feature = "connector-postgres")]
            SinkConfig::Postgres(_) => "postgres",
            #[cfg(feature = "connector-mqtt")]
            SinkConfig::Mqtt(_) => "mqtt",
            #[cfg(feature = "connector-kafka")]
            SinkConfig::Kafka(_) => "kafka",
        }
    }

    /// The weir table whose rows the sink receives.
    pub fn from(&self) -> &str {
        match self {
            #[cfg(feature = "connector-postgres")]
            SinkConfig::Postgres(c) => &c.from,
            #[cfg(feature = "connector-mqtt")]
            SinkConfig::Mqtt(c) => &c.from,
            #[cfg(feature = "connector-kafka")]
            SinkConfig::Kafka(c) => &c.from,
        }
    }

    /// Checks the fields; errors name the key and what was expected.
    pub fn validate(&self, name: &str) -> Result<(), String> {
        match self {
            #[cfg(feature = "connector-postgres")]
            SinkConfig::Postgres(c) => c.validate(name),
            #[cfg(feature = "connector-mqtt")]
            SinkConfig::Mqtt(c) => c.validate(name),
            #[cfg(feature = "connector-kafka")]
            SinkConfig::Kafka(c) => c.validate(name),
        }
    }

    /// The running sink. Does no IO: sinks connect on their first write.
    /// The running sink. `instance` identifies the project's data (see
    /// `weir_orchestrator`'s instance id): a sink that records what it delivered in the
    /// target keys it by name and instance.
    pub fn build(&self, name: &str, instance: &str) -> crate::Result<Box<dyn Sink>> {
        let _ = instance;
        Ok(match self {
            #[cfg(feature = "connector-postgres")]
            SinkConfig::Postgres(c) => Box::new(c.build(name)?.with_instance(instance)),
            #[cfg(feature = "connector-mqtt")]
            SinkConfig::Mqtt(c) => Box::new(c.build(name)?),
            #[cfg(feature = "connector-kafka")]
            SinkConfig::Kafka(c) => Box::new(c.build(name)?),
        })
    }
}
