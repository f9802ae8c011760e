//! Live figures: one sampler task per server reads the pipeline's counters once a second and
//! keeps the last [`RING`] samples (15 minutes); `GET /v1/stream` sends them to browsers as
//! Server-Sent Events: the kept history on connect, then each new sample, and new log lines.
//!
//! Samples are taken once whatever the number of clients, so an open dashboard costs the
//! pipeline one status read per second. `/v1/quality` and `/v1/pipeline` read the same ring.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use tokio::sync::broadcast;
use weir_orchestrator::Weir;
use weir_orchestrator::status::LatencyHistogram;

use crate::AppState;
use crate::openapi::api_object;

/// Samples kept: 15 minutes at one per second.
pub const RING: usize = 900;
/// Log lines pushed per sample and client at most.
const LOG_LINES_PER_TICK: usize = 200;

api_object! {
    /// One table's figures over a sample's interval.
    pub struct TableSample {
        /// Rows written per second.
        pub rows_per_s: f64,
        /// Rows quarantined in the interval.
        pub quarantined: u64,
        /// Rows behind the watermark in the interval (windowed tables).
        pub late: u64,
        /// Input rows that passed every expectation in the interval.
        pub passed: u64,
        /// Input rows removed by an expectation (quarantined or dropped) in the interval.
        pub failed: u64,
    }
}

api_object! {
    /// The pipeline over one sampling interval (about a second).
    pub struct Sample {
        /// End of the interval, ms since the epoch.
        pub ts: i64,
        /// Length of the interval in seconds.
        pub interval_s: f64,
        /// Records appended to all source logs, per second.
        pub events_in_per_s: f64,
        /// Records appended per second, per source.
        pub sources: BTreeMap<String, f64>,
        /// Per table (bronze and streaming tables).
        pub tables: BTreeMap<String, TableSample>,
        /// Median ingest → commit latency of the records committed in the interval.
        pub latency_p50_ms: Option<f64>,
        /// 99th percentile of the same.
        pub latency_p99_ms: Option<f64>,
        /// Records in the log not yet committed, now.
        pub lag: u64,
        /// Micro-batches committed in the interval.
        pub batches: u64,
        /// Dead letters in the interval.
        pub dead_letters: u64,
        /// Resident memory now.
        pub rss_bytes: Option<u64>,
    }
}

/// Cumulative counters at one instant; a sample is the difference of two.
struct Counters {
    at: Instant,
    sources: BTreeMap<String, u64>,
    /// Table → (rows out, quarantined, late, rows in, dropped).
    tables: BTreeMap<String, [u64; 5]>,
    latency: LatencyHistogram,
    batches: u64,
    dead_letters: u64,
}

impl Counters {
    fn read(weir: &Weir) -> Counters {
        let st = weir.pipeline_status();
        let log = weir.log();
        let mut sources = BTreeMap::new();
        let mut tables = BTreeMap::new();
        for name in weir.project().config.sources.keys() {
            let end = log.topic(name).map_or(0, |t| {
                (0..t.partition_count())
                    .filter_map(|p| t.partition(p).map(|x| x.end_offset()))
                    .sum()
            });
            sources.insert(name.clone(), end);
            // Bronze holds every committed record.
            let committed: u64 = st.committed.get(name).map_or(0, |m| m.values().sum());
            tables.insert(format!("bronze_{name}"), [committed, 0, 0, committed, 0]);
        }
        for (name, t) in &st.tables {
            let m = &t.metrics;
            tables.insert(
                name.clone(),
                [m.rows_out, m.quarantined, m.late, m.rows_in, m.dropped],
            );
        }
        Counters {
            at: Instant::now(),
            sources,
            tables,
            latency: st.latency,
            batches: st.batches,
            dead_letters: weir.dead_letters(),
        }
    }

    fn sample_since(&self, prev: &Counters, weir: &Weir) -> Sample {
        let secs = self.at.duration_since(prev.at).as_secs_f64().max(1e-3);
        let delta = |now: u64, before: u64| now.saturating_sub(before);
        let mut sources = BTreeMap::new();
        let mut total_in = 0;
        for (name, n) in &self.sources {
            let d = delta(*n, prev.sources.get(name).copied().unwrap_or(*n));
            total_in += d;
            sources.insert(name.clone(), d as f64 / secs);
        }
        let mut tables = BTreeMap::new();
        for (name, now) in &self.tables {
            let before = prev.tables.get(name).copied().unwrap_or(*now);
            let d: Vec<u64> = now.iter().zip(before).map(|(a, b)| delta(*a, b)).collect();
            let failed = d[1] + d[4];
            tables.insert(
                name.clone(),
                TableSample {
                    rows_per_s: d[0] as f64 / secs,
                    quarantined: d[1],
                    late: d[2],
                    passed: d[3].saturating_sub(failed),
                    failed,
                },
            );
        }
        let lat = self.latency.since(&prev.latency);
        Sample {
            ts: weir_core::now_ms(),
            interval_s: secs,
            events_in_per_s: total_in as f64 / secs,
            sources,
            tables,
            latency_p50_ms: lat.quantile(0.5),
            latency_p99_ms: lat.quantile(0.99),
            lag: weir.lag(),
            batches: delta(self.batches, prev.batches),
            dead_letters: delta(self.dead_letters, prev.dead_letters),
            rss_bytes: weir_orchestrator::status::rss_bytes(),
        }
    }
}

