//! A streaming table's micro-batch step: decode → expectations → dedup → (window) → SQL.
//!
//! [`StreamingTable::process`] is called once per input chunk (one source partition's records,
//! or the rows an upstream table produced from that chunk) and appends to an [`Output`]. The
//! caller (the orchestrator's pipeline) owns offsets, commits and checkpoints; this type owns
//! the operator state and hands it out as a [`TableState`] plus per-batch state files at
//! [`StreamingTable::end_batch`]. Given the same state and the same input, `process` produces
//! the same rows, which is what makes replay after a crash exact.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int32Array, Int64Array, StringArray, UInt32Array,
};
use arrow::compute::{filter_record_batch, take_record_batch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimestampMicrosecondType};
use arrow::record_batch::RecordBatch;
use datafusion::common::DFSchema;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::{SessionConfig, SessionContext};
use serde::{Deserialize, Serialize};

use crate::decode::JsonDecoder;
use crate::dedup::{DedupMeta, DedupState};
use crate::error::{Result, SqlError};
use crate::spec::{Action, InputSpec, TableSpec};
use crate::window::{WindowMeta, WindowState, column_list};

/// The reason recorded for a raw record that is not a JSON object.
pub const MALFORMED_JSON: &str = "malformed_json";

/// One chunk of input.
pub enum Input<'a> {
    /// Raw records of one partition of a source topic.
    Raw {
        values: &'a [&'a [u8]],
        offsets: &'a [u64],
        partition: u32,
    },
    /// Rows produced by the upstream table from one partition's chunk.
    Rows { batch: RecordBatch, partition: u32 },
}

/// What a table produced in a micro-batch.
#[derive(Default, Debug)]
pub struct Output {
    pub rows: Vec<RecordBatch>,
    pub quarantine: Vec<RecordBatch>,
    pub late: Vec<RecordBatch>,
}

/// Counters since the table started (not checkpointed; they restart with the process).
#[derive(Debug, Default, Clone, Serialize)]
pub struct TableMetrics {
    pub rows_in: u64,
    pub rows_out: u64,
    pub quarantined: u64,
    pub dropped: u64,
    pub duplicates: u64,
    pub late: u64,
    /// Failures per expectation name (all actions, `warn` included).
    pub expectation_failures: BTreeMap<String, u64>,
    /// Current watermark (µs since epoch) of a windowed table.
    pub watermark_us: Option<i64>,
    pub buffered_rows: u64,
    pub dedup_keys: u64,
}

/// Operator state recorded in a checkpoint; the bulky parts live in state files.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TableState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup: Option<DedupMeta>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<WindowMeta>,
}

impl TableState {
    /// Names of the state files this state needs.
    pub fn files(&self) -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        if let Some(d) = &self.dedup {
            v.extend(DedupState::live_files(d));
        }
        if let Some(w) = &self.window {
            v.extend(WindowState::live_files(w));
        }
        v
    }
}

type Check = (crate::spec::ExpectationSpec, Arc<dyn PhysicalExpr>);

/// A running streaming table.
pub struct StreamingTable {
    spec: TableSpec,
    ctx: SessionContext,
    decoder: Option<JsonDecoder>,
    checks: Option<(SchemaRef, Vec<Check>)>,
    dedup: Option<DedupState>,
    window: Option<WindowState>,
    input_schema: Option<SchemaRef>,
    metrics: TableMetrics,
}

impl StreamingTable {
    pub fn try_new(spec: TableSpec) -> Result<Self> {
        let config = SessionConfig::new()
            .with_target_partitions(1)
            .with_batch_size(64 * 1024);
        let ctx = SessionContext::new_with_config(config);
        let decoder = match &spec.input {
            InputSpec::Raw { fields } => Some(JsonDecoder::new(fields)),
            InputSpec::Table => None,
        };
        let input_schema = decoder.as_ref().map(JsonDecoder::schema);
        let dedup = spec.dedup.as_ref().map(|d| DedupState::new(d.within_ms));
        let window = spec
            .window
            .as_ref()
            .map(|w| WindowState::new(&spec.name, w));
        let mut t = Self {
            spec,
            ctx,
            decoder,
            checks: None,
            dedup,
            window,
            input_schema,
            metrics: TableMetrics::default(),
        };
        if let Some(schema) = t.input_schema.clone() {
            t.compile_checks(&schema)?;
        }
        Ok(t)
    }

