//! The on-disk batch frame: encoding records into frames on append, and parsing and validating
//! frames on read and recovery. Pure byte manipulation, no IO (reading frames from a file is
//! `segment.rs`'s job).
//!
//! Layout, little-endian:
//!
//! ```text
//! len u32 (bytes after this field) | crc32c u32 (over everything after this field)
//! base_offset u64 | count u32 | first_ts i64 | max_ts i64
//! count × { ts_delta varint(zigzag, vs first_ts) | key_len varint (0 = none, else len + 1)
//!           | key | value_len varint | value }
//! ```

use crc32c::{crc32c, crc32c_combine};

use crate::record::Record;

/// Bytes of the fixed header, `len` field included.
pub(crate) const HEADER_LEN: usize = 36;
/// Smallest legal value of the `len` field: the header after it.
const MIN_LEN_FIELD: u32 = (HEADER_LEN - 4) as u32;
/// Appends are split into frames of about this size, so a reader never needs a huge buffer.
pub(crate) const TARGET_BATCH_BYTES: usize = 8 * 1024 * 1024;
/// Largest key plus value of a single record.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024 * 1024;
/// Worst-case varint bytes per record (three 10-byte varints).
const RECORD_OVERHEAD: usize = 30;

/// A frame built outside the partition's write lock; only the base offset and the CRC are
/// filled in under the lock, by [`EncodedBatch::seal`].
pub(crate) struct EncodedBatch {
    pub frame: Vec<u8>,
    body_crc: u32,
    pub count: u32,
    pub max_ts: i64,
}

/// Why an append cannot be encoded.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum EncodeError {
    RecordTooLarge { index: usize, size: usize },
}

impl EncodedBatch {
    /// Stamps the base offset and computes the CRC, reusing the body CRC computed at encode time
    /// so the write lock covers only 28 bytes of hashing.
    pub fn seal(&mut self, base_offset: u64) {
        self.frame[8..16].copy_from_slice(&base_offset.to_le_bytes());
        let head = crc32c(&self.frame[8..HEADER_LEN]);
        let crc = crc32c_combine(head, self.body_crc, self.frame.len() - HEADER_LEN);
        self.frame[4..8].copy_from_slice(&crc.to_le_bytes());
    }
}

