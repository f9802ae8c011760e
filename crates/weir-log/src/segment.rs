//! One segment of a partition: a `<20-digit base offset>.log` file of batch frames plus its
//! `.index`. Owns the open file handle shared by the writer and all readers (positional IO, so
//! no seek state is shared), the in-memory copy of the sparse index, and how far the file may be
//! read ([`Segment::durable_len`]). [`FrameReader`] walks frames through a reusable buffer with
//! `pread`. Deciding when to roll, sync or delete segments is `partition.rs`'s job; repairing
//! them at startup is `recovery.rs`'s.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{OnceLock, RwLock};

use crate::batch::{BatchHeader, HEADER_LEN};
use crate::error::{LogError, Result};
use crate::index::{self, IndexEntry};
use crate::{read_lock, write_lock};

/// Largest read-ahead when scanning only batch headers (retention by age): big batches are
/// skipped, so reading far ahead would mostly fetch bytes nobody looks at.
const HEADER_SCAN_CHUNK: usize = 64 * 1024;
/// Read-ahead of the first `pread` of a [`FrameReader`].
const FIRST_CHUNK: usize = 64 * 1024;

/// The two files a segment is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SegmentFile {
    Log,
    Index,
}

/// Parses `00000000000000000042.log` / `.index`; anything else is `None`.
pub(crate) fn parse_file_name(name: &str) -> Option<(u64, SegmentFile)> {
    let (stem, kind) = if let Some(stem) = name.strip_suffix(".log") {
        (stem, SegmentFile::Log)
    } else {
        (name.strip_suffix(".index")?, SegmentFile::Index)
    };
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((stem.parse().ok()?, kind))
}

/// Path of a segment file.
pub(crate) fn file_path(dir: &Path, base_offset: u64, kind: SegmentFile) -> PathBuf {
    match kind {
        SegmentFile::Log => dir.join(format!("{base_offset:020}.log")),
        SegmentFile::Index => dir.join(format!("{base_offset:020}.index")),
    }
}

/// A segment file and what readers may see of it.
#[derive(Debug)]
pub(crate) struct Segment {
    base_offset: u64,
    log_path: PathBuf,
    index_path: PathBuf,
    file: File,
    index: RwLock<Vec<IndexEntry>>,
    /// Bytes of whole, durable batches; readers never look past it.
    durable_len: AtomicU64,
    /// Offset after the last durable record in this segment.
    next_offset: AtomicU64,
    /// Newest record timestamp, known once the segment is closed (or lazily scanned).
    max_ts: OnceLock<i64>,
}

impl Segment {
    /// Creates (truncating) the log and index files of a new segment; returns the index file
    /// opened for appending.
    pub fn create(dir: &Path, base_offset: u64) -> Result<(Segment, File)> {
        let log_path = file_path(dir, base_offset, SegmentFile::Log);
        let index_path = file_path(dir, base_offset, SegmentFile::Index);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&log_path)
            .map_err(|e| LogError::io("create segment", &log_path, e))?;
        let index_file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&index_path)
            .map_err(|e| LogError::io("create index", &index_path, e))?;
        let segment = Segment::with_file(base_offset, log_path, index_path, file);
        Ok((segment, index_file))
    }

    /// Opens an existing segment; everything readers see starts empty until recovery publishes.
    pub fn open(dir: &Path, base_offset: u64) -> Result<Segment> {
        let log_path = file_path(dir, base_offset, SegmentFile::Log);
        let index_path = file_path(dir, base_offset, SegmentFile::Index);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&log_path)
            .map_err(|e| LogError::io("open segment", &log_path, e))?;
        Ok(Segment::with_file(base_offset, log_path, index_path, file))
    }

    fn with_file(base_offset: u64, log_path: PathBuf, index_path: PathBuf, file: File) -> Self {
        Segment {
            base_offset,
            log_path,
            index_path,
            file,
            index: RwLock::new(Vec::new()),
            durable_len: AtomicU64::new(0),
            next_offset: AtomicU64::new(base_offset),
            max_ts: OnceLock::new(),
        }
    }

    pub fn base_offset(&self) -> u64 {
        self.base_offset
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    pub fn index_path(&self) -> &Path {
        &self.index_path
    }

    /// Current size of the log file on disk.
    pub fn file_len(&self) -> Result<u64> {
        self.file
            .metadata()
            .map(|m| m.len())
            .map_err(|e| LogError::io("stat segment", &self.log_path, e))
    }

    pub fn durable_len(&self) -> u64 {
        self.durable_len.load(Ordering::Acquire)
    }

    pub fn next_offset(&self) -> u64 {
        self.next_offset.load(Ordering::Acquire)
    }

    /// Makes `len` bytes (ending at offset `next`) visible to readers. Never moves backwards: a
    /// sync leader holding an older snapshot may publish after a roll published the final size.
    pub fn publish(&self, len: u64, next: u64) {
        self.durable_len.fetch_max(len, Ordering::AcqRel);
        self.next_offset.fetch_max(next, Ordering::AcqRel);
    }

    pub fn set_index(&self, entries: Vec<IndexEntry>) {
        *write_lock(&self.index) = entries;
    }

    pub fn push_index(&self, entry: IndexEntry) {
        write_lock(&self.index).push(entry);
    }

    /// Position of the last indexed batch at or before `offset` (0 when none).
    pub fn position_for(&self, offset: u64) -> u64 {
        let rel = offset.saturating_sub(self.base_offset);
        index::lookup(&read_lock(&self.index), rel)
    }

    /// Records the newest timestamp once the segment is closed; later calls are no-ops.
    pub fn set_max_ts(&self, ts: i64) {
        // Ignoring the error is right: it only says the value was already known.
        let _ = self.max_ts.set(ts);
    }

    /// Newest record timestamp of a closed segment, scanning batch headers the first time for
    /// segments that were closed before this process opened the log.
    pub fn max_timestamp(&self) -> Result<i64> {
        if let Some(ts) = self.max_ts.get() {
            return Ok(*ts);
        }
        let mut reader = self.reader(self.durable_len(), HEADER_SCAN_CHUNK);
        let mut pos = 0;
        let mut max = i64::MIN;
        loop {
            match reader.next_frame(pos, false)? {
                Frame::End => break,
                Frame::Bad(detail) => {
                    return Err(LogError::Corrupt {
                        path: self.log_path.clone(),
                        position: pos,
                        detail,
                    });
                }
                Frame::Ok { header, .. } => {
                    max = max.max(header.max_ts);
                    pos += header.frame_len();
                }
            }
        }
        self.set_max_ts(max);
        Ok(max)
    }

    /// A frame reader over bytes `0..end` of this segment, reading ahead at most `max_chunk`
    /// bytes per system call.
    pub fn reader(&self, end: u64, max_chunk: usize) -> FrameReader<'_> {
        let max_chunk = max_chunk.max(HEADER_LEN);
        FrameReader {
            file: &self.file,
            path: &self.log_path,
            end,
            chunk: max_chunk.min(FIRST_CHUNK),
            max_chunk,
            buf: Vec::new(),
            buf_start: 0,
            buf_len: 0,
        }
    }
}

