//! A lake in an object store: what [`crate::Lake`] does with `std::fs` for a local lake
//! (listing tables, finding a table's newest version, reading its commit files), done with
//! `object_store` requests.
//!
//! Those requests run on one small runtime of the lake layer's own ([`io`]), never on the
//! caller's: the sync methods of `Lake` are called from axum handlers and pipeline tasks, where
//! blocking on the caller's runtime would stall it or panic, so they hand the request to that
//! runtime and wait on a channel; async callers await the spawned task. The S3 client used here
//! lives only on that runtime (its pooled connections belong to it). delta-rs builds its own
//! clients for the tables it opens (see `s3.rs`).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};

use deltalake::logstore::object_store::aws::AmazonS3;
use deltalake::logstore::object_store::list::{PaginatedListOptions, PaginatedListStore as _};
use deltalake::logstore::object_store::path::Path as ObjectPath;
use deltalake::logstore::object_store::{self, ObjectMeta, ObjectStore as _, ObjectStoreExt as _};
use futures::stream::{BoxStream, StreamExt as _, TryStreamExt as _};
use tokio::runtime::{Handle, Runtime};
use url::Url;

use crate::error::{LakeError, Result};

/// The lake layer's IO runtime (created on first use, kept for the life of the process, so it
/// is never dropped inside an async context).
pub(crate) fn io() -> Result<Handle> {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt.handle().clone());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("weir-lake-io")
        .enable_all()
        .build()
        .map_err(|source| LakeError::Io {
            path: "the lake's IO runtime".into(),
            source,
        })?;
    if let Err(lost) = RUNTIME.set(rt) {
        // Another thread made one first; shutting this one down does not block.
        lost.shutdown_background();
    }
    RUNTIME
        .get()
        .map(|rt| rt.handle().clone())
        .ok_or_else(|| LakeError::BadLocation {
            path: "the lake's IO runtime".into(),
            reason: "it could not be started".into(),
        })
}

/// A lake under `url` (`s3://bucket/prefix/`) in `store`.
pub(crate) struct ObjectLake {
    pub(crate) url: Url,
    /// `prefix` of the URL: the lake's root in the bucket.
    prefix: ObjectPath,
    /// Rooted at the bucket; used on the IO runtime only.
    store: Arc<AmazonS3>,
    /// The storage options delta-rs opens the lake's tables with (they may hold credentials).
    pub(crate) options: HashMap<String, String>,
    io: Handle,
    /// The newest version seen per table, so that polling lists only newer commit files.
    latest: Mutex<HashMap<String, i64>>,
}

impl std::fmt::Debug for ObjectLake {
    // Not the options: they may hold credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectLake")
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

impl ObjectLake {
    pub(crate) fn new(
        url: Url,
        prefix: ObjectPath,
        store: Arc<AmazonS3>,
        options: HashMap<String, String>,
    ) -> Result<Self> {
        Ok(Self {
            url,
            prefix,
            store,
            options,
            io: io()?,
            latest: Mutex::new(HashMap::new()),
        })
    }

    /// Runs `f` on the IO runtime and waits for it on this thread (which must not be one of
    /// the IO runtime's own). `None` if the task panicked.
    pub(crate) fn wait<T, F, Fut>(self: &Arc<Self>, f: F) -> Option<T>
    where
        T: Send + 'static,
        F: FnOnce(Arc<Self>) -> Fut,
        Fut: Future<Output = T> + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let fut = f(self.clone());
        self.io.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().ok()
    }

    /// Runs `f` on the IO runtime and awaits it. `None` if the task panicked.
    pub(crate) async fn run<T, F, Fut>(self: &Arc<Self>, f: F) -> Option<T>
    where
        T: Send + 'static,
        F: FnOnce(Arc<Self>) -> Fut,
        Fut: Future<Output = T> + Send + 'static,
    {
        self.io.spawn(f(self.clone())).await.ok()
    }

    fn table_dir(&self, name: &str) -> ObjectPath {
        self.prefix.clone().join(name)
    }

    fn log_dir(&self, name: &str) -> ObjectPath {
        self.table_dir(name).join("_delta_log")
    }

    pub(crate) fn commit_path(&self, name: &str, version: i64) -> ObjectPath {
        self.log_dir(name)
            .join(format!("{version:020}.json").as_str())
    }

    fn store_err(&self, op: &'static str, path: &ObjectPath, e: object_store::Error) -> LakeError {
        LakeError::Store {
            op,
            location: format!("{}{}", bucket_url(&self.url), path),
            source: Box::new(e),
        }
    }

