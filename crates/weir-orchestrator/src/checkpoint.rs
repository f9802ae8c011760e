//! Pipeline checkpoints: which input offsets each micro-batch read and the operator state
//! after it, written before the batch's Delta commits.
//!
//! Layout under `<data>/checkpoints/`: `pipeline/<batch id>.json` (replaced atomically) and
//! `state/<table>/<file>.arrow` (Arrow IPC files of journaled operator state). The two most
//! recent checkpoints and every state file they name are kept: recovery replays the last
//! batch from the state of the one before it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use arrow::ipc::reader::FileReader;
use arrow::ipc::writer::FileWriter;
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};
use weir_sql::stream::TableState;

use crate::error::{OrchestratorError, Result};

/// Input ranges of one batch: topic → partition → (first offset, end offset exclusive).
pub type Ranges = BTreeMap<String, BTreeMap<u32, (u64, u64)>>;

/// One micro-batch's checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Checkpoint {
    pub batch_id: u64,
    pub ranges: Ranges,
    /// Operator state of each streaming table after this batch.
    pub tables: BTreeMap<String, TableState>,
    pub created_ms: i64,
}

impl Checkpoint {
    /// Where the next batch starts reading a partition.
    pub fn next_offset(&self, topic: &str, partition: u32) -> Option<u64> {
        self.ranges
            .get(topic)
            .and_then(|p| p.get(&partition))
            .map(|r| r.1)
    }
}

/// Checkpoint files of one pipeline.
pub struct CheckpointStore {
    dir: PathBuf,
}

fn io(path: &Path, source: std::io::Error) -> OrchestratorError {
    OrchestratorError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl CheckpointStore {
    pub fn open(dir: PathBuf) -> Result<Self> {
        for d in [dir.join("pipeline"), dir.join("state")] {
            std::fs::create_dir_all(&d).map_err(|e| io(&d, e))?;
        }
        Ok(Self { dir })
    }

    fn ckpt_path(&self, batch: u64) -> PathBuf {
        self.dir.join("pipeline").join(format!("{batch:020}.json"))
    }

    fn state_path(&self, table: &str, file: &str) -> PathBuf {
        self.dir
            .join("state")
            .join(table)
            .join(format!("{file}.arrow"))
    }

    /// Batch ids with a checkpoint, ascending.
    pub fn batches(&self) -> Result<Vec<u64>> {
        let d = self.dir.join("pipeline");
        let mut v: Vec<u64> = std::fs::read_dir(&d)
            .map_err(|e| io(&d, e))?
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".json")?.parse().ok())
            .collect();
        v.sort_unstable();
        Ok(v)
    }

    pub fn read(&self, batch: u64) -> Result<Checkpoint> {
        let p = self.ckpt_path(batch);
        let bytes = std::fs::read(&p).map_err(|e| io(&p, e))?;
        serde_json::from_slice(&bytes).map_err(|e| OrchestratorError::Corrupt {
            path: p.display().to_string(),
            reason: e.to_string(),
        })
    }

    /// Writes a checkpoint durably (temp file, fsync, rename, fsync directory).
    pub fn write(&self, c: &Checkpoint) -> Result<()> {
        let p = self.ckpt_path(c.batch_id);
        let bytes = serde_json::to_vec(c).map_err(|e| OrchestratorError::Corrupt {
            path: p.display().to_string(),
            reason: e.to_string(),
        })?;
        write_durably(&p, &bytes)
    }

    /// Writes one state file durably.
    pub fn write_state(&self, table: &str, file: &str, batch: &RecordBatch) -> Result<()> {
        let p = self.state_path(table, file);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
        }
        let tmp = p.with_extension("arrow.tmp");
        let f = File::create(&tmp).map_err(|e| io(&tmp, e))?;
        let arrow_err = |e: arrow::error::ArrowError| OrchestratorError::Corrupt {
            path: tmp.display().to_string(),
            reason: e.to_string(),
        };
        let mut w = FileWriter::try_new(f, &batch.schema()).map_err(arrow_err)?;
        w.write(batch).map_err(arrow_err)?;
        w.finish().map_err(arrow_err)?;
        let f = w.into_inner().map_err(arrow_err)?;
        f.sync_all().map_err(|e| io(&tmp, e))?;
        std::fs::rename(&tmp, &p).map_err(|e| io(&p, e))?;
        Ok(())
    }

    pub fn read_state(&self, table: &str, file: &str) -> Result<Vec<RecordBatch>> {
        let p = self.state_path(table, file);
        let f = File::open(&p).map_err(|e| io(&p, e))?;
        let corrupt = |e: arrow::error::ArrowError| OrchestratorError::Corrupt {
            path: p.display().to_string(),
            reason: e.to_string(),
        };
        let r = FileReader::try_new(f, None).map_err(corrupt)?;
        r.collect::<std::result::Result<Vec<_>, _>>()
            .map_err(corrupt)
    }

    /// Keeps the checkpoints `>= keep_from` and the state files they name; removes the rest.
    pub fn gc(&self, keep_from: u64) -> Result<()> {
        let batches = self.batches()?;
        let mut live: BTreeSet<(String, String)> = BTreeSet::new();
        for &b in batches.iter().filter(|b| **b >= keep_from) {
            let c = self.read(b)?;
            for (t, s) in &c.tables {
                for f in s.files() {
                    live.insert((t.clone(), f));
                }
            }
        }
        for &b in batches.iter().filter(|b| **b < keep_from) {
            let _ = std::fs::remove_file(self.ckpt_path(b));
        }
        let state = self.dir.join("state");
        for t in std::fs::read_dir(&state)
            .map_err(|e| io(&state, e))?
            .flatten()
        {
            let Some(table) = t.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            for f in std::fs::read_dir(t.path()).into_iter().flatten().flatten() {
                let Some(name) = f
                    .file_name()
                    .to_str()
                    .and_then(|n| n.strip_suffix(".arrow"))
                    .map(str::to_owned)
                else {
                    continue;
                };
                if !live.contains(&(table.clone(), name)) {
                    let _ = std::fs::remove_file(f.path());
                }
            }
        }
        Ok(())
    }
}

fn write_durably(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp).map_err(|e| io(&tmp, e))?;
        f.write_all(bytes).map_err(|e| io(&tmp, e))?;
        f.sync_all().map_err(|e| io(&tmp, e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| io(path, e))?;
    if let Some(parent) = path.parent()
        && let Ok(d) = File::open(parent)
    {
        d.sync_all().map_err(|e| io(parent, e))?;
    }
    Ok(())
}
