//! The schema registry: subjects holding versions of JSON Schema or Avro schemas, global schema
//! ids, compatibility rules between versions, record validation, and the durable store under
//! the data dir. The HTTP API (Confluent Schema Registry's REST calls) lives in
//! `weir_server::registry`; the runtime hands a [`SchemaValidator`] to every source that
//! declares `schema = "<subject>"`.
//!
//! - [`avro`]: Avro schemas (parsed from their JSON form), Avro schema resolution as the
//!   compatibility rule, and validation of records sent as JSON.
//! - [`json`]: the supported subset of JSON Schema, subset checks between two schemas as the
//!   compatibility rule, and validation. Unsupported keywords are refused, never ignored.
//! - [`store`]: [`SchemaRegistry`], the subjects, versions, ids and compatibility settings,
//!   kept in one JSON file replaced atomically on every change.
//! - [`validator`]: [`SchemaValidator`], which checks a source's records against the latest
//!   version of its subject.
//!
//! Compatibility is defined as in Confluent Schema Registry: BACKWARD means a reader using the
//! new schema can read data written with the earlier one; FORWARD means a reader using the
//! earlier schema can read data written with the new one; FULL is both; the `_TRANSITIVE`
//! variants check against every earlier version instead of only the latest.

pub mod avro;
pub mod json;
pub mod store;
pub mod validator;

use std::fmt;

use serde::{Deserialize, Serialize};
use weir_core::ErrorKind;

pub use store::{SchemaRegistry, SubjectVersion, VersionRef};
pub use validator::SchemaValidator;

/// The language of a schema (`schemaType` in the REST API; absent means AVRO).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SchemaType {
    #[serde(rename = "AVRO")]
    Avro,
    #[serde(rename = "JSON")]
    Json,
}

impl SchemaType {
    pub fn as_str(self) -> &'static str {
        match self {
            SchemaType::Avro => "AVRO",
            SchemaType::Json => "JSON",
        }
    }

    /// Parses `AVRO` or `JSON` (any case).
    pub fn parse(s: &str) -> Result<Self, RegistryError> {
        match s.to_ascii_uppercase().as_str() {
            "AVRO" => Ok(SchemaType::Avro),
            "JSON" => Ok(SchemaType::Json),
            _ => Err(RegistryError::InvalidSchema {
                reason: format!(
                    "schemaType `{s}` is not supported; expected AVRO or JSON (PROTOBUF is not supported)"
                ),
            }),
        }
    }
}

/// A subject's compatibility rule (`compatibility` / `compatibilityLevel` in the REST API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Compatibility {
    None,
    #[default]
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

impl Compatibility {
    pub const ALL: [Compatibility; 7] = [
        Compatibility::None,
        Compatibility::Backward,
        Compatibility::BackwardTransitive,
        Compatibility::Forward,
        Compatibility::ForwardTransitive,
        Compatibility::Full,
        Compatibility::FullTransitive,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Compatibility::None => "NONE",
            Compatibility::Backward => "BACKWARD",
            Compatibility::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Compatibility::Forward => "FORWARD",
            Compatibility::ForwardTransitive => "FORWARD_TRANSITIVE",
            Compatibility::Full => "FULL",
            Compatibility::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    /// Parses a level name (any case).
    pub fn parse(s: &str) -> Result<Self, RegistryError> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| RegistryError::InvalidCompatibility {
                level: s.to_owned(),
            })
    }

    /// Checked against every earlier version, not only the latest.
    pub fn transitive(self) -> bool {
        matches!(
            self,
            Compatibility::BackwardTransitive
                | Compatibility::ForwardTransitive
                | Compatibility::FullTransitive
        )
    }

    /// The directions to check.
    fn directions(self) -> &'static [Direction] {
        match self {
            Compatibility::None => &[],
            Compatibility::Backward | Compatibility::BackwardTransitive => &[Direction::Backward],
            Compatibility::Forward | Compatibility::ForwardTransitive => &[Direction::Forward],
            Compatibility::Full | Compatibility::FullTransitive => {
                &[Direction::Backward, Direction::Forward]
            }
        }
    }
}

