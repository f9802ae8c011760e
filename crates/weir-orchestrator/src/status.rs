//! What the running pipeline reports about itself: per-batch figures, per-table counters,
//! committed offsets and the ingest → commit latency distribution. Shared between the
//! pipeline thread (writer) and the HTTP API, status line and benchmarks (readers).

use std::collections::BTreeMap;

use serde::Serialize;
use weir_sql::stream::TableMetrics;

/// Counts of latencies in milliseconds, in buckets of ~4 % width, for quantiles.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LatencyHistogram {
    #[serde(skip)]
    buckets: BTreeMap<u32, u64>,
    pub count: u64,
    /// Sum of all recorded latencies, ms.
    pub sum_ms: f64,
}

impl LatencyHistogram {
    fn bucket(ms: i64) -> u32 {
        let v = ms.max(0) as f64 + 1.0;
        (v.ln() * 25.0) as u32
    }

    fn upper(b: u32) -> f64 {
        (((b + 1) as f64) / 25.0).exp() - 1.0
    }

    pub fn record(&mut self, ms: i64) {
        *self.buckets.entry(Self::bucket(ms)).or_default() += 1;
        self.count += 1;
        self.sum_ms += ms.max(0) as f64;
    }

    /// The latencies recorded since `earlier` (a clone of this histogram taken before).
    pub fn since(&self, earlier: &LatencyHistogram) -> LatencyHistogram {
        let mut buckets = BTreeMap::new();
        for (b, c) in &self.buckets {
            let d = c.saturating_sub(earlier.buckets.get(b).copied().unwrap_or(0));
            if d > 0 {
                buckets.insert(*b, d);
            }
        }
        LatencyHistogram {
            count: buckets.values().sum(),
            buckets,
            sum_ms: (self.sum_ms - earlier.sum_ms).max(0.0),
        }
    }

    /// How many latencies are at most `ms` (to bucket precision: a bucket counts when its
    /// upper bound is ≤ `ms`).
    pub fn count_le(&self, ms: f64) -> u64 {
        self.buckets
            .iter()
            .take_while(|(b, _)| Self::upper(**b) <= ms)
            .map(|(_, c)| c)
            .sum()
    }

    /// The q-quantile (0..=1) in ms, to bucket precision; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let target = ((self.count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (b, c) in &self.buckets {
            seen += c;
            if seen >= target {
                return Some(Self::upper(*b));
            }
        }
        self.buckets.keys().last().map(|b| Self::upper(*b))
    }
}

/// One streaming table's live figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TableStatus {
    #[serde(flatten)]
    pub metrics: TableMetrics,
    pub delta_version: i64,
}

/// One sink's live figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SinkStatus {
    pub kind: String,
    /// The table whose rows it receives.
    pub from: String,
    /// Rows written since start.
    pub rows: u64,
    /// Batches written since start.
    pub batches: u64,
    /// Replayed batches found already delivered and skipped.
    pub skipped_batches: u64,
    /// Failed attempts since start (outside failures are retried).
    pub errors: u64,
    /// The last batch delivered.
    pub last_batch_id: Option<u64>,
    /// The failure of the last attempt, cleared by a success.
    pub last_error: Option<String>,
    /// True while a batch is being retried.
    pub retrying: bool,
}

/// The pipeline's live figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PipelineStatus {
    pub batches: u64,
    pub last_batch_id: Option<u64>,
    pub last_batch_records: u64,
    pub last_batch_seconds: f64,
    pub records_processed: u64,
    /// Committed (next-to-read) offsets: topic → partition → offset.
    pub committed: BTreeMap<String, BTreeMap<u32, u64>>,
    pub tables: BTreeMap<String, TableStatus>,
    pub delta_versions: BTreeMap<String, i64>,
    pub latency: LatencyHistogram,
    /// Wall time of each micro-batch, read to committed (ms).
    pub batch_duration: LatencyHistogram,
    /// Wall time of each Delta commit, per table (ms).
    pub commit_duration: BTreeMap<String, LatencyHistogram>,
    /// Per sink: rows delivered, retries and the last error.
    pub sinks: BTreeMap<String, SinkStatus>,
    /// Set once the pipeline has planned its tables and recovered.
    pub ready: bool,
    /// Set when the pipeline stopped on an error.
    pub error: Option<String>,
}

/// Resident memory of this process in bytes (Linux `/proc/self/status`), if known.
pub fn rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: u64 = s
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb * 1024)
}