    pub fn spec(&self) -> &TableSpec {
        &self.spec
    }

    pub fn metrics(&self) -> TableMetrics {
        let mut m = self.metrics.clone();
        m.watermark_us = self
            .window
            .as_ref()
            .and_then(WindowState::current_watermark);
        m.buffered_rows = self.window.as_ref().map_or(0, |w| w.buffered_rows() as u64);
        m.dedup_keys = self.dedup.as_ref().map_or(0, |d| d.len() as u64);
        m
    }

    fn compile_checks(&mut self, schema: &SchemaRef) -> Result<()> {
        if let Some((s, _)) = &self.checks
            && s == schema
        {
            return Ok(());
        }
        let df_schema =
            DFSchema::try_from(schema.as_ref().clone()).map_err(|source| SqlError::Plan {
                table: self.spec.name.clone(),
                source,
            })?;
        let mut checks = Vec::new();
        for e in &self.spec.expectations {
            let bad = |reason: String| SqlError::BadExpectation {
                table: self.spec.name.clone(),
                expectation: e.name.clone(),
                check: e.check.clone(),
                reason,
            };
            let expr = self
                .ctx
                .parse_sql_expr(&e.check, &df_schema)
                .map_err(|err| bad(err.to_string()))?;
            let phys = self
                .ctx
                .create_physical_expr(expr, &df_schema)
                .map_err(|err| bad(err.to_string()))?;
            checks.push((e.clone(), phys));
        }
        self.checks = Some((schema.clone(), checks));
        Ok(())
    }

    /// Validates the expectations and SQL against an input schema without running anything.
    pub async fn check_plan(&mut self, input_schema: SchemaRef) -> Result<SchemaRef> {
        self.compile_checks(&input_schema)?;
        let empty = RecordBatch::new_empty(input_schema);
        let out = self.run_sql(empty, true).await?;
        Ok(out)
    }

    /// The schema of this table's input (declared fields, or the upstream's output).
    pub fn input_schema(&self) -> Option<SchemaRef> {
        self.input_schema.clone()
    }

    /// Sets the input schema of a table reading another table (known once the upstream is
    /// planned).
    pub fn set_input_schema(&mut self, schema: SchemaRef) -> Result<()> {
        self.compile_checks(&schema)?;
        self.input_schema = Some(schema);
        Ok(())
    }

    /// The schema of `<table>_quarantine`.
    pub fn quarantine_schema(&self) -> Option<SchemaRef> {
        match &self.spec.input {
            InputSpec::Raw { .. } => Some(raw_quarantine_schema()),
            InputSpec::Table => self.input_schema.as_ref().map(with_reason),
        }
    }