/// The sampler shared by every client of one server.
pub struct Sampler {
    ring: Mutex<VecDeque<Arc<Sample>>>,
    /// Dropped when sampling ends, which ends every client's stream.
    tx: Mutex<Option<broadcast::Sender<Arc<Sample>>>>,
    started: AtomicBool,
    every: Duration,
}

impl Default for Sampler {
    fn default() -> Self {
        Self {
            ring: Mutex::new(VecDeque::with_capacity(RING)),
            tx: Mutex::new(Some(broadcast::channel(16).0)),
            started: AtomicBool::new(false),
            every: Duration::from_secs(1),
        }
    }
}

impl Sampler {
    /// Starts the sampling task once, if called inside a Tokio runtime (else the next call
    /// from a handler starts it). The task ends when the project stops or the server (the
    /// last holder of this sampler) is dropped.
    pub fn ensure_started(self: &Arc<Self>, weir: &Arc<Weir>) {
        if tokio::runtime::Handle::try_current().is_err()
            || self.started.swap(true, Ordering::AcqRel)
        {
            return;
        }
        tokio::spawn(run(Arc::downgrade(self), Arc::downgrade(weir), self.every));
    }

    /// The kept samples, oldest first.
    pub fn history(&self) -> Vec<Arc<Sample>> {
        self.ring().iter().cloned().collect()
    }

    /// The newest sample.
    pub fn last(&self) -> Option<Arc<Sample>> {
        self.ring().back().cloned()
    }

    fn ring(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<Sample>>> {
        // Pushing a sample cannot leave the ring half-updated.
        self.ring.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, s: Sample) {
        let s = Arc::new(s);
        {
            let mut r = self.ring();
            if r.len() == RING {
                r.pop_front();
            }
            r.push_back(s.clone());
        }
        if let Some(tx) = self.sender().as_ref() {
            // No receiver is fine: nobody is watching.
            let _ = tx.send(s);
        }
    }

    fn sender(&self) -> std::sync::MutexGuard<'_, Option<broadcast::Sender<Arc<Sample>>>> {
        self.tx.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// New samples as they are taken; `None` once sampling has ended.
    fn subscribe(&self) -> Option<broadcast::Receiver<Arc<Sample>>> {
        self.sender().as_ref().map(broadcast::Sender::subscribe)
    }
}

async fn run(sampler: Weak<Sampler>, weir: Weak<Weir>, every: Duration) {
    sample_until_stopped(&sampler, weir, every).await;
    if let Some(s) = sampler.upgrade() {
        s.sender().take();
    }
}

async fn sample_until_stopped(sampler: &Weak<Sampler>, weir: Weak<Weir>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tick.tick().await;
    let mut prev = match weir.upgrade() {
        Some(w) => Counters::read(&w),
        None => return,
    };
    loop {
        tick.tick().await;
        let (Some(s), Some(w)) = (sampler.upgrade(), weir.upgrade()) else {
            return;
        };
        if w.stopping() {
            return;
        }
        let now = Counters::read(&w);
        let sample = now.sample_since(&prev, &w);
        s.push(sample);
        prev = now;
    }
}

/// `GET /v1/stream`.
pub async fn stream(
    State(st): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let sampler = st.live.sampler.clone();
    sampler.ensure_started(&st.weir);
    let rx = sampler.subscribe();
    let history = sampler.history();
    let first = Event::default()
        .event("history")
        .json_data(&history)
        .unwrap_or_else(|e| Event::default().event("error").data(e.to_string()));
    let next_log = crate::logs::buffer().next_seq();
    let rest = futures::stream::unfold((rx, next_log), |(rx, mut next_log)| async move {
        let mut rx = rx?;
        let sample = loop {
            match rx.recv().await {
                Ok(s) => break s,
                // A slow client skips samples rather than holding the sampler back.
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        };
        let mut events = Vec::new();
        for line in crate::logs::buffer().since(next_log, LOG_LINES_PER_TICK) {
            next_log = line.seq + 1;
            if let Ok(e) = Event::default().event("log").json_data(&*line) {
                events.push(Ok(e));
            }
        }
        if let Ok(e) = Event::default().event("sample").json_data(&*sample) {
            events.push(Ok(e));
        }
        Some((futures::stream::iter(events), (Some(rx), next_log)))
    })
    .flatten();
    Sse::new(futures::stream::once(async move { Ok(first) }).chain(rest))
        .keep_alive(KeepAlive::default())
}
