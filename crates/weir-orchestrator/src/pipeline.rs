//! The micro-batch loop: log → streaming tables → Delta, exactly once.
//!
//! Batch N reads fixed offset ranges of every source topic, runs each chunk (one partition's
//! records) through the tables in dependency order, and then, in this order:
//! 1. writes the operator state files and checkpoint N (ranges + state), durably;
//! 2. appends each output to its Delta table in a commit tagged `txn("weir", N)`;
//! 3. moves the log cursors.
//!
//! After a crash, the last checkpoint L is replayed from the state of checkpoint L−1: the
//! replay produces the same rows, and only the tables whose `txn` is still below L get them.
//! So every input record reaches every table exactly once, whenever the process dies.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, Int32Array, Int64Array, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use weir_lake::{Lake, LakeTable};
use weir_log::{Log, StoredRecord};
use weir_sql::decode::utc_micros;
use weir_sql::spec::{DedupSpec, ExpectationSpec, InputSpec, TableSpec, WindowSpec};
use weir_sql::stream::{Input, Output, StreamingTable, TableMetrics};

use crate::checkpoint::{Checkpoint, CheckpointStore, Ranges};
use crate::config::{Project, parse_schema};
use crate::error::{OrchestratorError, Result};
use crate::status::{LatencyHistogram, PipelineStatus, SinkStatus, TableStatus};
use weir_connectors::sink::Sink;

/// Application id carried by every Delta commit of the pipeline.
pub const APP_ID: &str = "weir-pipeline";
/// Log consumer group of the pipeline.
pub const GROUP: &str = "pipeline";
/// Records read from the log per chunk.
const CHUNK_RECORDS: usize = 65_536;

/// The running pipeline of one project.
pub struct Pipeline {
    log: Arc<Log>,
    store: CheckpointStore,
    topics: Vec<String>,
    tables: Vec<StreamingTable>,
    writers: BTreeMap<String, LakeTable>,
    partition_by: BTreeMap<String, Vec<String>>,
    max_batch: usize,
    /// The last checkpoint written; the next batch starts after it.
    last: Option<Checkpoint>,
    /// The last checkpoint whose outputs are committed to every table.
    committed: Option<Checkpoint>,
    /// The batch whose Delta commits are running in the background.
    inflight: Option<Inflight>,
    /// Wall time of each table's Delta commit (ms) since the last published batch.
    commit_ms: Vec<(String, i64)>,
    /// Sinks by name with the table they read; a sink travels with its task like a writer.
    sinks: BTreeMap<String, (String, Option<Box<dyn Sink>>)>,
    status: Arc<Mutex<PipelineStatus>>,
    stop: Arc<AtomicBool>,
}

type SinkTask = tokio::task::JoinHandle<(String, Box<dyn Sink>, Result<()>)>;

type CommitTask = tokio::task::JoinHandle<(
    String,
    LakeTable,
    weir_lake::Result<Option<i64>>,
    std::time::Duration,
)>;

/// A checkpointed batch whose outputs are being committed.
struct Inflight {
    ckpt: Checkpoint,
    tasks: Vec<CommitTask>,
    sink_tasks: Vec<SinkTask>,
    ingest_ms: Vec<i64>,
    records: u64,
    started: Instant,
}

/// Everything one batch produced, per Delta table.
#[derive(Default)]
struct BatchOutput {
    tables: BTreeMap<String, Vec<RecordBatch>>,
    /// Ingest timestamps (ms) of the records read, for latency.
    ingest_ms: Vec<i64>,
    records: u64,
}

impl BatchOutput {
    fn add(&mut self, table: String, batches: Vec<RecordBatch>) {
        if !batches.is_empty() {
            self.tables.entry(table).or_default().extend(batches);
        }
    }
}

