//! `/v1/tables...`: the project's tables with their Delta figures, one table's schema,
//! partitions and SQL, its commit history, its newest rows and its quarantined rows; and
//! `/v1/dead-letters`, the records the sources refused.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use weir_core::ErrorKind;
use weir_lake::TableDetail as LakeDetail;

use crate::catalog::{self, Entry, Layer, TableKind, TableRole};
use crate::openapi::{api_object, api_query};
use crate::{ApiError, AppState, parse_limit, query_error};

api_object! {
    /// A table and its Delta figures. A declared table without a commit yet has version -1.
    pub struct TableSummary {
        pub name: String,
        pub layer: Option<Layer>,
        pub kind: TableKind,
        pub role: TableRole,
        /// Latest Delta version (-1: no commit yet).
        pub version: i64,
        /// Rows at the latest version (from the files' statistics).
        pub rows: u64,
        /// Data files at the latest version.
        pub files: u64,
        pub size_bytes: u64,
        pub partition_by: Vec<String>,
        /// Time of the latest commit, ms since the epoch.
        pub last_commit: Option<i64>,
    }
}

api_object! {
    pub struct TableList {
        pub tables: Vec<TableSummary>,
    }
}

api_object! {
    /// A column of a table.
    pub struct Column {
        pub name: String,
        /// Delta type: string, long, integer, double, boolean, date, timestamp, ...
        pub r#type: String,
        pub nullable: bool,
    }
}

api_object! {
    /// The files of one partition.
    pub struct Partition {
        /// Partition column → value.
        pub values: BTreeMap<String, Option<String>>,
        pub files: u64,
        pub rows: u64,
        pub size_bytes: u64,
    }
}

api_object! {
    /// A table with its schema, partitions and definition.
    pub struct TableDetail {
        pub name: String,
        pub layer: Option<Layer>,
        pub kind: TableKind,
        pub role: TableRole,
        pub version: i64,
        pub rows: u64,
        pub files: u64,
        pub size_bytes: u64,
        pub partition_by: Vec<String>,
        pub last_commit: Option<i64>,
        pub schema: Vec<Column>,
        pub partitions: Vec<Partition>,
        /// The table's SQL (configured tables).
        pub sql: Option<String>,
        /// The source or table it reads (`from` in weir.toml), or the parent of a side table.
        pub from: Option<String>,
        /// Sources and tables it reads, as drawn in the pipeline graph.
        pub inputs: Vec<String>,
    }
}

api_object! {
    /// One commit of a table's Delta log.
    pub struct CommitEntry {
        pub version: i64,
        /// ms since the epoch.
        pub timestamp: Option<i64>,
        /// WRITE, CREATE TABLE, OPTIMIZE, DELETE, VACUUM START, ...
        pub operation: Option<String>,
        /// The operation's parameters as recorded in the commit.
        pub parameters: serde_json::Value,
        /// The operation's recorded metrics, plus `files_added`, `files_removed` and
        /// `rows_added` counted from the commit.
        pub metrics: serde_json::Map<String, serde_json::Value>,
    }
}

api_object! {
    /// Commits, newest first.
    pub struct TableHistory {
        pub history: Vec<CommitEntry>,
    }
}

api_object! {
    /// Rows as arrays in `columns` order, newest first; values are JSON as in `/v1/query`.
    pub struct TablePreview {
        pub table: String,
        pub columns: Vec<String>,
        pub rows: Vec<Vec<serde_json::Value>>,
    }
}

api_object! {
    /// Quarantined rows, newest first: each an object of the quarantine table's columns
    /// (for a table reading a source: `raw`, `reason`, `partition`, `offset`).
    pub struct QuarantineRows {
        /// The quarantine table read.
        pub table: String,
        /// Rows quarantined per reason since the pipeline started.
        pub by_reason: BTreeMap<String, u64>,
        pub rows: Vec<serde_json::Map<String, serde_json::Value>>,
    }
}

api_object! {
    /// A record a source refused.
    pub struct DeadLetter {
        /// The source that refused it.
        pub source: String,
        /// Partition of the dead-letter topic.
        pub partition: u32,
        /// Offset in the dead-letter topic.
        pub offset: u64,
        /// When it was refused, ms since the epoch.
        pub ts: i64,
        /// not_utf8, line_too_large, ...
        pub reason: String,
        /// The reason with its detail.
        pub error: String,
        /// The record as text, or as lowercase hex when it is not UTF-8.
        pub raw: String,
        /// utf8 or hex.
        pub raw_encoding: String,
    }
}

api_object! {
    /// Dead letters, newest first.
    pub struct DeadLetterList {
        /// All dead letters kept in the topic.
        pub total: u64,
        pub dead_letters: Vec<DeadLetter>,
    }
}

api_query! {
    pub struct HistoryQuery {
        /// Most commits to return: 1..=1000 (default 20).
        limit: integer,
    }
}

api_query! {
    pub struct RowsQuery {
        /// Most rows to return: 1..=1000 (default 50).
        limit: integer,
    }
}

