//! `weir bench shop`: the whole pipeline (real log, real Delta writes) on generated shop
//! events, as fast as it goes; prints events/s, ingest → commit latency and peak RSS.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use weir_connectors::generator::GeneratorConfig;
use weir_orchestrator::Weir;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub which: Which,
}

#[derive(Debug, clap::Subcommand)]
pub enum Which {
    /// Generator → log → silver/gold → Delta, for N events.
    Shop {
        /// Events to generate and process.
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Project directory (default: a fresh temporary directory, removed afterwards).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Keep the project directory.
        #[arg(long)]
        keep: bool,
    },
    /// DAG task handoff: a 10-task chain, a 1 000-task and a 10 000-task fan-out of no-op
    /// tasks; upstream finished → downstream started, p50/p99, and total time.
    Dag {
        /// Times each DAG is run (the figures are over all runs).
        #[arg(long, default_value_t = 5)]
        repeat: usize,
    },
    /// The postgres sink against a real server: rows/s of COPY append, upsert of new keys and
    /// upsert over existing keys (median of the runs).
    Postgres {
        /// Server URL (default: WEIR_PG_URL, else postgres://postgres@127.0.0.1:5432/postgres).
        #[arg(long)]
        url: Option<String>,
        /// Rows per run.
        #[arg(long, default_value_t = 1_000_000)]
        rows: u64,
        /// Rows per micro-batch (one transaction each).
        #[arg(long, default_value_t = 50_000)]
        batch: u64,
        /// Runs of each mode.
        #[arg(long, default_value_t = 3)]
        repeat: usize,
    },
    /// The postgres source in CDC mode against a real server: change events/s from a slot
    /// holding `rows` inserts until all are in weir's log (median of the runs). The server
    /// needs wal_level = logical.
    Cdc {
        /// Server URL (default: WEIR_PG_URL, else postgres://postgres@127.0.0.1:5432/postgres).
        #[arg(long)]
        url: Option<String>,
        /// Inserts per run.
        #[arg(long, default_value_t = 200_000)]
        rows: u64,
        /// Runs.
        #[arg(long, default_value_t = 3)]
        repeat: usize,
    },
    /// Kafka → log → silver → Delta against a real broker: events/s from a topic holding
    /// `events` messages until all are committed to Delta, beside a bare librdkafka consumer
    /// reading the same topic (median of the runs, and their ratio). Needs a weir built with
    /// `--features weir/kafka`.
    Kafka {
        /// Bootstrap brokers (default: WEIR_KAFKA_BROKERS, else 127.0.0.1:9092).
        #[arg(long)]
        brokers: Option<String>,
        /// Messages per run.
        #[arg(long, default_value_t = 500_000)]
        events: u64,
        /// Partitions of each run's topic (and of the source's log topic).
        #[arg(long, default_value_t = 4)]
        partitions: i32,
        /// Runs.
        #[arg(long, default_value_t = 3)]
        repeat: usize,
    },
    /// Serving: pipeline throughput with vs without a dashboard attached (runs alternated),
    /// then on that lake the PostgreSQL endpoint's point-query and one-day-aggregate latency
    /// and the /metrics scrape time.
    Serve {
        /// Events per pipeline run (silver ends with about this many rows).
        #[arg(long, default_value_t = 10_000_000)]
        events: u64,
        /// Timed repetitions of each query and scrape.
        #[arg(long, default_value_t = 30)]
        queries: usize,
        /// Pipeline runs with and without a dashboard, alternated.
        #[arg(long, default_value_t = 2)]
        pairs: usize,
        /// Working directory (default: a temporary one, removed afterwards).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// A Chromium binary: the "with dashboard" runs open the dashboard in it, headless.
        /// Without it, the dashboard's requests are made from threads.
        #[arg(long)]
        browser: Option<PathBuf>,
    },
}

fn peak_rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let (events, dir, keep) = match args.which {
        Which::Shop { events, dir, keep } => (events, dir, keep),
        Which::Dag { repeat } => return bench_dag(repeat).await,
        Which::Postgres {
            url,
            rows,
            batch,
            repeat,
        } => return crate::bench_sink::run(url, rows, batch, repeat).await,
        Which::Cdc { url, rows, repeat } => return crate::bench_cdc::run(url, rows, repeat).await,
        #[cfg(feature = "kafka")]
        Which::Kafka {
            brokers,
            events,
            partitions,
            repeat,
        } => return crate::bench_kafka::run(brokers, events, partitions, repeat).await,
        #[cfg(not(feature = "kafka"))]
        Which::Kafka { .. } => anyhow::bail!(
            "this weir was built without Kafka support: build it with `cargo build --release --features weir/kafka`"
        ),
        Which::Serve {
            events,
            queries,
            pairs,
            dir,
            browser,
        } => {
            let viewer = match browser {
                Some(b) => crate::bench_serve::Viewer::Chromium(b),
                None => crate::bench_serve::Viewer::Simulated,
            };
            crate::bench_serve::run(events, queries, pairs, dir, viewer).await?;
            return Ok(ExitCode::SUCCESS);
        }
    };
    let (dir, temp) = match dir {
        Some(d) => (d, false),
        None => (
            std::env::temp_dir().join(format!("weir-bench-{}", std::process::id())),
            true,
        ),
    };
    if dir.exists() && temp {
        std::fs::remove_dir_all(&dir)?;
    }
    if !dir.join("weir.toml").exists() {
        crate::init::init(&dir)?;
    }
    let project = crate::cli::load(&dir.join("weir.toml"))?;
    let weir = Weir::open(project)?;
    let started = Instant::now();
    weir.start(vec![(
        "events".into(),
        GeneratorConfig {
            rate: None,
            events: Some(events),
            ..GeneratorConfig::default()
        },
    )])?;
    let mut last = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let st = weir.status_json();
        if let Some(e) = st["pipeline"]["error"].as_str() {
            anyhow::bail!("pipeline failed: {e}");
        }
        let processed = st["pipeline"]["records_processed"].as_u64().unwrap_or(0);
        if last.elapsed() > Duration::from_secs(5) {
            last = Instant::now();
            eprintln!(
                "{:>6.1}s  in {}  processed {processed}  lag {}",
                started.elapsed().as_secs_f64(),
                st["sources"]["events"]["records_in"],
                st["lag"]
            );
        }
        if processed >= events {
            break;
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let st = weir.pipeline_status();
    weir.stop();
    let w = weir.clone();
    tokio::task::spawn_blocking(move || w.join()).await?;
    let result = serde_json::json!({
        "bench": "shop",
        "events": events,
        "wall_seconds": wall,
        "events_per_second": events as f64 / wall,
        "batches": st.batches,
        "latency_ms_p50": st.latency.quantile(0.5),
        "latency_ms_p99": st.latency.quantile(0.99),
        "peak_rss_bytes": peak_rss_bytes(),
        "silver_rows": st.tables.get("silver_events").map(|t| t.metrics.rows_out),
    });
    println!("{}", serde_json::to_string_pretty(&result)?);
    if temp && !keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(ExitCode::SUCCESS)
}

