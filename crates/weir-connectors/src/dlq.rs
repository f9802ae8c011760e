//! The dead-letter topic: records a source could not store as records, with the reason.
//!
//! Each dead letter is one JSON object in the `_dlq` topic (one partition, so a dead letter's
//! offset there is its id):
//!
//! ```json
//! {"source": "events", "reason": "not_utf8", "detail": "line 3 is not UTF-8: ...",
//!  "raw": "7b22ff", "raw_encoding": "hex", "offset": "orders.jsonl#3"}
//! ```
//!
//! `raw` holds the original bytes as text when they are UTF-8 (`raw_encoding = "utf8"`) and as
//! lowercase hex otherwise (`"hex"`), so nothing of the input is lost. `offset` (optional) is
//! the source's own position of the record: a file name and line, an LSN, a Kafka offset.
//! `replay_of` (optional) is set on a dead letter written by a replay that the source refused
//! again: the id of the dead letter that was replayed.
//!
//! Listing and replaying dead letters (`weir dlq`, `/v1/dlq`) is in [`replay`].

use serde::{Deserialize, Serialize};

pub mod replay;

/// Name of the log topic holding dead letters of every source.
pub const DLQ_TOPIC: &str = "_dlq";

/// Why a source rejected an input line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    NotUtf8,
    LineTooLarge,
    /// A record of a JSON source (an element of a REST response's records) that is not an
    /// object.
    NotAnObject,
    /// A record that fails the schema its source declares (`schema = "<subject>"`), or
    /// arrives while that subject has no schema.
    SchemaMismatch,
}

impl RejectReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::NotUtf8 => "not_utf8",
            RejectReason::LineTooLarge => "line_too_large",
            RejectReason::NotAnObject => "not_an_object",
            RejectReason::SchemaMismatch => "schema_mismatch",
        }
    }
}

/// One dead letter as stored in the DLQ topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The source that refused the record.
    pub source: String,
    /// Short machine-readable reason (`not_utf8`, `line_too_large`, ...).
    pub reason: String,
    /// What exactly was wrong, for people.
    #[serde(default)]
    pub detail: String,
    /// The payload: text, or lowercase hex (see `raw_encoding`).
    pub raw: String,
    /// `utf8` or `hex`.
    pub raw_encoding: String,
    /// The source's own position of the record, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<String>,
    /// The dead letter whose replay was refused again, producing this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_of: Option<u64>,
}

impl DeadLetter {
    /// A dead letter of `raw`, text when it is UTF-8, else hex.
    pub fn new(source: &str, reason: &str, detail: String, raw: &[u8]) -> Self {
        let (raw, raw_encoding) = match std::str::from_utf8(raw) {
            Ok(s) => (s.to_owned(), "utf8"),
            Err(_) => (to_hex(raw), "hex"),
        };
        DeadLetter {
            source: source.to_owned(),
            reason: reason.to_owned(),
            detail,
            raw,
            raw_encoding: raw_encoding.to_owned(),
            offset: None,
            replay_of: None,
        }
    }

    /// The JSON value stored in the DLQ topic.
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing a struct of strings and integers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses a value of the DLQ topic; the error says what is wrong with it.
    pub fn decode(value: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(value).map_err(|e| format!("not a dead letter: {e}"))
    }

    /// The original bytes of the payload.
    pub fn raw_bytes(&self) -> Result<Vec<u8>, String> {
        match self.raw_encoding.as_str() {
            "utf8" => Ok(self.raw.as_bytes().to_vec()),
            "hex" => from_hex(&self.raw),
            other => Err(format!(
                "unknown raw_encoding `{other}` (expected utf8 or hex)"
            )),
        }
    }

    /// Size of the original payload in bytes.
    pub fn raw_len(&self) -> usize {
        if self.raw_encoding == "hex" {
            self.raw.len() / 2
        } else {
            self.raw.len()
        }
    }
}

/// Encodes one dead letter as the JSON value stored in the DLQ topic.
pub fn encode(source: &str, reason: RejectReason, detail: String, raw: &[u8]) -> Vec<u8> {
    encode_at(source, reason, detail, raw, None)
}

/// [`encode`] with the source's own position of the record (a file and line, an LSN, a
/// broker offset), shown by `weir dlq` to find the record upstream.
pub fn encode_at(
    source: &str,
    reason: RejectReason,
    detail: String,
    raw: &[u8],
    offset: Option<&str>,
) -> Vec<u8> {
    let mut letter = DeadLetter::new(source, reason.as_str(), detail, raw);
    letter.offset = offset.map(str::to_owned);
    letter.to_json()
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

fn from_hex(s: &str) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) {
        return Err(format!("hex payload has an odd length ({})", s.len()));
    }
    let digit = |c: u8, at: usize| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(format!(
            "hex payload has `{}` at position {at}",
            char::from(c)
        )),
    };
    s.as_bytes()
        .chunks(2)
        .enumerate()
        .map(|(i, p)| Ok(digit(p[0], 2 * i)? << 4 | digit(p[1], 2 * i + 1)?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letters_round_trip_text_and_hex_payloads() {
        let text = encode(
            "events",
            RejectReason::LineTooLarge,
            "big".into(),
            b"{\"a\":1}",
        );
        let d = DeadLetter::decode(&text).unwrap();
        assert_eq!(d.raw_encoding, "utf8");
        assert_eq!(d.raw_bytes().unwrap(), b"{\"a\":1}");
        assert_eq!(d.offset, None);
        // Old readers see the same five keys; `offset` appears only when known.
        let v: serde_json::Value = serde_json::from_slice(&text).unwrap();
        let mut keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["detail", "raw", "raw_encoding", "reason", "source"]);

        let bin = encode_at(
            "events",
            RejectReason::NotUtf8,
            "bad".into(),
            b"\x00\xff{",
            Some("a.jsonl#7"),
        );
        let d = DeadLetter::decode(&bin).unwrap();
        assert_eq!(d.raw, "00ff7b");
        assert_eq!(d.raw_encoding, "hex");
        assert_eq!(d.raw_len(), 3);
        assert_eq!(d.raw_bytes().unwrap(), b"\x00\xff{");
        assert_eq!(d.offset.as_deref(), Some("a.jsonl#7"));
    }

    #[test]
    fn damaged_payloads_are_reported_not_guessed() {
        let mut d = DeadLetter::new("s", "not_utf8", String::new(), b"\xff");
        d.raw = "f".into();
        assert!(d.raw_bytes().unwrap_err().contains("odd length"));
        d.raw = "zz".into();
        assert!(d.raw_bytes().unwrap_err().contains("`z` at position 0"));
        d.raw_encoding = "base64".into();
        assert!(d.raw_bytes().unwrap_err().contains("base64"));
        assert!(DeadLetter::decode(b"[1]").is_err());
    }
}