    /// Lists the lake's root once: fails, naming the bucket and the endpoint, when the bucket
    /// does not exist or cannot be reached with the configured endpoint and credentials.
    pub(crate) async fn check(&self) -> Result<()> {
        let root = (!self.prefix.as_ref().is_empty()).then_some(&self.prefix);
        let Err(e) = self.store.list_with_delimiter(root).await else {
            return Ok(());
        };
        let endpoint = self
            .options
            .get("aws_endpoint")
            .cloned()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
            .or_else(|| std::env::var("AWS_ENDPOINT").ok())
            .map_or_else(|| "AWS S3".to_owned(), |e| format!("`{e}`"));
        Err(LakeError::Unreachable {
            url: self.url.to_string(),
            bucket: self.url.host_str().unwrap_or("").to_owned(),
            endpoint,
            hint: hint(&e),
            source: Box::new(e),
        })
    }

    /// Whether table `name` has a commit file: its `_delta_log` is not empty. One listing
    /// request for at most one key, however long the log.
    pub(crate) async fn exists(&self, name: &str) -> Result<bool> {
        let dir = self.log_dir(name);
        let opts = PaginatedListOptions {
            max_keys: Some(1),
            ..PaginatedListOptions::default()
        };
        self.store
            .list_paginated(Some(&format!("{dir}/")), opts)
            .await
            .map(|page| !page.result.objects.is_empty())
            .map_err(|e| self.store_err("list", &dir, e))
    }

    /// Names of the tables, sorted: the lake root's "directories" holding a `_delta_log`.
    pub(crate) async fn table_names(&self) -> Result<Vec<String>> {
        let root = (!self.prefix.as_ref().is_empty()).then_some(&self.prefix);
        let listing = self
            .store
            .list_with_delimiter(root)
            .await
            .map_err(|e| self.store_err("list", &self.prefix, e))?;
        let candidates: Vec<String> = listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_owned))
            .collect();
        let checks = futures::stream::iter(candidates)
            .map(|name| async move {
                let present = self.exists(&name).await;
                (name, present)
            })
            .buffer_unordered(8)
            .collect::<Vec<_>>()
            .await;
        let mut names = Vec::with_capacity(checks.len());
        for (name, present) in checks {
            if present? {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// The newest committed version of table `name`, -1 when it has none. After the first
    /// call only the commit files newer than the last version seen are listed (plus one HEAD
    /// when there is none), however long the log.
    pub(crate) async fn latest_version(&self, name: &str) -> Result<i64> {
        let dir = self.log_dir(name);
        let known = self
            .latest
            .lock()
            .map(|m| m.get(name).copied())
            .unwrap_or(None);
        if let Some(known) = known.filter(|v| *v >= 0) {
            let seen = self.commit_path(name, known);
            let newer = newest(self.store.list_with_offset(Some(&dir), &seen))
                .await
                .map_err(|e| self.store_err("list", &dir, e))?;
            if newer > known {
                self.remember(name, newer);
                return Ok(newer);
            }
            match self.store.head(&seen).await {
                Ok(_) => return Ok(known),
                // The table was deleted or recreated: list it all again.
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.store_err("read", &seen, e)),
            }
        }
        let v = newest(self.store.list(Some(&dir)))
            .await
            .map_err(|e| self.store_err("list", &dir, e))?;
        self.remember(name, v);
        Ok(v)
    }

    fn remember(&self, name: &str, version: i64) {
        if let Ok(mut m) = self.latest.lock() {
            m.insert(name.to_owned(), version);
        }
    }

    /// The text of commit `version` of table `name`; `None` when it does not exist (never
    /// written, or removed by log cleanup).
    pub(crate) async fn read_commit(&self, name: &str, version: i64) -> Result<Option<String>> {
        let path = self.commit_path(name, version);
        let got = match self.store.get(&path).await {
            Ok(g) => g,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.store_err("read", &path, e)),
        };
        let bytes = got
            .bytes()
            .await
            .map_err(|e| self.store_err("read", &path, e))?;
        Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
    }
}

/// What to check after a failed listing of the lake root, from the server's answer (its error
/// code is in the message); empty when the answer says nothing more specific.
fn hint(e: &object_store::Error) -> String {
    let text = e.to_string();
    if text.contains("NoSuchBucket") {
        "; the bucket does not exist: create it, or fix the bucket name in `lake`".into()
    } else if [
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "AccessDenied",
        "403 Forbidden",
    ]
    .iter()
    .any(|c| text.contains(c))
    {
        "; the server refused the credentials: check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or [lake.s3] access_key_id and secret_access_key)".into()
    } else {
        String::new()
    }
}

/// `s3://bucket/` of a lake URL, for messages.
fn bucket_url(url: &Url) -> String {
    format!("{}://{}/", url.scheme(), url.host_str().unwrap_or(""))
}

/// The highest version among the commit files (`<20 digits>.json`) of a listing, -1 if none.
async fn newest(
    mut listing: BoxStream<'static, object_store::Result<ObjectMeta>>,
) -> object_store::Result<i64> {
    let mut max = -1;
    while let Some(meta) = listing.try_next().await? {
        if let Some(v) = meta
            .location
            .filename()
            .and_then(|n| n.strip_suffix(".json"))
            .and_then(|n| n.parse::<i64>().ok())
        {
            max = max.max(v);
        }
    }
    Ok(max)
}