/// Builds the SQL layer's table specs from the project.
pub fn table_specs(project: &Project) -> Result<Vec<TableSpec>> {
    let c = &project.config;
    let mut specs = Vec::new();
    for name in project.stream_order()? {
        let t = &c.tables[&name];
        let input = match &t.schema {
            Some(s) if c.sources.contains_key(&t.from) => InputSpec::Raw {
                // validate() already parsed it.
                fields: parse_schema(s).map_err(|m| OrchestratorError::Config {
                    file: project.path.display().to_string(),
                    key: format!("tables.{name}.schema"),
                    message: m,
                })?,
            },
            _ => InputSpec::Table,
        };
        specs.push(TableSpec {
            name: name.clone(),
            from: t.from.clone(),
            input,
            sql: project.sql[&name].clone(),
            expectations: t
                .expectations
                .iter()
                .map(|e| ExpectationSpec {
                    name: e.name.clone(),
                    check: e.check.clone(),
                    action: e.action,
                })
                .collect(),
            dedup: t.dedup.as_ref().map(|d| DedupSpec {
                key: d.key.clone(),
                within_ms: d.within.as_millis_i64(),
            }),
            event_time: t.event_time.clone(),
            window: t.window.as_ref().map(|w| WindowSpec {
                column: w.column.clone(),
                size_ms: w.size.as_millis_i64(),
                lateness_ms: w.lateness.map_or(0, |l| l.as_millis_i64()),
            }),
        });
    }
    Ok(specs)
}

/// Plans every streaming table against its input schema; returns the tables, ready to run.
pub async fn plan_tables(project: &Project) -> Result<Vec<StreamingTable>> {
    Ok(plan_tables_with_schemas(project).await?.0)
}

/// Like [`plan_tables`], also returning each table's output schema.
pub async fn plan_tables_with_schemas(
    project: &Project,
) -> Result<(Vec<StreamingTable>, BTreeMap<String, SchemaRef>)> {
    let mut out_schemas: BTreeMap<String, SchemaRef> = BTreeMap::new();
    let mut tables = Vec::new();
    for spec in table_specs(project)? {
        let name = spec.name.clone();
        let from = spec.from.clone();
        let mut t = StreamingTable::try_new(spec)?;
        let input =
            match t.input_schema() {
                Some(s) => s,
                None => {
                    let s = out_schemas.get(&from).cloned().ok_or_else(|| {
                        OrchestratorError::Config {
                            file: project.path.display().to_string(),
                            key: format!("tables.{name}.from"),
                            message: format!("`{from}` is not a streaming table"),
                        }
                    })?;
                    t.set_input_schema(s.clone())?;
                    s
                }
            };
        let out = t.check_plan(input).await?;
        for col in &project.config.tables[&name].partition_by {
            if out.index_of(col).is_err() {
                return Err(OrchestratorError::Config {
                    file: project.path.display().to_string(),
                    key: format!("tables.{name}.partition_by"),
                    message: format!(
                        "`{col}` is not a column of the table's SQL output ({})",
                        cols(&out)
                    ),
                });
            }
        }
        out_schemas.insert(name, out);
        tables.push(t);
    }
    Ok((tables, out_schemas))
}

fn cols(s: &SchemaRef) -> String {
    s.fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Schema of `bronze_<source>`.
pub fn bronze_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("topic", DataType::Utf8, false),
        Field::new("partition", DataType::Int32, false),
        Field::new("offset", DataType::Int64, false),
        Field::new("key", DataType::Utf8, true),
        Field::new("value", DataType::Utf8, false),
        Field::new("ingest_time", utc_micros(), false),
    ]))
}

fn bronze_batch(topic: &str, partition: u32, recs: &[StoredRecord]) -> Result<RecordBatch> {
    let n = recs.len();
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(std::iter::repeat_n(topic, n))),
        Arc::new(Int32Array::from(vec![
            i32::try_from(partition)
                .unwrap_or(i32::MAX);
            n
        ])),
        Arc::new(Int64Array::from_iter_values(
            recs.iter()
                .map(|r| i64::try_from(r.offset).unwrap_or(i64::MAX)),
        )),
        Arc::new(StringArray::from_iter(
            recs.iter()
                .map(|r| r.key.as_deref().map(String::from_utf8_lossy)),
        )),
        Arc::new(raw_text(recs)),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(recs.iter().map(|r| r.timestamp_ms * 1000))
                .with_timezone("UTC"),
        ),
    ];
    RecordBatch::try_new(bronze_schema(), cols).map_err(|e| OrchestratorError::Corrupt {
        path: format!("bronze batch of `{topic}`"),
        reason: e.to_string(),
    })
}

/// The records' values as a string column. Sources only log valid UTF-8 (anything else is
/// dead-lettered), so the whole buffer is validated in one pass; a record that is not UTF-8
/// anyway (a log written by something else) is kept with replacement characters.
fn raw_text(recs: &[StoredRecord]) -> StringArray {
    let bin = arrow::array::BinaryArray::from_iter_values(recs.iter().map(|r| r.value.as_slice()));
    match StringArray::try_from_binary(bin) {
        Ok(s) => s,
        Err(_) => {
            StringArray::from_iter_values(recs.iter().map(|r| String::from_utf8_lossy(&r.value)))
        }
    }
}

