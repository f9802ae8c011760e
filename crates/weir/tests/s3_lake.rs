//! The lake on S3-compatible object storage, end to end with the real binary, against the
//! server named by `WEIR_TEST_S3_ENDPOINT` and `WEIR_TEST_S3_BUCKET` (credentials in
//! `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`; `eval "$(bash .ci/s3.sh)"` starts one):
//!
//! - the shop pipeline with `lake = "s3://..."` is SIGKILLed during start-up and twice in the
//!   middle of its work, restarted each time, and at the end every event is in the Delta tables
//!   on S3 exactly once — checked with `weir query` and by reading the Delta table with delta-rs
//!   and a plain S3 client, sharing nothing with weir's reading path but the Delta protocol;
//! - a bucket that does not exist is reported by name;
//! - lake settings that cannot work are refused by `weir validate`, naming the key (these need
//!   no server).

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::AsArray;
use common::harness::*;
use common::oracle;
use weir_lake::deltalake::logstore::object_store::aws::AmazonS3Builder;
use weir_lake::deltalake::logstore::object_store::path::Path as ObjectPath;
use weir_lake::deltalake::logstore::object_store::{ObjectStore, ObjectStoreExt as _};
use weir_lake::deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

struct Server {
    endpoint: String,
    bucket: String,
}

fn server() -> Option<Server> {
    match std::env::var("WEIR_TEST_S3_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => Some(Server {
            endpoint,
            bucket: std::env::var("WEIR_TEST_S3_BUCKET").unwrap_or_else(|_| "weir-test".into()),
        }),
        _ => {
            eprintln!(
                "SKIPPED: set WEIR_TEST_S3_ENDPOINT and WEIR_TEST_S3_BUCKET (`eval \"$(bash .ci/s3.sh)\"` starts an S3-compatible server) to run the S3 lake tests"
            );
            None
        }
    }
}

impl Server {
    /// A lake URL under a prefix no other test (or run) uses.
    fn lake_url(&self, tag: &str) -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        format!(
            "s3://{}/weir-e2e/{tag}-{}-{nanos}",
            self.bucket,
            std::process::id()
        )
    }

    fn lake_config(&self) -> weir_lake::S3Config {
        weir_lake::S3Config {
            endpoint: Some(self.endpoint.clone()),
            allow_http: true,
            ..weir_lake::S3Config::default()
        }
    }

    /// A plain S3 client of the bucket, built here rather than by weir.
    fn store(&self) -> Arc<dyn ObjectStore> {
        Arc::new(
            AmazonS3Builder::from_env()
                .with_url(format!("s3://{}", self.bucket))
                .with_endpoint(&self.endpoint)
                .with_allow_http(true)
                .build()
                .unwrap(),
        )
    }
}

/// weir.toml's text with the lake at `url` and, when given, `[lake.s3]` settings appended.
fn with_lake(toml: &str, url: &str, s3: &str) -> String {
    let mut t = toml.replace(
        "data_dir = \"data\"",
        &format!("data_dir = \"data\"\nlake = \"{url}\""),
    );
    t.push_str(s3);
    t
}

fn s3_section(endpoint: &str) -> String {
    format!("\n[lake.s3]\nendpoint = \"{endpoint}\"\nallow_http = true\n")
}

/// The shop example with small batches, free ports and its lake at `url`.
fn project(dir: &Path, url: &str, endpoint: &str) -> PathBuf {
    shop_project(dir, |t| {
        let t = small_batches(t)
            .replace("max_batch_records = 7000", "max_batch_records = 2500")
            .replace("listen = \"127.0.0.1:8080\"", "listen = \"127.0.0.1:0\"")
            .replace(
                "pg_listen = \"127.0.0.1:5433\"",
                "pg_listen = \"127.0.0.1:0\"",
            );
        with_lake(&t, url, &s3_section(endpoint))
    })
}

fn weir() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_weir"));
    c.stdout(Stdio::null()).stderr(Stdio::null());
    c
}