    /// Processes one chunk, appending results to `out`.
    pub async fn process(
        &mut self,
        input: Input<'_>,
        batch_id: u64,
        out: &mut Output,
    ) -> Result<()> {
        let (batch, partition, raw) = match input {
            Input::Raw {
                values,
                offsets,
                partition,
            } => {
                let decoder = self.decoder.as_ref().ok_or_else(|| SqlError::State {
                    table: self.spec.name.clone(),
                    reason: "raw records given to a table that reads another table".into(),
                })?;
                self.metrics.rows_in += values.len() as u64;
                let (batch, rows, malformed) = decoder.decode(values.iter().copied())?;
                let mut q = RawQuarantine::default();
                for m in &malformed {
                    q.push(values[m.index], MALFORMED_JSON, partition, offsets[m.index]);
                }
                (batch, partition, Some((values, offsets, rows, q)))
            }
            Input::Rows { batch, partition } => {
                self.metrics.rows_in += batch.num_rows() as u64;
                if self.input_schema.as_ref() != Some(&batch.schema()) {
                    self.set_input_schema(batch.schema())?;
                }
                (batch, partition, None)
            }
        };
        let n = batch.num_rows();
        let mut keep = vec![true; n];
        let mut reasons: Vec<Option<usize>> = vec![None; n];
        self.apply_expectations(
            &batch,
            &mut keep,
            &mut reasons,
            raw.as_ref().map(|r| (r.0, &r.2)),
        )?;

        // Quarantine output, in input order.
        match raw {
            Some((values, offsets, rows, mut q)) => {
                let names = self.expectation_names();
                for (i, r) in reasons.iter().enumerate() {
                    if let Some(e) = r {
                        let src = rows[i] as usize;
                        q.push(values[src], &names[*e], partition, offsets[src]);
                    }
                }
                if !q.is_empty() {
                    self.metrics.quarantined += q.len() as u64;
                    out.quarantine.push(q.finish()?);
                }
            }
            None => {
                let idx: Vec<u32> = reasons
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.is_some())
                    .map(|(i, _)| u32::try_from(i).unwrap_or(u32::MAX))
                    .collect();
                if !idx.is_empty() {
                    let names = self.expectation_names();
                    let rs: Vec<&str> = reasons
                        .iter()
                        .flatten()
                        .map(|e| names[*e].as_str())
                        .collect();
                    let rows = take(&batch, idx)?;
                    self.metrics.quarantined += rows.num_rows() as u64;
                    out.quarantine.push(append_reason(&rows, rs)?);
                }
            }
        }

        if let (Some(dedup), Some(spec)) = (self.dedup.as_mut(), self.spec.dedup.as_ref()) {
            let keys = string_column(&batch, &spec.key, &self.spec.name, "the dedup key")?;
            self.metrics.duplicates += dedup.filter(keys, &mut keep, batch_id) as u64;
            if let Some(col) = &self.spec.event_time {
                let ts = time_column(&batch, col, &self.spec.name, "the event time")?;
                for (i, k) in keep.iter().enumerate() {
                    if *k && ts.is_valid(i) {
                        dedup.observe_time(ts.value(i));
                    }
                }
            }
        }

        let kept = if keep.iter().all(|k| *k) {
            batch
        } else {
            filter_record_batch(&batch, &BooleanArray::from(keep)).map_err(|source| {
                SqlError::Arrow {
                    context: "filtering rows".into(),
                    source,
                }
            })?
        };