/// The id of this project's data: made at random the first time and kept in
/// `<data_dir>/instance`, so that a project started afresh (its data directory deleted) is a
/// new instance. Sinks that record delivered batch ids in their target key them by it, or a
/// fresh project's batch 1 would be taken for a replay of an old one's.
pub fn instance_id(data_dir: &std::path::Path) -> Result<String> {
    use std::hash::{BuildHasher, Hasher};
    let path = data_dir.join("instance");
    let io = |source| OrchestratorError::Io {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => return Ok(s.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    // RandomState is seeded from the OS's randomness; two of them make 128 bits.
    let mut id = String::new();
    for _ in 0..2 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        id.push_str(&format!("{:016x}", h.finish()));
    }
    std::fs::create_dir_all(data_dir).map_err(io)?;
    let tmp = data_dir.join("instance.tmp");
    std::fs::write(&tmp, format!("{id}\n")).map_err(io)?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)?;
    Ok(id)
}

impl Pipeline {
    /// Opens the pipeline: plans tables, opens Delta writers and recovers from the last
    /// checkpoint (replaying its batch into the tables that missed it).
    pub async fn open(
        project: &Project,
        log: Arc<Log>,
        lake: Lake,
        status: Arc<Mutex<PipelineStatus>>,
        stop: Arc<AtomicBool>,
    ) -> Result<Self> {
        let (tables, out_schemas) = plan_tables_with_schemas(project).await?;
        let mut sinks = BTreeMap::new();
        let instance = if project.config.sinks.is_empty() {
            String::new()
        } else {
            instance_id(&project.data_dir())?
        };
        for (name, k) in &project.config.sinks {
            sinks.insert(
                name.clone(),
                (k.from().to_owned(), Some(k.build(name, &instance)?)),
            );
            if let Ok(mut st) = status.lock() {
                let e = st.sinks.entry(name.clone()).or_default();
                e.kind = k.kind().to_owned();
                e.from = k.from().to_owned();
            }
        }
        let store = CheckpointStore::open(project.data_dir().join("checkpoints"))?;
        let topics: Vec<String> = project.config.sources.keys().cloned().collect();
        let mut partition_by = BTreeMap::new();
        for t in &tables {
            let name = t.spec().name.clone();
            partition_by.insert(
                name.clone(),
                project.config.tables[&name].partition_by.clone(),
            );
        }
        let mut p = Pipeline {
            log,
            store,
            topics,
            tables,
            writers: BTreeMap::new(),
            partition_by,
            max_batch: project.config.pipeline.max_batch_records.max(1),
            last: None,
            committed: None,
            inflight: None,
            commit_ms: Vec::new(),
            sinks,
            status,
            stop,
        };
        let mut names: Vec<(String, Option<SchemaRef>)> = p
            .topics
            .iter()
            .map(|t| (format!("bronze_{t}"), Some(bronze_schema())))
            .collect();
        for t in &p.tables {
            names.push((
                t.spec().name.clone(),
                out_schemas.get(&t.spec().name).cloned(),
            ));
            names.push((t.spec().quarantine_table(), t.quarantine_schema()));
            if t.spec().window.is_some() {
                names.push((t.spec().late_table(), t.input_schema()));
            }
        }
        for (n, schema) in names {
            let parts = p.partition_by.get(&n).cloned().unwrap_or_default();
            let mut w = lake.writer(&n, parts).await?;
            if let Some(schema) = schema {
                w.ensure_created(&schema).await?;
            }
            p.writers.insert(n, w);
        }
        p.recover().await?;
        if let Ok(mut st) = p.status.lock() {
            st.committed = p.committed_offsets();
            st.ready = true;
            st.error = None;
        }
        Ok(p)
    }

