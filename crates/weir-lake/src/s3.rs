//! The lake on S3-compatible object storage: the `[lake.s3]` settings, the checks of an
//! `s3://bucket/prefix` lake URL, and the handlers that let delta-rs open `s3://` tables.
//!
//! delta-rs finds the object store of a table URL through two process-wide registries keyed by
//! URL scheme; [`register_handlers`] puts weir's `s3://` entries there. The object store is an
//! `object_store` Amazon S3 client built from the storage options weir passes with every table
//! it opens ([`S3Config::storage_options`]), falling back to the standard `AWS_*` environment
//! variables for anything the options leave out. The log store is delta-rs's default one: it
//! writes each commit file with put-if-absent (`If-None-Match: *`), so two writers can never
//! both commit the same version on a server that enforces conditional puts. Listing and
//! reading the `_delta_log` for dashboards is in `table.rs` and `inspect.rs`.

use std::collections::HashMap;
use std::sync::{Arc, Once};

use deltalake::logstore::object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use deltalake::logstore::object_store::path::Path as ObjectPath;
use deltalake::logstore::{
    LogStore, LogStoreFactory, ObjectStoreFactory, ObjectStoreRef, StorageConfig, default_logstore,
    logstore_factories, object_store_factories,
};
use deltalake::{DeltaResult, DeltaTableError};
use serde::{Deserialize, Serialize};
use url::Url;

/// `[lake.s3]`: how weir reaches the object store of an `s3://bucket/prefix` lake. The
/// endpoint, the region and the credentials, when left out, come from the standard AWS
/// environment variables (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`) or an instance or container role.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// URL of an S3-compatible server (MinIO, Ceph, R2, a local test server), e.g.
    /// "http://127.0.0.1:9000". Absent: AWS S3 itself.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The bucket's region, e.g. "eu-west-1". Absent: `AWS_REGION`, else "us-east-1" (which
    /// most S3-compatible servers accept).
    #[serde(default)]
    pub region: Option<String>,
    /// Permit an `http://` endpoint (no TLS): for a server on loopback or a private network.
    #[serde(default)]
    pub allow_http: bool,
    /// Address the bucket as a host name (`https://bucket.endpoint/key`) instead of a path
    /// (`https://endpoint/bucket/key`). Path style, the default, works with AWS S3 and every
    /// S3-compatible server; some hosted services need virtual-hosted style.
    #[serde(default)]
    pub virtual_hosted_style: bool,
    /// How a Delta commit makes sure it does not overwrite another writer's commit of the same
    /// version: `etag` is put-if-absent with the HTTP precondition `If-None-Match: *`.
    #[serde(default)]
    pub conditional_put: ConditionalPut,
    /// Access key id. Absent: `AWS_ACCESS_KEY_ID` (or the instance's or container's role).
    /// Write `"${MY_VAR}"` to read it from another environment variable.
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// Secret access key. Absent: `AWS_SECRET_ACCESS_KEY`. Keep it out of weir.toml: write
    /// `"${MY_VAR}"` to read it from an environment variable.
    #[serde(default)]
    pub secret_access_key: Option<String>,
    /// Session token of temporary credentials. Absent: `AWS_SESSION_TOKEN`.
    #[serde(default)]
    pub session_token: Option<String>,
}

/// The put-if-absent method of Delta commits on S3.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConditionalPut {
    /// `If-None-Match: *` on the commit file's PUT (AWS S3 since 2024, MinIO, Ceph, R2).
    #[default]
    Etag,
}