        if let Some(window) = self.window.as_mut() {
            let split = window.add(&kept, partition)?;
            if let Some(late) = split.late {
                self.metrics.late += late.num_rows() as u64;
                out.late.push(late);
            }
            let schema = kept.schema();
            if let Some(closed) = window.take_closed(&schema)? {
                let rows = self.run_sql_rows(closed).await?;
                self.metrics.rows_out += rows.iter().map(|b| b.num_rows() as u64).sum::<u64>();
                out.rows.extend(rows);
            }
        } else if kept.num_rows() > 0 {
            let rows = self.run_sql_rows(kept).await?;
            self.metrics.rows_out += rows.iter().map(|b| b.num_rows() as u64).sum::<u64>();
            out.rows.extend(rows);
        }
        Ok(())
    }

    fn expectation_names(&self) -> Vec<String> {
        self.spec
            .expectations
            .iter()
            .map(|e| e.name.clone())
            .collect()
    }

    fn apply_expectations(
        &mut self,
        batch: &RecordBatch,
        keep: &mut [bool],
        reasons: &mut [Option<usize>],
        raw: Option<(&[&[u8]], &Vec<u32>)>,
    ) -> Result<()> {
        let Some((_, checks)) = &self.checks else {
            return Ok(());
        };
        let n = batch.num_rows();
        for (ci, (spec, phys)) in checks.iter().enumerate() {
            let value = phys.evaluate(batch).map_err(|source| SqlError::Plan {
                table: self.spec.name.clone(),
                source,
            })?;
            let arr = value.into_array(n).map_err(|source| SqlError::Plan {
                table: self.spec.name.clone(),
                source,
            })?;
            let Some(pass) = arr.as_boolean_opt() else {
                return Err(SqlError::BadExpectation {
                    table: self.spec.name.clone(),
                    expectation: spec.name.clone(),
                    check: spec.check.clone(),
                    reason: format!("it evaluates to {}, not a boolean", arr.data_type()),
                });
            };
            let mut failures = 0u64;
            let mut first_fail = None;
            for r in 0..n {
                if !keep[r] || (pass.is_valid(r) && pass.value(r)) {
                    continue;
                }
                failures += 1;
                first_fail.get_or_insert(r);
                match spec.action {
                    Action::Warn => {}
                    Action::Drop => keep[r] = false,
                    Action::Quarantine => {
                        keep[r] = false;
                        reasons[r] = Some(ci);
                    }
                    Action::Fail => {}
                }
            }
            if failures > 0 {
                *self
                    .metrics
                    .expectation_failures
                    .entry(spec.name.clone())
                    .or_default() += failures;
                if spec.action == Action::Drop {
                    self.metrics.dropped += failures;
                }
            }
            if spec.action == Action::Fail
                && let Some(r) = first_fail
            {
                let example = match raw {
                    Some((values, rows)) => {
                        String::from_utf8_lossy(values[rows[r] as usize]).into_owned()
                    }
                    None => format!("row {r} of the input chunk"),
                };
                return Err(SqlError::ExpectationFailed {
                    table: self.spec.name.clone(),
                    expectation: spec.name.clone(),
                    rows: failures as usize,
                    example,
                });
            }
        }
        Ok(())
    }

    async fn run_sql_rows(&mut self, input: RecordBatch) -> Result<Vec<RecordBatch>> {
        let from = self.spec.from.clone();
        let plan_err = |source| SqlError::Plan {
            table: self.spec.name.clone(),
            source,
        };
        let _ = self.ctx.deregister_table(from.as_str()).map_err(plan_err)?;
        self.ctx
            .register_batch(from.as_str(), input)
            .map_err(plan_err)?;
        let df = self.ctx.sql(&self.spec.sql).await.map_err(plan_err)?;
        let rows = df.collect().await.map_err(plan_err)?;
        let _ = self.ctx.deregister_table(from.as_str()).map_err(plan_err)?;
        Ok(rows.into_iter().filter(|b| b.num_rows() > 0).collect())
    }

    async fn run_sql(&mut self, input: RecordBatch, schema_only: bool) -> Result<SchemaRef> {
        let from = self.spec.from.clone();
        let plan_err = |source| SqlError::Plan {
            table: self.spec.name.clone(),
            source,
        };
        let _ = self.ctx.deregister_table(from.as_str()).map_err(plan_err)?;
        self.ctx
            .register_batch(from.as_str(), input)
            .map_err(plan_err)?;
        let df = self.ctx.sql(&self.spec.sql).await.map_err(plan_err)?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        if !schema_only {
            df.collect().await.map_err(plan_err)?;
        }
        let _ = self.ctx.deregister_table(from.as_str()).map_err(plan_err)?;
        Ok(schema)
    }

    /// Closes micro-batch `batch_id`: returns the state to checkpoint and the state files
    /// this batch created (name, rows).
    pub fn end_batch(&mut self, batch_id: u64) -> Result<(TableState, Vec<(String, RecordBatch)>)> {
        let mut files = Vec::new();
        let mut state = TableState::default();
        if let Some(d) = self.dedup.as_mut() {
            files.extend(d.end_batch(batch_id));
            state.dedup = Some(d.meta());
        }
        if let Some(w) = self.window.as_mut() {
            let schema = self
                .input_schema
                .clone()
                .unwrap_or_else(|| Arc::new(Schema::empty()));
            files.extend(w.end_batch(batch_id, &schema)?);
            state.window = Some(w.meta());
        }
        Ok((state, files))
    }

    /// Restores operator state from a checkpoint; `load` reads a state file by name.
    pub fn restore(
        &mut self,
        state: &TableState,
        load: &mut dyn FnMut(&str) -> Result<Vec<RecordBatch>>,
    ) -> Result<()> {
        if let (Some(d), Some(meta)) = (self.dedup.as_mut(), state.dedup.as_ref()) {
            d.restore(&self.spec.name, meta, load)?;
        }
        if let (Some(w), Some(meta)) = (self.window.as_mut(), state.window.as_ref()) {
            w.restore(meta, load)?;
        }
        Ok(())
    }
}

