//! Listing dead letters and replaying them into their source's topic, exactly once.
//!
//! A dead letter's id is its offset in the `_dlq` topic. [`Dlq::scan`] lists them with what a
//! replay did to each; [`Dlq::replay`] sends the payloads of matching ones through their
//! source's acceptance checks again (the same ones the source applies on ingest, with the
//! source's *current* configuration): a payload that passes is appended to the source's topic
//! and flows through the pipeline like a new record; one that still fails becomes a new dead
//! letter (with `replay_of` naming the old one) instead of being forced in.
//!
//! # Never twice
//!
//! Every dead letter is replayed at most once: the ledger `<state_dir>/replayed.json` maps each
//! replayed id to its outcome (the topic, partition and offset it landed at, or the new dead
//! letter), and replays skip ids already in it. A dead letter refused again is done too: its
//! successor is the one to replay after the next fix.
//!
//! A crash must not let a record in twice, so a replay runs in this order:
//! 1. write the ledger with a `pending` note: the ids about to be replayed and the end offset
//!    of every partition they may land in (the source topics and `_dlq`);
//! 2. append the records, each keyed `dlq:<id>`;
//! 3. write the ledger with the outcomes and without the note.
//!
//! A replay that finds a `pending` note (the previous one died between 1 and 3) first reads
//! those partitions from the noted ends, and every `dlq:<id>` key it finds there is an outcome
//! that made it; ids not found did not land and stay replayable. The scan is bounded by what
//! was appended since the note, not by the topic's size. The ledger is replaced atomically
//! (write, fsync, rename), and replays in one process take a lock; two processes cannot
//! replay at once because both need the project's log, which one process holds.
//!
//! Which sources can replay: those whose records are the payload itself, checked line by line
//! (`http`, and `file` with `format = "jsonl"`), unless they check records against a schema
//! registry subject (`schema = ...`: that check does not run on replays yet, so such dead
//! letters are skipped rather than let in unchecked). The others say why not (a CSV row needs
//! the file's header, which the dead letter does not keep; a pulling source transforms what it
//! receives inside its own loop).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use weir_core::ErrorKind;
use weir_log::{Log, LogError, Record, StoredRecord, Topic};

use super::{DLQ_TOPIC, DeadLetter, RejectReason};
use crate::file::FileFormat;
use crate::registry::SourceConfig;

/// What can go wrong listing or replaying dead letters.
#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    #[error("no source named `{name}` in weir.toml or in the dead letters (sources: {known})")]
    UnknownSource { name: String, known: String },
    #[error("no dead letter with id {id} ({range})")]
    UnknownId { id: u64, range: String },
    #[error("no dead letter matches {filter}")]
    NothingMatched { filter: String },
    #[error("reading the dead letters failed: {error}")]
    Log {
        #[source]
        error: LogError,
    },
    #[error("replay ledger `{path}`: {error}")]
    Io {
        path: String,
        #[source]
        error: std::io::Error,
    },
    #[error("replay ledger `{path}` is unreadable: {reason}")]
    Ledger { path: String, reason: String },
}

impl DlqError {
    /// Whose fault the error is; see [`ErrorKind`].
    pub fn kind(&self) -> ErrorKind {
        match self {
            DlqError::UnknownSource { .. }
            | DlqError::UnknownId { .. }
            | DlqError::NothingMatched { .. } => ErrorKind::User,
            DlqError::Log { error } => error.kind(),
            DlqError::Io { .. } => ErrorKind::External,
            DlqError::Ledger { .. } => ErrorKind::Internal,
        }
    }

    /// Whether the error is about something that does not exist (HTTP 404).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            DlqError::UnknownId { .. } | DlqError::NothingMatched { .. }
        )
    }
}

impl From<LogError> for DlqError {
    fn from(error: LogError) -> Self {
        DlqError::Log { error }
    }
}

pub type Result<T, E = DlqError> = std::result::Result<T, E>;

