//! Startup repair of one partition directory, run by [`crate::Log::open`] before anything is
//! read or appended. Closed segments are trusted up to a cheap check of their tail (from the
//! last index entry); the active (last) segment is scanned in full, and at the first frame that
//! is torn, fails its CRC, breaks offset continuity or does not parse, the file is truncated
//! there with a `tracing::warn!`. Acknowledged batches were fsynced whole before the
//! acknowledgement, so they always precede any damage and survive. Missing or invalid index
//! files are rebuilt from the log; stray files are reported and left alone.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind as IoErrorKind, Write};
use std::path::Path;
use std::sync::Arc;

use crate::batch;
use crate::config::LogConfig;
use crate::error::{LogError, Result};
use crate::index::{self, ENTRY_LEN, IndexEntry, IndexPolicy};
use crate::partition::Writer;
use crate::segment::{self, Frame, Segment, SegmentFile};
use crate::sync_dir;

/// Read-ahead while scanning a segment.
const SCAN_CHUNK: usize = 4 * 1024 * 1024;

/// A recovered partition, ready to serve.
pub(crate) struct Recovered {
    /// All segments, the active one last.
    pub segments: Vec<Arc<Segment>>,
    pub writer: Writer,
}

/// Who is being recovered, for messages.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    topic: &'a str,
    partition: u32,
    cfg: &'a LogConfig,
}

/// Recovers (or initializes) the partition stored in `dir`.
pub(crate) fn recover(
    topic: &str,
    partition: u32,
    dir: &Path,
    cfg: &LogConfig,
) -> Result<Recovered> {
    let ctx = Ctx {
        topic,
        partition,
        cfg,
    };
    fs::create_dir_all(dir).map_err(|e| LogError::io("create partition directory", dir, e))?;
    let bases = list_segments(ctx, dir)?;
    let Some((&last, closed)) = bases.split_last() else {
        return fresh(ctx, dir, 0, Vec::new());
    };
    let mut segments = Vec::with_capacity(bases.len());
    let mut prev_next = None;
    for &base in closed {
        let segment = Segment::open(dir, base)?;
        check_sequence(ctx, &segment, prev_next)?;
        prev_next = Some(recover_closed(ctx, &segment)?);
        segments.push(Arc::new(segment));
    }
    let segment = Segment::open(dir, last)?;
    let scan = recover_whole(ctx, &segment)?;
    if let Some(expected) = prev_next
        && scan.valid_len == 0
        && expected != last
    {
        // An empty active segment carries no data, only its name; a name that does not
        // continue the previous segment is garbage (e.g. a stray copy), so start over cleanly.
        tracing::warn!(
            topic,
            partition,
            segment = %segment.log_path().display(),
            expected_base = expected,
            "replacing empty trailing segment whose name does not continue the previous segment"
        );
        remove_segment_files(&segment)?;
        return fresh(ctx, dir, expected, segments);
    }
    check_sequence(ctx, &segment, prev_next)?;
    let index_file = write_index(ctx, &segment, &scan.entries)?;
    let writer = Writer {
        index_len: (scan.entries.len() * ENTRY_LEN) as u64,
        active: Arc::new(segment),
        index_file,
        size: scan.valid_len,
        next_offset: scan.next_offset,
        max_ts: scan.max_ts,
        policy: scan.policy,
    };
    segments.push(Arc::clone(&writer.active));
    Ok(Recovered { segments, writer })
}

/// Starts a new empty active segment at `base` after `segments`.
fn fresh(
    ctx: Ctx<'_>,
    dir: &Path,
    base: u64,
    mut segments: Vec<Arc<Segment>>,
) -> Result<Recovered> {
    let (segment, index_file) = Segment::create(dir, base)?;
    if ctx.cfg.fsync {
        sync_dir(dir)?;
    }
    let active = Arc::new(segment);
    segments.push(Arc::clone(&active));
    Ok(Recovered {
        segments,
        writer: Writer {
            active,
            index_file,
            index_len: 0,
            size: 0,
            next_offset: base,
            max_ts: i64::MIN,
            policy: IndexPolicy::new(ctx.cfg.index_interval_bytes, 0),
        },
    })
}

