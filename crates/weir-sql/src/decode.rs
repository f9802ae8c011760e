//! JSON lines → Arrow, with a declared schema, one record at a time and never failing the batch.
//!
//! A streaming table that reads a source declares the fields it expects and their types. Each
//! raw record is decoded on its own: a record that is not a JSON object is reported as
//! malformed (the caller quarantines it with its raw text); a field whose value has the wrong
//! type, or a timestamp that does not parse, becomes NULL so that the table's expectations can
//! name the problem (`missing_customer_id`, `unparseable_ts`, ...). Unknown fields are ignored.
//! A declared name with dots is a path into nested objects: `name.first` reads
//! `{"name":{"first":"Ana"}}`, so records that keep their nesting (a REST API's users, a CDC
//! change's `after` image) are flattened by the schema and named in SQL as `"name.first"`.
//! A name is looked up whole first, so a top-level key that itself contains a dot still matches.
//! Nothing here allocates per field beyond the output buffers.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use crate::error::{Result, SqlError};

/// The type of a declared input field, as written in `weir.toml` (`string`, `bigint`,
/// `double`, `boolean`, `timestamp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    String,
    #[serde(alias = "int", alias = "integer", alias = "long")]
    Bigint,
    #[serde(alias = "float", alias = "number")]
    Double,
    #[serde(alias = "bool")]
    Boolean,
    /// RFC 3339 date-time text (or epoch milliseconds as a number), stored as UTC microseconds.
    Timestamp,
}

impl FieldType {
    pub fn arrow_type(self) -> DataType {
        match self {
            FieldType::String => DataType::Utf8,
            FieldType::Bigint => DataType::Int64,
            FieldType::Double => DataType::Float64,
            FieldType::Boolean => DataType::Boolean,
            FieldType::Timestamp => utc_micros(),
        }
    }
}

/// The Arrow type weir uses for every timestamp: microseconds, UTC (what Delta calls
/// `timestamp`).
pub fn utc_micros() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// Why a record could not be decoded at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// Index of the record in the slice given to [`JsonDecoder::decode`].
    pub index: usize,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Cell {
    Null,
    Str(usize, usize),
    I64(i64),
    F64(f64),
    Bool(bool),
}

/// Decodes JSON-object records into a RecordBatch with a fixed schema.
pub struct JsonDecoder {
    schema: SchemaRef,
    types: Vec<FieldType>,
    index: HashMap<String, usize>,
    /// Every proper dotted prefix of a declared name (`a` and `a.b` for `a.b.c`): objects
    /// found under these paths are descended into.
    prefixes: HashSet<String>,
}

impl JsonDecoder {
    /// A decoder for the given `(name, type)` fields, in output column order.
    pub fn new(fields: &[(String, FieldType)]) -> Self {
        let schema = Arc::new(Schema::new(
            fields
                .iter()
                .map(|(n, t)| Field::new(n, t.arrow_type(), true))
                .collect::<Vec<_>>(),
        ));
        Self {
            schema,
            types: fields.iter().map(|(_, t)| *t).collect(),
            index: fields
                .iter()
                .enumerate()
                .map(|(i, (n, _))| (n.clone(), i))
                .collect(),
            prefixes: fields
                .iter()
                .flat_map(|(n, _)| n.match_indices('.').map(|(i, _)| n[..i].to_owned()))
                .collect(),
        }
    }

    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Decodes `records`. Returns the batch of decodable records (in input order), the input
    /// index of each decoded row, and the records that were not JSON objects.
    pub fn decode<'a, I>(&self, records: I) -> Result<(RecordBatch, Vec<u32>, Vec<Malformed>)>
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        let records = records.into_iter();
        let cap = records.size_hint().0;
        let mut builders: Vec<ColumnBuilder> = self
            .types
            .iter()
            .map(|t| ColumnBuilder::new(*t, cap))
            .collect();
        let mut rows = Vec::with_capacity(cap);
        let mut malformed = Vec::new();
        let mut cells = vec![Cell::Null; self.types.len()];
        let mut text = String::new();
        let mut path = String::new();
        for (i, raw) in records.enumerate() {
            cells.fill(Cell::Null);
            text.clear();
            path.clear();
            let mut row = RowSeed {
                decoder: self,
                cells: &mut cells,
                text: &mut text,
                path: &mut path,
                nested: false,
            };
            let mut de = serde_json::Deserializer::from_slice(raw);
            let outcome = (&mut row).deserialize(&mut de).and_then(|()| de.end());
            match outcome {
                Ok(()) => {
                    for (b, c) in builders.iter_mut().zip(cells.iter()) {
                        b.push(*c, &text);
                    }
                    rows.push(u32::try_from(i).unwrap_or(u32::MAX));
                }
                Err(e) => malformed.push(Malformed {
                    index: i,
                    reason: e.to_string(),
                }),
            }
        }
        let columns: Vec<ArrayRef> = builders.into_iter().map(ColumnBuilder::finish).collect();
        let batch = RecordBatch::try_new(self.schema.clone(), columns).map_err(|source| {
            SqlError::Arrow {
                context: "building decoded batch".into(),
                source,
            }
        })?;
        Ok((batch, rows, malformed))
    }
}