/// Which dead letters a command is about; empty fields match everything.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub source: Option<String>,
    pub reason: Option<String>,
    /// Only these ids.
    pub ids: Vec<u64>,
}

impl Filter {
    fn matches(&self, letter: &DeadLetter) -> bool {
        self.source.as_ref().is_none_or(|s| *s == letter.source)
            && self.reason.as_ref().is_none_or(|r| *r == letter.reason)
    }

    /// The filter in words, for "no dead letter matches ...".
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(s) = &self.source {
            parts.push(format!("source `{s}`"));
        }
        if let Some(r) = &self.reason {
            parts.push(format!("reason `{r}`"));
        }
        if !self.ids.is_empty() {
            let ids: Vec<String> = self.ids.iter().map(u64::to_string).collect();
            parts.push(format!("ids {}", ids.join(",")));
        }
        if parts.is_empty() {
            "(no filter): the dead-letter topic is empty".into()
        } else {
            parts.join(" and ")
        }
    }
}

/// What the replay of one dead letter did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The source took it: the record is at `topic`/`partition`/`offset`.
    Accepted {
        topic: String,
        partition: u32,
        offset: u64,
        at_ms: i64,
    },
    /// The source refused it again: the new dead letter `dead_letter` says why.
    Rejected {
        dead_letter: u64,
        reason: String,
        at_ms: i64,
    },
}

/// One dead letter and what became of it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Offset in the `_dlq` topic.
    pub id: u64,
    /// When it was dead-lettered, ms since the epoch.
    pub ts_ms: i64,
    pub letter: DeadLetter,
    /// Set once replayed.
    pub replayed: Option<Outcome>,
}

/// Counts of the dead letters a scan matched, per source and reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Dead letters kept in the topic, matched or not.
    pub total: u64,
    /// (source, reason) → (matched, not yet replayed).
    pub counts: BTreeMap<(String, String), (u64, u64)>,
}