/// Base offsets of the `.log` files in `dir`, ascending. Deletes index files whose log is gone
/// (retention removes the log first) and reports anything else unexpected.
fn list_segments(ctx: Ctx<'_>, dir: &Path) -> Result<Vec<u64>> {
    let mut logs = BTreeSet::new();
    let mut indexes = BTreeSet::new();
    let entries =
        fs::read_dir(dir).map_err(|e| LogError::io("list partition directory", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| LogError::io("list partition directory", dir, e))?;
        let name = entry.file_name();
        match name.to_str().and_then(segment::parse_file_name) {
            Some((base, SegmentFile::Log)) => {
                logs.insert(base);
            }
            Some((base, SegmentFile::Index)) => {
                indexes.insert(base);
            }
            None => tracing::warn!(
                topic = ctx.topic,
                partition = ctx.partition,
                file = %entry.path().display(),
                "ignoring unexpected file in log partition directory"
            ),
        }
    }
    for orphan in indexes.difference(&logs) {
        let path = segment::file_path(dir, *orphan, SegmentFile::Index);
        tracing::info!(file = %path.display(), "removing index file without a log segment");
        remove_if_exists(&path)?;
    }
    Ok(logs.into_iter().collect())
}

/// Refuses overlapping segments, reports gaps (only possible after a crash with fsync off).
fn check_sequence(ctx: Ctx<'_>, segment: &Segment, prev_next: Option<u64>) -> Result<()> {
    let Some(expected) = prev_next else {
        return Ok(());
    };
    let base = segment.base_offset();
    if base < expected {
        return Err(LogError::CorruptLayout {
            path: segment.log_path().to_path_buf(),
            detail: format!(
                "segment starts at offset {base} but the previous segment already holds \
                 offsets up to {}",
                expected.saturating_sub(1)
            ),
        });
    }
    if base > expected {
        tracing::warn!(
            topic = ctx.topic,
            partition = ctx.partition,
            segment = %segment.log_path().display(),
            missing_from = expected,
            missing_to = base,
            "offsets missing between log segments (lost in a crash with fsync off?)"
        );
    }
    Ok(())
}

/// Recovers a closed segment: trusts a valid index and checks only the batches after its last
/// entry; anything off falls back to [`recover_whole`]. Returns the segment's next offset.
fn recover_closed(ctx: Ctx<'_>, segment: &Segment) -> Result<u64> {
    let log_len = segment.file_len()?;
    if let Some(mut entries) = read_index(ctx, segment, log_len)? {
        let (pos, rel) = entries
            .last()
            .map_or((0, 0), |e| (u64::from(e.pos), u64::from(e.rel)));
        let policy = IndexPolicy::new(ctx.cfg.index_interval_bytes, pos);
        let tail = scan(segment, pos, segment.base_offset() + rel, log_len, policy)?;
        if tail.bad.is_none() {
            if !tail.entries.is_empty() {
                entries.extend_from_slice(&tail.entries);
                write_index(ctx, segment, &entries)?;
            }
            if pos == 0 {
                segment.set_max_ts(tail.max_ts);
            }
            segment.set_index(entries);
            segment.publish(tail.valid_len, tail.next_offset);
            return Ok(tail.next_offset);
        }
    }
    let whole = recover_whole(ctx, segment)?;
    write_index(ctx, segment, &whole.entries)?;
    segment.set_max_ts(whole.max_ts);
    Ok(whole.next_offset)
}

/// Scans a whole segment, truncates it at the first bad frame, installs the rebuilt index in
/// memory (the caller writes the file) and publishes what is left.
fn recover_whole(ctx: Ctx<'_>, segment: &Segment) -> Result<Scan> {
    let log_len = segment.file_len()?;
    let policy = IndexPolicy::new(ctx.cfg.index_interval_bytes, 0);
    let outcome = scan(segment, 0, segment.base_offset(), log_len, policy)?;
    if let Some(reason) = &outcome.bad {
        tracing::warn!(
            topic = ctx.topic,
            partition = ctx.partition,
            segment = %segment.log_path().display(),
            position = outcome.valid_len,
            dropped_bytes = log_len - outcome.valid_len,
            reason = %reason,
            "truncating torn or corrupt tail of log segment"
        );
        let path = segment.log_path();
        segment
            .file()
            .set_len(outcome.valid_len)
            .map_err(|e| LogError::io("truncate segment", path, e))?;
        if ctx.cfg.fsync {
            segment
                .file()
                .sync_all()
                .map_err(|e| LogError::io("fsync segment", path, e))?;
        }
    }
    segment.set_index(outcome.entries.clone());
    segment.publish(outcome.valid_len, outcome.next_offset);
    Ok(outcome)
}

