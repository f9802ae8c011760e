//! Read-only views of a table for people and dashboards: its schema, files and partitions
//! ([`TableInspector::detail`]), its commit history ([`Lake::history`]) and its newest rows
//! ([`TableInspector::newest_rows`]). Nothing here writes; the writers are in `table.rs`.
//!
//! The history and the newest rows are read from the files directly (the `_delta_log` commit
//! files and the newest Parquet files, locally or in the object store), so a dashboard polling
//! them costs a few small reads. [`TableInspector`] keeps one snapshot per table and moves it
//! forward incrementally when the table has new commits, at most once per [`FRESH`] for
//! details.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, RecordBatch, StringArray, new_null_array};
use arrow::datatypes::SchemaRef;
use deltalake::DeltaTable;
use deltalake::logstore::object_store::path::Path as ObjectPath;
use deltalake::logstore::object_store::{ObjectStore, ObjectStoreExt as _};
use deltalake::parquet::arrow::ParquetRecordBatchStreamBuilder;
use deltalake::parquet::arrow::arrow_reader::ArrowReaderOptions;
use deltalake::parquet::arrow::async_reader::AsyncFileReader;
use deltalake::parquet::errors::ParquetError;
use deltalake::parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use futures::future::BoxFuture;
use futures::{FutureExt as _, StreamExt as _, TryStreamExt as _};
use serde::Serialize;

use crate::error::{LakeError, Result};
use crate::object::ObjectLake;
use crate::table::Lake;

/// One column of a table's schema.
#[derive(Debug, Clone, Serialize)]
pub struct ColumnInfo {
    pub name: String,
    /// Delta type name: string, long, double, boolean, date, timestamp, ...
    pub data_type: String,
    pub nullable: bool,
}

/// The files of one partition (one set of partition values).
#[derive(Debug, Clone, Serialize)]
pub struct PartitionInfo {
    /// Partition column → value (`None` for a null partition value).
    pub values: BTreeMap<String, Option<String>>,
    pub files: u64,
    pub rows: u64,
    pub size_bytes: u64,
}

/// A table's state at its latest version.
#[derive(Debug, Clone, Serialize)]
pub struct TableDetail {
    pub name: String,
    pub version: i64,
    pub files: u64,
    /// Rows over all files, from the files' statistics.
    pub rows: u64,
    pub size_bytes: u64,
    pub schema: Vec<ColumnInfo>,
    /// Partitions sorted by their values; empty for an unpartitioned table.
    pub partitions: Vec<PartitionInfo>,
    /// Time of the latest commit, ms since the epoch.
    pub last_commit_ms: Option<i64>,
}

/// One commit of a table's Delta log.
#[derive(Debug, Clone, Serialize)]
pub struct Commit {
    pub version: i64,
    /// ms since the epoch, from the commit's `commitInfo`.
    pub timestamp_ms: Option<i64>,
    /// WRITE, CREATE TABLE, OPTIMIZE, VACUUM END, DELETE, ...
    pub operation: Option<String>,
    /// The operation's parameters as delta-rs recorded them.
    pub parameters: serde_json::Value,
    /// The operation's metrics as recorded, plus `files_added`, `files_removed` and
    /// `rows_added` counted from the commit's actions.
    pub metrics: serde_json::Map<String, serde_json::Value>,
}

impl Lake {
    /// The newest `limit` commits of table `name`, newest first. On object storage the reads
    /// run on the lake's own IO runtime while this thread waits; async code should prefer
    /// [`Lake::history_async`].
    pub fn history(&self, name: &str, limit: usize) -> Result<Vec<Commit>> {
        match self.object() {
            None => local_history(self, name, limit),
            Some(o) => {
                let name = name.to_owned();
                o.wait(|o| async move { o.history(&name, limit).await })
                    .unwrap_or_else(|| Err(self.io_stopped()))
            }
        }
    }

    /// [`Lake::history`] for async callers: never blocks the calling thread.
    pub async fn history_async(&self, name: &str, limit: usize) -> Result<Vec<Commit>> {
        match self.object() {
            None => self.history(name, limit),
            Some(o) => {
                let name = name.to_owned();
                o.run(|o| async move { o.history(&name, limit).await })
                    .await
                    .unwrap_or_else(|| Err(self.io_stopped()))
            }
        }
    }

    fn io_stopped(&self) -> LakeError {
        LakeError::BadLocation {
            path: self.location(),
            reason: "a request to the object store stopped before it answered (see the log)".into(),
        }
    }

    fn no_such_table(&self, name: &str) -> LakeError {
        LakeError::NoSuchTable {
            table: name.to_owned(),
            root: self.location(),
        }
    }
}