/// The replay of one dead letter, as reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplayItem {
    pub id: u64,
    pub source: String,
    /// Why it was dead-lettered.
    pub reason: String,
    /// `accepted`, `rejected`, `would_accept`, `would_reject` (dry run) or `skipped`.
    pub action: String,
    /// Where an accepted record landed.
    pub topic: Option<String>,
    pub partition: Option<u32>,
    pub offset: Option<u64>,
    /// The new dead letter of a record refused again.
    pub dead_letter: Option<u64>,
    /// Why it was refused again (or why it was skipped).
    pub new_reason: Option<String>,
    pub detail: Option<String>,
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReplayReport {
    pub dry_run: bool,
    /// Dead letters matching the filter.
    pub matched: u64,
    /// Of those, already replayed before (left alone).
    pub already_replayed: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub skipped: u64,
    /// One item per dead letter this replay looked at (not the already replayed ones).
    pub items: Vec<ReplayItem>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Ledger {
    /// Dead letter id → what its replay did.
    #[serde(default)]
    replayed: BTreeMap<u64, Outcome>,
    /// A replay that may have been cut short between appending and writing its outcomes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pending: Option<Pending>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Pending {
    ids: BTreeSet<u64>,
    /// Topic → end offset of each partition before the appends.
    ends: BTreeMap<String, Vec<u64>>,
}

/// Replays in this process run one at a time.
static REPLAY: Mutex<()> = Mutex::new(());

/// How a source takes a payload back.
enum Acceptance {
    /// One record per line: the size limit, then UTF-8; partitioned by `key_field`'s value
    /// (round-robin without it), as the source does.
    Lines {
        max_line: usize,
        key_field: Option<String>,
    },
}

impl Acceptance {
    fn of(name: &str, cfg: Option<&SourceConfig>) -> std::result::Result<Self, String> {
        let max = |b: u64| usize::try_from(b).unwrap_or(usize::MAX);
        match cfg {
            None => Err(format!("source `{name}` is no longer in weir.toml")),
            // Its records must also pass the schema registry's check, which a replay does not
            // run yet: refusing is better than letting them in unchecked.
            Some(SourceConfig::Http(crate::http::HttpConfig {
                schema: Some(subject),
                ..
            }))
            | Some(SourceConfig::File(crate::file::FileConfig {
                schema: Some(subject),
                ..
            })) => Err(format!(
                "source `{name}` checks records against schema subject `{subject}`, which replays do not run yet"
            )),
            Some(SourceConfig::Http(h)) => Ok(Acceptance::Lines {
                max_line: max(h.max_line_size.0),
                key_field: h.key.clone(),
            }),
            Some(SourceConfig::File(f)) if f.format == FileFormat::Jsonl => Ok(Acceptance::Lines {
                max_line: max(f.max_line_size.0),
                key_field: None,
            }),
            Some(SourceConfig::File(_)) => Err(format!(
                "source `{name}` reads CSV: a dead-lettered row cannot be converted without its file's header; fix the file and drop it in again"
            )),
            Some(other) => Err(format!(
                "`{}` sources cannot replay dead letters (source `{name}`)",
                other.kind()
            )),
        }
    }

    /// The partition a payload goes to, or why the source refuses it.
    fn check(&self, topic: &Topic, raw: &[u8]) -> std::result::Result<u32, (RejectReason, String)> {
        match self {
            Acceptance::Lines {
                max_line,
                key_field,
            } => {
                if raw.len() > *max_line {
                    return Err((
                        RejectReason::LineTooLarge,
                        format!(
                            "replayed line has {} bytes, the limit is {max_line}",
                            raw.len()
                        ),
                    ));
                }
                if let Err(e) = std::str::from_utf8(raw) {
                    return Err((
                        RejectReason::NotUtf8,
                        format!("replayed line is not UTF-8: {e}"),
                    ));
                }
                let key = key_field.as_deref().and_then(|f| field_text(raw, f));
                Ok(topic.partition_for(key.as_deref()))
            }
        }
    }
}

/// The text of a JSON object's field (the partition key of keyed http sources).
fn field_text(line: &[u8], field: &str) -> Option<Vec<u8>> {
    let v: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(line).ok()?;
    match v.get(field)? {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.as_bytes().to_vec()),
        other => Some(other.to_string().into_bytes()),
    }
}

/// The key of a replayed record.
fn replay_key(id: u64) -> String {
    format!("dlq:{id}")
}

fn replayed_id(key: Option<&[u8]>) -> Option<u64> {
    std::str::from_utf8(key?)
        .ok()?
        .strip_prefix("dlq:")?
        .parse()
        .ok()
}

/// The dead letters of a project: its log, its sources and a folder for the replay ledger.
pub struct Dlq<'a> {
    log: &'a Log,
    sources: &'a BTreeMap<String, SourceConfig>,
    ledger_path: PathBuf,
}

const READ_RECORDS: usize = 4096;
const READ_BYTES: usize = 16 << 20;

impl<'a> Dlq<'a> {
    /// `state_dir` is where the ledger lives (`<data_dir>/dlq`); created on the first replay.
    pub fn new(
        log: &'a Log,
        sources: &'a BTreeMap<String, SourceConfig>,
        state_dir: &Path,
    ) -> Self {
        Dlq {
            log,
            sources,
            ledger_path: state_dir.join("replayed.json"),
        }
    }

    /// Calls `visit` with every dead letter matching `filter`, oldest first, and returns the
    /// counts. Errors for an unknown source or id.
    pub fn scan(&self, filter: &Filter, visit: impl FnMut(Entry)) -> Result<Summary> {
        let ledger = self.load()?;
        self.scan_with(&ledger, filter, visit)
    }

