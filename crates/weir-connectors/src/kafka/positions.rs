//! Where the `kafka` source resumes: the last Kafka offset it took from each (topic,
//! partition), found in its own log records, so that the log and the position can never
//! disagree after a crash.
//!
//! Every stored record carries its Kafka `topic`, `partition` and `offset` (see
//! [`super::source`]) and is keyed `<topic>/<partition>`, so all records of one Kafka
//! partition go to one weir partition, in offset order: the last record of a Kafka partition
//! in the weir partition it maps to is the last message of it that was stored. Several Kafka
//! partitions can map to one weir partition, and a quiet one's last record can be far back,
//! so finding them means reading the weir partition, not just its last record.
//!
//! To keep that read short, the source keeps a summary in its state folder (`kafka.json`):
//! for each weir partition, an offset `scanned` below which every record has been taken into
//! `last` (the last Kafka offset per Kafka partition, dead-lettered messages included). On
//! start only the records at or past `scanned` are read, i.e. what was appended after the
//! summary was last written (at most about a second's worth, see [`Positions::save`]). The
//! summary is only a shortcut: it is written after the records it covers are durable, a
//! missing or unreadable one means reading the whole partition, and one that claims more than
//! the log holds (a log deleted and started again) is ignored. So the position is always the
//! log's.
//!
//! A dead-lettered message has no record in the source's topic; its position is in its
//! dead letter's `offset` (`<topic>/<partition>@<offset>`). The summary also remembers how
//! far the dead-letter topic was read (`dlq_scanned`), and the dead letters past it are read
//! on start too, so a crash right after a dead letter does not write it again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use weir_log::{Partition, Topic};

use crate::error::{ConnectorError, Result};

/// The summary file in the source's state folder.
pub const SUMMARY_FILE: &str = "kafka.json";

/// Least time between two summary writes while running.
const SAVE_EVERY: Duration = Duration::from_secs(1);

/// Records read at a time when scanning the log.
const SCAN_RECORDS: usize = 4096;
const SCAN_BYTES: usize = 16 << 20;

/// The weir record key of a message of Kafka `topic` / `partition`.
pub fn record_key(topic: &str, partition: i32) -> String {
    format!("{topic}/{partition}")
}

/// The Kafka position a stored record carries.
#[derive(Deserialize)]
struct Carried<'a> {
    #[serde(borrow)]
    topic: std::borrow::Cow<'a, str>,
    partition: i32,
    offset: i64,
}

/// What `kafka.json` holds.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Summary {
    /// Partition count of the weir topic the summary was made for.
    weir_partitions: u32,
    /// Per weir partition: records below this offset are accounted for in `last`.
    scanned: Vec<u64>,
    /// `<topic>/<partition>` → last Kafka offset taken (stored or dead-lettered).
    last: BTreeMap<String, i64>,
    /// Dead-letter topic entries below this offset are accounted for in `last`.
    #[serde(default)]
    dlq_scanned: u64,
}

/// The source's Kafka positions, kept up to date as it stores messages.
#[derive(Debug)]
pub struct Positions {
    source: String,
    path: PathBuf,
    /// (topic, partition) → last Kafka offset taken.
    last: BTreeMap<(String, i32), i64>,
    saved_at: Option<Instant>,
}

impl Positions {
    /// Reads the summary (when usable) and the records and dead letters past it.
    pub fn recover(
        source: &str,
        topic: &Topic,
        dlq: &Topic,
        state_dir: &Path,
    ) -> Result<Positions> {
        let path = state_dir.join(SUMMARY_FILE);
        let parts = topic.partitions();
        let dlq_end = dlq.partition(0).map_or(0, |p| p.end_offset());
        let summary = match load(&path) {
            Some(s)
                if s.weir_partitions == topic.partition_count()
                    && s.scanned.len() == parts.len()
                    && s.dlq_scanned <= dlq_end
                    && parts
                        .iter()
                        .zip(&s.scanned)
                        .all(|(p, n)| *n <= p.end_offset()) =>
            {
                s
            }
            Some(_) => {
                tracing::warn!(
                    source = %source,
                    path = %path.display(),
                    "the kafka position summary does not match the log; reading the whole log"
                );
                Summary::default()
            }
            None => Summary::default(),
        };
        let mut last = BTreeMap::new();
        for (k, v) in &summary.last {
            if let Some((t, p)) = k.rsplit_once('/')
                && let Ok(p) = p.parse::<i32>()
            {
                last.insert((t.to_owned(), p), *v);
            }
        }
        let mut read = 0u64;
        for (i, part) in parts.iter().enumerate() {
            let from = summary.scanned.get(i).copied().unwrap_or(0);
            read += scan(source, part, from, part.end_offset(), |t, p, o| {
                last.insert((t.to_owned(), p), o);
            })?;
        }
        // Dead letters written after the summary (a crash within a second of one): their
        // positions are in their `offset`, `<topic>/<partition>@<offset>`.
        if let Some(part) = dlq.partition(0) {
            read += scan_dead_letters(source, part, summary.dlq_scanned, dlq_end, |t, p, o| {
                let l = last.entry((t.to_owned(), p)).or_insert(o);
                *l = (*l).max(o);
            })?;
        }
        tracing::info!(
            source = %source,
            records_read = read,
            kafka_partitions = last.len(),
            "kafka positions recovered from the log"
        );
        Ok(Positions {
            source: source.to_owned(),
            path,
            last,
            saved_at: None,
        })
    }