/// The history of a table of a local lake, from the commit files in its `_delta_log`.
fn local_history(lake: &Lake, name: &str, limit: usize) -> Result<Vec<Commit>> {
    let Some(dir) = lake
        .local_root()
        .map(|root| root.join(name).join("_delta_log"))
        .filter(|dir| dir.is_dir())
    else {
        return Err(lake.no_such_table(name));
    };
    let dir = dir.as_path();
    let mut versions: Vec<i64> = std::fs::read_dir(dir)
        .map_err(|source| LakeError::Io {
            path: dir.display().to_string(),
            source,
        })?
        .flatten()
        .filter_map(|e| {
            let n = e.file_name();
            n.to_str()?.strip_suffix(".json")?.parse::<i64>().ok()
        })
        .collect();
    versions.sort_unstable_by(|a, b| b.cmp(a));
    versions.truncate(limit);
    let mut out = Vec::with_capacity(versions.len());
    for v in versions {
        let path = dir.join(format!("{v:020}.json"));
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            // Removed by log cleanup between the listing and now: the list ends there.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
            Err(source) => {
                return Err(LakeError::Io {
                    path: path.display().to_string(),
                    source,
                });
            }
        };
        out.push(parse_commit(v, &text));
    }
    Ok(out)
}

impl ObjectLake {
    /// The newest `limit` commits of table `name`, newest first: the versions counted down
    /// from the newest, read a few at a time, up to the first one that no longer exists
    /// (removed by log cleanup).
    pub(crate) async fn history(&self, name: &str, limit: usize) -> Result<Vec<Commit>> {
        let latest = self.latest_version(name).await?;
        if latest < 0 {
            return Err(LakeError::NoSuchTable {
                table: name.to_owned(),
                root: self.url.to_string(),
            });
        }
        let versions = (0..=latest).rev().take(limit);
        let texts: Vec<(i64, Result<Option<String>>)> = futures::stream::iter(versions)
            .map(|v| async move { (v, self.read_commit(name, v).await) })
            .buffered(8)
            .collect()
            .await;
        let mut out = Vec::with_capacity(texts.len());
        for (v, text) in texts {
            match text? {
                Some(text) => out.push(parse_commit(v, &text)),
                None => break,
            }
        }
        Ok(out)
    }
}

fn delta_err(table: &str, op: &'static str, e: deltalake::DeltaTableError) -> LakeError {
    LakeError::Delta {
        table: table.to_owned(),
        op,
        source: Box::new(e),
    }
}

/// The last `n` rows of data file `path` (of `size` bytes) in `store`, last row first, as a
/// batch of the table's schema (partition columns filled from the file's partition values).
/// Reads the footer and only the row groups holding those rows.
async fn read_tail(
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    size: u64,
    n: usize,
    schema: &SchemaRef,
    parts: &HashMap<String, Option<String>>,
) -> Result<RecordBatch> {
    let bad = |reason: String| LakeError::BadLocation {
        path: path.to_string(),
        reason,
    };
    let reader = RangeReader {
        store,
        path: path.clone(),
        size,
    };
    let builder = ParquetRecordBatchStreamBuilder::new(reader)
        .await
        .map_err(|e| bad(e.to_string()))?;
    let groups = builder.metadata().row_groups();
    let count = groups.len();
    let mut first = count;
    let mut rows = 0usize;
    while first > 0 && rows < n {
        first -= 1;
        rows += usize::try_from(groups[first].num_rows()).unwrap_or(0);
    }
    let stream = builder
        .with_row_groups((first..count).collect())
        .build()
        .map_err(|e| bad(e.to_string()))?;
    let batches: Vec<RecordBatch> = stream.try_collect().await.map_err(|e| bad(e.to_string()))?;
    let file_schema = match batches.first() {
        Some(b) => b.schema(),
        None => return Ok(RecordBatch::new_empty(schema.clone())),
    };
    let all =
        arrow::compute::concat_batches(&file_schema, &batches).map_err(|e| bad(e.to_string()))?;
    let take = n.min(all.num_rows());
    let idx = arrow::array::UInt32Array::from_iter_values(
        (0..take).map(|i| u32::try_from(all.num_rows() - 1 - i).unwrap_or(0)),
    );
    let mut cols: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for f in schema.fields() {
        let col = match all.column_by_name(f.name()) {
            Some(c) => arrow::compute::take(c, &idx, None).map_err(|e| bad(e.to_string()))?,
            None => match parts.get(f.name()) {
                Some(Some(v)) => {
                    let s: ArrayRef = Arc::new(StringArray::from(vec![v.as_str(); take]));
                    arrow::compute::cast(&s, f.data_type()).map_err(|e| bad(e.to_string()))?
                }
                _ => new_null_array(f.data_type(), take),
            },
        };
        let col = if col.data_type() == f.data_type() {
            col
        } else {
            arrow::compute::cast(&col, f.data_type()).map_err(|e| bad(e.to_string()))?
        };
        cols.push(col);
    }
    RecordBatch::try_new(schema.clone(), cols).map_err(|e| bad(e.to_string()))
}

