//! Argument definitions and dispatch.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use weir_orchestrator::{Project, Weir};

/// weir — a whole data pipeline (ingest, durable log, streaming SQL, Delta lakehouse) in one binary.
#[derive(Debug, Parser)]
#[command(name = "weir", version, about, long_about = None)]
pub struct Cli {
    /// Project config file.
    #[arg(
        short = 'c',
        long = "config",
        global = true,
        default_value = "weir.toml"
    )]
    pub config: PathBuf,
    /// Log progress at info level (WEIR_LOG=debug for more).
    #[arg(short = 'v', long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create an example project in DIR (the shop pipeline unless --example says otherwise).
    Init {
        /// Directory to create (must not hold a weir.toml yet).
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Which example: shop (HTTP events → silver/gold), users (REST API → PostgreSQL) or
        /// iot (MQTT → 1-minute averages → PostgreSQL).
        #[arg(long, value_enum, default_value = "shop")]
        example: crate::init::Example,
    },
    /// Check weir.toml and every table's SQL without running anything.
    Validate,
    /// Run the project: sources, pipeline, HTTP server and PostgreSQL endpoint, until Ctrl-C.
    Run {
        /// HTTP listen address (overrides [server] listen).
        #[arg(long)]
        listen: Option<String>,
        /// PostgreSQL wire listen address (overrides [server] pg_listen; "" turns it off).
        #[arg(long)]
        pg_listen: Option<String>,
        /// Listen on non-loopback addresses even without [server.auth].
        #[arg(long)]
        insecure: bool,
        /// Exit once the pipeline has processed everything in the log (lag 0).
        #[arg(long)]
        exit_when_idle: bool,
    },
    /// Run the shop pipeline on generated events with a live status line.
    Demo(crate::demo::DemoArgs),
    /// Run SQL over every table of the lake.
    Query {
        /// The statement. `"table@vN"` reads version N of a table.
        sql: String,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Send JSON lines (a file, or - for stdin) to an http source.
    Ingest {
        /// The http source's name.
        source: String,
        /// File of JSON lines; `-` or nothing reads stdin.
        #[arg(default_value = "-")]
        file: String,
    },
    /// Show offsets, lag and table counters (from the running server, else from disk).
    Status,
    /// DAGs: list, show, trigger, backfill, runs, logs, clear.
    #[command(subcommand)]
    Dag(crate::dag::DagCommand),
    /// Dead letters: list, show, replay (after fixing weir.toml).
    Dlq(crate::dlq::DlqArgs),
    /// Benchmarks.
    Bench(crate::bench::BenchArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

pub async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Init { dir, example } => {
            crate::init::init_example(&dir, example)?;
            println!(
                "created the {} example project in {}",
                format!("{example:?}").to_lowercase(),
                dir.display()
            );
            println!("next: weir run -c {}", dir.join("weir.toml").display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate => {
            let project = load(&cli.config)?;
            let tables = weir_orchestrator::pipeline::plan_tables(&project).await?;
            println!(
                "{}: ok ({} sources, {} streaming tables, {} batch tables, {} DAGs)",
                cli.config.display(),
                project.config.sources.len(),
                tables.len(),
                weir_orchestrator::config::batch_views(&project).len(),
                project.config.dags.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            listen,
            pg_listen,
            insecure,
            exit_when_idle,
        } => {
            let project = load(&cli.config)?;
            let listen = weir_server::listen::Listen {
                http: listen.unwrap_or_else(|| project.config.server.listen.clone()),
                pg: Some(pg_listen.unwrap_or_else(|| project.config.server.pg_listen.clone())),
                insecure,
            };
            let weir = Weir::open(project)?;
            weir.start(Vec::new())?;
            let served =
                match weir_server::listen::start(weir.clone(), &listen, shutdown_signal()).await {
                    Ok(s) => s,
                    Err(e) => {
                        weir.stop();
                        let w = weir.clone();
                        tokio::task::spawn_blocking(move || w.join()).await?;
                        return Err(e.into());
                    }
                };
            eprintln!("weir is running (Ctrl-C to stop)");
            eprintln!("  dashboard   http://{}/", served.http);
            eprintln!("  API         http://{}/v1/status", served.http);
            if let Some(pg) = served.pg {
                eprintln!(
                    "  PostgreSQL  psql -h {} -p {} -d {}",
                    pg.ip(),
                    pg.port(),
                    weir.project().config.project.name
                );
            }
            let mut signal = Box::pin(shutdown_signal());
            loop {
                tokio::select! {
                    _ = &mut signal => break,
                    _ = tokio::time::sleep(std::time::Duration::from_millis(100)) => {}
                }
                if let Some(e) = weir.pipeline_status().error {
                    eprintln!("the pipeline stopped: {e}");
                    if exit_when_idle {
                        weir.stop();
                        return Ok(ExitCode::FAILURE);
                    }
                }
                if exit_when_idle && weir.caught_up() {
                    break;
                }
            }
            eprintln!("stopping…");
            weir.stop();
            let w = weir.clone();
            tokio::task::spawn_blocking(move || w.join()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo(args) => crate::demo::run(args).await,
        Command::Query { sql, format } => {
            let project = load(&cli.config)?;
            crate::query::run(&project, &sql, format).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Ingest { source, file } => {
            let project = load(&cli.config)?;
            let body = if file == "-" {
                let mut b = Vec::new();
                std::io::stdin()
                    .read_to_end(&mut b)
                    .context("reading stdin")?;
                b
            } else {
                std::fs::read(&file).with_context(|| format!("reading {file}"))?
            };
            ingest(&project, &source, &body)
        }
        Command::Status => {
            let project = load(&cli.config)?;
            status(&project)
        }
        Command::Bench(args) => crate::bench::run(args).await,
        Command::Dag(cmd) => {
            let project = load(&cli.config)?;
            crate::dag::run(project, cmd).await
        }
        Command::Dlq(args) => {
            let project = load(&cli.config)?;
            crate::dlq::run(&project, args)
        }
    }
}

pub fn load(path: &Path) -> anyhow::Result<Project> {
    Ok(Project::load(path)?)
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

fn base_url(project: &Project) -> String {
    format!("http://{}", project.config.server.listen)
}

/// Sends `body` to the running server in chunks of whole lines, or, when no server answers,
/// appends to the log directly.
fn ingest(project: &Project, source: &str, body: &[u8]) -> anyhow::Result<ExitCode> {
    let url = format!("{}/v1/sources/{source}/records", base_url(project));
    let probe = ureq::get(&format!("{}/health", base_url(project)))
        .timeout(std::time::Duration::from_secs(2))
        .call();
    let (mut accepted, mut rejected) = (0u64, 0u64);
    if probe.is_ok() {
        let limit = 8 << 20;
        let mut start = 0;
        while start < body.len() {
            let mut end = (start + limit).min(body.len());
            if end < body.len() {
                end = body[start..end]
                    .iter()
                    .rposition(|b| *b == b'\n')
                    .map_or(end, |p| start + p + 1);
            }
            let chunk = &body[start..end];
            start = end;
            if chunk.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let resp = loop {
                match ureq::post(&url).send_bytes(chunk) {
                    Err(ureq::Error::Status(503, r)) => {
                        let wait = r
                            .header("retry-after")
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(1);
                        std::thread::sleep(std::time::Duration::from_secs(wait));
                    }
                    Err(ureq::Error::Status(code, r)) => {
                        let text = r.into_string().unwrap_or_default();
                        bail!("server answered {code}: {text}");
                    }
                    Err(e) => bail!("sending to {url}: {e}"),
                    Ok(r) => break r,
                }
            };
            let v: serde_json::Value = resp.into_json().context("reading the server's answer")?;
            accepted += v["accepted"].as_u64().unwrap_or(0);
            rejected += v["rejected"].as_u64().unwrap_or(0);
        }
    } else {
        let weir = Weir::open(project.clone())?;
        let r = weir.ingest(source, body)?;
        accepted = r.accepted;
        rejected = r.rejected;
    }
    println!(
        "{}",
        serde_json::json!({"accepted": accepted, "rejected": rejected})
    );
    Ok(ExitCode::SUCCESS)
}

fn status(project: &Project) -> anyhow::Result<ExitCode> {
    let url = format!("{}/v1/status", base_url(project));
    match ureq::get(&url)
        .timeout(std::time::Duration::from_secs(3))
        .call()
    {
        Ok(r) => {
            let v: serde_json::Value = r.into_json()?;
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        Err(_) => {
            // Not running: read offsets from disk.
            let weir: Arc<Weir> = Weir::open(project.clone())?;
            let mut v = weir.status_json();
            let log = weir.log();
            if let Some(sources) = v["sources"].as_object_mut() {
                for (name, s) in sources.iter_mut() {
                    let mut lag = 0;
                    if let Some(parts) = s["partitions"].as_array_mut() {
                        for p in parts {
                            let pid = p["partition"].as_u64().unwrap_or(0) as u32;
                            let committed = log
                                .cursor(weir_orchestrator::pipeline::GROUP, name, pid)?
                                .unwrap_or(0);
                            let end = p["end_offset"].as_u64().unwrap_or(0);
                            p["committed_offset"] = committed.into();
                            p["lag"] = end.saturating_sub(committed).into();
                            lag += end.saturating_sub(committed);
                        }
                    }
                    s["lag"] = lag.into();
                }
            }
            v["running"] = false.into();
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}
