//! `GET /metrics` while the shop pipeline runs: well-formed Prometheus text (every sample
//! after its HELP and TYPE, counters named `_total`, histogram buckets cumulative and ending in
//! `+Inf` = count), and the counters move as records flow.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::harness::*;

/// Samples by `name{labels}`, checking the text's structure on the way.
fn parse(text: &str) -> BTreeMap<String, f64> {
    let mut typed: BTreeMap<String, String> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(
                ["counter", "gauge", "histogram"].contains(&kind),
                "bad type: {line}"
            );
            if kind == "counter" {
                assert!(name.ends_with("_total"), "counter without _total: {name}");
            }
            assert!(
                typed.insert(name.to_owned(), kind.to_owned()).is_none(),
                "TYPE twice: {name}"
            );
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (key, value) = line.rsplit_once(' ').unwrap();
        let name = key.split('{').next().unwrap();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|b| typed.get(*b).is_some_and(|k| k == "histogram"))
            })
            .unwrap_or(name);
        assert!(typed.contains_key(family), "sample before its TYPE: {line}");
        assert!(name.starts_with("weir_"), "{line}");
        let v: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        assert!(
            out.insert(key.to_owned(), v).is_none(),
            "sample twice: {line}"
        );
    }
    out
}

/// `promtool check metrics` on `text`, when `WEIR_TEST_PROMTOOL` names the binary (`.ci/run`
/// installs it from the apt package prometheus).
fn promtool(text: &str) {
    use std::io::Write;
    let Ok(bin) = std::env::var("WEIR_TEST_PROMTOOL") else {
        eprintln!("SKIPPED: promtool check (set WEIR_TEST_PROMTOOL to the promtool binary)");
        return;
    };
    let mut child = std::process::Command::new(bin)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_well_formed_and_move() {
    let dir = tempfile::tempdir().unwrap();
    let config = shop_project(dir.path(), small_batches);
    let (weir, addr, tx) = serve_in_process(&config).await;
    let url = format!("http://{addr}/metrics");
    let scrape = |u: String| async move {
        tokio::task::spawn_blocking(move || {
            let r = ureq::get(&u).call().unwrap();
            assert!(r.content_type().starts_with("text/plain"));
            r.into_string().unwrap()
        })
        .await
        .unwrap()
    };
    let before_text = scrape(url.clone()).await;
    promtool(&before_text);
    let before = parse(&before_text);
    assert_eq!(before["weir_source_records_total{source=\"events\"}"], 0.0);

    let lines = generate(20_000, 7);
    let w = weir.clone();
    tokio::task::spawn_blocking(move || {
        ingest_lines(&w, &lines, 5000);
        wait_caught_up(&w, Duration::from_secs(120));
    })
    .await
    .unwrap();
    let after_text = scrape(url).await;
    promtool(&after_text);
    let after = parse(&after_text);
    assert_eq!(
        after["weir_source_records_total{source=\"events\"}"],
        20_000.0
    );
    assert_eq!(after["weir_pipeline_records_total"], 20_000.0);
    assert_eq!(
        after["weir_consumer_lag_records{topic=\"events\",partition=\"0\"}"],
        0.0
    );
    assert!(after["weir_table_output_rows_total{table=\"silver_events\"}"] > 19_000.0);
    assert!(after["weir_table_quarantined_rows_total{table=\"silver_events\"}"] > 0.0);
    assert!(after["weir_pipeline_batches_total"] >= 3.0);
    assert!(after["weir_delta_table_version{table=\"silver_events\"}"] >= 1.0);
    assert_eq!(after["weir_pipeline_up"], 1.0);
    assert!(after["weir_process_resident_memory_bytes"] > 1e6);
    assert!(
        after["weir_log_size_bytes{topic=\"events\"}"]
            > before["weir_log_size_bytes{topic=\"events\"}"] + 1e6
    );
    let buckets: Vec<f64> = after
        .iter()
        .filter(|(k, _)| k.starts_with("weir_end_to_end_latency_seconds_bucket"))
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(
        after["weir_end_to_end_latency_seconds_bucket{le=\"+Inf\"}"],
        after["weir_end_to_end_latency_seconds_count"]
    );
    assert_eq!(after["weir_end_to_end_latency_seconds_count"], 20_000.0);
    let mut by_le: Vec<(f64, f64)> = after
        .iter()
        .filter_map(|(k, v)| {
            let le = k.strip_prefix("weir_end_to_end_latency_seconds_bucket{le=\"")?;
            let le = le.strip_suffix("\"}")?;
            Some((
                if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().ok()?
                },
                *v,
            ))
        })
        .collect();
    by_le.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert_eq!(by_le.len(), buckets.len());
    assert!(by_le.windows(2).all(|w| w[0].1 <= w[1].1), "{by_le:?}");
    // Batch and Delta commit durations: one observation per batch / per commit.
    assert_eq!(
        after["weir_batch_duration_seconds_count"],
        after["weir_pipeline_batches_total"]
    );
    assert_eq!(
        after["weir_batch_duration_seconds_bucket{le=\"+Inf\"}"],
        after["weir_batch_duration_seconds_count"]
    );
    let commits = after["weir_delta_commit_duration_seconds_count{table=\"silver_events\"}"];
    assert!(commits >= 1.0 && commits <= after["weir_pipeline_batches_total"]);
    assert!(after["weir_delta_commit_duration_seconds_sum{table=\"silver_events\"}"] > 0.0);
    assert!(
        after["weir_process_cpu_seconds_total"] > before["weir_process_cpu_seconds_total"],
        "CPU time did not move"
    );

    // The shop DAGs ran their latest scheduled runs at start.
    let w = weir.clone();
    tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while w
            .dags()
            .unwrap()
            .store()
            .run_counts()
            .unwrap()
            .iter()
            .all(|(_, s, _)| s != "success")
        {
            assert!(std::time::Instant::now() < deadline, "no DAG run finished");
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await
    .unwrap();
    let text = scrape(format!("http://{addr}/metrics")).await;
    promtool(&text);
    let m = parse(&text);
    assert!(
        m.iter()
            .any(|(k, v)| k.starts_with("weir_dag_runs{dag=\"daily_customer\"") && *v >= 1.0),
        "{text}"
    );
    assert!(
        m.iter()
            .any(|(k, v)| k.starts_with("weir_dag_task_attempts_total{")
                && k.contains("state=\"success\"")
                && *v >= 1.0),
        "{text}"
    );

    let _ = tx.send(());
    weir.stop();
    tokio::task::spawn_blocking(move || weir.join())
        .await
        .unwrap();
}
