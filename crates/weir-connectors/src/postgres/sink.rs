//! The `postgres` sink: a table's rows into a PostgreSQL table, exactly once.
//!
//! Each micro-batch is one transaction: lock the sink's row in `weir_sink_offsets`, skip the
//! batch if its id is not above the stored one (a replay after a crash), write the rows, store
//! the batch id and the input offsets, commit. The rows and the batch id are therefore durable
//! together or not at all.
//!
//! Rows travel by `COPY ... FROM STDIN` (text format). `append` copies straight into the
//! table; `upsert` copies into a temporary table and merges with `INSERT ... SELECT DISTINCT
//! ON (key) ... ON CONFLICT (key) DO UPDATE`, keeping the last row of each key in the batch.
//! The table is created from the Arrow schema when absent (with the key as primary key), and a
//! column the table lacks is added as a nullable column instead of failing.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::Duration;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use futures::SinkExt;
use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use super::{
    check_table_name, connect, parse_url, quote_ident, quote_literal, quote_table, remote,
};
use crate::error::{ConnectorError, Result};
use crate::sink::{Sink, SinkWrite};

/// `[sinks.<name>] type = "postgres"`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSinkConfig {
    /// The weir table whose rows are written (a streaming table).
    pub from: String,
    /// Connection URL, e.g. `postgres://user:${PG_PASSWORD}@host:5432/db`; `${ENV}` is
    /// substituted at start.
    pub url: String,
    /// Target table, `name` or `schema.name`; created from the rows' schema when absent.
    pub table: String,
    /// `append` (COPY every row) or `upsert` (one row per `key`, the latest wins).
    #[serde(default)]
    pub mode: SinkMode,
    /// Columns identifying a row, for `upsert` (the created table's primary key).
    #[serde(default)]
    pub key: Vec<String>,
    /// Longest wait for one batch's transaction before it is retried.
    #[serde(default = "default_timeout")]
    pub timeout: weir_core::HumanDuration,
}

fn default_timeout() -> weir_core::HumanDuration {
    weir_core::HumanDuration(Duration::from_secs(60))
}

/// How the `postgres` sink writes rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkMode {
    #[default]
    Append,
    Upsert,
}

impl PostgresSinkConfig {
    pub fn validate(&self, name: &str) -> Result<(), String> {
        check_table_name(&self.table).map_err(|m| format!("sinks.{name}.table: {m}"))?;
        match self.mode {
            SinkMode::Upsert if self.key.is_empty() => {
                return Err(format!(
                    "sinks.{name}.key: `mode = \"upsert\"` needs the columns that identify a row, e.g. key = [\"id\"]"
                ));
            }
            SinkMode::Append if !self.key.is_empty() => {
                return Err(format!(
                    "sinks.{name}.key: only used with `mode = \"upsert\"`; remove it or set the mode"
                ));
            }
            _ => {}
        }
        if self.timeout.0.is_zero() {
            return Err(format!(
                "sinks.{name}.timeout: expected a positive duration"
            ));
        }
        if self.url.trim().is_empty() {
            return Err(format!(
                "sinks.{name}.url: expected a URL like postgres://user@host:5432/db"
            ));
        }
        Ok(())
    }

    pub fn build(&self, name: &str) -> Result<PostgresSink> {
        let config = parse_url(name, &format!("sinks.{name}.url"), &self.url)?;
        Ok(PostgresSink {
            name: name.to_owned(),
            identity: name.to_owned(),
            cfg: self.clone(),
            config,
            client: None,
            prepared_for: None,
        })
    }
}

/// The running `postgres` sink.
pub struct PostgresSink {
    name: String,
    /// The sink's row in `weir_sink_offsets`: `<name>@<project instance>`, so that a project
    /// started afresh (a new data directory) does not inherit an older one's batch ids.
    identity: String,
    cfg: PostgresSinkConfig,
    config: tokio_postgres::Config,
    client: Option<Client>,
    /// The schema the target table was last checked against.
    prepared_for: Option<SchemaRef>,
}

/// Table weir keeps its delivered batch ids in, per sink.
pub const OFFSETS_TABLE: &str = "weir_sink_offsets";

impl PostgresSink {
    /// Keys the sink's delivered batch ids by `instance` too (the project's instance id).
    #[must_use]
    pub fn with_instance(mut self, instance: &str) -> Self {
        self.identity = format!("{}@{instance}", self.name);
        self
    }

