//! Tumbling event-time windows with a watermark and a late-data output.
//!
//! The watermark is the minimum over input partitions of the maximum event time seen in that
//! partition, minus the allowed lateness; it is advanced row by row in input order, so a row
//! is late exactly when its event time is below the watermark at the moment it arrives. Late
//! rows are returned to the caller (they go to `<table>_late`), never dropped. The other rows
//! are buffered per window; a window is handed back for aggregation once, when the watermark
//! passes its end. Buffered rows are journaled per micro-batch, so a checkpoint only writes
//! the rows its batch added.

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray, UInt32Array};
use arrow::compute::{concat_batches, take_record_batch};
use arrow::datatypes::{SchemaRef, TimestampMicrosecondType};
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use crate::error::{Result, SqlError};
use crate::spec::WindowSpec;

/// What a checkpoint records of the window state (buffered rows live in per-batch files).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct WindowMeta {
    /// Max event time (µs) seen per input partition.
    pub partition_max_us: BTreeMap<u32, i64>,
    /// Every window ending at or before this (µs) has been emitted.
    pub emitted_until_us: i64,
    /// Live row files: (batch id, latest window end among its rows, µs).
    pub files: Vec<(u64, i64)>,
}

pub(crate) struct WindowState {
    table: String,
    column: String,
    size_us: i64,
    lateness_us: i64,
    meta: WindowMeta,
    buffer: BTreeMap<i64, Vec<RecordBatch>>,
    pending: Vec<RecordBatch>,
    pending_max_end: i64,
}

/// Rows of one input chunk split by lateness.
pub(crate) struct Split {
    pub late: Option<RecordBatch>,
}

impl WindowState {
    pub(crate) fn new(table: &str, spec: &WindowSpec) -> Self {
        Self {
            table: table.to_owned(),
            column: spec.column.clone(),
            size_us: spec.size_ms.max(1) * 1000,
            lateness_us: spec.lateness_ms.max(0) * 1000,
            meta: WindowMeta {
                emitted_until_us: i64::MIN,
                ..WindowMeta::default()
            },
            buffer: BTreeMap::new(),
            pending: Vec::new(),
            pending_max_end: i64::MIN,
        }
    }

    fn watermark(&self) -> i64 {
        self.meta
            .partition_max_us
            .values()
            .min()
            .map_or(i64::MIN, |m| m.saturating_sub(self.lateness_us))
    }

    /// The current watermark in µs (`None` before any row).
    pub(crate) fn current_watermark(&self) -> Option<i64> {
        (!self.meta.partition_max_us.is_empty()).then(|| self.watermark())
    }

    fn window_start(&self, t: i64) -> i64 {
        t - t.rem_euclid(self.size_us)
    }

    fn time_column<'a>(
        &self,
        batch: &'a RecordBatch,
    ) -> Result<&'a arrow::array::PrimitiveArray<TimestampMicrosecondType>> {
        let schema = batch.schema();
        let idx = schema
            .index_of(&self.column)
            .map_err(|_| SqlError::MissingColumn {
                table: self.table.clone(),
                column: self.column.clone(),
                purpose: "the window's event time",
                available: column_list(&schema),
            })?;
        batch
            .column(idx)
            .as_primitive_opt::<TimestampMicrosecondType>()
            .ok_or_else(|| SqlError::ColumnType {
                table: self.table.clone(),
                column: self.column.clone(),
                purpose: "the window's event time",
                expected: "a timestamp",
                found: schema.field(idx).data_type().to_string(),
            })
    }

    /// Classifies the rows of `batch` (one input partition, in arrival order), buffers the
    /// on-time ones and returns the late ones.
    pub(crate) fn add(&mut self, batch: &RecordBatch, partition: u32) -> Result<Split> {
        let ts = self.time_column(batch)?;
        let mut late_idx = Vec::new();
        let mut by_window: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
        let mut all_on_time = Vec::new();
        self.meta
            .partition_max_us
            .entry(partition)
            .or_insert(i64::MIN);
        for i in 0..batch.num_rows() {
            let idx = u32::try_from(i).unwrap_or(u32::MAX);
            if ts.is_null(i) {
                late_idx.push(idx);
                continue;
            }
            let t = ts.value(i);
            if t < self.watermark() {
                late_idx.push(idx);
                continue;
            }
            if let Some(m) = self.meta.partition_max_us.get_mut(&partition)
                && t > *m
            {
                *m = t;
            }
            by_window.entry(self.window_start(t)).or_default().push(idx);
            all_on_time.push(idx);
        }
        let on_time = all_on_time.len();
        for (start, idx) in by_window {
            let rows = take(batch, idx)?;
            self.pending_max_end = self.pending_max_end.max(start + self.size_us);
            self.buffer.entry(start).or_default().push(rows);
        }
        if on_time > 0 {
            self.pending.push(take(batch, all_on_time)?);
        }
        let late = if late_idx.is_empty() {
            None
        } else {
            Some(take(batch, late_idx)?)
        };
        Ok(Split { late })
    }

    /// Removes and returns the rows of every buffered window the watermark has passed.
    pub(crate) fn take_closed(&mut self, schema: &SchemaRef) -> Result<Option<RecordBatch>> {
        let wm = self.watermark();
        let mut closed = Vec::new();
        while let Some((&start, _)) = self.buffer.first_key_value() {
            if start + self.size_us > wm {
                break;
            }
            if let Some((_, rows)) = self.buffer.pop_first() {
                closed.extend(rows);
            }
            self.meta.emitted_until_us = self.meta.emitted_until_us.max(start + self.size_us);
        }
        if closed.is_empty() {
            return Ok(None);
        }
        concat_batches(schema, &closed)
            .map(Some)
            .map_err(|source| SqlError::Arrow {
                context: format!("gathering closed windows of `{}`", self.table),
                source,
            })
    }

    /// Closes the batch: returns the file of rows it buffered and drops files whose windows
    /// have all been emitted.
    pub(crate) fn end_batch(
        &mut self,
        batch_id: u64,
        schema: &SchemaRef,
    ) -> Result<Option<(String, RecordBatch)>> {
        let file = if self.pending.is_empty() {
            None
        } else {
            let rows = concat_batches(schema, &self.pending).map_err(|source| SqlError::Arrow {
                context: format!("journaling window rows of `{}`", self.table),
                source,
            })?;
            self.pending.clear();
            self.meta.files.push((batch_id, self.pending_max_end));
            self.pending_max_end = i64::MIN;
            Some((file_name(batch_id), rows))
        };
        let done = self.meta.emitted_until_us;
        self.meta.files.retain(|&(_, end)| end > done);
        Ok(file)
    }

    pub(crate) fn meta(&self) -> WindowMeta {
        self.meta.clone()
    }

    pub(crate) fn live_files(meta: &WindowMeta) -> impl Iterator<Item = String> + '_ {
        meta.files.iter().map(|(b, _)| file_name(*b))
    }

    pub(crate) fn buffered_rows(&self) -> usize {
        self.buffer
            .values()
            .flatten()
            .map(RecordBatch::num_rows)
            .sum()
    }

    pub(crate) fn restore(
        &mut self,
        meta: &WindowMeta,
        load: &mut dyn FnMut(&str) -> Result<Vec<RecordBatch>>,
    ) -> Result<()> {
        self.meta = meta.clone();
        self.buffer.clear();
        self.pending.clear();
        self.pending_max_end = i64::MIN;
        for &(b, _) in &meta.files {
            for rows in load(&file_name(b))? {
                let ts = self.time_column(&rows)?;
                let mut by_window: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
                for i in 0..rows.num_rows() {
                    if ts.is_null(i) {
                        continue;
                    }
                    let start = self.window_start(ts.value(i));
                    if start + self.size_us > meta.emitted_until_us {
                        by_window
                            .entry(start)
                            .or_default()
                            .push(u32::try_from(i).unwrap_or(u32::MAX));
                    }
                }
                for (start, idx) in by_window {
                    let part = take(&rows, idx)?;
                    self.buffer.entry(start).or_default().push(part);
                }
            }
        }
        Ok(())
    }
}

