//! The lake on a real S3-compatible server (`WEIR_TEST_S3_ENDPOINT` and `WEIR_TEST_S3_BUCKET`,
//! credentials in `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`; `eval "$(bash .ci/s3.sh)"`
//! starts one): listing tables, newest versions, history, details and newest rows read from the
//! bucket; a writer with a stale view of the table does not overwrite another's commit (the
//! commit file is written put-if-absent); a bucket that does not exist is reported by name.
//!
//! Every test works under a prefix of its own, so the tests run in parallel on one bucket.

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use weir_core::ErrorKind;
use weir_lake::deltalake::logstore::object_store::aws::AmazonS3Builder;
use weir_lake::deltalake::logstore::object_store::path::Path as ObjectPath;
use weir_lake::deltalake::logstore::object_store::{ObjectStoreExt as _, PutPayload};
use weir_lake::{Lake, LakeError, S3Config, TableInspector};

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
    fn config(&self) -> S3Config {
        S3Config {
            endpoint: Some(self.endpoint.clone()),
            allow_http: self.endpoint.starts_with("http://"),
            ..S3Config::default()
        }
    }

    /// A lake URL under a prefix no other test (or run) uses.
    fn lake_url(&self, tag: &str) -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        format!(
            "s3://{}/weir-lake-tests/{tag}-{}-{nanos}",
            self.bucket,
            std::process::id()
        )
    }
}

fn batch(ids: std::ops::Range<i64>) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]));
    let names: Vec<String> = ids.clone().map(|i| format!("n{i}")).collect();
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from_iter_values(ids)),
            Arc::new(StringArray::from_iter_values(names)),
        ],
    )
    .unwrap()
}

fn rows_added(c: &weir_lake::Commit) -> u64 {
    c.metrics["rows_added"].as_u64().unwrap()
}

// A current-thread runtime: the sync methods wait for the lake's own IO runtime, so they work
// even where the caller's runtime has a single thread.
#[tokio::test(flavor = "current_thread")]
async fn listing_versions_and_history_come_from_the_bucket() {
    let Some(s3) = server() else { return };
    let url = s3.lake_url("listing");
    let lake = Lake::try_s3(&url, &s3.config()).unwrap();
    assert!(lake.local_root().is_none());
    assert!(lake.location().ends_with('/'), "{}", lake.location());

    assert!(lake.table_names().is_empty());
    assert!(!lake.exists("events"));
    assert!(!lake.has_table("events").await);
    assert_eq!(lake.latest_version("events"), -1);
    assert!(matches!(
        lake.history("events", 10),
        Err(LakeError::NoSuchTable { .. })
    ));

    let mut w = lake.writer("events", vec![]).await.unwrap();
    assert_eq!(
        w.append_once(vec![batch(0..100)], "test", 0).await.unwrap(),
        Some(0)
    );
    assert!(lake.exists("events"));
    assert!(lake.has_table("events").await);
    assert_eq!(lake.latest_version("events"), 0);
    assert_eq!(
        w.append_once(vec![batch(100..200)], "test", 1)
            .await
            .unwrap(),
        Some(1)
    );
    // Seen version 0 before: only newer commit files are listed.
    assert_eq!(lake.latest_version("events"), 1);
    // Nothing newer: the version seen is confirmed.
    assert_eq!(lake.latest_version_async("events").await, 1);
    // A replayed batch writes nothing.
    assert_eq!(
        w.append_once(vec![batch(100..200)], "test", 1)
            .await
            .unwrap(),
        None
    );
    assert_eq!(lake.latest_version("events"), 1);

    let history = lake.history("events", 10).unwrap();
    let versions: Vec<i64> = history.iter().map(|c| c.version).collect();
    assert_eq!(versions, [1, 0]);
    assert!(history.iter().all(|c| rows_added(c) == 100), "{history:?}");
    assert!(history.iter().all(|c| c.timestamp_ms.is_some()));
    let newest = lake.history_async("events", 1).await.unwrap();
    assert_eq!(newest.len(), 1);
    assert_eq!(newest[0].version, 1);

    let mut other = lake.writer("other", vec![]).await.unwrap();
    other
        .append_once(vec![batch(0..5)], "test", 0)
        .await
        .unwrap();
    // Something under the lake's prefix that is not a table is not listed.
    let store = AmazonS3Builder::from_env()
        .with_url(format!("s3://{}", s3.bucket))
        .with_endpoint(&s3.endpoint)
        .with_allow_http(true)
        .build()
        .unwrap();
    let prefix = url.strip_prefix(&format!("s3://{}/", s3.bucket)).unwrap();
    store
        .put(
            &ObjectPath::from(format!("{prefix}/notes/readme.txt")),
            PutPayload::from(b"not a table".to_vec()),
        )
        .await
        .unwrap();
    assert_eq!(lake.table_names(), ["events", "other"]);

    // A second handle, with nothing remembered, sees the same.
    let again = Lake::try_s3(&url, &s3.config()).unwrap();
    assert_eq!(again.table_names(), ["events", "other"]);
    assert_eq!(again.latest_version("events"), 1);

    let info = lake.info("events").await.unwrap();
    assert_eq!((info.version, info.files), (1, 2));
    let v0 = lake.open("events", Some(0)).await.unwrap();
    assert_eq!(v0.version(), Some(0));
    assert!(matches!(
        lake.open("events", Some(7)).await,
        Err(LakeError::NoSuchVersion { latest: 1, .. })
    ));

    let inspector = TableInspector::new(lake.clone());
    let detail = inspector.detail("events").await.unwrap();
    assert_eq!((detail.version, detail.files, detail.rows), (1, 2, 200));
    assert!(detail.last_commit_ms.is_some());
    let (schema, rows) = inspector.newest_rows("events", 3).await.unwrap();
    assert_eq!(schema.fields().len(), 2);
    let ids: Vec<i64> = rows
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .values()
                .to_vec()
        })
        .collect();
    assert_eq!(ids, [199, 198, 197]);
}

