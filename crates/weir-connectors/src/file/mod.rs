//! The `file` source: JSON-lines or CSV files in a folder, each ingested exactly once across
//! restarts.
//!
//! Files are taken in name order once their size has stayed the same for one poll. A ledger
//! (`<state_dir>/ledger.json`, replaced atomically) records finished files and the file in
//! progress with the log end offset at which it started. Every record of a file is keyed
//! `<file name>#<line>`, so after a crash in the middle of a file the source reads the log from
//! that offset, finds the last line that made it, and continues after it: no line is lost or
//! written twice. CSV rows become JSON objects keyed by the header; values that parse as
//! numbers become numbers, empty values become null.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use weir_core::{ByteSize, HumanDuration};
use weir_log::{Record, Topic};

use crate::dlq::{self, RejectReason};
use crate::error::{ConnectorError, Result};
use crate::schema::SchemaValidator;

/// `[sources.<name>] type = "file"`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Folder to watch, relative to weir.toml.
    pub path: PathBuf,
    /// `jsonl` (one JSON record per line) or `csv` (a header line, then rows).
    #[serde(default)]
    pub format: FileFormat,
    /// Partitions of the source's topic (each file goes to one partition, by its name).
    #[serde(default = "default_partitions")]
    pub partitions: u32,
    /// How often the folder is listed.
    #[serde(default = "default_poll")]
    pub poll: HumanDuration,
    /// Largest accepted line; longer lines go to the dead-letter topic.
    #[serde(default = "default_max_line")]
    pub max_line_size: ByteSize,
    /// Schema registry subject whose latest schema every record must match (CSV rows as the
    /// JSON objects they become); records that do not go to the dead-letter topic with the
    /// path and the reason.
    #[serde(default)]
    pub schema: Option<String>,
}

/// Format of the files of a `file` source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    #[default]
    Jsonl,
    Csv,
}

fn default_partitions() -> u32 {
    1
}
fn default_poll() -> HumanDuration {
    HumanDuration(Duration::from_secs(1))
}
fn default_max_line() -> ByteSize {
    ByteSize(1 << 20)
}