/// A Parquet file of `size` bytes in an object store, read by byte ranges: the footer, then the
/// column chunks of the row groups asked for.
struct RangeReader {
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    size: u64,
}

impl AsyncFileReader for RangeReader {
    fn get_bytes(
        &mut self,
        range: std::ops::Range<u64>,
    ) -> BoxFuture<'_, deltalake::parquet::errors::Result<bytes::Bytes>> {
        async move {
            self.store
                .get_range(&self.path, range)
                .await
                .map_err(|e| ParquetError::External(Box::new(e)))
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, deltalake::parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.size;
            let metadata = ParquetMetaDataReader::new()
                .with_arrow_reader_options(options)
                .load_and_finish(&mut *self, size)
                .await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}

fn parse_commit(version: i64, text: &str) -> Commit {
    let mut c = Commit {
        version,
        timestamp_ms: None,
        operation: None,
        parameters: serde_json::Value::Object(serde_json::Map::new()),
        metrics: serde_json::Map::new(),
    };
    let (mut added, mut removed, mut rows) = (0u64, 0u64, 0u64);
    for line in text.lines() {
        let Ok(serde_json::Value::Object(action)) = serde_json::from_str(line) else {
            continue;
        };
        if let Some(info) = action.get("commitInfo") {
            c.timestamp_ms = info.get("timestamp").and_then(serde_json::Value::as_i64);
            c.operation = info
                .get("operation")
                .and_then(|o| o.as_str())
                .map(str::to_owned);
            if let Some(p) = info.get("operationParameters") {
                c.parameters = p.clone();
            }
            if let Some(serde_json::Value::Object(m)) = info.get("operationMetrics") {
                c.metrics.extend(m.clone());
            }
        } else if let Some(add) = action.get("add") {
            added += 1;
            // `stats` is a JSON document inside a string.
            rows += add
                .get("stats")
                .and_then(|s| s.as_str())
                .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
                .and_then(|s| s.get("numRecords").and_then(serde_json::Value::as_u64))
                .unwrap_or(0);
        } else if action.contains_key("remove") {
            removed += 1;
        }
    }
    c.metrics.insert("files_added".into(), added.into());
    c.metrics.insert("files_removed".into(), removed.into());
    c.metrics.insert("rows_added".into(), rows.into());
    c
}

/// How long a computed [`TableDetail`] is served before the table is looked at again: with a
/// pipeline committing several times a second, dashboards polling every table then cost at
/// most one snapshot update per table and period, however many there are.
pub const FRESH: Duration = Duration::from_secs(1);

/// Table details for a dashboard that asks often: one Delta snapshot per table, moved forward
/// incrementally when the table has new commits, and the computed [`TableDetail`] kept until
/// the next commit (and for at least [`FRESH`]).
pub struct TableInspector {
    lake: Lake,
    tables: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Cached>>>>,
}

#[derive(Default)]
struct Cached {
    table: Option<DeltaTable>,
    /// The detail of the snapshot's version and when it was computed.
    detail: Option<(Instant, Arc<TableDetail>)>,
}

impl TableInspector {
    pub fn new(lake: Lake) -> Self {
        Self {
            lake,
            tables: Mutex::new(HashMap::new()),
        }
    }

    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    fn slot(&self, name: &str) -> Arc<tokio::sync::Mutex<Cached>> {
        match self.tables.lock() {
            Ok(mut t) => t.entry(name.to_owned()).or_default().clone(),
            // A panic while holding this lock cannot leave the map inconsistent.
            Err(p) => p.into_inner().entry(name.to_owned()).or_default().clone(),
        }
    }

    /// Table `name`'s cache entry, its snapshot moved to the table's latest version.
    async fn latest(&self, name: &str) -> Result<tokio::sync::OwnedMutexGuard<Cached>> {
        if !self.lake.has_table(name).await {
            return Err(self.lake.no_such_table(name));
        }
        let mut cached = self.slot(name).lock_owned().await;
        let latest = self.lake.latest_version_async(name).await;
        let c = &mut *cached;
        let current = c.table.as_ref().map_or(-1, version_of);
        match c.table.as_mut() {
            Some(t) if current < latest => {
                c.detail = None;
                if let Err(e) = t.update_incremental(None).await {
                    c.table = None;
                    return Err(delta_err(name, "update", e));
                }
            }
            // Opened and current.
            Some(_) if current == latest => {}
            // Never opened, or the table was recreated with fewer commits.
            _ => {
                c.detail = None;
                c.table = Some(self.lake.open(name, None).await?);
            }
        }
        Ok(cached)
    }

