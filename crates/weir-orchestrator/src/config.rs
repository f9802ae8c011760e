//! `weir.toml`: plain serde types, `${ENV}` substitution, and one `validate()` that checks the
//! cross-field rules. Every error names the file, the key and what was expected. Parsing does
//! no IO beyond reading the file and the SQL files it names; building things is elsewhere.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use weir_connectors::{SinkConfig, SourceConfig};
use weir_core::{ByteSize, HumanDuration};
use weir_sql::decode::FieldType;
use weir_sql::spec::Action;

use crate::error::{OrchestratorError, Result};

/// The whole `weir.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeirConfig {
    /// Project name and where its data lives.
    #[serde(default)]
    pub project: ProjectConfig,
    /// The HTTP server (ingest, status, API).
    #[serde(default)]
    pub server: ServerConfig,
    /// The embedded log.
    #[serde(default)]
    pub log: LogConfig,
    /// The micro-batch loop.
    #[serde(default)]
    pub pipeline: PipelineConfig,
    /// Sources by name; each writes a log topic of the same name.
    #[serde(default)]
    pub sources: BTreeMap<String, SourceConfig>,
    /// Tables by name.
    #[serde(default)]
    pub tables: BTreeMap<String, TableConfig>,
    /// Sinks by name: where a streaming table's rows go besides its Delta table.
    #[serde(default)]
    pub sinks: BTreeMap<String, SinkConfig>,
    /// Limits shared by every DAG.
    #[serde(default)]
    pub orchestrator: crate::dag::config::OrchestratorConfig,
    /// DAGs by name: scheduled tasks (build batch tables, checks, SQL, shell, HTTP).
    #[serde(default)]
    pub dags: BTreeMap<String, crate::dag::config::DagConfig>,
    /// Where DAG alerts go.
    #[serde(default)]
    pub alerts: crate::dag::alerts::AlertsConfig,
    /// How to reach a lake on object storage (`[project] lake = "s3://..."`).
    #[serde(default)]
    pub lake: LakeConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectConfig {
    /// A name shown in status and the UI.
    #[serde(default = "default_project_name")]
    pub name: String,
    /// Where the log, the lake and checkpoints live, relative to weir.toml.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Where the Delta tables live instead of `<data_dir>/lake`: `"s3://bucket/prefix"` puts
    /// them on S3 or an S3-compatible store, reached with the settings of `[lake.s3]`. The log,
    /// checkpoints and run history stay in `data_dir`.
    #[serde(default)]
    pub lake: Option<String>,
}

fn default_project_name() -> String {
    "weir".into()
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}

impl Default for ProjectConfig {
    fn default() -> Self {
        Self {
            name: default_project_name(),
            data_dir: default_data_dir(),
            lake: None,
        }
    }
}

/// `[lake]`: settings of a lake outside the data directory.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LakeConfig {
    /// `[lake.s3]`: endpoint, region and credentials of an `s3://` lake (those left out come
    /// from the standard `AWS_*` environment variables).
    #[serde(default)]
    pub s3: Option<weir_lake::S3Config>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address of the HTTP server.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Address of the PostgreSQL wire endpoint; `""` turns it off.
    #[serde(default = "default_pg_listen")]
    pub pg_listen: String,
    /// Tokens for the HTTP API and the PostgreSQL endpoint. Without it, anyone who can reach
    /// the addresses may call them (so weir listens only on loopback unless `--insecure`).
    #[serde(default)]
    pub auth: Option<AuthConfig>,
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}

fn default_pg_listen() -> String {
    "127.0.0.1:5433".into()
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            pg_listen: default_pg_listen(),
            auth: None,
        }
    }
}

/// `[server.auth]`: the tokens that may call weir, each with a role.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub tokens: Vec<TokenConfig>,
}

/// One token: given inline (`token`) or read from an environment variable (`token_env`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds it (shown in logs, never the token itself).
    pub name: String,
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub token_env: Option<String>,
    pub role: Role,
}

/// What a token may do. `reader`: query and view; `operator`: also ingest, trigger DAG runs,
/// backfill and replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Reader,
    Operator,
}

