//! Deduplication on a key within an event-time horizon.
//!
//! A key is remembered from the micro-batch that first saw it until the maximum event time
//! seen has moved `within` past that batch's maximum event time; then it is forgotten. Memory
//! is therefore bounded by the keys of `within` of event time. The state is journaled: each
//! batch writes only the keys it added (one small Arrow file), and a restore reloads the files
//! of the generations still inside the horizon.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use crate::error::{Result, SqlError};

/// What a checkpoint records of the dedup state (the keys live in per-batch files).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DedupMeta {
    /// Live generations: (batch id, max event time in µs when that batch ended).
    pub generations: Vec<(u64, i64)>,
    pub max_event_us: i64,
}

pub(crate) struct DedupState {
    within_us: i64,
    seen: HashMap<Box<str>, u64>,
    generations: VecDeque<(u64, i64)>,
    pending: Vec<Box<str>>,
    pub(crate) max_event_us: i64,
}

impl DedupState {
    pub(crate) fn new(within_ms: i64) -> Self {
        Self {
            within_us: within_ms.saturating_mul(1000),
            seen: HashMap::new(),
            generations: VecDeque::new(),
            pending: Vec::new(),
            max_event_us: i64::MIN,
        }
    }

    /// Marks in `keep` the rows whose key was seen before (in this or an earlier batch) as not
    /// kept; rows already not kept are skipped. Returns how many duplicates were found.
    pub(crate) fn filter(&mut self, keys: &StringArray, keep: &mut [bool], batch_id: u64) -> usize {
        let mut dups = 0;
        for (i, k) in keep.iter_mut().enumerate() {
            if !*k || keys.is_null(i) {
                continue;
            }
            let key = keys.value(i);
            if self.seen.contains_key(key) {
                *k = false;
                dups += 1;
            } else {
                let owned: Box<str> = key.into();
                self.seen.insert(owned.clone(), batch_id);
                self.pending.push(owned);
            }
        }
        dups
    }

    pub(crate) fn observe_time(&mut self, t_us: i64) {
        self.max_event_us = self.max_event_us.max(t_us);
    }

    /// Closes the batch: records its generation, forgets expired keys, and returns the file of
    /// keys this batch added (if any).
    pub(crate) fn end_batch(&mut self, batch_id: u64) -> Option<(String, RecordBatch)> {
        let file = if self.pending.is_empty() {
            None
        } else {
            self.generations.push_back((batch_id, self.max_event_us));
            let keys: ArrayRef = Arc::new(StringArray::from_iter_values(self.pending.drain(..)));
            let schema = Arc::new(Schema::new(vec![Field::new("key", DataType::Utf8, false)]));
            // The schema has exactly this one non-null Utf8 column, so this cannot fail.
            RecordBatch::try_new(schema, vec![keys])
                .ok()
                .map(|b| (file_name(batch_id), b))
        };
        let horizon = self.max_event_us.saturating_sub(self.within_us);
        let mut expired_upto = None;
        while let Some(&(b, t)) = self.generations.front() {
            if t < horizon && self.generations.len() > 1 {
                expired_upto = Some(b);
                self.generations.pop_front();
            } else {
                break;
            }
        }
        if let Some(upto) = expired_upto {
            self.seen.retain(|_, b| *b > upto);
        }
        file
    }

    pub(crate) fn meta(&self) -> DedupMeta {
        DedupMeta {
            generations: self.generations.iter().copied().collect(),
            max_event_us: self.max_event_us,
        }
    }

    pub(crate) fn live_files(meta: &DedupMeta) -> impl Iterator<Item = String> + '_ {
        meta.generations.iter().map(|(b, _)| file_name(*b))
    }

    pub(crate) fn restore(
        &mut self,
        table: &str,
        meta: &DedupMeta,
        load: &mut dyn FnMut(&str) -> Result<Vec<RecordBatch>>,
    ) -> Result<()> {
        self.seen.clear();
        self.pending.clear();
        self.generations = meta.generations.iter().copied().collect();
        self.max_event_us = meta.max_event_us;
        for &(b, _) in &meta.generations {
            for batch in load(&file_name(b))? {
                let keys =
                    batch
                        .column(0)
                        .as_string_opt::<i32>()
                        .ok_or_else(|| SqlError::State {
                            table: table.to_owned(),
                            reason: format!("dedup file of batch {b} does not hold strings"),
                        })?;
                for k in keys.iter().flatten() {
                    self.seen.insert(k.into(), b);
                }
            }
        }
        Ok(())
    }

    pub(crate) fn len(&self) -> usize {
        self.seen.len()
    }
}

fn file_name(batch_id: u64) -> String {
    format!("dedup-{batch_id:020}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_first_and_forgets_after_horizon() {
        let mut d = DedupState::new(10);
        let keys = StringArray::from(vec!["a", "b", "a"]);
        let mut keep = vec![true; 3];
        assert_eq!(d.filter(&keys, &mut keep, 1), 1);
        assert_eq!(keep, vec![true, true, false]);
        d.observe_time(1_000);
        let f = d.end_batch(1).unwrap();
        assert_eq!(f.1.num_rows(), 2);
        // a later batch still within the horizon sees `a` as a duplicate
        let mut keep = vec![true];
        assert_eq!(d.filter(&StringArray::from(vec!["a"]), &mut keep, 2), 1);
        d.observe_time(5_000);
        d.end_batch(2);
        // far past the horizon: generation 1 is forgotten
        let mut keep = vec![true];
        assert_eq!(d.filter(&StringArray::from(vec!["c"]), &mut keep, 3), 0);
        d.observe_time(100_000);
        d.end_batch(3);
        let mut keep = vec![true];
        assert_eq!(d.filter(&StringArray::from(vec!["a"]), &mut keep, 4), 0);
    }
}