fn unknown_table(weir: &weir_orchestrator::Weir, name: &str) -> ApiError {
    let names: Vec<String> = catalog::tables(weir.project())
        .into_iter()
        .map(|e| e.name)
        .collect();
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorKind::User,
        format!("no table named `{name}` (tables: {})", names.join(", ")),
    )
}

fn lake_err(e: weir_lake::LakeError) -> ApiError {
    ApiError::from_kind(e.kind(), e.to_string())
}

/// The Delta figures of `e` (`None` before its first commit).
async fn detail_of(st: &AppState, e: &Entry) -> Result<Option<Arc<LakeDetail>>, ApiError> {
    if !st.weir.lake().has_table(&e.name).await {
        return Ok(None);
    }
    st.live
        .tables
        .detail(&e.name)
        .await
        .map(Some)
        .map_err(lake_err)
}

fn summary(e: &Entry, d: Option<&LakeDetail>) -> TableSummary {
    TableSummary {
        name: e.name.clone(),
        layer: e.layer,
        kind: e.kind,
        role: e.role,
        version: d.map_or(-1, |d| d.version),
        rows: d.map_or(0, |d| d.rows),
        files: d.map_or(0, |d| d.files),
        size_bytes: d.map_or(0, |d| d.size_bytes),
        partition_by: e.partition_by.clone(),
        last_commit: d.and_then(|d| d.last_commit_ms),
    }
}

/// `GET /v1/tables`.
pub async fn list(State(st): State<AppState>) -> Result<axum::Json<TableList>, ApiError> {
    let mut tables = Vec::new();
    for e in catalog::tables(st.weir.project()) {
        let d = detail_of(&st, &e).await?;
        tables.push(summary(&e, d.as_deref()));
    }
    Ok(axum::Json(TableList { tables }))
}