impl TokenConfig {
    /// The token's value; an error names the token and what is wrong.
    pub fn resolve(&self) -> std::result::Result<String, String> {
        let value = match (&self.token, &self.token_env) {
            (Some(t), None) => t.clone(),
            (None, Some(var)) => std::env::var(var).map_err(|_| {
                format!(
                    "[server.auth] token `{}`: environment variable {var} is not set",
                    self.name
                )
            })?,
            _ => {
                return Err(format!(
                    "[server.auth] token `{}`: give exactly one of `token` and `token_env`",
                    self.name
                ));
            }
        };
        if value.len() < 16 {
            return Err(format!(
                "[server.auth] token `{}` is {} characters long; use at least 16 (e.g. `openssl rand -hex 24`)",
                self.name,
                value.len()
            ));
        }
        Ok(value)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// Size at which a partition starts a new segment file.
    #[serde(default = "default_segment_size")]
    pub segment_size: ByteSize,
    /// Delete closed segments whose newest record is older than this.
    #[serde(default)]
    pub retention: Option<HumanDuration>,
    /// Keep at most this many bytes per partition (oldest segments deleted first).
    #[serde(default)]
    pub retention_size: Option<ByteSize>,
    /// fsync before acknowledging (turning it off trades crash safety for speed).
    #[serde(default = "default_true")]
    pub fsync: bool,
}

fn default_segment_size() -> ByteSize {
    ByteSize(128 << 20)
}
fn default_true() -> bool {
    true
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            segment_size: default_segment_size(),
            retention: Some(HumanDuration(Duration::from_secs(7 * 86_400))),
            retention_size: None,
            fsync: true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Most input records one micro-batch reads.
    #[serde(default = "default_max_batch")]
    pub max_batch_records: usize,
    /// Pause between micro-batches when there is nothing new to read.
    #[serde(default = "default_interval")]
    pub interval: HumanDuration,
    /// Ingest answers 503 (Retry-After) when the pipeline lags more than this many records.
    #[serde(default = "default_max_lag")]
    pub max_lag_records: u64,
}

fn default_max_batch() -> usize {
    250_000
}
fn default_interval() -> HumanDuration {
    HumanDuration(Duration::from_millis(200))
}
fn default_max_lag() -> u64 {
    5_000_000
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            max_batch_records: default_max_batch(),
            interval: default_interval(),
            max_lag_records: default_max_lag(),
        }
    }
}

/// `streaming` tables are maintained by the micro-batch loop; `batch` tables are computed on
/// demand (`weir query`) and by the orchestrator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableMode {
    #[default]
    Streaming,
    Batch,
}

