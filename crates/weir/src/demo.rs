//! `weir demo`: an example pipeline on simulated input, with a live status line and a
//! summary. The shop example (default) runs on generated events; `--example users` polls a
//! users API served on loopback by [`crate::simulate`] and `--example iot` subscribes to
//! readings a simulated fleet publishes to the MQTT broker at `WEIR_MQTT_URL`; both write to
//! the PostgreSQL at `WEIR_PG_URL`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use weir_connectors::generator::GeneratorConfig;
use weir_core::HumanDuration;
use weir_orchestrator::Weir;

use crate::init::Example;

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Which example: shop (generated events), users (REST API → PostgreSQL) or iot (MQTT →
    /// PostgreSQL). users and iot read WEIR_PG_URL (default
    /// postgres://postgres@127.0.0.1:5432/postgres); iot reads WEIR_MQTT_URL (default
    /// mqtt://127.0.0.1:1883).
    #[arg(long, value_enum, default_value_t = Example::Shop)]
    pub example: Example,
    /// Project directory (created from the example when it has no weir.toml; default
    /// weir-demo, weir-demo-users or weir-demo-iot).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Generated events per second (shop example).
    #[arg(long, default_value_t = 20_000)]
    pub rate: u64,
    /// Stop after this many events, once they are all processed (shop example; the users
    /// and iot examples run until --duration or Ctrl-C).
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
    if args.example != Example::Shop && args.events.is_some() {
        anyhow::bail!(
            "--events counts generated shop events; the {:?} example runs until --duration or Ctrl-C",
            args.example
        );
    }
    let dir = args.dir.clone().unwrap_or_else(|| {
        PathBuf::from(match args.example {
            Example::Shop => "weir-demo",
            Example::Users => "weir-demo-users",
            Example::Iot => "weir-demo-iot",
        })
    });
    let config = dir.join("weir.toml");
    if !config.exists() {
        crate::init::init_example(&dir, args.example)?;
        eprintln!(
            "created the {} example project in {}",
            format!("{:?}", args.example).to_lowercase(),
            dir.display()
        );
    }
    let sim_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let published = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut users_api = None;
    match args.example {
        Example::Shop => {}
        Example::Users => {
            let addr = crate::simulate::start_users_api("127.0.0.1:0", sim_stop.clone())
                .context("starting the simulated users API")?;
            users_api = Some(addr);
            eprintln!("weir demo: simulated users API on http://{addr}/api/");
        }
        Example::Iot => {
            let url = std::env::var("WEIR_MQTT_URL")
                .ok()
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| "mqtt://127.0.0.1:1883".into());
            let (stop, published) = (sim_stop.clone(), published.clone());
            let seed = args.seed;
            std::thread::spawn(move || {
                if let Err(e) =
                    crate::simulate::publish_readings(&url, 20, 50, 10, seed, stop, published)
                {
                    eprintln!("weir demo: the simulated sensors stopped: {e:#}");
                }
            });
            eprintln!(
                "weir demo: 20 simulated sensors publish to sensors/<device>/reading, stamped on a clock 10x faster than real time (1-minute windows close every 6 s)"
            );
        }
    }
    let mut project = crate::cli::load(&config)?;
    if let Some(addr) = users_api {
        // Every `rest` source of the users example polls the simulator instead.
        for s in project.config.sources.values_mut() {
            if let weir_connectors::SourceConfig::Rest(r) = s {
                r.url = format!("http://{addr}/api/?results=10");
            }
        }
    }
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
    let generators = if args.example == Example::Shop {
        vec![("events".into(), generator)]
    } else {
        Vec::new()
    };
    weir.start(generators)?;
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
            let line = if args.example != Example::Shop {
                generic_line(&st)
            } else {
                format!(
                    "events in {events_in} | silver {} | quarantine {} | late {} | gold {} | lag {lag} | {rate:.0} ev/s",
                    t["silver_events"]["rows_out"].as_u64().unwrap_or(0),
                    t["silver_events"]["quarantined"].as_u64().unwrap_or(0),
                    t["gold_category_minute"]["late"].as_u64().unwrap_or(0),
                    t["gold_category_minute"]["rows_out"].as_u64().unwrap_or(0),
                )
            };
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
    sim_stop.store(true, std::sync::atomic::Ordering::Relaxed);
    weir.stop();
    let w = weir.clone();
    tokio::task::spawn_blocking(move || w.join()).await?;
    let _ = stop_tx.send(());
    if args.example == Example::Shop {
        summary(&weir, &config, started.elapsed()).await
    } else {
        example_summary(&weir, &config, started.elapsed()).await
    }
}

