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
}

fn peak_rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let Which::Shop { events, dir, keep } = args.which;
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