/// `[tables.<name>]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableConfig {
    /// The source or table this one reads; its SQL names its input by this name.
    pub from: String,
    /// Path of the table's SQL file, relative to weir.toml.
    pub sql: PathBuf,
    #[serde(default)]
    pub mode: TableMode,
    /// For a table reading a source: the JSON fields to decode and their types, as
    /// `"name type, name type, ..."` with types string, bigint, double, boolean, timestamp.
    #[serde(default)]
    pub schema: Option<String>,
    /// Columns of the output that partition the Delta table.
    #[serde(default)]
    pub partition_by: Vec<String>,
    /// Input column holding event time (ages dedup keys).
    #[serde(default)]
    pub event_time: Option<String>,
    /// Keep the first row per key within an event-time horizon.
    #[serde(default)]
    pub dedup: Option<DedupConfig>,
    /// Tumbling event-time window: rows are aggregated per window once the watermark passes
    /// its end; rows behind the watermark go to `<table>_late`.
    #[serde(default)]
    pub window: Option<WindowConfig>,
    /// Checks on input rows, in order; the first failing one decides.
    #[serde(default)]
    pub expectations: Vec<ExpectationConfig>,
    /// Tests of the table's data, run by `check` tasks of DAGs.
    #[serde(default)]
    pub checks: Vec<crate::dag::config::CheckConfig>,
    /// Keep date partitions this recent; `maintain` tasks with `expire = true` delete older
    /// ones. Needs a date column in `partition_by`.
    #[serde(default)]
    pub retention: Option<HumanDuration>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupConfig {
    /// Input column whose value identifies a row.
    pub key: String,
    /// How long (event time) a key is remembered.
    pub within: HumanDuration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// Input timestamp column.
    pub column: String,
    /// Window length.
    pub size: HumanDuration,
    /// Allowed lateness: watermark = max event time seen − lateness.
    #[serde(default)]
    pub lateness: Option<HumanDuration>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectationConfig {
    /// Name recorded as the quarantine `reason` and in metrics.
    pub name: String,
    /// SQL predicate over the input row; TRUE passes, FALSE or NULL fails.
    pub check: String,
    /// warn, drop, quarantine or fail.
    #[serde(default = "default_action")]
    pub action: Action,
}

fn default_action() -> Action {
    Action::Quarantine
}

/// A loaded project: the config, where it came from, and each table's SQL text.
#[derive(Debug, Clone)]
pub struct Project {
    pub config: WeirConfig,
    /// The weir.toml path.
    pub path: PathBuf,
    /// Directory holding weir.toml.
    pub root: PathBuf,
    pub sql: BTreeMap<String, String>,
}

/// A config error message, with how to get Kafka support when the config asks for a `kafka`
/// source or sink in a weir built without it (the only way that variant is unknown).
fn without_kafka_hint(message: &str) -> String {
    if message.starts_with("unknown variant `kafka`") {
        format!(
            "{}; this weir was built without Kafka support: build it with `cargo build --release --features weir/kafka` (docs/connectors.md)",
            message.trim_end()
        )
    } else {
        message.to_owned()
    }
}

impl Project {
    /// Reads and validates `path` (and the SQL files it names).
    pub fn load(path: &Path) -> Result<Project> {
        let text = std::fs::read_to_string(path).map_err(|source| OrchestratorError::ConfigIo {
            path: path.display().to_string(),
            source,
        })?;
        let text = substitute_env(&text, path)?;
        let config: WeirConfig = toml::from_str(&text).map_err(|e| OrchestratorError::Config {
            file: path.display().to_string(),
            key: e
                .span()
                .map(|s| format!("line {}", line_of(&text, s.start)))
                .unwrap_or_default(),
            message: without_kafka_hint(e.message()),
        })?;
        let root = path
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        let mut sql = BTreeMap::new();
        for (name, t) in &config.tables {
            let p = root.join(&t.sql);
            let s = std::fs::read_to_string(&p).map_err(|e| OrchestratorError::Config {
                file: path.display().to_string(),
                key: format!("tables.{name}.sql"),
                message: format!("cannot read SQL file `{}`: {e}", p.display()),
            })?;
            sql.insert(name.clone(), s);
        }
        let project = Project {
            config,
            path: path.to_path_buf(),
            root,
            sql,
        };
        project.validate()?;
        Ok(project)
    }

    /// The data directory (log, lake, checkpoints).
    pub fn data_dir(&self) -> PathBuf {
        self.root.join(&self.config.project.data_dir)
    }

    /// Opens the project's lake: the `s3://` URL of `[project] lake` when set (checking that
    /// the bucket can be listed), else `<data_dir>/lake`.
    pub fn open_lake(&self) -> Result<weir_lake::Lake> {
        Ok(match &self.config.project.lake {
            None => weir_lake::Lake::try_new(self.data_dir().join("lake"))?,
            Some(url) => {
                weir_lake::Lake::try_s3(url, &self.config.lake.s3.clone().unwrap_or_default())?
            }
        })
    }

    fn err(&self, key: String, message: String) -> OrchestratorError {
        OrchestratorError::Config {
            file: self.path.display().to_string(),
            key,
            message,
        }
    }

    /// Cross-field rules.
    pub fn validate(&self) -> Result<()> {
        let c = &self.config;
        match (&c.project.lake, &c.lake.s3) {
            (Some(url), s3) => {
                weir_lake::s3::parse_lake_url(url)
                    .map_err(|m| self.err("project.lake".into(), m))?;
                if let Some(s3) = s3 {
                    s3.validate()
                        .map_err(|(k, m)| self.err(format!("lake.s3.{k}"), m))?;
                }
            }
            (None, Some(_)) => {
                return Err(self.err(
                    "lake.s3".into(),
                    "[lake.s3] applies to a lake on object storage: set `lake = \"s3://bucket/prefix\"` in [project], or remove [lake.s3]".into(),
                ));
            }
            (None, None) => {}
        }
        if let Some(auth) = &c.server.auth {
            if auth.tokens.is_empty() {
                return Err(self.err(
                    "server.auth.tokens".into(),
                    "[server.auth] needs at least one token".into(),
                ));
            }
            let mut seen = std::collections::BTreeSet::new();
            for t in &auth.tokens {
                let value = t
                    .resolve()
                    .map_err(|m| self.err("server.auth.tokens".into(), m))?;
                if !seen.insert(value) {
                    return Err(self.err(
                        "server.auth.tokens".into(),
                        format!("token `{}` has the same value as another token", t.name),
                    ));
                }
            }
        }
        for (name, s) in &c.sources {
            check_name(name).map_err(|m| self.err(format!("sources.{name}"), m))?;
            s.validate(name).map_err(|m| {
                let (key, msg) = m
                    .split_once(": ")
                    .map_or((format!("sources.{name}"), m.clone()), |(k, v)| {
                        (k.to_owned(), v.to_owned())
                    });
                self.err(key, msg)
            })?;
            if c.tables.contains_key(name) {
                return Err(self.err(
                    format!("sources.{name}"),
                    "a source and a table cannot share a name".into(),
                ));
            }
        }
        for (name, k) in &c.sinks {
            check_name(name).map_err(|m| self.err(format!("sinks.{name}"), m))?;
            k.validate(name).map_err(|m| {
                let (key, msg) = m
                    .split_once(": ")
                    .map_or((format!("sinks.{name}"), m.clone()), |(k, v)| {
                        (k.to_owned(), v.to_owned())
                    });
                self.err(key, msg)
            })?;
            match c.tables.get(k.from()) {
                Some(t) if t.mode == TableMode::Streaming => {}
                Some(_) => {
                    return Err(self.err(
                        format!("sinks.{name}.from"),
                        format!(
                            "`{}` is a batch table; a sink reads a streaming table",
                            k.from()
                        ),
                    ));
                }
                None => {
                    return Err(self.err(
                        format!("sinks.{name}.from"),
                        format!(
                            "`{}` is not a table (tables: {})",
                            k.from(),
                            list(c.tables.keys())
                        ),
                    ));
                }
            }
        }
        for (name, t) in &c.tables {
            let key = |k: &str| format!("tables.{name}.{k}");
            check_name(name).map_err(|m| self.err(format!("tables.{name}"), m))?;
            for suffix in ["_quarantine", "_late"] {
                if name.ends_with(suffix) {
                    return Err(self.err(
                        format!("tables.{name}"),
                        format!("names ending in `{suffix}` are reserved for weir's side outputs"),
                    ));
                }
            }
            if name.starts_with("bronze_") {
                return Err(self.err(
                    format!("tables.{name}"),
                    "names starting with `bronze_` are reserved for the raw tables of sources"
                        .into(),
                ));
            }
            let from_source = c.sources.contains_key(&t.from);
            let from_table = c.tables.get(&t.from);
            if !from_source && from_table.is_none() {
                return Err(self.err(
                    key("from"),
                    format!(
                        "`{}` is neither a source nor a table (sources: {}; tables: {})",
                        t.from,
                        list(c.sources.keys()),
                        list(c.tables.keys())
                    ),
                ));
            }
            if let Some(up) = from_table
                && t.mode == TableMode::Streaming
                && up.mode == TableMode::Batch
            {
                return Err(self.err(
                    key("from"),
                    format!("a streaming table cannot read the batch table `{}`", t.from),
                ));
            }
            if from_source {
                let Some(schema) = &t.schema else {
                    return Err(self.err(key("schema"), format!("a table reading the source `{}` must declare the fields to decode, e.g. \"id string, ts timestamp, amount double\"", t.from)));
                };
                parse_schema(schema).map_err(|m| self.err(key("schema"), m))?;
                if t.mode == TableMode::Batch {
                    return Err(self.err(
                        key("mode"),
                        "a batch table must read another table, not a source".into(),
                    ));
                }
            } else if t.schema.is_some() {
                return Err(self.err(
                    key("schema"),
                    format!(
                        "only tables reading a source declare a schema; `{}` is a table",
                        t.from
                    ),
                ));
            }
            if t.mode == TableMode::Batch
                && (t.window.is_some() || t.dedup.is_some() || !t.expectations.is_empty())
            {
                return Err(self.err(
                    format!("tables.{name}"),
                    "window, dedup and expectations apply to streaming tables only".into(),
                ));
            }
            if let Some(d) = &t.dedup {
                if d.within.0.is_zero() {
                    return Err(self.err(
                        key("dedup.within"),
                        "expected a positive duration like \"10m\"".into(),
                    ));
                }
                if t.event_time.is_none() {
                    return Err(self.err(
                        key("event_time"),
                        "dedup needs `event_time`, the input column that ages keys".into(),
                    ));
                }
            }
            if let Some(w) = &t.window
                && w.size.0.is_zero()
            {
                return Err(self.err(
                    key("window.size"),
                    "expected a positive duration like \"1m\"".into(),
                ));
            }
            let mut seen = std::collections::BTreeSet::new();
            for (i, e) in t.expectations.iter().enumerate() {
                if !seen.insert(e.name.as_str()) {
                    return Err(self.err(
                        format!("tables.{name}.expectations[{i}].name"),
                        format!("`{}` is used twice", e.name),
                    ));
                }
                if e.name.trim().is_empty() || e.check.trim().is_empty() {
                    return Err(self.err(
                        format!("tables.{name}.expectations[{i}]"),
                        "expected a non-empty name and check".into(),
                    ));
                }
                if e.name == weir_sql::stream::MALFORMED_JSON {
                    return Err(self.err(
                        format!("tables.{name}.expectations[{i}].name"),
                        "`malformed_json` is the reason weir gives to undecodable records".into(),
                    ));
                }
            }
        }
        for (name, t) in &c.tables {
            if t.retention.is_some() && t.partition_by.len() != 1 {
                return Err(self.err(
                    format!("tables.{name}.retention"),
                    "retention expires date partitions: expected one date column in `partition_by`"
                        .into(),
                ));
            }
            for (i, chk) in t.checks.iter().enumerate() {
                chk.validate()
                    .map_err(|m| self.err(format!("tables.{name}.checks[{i}]"), m))?;
            }
        }
        let mut rule_names = std::collections::BTreeSet::new();
        for (i, r) in c.alerts.rules.iter().enumerate() {
            r.validate()
                .map_err(|m| self.err(format!("alerts.rules[{i}]"), m))?;
            if !rule_names.insert(r.name.as_str()) {
                return Err(self.err(
                    format!("alerts.rules[{i}].name"),
                    format!("`{}` is used twice", r.name),
                ));
            }
        }
        let kinds: BTreeMap<String, bool> = c
            .tables
            .iter()
            .map(|(n, t)| (n.clone(), t.mode == TableMode::Batch))
            .collect();
        for (name, d) in &c.dags {
            check_name(name).map_err(|m| self.err(format!("dags.{name}"), m))?;
            crate::dag::config::validate_dag(d, &kinds)
                .map_err(|(k, m)| self.err(format!("dags.{name}.{k}"), m))?;
            for t in &d.tasks {
                if let Some(b) = &t.build
                    && c.tables.get(b).is_some_and(|x| x.partition_by.len() != 1)
                {
                    return Err(self.err(
                        format!("tables.{b}.partition_by"),
                        format!("DAG `{name}` builds `{b}` per date: expected one date column, e.g. [\"date\"]"),
                    ));
                }
            }
        }
        self.stream_order()?;
        Ok(())
    }

    /// Streaming tables in dependency order (upstream first).
    pub fn stream_order(&self) -> Result<Vec<String>> {
        let c = &self.config;
        let mut order = Vec::new();
        let mut state: BTreeMap<&str, u8> = BTreeMap::new();
        fn visit<'a>(
            p: &'a Project,
            n: &'a str,
            state: &mut BTreeMap<&'a str, u8>,
            order: &mut Vec<String>,
        ) -> Result<()> {
            match state.get(n) {
                Some(2) => return Ok(()),
                Some(1) => {
                    return Err(p.err(
                        format!("tables.{n}.from"),
                        "tables read each other in a cycle".into(),
                    ));
                }
                _ => {}
            }
            state.insert(n, 1);
            let t = &p.config.tables[n];
            if p.config.tables.contains_key(&t.from) {
                visit(p, &t.from, state, order)?;
            }
            state.insert(n, 2);
            if t.mode == TableMode::Streaming {
                order.push(n.to_owned());
            }
            Ok(())
        }
        for name in c.tables.keys() {
            visit(self, name, &mut state, &mut order)?;
        }
        Ok(order)
    }
}

