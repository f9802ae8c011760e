//! Arrow ↔ PostgreSQL: the type of each result column, rows as `DataRow`s (text or binary, as
//! the client asked), and bound parameters as DataFusion scalars.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float32Array, Float64Array, Int16Array, Int32Array,
    Int64Array, RecordBatch,
};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, Date32Type, TimeUnit, TimestampMicrosecondType};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use datafusion::scalar::ScalarValue;
use pgwire::api::Type;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::results::{DataRowEncoder, FieldInfo};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::data::DataRow;

use super::user_error;

/// The PostgreSQL type a column of `dt` is sent as.
pub fn pg_type(dt: &DataType) -> Type {
    match dt {
        DataType::Boolean => Type::BOOL,
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => Type::INT2,
        DataType::Int32 | DataType::UInt16 => Type::INT4,
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => Type::INT8,
        DataType::Float16 | DataType::Float32 => Type::FLOAT4,
        DataType::Float64 | DataType::Decimal32(..) | DataType::Decimal64(..) => Type::FLOAT8,
        DataType::Decimal128(..) | DataType::Decimal256(..) => Type::FLOAT8,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Type::TEXT,
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => Type::BYTEA,
        DataType::Date32 | DataType::Date64 => Type::DATE,
        DataType::Timestamp(_, None) => Type::TIMESTAMP,
        DataType::Timestamp(_, Some(_)) => Type::TIMESTAMPTZ,
        DataType::Dictionary(_, v) => pg_type(v),
        _ => Type::TEXT,
    }
}

/// The Arrow type a parameter declared as `t` by the client is read as.
pub fn arrow_type(t: &Type) -> Option<DataType> {
    Some(match *t {
        Type::BOOL => DataType::Boolean,
        Type::INT2 => DataType::Int16,
        Type::INT4 => DataType::Int32,
        Type::INT8 | Type::OID => DataType::Int64,
        Type::FLOAT4 => DataType::Float32,
        Type::FLOAT8 | Type::NUMERIC => DataType::Float64,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => DataType::Utf8,
        Type::DATE => DataType::Date32,
        Type::TIMESTAMP => DataType::Timestamp(TimeUnit::Microsecond, None),
        Type::TIMESTAMPTZ => DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
        Type::BYTEA => DataType::Binary,
        _ => return None,
    })
}

/// Row description for columns (name, Arrow type), each in the format the client asked for.
pub fn fields<'a>(
    columns: impl IntoIterator<Item = (&'a str, &'a DataType)>,
    format: &Format,
) -> Vec<FieldInfo> {
    columns
        .into_iter()
        .enumerate()
        .map(|(i, (name, t))| {
            FieldInfo::new(
                name.to_owned(),
                None,
                None,
                pg_type(t),
                format.format_for(i),
            )
        })
        .collect()
}

/// Columns normalised to the few physical types the encoder writes.
fn normalise(col: &ArrayRef, t: &Type) -> PgWireResult<ArrayRef> {
    let target = match *t {
        Type::BOOL => DataType::Boolean,
        Type::INT2 => DataType::Int16,
        Type::INT4 => DataType::Int32,
        Type::INT8 => DataType::Int64,
        Type::FLOAT4 => DataType::Float32,
        Type::FLOAT8 => DataType::Float64,
        Type::DATE => DataType::Date32,
        Type::TIMESTAMP => DataType::Timestamp(TimeUnit::Microsecond, None),
        Type::TIMESTAMPTZ => DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
        Type::BYTEA => DataType::Binary,
        _ => return Ok(col.clone()),
    };
    if col.data_type() == &target {
        return Ok(col.clone());
    }
    // Safe casts: a value that does not fit (a UInt64 above i64::MAX) is an error, not a
    // silently wrong number.
    let opts = CastOptions {
        safe: false,
        ..Default::default()
    };
    cast_with_options(col, &target, &opts)
        .map_err(|e| user_error("22003", format!("cannot send a column as {t}: {e}")))
}

/// Encodes `batches` as data rows for `fields`.
pub fn rows(batches: &[RecordBatch], fields: Arc<Vec<FieldInfo>>) -> PgWireResult<Vec<DataRow>> {
    let mut out = Vec::with_capacity(batches.iter().map(RecordBatch::num_rows).sum());
    let mut enc = DataRowEncoder::new(fields.clone());
    let display = FormatOptions::default().with_null("");
    for batch in batches {
        let cols = batch
            .columns()
            .iter()
            .zip(fields.iter())
            .map(|(c, f)| normalise(c, f.datatype()))
            .collect::<PgWireResult<Vec<_>>>()?;
        let formatters = cols
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &display))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
        for row in 0..batch.num_rows() {
            for (i, col) in cols.iter().enumerate() {
                encode_value(&mut enc, col, &formatters[i], row, fields[i].datatype())?;
            }
            out.push(enc.take_row());
        }
    }
    Ok(out)
}