impl FileConfig {
    pub fn validate(&self, name: &str) -> Result<(), String> {
        if self.path.as_os_str().is_empty() {
            return Err(format!(
                "sources.{name}.path: expected a folder, got an empty path"
            ));
        }
        if self.poll.0.is_zero() {
            return Err(format!("sources.{name}.poll: expected a positive duration"));
        }
        Ok(())
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Ledger {
    done: BTreeMap<String, DoneFile>,
    #[serde(default)]
    in_progress: Option<InProgress>,
}

#[derive(Debug, Serialize, Deserialize)]
struct DoneFile {
    size: u64,
    records: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct InProgress {
    file: String,
    partition: u32,
    start_offset: u64,
}

/// A running file source.
pub struct FileSource {
    name: String,
    cfg: FileConfig,
    folder: PathBuf,
    state_dir: PathBuf,
    topic: Arc<Topic>,
    dlq: Arc<Topic>,
    ledger: Ledger,
    sizes: BTreeMap<String, u64>,
    pub files_done: AtomicU64,
    validator: Option<Arc<SchemaValidator>>,
    pub records: AtomicU64,
}

const CHUNK: usize = 4096;

impl FileSource {
    /// `folder` is the config's path resolved against the project; `state_dir` holds the
    /// ledger.
    pub fn try_new(
        name: &str,
        cfg: FileConfig,
        folder: PathBuf,
        state_dir: PathBuf,
        topic: Arc<Topic>,
        dlq: Arc<Topic>,
    ) -> Result<Self> {
        let io = |path: &Path, error| ConnectorError::Io {
            source_name: name.to_owned(),
            path: path.display().to_string(),
            error,
        };
        std::fs::create_dir_all(&state_dir).map_err(|e| io(&state_dir, e))?;
        let ledger_path = state_dir.join("ledger.json");
        let ledger = match std::fs::read(&ledger_path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| ConnectorError::Config {
                source_name: name.to_owned(),
                reason: format!("ledger `{}` is unreadable: {e}", ledger_path.display()),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ledger::default(),
            Err(e) => return Err(io(&ledger_path, e)),
        };
        Ok(Self {
            name: name.to_owned(),
            cfg,
            folder,
            state_dir,
            topic,
            dlq,
            ledger,
            sizes: BTreeMap::new(),
            files_done: AtomicU64::new(0),
            validator: None,
            records: AtomicU64::new(0),
        })
    }

    /// Polls until `stop` is set. Blocking: run it on its own thread.
    pub fn run(&mut self, stop: &AtomicBool) -> Result<()> {
        while !stop.load(Ordering::Relaxed) {
            self.poll_once()?;
            let mut slept = Duration::ZERO;
            while slept < self.cfg.poll.0 && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
                slept += Duration::from_millis(50);
            }
        }
        Ok(())
    }

    /// One pass: finishes a file left in progress, then ingests every new file whose size is
    /// stable since the previous pass. Returns the number of files finished.
    pub fn poll_once(&mut self) -> Result<usize> {
        let mut finished = 0;
        if let Some(ip) = self.ledger.in_progress.take() {
            let skip = self.lines_already_in_log(&ip)?;
            self.ingest_file(&ip.file, ip.partition, ip.start_offset, skip)?;
            finished += 1;
        }
        let entries = std::fs::read_dir(&self.folder).map_err(|error| ConnectorError::Io {
            source_name: self.name.clone(),
            path: self.folder.display().to_string(),
            error,
        })?;
        let mut names: Vec<(String, u64)> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| {
                let n = e.file_name().to_str()?.to_owned();
                (!n.starts_with('.')).then_some((n, e.metadata().ok()?.len()))
            })
            .collect();
        names.sort();
        for (file, size) in names {
            if self.ledger.done.contains_key(&file) {
                continue;
            }
            let stable = self.sizes.insert(file.clone(), size) == Some(size);
            if !stable {
                continue;
            }
            let partition = self.topic.partition_for(Some(file.as_bytes()));
            let start = self.partition(partition)?.end_offset();
            self.ledger.in_progress = Some(InProgress {
                file: file.clone(),
                partition,
                start_offset: start,
            });
            self.save_ledger()?;
            self.ledger.in_progress = None;
            self.ingest_file(&file, partition, start, 0)?;
            finished += 1;
        }
        Ok(finished)
    }

    fn partition(&self, p: u32) -> Result<&weir_log::Partition> {
        self.topic
            .partition(p)
            .ok_or_else(|| ConnectorError::Config {
                source_name: self.name.clone(),
                reason: format!("topic `{}` has no partition {p}", self.topic.name()),
            })
    }

    /// How many lines of the in-progress file are already in the log.
    fn lines_already_in_log(&self, ip: &InProgress) -> Result<u64> {
        let part = self.partition(ip.partition)?;
        let prefix = format!("{}#", ip.file);
        let mut next = ip.start_offset.max(part.start_offset());
        let mut last = 0u64;
        while next < part.end_offset() {
            let recs = part
                .read(next, 65_536, 64 << 20)
                .map_err(|error| ConnectorError::Log {
                    source_name: self.name.clone(),
                    error,
                })?;
            let Some(tail) = recs.last() else { break };
            next = tail.offset + 1;
            for r in &recs {
                if let Some(k) = r.key.as_deref().and_then(|k| std::str::from_utf8(k).ok())
                    && let Some(n) = k.strip_prefix(&prefix)
                    && let Ok(n) = n.parse::<u64>()
                {
                    last = last.max(n);
                }
            }
        }
        Ok(last)
    }

    fn ingest_file(
        &mut self,
        file: &str,
        partition: u32,
        _start: u64,
        skip_lines: u64,
    ) -> Result<()> {
        let path = self.folder.join(file);
        let io = |error| ConnectorError::Io {
            source_name: self.name.clone(),
            path: path.display().to_string(),
            error,
        };
        let f = std::fs::File::open(&path).map_err(io)?;
        let size = f.metadata().map_err(io)?.len();
        let mut reader = BufReader::new(f);
        let max_line = usize::try_from(self.cfg.max_line_size.0).unwrap_or(usize::MAX);
        let mut header: Option<Vec<String>> = None;
        let mut line_no = 0u64;
        let mut batch: Vec<(String, Vec<u8>)> = Vec::with_capacity(CHUNK);
        let mut dead: Vec<Vec<u8>> = Vec::new();
        let mut total = 0u64;
        let mut raw = Vec::new();
        loop {
            raw.clear();
            let n = reader.read_until(b'\n', &mut raw).map_err(io)?;
            if n == 0 {
                break;
            }
            let line: &[u8] = raw.strip_suffix(b"\n").unwrap_or(&raw);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if self.cfg.format == FileFormat::Csv && header.is_none() {
                let text = String::from_utf8_lossy(line);
                header = Some(
                    parse_csv_row(&text).map_err(|reason| ConnectorError::BadFile {
                        source_name: self.name.clone(),
                        path: file.to_owned(),
                        line: 1,
                        reason,
                    })?,
                );
                continue;
            }
            line_no += 1;
            if line.iter().all(u8::is_ascii_whitespace) || line_no <= skip_lines {
                continue;
            }
            let value: std::result::Result<Vec<u8>, (RejectReason, String)> = if line.len()
                > max_line
            {
                Err((
                    RejectReason::LineTooLarge,
                    format!(
                        "{file} line {line_no} has {} bytes, the limit is {max_line}",
                        line.len()
                    ),
                ))
            } else {
                match std::str::from_utf8(line) {
                    Err(e) => Err((
                        RejectReason::NotUtf8,
                        format!("{file} line {line_no} is not UTF-8: {e}"),
                    )),
                    Ok(text) => match &header {
                        // A CSV row that does not split is still a record: it is kept as its text,
                        // and the table's decoder quarantines it with that text.
                        Some(h) => {
                            Ok(csv_to_json(h, text).unwrap_or_else(|_| text.as_bytes().to_vec()))
                        }
                        None => Ok(line.to_vec()),
                    },
                }
            };
            match value {
                Ok(v) => batch.push((format!("{file}#{line_no}"), v)),
                Err((reason, detail)) => dead.push(dlq::encode(&self.name, reason, detail, line)),
            }
            if batch.len() >= CHUNK {
                total += self.flush(partition, &mut batch, &mut dead)?;
            }
        }
        total += self.flush(partition, &mut batch, &mut dead)?;
        self.ledger.done.insert(
            file.to_owned(),
            DoneFile {
                size,
                records: total,
            },
        );
        self.ledger.in_progress = None;
        self.save_ledger()?;
        self.files_done.fetch_add(1, Ordering::Relaxed);
        tracing::info!(source = %self.name, file, records = total, "file ingested");
        Ok(())
    }

    /// Validates every record against the source's schema: records that fail go to the
    /// dead-letter topic (reason `schema_mismatch`) instead of the topic.
    #[must_use]
    pub fn with_validator(mut self, validator: Arc<SchemaValidator>) -> Self {
        self.validator = Some(validator);
        self
    }

    fn flush(
        &self,
        partition: u32,
        batch: &mut Vec<(String, Vec<u8>)>,
        dead: &mut Vec<Vec<u8>>,
    ) -> Result<u64> {
        let now = weir_core::now_ms();
        if let Some(v) = &self.validator
            && !batch.is_empty()
        {
            let values: Vec<&[u8]> = batch.iter().map(|(_, v)| v.as_slice()).collect();
            let verdicts = v.check(&values);
            let mut kept = Vec::with_capacity(batch.len());
            for ((key, value), verdict) in batch.drain(..).zip(verdicts) {
                match verdict {
                    None => kept.push((key, value)),
                    Some(detail) => dead.push(dlq::encode_at(
                        &self.name,
                        RejectReason::SchemaMismatch,
                        format!("{key}: {detail}"),
                        &value,
                        Some(&key),
                    )),
                }
            }
            *batch = kept;
        }
        let n = batch.len() as u64;
        if !batch.is_empty() {
            let recs: Vec<Record<'_>> = batch
                .iter()
                .map(|(k, v)| Record {
                    key: Some(k.as_bytes()),
                    value: v,
                    timestamp_ms: now,
                })
                .collect();
            self.partition(partition)?
                .append(&recs)
                .map_err(|error| ConnectorError::Log {
                    source_name: self.name.clone(),
                    error,
                })?;
            self.records.fetch_add(n, Ordering::Relaxed);
        }
        if !dead.is_empty() {
            let recs: Vec<Record<'_>> = dead
                .iter()
                .map(|v| Record {
                    key: Some(self.name.as_bytes()),
                    value: v,
                    timestamp_ms: now,
                })
                .collect();
            let p = self.dlq.partition_for(Some(self.name.as_bytes()));
            if let Some(part) = self.dlq.partition(p) {
                part.append(&recs).map_err(|error| ConnectorError::Log {
                    source_name: self.name.clone(),
                    error,
                })?;
            }
        }
        batch.clear();
        dead.clear();
        Ok(n)
    }

    fn save_ledger(&self) -> Result<()> {
        let path = self.state_dir.join("ledger.json");
        let tmp = self.state_dir.join("ledger.json.tmp");
        let io = |p: &Path, error| ConnectorError::Io {
            source_name: self.name.clone(),
            path: p.display().to_string(),
            error,
        };
        // Serializing plain maps of strings and numbers cannot fail.
        let bytes = serde_json::to_vec_pretty(&self.ledger).unwrap_or_default();
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(|e| io(&tmp, e))?;
            f.write_all(&bytes).map_err(|e| io(&tmp, e))?;
            f.sync_all().map_err(|e| io(&tmp, e))?;
        }
        std::fs::rename(&tmp, &path).map_err(|e| io(&path, e))?;
        if let Ok(d) = std::fs::File::open(&self.state_dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

/// Splits one CSV line (RFC 4180 quoting, no embedded newlines).
fn parse_csv_row(line: &str) -> Result<Vec<String>, String> {
    let mut r = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(line.as_bytes());
    let mut rec = csv::StringRecord::new();
    match r.read_record(&mut rec) {
        Ok(true) => Ok(rec.iter().map(str::to_owned).collect()),
        Ok(false) => Ok(Vec::new()),
        Err(e) => Err(format!("not a CSV row: {e}")),
    }
}

fn csv_to_json(header: &[String], line: &str) -> Result<Vec<u8>, String> {
    let cells = parse_csv_row(line)?;
    if cells.len() != header.len() {
        return Err(format!(
            "expected {} fields, got {}",
            header.len(),
            cells.len()
        ));
    }
    let mut obj = serde_json::Map::new();
    for (k, v) in header.iter().zip(cells) {
        let value = if v.is_empty() {
            serde_json::Value::Null
        } else if let Ok(i) = v.parse::<i64>() {
            serde_json::Value::from(i)
        } else if let Some(f) = v.parse::<f64>().ok().filter(|f| f.is_finite()) {
            serde_json::Value::from(f)
        } else {
            serde_json::Value::String(v)
        };
        obj.insert(k.clone(), value);
    }
    serde_json::to_vec(&obj).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_become_typed_json() {
        let h = vec![
            "id".to_string(),
            "amount".into(),
            "city".into(),
            "note".into(),
        ];
        let j = csv_to_json(&h, r#"7,12.50,"Zürich, CH","#).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&j).unwrap();
        assert_eq!(v["id"], 7);
        assert_eq!(v["amount"], 12.5);
        assert_eq!(v["city"], "Zürich, CH");
        assert!(v["note"].is_null());
        assert!(
            csv_to_json(&h, "1,2")
                .unwrap_err()
                .contains("expected 4 fields")
        );
    }
}
