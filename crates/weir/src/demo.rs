//! `weir demo`: the shop pipeline on generated events, with a live status line and a summary.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use weir_connectors::generator::GeneratorConfig;
use weir_core::HumanDuration;
use weir_orchestrator::Weir;

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Project directory (created from the shop example when it has no weir.toml).
    #[arg(long, default_value = "weir-demo")]
    pub dir: PathBuf,
    /// Generated events per second.
    #[arg(long, default_value_t = 20_000)]
    pub rate: u64,
    /// Stop after this many events (once they are all processed).
    #[arg(long)]
    pub events: Option<u64>,
    /// Stop after this long, e.g. 30s or 5m.
    #[arg(long)]
    pub duration: Option<HumanDuration>,
    /// HTTP listen address (overrides [server] listen).
    #[arg(long)]
    pub listen: Option<String>,
    /// PostgreSQL wire listen address (overrides [server] pg_listen; "" turns it off).
    #[arg(long)]
    pub pg_listen: Option<String>,
    /// Seed of the generated events.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let config = args.dir.join("weir.toml");
    if !config.exists() {
        crate::init::init(&args.dir)?;
        eprintln!("created the shop project in {}", args.dir.display());
    }
    let project = crate::cli::load(&config)?;
    let listen = weir_server::listen::Listen {
        http: args
            .listen
            .clone()
            .unwrap_or_else(|| project.config.server.listen.clone()),
        pg: Some(
            args.pg_listen
                .clone()
                .unwrap_or_else(|| project.config.server.pg_listen.clone()),
        ),
        insecure: false,
    };
    let weir = Weir::open(project)?;
    let generator = GeneratorConfig {
        rate: Some(args.rate),
        events: args.events,
        seed: args.seed,
        ..GeneratorConfig::default()
    };
    weir.start(vec![("events".into(), generator)])?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    match weir_server::listen::start(weir.clone(), &listen, async move {
        let _ = stop_rx.await;
    })
    .await
    {
        Ok(s) => {
            eprintln!("weir demo: dashboard http://{}/ — Ctrl-C to stop", s.http);
            if let Some(pg) = s.pg {
                eprintln!(
                    "weir demo: SQL over PostgreSQL: psql -h {} -p {} -d {}",
                    pg.ip(),
                    pg.port(),
                    weir.project().config.project.name
                );
            }
        }
        Err(e) => {
            eprintln!("weir demo: not serving ({e}); the pipeline runs anyway — Ctrl-C to stop")
        }
    }
    let started = Instant::now();
    let deadline = args.duration.map(|d| started + d.0);
    let tty = std::io::stderr().is_terminal();
    let mut last_print = Instant::now() - Duration::from_secs(10);
    let mut last_in = 0u64;
    let mut last_t = Instant::now();
    let mut signal = Box::pin(crate::cli::shutdown_signal());
    let reason = loop {
        tokio::select! {
            _ = &mut signal => break "interrupted",
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        let st = weir.status_json();
        let events_in = st["sources"]["events"]["records_in"].as_u64().unwrap_or(0);
        let lag = st["lag"].as_u64().unwrap_or(0);
        let every = if tty {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(5)
        };
        if last_print.elapsed() >= every {
            let rate = (events_in.saturating_sub(last_in)) as f64
                / last_t.elapsed().as_secs_f64().max(1e-3);
            last_in = events_in;
            last_t = Instant::now();
            last_print = Instant::now();
            let t = &st["tables"];
            let line = format!(
                "events in {events_in} | silver {} | quarantine {} | late {} | gold {} | lag {lag} | {rate:.0} ev/s",
                t["silver_events"]["rows_out"].as_u64().unwrap_or(0),
                t["silver_events"]["quarantined"].as_u64().unwrap_or(0),
                t["gold_category_minute"]["late"].as_u64().unwrap_or(0),
                t["gold_category_minute"]["rows_out"].as_u64().unwrap_or(0),
            );
            if tty {
                eprint!("\r\x1b[2K{line}");
            } else {
                eprintln!("{line}");
            }
        }
        if let Some(err) = st["pipeline"]["error"].as_str() {
            eprintln!();
            anyhow::bail!("the pipeline stopped: {err}");
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break "duration reached";
        }
        if let Some(n) = args.events
            && events_in >= n
            && lag == 0
        {
            break "all events processed";
        }
    };
    if tty {
        eprintln!();
    }
    eprintln!("stopping ({reason})…");
    weir.stop();
    let w = weir.clone();
    tokio::task::spawn_blocking(move || w.join()).await?;
    let _ = stop_tx.send(());
    summary(&weir, &config, started.elapsed()).await
}

async fn summary(
    weir: &Arc<Weir>,
    config: &std::path::Path,
    elapsed: Duration,
) -> anyhow::Result<ExitCode> {
    let lake = weir.lake().clone();
    let views = weir_orchestrator::config::batch_views(weir.project());
    let (session, _) = weir_sql::query::QuerySession::try_new(lake.clone(), &views).await?;
    let count = |t: &'static str| {
        let session = &session;
        let lake = &lake;
        async move {
            if !lake.exists(t) {
                return Ok::<i64, anyhow::Error>(0);
            }
            let rows = session
                .run(&format!("SELECT count(*) AS n FROM {t}"))
                .await?;
            let v = rows
                .first()
                .and_then(|b| {
                    b.column(0)
                        .as_any()
                        .downcast_ref::<arrow::array::Int64Array>()
                        .map(|a| a.value(0))
                })
                .unwrap_or(0);
            Ok(v)
        }
    };
    let st = weir.status_json();
    let events_in = st["sources"]["events"]["records_in"].as_u64().unwrap_or(0);
    println!("weir demo summary ({:.1} s)", elapsed.as_secs_f64());
    println!("  events in the log        {events_in}");
    println!(
        "  bronze_events            {}",
        count("bronze_events").await.context("counting bronze")?
    );
    println!(
        "  silver_events            {}",
        count("silver_events").await?
    );
    println!(
        "  silver_events_quarantine {}",
        count("silver_events_quarantine").await?
    );
    println!(
        "  gold_category_minute     {}",
        count("gold_category_minute").await?
    );
    println!(
        "  gold_category_minute_late {}",
        count("gold_category_minute_late").await?
    );
    if let Some(p50) = st["pipeline"]["latency_ms"]["p50"].as_f64() {
        println!(
            "  ingest → commit latency  p50 {p50:.0} ms, p99 {:.0} ms",
            st["pipeline"]["latency_ms"]["p99"].as_f64().unwrap_or(0.0)
        );
    }
    let c = config.display();
    println!("look at the tables:");
    println!(
        "  weir query -c {c} \"SELECT reason, count(*) FROM silver_events_quarantine GROUP BY reason ORDER BY reason\""
    );
    println!(
        "  weir query -c {c} \"SELECT * FROM gold_category_minute ORDER BY window_start DESC, product_category LIMIT 12\""
    );
    println!(
        "  weir query -c {c} \"SELECT * FROM gold_customer_daily ORDER BY revenue DESC LIMIT 10\""
    );
    println!(
        "  weir query -c {c} \"SELECT count(*) FROM \\\"silver_events@v1\\\"\"   # time travel"
    );
    Ok(ExitCode::SUCCESS)
}