    fn scan_with(
        &self,
        ledger: &Ledger,
        filter: &Filter,
        mut visit: impl FnMut(Entry),
    ) -> Result<Summary> {
        let mut summary = Summary::default();
        let mut seen_sources = BTreeSet::new();
        let topic = self.log.topic(DLQ_TOPIC);
        let part = topic.as_ref().and_then(|t| t.partition(0));
        let (start, end) = part
            .as_ref()
            .map_or((0, 0), |p| (p.start_offset(), p.end_offset()));
        summary.total = end - start;
        let mut take = |r: StoredRecord, summary: &mut Summary| {
            let letter = DeadLetter::decode(&r.value).unwrap_or_else(|reason| {
                let mut d = DeadLetter::new("", "unreadable", reason, &r.value);
                d.source = "?".into();
                d
            });
            seen_sources.insert(letter.source.clone());
            if !filter.matches(&letter) {
                return;
            }
            let replayed = ledger.replayed.get(&r.offset).cloned();
            let c = summary
                .counts
                .entry((letter.source.clone(), letter.reason.clone()))
                .or_default();
            c.0 += 1;
            c.1 += u64::from(replayed.is_none());
            visit(Entry {
                id: r.offset,
                ts_ms: r.timestamp_ms,
                letter,
                replayed,
            });
        };
        if let Some(part) = &part {
            if filter.ids.is_empty() {
                let mut next = start;
                while next < end {
                    let recs = part.read(next, READ_RECORDS, READ_BYTES)?;
                    let Some(last) = recs.last() else { break };
                    next = last.offset + 1;
                    for r in recs.into_iter().filter(|r| r.offset < end) {
                        take(r, &mut summary);
                    }
                }
            } else {
                let ids: BTreeSet<u64> = filter.ids.iter().copied().collect();
                for id in ids {
                    if id < start || id >= end {
                        return Err(unknown_id(id, start, end));
                    }
                    if let Some(r) = part.read(id, 1, usize::MAX)?.into_iter().next() {
                        take(r, &mut summary);
                    }
                }
            }
        } else if let Some(&id) = filter.ids.first() {
            return Err(unknown_id(id, 0, 0));
        }
        if let Some(s) = &filter.source
            && !self.sources.contains_key(s)
            && !seen_sources.contains(s)
        {
            let mut known: BTreeSet<&String> = self.sources.keys().collect();
            known.extend(seen_sources.iter());
            let known: Vec<&str> = known.into_iter().map(String::as_str).collect();
            return Err(DlqError::UnknownSource {
                name: s.clone(),
                known: known.join(", "),
            });
        }
        Ok(summary)
    }

