//! One partition: an ordered list of segments, the last one active. Owns appending (framing
//! outside the lock, writing under the write mutex, then group commit: one `fsync` covers every
//! appender waiting at that moment), rolling segments, and reading durable records back through
//! the sparse index. Startup repair is in `recovery.rs`, deletion of old segments in
//! `retention.rs`.
//!
//! Visibility rule: [`Partition::end_offset`] only moves after the data below it was synced, and
//! readers stop there, so nothing a reader sees can disappear in a crash.

use std::fmt;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use crate::batch::{self, EncodeError, HEADER_LEN, MAX_RECORD_BYTES, RecordIter};
use crate::config::LogConfig;
use crate::error::{LogError, Result};
use crate::index::{ENTRY_LEN, IndexPolicy};
use crate::record::{Appended, Record, StoredRecord};
use crate::recovery;
use crate::segment::{Frame, Segment};
use crate::{lock, read_lock, sync_dir, write_lock};

/// Smallest and largest read-ahead of one `read` call.
const MIN_READ_CHUNK: usize = 64 * 1024;
const MAX_READ_CHUNK: usize = 8 * 1024 * 1024;

/// State only the appender holding the write mutex touches.
pub(crate) struct Writer {
    pub active: Arc<Segment>,
    /// The active segment's index file, appended to as entries become due.
    pub index_file: File,
    pub index_len: u64,
    /// Bytes written to the active segment (durable or not).
    pub size: u64,
    /// Offset the next record will get.
    pub next_offset: u64,
    /// Newest timestamp written to the active segment.
    pub max_ts: i64,
    pub policy: IndexPolicy,
}

/// A partition of a topic. Cheap to share by reference: all methods take `&self`.
pub struct Partition {
    topic: Arc<str>,
    id: u32,
    dir: PathBuf,
    cfg: Arc<LogConfig>,
    /// Ordered by base offset; the last one is the active segment.
    pub(crate) segments: RwLock<Vec<Arc<Segment>>>,
    writer: Mutex<Writer>,
    /// Held by the one appender currently running the group fsync.
    sync_lock: Mutex<()>,
    /// Offset after the last durable record: [`Partition::end_offset`].
    durable: AtomicU64,
    /// Base offset of the oldest segment: [`Partition::start_offset`].
    pub(crate) start: AtomicU64,
    /// Set when a failed fsync or write left the file in an unknown state.
    failure: OnceLock<String>,
}

impl fmt::Debug for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Partition")
            .field("topic", &self.topic)
            .field("id", &self.id)
            .field("start_offset", &self.start_offset())
            .field("end_offset", &self.end_offset())
            .finish_non_exhaustive()
    }
}

impl Partition {
    /// Opens a partition directory, creating it with an empty first segment if needed, and
    /// recovers its active segment.
    pub(crate) fn open(
        topic: Arc<str>,
        id: u32,
        dir: PathBuf,
        cfg: Arc<LogConfig>,
    ) -> Result<Self> {
        let recovered = recovery::recover(&topic, id, &dir, &cfg)?;
        let start = recovered
            .segments
            .first()
            .map_or(recovered.writer.next_offset, |s| s.base_offset());
        let end = recovered.writer.next_offset;
        Ok(Partition {
            topic,
            id,
            dir,
            cfg,
            segments: RwLock::new(recovered.segments),
            writer: Mutex::new(recovered.writer),
            sync_lock: Mutex::new(()),
            durable: AtomicU64::new(end),
            start: AtomicU64::new(start),
            failure: OnceLock::new(),
        })
    }