/// Parses `"name type, name type"`.
pub fn parse_schema(s: &str) -> std::result::Result<Vec<(String, FieldType)>, String> {
    let mut out: Vec<(String, FieldType)> = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let mut it = part.split_whitespace();
        let (Some(name), Some(ty), None) = (it.next(), it.next(), it.next()) else {
            return Err(format!("expected `name type`, got `{part}`"));
        };
        let ty: FieldType = serde_json::from_value(serde_json::Value::String(ty.to_lowercase()))
            .map_err(|_| format!("unknown type `{ty}` for field `{name}` (expected string, bigint, double, boolean or timestamp)"))?;
        if out.iter().any(|(n, _)| n == name) {
            return Err(format!("field `{name}` is declared twice"));
        }
        out.push((name.to_owned(), ty));
    }
    if out.is_empty() {
        return Err("expected at least one field".into());
    }
    Ok(out)
}

fn check_name(name: &str) -> std::result::Result<(), String> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid name: use lowercase letters, digits and `_`, not starting with a digit"
        ))
    }
}

fn list<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = names.map(String::as_str).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

fn line_of(text: &str, pos: usize) -> usize {
    text[..pos.min(text.len())].matches('\n').count() + 1
}

/// Replaces `${NAME}` with the environment variable NAME, and `${NAME:-default}` with
/// `default` when NAME is unset or empty; a missing variable without a default is an error
/// naming it and its line. `$${` is a literal `${`. Comments are left alone (a `${...}` in a
/// comment is neither substituted nor required), so an example's commented-out lines do not
/// need their variables.
pub fn substitute_env(text: &str, path: &Path) -> Result<String> {
    substitute_with(text, path, |name| std::env::var(name).ok())
}