    /// Replays the matching dead letters that were never replayed (see the module doc).
    /// `dry_run` reports what would happen and writes nothing.
    pub fn replay(&self, filter: &Filter, dry_run: bool) -> Result<ReplayReport> {
        let _one_at_a_time = REPLAY.lock().unwrap_or_else(|p| p.into_inner());
        let mut ledger = self.load()?;
        if ledger.pending.is_some() && !dry_run {
            self.recover(&mut ledger)?;
            self.save(&ledger)?;
        }
        let mut matched = Vec::new();
        self.scan_with(&ledger, filter, |e| matched.push(e))?;
        if matched.is_empty() {
            return Err(DlqError::NothingMatched {
                filter: filter.describe(),
            });
        }
        let mut report = ReplayReport {
            dry_run,
            matched: matched.len() as u64,
            ..ReplayReport::default()
        };
        // What to append: accepted records per (topic, partition), refused ones to the DLQ.
        let mut accept: BTreeMap<(String, u32), Vec<IndexedPayload>> = BTreeMap::new();
        let mut reject: Vec<(usize, DeadLetter)> = Vec::new();
        for e in matched {
            if e.replayed.is_some() {
                report.already_replayed += 1;
                continue;
            }
            let mut item = ReplayItem {
                id: e.id,
                source: e.letter.source.clone(),
                reason: e.letter.reason.clone(),
                action: "skipped".into(),
                topic: None,
                partition: None,
                offset: None,
                dead_letter: None,
                new_reason: None,
                detail: None,
            };
            let plan = Acceptance::of(&e.letter.source, self.sources.get(&e.letter.source))
                .and_then(|acc| {
                    let topic = self.log.topic(&e.letter.source).ok_or_else(|| {
                        format!("source `{}` has no topic in the log", e.letter.source)
                    })?;
                    let raw = e
                        .letter
                        .raw_bytes()
                        .map_err(|r| format!("dead letter {}: {r}", e.id))?;
                    Ok((acc.check(&topic, &raw), raw))
                });
            let i = report.items.len();
            match plan {
                Err(why) => {
                    item.detail = Some(why);
                    report.skipped += 1;
                }
                Ok((Ok(partition), raw)) => {
                    item.action = if dry_run { "would_accept" } else { "accepted" }.into();
                    item.topic = Some(e.letter.source.clone());
                    item.partition = Some(partition);
                    report.accepted += 1;
                    accept
                        .entry((e.letter.source.clone(), partition))
                        .or_default()
                        .push((i, raw));
                }
                Ok((Err((reason, detail)), raw)) => {
                    item.action = if dry_run { "would_reject" } else { "rejected" }.into();
                    item.new_reason = Some(reason.as_str().into());
                    item.detail = Some(detail.clone());
                    report.rejected += 1;
                    let mut d = DeadLetter::new(&e.letter.source, reason.as_str(), detail, &raw);
                    d.offset = e.letter.offset.clone();
                    d.replay_of = Some(e.id);
                    reject.push((i, d));
                }
            }
            report.items.push(item);
        }
        if dry_run || (accept.is_empty() && reject.is_empty()) {
            return Ok(report);
        }

        // 1. The note, with the ends of every partition the records may land in.
        let mut topics: BTreeSet<&str> = accept.keys().map(|(t, _)| t.as_str()).collect();
        if !reject.is_empty() {
            topics.insert(DLQ_TOPIC);
        }
        let mut ends = BTreeMap::new();
        for t in topics {
            if let Some(topic) = self.log.topic(t) {
                ends.insert(
                    t.to_owned(),
                    topic.partitions().iter().map(|p| p.end_offset()).collect(),
                );
            }
        }
        let ids = report
            .items
            .iter()
            .filter(|i| i.action != "skipped")
            .map(|i| i.id)
            .collect();
        ledger.pending = Some(Pending { ids, ends });
        self.save(&ledger)?;

        // 2. The records, keyed by the dead letter they come from.
        let now = weir_core::now_ms();
        for ((topic, partition), recs) in &accept {
            let target = self.log.topic(topic);
            let part = target
                .as_ref()
                .and_then(|t| t.partition(*partition))
                .ok_or_else(|| DlqError::Ledger {
                    path: self.ledger_path.display().to_string(),
                    reason: format!("topic `{topic}` has no partition {partition}"),
                })?;
            let keys: Vec<String> = recs
                .iter()
                .map(|(i, _)| replay_key(report.items[*i].id))
                .collect();
            let records: Vec<Record<'_>> = recs
                .iter()
                .zip(&keys)
                .map(|((_, raw), k)| Record {
                    key: Some(k.as_bytes()),
                    value: raw,
                    timestamp_ms: now,
                })
                .collect();
            let done = part.append(&records)?;
            for (n, (i, _)) in recs.iter().enumerate() {
                let item = &mut report.items[*i];
                let offset = done.base_offset + n as u64;
                item.offset = Some(offset);
                ledger.replayed.insert(
                    item.id,
                    Outcome::Accepted {
                        topic: topic.clone(),
                        partition: *partition,
                        offset,
                        at_ms: now,
                    },
                );
            }
        }
        if !reject.is_empty() {
            let dlq = self.log.create_topic(DLQ_TOPIC, 1)?;
            let part = dlq.partition(0).ok_or_else(|| DlqError::Ledger {
                path: self.ledger_path.display().to_string(),
                reason: "the dead-letter topic has no partition 0".into(),
            })?;
            let keys: Vec<String> = reject
                .iter()
                .map(|(i, _)| replay_key(report.items[*i].id))
                .collect();
            let values: Vec<Vec<u8>> = reject.iter().map(|(_, d)| d.to_json()).collect();
            let records: Vec<Record<'_>> = keys
                .iter()
                .zip(&values)
                .map(|(k, v)| Record {
                    key: Some(k.as_bytes()),
                    value: v,
                    timestamp_ms: now,
                })
                .collect();
            let done = part.append(&records)?;
            for (n, (i, d)) in reject.iter().enumerate() {
                let item = &mut report.items[*i];
                let offset = done.base_offset + n as u64;
                item.dead_letter = Some(offset);
                ledger.replayed.insert(
                    item.id,
                    Outcome::Rejected {
                        dead_letter: offset,
                        reason: d.reason.clone(),
                        at_ms: now,
                    },
                );
            }
        }

        // 3. The outcomes.
        ledger.pending = None;
        self.save(&ledger)?;
        Ok(report)
    }

