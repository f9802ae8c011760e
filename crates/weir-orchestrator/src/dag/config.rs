//! `[dags.<name>]` and `[orchestrator]` in weir.toml: plain serde types and the cross-field
//! rules (task ids, dependencies, schedules, the tables tasks name). The scheduler, the store
//! and the task runners live next door.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use weir_core::HumanDuration;

/// `[orchestrator]`: limits shared by every DAG.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrchestratorConfig {
    /// Most task attempts running at once, over all DAGs.
    #[serde(default = "default_max_parallel_tasks")]
    pub max_parallel_tasks: usize,
    /// Most DAG runs running at once, over all DAGs.
    #[serde(default = "default_max_active_runs_total")]
    pub max_active_runs: usize,
}

fn default_max_parallel_tasks() -> usize {
    16
}
fn default_max_active_runs_total() -> usize {
    16
}

impl Default for OrchestratorConfig {
    fn default() -> Self {
        Self {
            max_parallel_tasks: default_max_parallel_tasks(),
            max_active_runs: default_max_active_runs_total(),
        }
    }
}

/// `[dags.<name>]`: tasks and when they run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DagConfig {
    /// Cron expression (5 fields, or 6 with seconds first). A run covers the interval from one
    /// tick to the next and starts at the end of it; its logical date is the interval's start.
    /// Without a schedule the DAG runs only when triggered.
    #[serde(default)]
    pub schedule: Option<String>,
    /// IANA time zone of the schedule and of logical dates, e.g. "Europe/Berlin".
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// Create the runs missed while weir was not running (from `start`), not only the latest.
    #[serde(default)]
    pub catchup: bool,
    /// First logical date ("YYYY-MM-DD"); no run has an earlier one.
    #[serde(default)]
    pub start: Option<String>,
    /// Most runs of this DAG running at once.
    #[serde(default = "default_max_active_runs")]
    pub max_active_runs: usize,
    /// Alert when a run has not succeeded this long after its scheduled time.
    #[serde(default)]
    pub sla: Option<HumanDuration>,
    /// Run when this table commits new data (debounced by `debounce`).
    #[serde(default)]
    pub on_commit: Option<String>,
    /// Quiet time after a commit of `on_commit` before the run starts.
    #[serde(default = "default_debounce")]
    pub debounce: HumanDuration,
    /// The tasks; `after` orders them.
    pub tasks: Vec<TaskConfig>,
}

fn default_timezone() -> String {
    "UTC".into()
}
fn default_max_active_runs() -> usize {
    1
}
fn default_debounce() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(5))
}

/// `[[dags.<name>.tasks]]`: one of `build`, `sql`, `check`, `shell`, `http`, `maintain`,
/// `export`, `noop`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskConfig {
    /// Unique within the DAG.
    pub id: String,
    /// Tasks that must succeed before this one starts.
    #[serde(default)]
    pub after: Vec<String>,
    /// Retries after the first failed attempt.
    #[serde(default)]
    pub retries: u32,
    /// First retry delay; each later one doubles, plus up to 50 % random jitter.
    #[serde(default = "default_retry_delay")]
    pub retry_delay: HumanDuration,
    /// An attempt running longer than this fails (and is retried per `retries`).
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
    /// Recompute this batch table's partition for the run's logical date.
    #[serde(default)]
    pub build: Option<String>,
    /// Run this SQL statement over the lake (`{{ ds }}` is the logical date).
    #[serde(default)]
    pub sql: Option<String>,
    /// Run this table's `checks` on the partition of the run's logical date.
    #[serde(default)]
    pub check: Option<String>,
    /// Run this command with `sh -c`; its output is the task log.
    #[serde(default)]
    pub shell: Option<String>,
    /// Call this URL; a non-2xx answer fails the task.
    #[serde(default)]
    pub http: Option<HttpTaskConfig>,
    /// Compact and/or vacuum a Delta table.
    #[serde(default)]
    pub maintain: Option<MaintainConfig>,
    /// Write a table's partition (or a query's rows) to a CSV, JSON-lines or Parquet file.
    #[serde(default)]
    pub export: Option<ExportConfig>,
    /// Do nothing (benchmarks, joins in a graph).
    #[serde(default)]
    pub noop: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExportConfig {
    /// A table: its partition of the run's date when it is partitioned by date, else all of it.
    #[serde(default)]
    pub table: Option<String>,
    /// Or a query (`{{ ds }}` is the logical date).
    #[serde(default)]
    pub query: Option<String>,
    /// Output file, relative to weir.toml (`{{ ds }}` allowed); replaced atomically.
    pub path: String,
    /// csv, json (JSON lines) or parquet; default from the path's extension.
    #[serde(default)]
    pub format: Option<String>,
}