    async fn recover(&mut self) -> Result<()> {
        let batches = self.store.batches()?;
        let Some(&last) = batches.last() else {
            return Ok(());
        };
        let ckpt = self.store.read(last)?;
        let prev = if last > 0 && batches.contains(&(last - 1)) {
            Some(self.store.read(last - 1)?)
        } else {
            None
        };
        if let Some(prev) = &prev {
            self.restore_state(prev)?;
        } else if last > 0 {
            // Only checkpoint L survives (e.g. the previous was collected before a crash that
            // left L committed everywhere): then L must be complete.
            self.restore_state(&ckpt)?;
            self.committed = Some(ckpt.clone());
            self.last = Some(ckpt);
            tracing::info!(batch = last, "resumed after checkpoint");
            return Ok(());
        }
        tracing::info!(batch = last, "replaying the last checkpointed batch");
        let replayed = self.execute(last, ckpt.ranges.clone()).await?;
        let (state, _files) = self.end_tables(last)?;
        if state != ckpt.tables {
            tracing::warn!(
                batch = last,
                "replayed state differs from the checkpoint (config or SQL changed?); using the checkpoint's"
            );
        }
        self.restore_state(&ckpt)?;
        self.commit_outputs(last, &ckpt.ranges, replayed).await?;
        self.commit_cursors(&ckpt.ranges)?;
        self.committed = Some(ckpt.clone());
        self.last = Some(ckpt);
        Ok(())
    }

    fn restore_state(&mut self, c: &Checkpoint) -> Result<()> {
        for t in &mut self.tables {
            let name = t.spec().name.clone();
            if let Some(s) = c.tables.get(&name) {
                let store = &self.store;
                let mut load = |file: &str| {
                    store
                        .read_state(&name, file)
                        .map_err(|e| weir_sql::SqlError::State {
                            table: name.clone(),
                            reason: e.to_string(),
                        })
                };
                t.restore(s, &mut load)?;
            }
        }
        Ok(())
    }

    /// Next ranges to read: from the last checkpoint's ends to the log's durable ends, capped.
    fn next_ranges(&self) -> Ranges {
        let mut ranges = Ranges::new();
        let mut budget = self.max_batch as u64;
        for topic in &self.topics {
            let Some(t) = self.log.topic(topic) else {
                continue;
            };
            for p in 0..t.partition_count() {
                let Some(part) = t.partition(p) else { continue };
                let from = self
                    .last
                    .as_ref()
                    .and_then(|c| c.next_offset(topic, p))
                    .unwrap_or(0)
                    .max(part.start_offset());
                let end = part.end_offset();
                let to = end.min(from + budget);
                budget -= to - from;
                ranges
                    .entry(topic.clone())
                    .or_default()
                    .insert(p, (from, to));
            }
        }
        ranges
    }

    /// Runs one micro-batch if there is new input. Returns the number of input records.
    ///
    /// The Delta commits of a batch run in the background while the next batch is processed;
    /// they are awaited before the next checkpoint is written (so at most the last checkpoint
    /// is ever incomplete, which is what recovery replays), and when there is no new input.
    pub async fn step(&mut self) -> Result<u64> {
        let ranges = self.next_ranges();
        let records: u64 = ranges
            .values()
            .flat_map(|p| p.values())
            .map(|(a, b)| b - a)
            .sum();
        if records == 0 {
            self.flush().await?;
            return Ok(0);
        }
        let batch_id = self.last.as_ref().map_or(0, |c| c.batch_id + 1);
        let started = Instant::now();
        let out = self.execute(batch_id, ranges.clone()).await?;
        let processed = started.elapsed();
        let (state, files) = self.end_tables(batch_id)?;
        // Batch N may only be checkpointed once batch N−1 is in every table.
        self.flush().await?;
        let waited = started.elapsed();
        for (table, file, rows) in &files {
            self.store.write_state(table, file, rows)?;
        }
        let ckpt = Checkpoint {
            batch_id,
            ranges,
            tables: state,
            created_ms: weir_core::now_ms(),
        };
        self.store.write(&ckpt)?;
        tracing::debug!(
            batch = batch_id,
            records,
            process_ms = processed.as_millis() as u64,
            wait_previous_commit_ms = (waited - processed).as_millis() as u64,
            checkpoint_ms = (started.elapsed() - waited).as_millis() as u64,
            "micro-batch checkpointed"
        );
        self.last = Some(ckpt.clone());
        self.inflight = Some(self.spawn_commits(ckpt, out, started));
        Ok(records)
    }

