//! Runs the generator source: produces lines with [`ShopEvents`] and appends them to the
//! source's topic in batches, at a rate or unbounded, until a count or a stop signal.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use weir_log::{Record, Topic};

use super::{GeneratorConfig, ShopEvents};
use crate::error::{ConnectorError, Result};

/// Lines appended per log batch when unbounded.
const CHUNK: usize = 8192;

/// Generates into `topic` until `cfg.events` are written or `stop` is set. `produced` counts
/// durable events. Resumes after `already` events (so a restarted generator continues the
/// same sequence instead of repeating it). Blocking: run it on its own thread.
pub fn run_generator(
    name: &str,
    cfg: &GeneratorConfig,
    topic: Arc<Topic>,
    already: u64,
    stop: &AtomicBool,
    produced: &AtomicU64,
) -> Result<u64> {
    let start_ms = cfg.start_ms().map_err(|reason| ConnectorError::Config {
        source_name: name.to_owned(),
        reason,
    })?;
    let mut gen_ = ShopEvents::new(cfg.seed, start_ms);
    gen_.skip(already);
    let limit = cfg.events.unwrap_or(u64::MAX);
    let mut done = already;
    let begun = Instant::now();
    let mut sent_since_start = 0u64;
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK * 230);
    let mut ends: Vec<usize> = Vec::with_capacity(CHUNK);
    while done < limit && !stop.load(Ordering::Relaxed) {
        let mut want = CHUNK.min(usize::try_from(limit - done).unwrap_or(CHUNK));
        if let Some(rate) = cfg.rate {
            // Send what the rate allows by now, in chunks of at most 1/20 s of events.
            let due = (begun.elapsed().as_secs_f64() * rate as f64) as u64;
            let allowed = due.saturating_sub(sent_since_start);
            if allowed == 0 {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            want = want
                .min(usize::try_from(allowed).unwrap_or(want))
                .min((rate / 20).max(1) as usize);
        }
        buf.clear();
        ends.clear();
        for _ in 0..want {
            gen_.next_line(&mut buf);
            ends.push(buf.len());
        }
        let now = weir_core::now_ms();
        let mut recs = Vec::with_capacity(want);
        let mut from = 0;
        for &end in &ends {
            recs.push(Record {
                key: None,
                value: &buf[from..end],
                timestamp_ms: now,
            });
            from = end;
        }
        let p = topic.partition_for(None);
        let part = topic.partition(p).ok_or_else(|| ConnectorError::Config {
            source_name: name.to_owned(),
            reason: format!("topic `{}` has no partition {p}", topic.name()),
        })?;
        part.append(&recs).map_err(|error| ConnectorError::Log {
            source_name: name.to_owned(),
            error,
        })?;
        done += want as u64;
        sent_since_start += want as u64;
        produced.fetch_add(want as u64, Ordering::Relaxed);
    }
    Ok(done)
}