    /// The sink's key in `weir_sink_offsets`.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The last batch id committed for this sink, if any (for tests and status).
    pub async fn committed_batch(&mut self) -> Result<Option<u64>> {
        let name = self.name.clone();
        let identity = self.identity.clone();
        let client = self.client().await?;
        ensure_offsets_table(&name, client).await?;
        let row = client
            .query_opt(
                &format!("SELECT batch_id FROM {OFFSETS_TABLE} WHERE sink = $1"),
                &[&identity],
            )
            .await
            .map_err(|e| remote(&name, "reading weir_sink_offsets", &e))?;
        Ok(row.map(|r| r.get::<_, i64>(0) as u64))
    }

    async fn client(&mut self) -> Result<&mut Client> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = Some(connect(&self.name, &self.config).await?);
            self.prepared_for = None;
        }
        // Set just above.
        Ok(self.client.as_mut().expect("connected"))
    }

    async fn write_batch(
        &mut self,
        batch_id: u64,
        offsets: &str,
        rows: &[RecordBatch],
    ) -> Result<SinkWrite> {
        let name = self.name.clone();
        let identity = self.identity.clone();
        let cfg = self.cfg.clone();
        let schema = rows.first().map(RecordBatch::schema);
        let needs_prepare = match (&schema, &self.prepared_for) {
            (Some(s), Some(p)) => s != p,
            (Some(_), None) => true,
            _ => false,
        };
        let client = self.client().await?;
        ensure_offsets_table(&name, client).await?;
        if needs_prepare && let Some(s) = &schema {
            prepare_table(&name, &cfg, client, s).await?;
        }
        let tx = client
            .transaction()
            .await
            .map_err(|e| remote(&name, "starting a transaction", &e))?;
        let err = |op: &str, e: &tokio_postgres::Error| remote(&name, op, e);
        tx.execute(
            &format!(
                "INSERT INTO {OFFSETS_TABLE} (sink, batch_id, source_offsets, updated_at) \
                 VALUES ($1, -1, '{{}}', now()) ON CONFLICT (sink) DO NOTHING"
            ),
            &[&identity],
        )
        .await
        .map_err(|e| err("registering the sink in weir_sink_offsets", &e))?;
        let done: i64 = tx
            .query_one(
                &format!("SELECT batch_id FROM {OFFSETS_TABLE} WHERE sink = $1 FOR UPDATE"),
                &[&identity],
            )
            .await
            .map_err(|e| err("reading weir_sink_offsets", &e))?
            .get(0);
        let bid = i64::try_from(batch_id).unwrap_or(i64::MAX);
        if done >= bid {
            tx.rollback()
                .await
                .map_err(|e| err("ending a transaction", &e))?;
            return Ok(SinkWrite {
                rows: 0,
                skipped: true,
            });
        }
        let total: usize = rows.iter().map(RecordBatch::num_rows).sum();
        if let Some(schema) = &schema
            && total > 0
        {
            let cols: Vec<String> = schema
                .fields()
                .iter()
                .map(|f| quote_ident(f.name()))
                .collect();
            let target = quote_table(&cfg.table);
            match cfg.mode {
                SinkMode::Append => {
                    copy_rows(&name, &tx, &target, &cols, rows, false).await?;
                }
                SinkMode::Upsert => {
                    tx.batch_execute(&format!(
                        "CREATE TEMP TABLE weir_stage ON COMMIT DROP AS \
                             SELECT {}, 0::bigint AS weir_row FROM {target} WITH NO DATA",
                        cols.join(", ")
                    ))
                    .await
                    .map_err(|e| err("creating the staging table", &e))?;
                    let mut stage_cols = cols.clone();
                    stage_cols.push("weir_row".into());
                    copy_rows(&name, &tx, "weir_stage", &stage_cols, rows, true).await?;
                    let keys: Vec<String> = cfg.key.iter().map(|k| quote_ident(k)).collect();
                    let key_set: BTreeSet<&str> = cfg.key.iter().map(String::as_str).collect();
                    let updates: Vec<String> = schema
                        .fields()
                        .iter()
                        .filter(|f| !key_set.contains(f.name().as_str()))
                        .map(|f| {
                            let c = quote_ident(f.name());
                            format!("{c} = EXCLUDED.{c}")
                        })
                        .collect();
                    let on_conflict = if updates.is_empty() {
                        "DO NOTHING".to_string()
                    } else {
                        format!("DO UPDATE SET {}", updates.join(", "))
                    };
                    tx.batch_execute(&format!(
                        "INSERT INTO {target} ({cols}) \
                             SELECT DISTINCT ON ({keys}) {cols} FROM weir_stage \
                             ORDER BY {keys}, weir_row DESC \
                             ON CONFLICT ({keys}) {on_conflict}",
                        cols = cols.join(", "),
                        keys = keys.join(", "),
                    ))
                    .await
                    .map_err(|e| err(&format!("upserting into {}", cfg.table), &e))?;
                }
            }
        }
        tx.execute(
            &format!(
                "UPDATE {OFFSETS_TABLE} SET batch_id = $2, source_offsets = $3::text::jsonb, \
                 updated_at = now() WHERE sink = $1"
            ),
            &[&identity, &bid, &offsets],
        )
        .await
        .map_err(|e| err("storing the batch id in weir_sink_offsets", &e))?;
        tx.commit()
            .await
            .map_err(|e| err("committing the batch", &e))?;
        Ok(SinkWrite {
            rows: total as u64,
            skipped: false,
        })
    }
}