enum ColumnBuilder {
    Str(StringBuilder),
    I64(Int64Builder),
    F64(Float64Builder),
    Bool(BooleanBuilder),
    Ts(TimestampMicrosecondBuilder),
}

impl ColumnBuilder {
    fn new(t: FieldType, cap: usize) -> Self {
        match t {
            FieldType::String => ColumnBuilder::Str(StringBuilder::with_capacity(cap, cap * 16)),
            FieldType::Bigint => ColumnBuilder::I64(Int64Builder::with_capacity(cap)),
            FieldType::Double => ColumnBuilder::F64(Float64Builder::with_capacity(cap)),
            FieldType::Boolean => ColumnBuilder::Bool(BooleanBuilder::with_capacity(cap)),
            FieldType::Timestamp => ColumnBuilder::Ts(
                TimestampMicrosecondBuilder::with_capacity(cap).with_timezone("UTC"),
            ),
        }
    }

    fn push(&mut self, cell: Cell, text: &str) {
        match (self, cell) {
            (ColumnBuilder::Str(b), Cell::Str(s, e)) => b.append_value(&text[s..e]),
            (ColumnBuilder::I64(b), Cell::I64(v)) => b.append_value(v),
            (ColumnBuilder::F64(b), Cell::F64(v)) => b.append_value(v),
            (ColumnBuilder::Bool(b), Cell::Bool(v)) => b.append_value(v),
            (ColumnBuilder::Ts(b), Cell::I64(v)) => b.append_value(v),
            (ColumnBuilder::Str(b), _) => b.append_null(),
            (ColumnBuilder::I64(b), _) => b.append_null(),
            (ColumnBuilder::F64(b), _) => b.append_null(),
            (ColumnBuilder::Bool(b), _) => b.append_null(),
            (ColumnBuilder::Ts(b), _) => b.append_null(),
        }
    }

    fn finish(self) -> ArrayRef {
        match self {
            ColumnBuilder::Str(mut b) => Arc::new(b.finish()),
            ColumnBuilder::I64(mut b) => Arc::new(b.finish()),
            ColumnBuilder::F64(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Bool(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Ts(mut b) => Arc::new(b.finish()),
        }
    }
}

/// Fills the cells of one record's object, or of an object nested under a declared prefix
/// (`nested`), whose dotted path so far is `path`.
struct RowSeed<'a> {
    decoder: &'a JsonDecoder,
    cells: &'a mut [Cell],
    text: &'a mut String,
    path: &'a mut String,
    nested: bool,
}

enum Target {
    Column(usize),
    Object,
    Skip,
}

impl<'de> DeserializeSeed<'de> for &mut RowSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for &mut RowSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let d = self.decoder;
        let base = self.path.len();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let name: &str = if base == 0 {
                key.as_ref()
            } else {
                self.path.push('.');
                self.path.push_str(&key);
                self.path
            };
            let target = match d.index.get(name) {
                Some(&col) => Target::Column(col),
                None if !d.prefixes.is_empty() && d.prefixes.contains(name) => Target::Object,
                None => Target::Skip,
            };
            match target {
                Target::Column(col) => {
                    let cell = map.next_value_seed(ValueSeed {
                        ty: d.types[col],
                        text: self.text,
                    })?;
                    self.cells[col] = cell;
                }
                Target::Object => {
                    if base == 0 {
                        self.path.push_str(&key);
                    }
                    map.next_value_seed(&mut RowSeed {
                        decoder: d,
                        cells: &mut *self.cells,
                        text: &mut *self.text,
                        path: &mut *self.path,
                        nested: true,
                    })?;
                }
                Target::Skip => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            self.path.truncate(base);
        }
        Ok(())
    }

    // A record must be an object; a value under a declared prefix that is not one (null, a
    // string, an array) leaves the fields below it NULL.

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.not_object(de::Unexpected::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.not_object(de::Unexpected::Signed(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.not_object(de::Unexpected::Unsigned(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.not_object(de::Unexpected::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.not_object(de::Unexpected::Str(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.not_object(de::Unexpected::Unit)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if !self.nested {
            return Err(de::Error::invalid_type(
                de::Unexpected::Seq,
                &"a JSON object",
            ));
        }
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }
}

impl RowSeed<'_> {
    fn not_object<E: de::Error>(&self, unexpected: de::Unexpected<'_>) -> Result<(), E> {
        if self.nested {
            Ok(())
        } else {
            Err(de::Error::invalid_type(unexpected, &"a JSON object"))
        }
    }
}

struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = std::borrow::Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = std::borrow::Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Owned(v.to_owned()))
    }
}

struct ValueSeed<'a> {
    ty: FieldType,
    text: &'a mut String,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Cell;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cell, D::Error> {
        d.deserialize_any(self)
    }
}