impl ExportConfig {
    /// The output format, from `format` or the path's extension.
    pub fn resolved_format(&self) -> Result<String, String> {
        let f = match &self.format {
            Some(f) => f.to_ascii_lowercase(),
            None => std::path::Path::new(&self.path)
                .extension()
                .and_then(|e| e.to_str())
                .map(|e| match e {
                    "jsonl" | "ndjson" => "json".to_owned(),
                    e => e.to_ascii_lowercase(),
                })
                .unwrap_or_default(),
        };
        match f.as_str() {
            "csv" | "json" | "parquet" => Ok(f),
            _ => Err(format!(
                "expected `format` csv, json or parquet (or a path ending in one), got `{f}`"
            )),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintainConfig {
    /// Any Delta table of the project (including `bronze_<source>`, `_quarantine`, `_late`).
    pub table: String,
    /// Rewrite small files into large ones.
    #[serde(default)]
    pub compact: bool,
    /// Delete files no version of the last `vacuum` (e.g. "7d") still reads.
    #[serde(default)]
    pub vacuum: Option<HumanDuration>,
    /// Delete the date partitions older than the table's `retention`.
    #[serde(default)]
    pub expire: bool,
}

fn default_retry_delay() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(10))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpTaskConfig {
    pub url: String,
    /// GET or POST.
    #[serde(default = "default_method")]
    pub method: String,
    /// Request body (POST).
    #[serde(default)]
    pub body: Option<String>,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

fn default_method() -> String {
    "GET".into()
}

/// What a task does, resolved from its config.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskKind {
    Build(String),
    Sql(String),
    Check(String),
    Shell(String),
    Maintain {
        table: String,
        compact: bool,
        vacuum: Option<std::time::Duration>,
        expire: bool,
    },
    Export(ExportConfig),
    Http {
        url: String,
        method: String,
        body: Option<String>,
        headers: BTreeMap<String, String>,
    },
    Noop,
}

impl TaskKind {
    pub fn name(&self) -> &'static str {
        match self {
            TaskKind::Build(_) => "build",
            TaskKind::Sql(_) => "sql",
            TaskKind::Check(_) => "check",
            TaskKind::Shell(_) => "shell",
            TaskKind::Http { .. } => "http",
            TaskKind::Maintain { .. } => "maintain",
            TaskKind::Export(_) => "export",
            TaskKind::Noop => "noop",
        }
    }
}

impl TaskConfig {
    /// The task's kind, or what is wrong: none or several of the kind keys.
    pub fn kind(&self) -> Result<TaskKind, String> {
        let mut kinds = Vec::new();
        if let Some(t) = &self.build {
            kinds.push(TaskKind::Build(t.clone()));
        }
        if let Some(s) = &self.sql {
            kinds.push(TaskKind::Sql(s.clone()));
        }
        if let Some(t) = &self.check {
            kinds.push(TaskKind::Check(t.clone()));
        }
        if let Some(c) = &self.shell {
            kinds.push(TaskKind::Shell(c.clone()));
        }
        if let Some(h) = &self.http {
            kinds.push(TaskKind::Http {
                url: h.url.clone(),
                method: h.method.to_ascii_uppercase(),
                body: h.body.clone(),
                headers: h.headers.clone(),
            });
        }
        if let Some(m) = &self.maintain {
            kinds.push(TaskKind::Maintain {
                table: m.table.clone(),
                compact: m.compact,
                vacuum: m.vacuum.map(|d| d.0),
                expire: m.expire,
            });
        }
        if let Some(e) = &self.export {
            kinds.push(TaskKind::Export(e.clone()));
        }
        if self.noop {
            kinds.push(TaskKind::Noop);
        }
        match kinds.len() {
            1 => Ok(kinds.remove(0)),
            0 => {
                Err("expected one of build, sql, check, shell, http, maintain, export, noop".into())
            }
            _ => Err(format!(
                "expected one of build, sql, check, shell, http, maintain, export, noop; got {}",
                kinds
                    .iter()
                    .map(TaskKind::name)
                    .collect::<Vec<_>>()
                    .join(" and ")
            )),
        }
    }
}

/// `[[tables.<name>.checks]]`: a test of a table's data, run by `check` tasks on one
/// partition (the run's logical date) or the whole table when it has no `date` column.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckConfig {
    /// row_count, freshness, unique, not_null, accepted_values, schema, anomaly.
    #[serde(rename = "type")]
    pub kind: CheckKind,
    /// Name in results and alerts (default: the type and its columns).
    #[serde(default)]
    pub name: Option<String>,
    /// `error` fails the task; `warn` only records the result.
    #[serde(default)]
    pub severity: Severity,
    /// Columns the check applies to (unique, not_null, accepted_values, freshness).
    #[serde(default)]
    pub columns: Vec<String>,
    /// row_count: fewest rows.
    #[serde(default)]
    pub min: Option<i64>,
    /// row_count: most rows.
    #[serde(default)]
    pub max: Option<i64>,
    /// accepted_values: the allowed values.
    #[serde(default)]
    pub values: Vec<String>,
    /// freshness: the newest value of the column must be at most this old.
    #[serde(default)]
    pub max_age: Option<HumanDuration>,
    /// anomaly: partitions compared against.
    #[serde(default = "default_lookback")]
    pub lookback: usize,
    /// anomaly: largest allowed |z-score| of the row count.
    #[serde(default)]
    pub max_z: Option<f64>,
    /// anomaly: largest allowed deviation from the mean, in percent.
    #[serde(default)]
    pub max_pct: Option<f64>,
}