#[async_trait::async_trait]
impl Sink for PostgresSink {
    async fn write(
        &mut self,
        batch_id: u64,
        offsets: &str,
        rows: &[RecordBatch],
    ) -> Result<SinkWrite> {
        let timeout = self.cfg.timeout.0;
        let r = match tokio::time::timeout(timeout, self.write_batch(batch_id, offsets, rows)).await
        {
            Ok(r) => r,
            Err(_) => Err(ConnectorError::Remote {
                connector: self.name.clone(),
                operation: format!("writing batch {batch_id}"),
                reason: format!("no answer within {}", self.cfg.timeout),
                retry: true,
            }),
        };
        if r.is_err() {
            // Start the retry on a fresh connection; the failed transaction rolled back.
            self.client = None;
        }
        r
    }
}

async fn ensure_offsets_table(name: &str, client: &Client) -> Result<()> {
    client
        .batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {OFFSETS_TABLE} (\
               sink text PRIMARY KEY, \
               batch_id bigint NOT NULL, \
               source_offsets jsonb NOT NULL, \
               updated_at timestamptz NOT NULL)"
        ))
        .await
        .map_err(|e| remote(name, "creating weir_sink_offsets", &e))
}

/// Creates the target table when absent, adds the columns it lacks, and checks that an
/// upsert's key has a unique index.
async fn prepare_table(
    name: &str,
    cfg: &PostgresSinkConfig,
    client: &Client,
    schema: &SchemaRef,
) -> Result<()> {
    let (schema_name, table) = match cfg.table.split_once('.') {
        Some((s, t)) => (Some(s), t),
        None => (None, cfg.table.as_str()),
    };
    let target = quote_table(&cfg.table);
    for k in &cfg.key {
        if schema.index_of(k).is_err() {
            return Err(ConnectorError::Remote {
                connector: name.to_owned(),
                operation: format!("preparing {}", cfg.table),
                reason: format!(
                    "key column `{k}` is not a column of the rows of `{}` ({})",
                    cfg.from,
                    schema
                        .fields()
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                retry: false,
            });
        }
    }
    let schema_filter = match schema_name {
        Some(s) => format!("table_schema = {}", quote_literal(s)),
        None => "table_schema = current_schema()".to_string(),
    };
    let existing: Vec<String> = client
        .query(
            &format!(
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE {schema_filter} AND table_name = $1"
            ),
            &[&table],
        )
        .await
        .map_err(|e| remote(name, "reading the target table's columns", &e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let col_def = |f: &arrow::datatypes::Field| {
        format!("{} {}", quote_ident(f.name()), pg_type(f.data_type()))
    };
    if existing.is_empty() {
        let mut defs: Vec<String> = schema.fields().iter().map(|f| col_def(f)).collect();
        if !cfg.key.is_empty() {
            defs.push(format!(
                "PRIMARY KEY ({})",
                cfg.key
                    .iter()
                    .map(|k| quote_ident(k))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        client
            .batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {target} ({})",
                defs.join(", ")
            ))
            .await
            .map_err(|e| remote(name, &format!("creating table {}", cfg.table), &e))?;
        tracing::info!(sink = %name, table = %cfg.table, "created the target table");
        return Ok(());
    }
    let have: BTreeSet<&str> = existing.iter().map(String::as_str).collect();
    for f in schema.fields() {
        if !have.contains(f.name().as_str()) {
            client
                .batch_execute(&format!(
                    "ALTER TABLE {target} ADD COLUMN IF NOT EXISTS {}",
                    col_def(f)
                ))
                .await
                .map_err(|e| {
                    remote(
                        name,
                        &format!("adding column `{}` to {}", f.name(), cfg.table),
                        &e,
                    )
                })?;
            tracing::info!(sink = %name, table = %cfg.table, column = %f.name(), "added a column to the target table");
        }
    }
    if !cfg.key.is_empty() {
        let want: BTreeSet<&str> = cfg.key.iter().map(String::as_str).collect();
        let rows = client
            .query(
                "SELECT array_agg(a.attname::text ORDER BY a.attname) \
                 FROM pg_index i JOIN pg_attribute a \
                   ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
                 WHERE i.indrelid = $1::text::regclass AND i.indisunique \
                 GROUP BY i.indexrelid",
                &[&target],
            )
            .await
            .map_err(|e| remote(name, "reading the target table's unique indexes", &e))?;
        let found = rows.iter().any(|r| {
            let cols: Vec<String> = r.get(0);
            cols.iter().map(String::as_str).collect::<BTreeSet<_>>() == want
        });
        if !found {
            return Err(ConnectorError::Remote {
                connector: name.to_owned(),
                operation: format!("preparing {}", cfg.table),
                reason: format!(
                    "upsert needs a unique index on ({}) of {}; create one with CREATE UNIQUE INDEX ON {target} ({})",
                    cfg.key.join(", "),
                    cfg.table,
                    cfg.key
                        .iter()
                        .map(|k| quote_ident(k))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                retry: false,
            });
        }
    }
    Ok(())
}

/// The PostgreSQL type a column of Arrow type `t` is created with.
pub fn pg_type(t: &DataType) -> String {
    match t {
        DataType::Boolean => "boolean".into(),
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => "smallint".into(),
        DataType::Int32 | DataType::UInt16 => "integer".into(),
        DataType::Int64 | DataType::UInt32 => "bigint".into(),
        DataType::UInt64 => "numeric(20, 0)".into(),
        DataType::Float16 | DataType::Float32 => "real".into(),
        DataType::Float64 => "double precision".into(),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => format!("numeric({p}, {s})"),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Timestamp(_, Some(_)) => "timestamptz".into(),
        DataType::Timestamp(_, None) => "timestamp".into(),
        DataType::Time32(_) | DataType::Time64(_) => "time".into(),
        DataType::Duration(_) | DataType::Interval(_) => "interval".into(),
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => "bytea".into(),
        DataType::List(_)
        | DataType::LargeList(_)
        | DataType::FixedSizeList(_, _)
        | DataType::Struct(_)
        | DataType::Map(_, _) => "jsonb".into(),
        _ => "text".into(),
    }
}

/// Streams `rows` into `table (cols)` with COPY text format; with `row_numbers`, a last column
/// numbers the rows in order (the staging table's `weir_row`).
async fn copy_rows(
    name: &str,
    tx: &tokio_postgres::Transaction<'_>,
    table: &str,
    cols: &[String],
    rows: &[RecordBatch],
    row_numbers: bool,
) -> Result<()> {
    let err = |e: &tokio_postgres::Error| remote(name, &format!("copying rows into {table}"), e);
    let sink = tx
        .copy_in(&format!("COPY {table} ({}) FROM STDIN", cols.join(", ")))
        .await
        .map_err(|e| err(&e))?;
    futures::pin_mut!(sink);
    let mut row_no = 0u64;
    for batch in rows {
        let text =
            encode_batch(batch, row_numbers, &mut row_no).map_err(|e| ConnectorError::Remote {
                connector: name.to_owned(),
                operation: format!("encoding rows for {table}"),
                reason: e.to_string(),
                retry: false,
            })?;
        sink.send(bytes_of(text)).await.map_err(|e| err(&e))?;
    }
    sink.finish().await.map_err(|e| err(&e))?;
    Ok(())
}

/// One batch as COPY text rows (encoded without awaiting: the formatters are not `Send`).
fn encode_batch(
    batch: &RecordBatch,
    row_numbers: bool,
    row_no: &mut u64,
) -> std::result::Result<String, arrow::error::ArrowError> {
    let encoders: Vec<Encoder<'_>> = batch
        .columns()
        .iter()
        .map(|c| Encoder::try_new(c.as_ref()))
        .collect::<std::result::Result<_, _>>()?;
    let mut buf = String::with_capacity(batch.num_rows() * 64);
    for i in 0..batch.num_rows() {
        for (j, enc) in encoders.iter().enumerate() {
            if j > 0 {
                buf.push('\t');
            }
            enc.write(i, &mut buf);
        }
        if row_numbers {
            let _ = write!(buf, "\t{row_no}");
            *row_no += 1;
        }
        buf.push('\n');
    }
    Ok(buf)
}

fn bytes_of(s: String) -> std::io::Cursor<Vec<u8>> {
    std::io::Cursor::new(s.into_bytes())
}

/// One column's values as COPY text fields.
enum Encoder<'a> {
    Binary(&'a dyn Array),
    Json(&'a dyn Array),
    Display(&'a dyn Array, ArrayFormatter<'a>),
}

impl<'a> Encoder<'a> {
    fn try_new(a: &'a dyn Array) -> std::result::Result<Self, arrow::error::ArrowError> {
        Ok(match a.data_type() {
            DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
            | DataType::FixedSizeBinary(_) => Encoder::Binary(a),
            DataType::List(_)
            | DataType::LargeList(_)
            | DataType::FixedSizeList(_, _)
            | DataType::Struct(_)
            | DataType::Map(_, _) => Encoder::Json(a),
            _ => Encoder::Display(a, ArrayFormatter::try_new(a, &FormatOptions::default())?),
        })
    }

    fn write(&self, i: usize, out: &mut String) {
        let a = match self {
            Encoder::Binary(a) | Encoder::Json(a) | Encoder::Display(a, _) => *a,
        };
        if a.is_null(i) {
            out.push_str("\\N");
            return;
        }
        match self {
            Encoder::Display(_, f) => {
                let mut s = String::new();
                let _ = write!(s, "{}", f.value(i));
                escape_into(&s, out);
            }
            Encoder::Binary(a) => {
                out.push_str("\\\\x");
                let bytes: &[u8] = match a.data_type() {
                    DataType::Binary => a.as_binary::<i32>().value(i),
                    DataType::LargeBinary => a.as_binary::<i64>().value(i),
                    DataType::BinaryView => a.as_binary_view().value(i),
                    _ => a.as_fixed_size_binary().value(i),
                };
                for b in bytes {
                    let _ = write!(out, "{b:02x}");
                }
            }
            Encoder::Json(a) => {
                let slice = a.slice(i, 1);
                let mut w = arrow::json::ArrayWriter::new(Vec::new());
                let batch = RecordBatch::try_from_iter([("v", slice)]);
                let text = batch
                    .ok()
                    .and_then(|b| w.write(&b).ok().map(|_| w))
                    .and_then(|mut w| w.finish().ok().map(|_| w.into_inner()))
                    .and_then(|v| serde_json::from_slice::<serde_json::Value>(&v).ok())
                    .and_then(|v| v.get(0).and_then(|r| r.get("v")).cloned())
                    .unwrap_or(serde_json::Value::Null);
                escape_into(&text.to_string(), out);
            }
        }
    }
}

/// COPY text-format escaping.
fn escape_into(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_escaping() {
        let mut s = String::new();
        escape_into("a\tb\\c\nd", &mut s);
        assert_eq!(s, "a\\tb\\\\c\\nd");
    }

    #[test]
    fn upsert_needs_a_key_and_append_refuses_one() {
        let mut c = PostgresSinkConfig {
            from: "t".into(),
            url: "postgres://postgres@127.0.0.1/test".into(),
            table: "out".into(),
            mode: SinkMode::Upsert,
            key: vec![],
            timeout: default_timeout(),
        };
        assert!(c.validate("s").unwrap_err().contains("sinks.s.key"));
        c.mode = SinkMode::Append;
        c.key = vec!["id".into()];
        assert!(c.validate("s").unwrap_err().contains("upsert"));
        c.key.clear();
        assert!(c.validate("s").is_ok());
        c.table = "a.b.c".into();
        assert!(c.validate("s").unwrap_err().contains("sinks.s.table"));
    }
}