/// Encodes `records` (non-empty, at most `u32::MAX`) into one or more frames of about
/// [`TARGET_BATCH_BYTES`] each, in order.
pub(crate) fn encode(records: &[Record<'_>]) -> Result<Vec<EncodedBatch>, EncodeError> {
    let mut batches = Vec::new();
    let mut start = 0;
    let mut bytes = HEADER_LEN;
    for (index, record) in records.iter().enumerate() {
        let size = record.key.map_or(0, <[u8]>::len) + record.value.len();
        if size > MAX_RECORD_BYTES {
            return Err(EncodeError::RecordTooLarge { index, size });
        }
        let worst = size + RECORD_OVERHEAD;
        if index > start && bytes + worst > TARGET_BATCH_BYTES {
            batches.push(encode_one(&records[start..index], bytes));
            start = index;
            bytes = HEADER_LEN;
        }
        bytes += worst;
    }
    if start < records.len() {
        batches.push(encode_one(&records[start..], bytes));
    }
    Ok(batches)
}

/// Encodes one non-empty run of records; `capacity` is an upper bound of the frame size, which
/// is below `MAX_RECORD_BYTES + TARGET_BATCH_BYTES` and so fits the u32 `len` field.
fn encode_one(records: &[Record<'_>], capacity: usize) -> EncodedBatch {
    let first_ts = records.first().map_or(0, |r| r.timestamp_ms);
    let mut frame = Vec::with_capacity(capacity);
    frame.resize(HEADER_LEN, 0);
    let mut max_ts = i64::MIN;
    for r in records {
        max_ts = max_ts.max(r.timestamp_ms);
        // Wrapping keeps extreme timestamps encodable; decoding wraps back exactly.
        put_varint(&mut frame, zigzag(r.timestamp_ms.wrapping_sub(first_ts)));
        match r.key {
            None => put_varint(&mut frame, 0),
            Some(k) => {
                put_varint(&mut frame, k.len() as u64 + 1);
                frame.extend_from_slice(k);
            }
        }
        put_varint(&mut frame, r.value.len() as u64);
        frame.extend_from_slice(r.value);
    }
    // Both casts are lossless: the frame is bounded as documented above, and callers split
    // appends so no run exceeds u32::MAX records.
    let len = (frame.len() - 4) as u32;
    let count = records.len() as u32;
    frame[0..4].copy_from_slice(&len.to_le_bytes());
    frame[16..20].copy_from_slice(&count.to_le_bytes());
    frame[20..28].copy_from_slice(&first_ts.to_le_bytes());
    frame[28..36].copy_from_slice(&max_ts.to_le_bytes());
    let body_crc = crc32c(&frame[HEADER_LEN..]);
    EncodedBatch {
        frame,
        body_crc,
        count,
        max_ts,
    }
}

/// The fixed header of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchHeader {
    /// The `len` field: bytes after it.
    pub len: u32,
    pub crc: u32,
    pub base_offset: u64,
    pub count: u32,
    pub first_ts: i64,
    pub max_ts: i64,
}

impl BatchHeader {
    /// Reads the header from the first [`HEADER_LEN`] bytes; `None` if there are fewer.
    pub fn parse(bytes: &[u8]) -> Option<BatchHeader> {
        Some(BatchHeader {
            len: u32::from_le_bytes(take(bytes, 0)?),
            crc: u32::from_le_bytes(take(bytes, 4)?),
            base_offset: u64::from_le_bytes(take(bytes, 8)?),
            count: u32::from_le_bytes(take(bytes, 16)?),
            first_ts: i64::from_le_bytes(take(bytes, 20)?),
            max_ts: i64::from_le_bytes(take(bytes, 28)?),
        })
    }

    /// Whole frame size, `len` field included.
    pub fn frame_len(&self) -> u64 {
        u64::from(self.len) + 4
    }

    /// Offset after the last record; saturates, but [`BatchHeader::check`] rejects overflow.
    pub fn next_offset(&self) -> u64 {
        self.base_offset.saturating_add(u64::from(self.count))
    }

    /// Header sanity that does not need the body.
    pub fn check(&self) -> Result<(), String> {
        if self.len < MIN_LEN_FIELD {
            return Err(format!(
                "batch length field is {}, below the {MIN_LEN_FIELD}-byte header",
                self.len
            ));
        }
        if self.count == 0 {
            return Err("batch holds 0 records".into());
        }
        if self
            .base_offset
            .checked_add(u64::from(self.count))
            .is_none()
        {
            return Err(format!(
                "batch at offset {} with {} records overflows u64 offsets",
                self.base_offset, self.count
            ));
        }
        Ok(())
    }
}

/// Whether the CRC stored in `frame` (a whole frame) matches its content.
pub(crate) fn crc_matches(header: &BatchHeader, frame: &[u8]) -> bool {
    frame
        .get(8..)
        .is_some_and(|rest| crc32c(rest) == header.crc)
}

/// One record inside a frame, borrowed from the frame's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawRecord<'a> {
    pub offset: u64,
    pub timestamp_ms: i64,
    pub key: Option<&'a [u8]>,
    pub value: &'a [u8],
}

/// Iterates the records of a whole frame; yields an error (once) on malformed content.
pub(crate) struct RecordIter<'a> {
    body: &'a [u8],
    pos: usize,
    first_ts: i64,
    next_offset: u64,
    remaining: u32,
}

impl<'a> RecordIter<'a> {
    pub fn new(header: &BatchHeader, frame: &'a [u8]) -> Self {
        RecordIter {
            body: frame.get(HEADER_LEN..).unwrap_or_default(),
            pos: 0,
            first_ts: header.first_ts,
            next_offset: header.base_offset,
            remaining: header.count,
        }
    }

    fn next_record(&mut self) -> Result<RawRecord<'a>, String> {
        let offset = self.next_offset;
        let delta = self.varint("timestamp")?;
        let timestamp_ms = self.first_ts.wrapping_add(unzigzag(delta));
        let key = match self.varint("key length")? {
            0 => None,
            n => Some(self.bytes(n - 1, "key")?),
        };
        let value_len = self.varint("value length")?;
        let value = self.bytes(value_len, "value")?;
        Ok(RawRecord {
            offset,
            timestamp_ms,
            key,
            value,
        })
    }

    fn varint(&mut self, what: &str) -> Result<u64, String> {
        get_varint(self.body, &mut self.pos).ok_or_else(|| {
            format!(
                "bad {what} varint in record at offset {} (body byte {})",
                self.next_offset, self.pos
            )
        })
    }

    fn bytes(&mut self, len: u64, what: &str) -> Result<&'a [u8], String> {
        let end = usize::try_from(len)
            .ok()
            .and_then(|len| self.pos.checked_add(len))
            .filter(|&end| end <= self.body.len())
            .ok_or_else(|| {
                format!(
                    "{what} of {len} bytes in record at offset {} runs past the batch end",
                    self.next_offset
                )
            })?;
        let slice = &self.body[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    /// After the last record: errors if the frame holds bytes no record accounted for.
    pub fn finish(&self) -> Result<(), String> {
        if self.remaining == 0 && self.pos != self.body.len() {
            return Err(format!(
                "{} trailing bytes after the last record",
                self.body.len() - self.pos
            ));
        }
        Ok(())
    }
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<RawRecord<'a>, String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        match self.next_record() {
            Ok(record) => {
                self.remaining -= 1;
                self.next_offset = self.next_offset.saturating_add(1);
                Some(Ok(record))
            }
            Err(e) => {
                self.remaining = 0;
                Some(Err(e))
            }
        }
    }
}