    /// Waits for the background Delta commits of the last batch, then moves the log cursors,
    /// collects older checkpoints and publishes the batch's status. A no-op when none is in
    /// flight.
    pub async fn flush(&mut self) -> Result<()> {
        let Some(inflight) = self.inflight.take() else {
            return Ok(());
        };
        let batch_id = inflight.ckpt.batch_id;
        let tables = self.join_commits(inflight.tasks).await;
        let sinks = self.join_sinks(inflight.sink_tasks).await;
        tables?;
        sinks?;
        let committed_ms = weir_core::now_ms();
        tracing::debug!(
            batch = batch_id,
            batch_ms = inflight.started.elapsed().as_millis() as u64,
            "micro-batch committed"
        );
        self.commit_cursors(&inflight.ckpt.ranges)?;
        if batch_id >= 1 {
            self.store.gc(batch_id - 1)?;
        }
        self.committed = Some(inflight.ckpt);
        self.publish(
            batch_id,
            inflight.records,
            inflight.started.elapsed().as_secs_f64(),
            &inflight.ingest_ms,
            committed_ms,
        );
        Ok(())
    }

    async fn execute(&mut self, batch_id: u64, ranges: Ranges) -> Result<BatchOutput> {
        let mut out = BatchOutput::default();
        for (topic, parts) in &ranges {
            let Some(t) = self.log.topic(topic) else {
                continue;
            };
            for (&p, &(from, to)) in parts {
                let Some(part) = t.partition(p) else { continue };
                if from < part.start_offset() || to > part.end_offset() {
                    return Err(OrchestratorError::InputGone {
                        batch: batch_id,
                        topic: topic.clone(),
                        partition: p,
                        from,
                        to,
                        start: part.start_offset(),
                        end: part.end_offset(),
                    });
                }
                let mut next = from;
                while next < to {
                    let want = usize::try_from(to - next)
                        .unwrap_or(CHUNK_RECORDS)
                        .min(CHUNK_RECORDS);
                    let mut recs = part.read(next, want, 256 << 20)?;
                    recs.retain(|r| r.offset < to);
                    let Some(last) = recs.last() else { break };
                    next = last.offset + 1;
                    out.records += recs.len() as u64;
                    out.ingest_ms.extend(recs.iter().map(|r| r.timestamp_ms));
                    self.run_chunk(topic, p, &recs, batch_id, &mut out).await?;
                }
            }
        }
        Ok(out)
    }

    async fn run_chunk(
        &mut self,
        topic: &str,
        partition: u32,
        recs: &[StoredRecord],
        batch_id: u64,
        out: &mut BatchOutput,
    ) -> Result<()> {
        out.add(
            format!("bronze_{topic}"),
            vec![bronze_batch(topic, partition, recs)?],
        );
        let values: Vec<&[u8]> = recs.iter().map(|r| r.value.as_slice()).collect();
        let offsets: Vec<u64> = recs.iter().map(|r| r.offset).collect();
        let mut produced: BTreeMap<String, Vec<RecordBatch>> = BTreeMap::new();
        for t in &mut self.tables {
            let spec = t.spec().clone();
            let mut o = Output::default();
            if spec.from == topic && matches!(spec.input, InputSpec::Raw { .. }) {
                t.process(
                    Input::Raw {
                        values: &values,
                        offsets: &offsets,
                        partition,
                    },
                    batch_id,
                    &mut o,
                )
                .await?;
            } else if let Some(rows) = produced.get(&spec.from) {
                for b in rows.clone() {
                    t.process(
                        Input::Rows {
                            batch: b,
                            partition,
                        },
                        batch_id,
                        &mut o,
                    )
                    .await?;
                }
            } else {
                continue;
            }
            produced.insert(spec.name.clone(), o.rows.clone());
            out.add(spec.name.clone(), o.rows);
            out.add(spec.quarantine_table(), o.quarantine);
            out.add(spec.late_table(), o.late);
        }
        Ok(())
    }

    #[allow(clippy::type_complexity)]
    fn end_tables(
        &mut self,
        batch_id: u64,
    ) -> Result<(
        BTreeMap<String, weir_sql::stream::TableState>,
        Vec<(String, String, RecordBatch)>,
    )> {
        let mut state = BTreeMap::new();
        let mut files = Vec::new();
        for t in &mut self.tables {
            let (s, f) = t.end_batch(batch_id)?;
            let name = t.spec().name.clone();
            files.extend(f.into_iter().map(|(file, rows)| (name.clone(), file, rows)));
            state.insert(name, s);
        }
        Ok((state, files))
    }