impl S3Config {
    /// Checks the settings without contacting the server. An error is the key (below
    /// `[lake.s3]`) and what is wrong with it.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if let Some(e) = &self.endpoint {
            let url = Url::parse(e).map_err(|err| {
                (
                    "endpoint",
                    format!("`{e}` is not a URL ({err}): expected e.g. \"https://s3.example.com\" or \"http://127.0.0.1:9000\""),
                )
            })?;
            match url.scheme() {
                "https" => {}
                "http" if self.allow_http => {}
                "http" => {
                    return Err((
                        "allow_http",
                        format!(
                            "the endpoint `{e}` is plain http: set `allow_http = true` (for a server on a trusted network) or use https"
                        ),
                    ));
                }
                s => {
                    return Err((
                        "endpoint",
                        format!("`{e}` has the scheme `{s}`: expected http:// or https://"),
                    ));
                }
            }
            if url.host_str().is_none_or(str::is_empty) {
                return Err(("endpoint", format!("`{e}` names no host")));
            }
        }
        if self.region.as_deref().is_some_and(|r| r.trim().is_empty()) {
            return Err((
                "region",
                "expected a region like \"us-east-1\", or leave the key out".into(),
            ));
        }
        match (&self.access_key_id, &self.secret_access_key) {
            (Some(_), None) => Err((
                "secret_access_key",
                "`access_key_id` is set: give `secret_access_key` too (e.g. \"${AWS_SECRET_ACCESS_KEY}\")".into(),
            )),
            (None, Some(_)) => Err((
                "access_key_id",
                "`secret_access_key` is set: give `access_key_id` too (e.g. \"${AWS_ACCESS_KEY_ID}\")".into(),
            )),
            _ if self.session_token.is_some() && self.access_key_id.is_none() => Err((
                "session_token",
                "a session token belongs to an access key: give `access_key_id` and `secret_access_key` too".into(),
            )),
            _ => Ok(()),
        }
    }

    /// The options delta-rs passes to weir's `s3://` object store factory for every table of
    /// the lake. Keys are `object_store`'s Amazon S3 configuration keys.
    pub fn storage_options(&self) -> HashMap<String, String> {
        let mut o = HashMap::new();
        if let Some(e) = &self.endpoint {
            o.insert("aws_endpoint".into(), e.trim_end_matches('/').to_owned());
        }
        if let Some(r) = &self.region {
            o.insert("aws_region".into(), r.trim().to_owned());
        }
        o.insert("aws_allow_http".into(), self.allow_http.to_string());
        o.insert(
            "aws_virtual_hosted_style_request".into(),
            self.virtual_hosted_style.to_string(),
        );
        o.insert(
            "aws_conditional_put".into(),
            match self.conditional_put {
                ConditionalPut::Etag => "etag".into(),
            },
        );
        for (key, value) in [
            ("aws_access_key_id", &self.access_key_id),
            ("aws_secret_access_key", &self.secret_access_key),
            ("aws_session_token", &self.session_token),
        ] {
            if let Some(v) = value {
                o.insert(key.into(), v.clone());
            }
        }
        o
    }
}

/// Checks an `s3://bucket/prefix` lake URL and returns it normalized to end in `/` (the root
/// every table URL is joined to). An error says what is wrong, naming the value.
pub fn parse_lake_url(text: &str) -> Result<Url, String> {
    let expected =
        "expected s3://bucket/prefix (leave `lake` out for a lake in the data directory)";
    // `s3://` and `s3:///prefix` have an empty host, which some URL parsers refuse outright.
    if let Some(rest) = text.trim().strip_prefix("s3://")
        && (rest.is_empty() || rest.starts_with('/'))
    {
        return Err(format!("`{text}` names no bucket: {expected}"));
    }
    let url =
        Url::parse(text.trim()).map_err(|e| format!("`{text}` is not a URL ({e}): {expected}"))?;
    if url.scheme() != "s3" {
        return Err(format!(
            "`{text}`: the scheme `{}://` is not supported; {expected}",
            url.scheme()
        ));
    }
    let bucket = url.host_str().unwrap_or("");
    if bucket.is_empty() {
        return Err(format!("`{text}` names no bucket: {expected}"));
    }
    check_bucket(bucket).map_err(|why| format!("`{text}`: the bucket name `{bucket}` {why}"))?;
    if !url.username().is_empty() || url.password().is_some() || url.port().is_some() {
        return Err(format!(
            "`{text}`: credentials and ports do not go in the lake URL; put the server in [lake.s3] endpoint and the keys in the environment"
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("`{text}` has a query or fragment: {expected}"));
    }
    let path = url.path().trim_matches('/');
    let mut segments = Vec::new();
    if !path.is_empty() {
        for s in path.split('/') {
            if s.is_empty() || s == "." || s == ".." {
                return Err(format!(
                    "`{text}`: the prefix `{path}` has an empty, `.` or `..` segment"
                ));
            }
            segments.push(s);
        }
    }
    let mut root = format!("s3://{bucket}/");
    for s in segments {
        root.push_str(s);
        root.push('/');
    }
    Url::parse(&root).map_err(|e| format!("`{text}` is not a URL ({e}): {expected}"))
}

/// S3's bucket naming rules, in short: what is wrong with `name`, if anything.
fn check_bucket(name: &str) -> Result<(), &'static str> {
    if !(3..=63).contains(&name.len()) {
        return Err("must be 3 to 63 characters long");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    {
        return Err("may hold only lowercase letters, digits, `-` and `.`");
    }
    let ends_ok = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !ends_ok(name.bytes().next()) || !ends_ok(name.bytes().last()) {
        return Err("must begin and end with a letter or digit");
    }
    Ok(())
}

/// The object store path of an `s3://bucket/prefix/` URL: `prefix`.
pub(crate) fn object_path(url: &Url) -> Result<ObjectPath, String> {
    ObjectPath::from_url_path(url.path().trim_matches('/')).map_err(|e| e.to_string())
}

/// An S3 client for the bucket of `url`, from the standard `AWS_*` environment variables and
/// then `options` (which win).
pub(crate) fn build_store(
    url: &Url,
    options: &HashMap<String, String>,
) -> Result<
    deltalake::logstore::object_store::aws::AmazonS3,
    deltalake::logstore::object_store::Error,
> {
    let mut builder = AmazonS3Builder::from_env().with_url(url.as_str());
    for (k, v) in options {
        // Options meant for delta-rs itself (none today) are not S3 keys.
        if let Ok(key) = k.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() {
            builder = builder.with_config(key, v);
        }
    }
    builder.build()
}

/// Registers weir's `s3://` handlers with delta-rs (once per process): tables under `s3://`
/// URLs open with an S3 client built from their storage options, and commit through delta-rs's
/// default log store (put-if-absent commit files).
pub fn register_handlers() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // A constant URL: parsing it cannot fail.
        let Ok(scheme) = Url::parse("s3://") else {
            return;
        };
        object_store_factories().insert(scheme.clone(), Arc::new(S3StoreFactory));
        logstore_factories().insert(scheme, Arc::new(S3LogStoreFactory));
    });
}