impl ValueSeed<'_> {
    fn store_text(self, v: &str) -> Cell {
        let start = self.text.len();
        self.text.push_str(v);
        Cell::Str(start, self.text.len())
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Cell;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Cell, E> {
        Ok(match self.ty {
            FieldType::String => self.store_text(v),
            FieldType::Timestamp => parse_timestamp_micros(v).map_or(Cell::Null, Cell::I64),
            _ => Cell::Null,
        })
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Cell, E> {
        Ok(match self.ty {
            FieldType::Bigint => Cell::I64(v),
            FieldType::Double => Cell::F64(v as f64),
            FieldType::Timestamp => v.checked_mul(1000).map_or(Cell::Null, Cell::I64),
            FieldType::String => self.store_text(&v.to_string()),
            FieldType::Boolean => Cell::Null,
        })
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Cell, E> {
        match i64::try_from(v) {
            Ok(i) => self.visit_i64(i),
            Err(_) => Ok(match self.ty {
                FieldType::Double => Cell::F64(v as f64),
                FieldType::String => self.store_text(&v.to_string()),
                _ => Cell::Null,
            }),
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Cell, E> {
        Ok(match self.ty {
            FieldType::Double => Cell::F64(v),
            // A whole number written with a fraction (`3.0`) is still that integer.
            FieldType::Bigint if v.fract() == 0.0 && v.abs() < 9.0e15 => Cell::I64(v as i64),
            FieldType::String => self.store_text(&v.to_string()),
            _ => Cell::Null,
        })
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Cell, E> {
        Ok(match self.ty {
            FieldType::Boolean => Cell::Bool(v),
            FieldType::String => self.store_text(if v { "true" } else { "false" }),
            _ => Cell::Null,
        })
    }

    fn visit_unit<E: de::Error>(self) -> Result<Cell, E> {
        Ok(Cell::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Cell, E> {
        Ok(Cell::Null)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Cell, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Cell::Null)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Cell, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Cell::Null)
    }
}

/// Parses an RFC 3339 date-time to UTC microseconds. The common `YYYY-MM-DDTHH:MM:SS.sssZ`
/// form takes a fast path that validates every field (month lengths and leap years
/// included); anything else goes through chrono's full RFC 3339 parser.
pub fn parse_timestamp_micros(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() == 24
        && b[4] == b'-'
        && b[7] == b'-'
        && (b[10] == b'T' || b[10] == b't')
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'.'
        && (b[23] == b'Z' || b[23] == b'z')
    {
        let num = |r: std::ops::Range<usize>| -> Option<i64> {
            let mut v = 0i64;
            for &c in &b[r] {
                if !c.is_ascii_digit() {
                    return None;
                }
                v = v * 10 + i64::from(c - b'0');
            }
            Some(v)
        };
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (h, mi, sec, ms) = (num(11..13)?, num(14..16)?, num(17..19)?, num(20..23)?);
        if !(1..=12).contains(&mo)
            || d < 1
            || d > days_in_month(y, mo)
            || h > 23
            || mi > 59
            || sec > 59
        {
            return None;
        }
        let days = days_from_civil(y, mo, d);
        return Some((((days * 24 + h) * 60 + mi) * 60 + sec) * 1_000_000 + ms * 1000);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_micros())
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Float64Type, Int64Type, TimestampMicrosecondType};

    fn decoder() -> JsonDecoder {
        JsonDecoder::new(&[
            ("id".into(), FieldType::String),
            ("ts".into(), FieldType::Timestamp),
            ("amount".into(), FieldType::Double),
            ("n".into(), FieldType::Bigint),
        ])
    }

    #[test]
    fn decodes_good_rows_and_nulls_wrong_types() {
        let lines: Vec<&[u8]> = vec![
            br#"{"id":"a","ts":"2026-01-15T00:00:01.250Z","amount":1.5,"n":3,"extra":[1,{"x":2}]}"#,
            br#"{"id":7,"ts":"not-a-timestamp","amount":"abc","n":2.0}"#,
            br#"{"ts":"2026-02-30T10:00:00.000Z","amount":null}"#,
        ];
        let (batch, rows, bad) = decoder().decode(lines).unwrap();
        assert!(bad.is_empty());
        assert_eq!(rows, vec![0, 1, 2]);
        let id = batch.column(0).as_string::<i32>();
        assert_eq!(id.value(0), "a");
        assert_eq!(id.value(1), "7");
        assert!(id.is_null(2));
        let ts = batch.column(1).as_primitive::<TimestampMicrosecondType>();
        assert_eq!(ts.value(0), 1_768_435_201_250_000);
        assert!(ts.is_null(1));
        assert!(ts.is_null(2), "february 30th is not a date");
        let amount = batch.column(2).as_primitive::<Float64Type>();
        assert_eq!(amount.value(0), 1.5);
        assert!(amount.is_null(1));
        let n = batch.column(3).as_primitive::<Int64Type>();
        assert_eq!(n.value(1), 2);
    }

    #[test]
    fn malformed_lines_are_reported_not_fatal() {
        let lines: Vec<&[u8]> = vec![
            br#"{"id":"a","ts":"2026-01"#,
            b"[1,2]",
            b"42",
            b"",
            br#"{"id":"b"} trailing"#,
            br#"{"id":"ok"}"#,
        ];
        let (batch, rows, bad) = decoder().decode(lines).unwrap();
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(rows, vec![5]);
        assert_eq!(
            bad.iter().map(|m| m.index).collect::<Vec<_>>(),
            vec![0, 1, 2, 3, 4]
        );
    }

    #[test]
    fn dotted_names_read_nested_objects() {
        let d = JsonDecoder::new(&[
            ("name.first".into(), FieldType::String),
            ("dob.age".into(), FieldType::Bigint),
            ("a.b.c".into(), FieldType::String),
            ("odd.key".into(), FieldType::String),
            ("email".into(), FieldType::String),
        ]);
        let lines: Vec<&[u8]> = vec![
            br#"{"name":{"title":"Ms","first":"Ana"},"dob":{"age":41},"a":{"b":{"c":"deep","x":[1]}},"email":"a@x"}"#,
            br#"{"name":null,"dob":"1980","a":{"b":[{"c":"not reached"}]},"odd.key":"top-level dotted key"}"#,
            br#"{"email":"only","name":{"first":{"nested":"too deep"}}}"#,
        ];
        let (batch, rows, bad) = d.decode(lines).unwrap();
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(rows, vec![0, 1, 2]);
        let first = batch.column(0).as_string::<i32>();
        assert_eq!(first.value(0), "Ana");
        assert!(first.is_null(1) && first.is_null(2));
        let age = batch.column(1).as_primitive::<Int64Type>();
        assert_eq!(age.value(0), 41);
        assert!(age.is_null(1));
        let c = batch.column(2).as_string::<i32>();
        assert_eq!(c.value(0), "deep");
        assert!(c.is_null(1));
        assert_eq!(
            batch.column(3).as_string::<i32>().value(1),
            "top-level dotted key"
        );
        assert_eq!(batch.column(4).as_string::<i32>().value(2), "only");
    }

    #[test]
    fn timestamps_fast_path_agrees_with_chrono() {
        for s in [
            "2026-01-15T00:00:00.000Z",
            "2024-02-29T23:59:59.999Z",
            "1999-12-31T12:30:00.001Z",
        ] {
            let want = chrono::DateTime::parse_from_rfc3339(s)
                .unwrap()
                .timestamp_micros();
            assert_eq!(parse_timestamp_micros(s), Some(want), "{s}");
        }
        for s in [
            "2026-01-15T25:61:00.000Z",
            "2026-13-01T00:00:00.000Z",
            "2025-02-29T00:00:00.000Z",
            "15/01/2026 10:30:00",
            "",
        ] {
            assert_eq!(parse_timestamp_micros(s), None, "{s}");
        }
        assert_eq!(
            parse_timestamp_micros("2026-01-15T01:00:00+01:00"),
            Some(1_768_435_200_000_000)
        );
    }
}