    /// Commits a replayed batch's outputs and waits for them (recovery).
    async fn commit_outputs(
        &mut self,
        batch_id: u64,
        ranges: &Ranges,
        out: BatchOutput,
    ) -> Result<()> {
        let sink_tasks = self.spawn_sinks(batch_id, ranges, &out.tables);
        let tasks = self.spawn_table_commits(batch_id, out.tables);
        let tables = self.join_commits(tasks).await;
        let sinks = self.join_sinks(sink_tasks).await;
        tables?;
        sinks
    }

    fn spawn_commits(&mut self, ckpt: Checkpoint, out: BatchOutput, started: Instant) -> Inflight {
        let sink_tasks = self.spawn_sinks(ckpt.batch_id, &ckpt.ranges, &out.tables);
        let tasks = self.spawn_table_commits(ckpt.batch_id, out.tables);
        Inflight {
            ckpt,
            tasks,
            sink_tasks,
            ingest_ms: out.ingest_ms,
            records: out.records,
            started,
        }
    }

    /// Starts one task per table: its Parquet encoding and Delta commit run on the pipeline's
    /// worker threads, in parallel with each other and with the next batch's processing. The
    /// table's writer travels with its task and comes back in [`Self::join_commits`].
    fn spawn_table_commits(
        &mut self,
        batch_id: u64,
        tables: BTreeMap<String, Vec<RecordBatch>>,
    ) -> Vec<CommitTask> {
        let bid = i64::try_from(batch_id).unwrap_or(i64::MAX);
        let mut pending = Vec::new();
        for (name, batches) in tables {
            let Some(mut w) = self.writers.remove(&name) else {
                continue;
            };
            pending.push(tokio::spawn(async move {
                let t = Instant::now();
                let r = w.append_once(batches, APP_ID, bid).await;
                (name, w, r, t.elapsed())
            }));
        }
        pending
    }

    /// Starts one task per sink whose table has rows in this batch. A task retries outside
    /// failures (PostgreSQL down, a broker restarting) with backoff until the write succeeds
    /// or weir stops, reporting each failure in the sink's status; the batch counts as
    /// committed only when every sink has it, so nothing is lost while a target is away.
    fn spawn_sinks(
        &mut self,
        batch_id: u64,
        ranges: &Ranges,
        tables: &BTreeMap<String, Vec<RecordBatch>>,
    ) -> Vec<SinkTask> {
        let offsets = offsets_json(ranges);
        let mut tasks = Vec::new();
        for (name, (from, slot)) in &mut self.sinks {
            let Some(rows) = tables.get(from.as_str()).filter(|r| !r.is_empty()) else {
                continue;
            };
            let Some(mut sink) = slot.take() else {
                continue;
            };
            let rows = rows.clone();
            let name = name.clone();
            let offsets = offsets.clone();
            let status = self.status.clone();
            let stop = self.stop.clone();
            tasks.push(tokio::spawn(async move {
                let r = deliver(
                    &name,
                    sink.as_mut(),
                    batch_id,
                    &offsets,
                    &rows,
                    &status,
                    &stop,
                )
                .await;
                (name, sink, r)
            }));
        }
        tasks
    }

