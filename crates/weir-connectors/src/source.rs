//! What every pulling source shares: the [`PullSource`] contract, the [`SourceContext`] the
//! runtime hands it, [`SourceHealth`] (errors and retries shown in `/v1/status` and
//! `/metrics`), a stop-aware [`Backoff`], and [`Appender`], which writes records durably and
//! finds the last one written (how a source resumes: its position travels in its own records,
//! so the log and the position can never disagree after a crash).
//!
//! Push sources (`http`) and the `file` and `generator` sources predate this contract and are
//! started by the runtime directly; see `weir_orchestrator::runtime`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use weir_log::{Record, StoredRecord, Topic};

use crate::dlq;
use crate::error::{ConnectorError, Result};
use crate::schema::SchemaValidator;

/// Everything a running source may touch.
pub struct SourceContext {
    /// The source's name (`[sources.<name>]`), also its topic's name.
    pub name: String,
    pub topic: Arc<Topic>,
    pub dlq: Arc<Topic>,
    /// Set when weir stops; `run` returns soon after.
    pub stop: Arc<AtomicBool>,
    /// Records the source appended since the process started.
    pub produced: Arc<AtomicU64>,
    /// A folder of the source's own under the data dir, for state that is not a position.
    pub state_dir: PathBuf,
    pub health: Arc<SourceHealth>,
    /// Set when the source declares `schema = "<subject>"`: its appender validates every
    /// record and dead-letters those that fail.
    pub validator: Option<Arc<SchemaValidator>>,
}

impl SourceContext {
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Sleeps `d` in short steps; returns false when weir is stopping.
    pub fn sleep(&self, d: Duration) -> bool {
        let until = Instant::now() + d;
        while Instant::now() < until {
            if self.stopping() {
                return false;
            }
            std::thread::sleep((until - Instant::now()).min(Duration::from_millis(50)));
        }
        !self.stopping()
    }

    /// An appender for this source's topic.
    pub fn appender(&self) -> Appender {
        Appender {
            name: self.name.clone(),
            topic: self.topic.clone(),
            dlq: self.dlq.clone(),
            produced: self.produced.clone(),
            validator: self.validator.clone(),
            partial: Arc::default(),
        }
    }
}

/// A source that pulls records from an outside system on a thread of its own.
///
/// Contract: [`PullSource::run`] is called once, on a dedicated thread, and blocks until
/// `ctx.stop` is set. It retries outside failures itself (connection refused, 5xx, timeouts)
/// with [`Backoff`], reporting each through `ctx.health`, so an outage never ends the source.
/// It returns `Ok(())` on stop, and `Err` only for what a retry cannot fix (a `User` error such
/// as a table that does not exist), which the runtime logs and shows in status. A record is
/// acknowledged to the outside system only after [`Appender::append`] returned.
pub trait PullSource: Send {
    fn run(&mut self, ctx: &SourceContext) -> Result<()>;
}

/// Errors and liveness of one source, shared with status and metrics.
#[derive(Debug, Default)]
pub struct SourceHealth {
    errors: AtomicU64,
    connected: AtomicBool,
    last_error: Mutex<Option<(i64, String)>>,
}

/// A point-in-time copy of [`SourceHealth`].
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct HealthSnapshot {
    /// Failed attempts since start (each retried).
    pub errors: u64,
    /// Whether the last attempt to reach the outside system worked.
    pub connected: bool,
    /// The last failure and when it happened (ms since the epoch); cleared by a success.
    pub last_error: Option<String>,
    pub last_error_ms: Option<i64>,
}

impl SourceHealth {
    /// Records a failed attempt.
    pub fn failed(&self, error: &str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.connected.store(false, Ordering::Relaxed);
        if let Ok(mut l) = self.last_error.lock() {
            *l = Some((weir_core::now_ms(), error.to_owned()));
        }
    }

    /// Records a successful round trip.
    pub fn ok(&self) {
        self.connected.store(true, Ordering::Relaxed);
        if let Ok(mut l) = self.last_error.lock() {
            *l = None;
        }
    }

    pub fn snapshot(&self) -> HealthSnapshot {
        let last = self.last_error.lock().ok().and_then(|l| l.clone());
        HealthSnapshot {
            errors: self.errors.load(Ordering::Relaxed),
            connected: self.connected.load(Ordering::Relaxed),
            last_error_ms: last.as_ref().map(|l| l.0),
            last_error: last.map(|l| l.1),
        }
    }
}