/// Where the scanner of [`substitute_with`] stands in TOML's syntax.
#[derive(Clone, Copy, PartialEq)]
enum TomlAt {
    Code,
    Comment,
    Basic,
    Literal,
    MultiBasic,
    MultiLiteral,
}

fn substitute_with(
    text: &str,
    path: &Path,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String> {
    let err = |at: usize, message: String| OrchestratorError::Config {
        file: path.display().to_string(),
        key: format!("line {}", line_of(text, at)),
        message,
    };
    let mut out = String::with_capacity(text.len());
    let mut state = TomlAt::Code;
    let mut i = 0;
    while i < text.len() {
        let rest = &text[i..];
        // Substitution everywhere but in comments.
        if state != TomlAt::Comment {
            if rest.starts_with("$${") {
                out.push_str("${");
                i += 3;
                continue;
            }
            if let Some(body) = rest.strip_prefix("${") {
                let Some(end) = body.find('}') else {
                    return Err(err(i, "`${` without a closing `}`".into()));
                };
                let inner = &body[..end];
                let (name, default) = match inner.split_once(":-") {
                    Some((n, d)) => (n, Some(d)),
                    None => (inner, None),
                };
                match (
                    lookup(name).filter(|v| !v.is_empty() || default.is_none()),
                    default,
                ) {
                    (Some(v), _) => out.push_str(&v),
                    (None, Some(d)) => out.push_str(d),
                    (None, None) => {
                        return Err(err(i, format!("environment variable `{name}` is not set")));
                    }
                }
                i += 2 + end + 1;
                continue;
            }
        }
        let c = rest.chars().next().unwrap_or('\0');
        let mut step = c.len_utf8();
        match state {
            TomlAt::Code => {
                if c == '#' {
                    state = TomlAt::Comment;
                } else if rest.starts_with("\"\"\"") {
                    state = TomlAt::MultiBasic;
                    step = 3;
                } else if rest.starts_with("'''") {
                    state = TomlAt::MultiLiteral;
                    step = 3;
                } else if c == '"' {
                    state = TomlAt::Basic;
                } else if c == '\'' {
                    state = TomlAt::Literal;
                }
            }
            TomlAt::Comment => {
                if c == '\n' {
                    state = TomlAt::Code;
                }
            }
            TomlAt::Basic | TomlAt::MultiBasic if c == '\\' => {
                // An escape: the next character is taken as it is.
                step += rest[1..].chars().next().map_or(0, char::len_utf8);
            }
            TomlAt::Basic => {
                if c == '"' || c == '\n' {
                    state = TomlAt::Code;
                }
            }
            TomlAt::Literal => {
                if c == '\'' || c == '\n' {
                    state = TomlAt::Code;
                }
            }
            TomlAt::MultiBasic => {
                if rest.starts_with("\"\"\"") {
                    state = TomlAt::Code;
                    step = 3;
                }
            }
            TomlAt::MultiLiteral => {
                if rest.starts_with("'''") {
                    state = TomlAt::Code;
                    step = 3;
                }
            }
        }
        out.push_str(&rest[..step]);
        i += step;
    }
    Ok(out)
}

/// The project's batch tables as (name, SQL) pairs, for registering as query views.
pub fn batch_views(project: &Project) -> Vec<(String, String)> {
    project
        .config
        .tables
        .iter()
        .filter(|(_, t)| t.mode == TableMode::Batch)
        .map(|(n, _)| {
            (
                n.clone(),
                project.sql[n].trim().trim_end_matches(';').to_owned(),
            )
        })
        .collect()
}

#[cfg(test)]
mod substitution_tests {
    use super::*;

    fn sub(text: &str) -> Result<String> {
        substitute_with(text, Path::new("weir.toml"), |name| match name {
            "HOST" => Some("db.internal".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        })
    }

    #[test]
    fn variables_defaults_and_literal_dollars() {
        assert_eq!(
            sub("url = \"postgres://${HOST}/x\"\n").unwrap(),
            "url = \"postgres://db.internal/x\"\n"
        );
        assert_eq!(
            sub("a = \"${MISSING:-mqtt://127.0.0.1:1883}\"\nb = '${EMPTY:-d}'\nc = \"${EMPTY}\"")
                .unwrap(),
            "a = \"mqtt://127.0.0.1:1883\"\nb = 'd'\nc = \"\""
        );
        assert_eq!(sub("a = \"$${HOST} $5\"").unwrap(), "a = \"${HOST} $5\"");
        assert_eq!(
            sub("sql = '''\nSELECT '${HOST}' # not a comment\n'''").unwrap(),
            "sql = '''\nSELECT 'db.internal' # not a comment\n'''"
        );
    }

    #[test]
    fn comments_are_neither_substituted_nor_required() {
        let text =
            "# GET ${MISSING}/api\nurl = \"http://${HOST}/#frag\" # ${ALSO_MISSING}\nx = 1\n";
        assert_eq!(
            sub(text).unwrap(),
            "# GET ${MISSING}/api\nurl = \"http://db.internal/#frag\" # ${ALSO_MISSING}\nx = 1\n"
        );
        // A `#` inside a string with an escaped quote before it is not a comment.
        assert_eq!(
            sub("a = \"q\\\"#${HOST}\"").unwrap(),
            "a = \"q\\\"#db.internal\""
        );
    }

    #[test]
    fn a_missing_variable_names_it_and_its_line() {
        let e = sub("a = 1\nb = \"${NOPE}\"\n").unwrap_err().to_string();
        assert!(e.contains("NOPE") && e.contains("line 2"), "{e}");
        let e = sub("a = \"${OPEN\"\n").unwrap_err().to_string();
        assert!(e.contains("closing"), "{e}");
    }
}

#[cfg(test)]
mod kafka_hint_tests {
    use super::*;

    #[test]
    fn a_kafka_source_in_a_build_without_kafka_says_how_to_get_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weir.toml");
        std::fs::write(
            &path,
            "[sources.orders]\ntype = \"kafka\"\nbrokers = \"127.0.0.1:9092\"\ntopic = \"orders\"\n",
        )
        .unwrap();
        // Built with Kafka (`--features weir/kafka`), this project is fine.
        if let Err(e) = Project::load(&path) {
            let e = e.to_string();
            assert!(
                e.contains("unknown variant `kafka`")
                    && e.contains("built without Kafka support")
                    && e.contains("--features weir/kafka"),
                "{e}"
            );
        }
    }
}