/// Result of walking frames from a position.
struct Scan {
    /// End of the last good frame.
    valid_len: u64,
    next_offset: u64,
    /// Newest timestamp among the scanned frames.
    max_ts: i64,
    /// Index entries due for the scanned frames, and the policy state after them.
    entries: Vec<IndexEntry>,
    policy: IndexPolicy,
    /// Why scanning stopped before `end`, if it did.
    bad: Option<String>,
}

/// Validates frames from `pos` (expected to hold offset `offset`) up to `end`.
fn scan(
    segment: &Segment,
    mut pos: u64,
    mut offset: u64,
    end: u64,
    mut policy: IndexPolicy,
) -> Result<Scan> {
    let mut reader = segment.reader(end, SCAN_CHUNK);
    let mut max_ts = i64::MIN;
    let mut entries = Vec::new();
    let bad = loop {
        let (header, frame) = match reader.next_frame(pos, true)? {
            Frame::End => break None,
            Frame::Bad(reason) => break Some(reason),
            Frame::Ok { header, bytes } => (header, bytes),
        };
        if header.base_offset != offset {
            break Some(format!(
                "batch starts at offset {}, expected {offset}",
                header.base_offset
            ));
        }
        if !batch::crc_matches(&header, frame) {
            break Some("crc mismatch".into());
        }
        if let Err(reason) = batch::validate_records(&header, frame) {
            break Some(reason);
        }
        if let Some(entry) = policy.observe(pos, offset - segment.base_offset()) {
            entries.push(entry);
        }
        pos += header.frame_len();
        offset = header.next_offset();
        max_ts = max_ts.max(header.max_ts);
    };
    Ok(Scan {
        valid_len: pos,
        next_offset: offset,
        max_ts,
        entries,
        policy,
        bad,
    })
}

/// Loads the index file if it exists and is consistent with a log of `log_len` bytes.
fn read_index(ctx: Ctx<'_>, segment: &Segment, log_len: u64) -> Result<Option<Vec<IndexEntry>>> {
    let path = segment.index_path();
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == IoErrorKind::NotFound => {
            tracing::info!(
                topic = ctx.topic,
                partition = ctx.partition,
                index = %path.display(),
                "index file missing, rebuilding it from the log"
            );
            return Ok(None);
        }
        Err(e) => return Err(LogError::io("read index", path, e)),
    };
    match index::decode(&bytes, log_len) {
        Ok(entries) => Ok(Some(entries)),
        Err(reason) => {
            tracing::warn!(
                topic = ctx.topic,
                partition = ctx.partition,
                index = %path.display(),
                reason = %reason,
                "index file is invalid, rebuilding it from the log"
            );
            Ok(None)
        }
    }
}

/// Replaces the segment's index file with `entries`; returns it open for appending more.
fn write_index(ctx: Ctx<'_>, segment: &Segment, entries: &[IndexEntry]) -> Result<File> {
    let path = segment.index_path();
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| LogError::io("create index", path, e))?;
    file.write_all(&index::encode(entries))
        .map_err(|e| LogError::io("write index", path, e))?;
    if ctx.cfg.fsync {
        file.sync_all()
            .map_err(|e| LogError::io("fsync index", path, e))?;
    }
    Ok(file)
}

/// Deletes a segment's files, the log first so a crash in between leaves an orphan index that
/// the next open removes, never a log without its place in the sequence.
pub(crate) fn remove_segment_files(segment: &Segment) -> Result<()> {
    remove_if_exists(segment.log_path())?;
    remove_if_exists(segment.index_path())
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != IoErrorKind::NotFound => Err(LogError::io("delete", path, e)),
        _ => Ok(()),
    }
}