/// Exponential backoff between retries: 200 ms doubling to `max`, reset by a success.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(200);

    pub fn new(max: Duration) -> Self {
        Backoff {
            next: Self::FIRST,
            max,
        }
    }

    /// The delay before the next retry (and doubles the one after).
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    pub fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

/// Appends a source's records durably and reads back the last one it wrote.
#[derive(Clone)]
pub struct Appender {
    name: String,
    topic: Arc<Topic>,
    dlq: Arc<Topic>,
    produced: Arc<AtomicU64>,
    validator: Option<Arc<SchemaValidator>>,
    /// A call that failed part-way: the fingerprint of its records and which of its appends
    /// (one per partition, then the dead letters) were already durable, so that retrying the
    /// same call does not append those again.
    partial: Arc<Mutex<Option<Partial>>>,
}

#[derive(Debug)]
struct Partial {
    fingerprint: u64,
    /// The partition each record was given (round-robin for keyless records must not pick
    /// again on the retry).
    parts: Vec<u32>,
    done: Vec<bool>,
}

/// One record about to be appended.
pub struct OutRecord {
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub timestamp_ms: i64,
}

impl Appender {
    pub fn topic(&self) -> &Arc<Topic> {
        &self.topic
    }

    /// The dead-letter topic (one partition, shared by every source).
    pub fn dead_letter_topic(&self) -> &Arc<Topic> {
        &self.dlq
    }

    /// Validates every record against the source's schema from now on (see
    /// [`Appender::append`]).
    #[must_use]
    pub fn with_validator(mut self, validator: Arc<SchemaValidator>) -> Self {
        self.validator = Some(validator);
        self
    }

    /// Appends `records` (each to the partition its key hashes to, round-robin without a key)
    /// and returns once all are durable. On error the call is not acknowledged; the caller
    /// retries it with the same records, and what of the failed call already became durable
    /// (one append per partition) is not appended again. With a validator, records failing
    /// the schema go to the dead-letter topic (reason `schema_mismatch`, the path and the
    /// reason in the detail) instead of the topic.
    pub fn append(&self, records: &[OutRecord]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let n = self.topic.partition_count().max(1) as usize;
        let mut partial = self.partial.lock().unwrap_or_else(|e| e.into_inner());
        // A retry of the call that failed part-way skips what it already made durable.
        let (parts, mut done) = match partial.take() {
            Some(p) if p.fingerprint == fingerprint(records) => (p.parts, p.done),
            _ => (
                records
                    .iter()
                    .map(|r| self.topic.partition_for(r.key.as_deref()))
                    .collect(),
                vec![false; n + 1],
            ),
        };
        let result = self.append_parts(records, &parts, &mut done);
        if result.is_err() && done.iter().any(|d| *d) {
            *partial = Some(Partial {
                fingerprint: fingerprint(records),
                parts,
                done,
            });
        }
        result
    }