    /// The offset to read next in Kafka `topic` / `partition`, if anything of it was taken.
    pub fn next(&self, topic: &str, partition: i32) -> Option<i64> {
        self.last
            .get(&(topic.to_owned(), partition))
            .map(|o| o.saturating_add(1))
    }

    /// Notes that the message at `offset` was stored (or dead-lettered). Positions only move
    /// forward: a batch's dead letters are noted before its records, which can be older.
    pub fn taken(&mut self, topic: &str, partition: i32, offset: i64) {
        match self.last.get_mut(&(topic.to_owned(), partition)) {
            Some(o) => *o = (*o).max(offset),
            None => {
                self.last.insert((topic.to_owned(), partition), offset);
            }
        }
    }

    /// Every (topic, partition) with a position, and the offset to read next.
    pub fn all_next(&self) -> impl Iterator<Item = (&str, i32, i64)> {
        self.last
            .iter()
            .map(|((t, p), o)| (t.as_str(), *p, o.saturating_add(1)))
    }

    /// Writes the summary (at most once a second unless `now`). Call only when every
    /// record appended so far has been passed to [`Positions::taken`]: the summary claims
    /// the whole log up to its current end. Written to a temporary file and renamed, not
    /// fsynced: a summary lost in a power cut only means a longer read at the next start.
    pub fn save(&mut self, topic: &Topic, dlq: &Topic, now: bool) -> Result<()> {
        if !now && self.saved_at.is_some_and(|t| t.elapsed() < SAVE_EVERY) {
            return Ok(());
        }
        let s = Summary {
            weir_partitions: topic.partition_count(),
            scanned: topic.partitions().iter().map(|p| p.end_offset()).collect(),
            dlq_scanned: dlq.partition(0).map_or(0, |p| p.end_offset()),
            last: self
                .last
                .iter()
                .map(|((t, p), o)| (record_key(t, *p), *o))
                .collect(),
        };
        let io = |error| ConnectorError::Io {
            source_name: self.source.clone(),
            path: self.path.display().to_string(),
            error,
        };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = self.path.with_extension("json.tmp");
        // A struct of numbers and strings always serializes.
        let bytes = serde_json::to_vec(&s).unwrap_or_default();
        std::fs::write(&tmp, bytes).map_err(io)?;
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        self.saved_at = Some(Instant::now());
        Ok(())
    }
}

fn load(path: &Path) -> Option<Summary> {
    let bytes = std::fs::read(path).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "unreadable kafka position summary; reading the whole log");
            None
        }
    }
}

/// Calls `found(topic, partition, offset)` for every record of `part` in `[from, to)` (from
/// its start when `from` is below it) that carries a Kafka position, in log order; returns the
/// number of records read.
pub fn scan(
    source: &str,
    part: &Partition,
    from: u64,
    to: u64,
    mut found: impl FnMut(&str, i32, i64),
) -> Result<u64> {
    read_values(source, part, from, to, |value| {
        if let Ok(c) = serde_json::from_slice::<Carried<'_>>(value) {
            found(&c.topic, c.partition, c.offset);
        }
    })
}

/// Calls `found(topic, partition, offset)` for every dead letter of `source` in `[from, to)`
/// of the dead-letter partition that names a Kafka position; returns the entries read.
fn scan_dead_letters(
    source: &str,
    part: &Partition,
    from: u64,
    to: u64,
    mut found: impl FnMut(&str, i32, i64),
) -> Result<u64> {
    read_values(source, part, from, to, |value| {
        if let Ok(d) = crate::dlq::DeadLetter::decode(value)
            && d.source == source
            && let Some((t, p, o)) = d.offset.as_deref().and_then(parse_position)
        {
            found(t, p, o);
        }
    })
}

/// Calls `each(value)` for every record of `part` in `[from, to)` (from its start when `from`
/// is below it), in log order; returns the number of records read.
fn read_values(
    source: &str,
    part: &Partition,
    from: u64,
    to: u64,
    mut each: impl FnMut(&[u8]),
) -> Result<u64> {
    let mut at = from.max(part.start_offset());
    let mut read = 0u64;
    while at < to {
        let recs =
            part.read(at, SCAN_RECORDS, SCAN_BYTES)
                .map_err(|error| ConnectorError::Log {
                    source_name: source.to_owned(),
                    error,
                })?;
        if recs.is_empty() {
            break;
        }
        for r in &recs {
            if r.offset >= to {
                return Ok(read);
            }
            read += 1;
            each(&r.value);
        }
        at = recs.last().map_or(to, |r| r.offset + 1);
    }
    Ok(read)
}

