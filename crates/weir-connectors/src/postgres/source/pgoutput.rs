//! A decoder of the `pgoutput` logical replication messages (protocol version 1), the bytes
//! that `pg_logical_slot_peek_binary_changes(..., 'proto_version', '1', ...)` returns one
//! message per row. Pure byte parsing, no IO; turning messages into weir records is
//! `cdc.rs`'s job.
//!
//! Layout (all integers big-endian, strings NUL-terminated), per PostgreSQL's "Logical
//! Replication Message Formats":
//!
//! ```text
//! B  final_lsn i64 | commit_ts i64 (µs since 2000-01-01) | xid i32
//! C  flags i8 | commit_lsn i64 | end_lsn i64 | commit_ts i64
//! R  relid i32 | namespace str | name str | replica_identity i8 | ncols i16
//!    × { flags i8 (1 = part of the key) | name str | type_oid i32 | typmod i32 }
//! I  relid i32 | 'N' tuple
//! U  relid i32 | ['K' tuple | 'O' tuple] | 'N' tuple
//! D  relid i32 | ('K' | 'O') tuple
//! T  nrels i32 | options i8 (1 cascade, 2 restart identity) | relid i32 × nrels
//! tuple: ncols i16 × { 'n' null | 'u' unchanged TOASTed value | 't' len i32 bytes }
//! ```
//!
//! Origin (`O`), Type (`Y`) and logical decoding messages (`M`) are recognised and skipped.

use std::fmt;

/// Why a message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One decoded `pgoutput` message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message<'a> {
    Begin {
        /// LSN of the transaction's commit record.
        final_lsn: u64,
        /// Commit time, µs since 2000-01-01 (PostgreSQL's epoch).
        commit_ts: i64,
        xid: u32,
    },
    Commit {
        flags: u8,
        commit_lsn: u64,
        /// End of the commit record: where a slot advanced past this transaction stands.
        end_lsn: u64,
        commit_ts: i64,
    },
    Relation(Relation),
    Insert {
        relid: u32,
        new: Vec<Datum<'a>>,
    },
    Update {
        relid: u32,
        /// The old key (`K`, replica identity default or index) or whole old row (`O`,
        /// replica identity full); absent when the key did not change under identity default.
        old: Option<(OldKind, Vec<Datum<'a>>)>,
        new: Vec<Datum<'a>>,
    },
    Delete {
        relid: u32,
        old: (OldKind, Vec<Datum<'a>>),
    },
    Truncate {
        relids: Vec<u32>,
        cascade: bool,
        restart_identity: bool,
    },
    /// Origin, Type and logical decoding messages: nothing weir records.
    Skipped(u8),
}

/// What an old tuple holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OldKind {
    /// Only the replica identity's key columns (the others are null).
    Key,
    /// The whole old row (`REPLICA IDENTITY FULL`).
    Full,
}

/// One column value of a tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datum<'a> {
    Null,
    /// A TOASTed value the change did not touch; PostgreSQL does not send it again.
    Unchanged,
    /// The value in PostgreSQL's text output format.
    Text(&'a str),
}

/// A table's shape, sent before the first change of the table in each decoding session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub id: u32,
    /// Schema name (empty for `pg_catalog`).
    pub namespace: String,
    pub name: String,
    /// `d` default, `n` nothing, `f` full, `i` index.
    pub replica_identity: u8,
    pub columns: Vec<RelColumn>,
}

/// A column of a [`Relation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelColumn {
    /// Part of the replica identity key.
    pub key: bool,
    pub name: String,
    pub type_oid: u32,
    pub type_mod: i32,
}