/// Full structural validation of a frame whose header passed [`BatchHeader::check`]: every
/// record parses and they fill the frame exactly.
pub(crate) fn validate_records(header: &BatchHeader, frame: &[u8]) -> Result<(), String> {
    let mut iter = RecordIter::new(header, frame);
    for record in iter.by_ref() {
        record?;
    }
    iter.finish()
}

fn take<const N: usize>(bytes: &[u8], at: usize) -> Option<[u8; N]> {
    bytes.get(at..at + N)?.try_into().ok()
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*pos)?;
        *pos += 1;
        let bits = u64::from(byte & 0x7f);
        // The 10th byte may only carry the top bit of a u64.
        if shift == 63 && bits > 1 {
            return None;
        }
        value |= bits << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(frame: &[u8]) -> Vec<RawRecord<'_>> {
        let header = BatchHeader::parse(frame).unwrap();
        header.check().unwrap();
        assert!(crc_matches(&header, frame));
        assert_eq!(header.frame_len() as usize, frame.len());
        validate_records(&header, frame).unwrap();
        RecordIter::new(&header, frame)
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn varint_and_zigzag_round_trip() {
        for v in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut buf = Vec::new();
            put_varint(&mut buf, v);
            let mut pos = 0;
            assert_eq!(get_varint(&buf, &mut pos), Some(v));
            assert_eq!(pos, buf.len());
        }
        for v in [0, 1, -1, i64::MIN, i64::MAX, 12345, -98765] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
        // 11 continuation bytes and an overflowing 10th byte are rejected, not panics.
        assert_eq!(get_varint(&[0xff; 11], &mut 0), None);
        let mut over = vec![0xff; 9];
        over.push(0x02);
        assert_eq!(get_varint(&over, &mut 0), None);
        assert_eq!(get_varint(&[0x80], &mut 0), None);
    }

    #[test]
    fn frame_round_trip_with_keys_and_extreme_timestamps() {
        let records = [
            Record::with_key(b"k1", b"v1", 1_000),
            Record::new(b"", i64::MIN),
            Record::with_key(b"", b"empty key", i64::MAX),
            Record::new(b"plain", 999),
        ];
        let mut batches = encode(&records).unwrap();
        assert_eq!(batches.len(), 1);
        batches[0].seal(42);
        let got = decode(&batches[0].frame);
        assert_eq!(got.len(), 4);
        for (i, (g, r)) in got.iter().zip(&records).enumerate() {
            assert_eq!(g.offset, 42 + i as u64);
            assert_eq!(g.key, r.key);
            assert_eq!(g.value, r.value);
            assert_eq!(g.timestamp_ms, r.timestamp_ms);
        }
        let header = BatchHeader::parse(&batches[0].frame).unwrap();
        assert_eq!(header.max_ts, i64::MAX);
        assert_eq!(header.next_offset(), 46);
    }

    #[test]
    fn large_appends_split_into_bounded_frames() {
        let value = vec![7u8; 1024 * 1024];
        let records: Vec<_> = (0..20).map(|i| Record::new(&value, i)).collect();
        let batches = encode(&records).unwrap();
        assert!(batches.len() >= 3, "{}", batches.len());
        assert_eq!(batches.iter().map(|b| b.count).sum::<u32>(), 20);
        assert!(batches.iter().all(|b| b.frame.len() <= TARGET_BATCH_BYTES));
    }

    #[test]
    fn corruption_is_detected_not_panicking() {
        let records = [Record::new(b"hello", 5), Record::new(b"world", 6)];
        let mut batch = encode(&records).unwrap().pop().unwrap();
        batch.seal(0);
        let frame = batch.frame;
        for i in 0..frame.len() {
            let mut bad = frame.clone();
            bad[i] ^= 0x40;
            let Some(h) = BatchHeader::parse(&bad) else {
                continue;
            };
            let ok =
                h.check().is_ok() && h.frame_len() as usize == bad.len() && crc_matches(&h, &bad);
            assert!(!ok, "flip at byte {i} went unnoticed");
            // Parsing garbage records must not panic either.
            let _ = validate_records(&h, &bad);
        }
        assert!(BatchHeader::parse(&frame[..10]).is_none());
    }
}