/// `<topic>/<partition>@<offset>` (the dead-letter offset of a Kafka message).
fn parse_position(s: &str) -> Option<(&str, i32, i64)> {
    let (tp, o) = s.rsplit_once('@')?;
    let (t, p) = tp.rsplit_once('/')?;
    Some((t, p.parse().ok()?, o.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_log::{Log, LogConfig, Record};

    fn rec(topic: &str, partition: i32, offset: i64) -> Vec<u8> {
        format!(r#"{{"topic":"{topic}","partition":{partition},"offset":{offset},"key":null,"timestamp":null,"value":{{"x":1}}}}"#).into_bytes()
    }

    fn append(t: &Topic, topic: &str, partition: i32, offsets: std::ops::Range<i64>) {
        let key = record_key(topic, partition);
        let p = t.partition_for(Some(key.as_bytes()));
        let values: Vec<Vec<u8>> = offsets.map(|o| rec(topic, partition, o)).collect();
        let recs: Vec<Record<'_>> = values
            .iter()
            .map(|v| Record::with_key(key.as_bytes(), v, 1))
            .collect();
        t.partition(p).unwrap().append(&recs).unwrap();
    }

    #[test]
    fn positions_come_from_the_log_with_or_without_a_summary() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(LogConfig::new(dir.path().join("log"))).unwrap();
        let t = log.create_topic("orders", 2).unwrap();
        let dlq = log.create_topic("_dlq", 1).unwrap();
        let state = dir.path().join("state");
        // Five Kafka partitions on two weir partitions: some share one.
        for kp in 0..5 {
            append(&t, "o", kp, 0..(10 + i64::from(kp)));
        }
        // A record that is not the source's (no position) is skipped.
        t.partition(0)
            .unwrap()
            .append(&[Record::new(b"{\"x\":1}", 1)])
            .unwrap();
        let mut pos = Positions::recover("s", &t, &dlq, &state).unwrap();
        for kp in 0..5 {
            assert_eq!(
                pos.next("o", kp),
                Some(10 + i64::from(kp)),
                "partition {kp}"
            );
        }
        assert_eq!(pos.next("o", 5), None);
        assert_eq!(pos.next("other", 0), None);

        // A dead-lettered message moves the position only through the summary, and records
        // older than it, noted after it (one batch), do not move it back.
        pos.taken("o", 0, 10);
        pos.taken("o", 0, 9);
        assert_eq!(pos.next("o", 0), Some(11));
        pos.save(&t, &dlq, true).unwrap();
        append(&t, "o", 1, 11..20);
        let pos = Positions::recover("s", &t, &dlq, &state).unwrap();
        assert_eq!(pos.next("o", 0), Some(11));
        assert_eq!(
            pos.next("o", 1),
            Some(20),
            "records past the summary are read"
        );
        assert_eq!(pos.next("o", 4), Some(14));

        // A dead letter written after the last summary (a crash soon after it) counts too;
        // other sources' dead letters and ones without a Kafka position do not.
        let dead = |source: &str, at: Option<&str>| {
            let v = crate::dlq::encode_at(
                source,
                crate::dlq::RejectReason::NotUtf8,
                "not UTF-8".into(),
                b"\xff",
                at,
            );
            dlq.partition(0)
                .unwrap()
                .append(&[Record::new(&v, 1)])
                .unwrap();
        };
        dead("s", Some("o/3@13"));
        dead("other", Some("o/4@99"));
        dead("s", Some("not a position"));
        dead("s", None);
        let pos = Positions::recover("s", &t, &dlq, &state).unwrap();
        assert_eq!(pos.next("o", 3), Some(14));
        assert_eq!(pos.next("o", 4), Some(14));
        assert_eq!(pos.next("o", 0), Some(11), "from the summary");

        // A summary claiming more than the log holds is ignored.
        let fresh = tempfile::tempdir().unwrap();
        let log2 = Log::open(LogConfig::new(fresh.path().join("log"))).unwrap();
        let t2 = log2.create_topic("orders", 2).unwrap();
        let dlq2 = log2.create_topic("_dlq", 1).unwrap();
        append(&t2, "o", 0, 0..3);
        let pos = Positions::recover("s", &t2, &dlq2, &state).unwrap();
        assert_eq!(pos.next("o", 0), Some(3));
        assert_eq!(pos.next("o", 1), None);

        // So is an unreadable one.
        std::fs::write(state.join(SUMMARY_FILE), b"{oops").unwrap();
        let pos = Positions::recover("s", &t, &dlq, &state).unwrap();
        assert_eq!(
            pos.next("o", 0),
            Some(10),
            "the dead letter is not in the log"
        );
        assert_eq!(pos.next("o", 1), Some(20));
    }
}