/// Decodes one message.
pub fn decode(data: &[u8]) -> Result<Message<'_>, DecodeError> {
    let mut r = Reader { data, pos: 0 };
    let tag = r.u8("message type")?;
    let msg = match tag {
        b'B' => Message::Begin {
            final_lsn: r.u64("begin final_lsn")?,
            commit_ts: r.i64("begin timestamp")?,
            xid: r.u32("begin xid")?,
        },
        b'C' => Message::Commit {
            flags: r.u8("commit flags")?,
            commit_lsn: r.u64("commit lsn")?,
            end_lsn: r.u64("commit end_lsn")?,
            commit_ts: r.i64("commit timestamp")?,
        },
        b'R' => {
            let id = r.u32("relation id")?;
            let namespace = r.string("relation namespace")?.to_owned();
            let name = r.string("relation name")?.to_owned();
            let replica_identity = r.u8("relation replica identity")?;
            let n = r.u16("relation column count")?;
            let mut columns = Vec::with_capacity(n as usize);
            for _ in 0..n {
                let flags = r.u8("column flags")?;
                columns.push(RelColumn {
                    key: flags & 1 == 1,
                    name: r.string("column name")?.to_owned(),
                    type_oid: r.u32("column type")?,
                    type_mod: r.u32("column type modifier")? as i32,
                });
            }
            Message::Relation(Relation {
                id,
                namespace,
                name,
                replica_identity,
                columns,
            })
        }
        b'I' => {
            let relid = r.u32("insert relation id")?;
            r.expect(b'N', "insert new tuple")?;
            Message::Insert {
                relid,
                new: r.tuple()?,
            }
        }
        b'U' => {
            let relid = r.u32("update relation id")?;
            let old = match r.u8("update tuple kind")? {
                b'N' => None,
                k @ (b'K' | b'O') => {
                    let old = r.tuple()?;
                    r.expect(b'N', "update new tuple")?;
                    Some((old_kind(k), old))
                }
                other => {
                    return Err(r.bad(format!(
                        "update: expected tuple kind `N`, `K` or `O`, got byte {other:#04x}"
                    )));
                }
            };
            Message::Update {
                relid,
                old,
                new: r.tuple()?,
            }
        }
        b'D' => {
            let relid = r.u32("delete relation id")?;
            let kind = match r.u8("delete tuple kind")? {
                k @ (b'K' | b'O') => old_kind(k),
                other => {
                    return Err(r.bad(format!(
                        "delete: expected tuple kind `K` or `O`, got byte {other:#04x}"
                    )));
                }
            };
            Message::Delete {
                relid,
                old: (kind, r.tuple()?),
            }
        }
        b'T' => {
            let n = r.u32("truncate relation count")?;
            let options = r.u8("truncate options")?;
            // Each relid takes 4 bytes; refuse a count the message cannot hold before
            // allocating for it.
            if n as usize > r.remaining() / 4 {
                return Err(r.bad(format!("truncate: {n} relations do not fit the message")));
            }
            let relids = (0..n)
                .map(|_| r.u32("truncate relation id"))
                .collect::<Result<Vec<_>, _>>()?;
            Message::Truncate {
                relids,
                cascade: options & 1 == 1,
                restart_identity: options & 2 == 2,
            }
        }
        b'O' | b'Y' | b'M' => return Ok(Message::Skipped(tag)),
        other => {
            return Err(r.bad(format!(
                "unknown message type {:?} (byte {other:#04x}); weir reads pgoutput protocol version 1",
                other as char
            )));
        }
    };
    if r.remaining() != 0 {
        return Err(r.bad(format!(
            "{} bytes left after a complete `{}` message",
            r.remaining(),
            tag as char
        )));
    }
    Ok(msg)
}

fn old_kind(k: u8) -> OldKind {
    if k == b'K' {
        OldKind::Key
    } else {
        OldKind::Full
    }
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    fn bad(&self, what: String) -> DecodeError {
        DecodeError(format!("pgoutput message at byte {}: {what}", self.pos))
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(self.bad(format!(
                "truncated: {what} needs {n} bytes, {} left",
                self.remaining()
            )));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self, what: &str) -> Result<u8, DecodeError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<u16, DecodeError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &str) -> Result<u32, DecodeError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self, what: &str) -> Result<u64, DecodeError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    fn i64(&mut self, what: &str) -> Result<i64, DecodeError> {
        self.u64(what).map(|v| v as i64)
    }

    fn expect(&mut self, byte: u8, what: &str) -> Result<(), DecodeError> {
        match self.u8(what)? {
            b if b == byte => Ok(()),
            b => Err(self.bad(format!(
                "{what}: expected `{}`, got byte {b:#04x}",
                byte as char
            ))),
        }
    }

    fn string(&mut self, what: &str) -> Result<&'a str, DecodeError> {
        let rest = &self.data[self.pos..];
        let Some(end) = rest.iter().position(|&b| b == 0) else {
            return Err(self.bad(format!("{what}: string without its terminating NUL")));
        };
        let s = std::str::from_utf8(&rest[..end])
            .map_err(|e| self.bad(format!("{what}: not UTF-8: {e}")))?;
        self.pos += end + 1;
        Ok(s)
    }

    fn tuple(&mut self) -> Result<Vec<Datum<'a>>, DecodeError> {
        let n = self.u16("tuple column count")?;
        // Every column takes at least one byte.
        if n as usize > self.remaining() {
            return Err(self.bad(format!("tuple of {n} columns does not fit the message")));
        }
        let mut out = Vec::with_capacity(n as usize);
        for i in 0..n {
            out.push(match self.u8("column kind")? {
                b'n' => Datum::Null,
                b'u' => Datum::Unchanged,
                b't' => {
                    let len = self.u32("column value length")? as usize;
                    let bytes = self.take(len, "column value")?;
                    Datum::Text(std::str::from_utf8(bytes).map_err(|e| {
                        self.bad(format!(
                            "column {i}: value is not UTF-8 ({e}); weir needs a UTF8 database"
                        ))
                    })?)
                }
                b'b' => {
                    return Err(self.bad(format!(
                        "column {i}: binary value; weir asks for text values (no `binary` option)"
                    )));
                }
                other => {
                    return Err(
                        self.bad(format!("column {i}: unknown value kind byte {other:#04x}"))
                    );
                }
            });
        }
        Ok(out)
    }
}