struct S3StoreFactory;

impl ObjectStoreFactory for S3StoreFactory {
    fn parse_url_opts(
        &self,
        url: &Url,
        config: &StorageConfig,
    ) -> DeltaResult<(ObjectStoreRef, ObjectPath)> {
        let store = build_store(url, &config.raw)?;
        let path = object_path(url).map_err(DeltaTableError::InvalidTableLocation)?;
        Ok((Arc::new(store), path))
    }
}

struct S3LogStoreFactory;

impl LogStoreFactory for S3LogStoreFactory {
    fn with_options(
        &self,
        prefixed_store: ObjectStoreRef,
        root_store: ObjectStoreRef,
        location: &Url,
        options: &StorageConfig,
    ) -> DeltaResult<Arc<dyn LogStore>> {
        Ok(default_logstore(
            prefixed_store,
            root_store,
            location,
            options,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lake_urls() {
        assert_eq!(
            parse_lake_url("s3://my-bucket/a/b").unwrap().as_str(),
            "s3://my-bucket/a/b/"
        );
        assert_eq!(
            parse_lake_url("s3://my-bucket").unwrap().as_str(),
            "s3://my-bucket/"
        );
        assert_eq!(
            parse_lake_url("s3://my-bucket/lake/").unwrap().as_str(),
            "s3://my-bucket/lake/"
        );
        for (bad, says) in [
            ("s3:///lake", "names no bucket"),
            ("s3://", "names no bucket"),
            ("gs://b/lake", "scheme `gs://`"),
            ("/data/lake", "not a URL"),
            ("s3://My_Bucket/x", "bucket name `My_Bucket`"),
            ("s3://ab/x", "3 to 63"),
            ("s3://b-1/x//y", "empty"),
            ("s3://key:secret@bucket/x", "credentials"),
        ] {
            let e = parse_lake_url(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn settings_are_checked() {
        let ok = S3Config {
            endpoint: Some("http://127.0.0.1:9000".into()),
            allow_http: true,
            ..S3Config::default()
        };
        assert!(ok.validate().is_ok());
        let no_http = S3Config {
            allow_http: false,
            ..ok.clone()
        };
        assert_eq!(no_http.validate().unwrap_err().0, "allow_http");
        let bad = S3Config {
            endpoint: Some("127.0.0.1:9000".into()),
            ..ok.clone()
        };
        assert_eq!(bad.validate().unwrap_err().0, "endpoint");
        let half = S3Config {
            access_key_id: Some("k".into()),
            ..ok.clone()
        };
        assert_eq!(half.validate().unwrap_err().0, "secret_access_key");
        let o = ok.storage_options();
        assert_eq!(o["aws_endpoint"], "http://127.0.0.1:9000");
        assert_eq!(o["aws_conditional_put"], "etag");
        assert_eq!(o["aws_virtual_hosted_style_request"], "false");
        // Every option is a key the S3 client knows.
        for k in o.keys() {
            assert!(k.parse::<AmazonS3ConfigKey>().is_ok(), "{k}");
        }
    }
}