/// Schema of the quarantine table of a table that reads raw records.
pub fn raw_quarantine_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("raw", DataType::Utf8, false),
        Field::new("reason", DataType::Utf8, false),
        Field::new("partition", DataType::Int32, false),
        Field::new("offset", DataType::Int64, false),
    ]))
}

fn with_reason(schema: &SchemaRef) -> SchemaRef {
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new("reason", DataType::Utf8, false));
    Arc::new(Schema::new(fields))
}

fn append_reason(rows: &RecordBatch, reasons: Vec<&str>) -> Result<RecordBatch> {
    let mut cols: Vec<ArrayRef> = rows.columns().to_vec();
    cols.push(Arc::new(StringArray::from(reasons)));
    RecordBatch::try_new(with_reason(&rows.schema()), cols).map_err(|source| SqlError::Arrow {
        context: "building quarantine rows".into(),
        source,
    })
}

#[derive(Default)]
struct RawQuarantine {
    raw: Vec<String>,
    reason: Vec<String>,
    partition: Vec<i32>,
    offset: Vec<i64>,
}

impl RawQuarantine {
    fn push(&mut self, raw: &[u8], reason: &str, partition: u32, offset: u64) {
        self.raw.push(String::from_utf8_lossy(raw).into_owned());
        self.reason.push(reason.to_owned());
        self.partition
            .push(i32::try_from(partition).unwrap_or(i32::MAX));
        self.offset.push(i64::try_from(offset).unwrap_or(i64::MAX));
    }

    fn len(&self) -> usize {
        self.raw.len()
    }

    fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    fn finish(self) -> Result<RecordBatch> {
        RecordBatch::try_new(
            raw_quarantine_schema(),
            vec![
                Arc::new(StringArray::from(self.raw)),
                Arc::new(StringArray::from(self.reason)),
                Arc::new(Int32Array::from(self.partition)),
                Arc::new(Int64Array::from(self.offset)),
            ],
        )
        .map_err(|source| SqlError::Arrow {
            context: "building quarantine rows".into(),
            source,
        })
    }
}

fn take(batch: &RecordBatch, idx: Vec<u32>) -> Result<RecordBatch> {
    take_record_batch(batch, &UInt32Array::from(idx)).map_err(|source| SqlError::Arrow {
        context: "selecting rows".into(),
        source,
    })
}

fn string_column<'a>(
    batch: &'a RecordBatch,
    col: &str,
    table: &str,
    purpose: &'static str,
) -> Result<&'a StringArray> {
    let schema = batch.schema();
    let idx = schema.index_of(col).map_err(|_| SqlError::MissingColumn {
        table: table.to_owned(),
        column: col.to_owned(),
        purpose,
        available: column_list(&schema),
    })?;
    batch
        .column(idx)
        .as_string_opt::<i32>()
        .ok_or_else(|| SqlError::ColumnType {
            table: table.to_owned(),
            column: col.to_owned(),
            purpose,
            expected: "a string",
            found: schema.field(idx).data_type().to_string(),
        })
}

fn time_column<'a>(
    batch: &'a RecordBatch,
    col: &str,
    table: &str,
    purpose: &'static str,
) -> Result<&'a arrow::array::PrimitiveArray<TimestampMicrosecondType>> {
    let schema = batch.schema();
    let idx = schema.index_of(col).map_err(|_| SqlError::MissingColumn {
        table: table.to_owned(),
        column: col.to_owned(),
        purpose,
        available: column_list(&schema),
    })?;
    batch
        .column(idx)
        .as_primitive_opt::<TimestampMicrosecondType>()
        .ok_or_else(|| SqlError::ColumnType {
            table: table.to_owned(),
            column: col.to_owned(),
            purpose,
            expected: "a timestamp",
            found: schema.field(idx).data_type().to_string(),
        })
}
