//! The recent log: a `tracing` layer ([`layer`]) that keeps the last [`CAPACITY`] events in a
//! process-wide ring buffer, whatever the console shows, and `GET /v1/logs` that reads it.
//! `/v1/stream` pushes new lines as `log` events.
//!
//! Kept: weir's own events at info level and above, and other crates' at warn and above. (The
//! Delta kernel logs every snapshot scan at info: with it, a busy pipeline would push weir's
//! lines out of the buffer within seconds.)
//!
//! The binary installs the layer next to its console layer (crates/weir/src/main.rs); a
//! process that does not install it serves an empty log.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, LazyLock, Mutex};

use axum::extract::Query;
use axum::http::StatusCode;
use tracing::field::{Field, Visit};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{Filtered, Targets};
use tracing_subscriber::layer::Context;
use weir_core::ErrorKind;

use crate::openapi::{api_object, api_query};
use crate::{ApiError, parse_limit};

/// Lines kept.
pub const CAPACITY: usize = 2000;

api_object! {
    /// One log event.
    pub struct LogLine {
        /// Position in the process's log, increasing by one per event.
        pub seq: u64,
        /// Time of the event, ms since the epoch.
        pub ts: i64,
        /// error, warn or info.
        pub level: String,
        /// The module that logged it, e.g. `weir_orchestrator::pipeline`.
        pub target: String,
        pub message: String,
        /// The event's key/value fields.
        pub fields: BTreeMap<String, serde_json::Value>,
    }
}

api_object! {
    /// Recent log lines, oldest first.
    pub struct LogList {
        pub lines: Vec<LogLine>,
    }
}

api_query! {
    pub struct LogQuery {
        /// Lowest level to return: error, warn or info (default info).
        level: string,
        /// Only lines whose target starts with this, e.g. `weir_sql` (default all).
        component: string,
        /// Most lines to return, the newest ones: 1..=2000 (default 200).
        limit: integer,
    }
}

#[derive(Default)]
struct Ring {
    lines: VecDeque<Arc<LogLine>>,
    next_seq: u64,
}

/// The process's recent log.
pub struct LogBuffer {
    ring: Mutex<Ring>,
}

static BUFFER: LazyLock<LogBuffer> = LazyLock::new(|| LogBuffer {
    ring: Mutex::new(Ring::default()),
});

/// The process-wide buffer the layer writes to.
pub fn buffer() -> &'static LogBuffer {
    &BUFFER
}

impl LogBuffer {
    fn ring(&self) -> std::sync::MutexGuard<'_, Ring> {
        // Pushing a line cannot leave the ring half-updated, so a poisoned lock is usable.
        self.ring.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, mut line: LogLine) {
        let mut r = self.ring();
        line.seq = r.next_seq;
        r.next_seq += 1;
        if r.lines.len() == CAPACITY {
            r.lines.pop_front();
        }
        r.lines.push_back(Arc::new(line));
    }

    /// The sequence number the next line will get.
    pub fn next_seq(&self) -> u64 {
        self.ring().next_seq
    }

    /// Lines with `seq >= from`, oldest first, at most `max` (the oldest of them).
    pub fn since(&self, from: u64, max: usize) -> Vec<Arc<LogLine>> {
        self.ring()
            .lines
            .iter()
            .filter(|l| l.seq >= from)
            .take(max)
            .cloned()
            .collect()
    }

    /// The newest `limit` lines at `min_level` or above whose target starts with `component`,
    /// oldest first.
    pub fn recent(&self, min_level: u8, component: &str, limit: usize) -> Vec<Arc<LogLine>> {
        let r = self.ring();
        let mut out: Vec<Arc<LogLine>> = r
            .lines
            .iter()
            .rev()
            .filter(|l| level_rank(&l.level) >= min_level && l.target.starts_with(component))
            .take(limit)
            .cloned()
            .collect();
        out.reverse();
        out
    }
}

/// error 3, warn 2, info 1, anything else 0.
fn level_rank(level: &str) -> u8 {
    match level {
        "error" => 3,
        "warn" => 2,
        "info" => 1,
        _ => 0,
    }
}

/// The layer that fills [`buffer`], with its own filter (see the module docs): a per-layer
/// filter, so the console's filter does not apply to it and it does not apply to the console.
pub fn layer<S>() -> Filtered<RingLayer, Targets, S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    // Targets match by prefix: `weir` covers the binary and every `weir_*` crate.
    let filter = Targets::new()
        .with_default(tracing::Level::WARN)
        .with_target("weir", tracing::Level::INFO);
    RingLayer.with_filter(filter)
}

/// Writes each event it sees to [`buffer`].
pub struct RingLayer;

impl<S: tracing::Subscriber> Layer<S> for RingLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut v = FieldVisitor::default();
        event.record(&mut v);
        buffer().push(LogLine {
            seq: 0,
            ts: weir_core::now_ms(),
            level: meta.level().as_str().to_ascii_lowercase(),
            target: meta.target().to_owned(),
            message: v.message,
            fields: v.fields,
        });
    }
}

#[derive(Default)]
struct FieldVisitor {
    message: String,
    fields: BTreeMap<String, serde_json::Value>,
}

impl FieldVisitor {
    fn put(&mut self, field: &Field, value: serde_json::Value) {
        if field.name() == "message" {
            self.message = match value {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
        } else {
            self.fields.insert(field.name().to_owned(), value);
        }
    }
}

impl Visit for FieldVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, value.to_string().into());
    }
}

/// `GET /v1/logs`.
pub async fn list(
    q: Result<Query<LogQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<LogList>, ApiError> {
    let Query(q) = q.map_err(crate::query_error)?;
    let min = match q.level.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("info") => 1,
        Some("warn") | Some("warning") => 2,
        Some("error") => 3,
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorKind::User,
                format!("query parameter `level` must be error, warn or info, got `{other}`"),
            ));
        }
    };
    let limit = parse_limit(q.limit.as_deref(), 200, CAPACITY)?;
    let lines = buffer()
        .recent(min, q.component.as_deref().unwrap_or(""), limit)
        .into_iter()
        .map(|l| (*l).clone())
        .collect();
    Ok(axum::Json(LogList { lines }))
}