fn encode_value(
    enc: &mut DataRowEncoder,
    col: &ArrayRef,
    formatter: &ArrayFormatter,
    row: usize,
    t: &Type,
) -> PgWireResult<()> {
    if col.is_null(row) {
        return enc.encode_field(&None::<i32>);
    }
    match *t {
        Type::BOOL => enc.encode_field(
            &col.as_any()
                .downcast_ref::<BooleanArray>()
                .map(|a| a.value(row)),
        ),
        Type::INT2 => enc.encode_field(
            &col.as_any()
                .downcast_ref::<Int16Array>()
                .map(|a| a.value(row)),
        ),
        Type::INT4 => enc.encode_field(
            &col.as_any()
                .downcast_ref::<Int32Array>()
                .map(|a| a.value(row)),
        ),
        Type::INT8 => enc.encode_field(
            &col.as_any()
                .downcast_ref::<Int64Array>()
                .map(|a| a.value(row)),
        ),
        Type::FLOAT4 => enc.encode_field(
            &col.as_any()
                .downcast_ref::<Float32Array>()
                .map(|a| a.value(row)),
        ),
        Type::FLOAT8 => enc.encode_field(
            &col.as_any()
                .downcast_ref::<Float64Array>()
                .map(|a| a.value(row)),
        ),
        Type::DATE => {
            let days = col.as_primitive::<Date32Type>().value(row);
            let d = NaiveDate::from_num_days_from_ce_opt(days + 719_163)
                .ok_or_else(|| user_error("22008", format!("date out of range: {days} days")))?;
            enc.encode_field(&d)
        }
        Type::TIMESTAMP => {
            let us = col.as_primitive::<TimestampMicrosecondType>().value(row);
            let ts: NaiveDateTime = DateTime::from_timestamp_micros(us)
                .ok_or_else(|| user_error("22008", format!("timestamp out of range: {us} µs")))?
                .naive_utc();
            enc.encode_field(&ts)
        }
        Type::TIMESTAMPTZ => {
            let us = col.as_primitive::<TimestampMicrosecondType>().value(row);
            let ts: DateTime<Utc> = DateTime::from_timestamp_micros(us)
                .ok_or_else(|| user_error("22008", format!("timestamp out of range: {us} µs")))?;
            enc.encode_field(&ts)
        }
        Type::BYTEA => enc.encode_field(&col.as_binary::<i32>().value(row)),
        _ => enc.encode_field(&formatter.value(row).to_string()),
    }
}

/// The value of parameter `i` of `portal`, as `target` (the type the query expects there)
/// when known, else as the type the client declared.
pub fn parameter(
    portal: &Portal<super::PgStatement>,
    i: usize,
    declared: &Type,
    target: Option<&DataType>,
) -> PgWireResult<ScalarValue> {
    let raw = portal
        .parameters
        .get(i)
        .ok_or(PgWireError::ParameterIndexOutOfBound(i))?;
    let want = target
        .cloned()
        .or_else(|| arrow_type(declared))
        .unwrap_or(DataType::Utf8);
    let Some(raw) = raw else {
        return ScalarValue::try_from(&want).map_err(|e| PgWireError::ApiError(Box::new(e)));
    };
    let value = if portal.parameter_format.is_binary(i) {
        binary_parameter(portal, i, declared)?
    } else {
        let text = std::str::from_utf8(raw)
            .map_err(|_| user_error("22021", format!("parameter ${} is not UTF-8 text", i + 1)))?;
        ScalarValue::Utf8(Some(text.to_owned()))
    };
    if value.data_type() == want {
        return Ok(value);
    }
    match value {
        ScalarValue::Utf8(Some(s)) => ScalarValue::try_from_string(s.clone(), &want).map_err(|e| {
            user_error(
                "22P02",
                format!("parameter ${} = {s:?} is not a valid {want}: {e}", i + 1),
            )
        }),
        other => other.cast_to(&want).map_err(|e| {
            user_error(
                "22P02",
                format!("parameter ${} cannot be used as {want}: {e}", i + 1),
            )
        }),
    }
}

fn binary_parameter(
    portal: &Portal<super::PgStatement>,
    i: usize,
    t: &Type,
) -> PgWireResult<ScalarValue> {
    Ok(match *t {
        Type::BOOL => ScalarValue::Boolean(portal.parameter::<bool>(i, t)?),
        Type::INT2 => ScalarValue::Int16(portal.parameter::<i16>(i, t)?),
        Type::INT4 => ScalarValue::Int32(portal.parameter::<i32>(i, t)?),
        Type::INT8 => ScalarValue::Int64(portal.parameter::<i64>(i, t)?),
        Type::FLOAT4 => ScalarValue::Float32(portal.parameter::<f32>(i, t)?),
        Type::FLOAT8 => ScalarValue::Float64(portal.parameter::<f64>(i, t)?),
        Type::DATE => ScalarValue::Date32(
            portal
                .parameter::<NaiveDate>(i, t)?
                .map(|d| chrono::Datelike::num_days_from_ce(&d) - 719_163),
        ),
        Type::TIMESTAMP => ScalarValue::TimestampMicrosecond(
            portal
                .parameter::<NaiveDateTime>(i, t)?
                .map(|d| d.and_utc().timestamp_micros()),
            None,
        ),
        Type::TIMESTAMPTZ => ScalarValue::TimestampMicrosecond(
            portal
                .parameter::<DateTime<chrono::FixedOffset>>(i, t)?
                .map(|d| d.timestamp_micros()),
            Some("+00:00".into()),
        ),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
            ScalarValue::Utf8(portal.parameter::<String>(i, t)?)
        }
        Type::BYTEA => ScalarValue::Binary(portal.parameter::<Vec<u8>>(i, t)?),
        _ => {
            return Err(user_error(
                "0A000",
                format!(
                    "parameter ${} is sent in binary as {t}, which weir does not read; send it as text",
                    i + 1
                ),
            ));
        }
    })
}
