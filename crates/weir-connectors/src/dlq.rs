//! The dead-letter topic: records a source could not store as records, with the reason.
//!
//! Each dead letter is one JSON object: `{"source", "reason", "raw", "raw_encoding"}` where
//! `raw` holds the original bytes as text when they are UTF-8 (`raw_encoding = "utf8"`) and as
//! lowercase hex otherwise (`"hex"`), so nothing of the input is lost.

use serde::Serialize;

/// Name of the log topic holding dead letters of every source.
pub const DLQ_TOPIC: &str = "_dlq";

/// Why a source rejected an input line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    NotUtf8,
    LineTooLarge,
}

impl RejectReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::NotUtf8 => "not_utf8",
            RejectReason::LineTooLarge => "line_too_large",
        }
    }
}

#[derive(Serialize)]
struct DeadLetter<'a> {
    source: &'a str,
    reason: &'static str,
    detail: String,
    raw: String,
    raw_encoding: &'static str,
}

/// Encodes one dead letter as the JSON value stored in the DLQ topic.
pub fn encode(source: &str, reason: RejectReason, detail: String, raw: &[u8]) -> Vec<u8> {
    let (raw, raw_encoding) = match std::str::from_utf8(raw) {
        Ok(s) => (s.to_owned(), "utf8"),
        Err(_) => (raw.iter().map(|b| format!("{b:02x}")).collect(), "hex"),
    };
    let letter = DeadLetter {
        source,
        reason: reason.as_str(),
        detail,
        raw,
        raw_encoding,
    };
    // Serializing a struct of strings cannot fail.
    serde_json::to_vec(&letter).unwrap_or_default()
}