/// The status line of the users and iot examples: records in per source, rows per table,
/// rows delivered per sink and the sinks' errors.
fn generic_line(st: &serde_json::Value) -> String {
    let mut parts = Vec::new();
    if let Some(sources) = st["sources"].as_object() {
        for (name, s) in sources {
            let mut p = format!("{name} in {}", s["records_in"].as_u64().unwrap_or(0));
            if let Some(e) = s["health"]["last_error"].as_str() {
                p.push_str(&format!(" (error: {e})"));
            }
            parts.push(p);
        }
    }
    if let Some(tables) = st["tables"].as_object() {
        for (name, t) in tables {
            parts.push(format!(
                "{name} {} (quarantined {})",
                t["rows_out"].as_u64().unwrap_or(0),
                t["quarantined"].as_u64().unwrap_or(0)
            ));
        }
    }
    if let Some(sinks) = st["sinks"].as_object() {
        for (name, k) in sinks {
            let mut p = format!("→ {name} {} rows", k["rows"].as_u64().unwrap_or(0));
            if let Some(e) = k["last_error"].as_str() {
                p.push_str(&format!(" (retrying: {e})"));
            }
            parts.push(p);
        }
    }
    format!(
        "{} | lag {}",
        parts.join(" | "),
        st["lag"].as_u64().unwrap_or(0)
    )
}

async fn example_summary(
    weir: &Arc<Weir>,
    config: &std::path::Path,
    elapsed: Duration,
) -> anyhow::Result<ExitCode> {
    let lake = weir.lake().clone();
    let views = weir_orchestrator::config::batch_views(weir.project());
    let (session, _) = weir_sql::query::QuerySession::try_new(lake.clone(), &views).await?;
    let p = &weir.project().config;
    let mut tables: Vec<String> = p.sources.keys().map(|s| format!("bronze_{s}")).collect();
    for (name, t) in &p.tables {
        tables.push(name.clone());
        if !t.expectations.is_empty() {
            tables.push(format!("{name}_quarantine"));
        }
    }
    println!("weir demo summary ({:.1} s)", elapsed.as_secs_f64());
    for t in &tables {
        let n = if lake.exists(t) {
            let rows = session
                .run(&format!("SELECT count(*) AS n FROM {t}"))
                .await?;
            rows.first()
                .and_then(|b| {
                    b.column(0)
                        .as_any()
                        .downcast_ref::<arrow::array::Int64Array>()
                        .map(|a| a.value(0))
                })
                .unwrap_or(0)
        } else {
            0
        };
        println!("  {t:<28} {n}");
    }
    let st = weir.status_json();
    if let Some(sinks) = st["sinks"].as_object() {
        for (name, k) in sinks {
            let target = match p.sinks.get(name) {
                Some(weir_connectors::SinkConfig::Postgres(c)) => {
                    format!("PostgreSQL table {}", c.table)
                }
                Some(other) => format!("{} sink", other.kind()),
                None => "sink".into(),
            };
            println!(
                "  → {name}: {} rows to {target}{}",
                k["rows"].as_u64().unwrap_or(0),
                k["last_error"]
                    .as_str()
                    .map(|e| format!(" (last error: {e})"))
                    .unwrap_or_default()
            );
        }
    }
    let c = config.display();
    println!("look at the tables:");
    for t in p.tables.keys() {
        println!("  weir query -c {c} \"SELECT * FROM {t} LIMIT 10\"");
    }
    for k in p.sinks.values() {
        if let weir_connectors::SinkConfig::Postgres(pg) = k {
            println!(
                "  psql \"$WEIR_PG_URL\" -c 'SELECT * FROM {} LIMIT 10'",
                pg.table
            );
        }
    }
    Ok(ExitCode::SUCCESS)
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
