//! `weir bench postgres`: the `postgres` sink's throughput against a real server — COPY
//! append, upsert of new keys, and upsert over existing keys — writing micro-batches of
//! shop-event rows through the same [`Sink`] interface the pipeline uses (one transaction per
//! batch, with its `weir_sink_offsets` update).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use weir_connectors::postgres::sink::{PostgresSinkConfig, SinkMode};
use weir_connectors::sink::Sink;

/// `batches` batches of `batch` shop-event rows; `key_offset` shifts the event ids.
fn batches(total: u64, batch: u64) -> Vec<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("event_id", DataType::Utf8, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("customer_id", DataType::Utf8, true),
        Field::new("event_type", DataType::Utf8, true),
        Field::new("product_category", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true),
        Field::new("quantity", DataType::Int64, true),
    ]));
    const TYPES: [&str; 4] = ["view", "add_to_cart", "purchase", "refund"];
    const CATS: [&str; 5] = ["books", "electronics", "garden", "toys", "fashion"];
    let mut out = Vec::new();
    let mut start = 0u64;
    while start < total {
        let n = batch.min(total - start);
        let ids = start..start + n;
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(
                ids.clone().map(|i| format!("e{i:010}")),
            )),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(
                    ids.clone().map(|i| 1_768_435_200_000_000 + i as i64 * 1000),
                )
                .with_timezone("UTC"),
            ),
            Arc::new(StringArray::from_iter_values(
                ids.clone().map(|i| format!("c{:06}", i % 50_000)),
            )),
            Arc::new(StringArray::from_iter_values(
                ids.clone().map(|i| TYPES[(i % 4) as usize]),
            )),
            Arc::new(StringArray::from_iter_values(
                ids.clone().map(|i| CATS[(i % 5) as usize]),
            )),
            Arc::new(Float64Array::from_iter_values(
                ids.clone().map(|i| (i % 10_000) as f64 / 100.0),
            )),
            Arc::new(Int64Array::from_iter_values(
                ids.map(|i| (i % 5) as i64 + 1),
            )),
        ];
        // The schema and columns above agree by construction.
        out.push(RecordBatch::try_new(schema.clone(), cols).expect("matching columns"));
        start += n;
    }
    out
}

/// A server error with the server's own message (tokio-postgres displays only "db error").
pub(crate) fn pg(e: tokio_postgres::Error) -> anyhow::Error {
    match e.as_db_error() {
        Some(d) => anyhow::anyhow!("PostgreSQL: {} ({})", d.message(), d.code().code()),
        None => anyhow::anyhow!("PostgreSQL: {e}"),
    }
}

pub(crate) async fn client(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(pg)?;
    tokio::spawn(conn);
    Ok(c)
}

/// Writes every batch through a fresh sink (batch ids 0..); returns rows/s.
async fn write_all(
    name: &str,
    cfg: &PostgresSinkConfig,
    data: &[RecordBatch],
) -> anyhow::Result<f64> {
    let mut sink = cfg.build(name)?;
    let rows: usize = data.iter().map(RecordBatch::num_rows).sum();
    let t = Instant::now();
    for (i, b) in data.iter().enumerate() {
        let w = sink.write(i as u64, "{}", std::slice::from_ref(b)).await?;
        anyhow::ensure!(!w.skipped, "batch {i} was skipped");
    }
    Ok(rows as f64 / t.elapsed().as_secs_f64())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub async fn run(
    url: Option<String>,
    rows: u64,
    batch: u64,
    repeat: usize,
) -> anyhow::Result<ExitCode> {
    let url = url
        .or_else(|| std::env::var("WEIR_PG_URL").ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let c = client(&url).await?;
    let data = batches(rows, batch.max(1));
    let table = format!("weir_bench_sink_{}", std::process::id());
    let cfg = |mode: SinkMode| PostgresSinkConfig {
        from: "bench".into(),
        url: url.clone(),
        table: table.clone(),
        mode,
        key: if mode == SinkMode::Upsert {
            vec!["event_id".into()]
        } else {
            vec![]
        },
        timeout: weir_core::HumanDuration(std::time::Duration::from_secs(600)),
    };
    let reset = |sink: String| {
        let c = &c;
        let table = table.clone();
        async move {
            c.batch_execute(&format!(
                "DROP TABLE IF EXISTS {table}; DELETE FROM weir_sink_offsets WHERE sink = '{sink}'"
            ))
            .await
            .or_else(|_| {
                // weir_sink_offsets does not exist before the first run.
                Ok::<(), tokio_postgres::Error>(())
            })
        }
    };
    println!(
        "weir bench postgres: {rows} rows in batches of {batch}, {repeat} runs each, server {}",
        weir_connectors::postgres::redact(&url)
    );
    let (mut append, mut insert, mut update) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..repeat {
        let name = format!("bench_append_{r}");
        reset(name.clone()).await?;
        append.push(write_all(&name, &cfg(SinkMode::Append), &data).await?);

        let name = format!("bench_upsert_{r}");
        reset(name.clone()).await?;
        insert.push(write_all(&name, &cfg(SinkMode::Upsert), &data).await?);
        // The same keys again: every row is an update.
        let again = format!("bench_upsert_again_{r}");
        c.batch_execute(&format!(
            "DELETE FROM weir_sink_offsets WHERE sink = '{again}'"
        ))
        .await?;
        update.push(write_all(&again, &cfg(SinkMode::Upsert), &data).await?);
        eprintln!(
            "  run {}: append {:.0} rows/s, upsert (new keys) {:.0} rows/s, upsert (existing keys) {:.0} rows/s",
            r + 1,
            append[r],
            insert[r],
            update[r]
        );
    }
    c.batch_execute(&format!(
        "DROP TABLE IF EXISTS {table}; DELETE FROM weir_sink_offsets WHERE sink LIKE 'bench_%'"
    ))
    .await?;
    let (a, i, u) = (median(append), median(insert), median(update));
    println!("postgres sink, median of {repeat}:");
    println!("  COPY append               {a:>10.0} rows/s");
    println!(
        "  upsert, new keys          {i:>10.0} rows/s  ({:.2}× append)",
        i / a
    );
    println!(
        "  upsert, existing keys     {u:>10.0} rows/s  ({:.2}× append)",
        u / a
    );
    Ok(ExitCode::SUCCESS)
}