/// Runs `weir run --exit-when-idle` until it is idle, or SIGKILLs it as soon as `kill_when`
/// holds; returns whether it was killed.
fn run(config: &Path, kill_when: impl Fn() -> bool) -> bool {
    let mut child = weir()
        .arg("run")
        .arg("-c")
        .arg(config)
        .arg("--exit-when-idle")
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "weir run exited with {status}");
            return false;
        }
        if kill_when() {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            return true;
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "weir run did not finish"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every `event_id` of Delta table `table` of the lake at `url`, read with delta-rs (for the
/// list of live files) and the test's own S3 client (for the Parquet files).
async fn delta_event_ids(s3: &Server, url: &str, table: &str) -> Vec<String> {
    // delta-rs needs a log store for the `s3://` scheme; the object store is the test's own.
    weir_lake::s3::register_handlers();
    let store = s3.store();
    let table_url = url::Url::parse(&format!("{url}/{table}/")).unwrap();
    let delta = weir_lake::deltalake::DeltaTableBuilder::from_url(table_url.clone())
        .unwrap()
        .with_storage_backend(store.clone(), table_url)
        .load()
        .await
        .unwrap();
    let bucket_root = format!("s3://{}/", s3.bucket);
    let mut ids = Vec::new();
    let files: Vec<String> = delta.get_file_uris().unwrap().collect();
    assert!(!files.is_empty(), "{table} has no files");
    for uri in files {
        let key = uri
            .strip_prefix(&bucket_root)
            .unwrap_or_else(|| panic!("{uri}"));
        let bytes = store
            .get(&ObjectPath::parse(key).unwrap())
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let col = arrow::compute::cast(
                batch.column_by_name("event_id").unwrap(),
                &arrow::datatypes::DataType::Utf8,
            )
            .unwrap();
            ids.extend(col.as_string::<i32>().iter().map(|v| v.unwrap().to_owned()));
        }
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_the_lake_on_s3_loses_and_duplicates_nothing() {
    let Some(s3) = server() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let lines = generate(40_000, 11);
    let input = tmp.path().join("events.jsonl");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let exp = oracle::compute(&refs);

    let url = s3.lake_url("shop");
    let config = project(&tmp.path().join("shop"), &url, &s3.endpoint);
    ok(&weir_cli(
        &["ingest", "events", input.to_str().unwrap()],
        &config,
    ));

    // Watches the commits on S3, as the test's own reader of the lake.
    let lake = weir_lake::Lake::try_s3(&url, &s3.lake_config()).unwrap();
    let bronze = || lake.latest_version("bronze_events");

    // During start-up and recovery, before the first commit.
    let started = Instant::now();
    assert!(
        run(&config, || started.elapsed() > Duration::from_millis(300)),
        "weir run finished within 300 ms"
    );
    // Twice in the middle of the work: once two more micro-batches have reached bronze.
    for _ in 0..2 {
        let from = bronze();
        assert!(
            run(&config, || bronze() >= from + 2),
            "weir run finished before it could be killed"
        );
        let n = count(&config, "bronze_events").await;
        assert!(
            n > 0 && n < lines.len() as i64,
            "killed mid-way, yet bronze has {n} of {} rows",
            lines.len()
        );
    }
    assert!(!run(&config, || false));

    assert!(
        !tmp.path().join("shop/data/lake").exists(),
        "the lake was written to the data directory"
    );
    assert_eq!(
        count(&config, "bronze_events").await,
        lines.len() as i64,
        "bronze rows"
    );
    let offsets = rows(
        &config,
        "SELECT count(DISTINCT \"offset\") FROM bronze_events",
    )
    .await;
    assert_eq!(offsets[0][0], lines.len().to_string(), "each offset once");
    let ids: Vec<String> = rows(&config, "SELECT event_id FROM silver_events")
        .await
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    let unique: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(ids.len(), unique.len(), "an event is in silver twice");
    assert_eq!(unique, exp.silver_ids, "silver differs from the oracle");
    let quarantine: std::collections::BTreeMap<String, usize> = rows(
        &config,
        "SELECT reason, count(*) FROM silver_events_quarantine GROUP BY reason ORDER BY reason",
    )
    .await
    .into_iter()
    .map(|r| (r[0].clone(), r[1].parse().unwrap()))
    .collect();
    assert_eq!(
        quarantine, exp.quarantine,
        "quarantine differs from the oracle"
    );

    // `weir query`, as a user runs it.
    let out = ok(&weir_cli(
        &[
            "query",
            "SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM silver_events",
            "--format",
            "csv",
        ],
        &config,
    ));
    let n = exp.silver_ids.len();
    assert_eq!(
        out.lines().last(),
        Some(format!("{n},{n}").as_str()),
        "{out}"
    );

    // The Delta table itself, read without weir.
    let direct = delta_event_ids(&s3, &url, "silver_events").await;
    assert_eq!(direct.len(), n, "rows of the Delta table on S3");
    let direct: BTreeSet<String> = direct.into_iter().collect();
    assert_eq!(direct, exp.silver_ids, "the Delta table on S3 differs");
}

#[test]
fn a_bucket_that_does_not_exist_is_named() {
    let Some(s3) = server() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let bucket = format!("weir-missing-{}", std::process::id());
    let config = shop_project(&tmp.path().join("shop"), |t| {
        with_lake(
            &t,
            &format!("s3://{bucket}/lake"),
            &s3_section(&s3.endpoint),
        )
    });
    // Validation does not contact the server; using the lake does.
    ok(&weir_cli(&["validate"], &config));
    let out = weir_cli(&["query", "SELECT 1"], &config);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("bucket `{bucket}`")) && err.contains("does not exist"),
        "{err}"
    );
}

#[test]
fn lake_settings_that_cannot_work_are_refused_naming_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let ok_url = "s3://weir-lake/shop";
    for (i, (url, s3, expected)) in [
        (
            Some("s3:///shop"),
            "",
            vec!["project.lake", "names no bucket"],
        ),
        (Some("s3://"), "", vec!["project.lake", "names no bucket"]),
        (
            Some("http://weir-lake/shop"),
            "",
            vec!["project.lake", "scheme `http://`"],
        ),
        (
            Some("s3://Weir_Lake/shop"),
            "",
            vec!["project.lake", "`Weir_Lake`"],
        ),
        (
            None,
            "\n[lake.s3]\nregion = \"eu-west-1\"\n",
            vec!["lake.s3", "s3://bucket/prefix"],
        ),
        (
            Some(ok_url),
            "\n[lake.s3]\nendpoint = \"http://127.0.0.1:9000\"\n",
            vec!["lake.s3.allow_http", "http://127.0.0.1:9000"],
        ),
        (
            Some(ok_url),
            "\n[lake.s3]\nendpoint = \"127.0.0.1:9000\"\n",
            vec!["lake.s3.endpoint", "127.0.0.1:9000"],
        ),
        (
            Some(ok_url),
            "\n[lake.s3]\naccess_key_id = \"k\"\n",
            vec!["lake.s3.secret_access_key"],
        ),
        (
            Some(ok_url),
            "\n[lake.s3]\nconditional_put = \"none\"\n",
            vec!["unknown variant `none`", "etag"],
        ),
        (
            Some(ok_url),
            "\n[lake.s3]\nendpont = \"https://s3.example.com\"\n",
            vec!["endpont"],
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let config = shop_project(&tmp.path().join(format!("p{i}")), |t| match url {
            Some(u) => with_lake(&t, u, s3),
            None => t + s3,
        });
        let out = weir_cli(&["validate"], &config);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{url:?} {s3}: accepted");
        for e in expected {
            assert!(err.contains(e), "{url:?} {s3}: `{e}` not in: {err}");
        }
    }
}