fn take(batch: &RecordBatch, idx: Vec<u32>) -> Result<RecordBatch> {
    take_record_batch(batch, &UInt32Array::from(idx)).map_err(|source| SqlError::Arrow {
        context: "selecting rows".into(),
        source,
    })
}

fn file_name(batch_id: u64) -> String {
    format!("window-{batch_id:020}")
}

pub(crate) fn column_list(schema: &SchemaRef) -> String {
    schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, TimestampMicrosecondArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    const MIN: i64 = 60_000_000;

    fn rows(ts: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("ts", crate::decode::utc_micros(), true),
            Field::new("n", DataType::Int64, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(TimestampMicrosecondArray::from(ts.to_vec()).with_timezone("UTC")),
                Arc::new(Int64Array::from_iter_values(0..ts.len() as i64)),
            ],
        )
        .unwrap()
    }

    fn spec() -> WindowSpec {
        WindowSpec {
            column: "ts".into(),
            size_ms: 60_000,
            lateness_ms: 60_000,
        }
    }

    #[test]
    fn rows_behind_the_watermark_are_late_and_windows_close_once() {
        let mut w = WindowState::new("t", &spec());
        let b = rows(&[0, 30 * 1_000_000, 3 * MIN, MIN / 2, 2 * MIN + 1]);
        let split = w.add(&b, 0).unwrap();
        // after 3 min the watermark is 2 min: the row at 30 s is late, 2 min + 1 µs is not
        assert_eq!(split.late.unwrap().num_rows(), 1);
        let closed = w.take_closed(&b.schema()).unwrap().unwrap();
        assert_eq!(closed.num_rows(), 2, "the first window [0, 1 min) closes");
        assert!(
            w.take_closed(&b.schema()).unwrap().is_none(),
            "a window is emitted once"
        );
        let split = w.add(&rows(&[10]), 0).unwrap();
        assert_eq!(
            split.late.unwrap().num_rows(),
            1,
            "a row of an emitted window is late"
        );
    }

    #[test]
    fn the_slowest_partition_holds_the_watermark() {
        let mut w = WindowState::new("t", &spec());
        w.add(&rows(&[10 * MIN]), 0).unwrap();
        w.add(&rows(&[MIN]), 1).unwrap();
        // partition 1 is at 1 min, so a row at 30 s there is still on time (watermark 0)
        let split = w.add(&rows(&[MIN / 2]), 1).unwrap();
        assert!(split.late.is_none());
        assert_eq!(w.current_watermark(), Some(0));
    }

    #[test]
    fn state_round_trips_through_its_files() {
        let mut w = WindowState::new("t", &spec());
        let b = rows(&[0, MIN + 5, 2 * MIN + 5]);
        w.add(&b, 0).unwrap();
        let (_, file) = w.end_batch(1, &b.schema()).unwrap().unwrap();
        let meta = w.meta();
        let mut restored = WindowState::new("t", &spec());
        restored
            .restore(&meta, &mut |_| Ok(vec![file.clone()]))
            .unwrap();
        assert_eq!(restored.buffered_rows(), w.buffered_rows());
        assert_eq!(restored.current_watermark(), w.current_watermark());
    }
}