/// What [`FrameReader::next_frame`] found at a position.
pub(crate) enum Frame<'a> {
    /// The position is the end of the readable range.
    End,
    /// The bytes there are not a well-formed frame (torn, truncated or garbage); says why.
    Bad(String),
    /// A frame whose header passed [`BatchHeader::check`] and which fits the range. `bytes`
    /// is the whole frame, or only the header when asked for headers; the CRC is not checked.
    Ok {
        header: BatchHeader,
        bytes: &'a [u8],
    },
}

/// Sequential frame access over a byte range of a segment, reading ahead `chunk` bytes per
/// `pread` so small batches do not cost a system call each. The read-ahead starts small and
/// doubles on each refill, so short reads stay cheap and long scans get large reads.
pub(crate) struct FrameReader<'a> {
    file: &'a File,
    path: &'a Path,
    end: u64,
    chunk: usize,
    max_chunk: usize,
    buf: Vec<u8>,
    buf_start: u64,
    buf_len: usize,
}

impl FrameReader<'_> {
    /// Parses the frame starting at `pos`; `whole` loads the whole frame, otherwise only its
    /// header. IO errors are errors; malformed bytes are [`Frame::Bad`].
    pub fn next_frame(&mut self, pos: u64, whole: bool) -> Result<Frame<'_>> {
        if pos >= self.end {
            return Ok(Frame::End);
        }
        let left = self.end - pos;
        if left < HEADER_LEN as u64 {
            return Ok(Frame::Bad(format!(
                "{left} bytes left, too few for a {HEADER_LEN}-byte batch header"
            )));
        }
        let Some(header) = BatchHeader::parse(self.fill(pos, HEADER_LEN)?) else {
            return Ok(Frame::Bad("short batch header".into()));
        };
        if let Err(detail) = header.check() {
            return Ok(Frame::Bad(detail));
        }
        if header.frame_len() > left {
            return Ok(Frame::Bad(format!(
                "batch of {} bytes runs past the end of the data ({left} bytes left)",
                header.frame_len()
            )));
        }
        let len = if whole {
            // frame_len <= left, and `left` bytes are addressable when read, so this fits.
            usize::try_from(header.frame_len()).unwrap_or(usize::MAX)
        } else {
            HEADER_LEN
        };
        Ok(Frame::Ok {
            header,
            bytes: self.fill(pos, len)?,
        })
    }

    /// Returns bytes `pos..pos + len` (which the caller checked lie below `end`), reading a new
    /// chunk from `pos` when they are not already buffered.
    fn fill(&mut self, pos: u64, len: usize) -> Result<&[u8]> {
        let buffered_end = self.buf_start + self.buf_len as u64;
        if pos < self.buf_start || pos + len as u64 > buffered_end {
            let want = (len.max(self.chunk) as u64)
                .min(self.end - pos)
                .max(len as u64);
            let want = usize::try_from(want).unwrap_or(len);
            if self.buf.len() < want {
                self.buf.resize(want, 0);
            }
            self.buf_len = 0;
            self.file
                .read_exact_at(&mut self.buf[..want], pos)
                .map_err(|e| LogError::io("read segment", self.path, e))?;
            self.buf_start = pos;
            self.buf_len = want;
            self.chunk = self.chunk.saturating_mul(2).min(self.max_chunk);
        }
        let at = (pos - self.buf_start) as usize;
        Ok(&self.buf[at..at + len])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        let dir = Path::new("/d");
        let p = file_path(dir, 42, SegmentFile::Log);
        assert_eq!(p, Path::new("/d/00000000000000000042.log"));
        assert_eq!(
            parse_file_name("00000000000000000042.log"),
            Some((42, SegmentFile::Log))
        );
        assert_eq!(
            parse_file_name("00000000000000000042.index"),
            Some((42, SegmentFile::Index))
        );
        assert_eq!(parse_file_name("42.log"), None);
        assert_eq!(parse_file_name("99999999999999999999.log"), None);
        assert_eq!(parse_file_name("0000000000000000004x.log"), None);
        assert_eq!(parse_file_name("00000000000000000042.log.tmp"), None);
    }
}