/// An LSN as PostgreSQL prints it (`16/B374D848`).
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn as u32)
}

/// Parses an LSN as PostgreSQL prints it.
pub fn parse_lsn(s: &str) -> Option<u64> {
    let (hi, lo) = s.split_once('/')?;
    let hi = u32::from_str_radix(hi, 16).ok()?;
    let lo = u32::from_str_radix(lo, 16).ok()?;
    Some((u64::from(hi) << 32) | u64::from(lo))
}

/// PostgreSQL's epoch (2000-01-01) in µs since the Unix epoch.
pub const PG_EPOCH_UNIX_MICROS: i64 = 946_684_800_000_000;

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds messages the way pgoutput writes them.
    #[derive(Default)]
    struct W(Vec<u8>);

    impl W {
        fn tag(mut self, t: u8) -> Self {
            self.0.push(t);
            self
        }
        fn u8(self, v: u8) -> Self {
            self.tag(v)
        }
        fn u16(mut self, v: u16) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn u32(mut self, v: u32) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn u64(mut self, v: u64) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn s(mut self, v: &str) -> Self {
            self.0.extend_from_slice(v.as_bytes());
            self.0.push(0);
            self
        }
        fn text(mut self, v: &str) -> Self {
            self.0.push(b't');
            self.0.extend_from_slice(&(v.len() as u32).to_be_bytes());
            self.0.extend_from_slice(v.as_bytes());
            self
        }
    }

    #[test]
    fn begin_and_commit() {
        let b = W::default()
            .tag(b'B')
            .u64(0x01D9_E2E8)
            .u64(827_000_000_000_000)
            .u32(729)
            .0;
        assert_eq!(
            decode(&b).unwrap(),
            Message::Begin {
                final_lsn: 0x01D9_E2E8,
                commit_ts: 827_000_000_000_000,
                xid: 729
            }
        );
        let c = W::default()
            .tag(b'C')
            .u8(0)
            .u64(0x1D9E2E8)
            .u64(0x1D9E318)
            .u64(5)
            .0;
        assert_eq!(
            decode(&c).unwrap(),
            Message::Commit {
                flags: 0,
                commit_lsn: 0x1D9E2E8,
                end_lsn: 0x1D9E318,
                commit_ts: 5
            }
        );
    }

    /// Bytes PostgreSQL 15 sent for `BEGIN` and the relation of
    /// `zz_probe(id int primary key, name text, ts timestamptz, n numeric(10,2))`.
    #[test]
    fn real_server_bytes() {
        let hex = |s: &str| -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        };
        let begin = hex("420000000001d9e2e8000303e570625bcf000002d9");
        assert!(matches!(
            decode(&begin).unwrap(),
            Message::Begin {
                final_lsn: 0x1D9E2E8,
                xid: 729,
                ..
            }
        ));
        let rel = hex(
            "52000040037075626c6963007a7a5f70726f6265006400040169640000000017ffffffff006e616d650000000019ffffffff00747300000004a0ffffffff006e00000006a4000a0006",
        );
        let Message::Relation(r) = decode(&rel).unwrap() else {
            panic!("not a relation")
        };
        assert_eq!(
            (r.id, r.namespace.as_str(), r.name.as_str()),
            (16387, "public", "zz_probe")
        );
        assert_eq!(r.replica_identity, b'd');
        let cols: Vec<(&str, bool, u32, i32)> = r
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.key, c.type_oid, c.type_mod))
            .collect();
        assert_eq!(
            cols,
            vec![
                ("id", true, 23, -1),
                ("name", false, 25, -1),
                ("ts", false, 1184, -1),
                ("n", false, 1700, 655_366)
            ]
        );
        let del = hex("44000040034b00047400000001326e6e6e");
        assert_eq!(
            decode(&del).unwrap(),
            Message::Delete {
                relid: 16387,
                old: (
                    OldKind::Key,
                    vec![Datum::Text("2"), Datum::Null, Datum::Null, Datum::Null]
                )
            }
        );
    }

    #[test]
    fn insert_update_delete_tuples() {
        let ins = W::default()
            .tag(b'I')
            .u32(7)
            .tag(b'N')
            .u16(3)
            .text("42")
            .tag(b'n')
            .text("héllo")
            .0;
        assert_eq!(
            decode(&ins).unwrap(),
            Message::Insert {
                relid: 7,
                new: vec![Datum::Text("42"), Datum::Null, Datum::Text("héllo")]
            }
        );
        let upd_plain = W::default()
            .tag(b'U')
            .u32(7)
            .tag(b'N')
            .u16(2)
            .text("1")
            .tag(b'u')
            .0;
        assert_eq!(
            decode(&upd_plain).unwrap(),
            Message::Update {
                relid: 7,
                old: None,
                new: vec![Datum::Text("1"), Datum::Unchanged]
            }
        );
        let upd_full = W::default()
            .tag(b'U')
            .u32(7)
            .tag(b'O')
            .u16(1)
            .text("a")
            .tag(b'N')
            .u16(1)
            .text("b")
            .0;
        assert_eq!(
            decode(&upd_full).unwrap(),
            Message::Update {
                relid: 7,
                old: Some((OldKind::Full, vec![Datum::Text("a")])),
                new: vec![Datum::Text("b")]
            }
        );
        let del = W::default().tag(b'D').u32(7).tag(b'O').u16(1).tag(b'n').0;
        assert_eq!(
            decode(&del).unwrap(),
            Message::Delete {
                relid: 7,
                old: (OldKind::Full, vec![Datum::Null])
            }
        );
        let empty_text = W::default().tag(b'I').u32(1).tag(b'N').u16(1).text("").0;
        assert_eq!(
            decode(&empty_text).unwrap(),
            Message::Insert {
                relid: 1,
                new: vec![Datum::Text("")]
            }
        );
    }

    #[test]
    fn truncate_and_skipped_messages() {
        let t = W::default().tag(b'T').u32(2).u8(3).u32(10).u32(11).0;
        assert_eq!(
            decode(&t).unwrap(),
            Message::Truncate {
                relids: vec![10, 11],
                cascade: true,
                restart_identity: true
            }
        );
        let origin = W::default().tag(b'O').u64(1).s("node").0;
        assert_eq!(decode(&origin).unwrap(), Message::Skipped(b'O'));
        let ty = W::default().tag(b'Y').u32(1).s("public").s("mood").0;
        assert_eq!(decode(&ty).unwrap(), Message::Skipped(b'Y'));
    }

    #[test]
    fn broken_messages_are_errors_not_panics() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![], "truncated"),
            (vec![b'Z'], "unknown message type"),
            (W::default().tag(b'B').u64(1).0, "truncated"),
            (W::default().tag(b'I').u32(1).tag(b'X').0, "expected `N`"),
            (
                W::default()
                    .tag(b'I')
                    .u32(1)
                    .tag(b'N')
                    .u16(1)
                    .tag(b't')
                    .u32(99)
                    .0,
                "column value needs 99 bytes",
            ),
            (
                W::default().tag(b'I').u32(1).tag(b'N').u16(60000).0,
                "does not fit",
            ),
            (
                W::default().tag(b'I').u32(1).tag(b'N').u16(1).tag(b'q').0,
                "unknown value kind",
            ),
            (
                W::default().tag(b'I').u32(1).tag(b'N').u16(1).tag(b'b').0,
                "binary value",
            ),
            (
                {
                    let mut w = W::default()
                        .tag(b'I')
                        .u32(1)
                        .tag(b'N')
                        .u16(1)
                        .tag(b't')
                        .u32(2);
                    w.0.extend_from_slice(&[0xff, 0xfe]);
                    w.0
                },
                "not UTF-8",
            ),
            (
                W::default().tag(b'R').u32(1).0,
                "without its terminating NUL",
            ),
            (
                W::default().tag(b'D').u32(1).tag(b'N').0,
                "expected tuple kind",
            ),
            (W::default().tag(b'T').u32(u32::MAX).u8(0).0, "do not fit"),
            (
                W::default().tag(b'B').u64(1).u64(2).u32(3).u8(9).0,
                "bytes left",
            ),
        ];
        for (bytes, want) in cases {
            let e = decode(&bytes).unwrap_err();
            assert!(e.0.contains(want), "{bytes:?}: `{e}` lacks `{want}`");
        }
    }

    #[test]
    fn lsn_text_round_trips() {
        assert_eq!(format_lsn(0x1_6B37_4800), "1/6B374800");
        assert_eq!(format_lsn(0x16B3748), "0/16B3748");
        assert_eq!(parse_lsn("0/16B3748"), Some(0x16B3748));
        assert_eq!(parse_lsn("1/6B374800"), Some(0x1_6B37_4800));
        assert_eq!(parse_lsn("16B3748"), None);
        assert_eq!(parse_lsn("x/1"), None);
    }
}
