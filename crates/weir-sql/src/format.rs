//! Rendering query results for people and scripts: an aligned text table, CSV with a header,
//! or JSON (an array of objects).

use arrow::record_batch::RecordBatch;

use crate::error::{Result, SqlError};

fn arrow_err(context: &str) -> impl Fn(arrow::error::ArrowError) -> SqlError + '_ {
    move |source| SqlError::Arrow {
        context: context.to_owned(),
        source,
    }
}

/// An aligned text table (what `psql` users expect to read).
pub fn to_table(batches: &[RecordBatch]) -> Result<String> {
    arrow::util::pretty::pretty_format_batches(batches)
        .map(|d| d.to_string())
        .map_err(arrow_err("formatting a table"))
}

/// CSV with a header line; timestamps in RFC 3339.
pub fn to_csv(
    batches: &[RecordBatch],
    schema: Option<&arrow::datatypes::SchemaRef>,
) -> Result<String> {
    let mut buf = Vec::new();
    {
        let mut w = arrow::csv::WriterBuilder::new()
            .with_header(true)
            .build(&mut buf);
        if batches.is_empty()
            && let Some(s) = schema
        {
            w.write(&RecordBatch::new_empty(s.clone()))
                .map_err(arrow_err("writing CSV"))?;
        }
        for b in batches {
            w.write(b).map_err(arrow_err("writing CSV"))?;
        }
    }
    String::from_utf8(buf).map_err(|e| SqlError::Arrow {
        context: "writing CSV".into(),
        source: arrow::error::ArrowError::CsvError(e.to_string()),
    })
}

/// A JSON array of row objects.
pub fn to_json(batches: &[RecordBatch]) -> Result<String> {
    let mut buf = Vec::new();
    {
        let mut w = arrow::json::ArrayWriter::new(&mut buf);
        for b in batches {
            w.write(b).map_err(arrow_err("writing JSON"))?;
        }
        w.finish().map_err(arrow_err("writing JSON"))?;
    }
    if buf.is_empty() {
        return Ok("[]".into());
    }
    String::from_utf8(buf).map_err(|e| SqlError::Arrow {
        context: "writing JSON".into(),
        source: arrow::error::ArrowError::JsonError(e.to_string()),
    })
}