/// Two writers, the second with a view of the table from before the first one's commit: the
/// second one's commit of the same version is refused by the server (put-if-absent), delta-rs
/// commits it as the next version, and both batches are in the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_writer_does_not_overwrite_a_commit() {
    let Some(s3) = server() else { return };
    let url = s3.lake_url("stale");
    let lake = Lake::try_s3(&url, &s3.config()).unwrap();
    let mut first = lake.writer("t", vec![]).await.unwrap();
    first
        .append_once(vec![batch(0..10)], "first", 0)
        .await
        .unwrap();
    // Both handles see version 0.
    let mut second = lake.writer("t", vec![]).await.unwrap();
    assert_eq!(second.version(), 0);
    assert_eq!(
        first
            .append_once(vec![batch(10..20)], "first", 1)
            .await
            .unwrap(),
        Some(1)
    );
    // Version 1 exists; the second writer still believes 0 is the newest.
    assert_eq!(
        second
            .append_once(vec![batch(20..30)], "second", 0)
            .await
            .unwrap(),
        Some(2)
    );
    let history = lake.history("t", 10).unwrap();
    assert_eq!(history.len(), 3, "{history:?}");
    assert!(history.iter().all(|c| rows_added(c) == 10), "{history:?}");
    let detail = TableInspector::new(lake.clone()).detail("t").await.unwrap();
    assert_eq!((detail.version, detail.rows), (2, 30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_is_named() {
    let Some(s3) = server() else { return };
    let bucket = format!("weir-missing-{}", std::process::id());
    let err = Lake::try_s3(&format!("s3://{bucket}/lake"), &s3.config()).unwrap_err();
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(matches!(err, LakeError::Unreachable { .. }), "{msg}");
    assert!(msg.contains(&format!("bucket `{bucket}`")), "{msg}");
    assert!(msg.contains("does not exist"), "{msg}");
    assert_eq!(err.kind(), ErrorKind::User);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_are_reported() {
    let Some(s3) = server() else { return };
    let config = S3Config {
        access_key_id: Some("weir-wrong-key".into()),
        secret_access_key: Some("weir-wrong-secret".into()),
        ..s3.config()
    };
    let err = Lake::try_s3(&s3.lake_url("creds"), &config).unwrap_err();
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(matches!(err, LakeError::Unreachable { .. }), "{msg}");
    assert!(msg.contains(&format!("bucket `{}`", s3.bucket)), "{msg}");
    assert!(msg.contains("credentials"), "{msg}");
}

#[test]
fn a_bad_url_is_refused_before_any_request() {
    for (url, says) in [
        ("s3:///lake", "names no bucket"),
        ("gs://bucket/lake", "scheme `gs://`"),
    ] {
        let err = Lake::try_s3(url, &S3Config::default()).unwrap_err();
        assert!(err.to_string().contains(says), "{url}: {err}");
        assert_eq!(err.kind(), ErrorKind::User);
    }
}