fn default_lookback() -> usize {
    7
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    RowCount,
    Freshness,
    Unique,
    NotNull,
    AcceptedValues,
    Schema,
    Anomaly,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    #[default]
    Error,
    Warn,
}

impl CheckConfig {
    /// The name results are stored under.
    pub fn display_name(&self) -> String {
        if let Some(n) = &self.name {
            return n.clone();
        }
        let kind = serde_json::to_value(self.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        if self.columns.is_empty() {
            kind
        } else {
            format!("{kind}({})", self.columns.join(","))
        }
    }

    /// What is missing for this kind of check, if anything.
    pub fn validate(&self) -> Result<(), String> {
        let need_cols = matches!(
            self.kind,
            CheckKind::Unique
                | CheckKind::NotNull
                | CheckKind::AcceptedValues
                | CheckKind::Freshness
        );
        if need_cols && self.columns.is_empty() {
            return Err("expected `columns` for this check".into());
        }
        match self.kind {
            CheckKind::RowCount if self.min.is_none() && self.max.is_none() => {
                Err("expected `min` or `max`".into())
            }
            CheckKind::AcceptedValues if self.values.is_empty() => {
                Err("expected `values`, the accepted values".into())
            }
            CheckKind::Freshness if self.max_age.is_none() => {
                Err("expected `max_age`, e.g. \"1h\"".into())
            }
            CheckKind::Freshness if self.columns.len() != 1 => {
                Err("expected one timestamp column in `columns`".into())
            }
            CheckKind::Anomaly if self.max_z.is_none() && self.max_pct.is_none() => {
                Err("expected `max_z` or `max_pct`".into())
            }
            CheckKind::Anomaly if self.lookback < 2 => {
                Err("expected `lookback` of at least 2 partitions".into())
            }
            _ => Ok(()),
        }
    }
}

/// Checks one DAG; `tables` maps table names to whether they are batch tables. Returns the key
/// (below `dags.<name>`) and the message of the first problem.
pub fn validate_dag(
    dag: &DagConfig,
    tables: &BTreeMap<String, bool>,
) -> Result<(), (String, String)> {
    if let Some(s) = &dag.schedule {
        crate::dag::schedule::parse_cron(s).map_err(|m| ("schedule".into(), m))?;
    }
    crate::dag::schedule::parse_tz(&dag.timezone).map_err(|m| ("timezone".into(), m))?;
    if let Some(s) = &dag.start {
        crate::dag::schedule::parse_date(s).map_err(|m| ("start".into(), m))?;
    }
    if dag.catchup && dag.start.is_none() {
        return Err((
            "start".into(),
            "catchup needs `start`, the first logical date".into(),
        ));
    }
    if dag.max_active_runs == 0 {
        return Err(("max_active_runs".into(), "expected at least 1".into()));
    }
    if let Some(t) = &dag.on_commit
        && !tables.contains_key(t)
    {
        return Err((
            "on_commit".into(),
            format!("`{t}` is not a table of this project"),
        ));
    }
    if dag.tasks.is_empty() {
        return Err(("tasks".into(), "expected at least one task".into()));
    }
    let ids: BTreeSet<&str> = dag.tasks.iter().map(|t| t.id.as_str()).collect();
    let mut seen = BTreeSet::new();
    for (i, t) in dag.tasks.iter().enumerate() {
        let key = |k: &str| format!("tasks[{i}].{k}");
        if t.id.is_empty()
            || !t
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err((
                key("id"),
                format!("`{}` is not a task id (letters, digits, `_` and `-`)", t.id),
            ));
        }
        if !seen.insert(t.id.as_str()) {
            return Err((key("id"), format!("`{}` is used twice", t.id)));
        }
        for a in &t.after {
            if !ids.contains(a.as_str()) {
                return Err((
                    key("after"),
                    format!(
                        "`{a}` is not a task of this DAG (tasks: {})",
                        ids.iter().copied().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
        match t.kind().map_err(|m| (format!("tasks[{i}]"), m))? {
            TaskKind::Build(table) => match tables.get(&table) {
                Some(true) => {}
                Some(false) => {
                    return Err((
                        key("build"),
                        format!("`{table}` is a streaming table; `build` recomputes batch tables"),
                    ));
                }
                None => {
                    return Err((key("build"), format!("`{table}` is not a table")));
                }
            },
            TaskKind::Check(table) if !tables.contains_key(&table) => {
                return Err((key("check"), format!("`{table}` is not a table")));
            }
            TaskKind::Maintain {
                table,
                compact,
                vacuum,
                expire,
            } => {
                let base = table
                    .strip_suffix("_quarantine")
                    .or_else(|| table.strip_suffix("_late"))
                    .unwrap_or(&table);
                if !tables.contains_key(base) && !table.starts_with("bronze_") {
                    return Err((key("maintain.table"), format!("`{table}` is not a table")));
                }
                if !compact && vacuum.is_none() && !expire {
                    return Err((
                        key("maintain"),
                        "expected `compact = true`, `vacuum = \"7d\"` and/or `expire = true`"
                            .into(),
                    ));
                }
            }
            TaskKind::Export(e) => {
                match (&e.table, &e.query) {
                    (Some(t), None) if !tables.contains_key(t) => {
                        return Err((key("export.table"), format!("`{t}` is not a table")));
                    }
                    (Some(_), None) | (None, Some(_)) => {}
                    _ => {
                        return Err((key("export"), "expected one of `table` and `query`".into()));
                    }
                }
                e.resolved_format().map_err(|m| (key("export.format"), m))?;
            }
            TaskKind::Http { method, url, .. } => {
                if method != "GET" && method != "POST" {
                    return Err((
                        key("http.method"),
                        format!("expected GET or POST, got `{method}`"),
                    ));
                }
                if !url.starts_with("http://") && !url.starts_with("https://") {
                    return Err((
                        key("http.url"),
                        format!("expected an http:// or https:// URL, got `{url}`"),
                    ));
                }
            }
            _ => {}
        }
    }
    topo_order(&dag.tasks).map_err(|m| ("tasks".into(), m))?;
    Ok(())
}

/// Task indices in an order where every task comes after its `after` tasks.
pub fn topo_order(tasks: &[TaskConfig]) -> Result<Vec<usize>, String> {
    let index: BTreeMap<&str, usize> = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.id.as_str(), i))
        .collect();
    let mut indegree: Vec<usize> = tasks.iter().map(|t| t.after.len()).collect();
    let mut down: Vec<Vec<usize>> = vec![Vec::new(); tasks.len()];
    for (i, t) in tasks.iter().enumerate() {
        for a in &t.after {
            if let Some(&u) = index.get(a.as_str()) {
                down[u].push(i);
            }
        }
    }
    let mut ready: Vec<usize> = (0..tasks.len()).filter(|&i| indegree[i] == 0).collect();
    let mut order = Vec::with_capacity(tasks.len());
    while let Some(i) = ready.pop() {
        order.push(i);
        for &d in &down[i] {
            indegree[d] -= 1;
            if indegree[d] == 0 {
                ready.push(d);
            }
        }
    }
    if order.len() != tasks.len() {
        let stuck: Vec<&str> = (0..tasks.len())
            .filter(|i| !order.contains(i))
            .map(|i| tasks[i].id.as_str())
            .collect();
        return Err(format!(
            "the tasks {} depend on each other in a cycle",
            stuck.join(", ")
        ));
    }
    Ok(order)
}