    /// The partition number within its topic.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The topic this partition belongs to.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends the records as one framed batch (several when larger than about 8 MiB) and
    /// returns once they are durable. Concurrent appenders share `fsync` calls (group commit).
    /// Records get consecutive offsets; an empty slice returns `count: 0` at the current end.
    ///
    /// On error nothing of this call is acknowledged; when a large append was split, frames
    /// written before the failure may still become visible later (at-least-once).
    pub fn append(&self, records: &[Record<'_>]) -> Result<Appended> {
        if records.is_empty() {
            return Ok(Appended {
                partition: self.id,
                base_offset: self.end_offset(),
                count: 0,
            });
        }
        let count = u32::try_from(records.len()).map_err(|_| LogError::TooManyRecords {
            topic: self.topic.to_string(),
            partition: self.id,
            records: records.len(),
            max: u32::MAX,
        })?;
        let mut batches = batch::encode(records).map_err(|e| match e {
            EncodeError::RecordTooLarge { index, size } => LogError::RecordTooLarge {
                topic: self.topic.to_string(),
                partition: self.id,
                index,
                size,
                max: MAX_RECORD_BYTES,
            },
        })?;
        let (base_offset, end) = self.write_batches(&mut batches)?;
        self.wait_durable(end)?;
        Ok(Appended {
            partition: self.id,
            base_offset,
            count,
        })
    }

    /// Writes the frames under the write mutex; returns the offset range they got.
    fn write_batches(&self, batches: &mut [batch::EncodedBatch]) -> Result<(u64, u64)> {
        let mut w = lock(&self.writer);
        self.check_failed()?;
        let base_offset = w.next_offset;
        for b in batches.iter_mut() {
            let frame_len = b.frame.len() as u64;
            let rel_full = w.next_offset - w.active.base_offset() > u64::from(u32::MAX / 2);
            if w.size > 0 && (w.size + frame_len > self.cfg.segment_bytes || rel_full) {
                self.roll(&mut w)?;
            }
            let next = w
                .next_offset
                .checked_add(u64::from(b.count))
                .ok_or_else(|| LogError::OffsetOverflow {
                    topic: self.topic.to_string(),
                    partition: self.id,
                    next_offset: w.next_offset,
                })?;
            b.seal(w.next_offset);
            let pos = w.size;
            if let Err(e) = w.active.file().write_all_at(&b.frame, pos) {
                // Cut the partial frame so the next append starts on a frame boundary; if even
                // that fails the file's tail is unknown until recovery runs.
                if let Err(e2) = w.active.file().set_len(pos) {
                    self.fail(format!("cannot truncate after a failed write: {e2}"));
                }
                return Err(LogError::io("write segment", w.active.log_path(), e));
            }
            let rel = w.next_offset - w.active.base_offset();
            if let Some(entry) = w.policy.observe(pos, rel) {
                let at = w.index_len;
                if let Err(e) = w.index_file.write_all_at(&entry.to_bytes(), at) {
                    self.fail(format!("cannot write index entry: {e}"));
                    return Err(LogError::io("write index", w.active.index_path(), e));
                }
                w.index_len += ENTRY_LEN as u64;
                w.active.push_index(entry);
            }
            w.size += frame_len;
            w.next_offset = next;
            w.max_ts = w.max_ts.max(b.max_ts);
        }
        Ok((base_offset, w.next_offset))
    }

    /// Closes the active segment (syncing it, so group commit only ever syncs the active file)
    /// and starts a new one at the next offset.
    fn roll(&self, w: &mut Writer) -> Result<()> {
        if self.cfg.fsync {
            let synced = w
                .active
                .file()
                .sync_data()
                .map_err(|e| (w.active.log_path(), e))
                .and_then(|()| {
                    w.index_file
                        .sync_data()
                        .map_err(|e| (w.active.index_path(), e))
                });
            if let Err((path, e)) = synced {
                self.fail(format!("fsync failed while closing a segment: {e}"));
                return Err(LogError::io("fsync segment", path, e));
            }
        }
        w.active.publish(w.size, w.next_offset);
        w.active.set_max_ts(w.max_ts);
        let (segment, index_file) = Segment::create(&self.dir, w.next_offset)?;
        if self.cfg.fsync {
            sync_dir(&self.dir)?;
        }
        let segment = Arc::new(segment);
        write_lock(&self.segments).push(Arc::clone(&segment));
        tracing::debug!(
            topic = %self.topic,
            partition = self.id,
            closed = w.active.base_offset(),
            bytes = w.size,
            new_base = w.next_offset,
            "rolled log segment"
        );
        w.active = segment;
        w.index_file = index_file;
        w.index_len = 0;
        w.size = 0;
        w.max_ts = i64::MIN;
        w.policy = IndexPolicy::new(self.cfg.index_interval_bytes, 0);
        Ok(())
    }

    /// Returns once everything below `end` is durable. The first waiter to find it is not
    /// becomes the leader: it syncs the active segment, covering every write made so far, and
    /// publishes; waiters queued behind it usually find their data covered and return.
    fn wait_durable(&self, end: u64) -> Result<()> {
        if self.durable.load(Ordering::Acquire) >= end {
            return Ok(());
        }
        let _leader = lock(&self.sync_lock);
        if self.durable.load(Ordering::Acquire) >= end {
            return Ok(());
        }
        self.check_failed()?;
        let (segment, len, next) = {
            let w = lock(&self.writer);
            (Arc::clone(&w.active), w.size, w.next_offset)
        };
        if self.cfg.fsync
            && let Err(e) = segment.file().sync_data()
        {
            // After a failed fsync the kernel may have dropped the dirty pages: nothing written
            // since the last good sync can be acknowledged, ever, without re-reading the disk.
            self.fail(format!("fsync failed: {e}"));
            return Err(LogError::io("fsync segment", segment.log_path(), e));
        }
        segment.publish(len, next);
        self.durable.fetch_max(next, Ordering::AcqRel);
        Ok(())
    }

    fn fail(&self, reason: String) {
        tracing::error!(
            topic = %self.topic,
            partition = self.id,
            reason = %reason,
            "log partition stops accepting appends until reopened"
        );
        // A second failure keeps the first reason, which is the interesting one.
        let _ = self.failure.set(reason);
    }

    fn check_failed(&self) -> Result<()> {
        match self.failure.get() {
            Some(reason) => Err(LogError::PartitionFailed {
                topic: self.topic.to_string(),
                partition: self.id,
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Offset after the last durable record: the next offset an append will get, once all
    /// appends in flight are acknowledged. Readers never see records at or past it.
    pub fn end_offset(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    /// First offset still stored; moves forward when retention deletes segments.
    pub fn start_offset(&self) -> u64 {
        self.start.load(Ordering::Acquire)
    }

    /// Number of segment files, the active one included.
    pub fn segment_count(&self) -> usize {
        read_lock(&self.segments).len()
    }

    /// Bytes of durable data stored, over all segments.
    pub fn size_bytes(&self) -> u64 {
        read_lock(&self.segments)
            .iter()
            .map(|s| s.durable_len())
            .sum()
    }

    /// Reads durable records with offset `>= from`: at most `max_records`, and stopping before
    /// the record that would take the sum of value sizes past `max_bytes` (the first record is
    /// always returned, however large). `from == end_offset()` returns an empty vector.
    ///
    /// Errors: `from` below [`Partition::start_offset`] ([`LogError::OffsetBelowStart`]) or
    /// past [`Partition::end_offset`] ([`LogError::OffsetBeyondEnd`]), both `User`; IO and
    /// corruption of durable data.
    pub fn read(
        &self,
        from: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Vec<StoredRecord>> {
        let end = self.end_offset();
        let start = self.start_offset();
        if from < start {
            return Err(self.below_start(from, start));
        }
        if from > end {
            return Err(LogError::OffsetBeyondEnd {
                topic: self.topic.to_string(),
                partition: self.id,
                offset: from,
                end,
            });
        }
        if from == end || max_records == 0 {
            return Ok(Vec::new());
        }
        let available = usize::try_from(end - from).unwrap_or(usize::MAX);
        let mut out = ReadBuf {
            records: Vec::with_capacity(max_records.min(available).min(1 << 16)),
            max_records,
            max_bytes,
            value_bytes: 0,
        };
        // Cap the read-ahead near what the byte limit can return (values plus framing).
        let chunk = max_bytes
            .saturating_add(max_records.saturating_mul(32))
            .saturating_add(HEADER_LEN)
            .clamp(MIN_READ_CHUNK, MAX_READ_CHUNK);
        // Retention may have deleted the segment since `start` was loaded.
        let mut segment = self
            .segment_containing(from)
            .ok_or_else(|| self.below_start(from, self.start_offset()))?;
        loop {
            if read_segment(&segment, from, end, chunk, &mut out)? {
                break;
            }
            match self.segment_after(segment.base_offset()) {
                Some(next) => segment = next,
                None => break,
            }
        }
        Ok(out.records)
    }

    fn below_start(&self, offset: u64, start: u64) -> LogError {
        LogError::OffsetBelowStart {
            topic: self.topic.to_string(),
            partition: self.id,
            offset,
            start,
        }
    }

    /// The segment whose range holds `offset`, if it was not deleted.
    fn segment_containing(&self, offset: u64) -> Option<Arc<Segment>> {
        let segments = read_lock(&self.segments);
        let n = segments.partition_point(|s| s.base_offset() <= offset);
        n.checked_sub(1).and_then(|i| segments.get(i)).cloned()
    }

    /// The segment following the one based at `base`.
    fn segment_after(&self, base: u64) -> Option<Arc<Segment>> {
        let segments = read_lock(&self.segments);
        let n = segments.partition_point(|s| s.base_offset() <= base);
        segments.get(n).cloned()
    }
}

/// Output of a read and its limits.
struct ReadBuf {
    records: Vec<StoredRecord>,
    max_records: usize,
    max_bytes: usize,
    value_bytes: usize,
}

impl ReadBuf {
    /// Whether a record with a value of `len` bytes still fits.
    fn fits(&self, len: usize) -> bool {
        self.records.len() < self.max_records
            && (self.records.is_empty() || self.value_bytes.saturating_add(len) <= self.max_bytes)
    }
}

/// Reads records `from..end` of one segment into `out`; true when the read is complete (a limit
/// was hit or `end` reached), false when the segment ran out first.
fn read_segment(
    segment: &Segment,
    from: u64,
    end: u64,
    chunk: usize,
    out: &mut ReadBuf,
) -> Result<bool> {
    let readable = segment.durable_len();
    let mut pos = segment.position_for(from);
    let mut reader = segment.reader(readable, chunk);
    let corrupt = |position: u64, detail: String| LogError::Corrupt {
        path: segment.log_path().to_path_buf(),
        position,
        detail,
    };
    loop {
        if out.records.len() >= out.max_records {
            return Ok(true);
        }
        let (header, frame) = match reader.next_frame(pos, true)? {
            Frame::End => return Ok(false),
            Frame::Bad(detail) => return Err(corrupt(pos, detail)),
            Frame::Ok { header, bytes } => (header, bytes),
        };
        if header.base_offset >= end {
            return Ok(true);
        }
        if header.next_offset() > from {
            if !batch::crc_matches(&header, frame) {
                return Err(corrupt(pos, "crc mismatch".into()));
            }
            for record in RecordIter::new(&header, frame) {
                let record = record.map_err(|d| corrupt(pos, d))?;
                if record.offset < from {
                    continue;
                }
                if record.offset >= end || !out.fits(record.value.len()) {
                    return Ok(true);
                }
                out.value_bytes = out.value_bytes.saturating_add(record.value.len());
                out.records.push(StoredRecord {
                    offset: record.offset,
                    timestamp_ms: record.timestamp_ms,
                    key: record.key.map(<[u8]>::to_vec),
                    value: record.value.to_vec(),
                });
            }
        }
        pos += header.frame_len();
    }
}