    /// Appends `records`, record i to partition `parts[i]`: one append per partition (`done`
    /// index = partition) and one to the dead-letter topic (the last index), skipping those
    /// already `done` and marking each that becomes durable.
    fn append_parts(&self, records: &[OutRecord], parts: &[u32], done: &mut [bool]) -> Result<()> {
        let n = done.len() - 1;
        let log_err = |error| ConnectorError::Log {
            source_name: self.name.clone(),
            error,
        };
        let mut good: Vec<(&OutRecord, u32)> = Vec::with_capacity(records.len());
        match &self.validator {
            None => good.extend(records.iter().zip(parts.iter().copied())),
            Some(validator) => {
                let values: Vec<&[u8]> = records.iter().map(|r| r.value.as_slice()).collect();
                let verdicts = validator.check(&values);
                let mut dead = Vec::new();
                for ((r, p), verdict) in records.iter().zip(parts).zip(verdicts) {
                    match verdict {
                        None => good.push((r, *p)),
                        Some(detail) => dead.push(dlq::encode(
                            &self.name,
                            dlq::RejectReason::SchemaMismatch,
                            detail,
                            &r.value,
                        )),
                    }
                }
                if !dead.is_empty() && !done[n] {
                    let now = weir_core::now_ms();
                    let recs: Vec<Record<'_>> = dead.iter().map(|v| Record::new(v, now)).collect();
                    let part = self.dlq.partition(0).ok_or_else(|| {
                        self.corrupt("the dead-letter topic has no partition".into())
                    })?;
                    part.append(&recs).map_err(log_err)?;
                    done[n] = true;
                }
            }
        }
        let mut by_part: Vec<Vec<Record<'_>>> = (0..n).map(|_| Vec::new()).collect();
        for (r, p) in &good {
            by_part[*p as usize].push(Record {
                key: r.key.as_deref(),
                value: &r.value,
                timestamp_ms: r.timestamp_ms,
            });
        }
        for (p, recs) in by_part.iter().enumerate() {
            if recs.is_empty() || done[p] {
                continue;
            }
            let part = self
                .topic
                .partition(p as u32)
                .ok_or_else(|| self.corrupt(format!("partition {p} is missing")))?;
            part.append(recs).map_err(log_err)?;
            done[p] = true;
            self.produced
                .fetch_add(recs.len() as u64, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Writes one dead letter (a record the source could not take) with its reason.
    pub fn dead_letter(&self, reason: dlq::RejectReason, detail: String, raw: &[u8]) -> Result<()> {
        self.dead_letter_at(reason, detail, raw, None)
    }

    /// [`Appender::dead_letter`] with the record's position in the outside system (an LSN, a
    /// broker offset, a topic and packet id), which `weir dlq` shows to find it upstream.
    pub fn dead_letter_at(
        &self,
        reason: dlq::RejectReason,
        detail: String,
        raw: &[u8],
        offset: Option<&str>,
    ) -> Result<()> {
        let v = dlq::encode_at(&self.name, reason, detail, raw, offset);
        let part = self
            .dlq
            .partition(0)
            .ok_or_else(|| self.corrupt("the dead-letter topic has no partition".into()))?;
        part.append(&[Record::new(&v, weir_core::now_ms())])
            .map_err(|error| ConnectorError::Log {
                source_name: self.name.clone(),
                error,
            })?;
        Ok(())
    }

    /// The last durable record of every partition, newest first by timestamp.
    pub fn last_records(&self) -> Result<Vec<StoredRecord>> {
        let mut out = Vec::new();
        for part in self.topic.partitions() {
            let end = part.end_offset();
            if end == 0 || end <= part.start_offset() {
                continue;
            }
            let recs = part
                .read(end - 1, 1, usize::MAX)
                .map_err(|error| ConnectorError::Log {
                    source_name: self.name.clone(),
                    error,
                })?;
            out.extend(recs);
        }
        out.sort_by_key(|r| std::cmp::Reverse(r.timestamp_ms));
        Ok(out)
    }

    fn corrupt(&self, reason: String) -> ConnectorError {
        ConnectorError::Config {
            source_name: self.name.clone(),
            reason,
        }
    }
}

/// Identifies a call's records, to recognise its retry.
fn fingerprint(records: &[OutRecord]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    records.len().hash(&mut h);
    for r in records {
        r.key.hash(&mut h);
        r.value.hash(&mut h);
        r.timestamp_ms.hash(&mut h);
    }
    h.finish()
}

/// Substitutes `${NAME}` with environment variables (for secrets in URLs and headers), and
/// `${NAME:-default}` with the default when `NAME` is unset or empty. Errors name the
/// variable that is not set.
pub fn expand_env(s: &str) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(j) = after.find('}') else {
            return Err(format!("`${{` without a closing `}}` in `{s}`"));
        };
        let (var, default) = match after[..j].split_once(":-") {
            Some((v, d)) => (v, Some(d)),
            None => (&after[..j], None),
        };
        match (std::env::var(var), default) {
            (Ok(v), Some(d)) if v.is_empty() => out.push_str(d),
            (Ok(v), _) => out.push_str(&v),
            (Err(_), Some(d)) => out.push_str(d),
            (Err(_), None) => {
                return Err(format!("environment variable `{var}` is not set"));
            }
        }
        rest = &after[j + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1));
        let d: Vec<u128> = (0..5).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(d, vec![200, 400, 800, 1000, 1000]);
        b.reset();
        assert_eq!(b.next_delay().as_millis(), 200);
    }

    #[test]
    fn expand_env_substitutes_and_names_missing_variables() {
        assert_eq!(expand_env("plain").unwrap(), "plain");
        let e = expand_env("Bearer ${WEIR_TEST_SURELY_UNSET_VAR_42}").unwrap_err();
        assert!(e.contains("WEIR_TEST_SURELY_UNSET_VAR_42"), "{e}");
        assert!(expand_env("${oops").is_err());
        let path = std::env::var("PATH").unwrap();
        assert_eq!(expand_env("x${PATH}y").unwrap(), format!("x{path}y"));
        assert_eq!(
            expand_env("${WEIR_TEST_SURELY_UNSET_VAR_42:-mqtt://h:1}/x").unwrap(),
            "mqtt://h:1/x"
        );
        assert_eq!(expand_env("${PATH:-none}").unwrap(), path);
    }
}
