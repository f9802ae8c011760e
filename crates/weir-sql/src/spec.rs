//! The validated description of a streaming table that the operators run from. The
//! orchestrator turns `weir.toml` into these; nothing here reads files.

use crate::decode::FieldType;

/// What happens to an input row that fails an expectation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Count it and keep the row.
    Warn,
    /// Count it and drop the row.
    Drop,
    /// Move the row to `<table>_quarantine` with the expectation's name as `reason`.
    Quarantine,
    /// Stop the pipeline with an error naming the expectation and the row.
    Fail,
}

/// A SQL predicate over the table's input rows. A row passes when the predicate is TRUE;
/// FALSE and NULL both fail.
#[derive(Debug, Clone)]
pub struct ExpectationSpec {
    pub name: String,
    pub check: String,
    pub action: Action,
}

/// Keep the first row of each key; a key is remembered for `within_ms` of event time after
/// the batch that first saw it.
#[derive(Debug, Clone)]
pub struct DedupSpec {
    pub key: String,
    pub within_ms: i64,
}

/// Tumbling event-time windows: the input column `column`, windows of `size_ms`, and a
/// watermark of max event time seen − `lateness_ms`.
#[derive(Debug, Clone)]
pub struct WindowSpec {
    pub column: String,
    pub size_ms: i64,
    pub lateness_ms: i64,
}

/// Where a table's rows come from.
#[derive(Debug, Clone)]
pub enum InputSpec {
    /// Raw records of a source topic, decoded as JSON objects with these fields.
    Raw { fields: Vec<(String, FieldType)> },
    /// The rows another streaming table produced in the same micro-batch.
    Table,
}

/// One streaming table.
#[derive(Debug, Clone)]
pub struct TableSpec {
    pub name: String,
    /// Name of the source or table it reads; the SQL refers to its input by this name.
    pub from: String,
    pub input: InputSpec,
    pub sql: String,
    pub expectations: Vec<ExpectationSpec>,
    pub dedup: Option<DedupSpec>,
    /// Event-time column used to age dedup keys.
    pub event_time: Option<String>,
    pub window: Option<WindowSpec>,
}

impl TableSpec {
    pub fn quarantine_table(&self) -> String {
        format!("{}_quarantine", self.name)
    }

    pub fn late_table(&self) -> String {
        format!("{}_late", self.name)
    }
}