    /// Settles a replay that stopped before writing its outcomes: whatever it appended is
    /// found by key after the noted ends.
    fn recover(&self, ledger: &mut Ledger) -> Result<()> {
        let Some(pending) = ledger.pending.take() else {
            return Ok(());
        };
        let mut found = 0;
        for (topic_name, ends) in &pending.ends {
            let Some(topic) = self.log.topic(topic_name) else {
                continue;
            };
            for (p, &noted) in ends.iter().enumerate() {
                let Some(part) = topic.partition(p as u32) else {
                    continue;
                };
                let end = part.end_offset();
                let mut next = noted.max(part.start_offset());
                while next < end {
                    let recs = part.read(next, READ_RECORDS, READ_BYTES)?;
                    let Some(last) = recs.last() else { break };
                    next = last.offset + 1;
                    for r in recs.iter().filter(|r| r.offset < end) {
                        let Some(id) = replayed_id(r.key.as_deref()) else {
                            continue;
                        };
                        if !pending.ids.contains(&id) || ledger.replayed.contains_key(&id) {
                            continue;
                        }
                        let outcome = if topic_name == DLQ_TOPIC {
                            Outcome::Rejected {
                                dead_letter: r.offset,
                                reason: DeadLetter::decode(&r.value)
                                    .map(|d| d.reason)
                                    .unwrap_or_default(),
                                at_ms: r.timestamp_ms,
                            }
                        } else {
                            Outcome::Accepted {
                                topic: topic_name.clone(),
                                partition: p as u32,
                                offset: r.offset,
                                at_ms: r.timestamp_ms,
                            }
                        };
                        ledger.replayed.insert(id, outcome);
                        found += 1;
                    }
                }
            }
        }
        tracing::warn!(
            ids = pending.ids.len(),
            found,
            "a dead-letter replay was cut short; settled what it had appended"
        );
        Ok(())
    }

    fn load(&self) -> Result<Ledger> {
        match std::fs::read(&self.ledger_path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| DlqError::Ledger {
                path: self.ledger_path.display().to_string(),
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Ledger::default()),
            Err(error) => Err(self.io(&self.ledger_path, error)),
        }
    }

    /// Replaces the ledger atomically and durably.
    fn save(&self, ledger: &Ledger) -> Result<()> {
        use std::io::Write;
        let dir = self.ledger_path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| self.io(dir, e))?;
        let tmp = self.ledger_path.with_extension("json.tmp");
        // Serializing maps of integers, strings and plain enums cannot fail.
        let bytes = serde_json::to_vec_pretty(ledger).unwrap_or_default();
        {
            let mut f = std::fs::File::create(&tmp).map_err(|e| self.io(&tmp, e))?;
            f.write_all(&bytes).map_err(|e| self.io(&tmp, e))?;
            f.sync_all().map_err(|e| self.io(&tmp, e))?;
        }
        std::fs::rename(&tmp, &self.ledger_path).map_err(|e| self.io(&self.ledger_path, e))?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    fn io(&self, path: &Path, error: std::io::Error) -> DlqError {
        DlqError::Io {
            path: path.display().to_string(),
            error,
        }
    }
}

