//! `weir bench cdc`: change events per second of the `postgres` source in CDC mode against a
//! real server. Each run writes `rows` single-row inserts (in transactions of 1 000) into a
//! fresh table whose publication and slot exist before, then starts a project whose only
//! source reads that slot, and times from the start until every change is in weir's log
//! (decoded pgoutput, one durable record per change).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use weir_orchestrator::{Project, Weir};

use crate::bench_sink::{client, pg};

/// One run: changes/s.
async fn once(c: &tokio_postgres::Client, url: &str, rows: u64, run: usize) -> anyhow::Result<f64> {
    let name = format!("weir_bench_cdc_{}_{run}", std::process::id());
    c.batch_execute(&format!(
        "DROP TABLE IF EXISTS {name}; DROP PUBLICATION IF EXISTS {name}; \
         CREATE TABLE {name} (id bigint PRIMARY KEY, name text, amount numeric(12,2), at timestamptz); \
         CREATE PUBLICATION {name} FOR TABLE {name};"
    ))
    .await
    .map_err(pg)?;
    // A slot cannot be made in a transaction that has written: a statement of its own.
    c.batch_execute(&format!(
        "SELECT pg_create_logical_replication_slot('{name}', 'pgoutput')"
    ))
    .await
    .map_err(pg)?;
    let mut k = 0;
    while k < rows {
        let end = (k + 1000).min(rows) - 1;
        c.batch_execute(&format!(
            "INSERT INTO {name} SELECT i, 'name ' || i, i * 0.01, now() FROM generate_series({k}, {end}) i"
        ))
        .await
        .map_err(pg)?;
        k = end + 1;
    }
    let dir = std::env::temp_dir().join(format!("weir-bench-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let config = dir.join("weir.toml");
    std::fs::write(
        &config,
        format!(
            r#"[project]
name = "bench_cdc"
data_dir = "data"

[pipeline]
interval = "50ms"

[sources.src]
type = "postgres"
url = "{url}"
mode = "cdc"
tables = ["{name}"]
slot = "{name}"
publication = "{name}"
every = "100ms"
"#
        ),
    )?;
    let weir = Weir::open(Project::load(&config)?)?;
    let t0 = Instant::now();
    weir.start(Vec::new())?;
    let limit = Duration::from_secs(600);
    let result = loop {
        let st = weir.status_json();
        let n = st["sources"]["src"]["records_in"].as_u64().unwrap_or(0);
        if n >= rows {
            break Ok(rows as f64 / t0.elapsed().as_secs_f64());
        }
        if let Some(e) = st["sources"]["src"]["health"]["last_error"].as_str()
            && t0.elapsed() > Duration::from_secs(30)
        {
            break Err(anyhow::anyhow!("the CDC source is failing: {e}"));
        }
        if t0.elapsed() > limit {
            break Err(anyhow::anyhow!(
                "only {n} of {rows} changes after {limit:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    weir.stop();
    weir.join();
    drop(weir);
    c.batch_execute(&format!("SELECT pg_drop_replication_slot('{name}')"))
        .await
        .map_err(pg)?;
    c.batch_execute(&format!(
        "DROP PUBLICATION IF EXISTS {name}; DROP TABLE IF EXISTS {name};"
    ))
    .await
    .map_err(pg)?;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

pub async fn run(url: Option<String>, rows: u64, repeat: usize) -> anyhow::Result<ExitCode> {
    let url = url
        .or_else(|| std::env::var("WEIR_PG_URL").ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let c = client(&url).await?;
    println!(
        "weir bench cdc: {rows} inserts (transactions of 1000) per run, {repeat} runs, server {}",
        weir_connectors::postgres::redact(&url)
    );
    let mut rates = Vec::new();
    for r in 0..repeat.max(1) {
        let rate = once(&c, &url, rows, r).await?;
        eprintln!("  run {}: {rate:.0} change events/s", r + 1);
        rates.push(rate);
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "postgres CDC source, median of {}: {:.0} change events/s (min {:.0}, max {:.0})",
        rates.len(),
        rates[rates.len() / 2],
        rates[0],
        rates[rates.len() - 1]
    );
    Ok(ExitCode::SUCCESS)
}
