//! Shared helpers of weir's end-to-end tests: temporary shop projects, generated input, an
//! in-process pipeline run, and queries over the lake.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray};
use arrow::record_batch::RecordBatch;
use weir_orchestrator::{Project, Weir};

/// Runs the weir binary with `args` and `-c config`.
pub fn weir_cli(args: &[&str], config: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .arg("-c")
        .arg(config)
        .output()
        .unwrap()
}

/// The stdout of a command that must have succeeded (else both outputs in the panic).
pub fn ok(o: &std::process::Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// The repository's shop example.
pub fn shop_example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/shop")
}

/// Copies the shop example into `dir`, applying `edit` to weir.toml's text.
pub fn shop_project(dir: &Path, edit: impl Fn(String) -> String) -> PathBuf {
    let src = shop_example();
    std::fs::create_dir_all(dir.join("sql")).unwrap();
    for f in std::fs::read_dir(src.join("sql")).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), dir.join("sql").join(f.file_name())).unwrap();
    }
    let toml = std::fs::read_to_string(src.join("weir.toml")).unwrap();
    let path = dir.join("weir.toml");
    std::fs::write(&path, edit(toml)).unwrap();
    path
}

/// Smaller batches so a test exercises many micro-batches.
pub fn small_batches(toml: String) -> String {
    toml.replace("max_batch_records = 250000", "max_batch_records = 7000")
        .replace("interval = \"200ms\"", "interval = \"20ms\"")
}

/// `n` lines from weir's shop generator.
pub fn generate(n: u64, seed: u64) -> Vec<String> {
    let mut g = weir_connectors::generator::ShopEvents::new(seed, 1_768_435_200_000);
    let mut out = Vec::with_capacity(n as usize);
    let mut buf = Vec::new();
    for _ in 0..n {
        buf.clear();
        g.next_line(&mut buf);
        out.push(String::from_utf8(buf.clone()).unwrap());
    }
    out
}

/// Sends `lines` to source `events` in bodies of `chunk` lines.
pub fn ingest_lines(weir: &Weir, lines: &[String], chunk: usize) {
    for c in lines.chunks(chunk) {
        let mut body = c.join("\n");
        body.push('\n');
        let r = weir.ingest("events", body.as_bytes()).unwrap();
        assert_eq!(r.accepted as usize, c.len());
    }
}

/// Waits until the pipeline has read everything in the log (or fails after `limit`).
pub fn wait_caught_up(weir: &Weir, limit: Duration) {
    let start = Instant::now();
    loop {
        let st = weir.status_json();
        if let Some(e) = st["pipeline"]["error"].as_str() {
            panic!("pipeline failed: {e}");
        }
        if st["lag"].as_u64() == Some(0) {
            return;
        }
        assert!(start.elapsed() < limit, "pipeline did not catch up: {st}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A started project with its HTTP server on a free loopback port; sending on (or dropping)
/// the returned sender stops the server.
pub async fn serve_in_process(
    config: &Path,
) -> (
    Arc<Weir>,
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
) {
    let weir = Weir::open(Project::load(config).unwrap()).unwrap();
    weir.start(Vec::new()).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let addr = weir_server::serve(weir.clone(), "127.0.0.1:0", async move {
        let _ = rx.await;
    })
    .await
    .unwrap();
    (weir, addr, tx)
}

/// Opens, starts, feeds and drains a project in-process, then stops it.
pub fn run_in_process(config: &Path, lines: &[String]) {
    let project = Project::load(config).unwrap();
    let weir = Weir::open(project).unwrap();
    weir.start(Vec::new()).unwrap();
    ingest_lines(&weir, lines, 5000);
    wait_caught_up(&weir, Duration::from_secs(300));
    weir.stop();
    weir.join();
}

/// Runs `sql` over the project's lake.
pub async fn query(config: &Path, sql: &str) -> Vec<RecordBatch> {
    let project = Project::load(config).unwrap();
    let lake = project.open_lake().unwrap();
    let views = weir_orchestrator::config::batch_views(&project);
    let (s, _) = weir_sql::query::QuerySession::try_new(lake, &views)
        .await
        .unwrap();
    s.run(sql).await.unwrap()
}

/// Rows of a query as strings (every column cast to text), in result order.
pub async fn rows(config: &Path, sql: &str) -> Vec<Vec<String>> {
    let batches = query(config, sql).await;
    let mut out = Vec::new();
    for b in batches {
        let cols: Vec<Arc<dyn Array>> = b
            .columns()
            .iter()
            .map(|c| arrow::compute::cast(c, &arrow::datatypes::DataType::Utf8).unwrap())
            .collect();
        for r in 0..b.num_rows() {
            out.push(
                cols.iter()
                    .map(|c| {
                        let s = c.as_string::<i32>();
                        if s.is_null(r) {
                            "NULL".to_string()
                        } else {
                            s.value(r).to_string()
                        }
                    })
                    .collect(),
            );
        }
    }
    out
}

pub async fn count(config: &Path, table: &str) -> i64 {
    let r = rows(config, &format!("SELECT count(*) FROM {table}")).await;
    r[0][0].parse().unwrap()
}

/// Streaming gold: (window_start as "YYYY-MM-DDTHH:MM:SSZ", category) → (events, purchases,
/// revenue cents, customers).
pub async fn gold1(
    config: &Path,
    table_sql: &str,
) -> BTreeMap<(String, String), (i64, i64, i64, i64)> {
    let sql = format!(
        "SELECT to_char(window_start, '%Y-%m-%dT%H:%M:%SZ'), product_category, events, purchases, \
         CAST(round(revenue * 100) AS BIGINT), customers FROM ({table_sql}) t"
    );
    rows(config, &sql)
        .await
        .into_iter()
        .map(|r| {
            (
                (r[0].clone(), r[1].clone()),
                (
                    r[2].parse().unwrap(),
                    r[3].parse().unwrap(),
                    r[4].parse().unwrap(),
                    r[5].parse().unwrap(),
                ),
            )
        })
        .collect()
}
