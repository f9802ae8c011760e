//! `weir bench serve`: what serving costs. Builds silver from N shop events, then measures
//! the PostgreSQL endpoint (a point query and a one-day aggregate, through the wire protocol
//! with a minimal client, so the figures are the server's), the `/metrics` scrape time, and
//! the pipeline's throughput with and without a dashboard attached (the SSE stream and the
//! polls of the dashboard's pipeline and tables views), runs alternated.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use weir_connectors::generator::GeneratorConfig;
use weir_orchestrator::Weir;

/// A PostgreSQL connection speaking the simple query protocol — just enough to time queries.
struct PgConn {
    stream: TcpStream,
}

impl PgConn {
    fn connect(addr: SocketAddr, database: &str) -> anyhow::Result<Self> {
        let mut stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        let mut body = Vec::new();
        body.extend_from_slice(&196_608i32.to_be_bytes());
        for (k, v) in [("user", "bench"), ("database", database)] {
            body.extend_from_slice(k.as_bytes());
            body.push(0);
            body.extend_from_slice(v.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut msg = ((body.len() + 4) as i32).to_be_bytes().to_vec();
        msg.extend_from_slice(&body);
        stream.write_all(&msg)?;
        let mut c = Self { stream };
        c.until_ready()?;
        Ok(c)
    }

    fn message(&mut self) -> anyhow::Result<(u8, Vec<u8>)> {
        let mut head = [0u8; 5];
        self.stream.read_exact(&mut head)?;
        let len = i32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let mut body = vec![0u8; len.saturating_sub(4)];
        self.stream.read_exact(&mut body)?;
        Ok((head[0], body))
    }

    /// Reads to ReadyForQuery; returns the data rows seen.
    fn until_ready(&mut self) -> anyhow::Result<usize> {
        let mut rows = 0;
        let mut error = None;
        loop {
            let (kind, body) = self.message()?;
            match kind {
                b'D' => rows += 1,
                b'E' => error = Some(String::from_utf8_lossy(&body).replace('\0', " ")),
                b'R' if body.get(..4) != Some(&[0, 0, 0, 0]) => {
                    bail!("the bench connects without a password; this weir asks for one")
                }
                b'Z' => break,
                _ => {}
            }
        }
        match error {
            Some(e) => bail!("query failed: {e}"),
            None => Ok(rows),
        }
    }

    /// Sends a simple-protocol Query message.
    fn send_query(&mut self, sql: &str) -> anyhow::Result<()> {
        let mut msg = vec![b'Q'];
        msg.extend_from_slice(&((sql.len() + 5) as i32).to_be_bytes());
        msg.extend_from_slice(sql.as_bytes());
        msg.push(0);
        Ok(self.stream.write_all(&msg)?)
    }

    fn query(&mut self, sql: &str) -> anyhow::Result<usize> {
        self.send_query(sql)?;
        self.until_ready()
    }

    /// The first column of the first row, as text.
    fn scalar(&mut self, sql: &str) -> anyhow::Result<String> {
        self.send_query(sql)?;
        let mut value = None;
        loop {
            let (kind, body) = self.message()?;
            match kind {
                b'D' if value.is_none() && body.len() >= 6 => {
                    let len = i32::from_be_bytes([body[2], body[3], body[4], body[5]]);
                    if len >= 0 {
                        value =
                            Some(String::from_utf8_lossy(&body[6..6 + len as usize]).into_owned());
                    }
                }
                b'E' => bail!("{}", String::from_utf8_lossy(&body).replace('\0', " ")),
                b'Z' => break,
                _ => {}
            }
        }
        value.context("the query returned no value")
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn summary(mut ms: Vec<f64>) -> serde_json::Value {
    ms.sort_by(f64::total_cmp);
    serde_json::json!({
        "runs": ms.len(),
        "p50_ms": percentile(&ms, 0.5),
        "p90_ms": percentile(&ms, 0.9),
        "min_ms": percentile(&ms, 0.0),
    })
}

/// What follows the pipeline during a "with dashboard" run.
#[derive(Debug, Clone)]
pub enum Viewer {
    /// The dashboard's own requests, made from threads (its SSE stream and its polls).
    Simulated,
    /// A real headless Chromium showing the dashboard page (this path to the binary).
    Chromium(PathBuf),
}

/// A finished pipeline run whose project is still open and served.
struct Run {
    rate: f64,
    weir: Arc<Weir>,
    stop: tokio::sync::oneshot::Sender<()>,
}

/// Runs the shop pipeline on `events` generated events in `dir` (a fresh project); with
/// `dashboard`, a simulated browser follows it the whole time.
async fn pipeline_run(dir: &Path, events: u64, dashboard: Option<&Viewer>) -> anyhow::Result<Run> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    crate::init::init(dir)?;
    let project = crate::cli::load(&dir.join("weir.toml"))?;
    let weir = Weir::open(project)?;
    let listen = weir_server::listen::Listen {
        http: "127.0.0.1:0".into(),
        pg: None,
        insecure: false,
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let served = weir_server::listen::start(weir.clone(), &listen, async move {
        let _ = stop_rx.await;
    })
    .await?;
    let done = Arc::new(AtomicBool::new(false));
    let mut browser = Vec::new();
    let mut chromium = None;
    match dashboard {
        Some(Viewer::Simulated) => browser = attach_dashboard(served.http, done.clone()),
        Some(Viewer::Chromium(bin)) => {
            let profile = dir.join("chromium-profile");
            chromium = Some(
                std::process::Command::new(bin)
                    .args([
                        "--headless=new",
                        "--no-sandbox",
                        "--disable-gpu",
                        "--no-first-run",
                    ])
                    .arg(format!("--user-data-dir={}", profile.display()))
                    .arg(format!("http://{}/", served.http))
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .with_context(|| format!("starting {}", bin.display()))?,
            );
            // Let the page load and open its stream before the clock starts.
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        None => {}
    }
    let started = Instant::now();
    weir.start(vec![(
        "events".into(),
        GeneratorConfig {
            rate: None,
            events: Some(events),
            ..GeneratorConfig::default()
        },
    )])?;
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let st = weir.pipeline_status();
        if let Some(e) = st.error {
            bail!("pipeline failed: {e}");
        }
        if st.records_processed >= events {
            break;
        }
    }
    let rate = events as f64 / started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    if let Some(mut c) = chromium {
        let _ = c.kill();
        let _ = c.wait();
    }
    weir.stop();
    let w = weir.clone();
    tokio::task::spawn_blocking(move || w.join()).await?;
    for b in browser {
        let _ = b.join();
    }
    Ok(Run {
        rate,
        weir,
        stop: stop_tx,
    })
}

/// What the dashboard's pipeline and tables views ask for, from two threads: the SSE stream
/// read as it comes, and the views' polls at their periods.
fn attach_dashboard(http: SocketAddr, done: Arc<AtomicBool>) -> Vec<std::thread::JoinHandle<()>> {
    let base = format!("http://{http}");
    let d = done.clone();
    let b = base.clone();
    let sse = std::thread::spawn(move || {
        while !d.load(Ordering::Relaxed) {
            if let Ok(r) = ureq::get(&format!("{b}/v1/stream")).call() {
                let mut reader = r.into_reader();
                let mut buf = [0u8; 8192];
                while !d.load(Ordering::Relaxed) {
                    match reader.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
            } else {
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    });
    let polls = std::thread::spawn(move || {
        let started = Instant::now();
        let mut tick = 0u64;
        while !done.load(Ordering::Relaxed) {
            let every = |s: u64| tick.is_multiple_of(s);
            let mut paths = Vec::new();
            if every(2) {
                paths.push("/v1/pipeline".to_string());
            }
            if every(5) {
                paths.push("/v1/tables".into());
                paths.push("/v1/tables/silver_events".into());
            }
            if every(10) {
                paths.push("/v1/tables/silver_events/history?limit=20".into());
                paths.push("/v1/tables/silver_events/preview?limit=50".into());
            }
            for p in paths {
                let _ = ureq::get(&format!("{base}{p}"))
                    .call()
                    .map(|r| r.into_string());
            }
            tick += 1;
            let next = started + Duration::from_secs(tick);
            while Instant::now() < next && !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    });
    vec![sse, polls]
}

pub async fn run(
    events: u64,
    queries: usize,
    pairs: usize,
    dir: Option<PathBuf>,
    viewer: Viewer,
) -> anyhow::Result<()> {
    let root = dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("weir-bench-serve-{}", std::process::id()))
    });
    std::fs::create_dir_all(&root)?;

    // 1. Throughput with and without a dashboard, alternated so drift hits both alike.
    let mut without = Vec::new();
    let mut with = Vec::new();
    let mut last = None;
    for i in 0..pairs.max(1) {
        for dashboard in [false, true] {
            if let Some(Run { stop, .. }) = last.take() {
                let _ = stop.send(());
            }
            let dir = root.join(format!("run-{i}-{dashboard}"));
            let run = pipeline_run(&dir, events, dashboard.then_some(&viewer)).await?;
            eprintln!(
                "pair {}: dashboard {dashboard}: {:.0} events/s",
                i + 1,
                run.rate
            );
            if dashboard {
                with.push(run.rate);
            } else {
                without.push(run.rate);
            }
            last = Some(run);
        }
    }
    without.sort_by(f64::total_cmp);
    with.sort_by(f64::total_cmp);
    let (m0, m1) = (percentile(&without, 0.5), percentile(&with, 0.5));

    // 2. The last run's lake (N events through silver) serves the pg and /metrics figures.
    let Some(Run { weir, stop, .. }) = last else {
        bail!("no run");
    };
    let _ = stop.send(());
    let database = weir.project().config.project.name.clone();
    let listen = weir_server::listen::Listen {
        http: "127.0.0.1:0".into(),
        pg: Some("127.0.0.1:0".into()),
        insecure: false,
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let served = weir_server::listen::start(weir.clone(), &listen, async move {
        let _ = stop_rx.await;
    })
    .await?;
    let pg = served.pg.context("no pg address")?;
    let http = served.http;
    let figures = tokio::task::spawn_blocking(move || -> anyhow::Result<serde_json::Value> {
        let mut c = PgConn::connect(pg, &database)?;
        let silver_rows = c.scalar("SELECT count(*) FROM silver_events")?;
        let id = c.scalar("SELECT event_id FROM silver_events ORDER BY event_id DESC LIMIT 1")?;
        let day = c.scalar("SELECT CAST(min(date) AS VARCHAR) FROM silver_events")?;
        let day_rows = c.scalar(&format!("SELECT count(*) FROM silver_events WHERE date = DATE '{day}'"))?;
        let point = format!("SELECT * FROM silver_events WHERE event_id = '{id}'");
        let aggregate = format!(
            "SELECT product_category, count(*) AS events, sum(amount) AS revenue, \
             count(DISTINCT customer_id) AS customers FROM silver_events \
             WHERE date = DATE '{day}' GROUP BY product_category ORDER BY product_category"
        );
        let mut time = |sql: &str| -> anyhow::Result<Vec<f64>> {
            c.query(sql)?; // warm
            let mut ms = Vec::new();
            for _ in 0..queries {
                let t = Instant::now();
                c.query(sql)?;
                ms.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            Ok(ms)
        };
        let point_ms = time(&point)?;
        let agg_ms = time(&aggregate)?;
        let url = format!("http://{http}/metrics");
        let mut scrape = Vec::new();
        let mut bytes = 0;
        for _ in 0..queries {
            let t = Instant::now();
            let text = ureq::get(&url).call()?.into_string()?;
            scrape.push(t.elapsed().as_secs_f64() * 1000.0);
            bytes = text.len();
        }
        Ok(serde_json::json!({
            "silver_rows": silver_rows,
            "pg_point_query": { "sql": point, "latency": summary(point_ms) },
            "pg_day_aggregate": { "day": day, "rows_in_day": day_rows, "sql": aggregate, "latency": summary(agg_ms) },
            "metrics_scrape": { "bytes": bytes, "latency": summary(scrape) },
        }))
    })
    .await??;
    let _ = stop_tx.send(());
    let result = serde_json::json!({
        "bench": "serve",
        "events": events,
        "viewer": match &viewer {
            Viewer::Simulated => "simulated (SSE stream + pipeline and tables views' polls)".to_string(),
            Viewer::Chromium(p) => format!("headless Chromium ({})", p.display()),
        },
        "serving": figures,
        "throughput": {
            "without_dashboard_events_per_second": without,
            "with_dashboard_events_per_second": with,
            "median_without": m0,
            "median_with": m1,
            "with_over_without": m1 / m0,
        },
    });
    println!("{}", serde_json::to_string_pretty(&result)?);
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}