impl fmt::Display for Compatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which schema reads which: BACKWARD has the new schema read the old one's data, FORWARD the
/// old schema read the new one's. Messages name the old and the new schema, whichever reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Backward,
    Forward,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Backward => "BACKWARD",
            Direction::Forward => "FORWARD",
        }
    }

    /// `(the writer's name, the reader's name)` in messages.
    pub(crate) fn sides(self) -> (&'static str, &'static str) {
        match self {
            Direction::Backward => ("the old schema", "the new schema"),
            Direction::Forward => ("the new schema", "the old schema"),
        }
    }

    /// Orders a (writer, reader) pair as (old, new).
    pub(crate) fn old_new<T>(self, writer: T, reader: T) -> (T, T) {
        match self {
            Direction::Backward => (writer, reader),
            Direction::Forward => (reader, writer),
        }
    }
}

/// A parsed schema of either language.
#[derive(Debug, Clone)]
pub enum Schema {
    Avro(avro::AvroSchema),
    Json(json::JsonSchema),
}

/// Where a value broke its schema and why: `$.age: expected int, got "x"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// A JSONPath-like location (`$`, `$.address.zip`, `$.tags[2]`).
    pub path: String,
    pub reason: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

impl Schema {
    /// Parses schema text of `kind`; the error says what is wrong and where.
    pub fn parse(kind: SchemaType, text: &str) -> Result<Schema, RegistryError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| RegistryError::InvalidSchema {
                reason: format!("the schema is not JSON: {e}"),
            })?;
        let parsed = match kind {
            SchemaType::Avro => avro::AvroSchema::parse(&value).map(Schema::Avro),
            SchemaType::Json => json::JsonSchema::parse(&value).map(Schema::Json),
        };
        parsed.map_err(|reason| RegistryError::InvalidSchema { reason })
    }

    pub fn kind(&self) -> SchemaType {
        match self {
            Schema::Avro(_) => SchemaType::Avro,
            Schema::Json(_) => SchemaType::Json,
        }
    }

    /// Checks one record (a JSON value) against the schema.
    pub fn validate(&self, value: &serde_json::Value) -> Result<(), Violation> {
        match self {
            Schema::Avro(s) => s.validate(value),
            Schema::Json(s) => s.validate(value),
        }
    }

    /// Why `self` (the reader) cannot read everything `writer` accepts; empty when it can.
    pub fn read_problems(&self, writer: &Schema, dir: Direction) -> Vec<String> {
        match (self, writer) {
            (Schema::Avro(r), Schema::Avro(w)) => avro::read_problems(r, w, dir),
            (Schema::Json(r), Schema::Json(w)) => json::read_problems(r, w, dir),
            _ => {
                let (old, new) = dir.old_new(writer.kind(), self.kind());
                vec![format!(
                    "schemaType changed from {} to {}",
                    old.as_str(),
                    new.as_str()
                )]
            }
        }
    }
}

/// Why `new` breaks `mode` against `earlier` (the earlier versions, oldest first, each with
/// its version number); empty when compatible. Only the latest is checked unless the mode is
/// transitive. Each message ends with the direction that failed, e.g.
/// "field `age`: added as required without a default (BACKWARD)".
pub fn compatibility_problems(
    mode: Compatibility,
    new: &Schema,
    earlier: &[(u32, &Schema)],
) -> Vec<String> {
    let against: &[(u32, &Schema)] = if mode.transitive() {
        earlier
    } else {
        match earlier.split_last() {
            Some((last, _)) => std::slice::from_ref(last),
            None => &[],
        }
    };
    let mut out = Vec::new();
    for (version, old) in against.iter().rev() {
        for dir in mode.directions() {
            let problems = match dir {
                Direction::Backward => new.read_problems(old, *dir),
                Direction::Forward => old.read_problems(new, *dir),
            };
            for p in problems {
                if against.len() > 1 {
                    out.push(format!("{p} ({}, against version {version})", dir.as_str()));
                } else {
                    out.push(format!("{p} ({})", dir.as_str()));
                }
            }
        }
    }
    out
}