    async fn join_sinks(&mut self, tasks: Vec<SinkTask>) -> Result<()> {
        let mut first_err: Option<OrchestratorError> = None;
        for task in tasks {
            match task.await {
                Ok((name, sink, r)) => {
                    if let Some(slot) = self.sinks.get_mut(&name) {
                        slot.1 = Some(sink);
                    }
                    if let Err(e) = r {
                        first_err.get_or_insert(e);
                    }
                }
                Err(e) => {
                    first_err.get_or_insert(OrchestratorError::Corrupt {
                        path: "sink task".into(),
                        reason: e.to_string(),
                    });
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    async fn join_commits(&mut self, tasks: Vec<CommitTask>) -> Result<()> {
        let mut first_err: Option<OrchestratorError> = None;
        for task in tasks {
            match task.await {
                Ok((name, w, r, took)) => {
                    if r.is_ok() {
                        self.commit_ms.push((name.clone(), took.as_millis() as i64));
                    }
                    self.writers.insert(name, w);
                    if let Err(e) = r {
                        first_err.get_or_insert(e.into());
                    }
                }
                Err(e) => {
                    first_err.get_or_insert(OrchestratorError::Corrupt {
                        path: "delta commit task".into(),
                        reason: e.to_string(),
                    });
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn commit_cursors(&self, ranges: &Ranges) -> Result<()> {
        for (topic, parts) in ranges {
            for (&p, &(_, to)) in parts {
                self.log.commit_cursor(GROUP, topic, p, to)?;
            }
        }
        Ok(())
    }

    fn publish(
        &mut self,
        batch_id: u64,
        records: u64,
        secs: f64,
        ingest_ms: &[i64],
        committed_ms: i64,
    ) {
        let metrics: Vec<(String, TableMetrics)> = self
            .tables
            .iter()
            .map(|t| (t.spec().name.clone(), t.metrics()))
            .collect();
        let versions: BTreeMap<String, i64> = self
            .writers
            .iter()
            .map(|(n, w)| (n.clone(), w.version()))
            .collect();
        let committed = self.committed_offsets();
        let Ok(mut st) = self.status.lock() else {
            return;
        };
        st.batches += 1;
        st.last_batch_id = Some(batch_id);
        st.last_batch_records = records;
        st.last_batch_seconds = secs;
        st.batch_duration.record((secs * 1000.0) as i64);
        for (table, ms) in self.commit_ms.drain(..) {
            st.commit_duration.entry(table).or_default().record(ms);
        }
        st.records_processed += records;
        st.committed = committed;
        for l in ingest_ms {
            st.latency.record(committed_ms.saturating_sub(*l));
        }
        for (name, m) in metrics {
            st.tables.insert(
                name.clone(),
                TableStatus {
                    metrics: m,
                    delta_version: versions.get(&name).copied().unwrap_or(-1),
                },
            );
        }
        st.delta_versions = versions;
    }

    fn committed_offsets(&self) -> BTreeMap<String, BTreeMap<u32, u64>> {
        self.committed
            .as_ref()
            .map(|c| {
                c.ranges
                    .iter()
                    .map(|(t, p)| (t.clone(), p.iter().map(|(k, v)| (*k, v.1)).collect()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The last checkpoint whose outputs are in every table (after `open`, the one recovery
    /// resumed from).
    pub fn last_checkpoint(&self) -> Option<&Checkpoint> {
        self.committed.as_ref()
    }
}

/// A batch's input ranges as `{"topic": {"partition": [from, to]}}`.
fn offsets_json(ranges: &Ranges) -> String {
    let v: BTreeMap<&String, BTreeMap<String, [u64; 2]>> = ranges
        .iter()
        .map(|(t, parts)| {
            (
                t,
                parts
                    .iter()
                    .map(|(p, (a, b))| (p.to_string(), [*a, *b]))
                    .collect(),
            )
        })
        .collect();
    serde_json::to_string(&v).unwrap_or_else(|_| "{}".into())
}

/// Writes one batch to one sink, retrying outside failures until it succeeds or weir stops.
async fn deliver(
    name: &str,
    sink: &mut dyn Sink,
    batch_id: u64,
    offsets: &str,
    rows: &[RecordBatch],
    status: &Mutex<PipelineStatus>,
    stop: &AtomicBool,
) -> Result<()> {
    let update = |f: &dyn Fn(&mut SinkStatus)| {
        if let Ok(mut st) = status.lock() {
            f(st.sinks.entry(name.to_owned()).or_default());
        }
    };
    let mut backoff = weir_connectors::source::Backoff::new(Duration::from_secs(10));
    loop {
        match sink.write(batch_id, offsets, rows).await {
            Ok(w) => {
                update(&|s| {
                    s.retrying = false;
                    s.last_error = None;
                    s.last_batch_id = Some(batch_id);
                    if w.skipped {
                        s.skipped_batches += 1;
                    } else {
                        s.batches += 1;
                        s.rows += w.rows;
                    }
                });
                if w.skipped {
                    tracing::info!(sink = %name, batch = batch_id, "batch already delivered; skipped");
                }
                return Ok(());
            }
            Err(e) => {
                let msg = e.to_string();
                update(&|s| {
                    s.errors += 1;
                    s.last_error = Some(msg.clone());
                    s.retrying = e.kind() == weir_core::ErrorKind::External;
                });
                if e.kind() != weir_core::ErrorKind::External || stop.load(Ordering::Relaxed) {
                    return Err(e.into());
                }
                let delay = backoff.next_delay();
                tracing::warn!(sink = %name, batch = batch_id, error = %e, retry_in_ms = delay.as_millis() as u64, "sink write failed; retrying");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Re-exported for callers that size histograms.
pub type Latency = LatencyHistogram;