/// `GET /v1/tables/{name}`.
pub async fn show(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> Result<axum::Json<TableDetail>, ApiError> {
    let e =
        catalog::find(st.weir.project(), &name).ok_or_else(|| unknown_table(&st.weir, &name))?;
    let d = detail_of(&st, &e).await?;
    let s = summary(&e, d.as_deref());
    Ok(axum::Json(TableDetail {
        name: s.name,
        layer: s.layer,
        kind: s.kind,
        role: s.role,
        version: s.version,
        rows: s.rows,
        files: s.files,
        size_bytes: s.size_bytes,
        partition_by: s.partition_by,
        last_commit: s.last_commit,
        schema: d
            .as_ref()
            .map(|d| {
                d.schema
                    .iter()
                    .map(|c| Column {
                        name: c.name.clone(),
                        r#type: c.data_type.clone(),
                        nullable: c.nullable,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        partitions: d
            .as_ref()
            .map(|d| {
                d.partitions
                    .iter()
                    .map(|p| Partition {
                        values: p.values.clone(),
                        files: p.files,
                        rows: p.rows,
                        size_bytes: p.size_bytes,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        sql: e.sql.clone(),
        from: e.from.clone().or(e.parent.clone()),
        inputs: e.inputs.clone(),
    }))
}

/// `GET /v1/tables/{name}/history`.
pub async fn history(
    State(st): State<AppState>,
    Path(name): Path<String>,
    q: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<axum::Json<TableHistory>, ApiError> {
    let Query(q) = q.map_err(query_error)?;
    let limit = parse_limit(q.limit.as_deref(), 20, 1000)?;
    catalog::find(st.weir.project(), &name).ok_or_else(|| unknown_table(&st.weir, &name))?;
    if !st.weir.lake().has_table(&name).await {
        return Ok(axum::Json(TableHistory {
            history: Vec::new(),
        }));
    }
    let lake = st.weir.lake().clone();
    let commits = tokio::task::spawn_blocking(move || lake.history(&name, limit))
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorKind::Internal,
                format!("reading the history stopped: {e}"),
            )
        })?
        .map_err(lake_err)?;
    Ok(axum::Json(TableHistory {
        history: commits
            .into_iter()
            .map(|c| CommitEntry {
                version: c.version,
                timestamp: c.timestamp_ms,
                operation: c.operation,
                parameters: c.parameters,
                metrics: c.metrics,
            })
            .collect(),
    }))
}

/// The newest `limit` rows of `table` as column names and JSON objects.
async fn newest(
    st: &AppState,
    table: &str,
    limit: usize,
) -> Result<(Vec<String>, Vec<serde_json::Map<String, serde_json::Value>>), ApiError> {
    if !st.weir.lake().has_table(table).await {
        return Ok((Vec::new(), Vec::new()));
    }
    let (schema, batches) = st
        .live
        .tables
        .newest_rows(table, limit)
        .await
        .map_err(lake_err)?;
    let columns = schema.fields().iter().map(|f| f.name().clone()).collect();
    let json = weir_sql::format::to_json(&batches)
        .map_err(|e| ApiError::from_kind(e.kind(), e.to_string()))?;
    let rows: Vec<serde_json::Map<String, serde_json::Value>> = serde_json::from_str(&json)
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorKind::Internal,
                format!("rows of `{table}` did not render as JSON objects: {e}"),
            )
        })?;
    Ok((columns, rows))
}

/// `GET /v1/tables/{name}/preview`.
pub async fn preview(
    State(st): State<AppState>,
    Path(name): Path<String>,
    q: Result<Query<RowsQuery>, QueryRejection>,
) -> Result<axum::Json<TablePreview>, ApiError> {
    let Query(q) = q.map_err(query_error)?;
    let limit = parse_limit(q.limit.as_deref(), 50, 1000)?;
    catalog::find(st.weir.project(), &name).ok_or_else(|| unknown_table(&st.weir, &name))?;
    let (columns, objects) = newest(&st, &name, limit).await?;
    // The JSON writer leaves out null values; an absent column is a null.
    let rows = objects
        .into_iter()
        .map(|mut o| {
            columns
                .iter()
                .map(|c| o.remove(c).unwrap_or(serde_json::Value::Null))
                .collect()
        })
        .collect();
    Ok(axum::Json(TablePreview {
        table: name,
        columns,
        rows,
    }))
}

/// `GET /v1/tables/{name}/quarantine`.
pub async fn quarantine(
    State(st): State<AppState>,
    Path(name): Path<String>,
    q: Result<Query<RowsQuery>, QueryRejection>,
) -> Result<axum::Json<QuarantineRows>, ApiError> {
    let Query(q) = q.map_err(query_error)?;
    let limit = parse_limit(q.limit.as_deref(), 50, 1000)?;
    let e =
        catalog::find(st.weir.project(), &name).ok_or_else(|| unknown_table(&st.weir, &name))?;
    let side = format!("{name}_quarantine");
    if e.kind != TableKind::Stream
        || e.role != TableRole::Table
        || e.layer == Some(Layer::Bronze)
        || catalog::find(st.weir.project(), &side).is_none()
    {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorKind::User,
            format!(
                "table `{name}` has no quarantine: only streaming tables of weir.toml quarantine rows"
            ),
        ));
    }
    let mut by_reason = BTreeMap::new();
    if let Some(t) = st.weir.pipeline_status().tables.get(&name) {
        let quarantining: Vec<&str> = st.weir.project().config.tables[&name]
            .expectations
            .iter()
            .filter(|x| x.action == weir_sql::spec::Action::Quarantine)
            .map(|x| x.name.as_str())
            .collect();
        let mut named = 0;
        for (reason, n) in &t.metrics.expectation_failures {
            if quarantining.contains(&reason.as_str()) {
                by_reason.insert(reason.clone(), *n);
                named += n;
            }
        }
        let malformed = t.metrics.quarantined.saturating_sub(named);
        if malformed > 0 {
            by_reason.insert(weir_sql::stream::MALFORMED_JSON.to_owned(), malformed);
        }
    }
    let (_, rows) = newest(&st, &side, limit).await?;
    Ok(axum::Json(QuarantineRows {
        table: side,
        by_reason,
        rows,
    }))
}

/// `GET /v1/dead-letters`.
pub async fn dead_letters(
    State(st): State<AppState>,
    q: Result<Query<RowsQuery>, QueryRejection>,
) -> Result<axum::Json<DeadLetterList>, ApiError> {
    let Query(q) = q.map_err(query_error)?;
    let limit = parse_limit(q.limit.as_deref(), 50, 1000)?;
    let weir = st.weir.clone();
    let list = tokio::task::spawn_blocking(move || read_dead_letters(&weir, limit))
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorKind::Internal,
                format!("reading dead letters stopped: {e}"),
            )
        })??;
    Ok(axum::Json(list))
}

fn read_dead_letters(
    weir: &weir_orchestrator::Weir,
    limit: usize,
) -> Result<DeadLetterList, ApiError> {
    let Some(topic) = weir.log().topic(weir_connectors::dlq::DLQ_TOPIC) else {
        return Ok(DeadLetterList {
            total: 0,
            dead_letters: Vec::new(),
        });
    };
    let mut out = Vec::new();
    let mut total = 0;
    for p in 0..topic.partition_count() {
        let Some(part) = topic.partition(p) else {
            continue;
        };
        let (start, end) = (part.start_offset(), part.end_offset());
        total += end - start;
        let from = end.saturating_sub(limit as u64).max(start);
        let recs = part
            .read(from, limit, 64 << 20)
            .map_err(|e| ApiError::from_kind(e.kind(), e.to_string()))?;
        for r in recs.into_iter().filter(|r| r.offset < end) {
            let v: serde_json::Value = serde_json::from_slice(&r.value).unwrap_or_default();
            let text = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_owned();
            let (reason, detail) = (text("reason"), text("detail"));
            out.push(DeadLetter {
                source: text("source"),
                partition: p,
                offset: r.offset,
                ts: r.timestamp_ms,
                error: if detail.is_empty() {
                    reason.clone()
                } else {
                    format!("{reason}: {detail}")
                },
                reason,
                raw: text("raw"),
                raw_encoding: text("raw_encoding"),
            });
        }
    }
    out.sort_by(|a, b| b.ts.cmp(&a.ts).then(b.offset.cmp(&a.offset)));
    out.truncate(limit);
    Ok(DeadLetterList {
        total,
        dead_letters: out,
    })
}