/// What the registry refuses, with the error code of Confluent Schema Registry's API. Kept
/// apart from `ConnectorError` because each variant is an answer of the registry's HTTP API
/// with its own code, which clients act on.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("subject `{subject}` not found")]
    SubjectNotFound { subject: String },
    #[error("version {version} of subject `{subject}` not found")]
    VersionNotFound { subject: String, version: String },
    #[error("{what} not found")]
    SchemaNotFound { what: String },
    #[error(
        "Schema being registered is incompatible with an earlier schema for subject \"{subject}\": {}",
        problems.join("; ")
    )]
    Incompatible {
        subject: String,
        problems: Vec<String>,
    },
    #[error("invalid schema: {reason}")]
    InvalidSchema { reason: String },
    #[error(
        "invalid version `{version}`: expected a version number from 1 to 2147483647 or `latest`"
    )]
    InvalidVersion { version: String },
    #[error(
        "invalid compatibility level `{level}`: expected one of NONE, BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE"
    )]
    InvalidCompatibility { level: String },
    #[error(
        "subject `{subject}` was not soft-deleted first; delete it without `permanent=true` before deleting it permanently"
    )]
    SubjectNotSoftDeleted { subject: String },
    #[error(
        "version {version} of subject `{subject}` was not soft-deleted first; delete it without `permanent=true` before deleting it permanently"
    )]
    VersionNotSoftDeleted { subject: String, version: u32 },
    #[error(
        "subject `{subject}` has no compatibility level of its own; add `defaultToGlobal=true` to get the global one"
    )]
    SubjectConfigNotFound { subject: String },
    #[error("bad request: {reason}")]
    BadRequest { reason: String },
    #[error("schema registry store `{path}`: {error}")]
    Io {
        path: String,
        #[source]
        error: std::io::Error,
    },
    #[error("schema registry store `{path}` is damaged: {reason}")]
    Corrupt { path: String, reason: String },
}

impl RegistryError {
    /// Confluent's `error_code`.
    pub fn error_code(&self) -> u32 {
        match self {
            RegistryError::SubjectNotFound { .. } => 40401,
            RegistryError::VersionNotFound { .. } => 40402,
            RegistryError::SchemaNotFound { .. } => 40403,
            RegistryError::SubjectNotSoftDeleted { .. } => 40405,
            RegistryError::VersionNotSoftDeleted { .. } => 40407,
            RegistryError::SubjectConfigNotFound { .. } => 40408,
            RegistryError::Incompatible { .. } => 409,
            RegistryError::InvalidSchema { .. } => 42201,
            RegistryError::InvalidVersion { .. } => 42202,
            RegistryError::InvalidCompatibility { .. } => 42203,
            RegistryError::BadRequest { .. } => 400,
            RegistryError::Io { .. } | RegistryError::Corrupt { .. } => 50001,
        }
    }

    /// The HTTP status: the first three digits of the error code.
    pub fn http_status(&self) -> u16 {
        let code = self.error_code();
        if code >= 10_000 {
            (code / 100) as u16
        } else {
            code as u16
        }
    }

    /// Whose fault the error is; see [`ErrorKind`].
    pub fn kind(&self) -> ErrorKind {
        match self {
            RegistryError::Io { .. } => ErrorKind::External,
            RegistryError::Corrupt { .. } => ErrorKind::Internal,
            _ => ErrorKind::User,
        }
    }
}

/// A short rendering of a JSON value for messages (at most about 60 characters).
pub(crate) fn show(v: &serde_json::Value) -> String {
    let s = v.to_string();
    if s.chars().count() <= 60 {
        s
    } else {
        let cut: String = s.chars().take(57).collect();
        format!("{cut}...")
    }
}

/// `path.key`, or `path["key"]` when the key is not a plain identifier.
pub(crate) fn child_path(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !key.starts_with(|c: char| c.is_ascii_digit());
    if plain {
        format!("{path}.{key}")
    } else {
        format!("{path}[{}]", serde_json::Value::from(key))
    }
}

/// A key-sorted compact rendering of JSON text, so that two texts of the same schema that
/// differ only in whitespace or key order get the same schema id.
pub(crate) fn canonical(text: &str) -> Option<String> {
    // serde_json's map keeps keys sorted (the `preserve_order` feature is off in weir), so
    // re-serializing sorts every object's keys.
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    Some(sorted(&v).to_string())
}