/// Handoff latencies (µs) of a finished run: for each task with upstreams, its start minus the
/// latest end of its upstreams.
fn handoffs(
    store: &std::sync::Arc<dyn weir_orchestrator::dag::store::MetaStore>,
    dag: &weir_orchestrator::dag::config::DagConfig,
    run_id: i64,
) -> anyhow::Result<Vec<i64>> {
    let rows: std::collections::BTreeMap<String, _> = store
        .tasks(run_id)?
        .into_iter()
        .map(|t| (t.task_id.clone(), t))
        .collect();
    let mut out = Vec::new();
    for t in &dag.tasks {
        if t.after.is_empty() {
            continue;
        }
        let up = t
            .after
            .iter()
            .filter_map(|a| rows.get(a).and_then(|r| r.ended_us))
            .max();
        if let (Some(up), Some(start)) = (up, rows.get(&t.id).and_then(|r| r.started_us)) {
            out.push(start - up);
        }
    }
    Ok(out)
}

fn quantile(sorted: &[i64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i] as f64 / 1000.0
}

async fn bench_dag(repeat: usize) -> anyhow::Result<ExitCode> {
    use std::fmt::Write as _;
    let dir = std::env::temp_dir().join(format!("weir-bench-dag-{}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    let mut toml = String::from("[orchestrator]\nmax_parallel_tasks = 10000\n\n");
    let _ = writeln!(toml, "[dags.chain10]");
    for i in 0..10 {
        let after = if i == 0 {
            String::new()
        } else {
            format!("after = [\"t{}\"]\n", i - 1)
        };
        let _ = writeln!(
            toml,
            "[[dags.chain10.tasks]]\nid = \"t{i}\"\n{after}noop = true"
        );
    }
    for (name, n) in [("fanout1000", 1000), ("fanout10000", 10_000)] {
        let _ = writeln!(
            toml,
            "[dags.{name}]\n[[dags.{name}.tasks]]\nid = \"root\"\nnoop = true"
        );
        for i in 0..n {
            let _ = writeln!(
                toml,
                "[[dags.{name}.tasks]]\nid = \"t{i}\"\nafter = [\"root\"]\nnoop = true"
            );
        }
    }
    let path = dir.join("weir.toml");
    std::fs::write(&path, toml)?;
    let project = crate::cli::load(&path)?;
    let orch = weir_orchestrator::dag::Orchestrator::open(project.clone())?;
    let mut results = Vec::new();
    for name in ["chain10", "fanout1000", "fanout10000"] {
        let dag = &project.config.dags[name];
        let mut lat = Vec::new();
        let mut totals = Vec::new();
        for r in 0..repeat {
            let date = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap_or_default()
                + chrono::Days::new(r as u64);
            let t = orch.logical_time(name, date)?;
            let id = orch.trigger(name, t, "manual")?;
            let started = Instant::now();
            let rows = orch.execute_runs(&[id], |_, _| {}).await?;
            let run = orch.store().run(id)?;
            let total = run
                .and_then(|r| Some(r.ended_us? - r.started_us?))
                .unwrap_or_else(|| started.elapsed().as_micros() as i64);
            anyhow::ensure!(
                rows.iter().all(|r| r.state == "success"),
                "a {name} run failed"
            );
            totals.push(total);
            lat.extend(handoffs(orch.store(), dag, id)?);
        }
        lat.sort_unstable();
        totals.sort_unstable();
        let tasks = dag.tasks.len();
        let total_ms = quantile(&totals, 0.5);
        results.push(serde_json::json!({
            "dag": name,
            "tasks": tasks,
            "runs": repeat,
            "handoff_ms_p50": quantile(&lat, 0.5),
            "handoff_ms_p99": quantile(&lat, 0.99),
            "run_ms_median": total_ms,
            "tasks_per_second": tasks as f64 / (total_ms / 1000.0),
        }));
        eprintln!(
            "{}",
            results.last().map(|v| v.to_string()).unwrap_or_default()
        );
    }
    println!("{}", serde_json::to_string_pretty(&results)?);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(ExitCode::SUCCESS)
}
