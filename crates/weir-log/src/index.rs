//! The sparse offset index of a segment: `(relative offset u32, file position u32)` pairs,
//! little-endian, one every `index_interval_bytes` of appended data, each pointing at the start
//! of a batch. It only makes seeks cheap; the log file stays the source of truth, so an index
//! that is missing or fails validation is rebuilt from the log (see `recovery.rs`).

/// Bytes per entry on disk.
pub(crate) const ENTRY_LEN: usize = 8;

/// One index entry: the batch starting at `pos` has base offset `segment base + rel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    pub rel: u32,
    pub pos: u32,
}

impl IndexEntry {
    pub fn to_bytes(self) -> [u8; ENTRY_LEN] {
        let mut out = [0u8; ENTRY_LEN];
        out[..4].copy_from_slice(&self.rel.to_le_bytes());
        out[4..].copy_from_slice(&self.pos.to_le_bytes());
        out
    }
}

/// Serializes entries for writing a whole index file.
pub(crate) fn encode(entries: &[IndexEntry]) -> Vec<u8> {
    entries.iter().flat_map(|e| e.to_bytes()).collect()
}

/// Parses an index file and checks it against the log file it indexes: whole entries, strictly
/// increasing offsets and positions, every position inside the log.
pub(crate) fn decode(bytes: &[u8], log_len: u64) -> Result<Vec<IndexEntry>, String> {
    if !bytes.len().is_multiple_of(ENTRY_LEN) {
        return Err(format!(
            "index is {} bytes, not a multiple of {ENTRY_LEN}",
            bytes.len()
        ));
    }
    let mut entries: Vec<IndexEntry> = Vec::with_capacity(bytes.len() / ENTRY_LEN);
    for chunk in bytes.chunks_exact(ENTRY_LEN) {
        let entry = IndexEntry {
            rel: u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]),
            pos: u32::from_le_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]),
        };
        if u64::from(entry.pos) >= log_len {
            return Err(format!(
                "entry points at byte {} of a {log_len}-byte log",
                entry.pos
            ));
        }
        if let Some(prev) = entries.last()
            && (entry.rel <= prev.rel || entry.pos <= prev.pos)
        {
            return Err(format!(
                "entries out of order: ({}, {}) after ({}, {})",
                entry.rel, entry.pos, prev.rel, prev.pos
            ));
        }
        entries.push(entry);
    }
    Ok(entries)
}

/// The file position of the last indexed batch starting at or before relative offset `rel`
/// (0, the segment start, when none is).
pub(crate) fn lookup(entries: &[IndexEntry], rel: u64) -> u64 {
    let n = entries.partition_point(|e| u64::from(e.rel) <= rel);
    n.checked_sub(1)
        .and_then(|i| entries.get(i))
        .map_or(0, |e| u64::from(e.pos))
}

/// Decides where entries go, identically on append and on rebuild, so a rebuilt index equals
/// the one written live.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IndexPolicy {
    interval: u64,
    last_pos: u64,
}

impl IndexPolicy {
    /// Starts with an implicit entry at position 0, `last_pos` being where indexing resumes.
    pub fn new(interval: u64, last_pos: u64) -> Self {
        IndexPolicy { interval, last_pos }
    }

    /// Called for each batch with its file position and offset relative to the segment base;
    /// returns the entry to record, if one is due and representable.
    pub fn observe(&mut self, pos: u64, rel: u64) -> Option<IndexEntry> {
        if pos.saturating_sub(self.last_pos) < self.interval {
            return None;
        }
        let entry = IndexEntry {
            rel: u32::try_from(rel).ok()?,
            pos: u32::try_from(pos).ok()?,
        };
        self.last_pos = pos;
        Some(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_lookup() {
        let entries = vec![
            IndexEntry { rel: 10, pos: 4096 },
            IndexEntry { rel: 25, pos: 8200 },
        ];
        let bytes = encode(&entries);
        assert_eq!(decode(&bytes, 10_000).unwrap(), entries);
        assert_eq!(lookup(&entries, 0), 0);
        assert_eq!(lookup(&entries, 9), 0);
        assert_eq!(lookup(&entries, 10), 4096);
        assert_eq!(lookup(&entries, 24), 4096);
        assert_eq!(lookup(&entries, 1000), 8200);
        assert_eq!(lookup(&[], 5), 0);
    }

    #[test]
    fn decode_rejects_bad_files() {
        assert!(decode(&[1, 2, 3], 100).is_err());
        let beyond = encode(&[IndexEntry { rel: 1, pos: 500 }]);
        assert!(decode(&beyond, 500).is_err());
        let unordered = encode(&[
            IndexEntry { rel: 5, pos: 50 },
            IndexEntry { rel: 4, pos: 60 },
        ]);
        assert!(decode(&unordered, 100).is_err());
    }

    #[test]
    fn policy_spaces_entries() {
        let mut p = IndexPolicy::new(100, 0);
        assert_eq!(p.observe(0, 0), None);
        assert_eq!(p.observe(60, 3), None);
        assert_eq!(p.observe(120, 6), Some(IndexEntry { rel: 6, pos: 120 }));
        assert_eq!(p.observe(200, 9), None);
        assert_eq!(p.observe(220, 10), Some(IndexEntry { rel: 10, pos: 220 }));
    }
}