fn sorted(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let mut out = serde_json::Map::new();
            for k in keys {
                out.insert(k.clone(), sorted(&m[k]));
            }
            serde_json::Value::Object(out)
        }
        serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_types_parse_in_any_case() {
        assert_eq!(
            Compatibility::parse("full_transitive").unwrap(),
            Compatibility::FullTransitive
        );
        let e = Compatibility::parse("SIDEWAYS").unwrap_err();
        assert_eq!(e.error_code(), 42203);
        assert!(e.to_string().contains("SIDEWAYS"), "{e}");
        assert_eq!(SchemaType::parse("json").unwrap(), SchemaType::Json);
        assert_eq!(
            SchemaType::parse("PROTOBUF").unwrap_err().error_code(),
            42201
        );
    }

    #[test]
    fn error_codes_map_to_http_statuses() {
        let e = RegistryError::SubjectNotFound {
            subject: "s".into(),
        };
        assert_eq!((e.error_code(), e.http_status()), (40401, 404));
        let e = RegistryError::Incompatible {
            subject: "s".into(),
            problems: vec!["x".into()],
        };
        assert_eq!((e.error_code(), e.http_status()), (409, 409));
        assert_eq!(
            RegistryError::InvalidSchema { reason: "r".into() }.http_status(),
            422
        );
    }

    #[test]
    fn canonical_text_ignores_whitespace_and_key_order() {
        assert_eq!(
            canonical(r#"{ "type": "string", "maxLength": 3 }"#),
            canonical(r#"{"maxLength":3,"type":"string"}"#)
        );
        assert_ne!(
            canonical(
                r#"{"type":"record","name":"A","fields":[{"name":"a","type":"int"},{"name":"b","type":"int"}]}"#
            ),
            canonical(
                r#"{"type":"record","name":"A","fields":[{"name":"b","type":"int"},{"name":"a","type":"int"}]}"#
            )
        );
    }

    #[test]
    fn schema_types_never_mix() {
        let a = Schema::parse(SchemaType::Avro, r#""string""#).unwrap();
        let j = Schema::parse(SchemaType::Json, r#"{"type":"string"}"#).unwrap();
        let p = compatibility_problems(Compatibility::Backward, &j, &[(1, &a)]);
        assert_eq!(p, vec!["schemaType changed from AVRO to JSON (BACKWARD)"]);
    }

    #[test]
    fn transitive_modes_check_every_earlier_version() {
        let v1 = Schema::parse(SchemaType::Json, r#"{"type":"integer"}"#).unwrap();
        let v2 = Schema::parse(SchemaType::Json, r#"{"type":"number"}"#).unwrap();
        let v3 = Schema::parse(SchemaType::Json, r#"{"type":"integer"}"#).unwrap();
        // v3 reads v2's numbers? No: integer does not accept 1.5.
        assert!(
            !compatibility_problems(Compatibility::Backward, &v3, &[(1, &v1), (2, &v2)]).is_empty()
        );
        // FORWARD: v2 (old) reads v3's integers: fine; v1 reads v3: fine.
        assert!(
            compatibility_problems(Compatibility::Forward, &v3, &[(1, &v1), (2, &v2)]).is_empty()
        );
        let v4 = Schema::parse(SchemaType::Json, r#"{"type":"number"}"#).unwrap();
        // Against the latest (v3 = integer) only, number reads integers; v1 too.
        assert!(
            compatibility_problems(Compatibility::Backward, &v4, &[(1, &v1), (3, &v3)]).is_empty()
        );
        // FORWARD_TRANSITIVE: v1 (integer) cannot read v4's numbers.
        let p =
            compatibility_problems(Compatibility::ForwardTransitive, &v4, &[(1, &v1), (3, &v3)]);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].contains("against version 3"), "{p:?}");
        assert!(p.iter().any(|m| m.contains("against version 1")), "{p:?}");
        assert!(compatibility_problems(Compatibility::None, &v4, &[(1, &v1)]).is_empty());
    }
}