    /// Schema, files, rows, size and partitions of table `name` at its latest version (as of
    /// at most [`FRESH`] ago).
    pub async fn detail(&self, name: &str) -> Result<Arc<TableDetail>> {
        {
            let cached = self.slot(name).lock_owned().await;
            if let Some((at, d)) = &cached.detail
                && at.elapsed() < FRESH
                && self.lake.has_table(name).await
            {
                return Ok(d.clone());
            }
        }
        let mut cached = self.latest(name).await?;
        if let Some((_, d)) = &cached.detail {
            // Still the latest version.
            return Ok(d.clone());
        }
        let table = cached
            .table
            .as_ref()
            .ok_or_else(|| self.lake.no_such_table(name))?;
        let last_commit_ms = self
            .lake
            .history_async(name, 1)
            .await
            .ok()
            .and_then(|h| h.first().and_then(|c| c.timestamp_ms));
        let d = Arc::new(compute_detail(name, table, last_commit_ms)?);
        cached.detail = Some((Instant::now(), d.clone()));
        Ok(d)
    }

    /// Up to `limit` of the newest rows of table `name`, newest first, with the table's
    /// schema.
    ///
    /// "Newest" is by file: the rows of the most recently written files, the last rows of
    /// each file first (a micro-batch appends its rows in input order). A compaction rewrites
    /// old rows into a new file, so right after one the order is approximate.
    pub async fn newest_rows(
        &self,
        name: &str,
        limit: usize,
    ) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let (schema, mut files, store) = {
            let cached = self.latest(name).await?;
            let table = cached
                .table
                .as_ref()
                .ok_or_else(|| self.lake.no_such_table(name))?;
            let snapshot = table
                .snapshot()
                .map_err(|e| delta_err(name, "snapshot", e))?
                .snapshot();
            type File = (i64, ObjectPath, u64, HashMap<String, Option<String>>);
            let files: Vec<File> = snapshot
                .try_log_data()
                .map_err(|e| delta_err(name, "list files", e))?
                .iter()
                .map(|f| {
                    (
                        f.modification_time(),
                        f.object_store_path(),
                        u64::try_from(f.size()).unwrap_or(0),
                        f.partition_values_map(),
                    )
                })
                .collect();
            // Rooted at the table, like the files' paths; the table's own client, which runs
            // on this (the caller's) runtime.
            let store = table.log_store().object_store(None);
            (snapshot.arrow_schema(), files, store)
        };
        files.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.cmp(&a.1)));
        let mut out = Vec::new();
        let mut left = limit;
        for (_, path, size, parts) in files {
            if left == 0 {
                break;
            }
            let batch = read_tail(store.clone(), path, size, left, &schema, &parts).await?;
            left = left.saturating_sub(batch.num_rows());
            out.push(batch);
        }
        Ok((schema, out))
    }
}

fn version_of(table: &DeltaTable) -> i64 {
    table
        .version()
        .map_or(-1, |v| i64::try_from(v).unwrap_or(i64::MAX))
}

fn compute_detail(
    name: &str,
    table: &DeltaTable,
    last_commit_ms: Option<i64>,
) -> Result<TableDetail> {
    let snapshot = table
        .snapshot()
        .map_err(|e| delta_err(name, "snapshot", e))?;
    let schema = snapshot
        .schema()
        .fields()
        .map(|f| ColumnInfo {
            name: f.name().clone(),
            data_type: f.data_type().to_string(),
            nullable: f.is_nullable(),
        })
        .collect();
    let mut parts: BTreeMap<Vec<(String, Option<String>)>, PartitionInfo> = BTreeMap::new();
    let (mut files, mut rows, mut size) = (0u64, 0u64, 0u64);
    for f in snapshot
        .snapshot()
        .try_log_data()
        .map_err(|e| delta_err(name, "list files", e))?
        .iter()
    {
        let n = f.num_records().unwrap_or(0) as u64;
        let s = u64::try_from(f.size()).unwrap_or(0);
        files += 1;
        rows += n;
        size += s;
        let values: BTreeMap<String, Option<String>> =
            f.partition_values_map().into_iter().collect();
        if values.is_empty() {
            continue;
        }
        let key: Vec<(String, Option<String>)> = values.clone().into_iter().collect();
        let p = parts.entry(key).or_insert_with(|| PartitionInfo {
            values,
            files: 0,
            rows: 0,
            size_bytes: 0,
        });
        p.files += 1;
        p.rows += n;
        p.size_bytes += s;
    }
    Ok(TableDetail {
        name: name.to_owned(),
        version: version_of(table),
        files,
        rows,
        size_bytes: size,
        schema,
        partitions: parts.into_values().collect(),
        last_commit_ms,
    })
}