fn unknown_id(id: u64, start: u64, end: u64) -> DlqError {
    let range = if end <= start {
        "the dead-letter topic is empty".to_owned()
    } else {
        format!("ids go from {start} to {}", end - 1)
    };
    DlqError::UnknownId { id, range }
}

/// A payload to append, with the index of the matched entry it came from.
type IndexedPayload = (usize, Vec<u8>);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_log::LogConfig;

    fn sources(max_line: &str) -> BTreeMap<String, SourceConfig> {
        let cfg: SourceConfig = serde_json::from_value(serde_json::json!({
            "type": "http", "max_line_size": max_line
        }))
        .unwrap();
        BTreeMap::from([("events".to_owned(), cfg)])
    }

    /// A log with topic `events` and three dead letters: two too large, one not UTF-8.
    fn setup(dir: &Path) -> Log {
        let log = Log::open(LogConfig::new(dir.join("log"))).unwrap();
        log.create_topic("events", 2).unwrap();
        let dlq = log.create_topic(DLQ_TOPIC, 1).unwrap();
        let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(100));
        let letters = [
            super::super::encode(
                "events",
                RejectReason::LineTooLarge,
                "l1".into(),
                big.as_bytes(),
            ),
            super::super::encode(
                "events",
                RejectReason::NotUtf8,
                "l2".into(),
                b"{\"a\":\"\xff\"}",
            ),
            super::super::encode(
                "events",
                RejectReason::LineTooLarge,
                "l3".into(),
                big.as_bytes(),
            ),
        ];
        let recs: Vec<Record<'_>> = letters.iter().map(|v| Record::new(v, 1)).collect();
        dlq.partition(0).unwrap().append(&recs).unwrap();
        log
    }

    fn records_in(log: &Log, topic: &str) -> Vec<StoredRecord> {
        let t = log.topic(topic).unwrap();
        let mut out = Vec::new();
        for p in t.partitions() {
            out.extend(p.read(0, 1000, usize::MAX).unwrap());
        }
        out
    }

    #[test]
    fn replays_once_and_refused_payloads_become_new_dead_letters() {
        let dir = tempfile::tempdir().unwrap();
        let log = setup(dir.path());
        let srcs = sources("1KiB");
        let dlq = Dlq::new(&log, &srcs, &dir.path().join("dlq"));

        let dry = dlq.replay(&Filter::default(), true).unwrap();
        assert_eq!((dry.accepted, dry.rejected, dry.matched), (2, 1, 3));
        assert!(records_in(&log, "events").is_empty(), "a dry run wrote");
        assert!(!dir.path().join("dlq/replayed.json").exists());

        let r = dlq.replay(&Filter::default(), false).unwrap();
        assert_eq!((r.accepted, r.rejected, r.already_replayed), (2, 1, 0));
        let recs = records_in(&log, "events");
        let mut keys: Vec<u64> = recs
            .iter()
            .map(|r| replayed_id(r.key.as_deref()).unwrap())
            .collect();
        keys.sort();
        assert_eq!(keys, [0, 2]);
        // The refused one is dead letter 3, pointing back at 1.
        let again = DeadLetter::decode(&records_in(&log, DLQ_TOPIC)[3].value).unwrap();
        assert_eq!(
            (again.reason.as_str(), again.replay_of),
            ("not_utf8", Some(1))
        );
        assert_eq!(
            r.items.iter().find(|i| i.id == 1).unwrap().dead_letter,
            Some(3)
        );

        // Everything is replayed once: a second run matches but does nothing...
        let r2 = dlq.replay(&Filter::default(), false).unwrap();
        assert_eq!((r2.accepted, r2.rejected, r2.already_replayed), (0, 1, 3));
        // ...except the new dead letter 3, refused again as 4.
        assert_eq!(r2.items[0].id, 3);
        assert_eq!(records_in(&log, "events").len(), 2);
        let mut listed = Vec::new();
        let sum = dlq
            .scan(
                &Filter {
                    reason: Some("not_utf8".into()),
                    ..Filter::default()
                },
                |e| listed.push((e.id, e.replayed.is_some())),
            )
            .unwrap();
        assert_eq!(listed, [(1, true), (3, true), (4, false)]);
        assert_eq!(sum.total, 5);
        assert_eq!(sum.counts[&("events".into(), "not_utf8".into())], (3, 1));
    }

    #[test]
    fn a_replay_cut_short_is_settled_without_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let log = setup(dir.path());
        let srcs = sources("1KiB");
        let state = dir.path().join("dlq");
        let dlq = Dlq::new(&log, &srcs, &state);
        // A replay of 0 and 2 that noted its intent and appended 0, then died.
        let events = log.topic("events").unwrap();
        let ends: Vec<u64> = events.partitions().iter().map(|p| p.end_offset()).collect();
        let ledger = Ledger {
            replayed: BTreeMap::new(),
            pending: Some(Pending {
                ids: BTreeSet::from([0, 2]),
                ends: BTreeMap::from([("events".to_owned(), ends)]),
            }),
        };
        dlq.save(&ledger).unwrap();
        events
            .partition(1)
            .unwrap()
            .append(&[Record {
                key: Some(b"dlq:0"),
                value: b"{}",
                timestamp_ms: 5,
            }])
            .unwrap();

        let r = dlq
            .replay(
                &Filter {
                    reason: Some("line_too_large".into()),
                    ..Filter::default()
                },
                false,
            )
            .unwrap();
        assert_eq!((r.already_replayed, r.accepted), (1, 1), "{r:?}");
        assert_eq!(r.items[0].id, 2);
        let mut keys: Vec<u64> = records_in(&log, "events")
            .iter()
            .map(|r| replayed_id(r.key.as_deref()).unwrap())
            .collect();
        keys.sort();
        assert_eq!(keys, [0, 2]);
        let saved: Ledger =
            serde_json::from_slice(&std::fs::read(state.join("replayed.json")).unwrap()).unwrap();
        assert!(saved.pending.is_none());
        assert_eq!(
            saved.replayed[&0],
            Outcome::Accepted {
                topic: "events".into(),
                partition: 1,
                offset: 0,
                at_ms: 5
            }
        );
    }

    #[test]
    fn unknown_ids_sources_and_empty_matches_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let log = setup(dir.path());
        let srcs = sources("1KiB");
        let dlq = Dlq::new(&log, &srcs, &dir.path().join("dlq"));
        let e = dlq
            .replay(
                &Filter {
                    ids: vec![9],
                    ..Filter::default()
                },
                false,
            )
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "no dead letter with id 9 (ids go from 0 to 2)"
        );
        assert!(e.is_not_found());
        let e = dlq
            .scan(
                &Filter {
                    source: Some("nope".into()),
                    ..Filter::default()
                },
                |_| {},
            )
            .unwrap_err();
        assert!(
            e.to_string().contains("`nope`") && e.to_string().contains("events"),
            "{e}"
        );
        let e = dlq
            .replay(
                &Filter {
                    reason: Some("schema".into()),
                    ..Filter::default()
                },
                false,
            )
            .unwrap_err();
        assert_eq!(e.to_string(), "no dead letter matches reason `schema`");
        // A source that no longer takes lines says why, and nothing is written.
        let none = BTreeMap::new();
        let r = Dlq::new(&log, &none, &dir.path().join("dlq"))
            .replay(&Filter::default(), false)
            .unwrap();
        assert_eq!(r.skipped, 3);
        assert!(
            r.items[0]
                .detail
                .as_deref()
                .unwrap()
                .contains("no longer in weir.toml")
        );
    }
}
