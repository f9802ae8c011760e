//! The `rest` source: GET a JSON API on a schedule (a users API every minute, say), follow its
//! pagination, and append every record of every page to the source's topic.
//!
//! ```toml
//! [sources.users]
//! type = "rest"
//! url = "https://randomuser.me/api/?seed=weir"
//! every = "1m"
//! records = "$.results"
//! headers = { Authorization = "Bearer ${API_TOKEN}" }
//! key = "login.uuid"
//! pagination = { type = "page", param = "page", size_param = "results", size = 100, max_pages = 10 }
//! ```
//!
//! Each record (an element of the array at `records`) is appended as its own JSON object text,
//! nesting kept; a table flattens it by declaring dotted fields in its schema (`name.first
//! string`, see `weir_sql::decode`) and naming them in SQL (`"name.first" AS first_name`).
//! An element that is not an object goes to the dead-letter topic (`not_an_object`). A body
//! that is not JSON, or has nothing at `records`, fails the poll with a message naming the URL
//! and the path; the next poll tries again.
//!
//! Requests ([`fetch`]) are retried on connection errors, timeouts, 5xx, 408 and 429 with
//! exponential backoff (at least what `Retry-After` asks), spaced by `rate_limit`; every failed
//! attempt shows in the source's health (`/v1/status`, `/metrics`).
//!
//! Delivery: a REST API has no offsets, so a poll re-reads a whole snapshot and the same
//! records come back poll after poll. What the source guarantees is that every record of every
//! successful poll is in the log (at least once); exactly once in a table comes from
//! deduplicating on the record's key there (`dedup = { key = "login.uuid", ... }`).
//! Position: after each page is durable, [`source`] writes the poll's start time and the next
//! page to `<state_dir>/poll.json` (replaced atomically). Written after the append, it can be
//! behind the log but never ahead of it: a restart never skips a page, at worst re-reads one,
//! and does not poll again before `every` has passed since the last poll started.

pub mod fetch;
pub mod path;
pub mod source;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use weir_core::{ByteSize, HumanDuration};

use self::path::JsonPath;
pub use self::source::RestSource;

/// `[sources.<name>] type = "rest"`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestConfig {
    /// URL to GET (`http` or `https`); `${NAME}` is replaced by the environment variable
    /// `NAME`. Status and logs show it with secrets masked: a `user:password@` password and
    /// the value of query parameters named like one (`api_key`, `token`, `sig`, ...).
    pub url: String,
    /// Time between the starts of two polls.
    #[serde(default = "default_every")]
    pub every: HumanDuration,
    /// JSON path of the records in a response: an array (each element is a record) or an
    /// object (one record). `$` is the whole body; also `$.a.b` and `$.a[0].b`.
    #[serde(default = "default_records")]
    pub records: String,
    /// Request headers, e.g. `{ Authorization = "Bearer ${API_TOKEN}" }` (`${NAME}` as in
    /// `url`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Longest wait for one response (connecting, sending and reading the whole body).
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// Retries of a failed request (connection error, timeout, 5xx, 408, 429) before the poll
    /// gives up until the next one; 0 never retries.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Most requests per second (`rate_limit = 5`) or least time between two requests
    /// (`rate_limit = "200ms"`), retries included. No limit when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Partitions of the source's topic.
    #[serde(default = "default_partitions")]
    pub partitions: u32,
    /// Schema registry subject every record must match; records that do not go to the
    /// dead-letter queue with the path and the reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Field of each record (`id`, `login.uuid`) whose value is the log key: it picks the
    /// partition, so one entity's records stay in order. Round-robin when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// How to request the next page; one request per poll when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pagination: Option<Pagination>,
    /// Largest accepted response body; a larger one fails the poll.
    #[serde(default = "default_max_body")]
    pub max_body_size: ByteSize,
}

fn default_every() -> HumanDuration {
    HumanDuration(Duration::from_secs(60))
}
fn default_records() -> String {
    "$".into()
}
fn default_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}
fn default_retries() -> u32 {
    5
}
fn default_partitions() -> u32 {
    1
}
fn default_max_body() -> ByteSize {
    ByteSize(64 << 20)
}

/// How the pages of a paginated API are requested (`pagination = { type = "...", ... }`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Pagination {
    /// Numbered pages: `?page=1`, `?page=2`, ...
    Page(PagePagination),
    /// Record offsets: `?offset=0&limit=100`, `?offset=100&limit=100`, ...
    Offset(OffsetPagination),
    /// An opaque cursor from each response sent back with the next request.
    Cursor(CursorPagination),
    /// The `Link: <...>; rel="next"` response header (RFC 8288).
    Link(LinkPagination),
}

/// `pagination = { type = "page", ... }`. Stops at an empty page, at a page shorter than
/// `size`, or after `max_pages`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagePagination {
    /// Query parameter holding the page number.
    #[serde(default = "default_page_param")]
    pub param: String,
    /// Number of the first page.
    #[serde(default = "default_page_start")]
    pub start: u64,
    /// Query parameter holding the page size (e.g. `results`, `per_page`); not sent when
    /// absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_param: Option<String>,
    /// Records per page; a shorter page is the last one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Most pages per poll (an API that never returns an empty page needs it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pages: Option<u64>,
}

/// `pagination = { type = "offset", ... }`. Stops at a page shorter than `limit` or after
/// `max_pages`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OffsetPagination {
    /// Query parameter holding the offset of the first record of the page.
    #[serde(default = "default_offset_param")]
    pub param: String,
    /// Offset of the first page.
    #[serde(default)]
    pub start: u64,
    /// Query parameter holding the page size.
    #[serde(default = "default_limit_param")]
    pub limit_param: String,
    /// Records per page.
    #[serde(default = "default_limit")]
    pub limit: u64,
    /// Most pages per poll.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pages: Option<u64>,
}

/// `pagination = { type = "cursor", ... }`. Stops when the response has no next cursor
/// (missing, null or empty), at an empty page, or after `max_pages`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CursorPagination {
    /// Query parameter the cursor is sent in.
    #[serde(default = "default_cursor_param")]
    pub param: String,
    /// JSON path of the next cursor in a response, e.g. `$.info.next_cursor`.
    pub next: String,
    /// Most pages per poll.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pages: Option<u64>,
}

/// `pagination = { type = "link" }`. Follows `rel="next"` until a response has none, or
/// after `max_pages`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkPagination {
    /// Most pages per poll.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pages: Option<u64>,
}

fn default_page_param() -> String {
    "page".into()
}
fn default_page_start() -> u64 {
    1
}
fn default_offset_param() -> String {
    "offset".into()
}
fn default_limit_param() -> String {
    "limit".into()
}
fn default_limit() -> u64 {
    100
}
fn default_cursor_param() -> String {
    "cursor".into()
}

/// Pages per poll when `max_pages` is not set: a guard against an API that ignores the page
/// parameter and answers the same full page forever.
pub const DEFAULT_MAX_PAGES: u64 = 10_000;

impl Pagination {
    /// The configured `max_pages`, if any.
    pub fn max_pages(&self) -> Option<u64> {
        match self {
            Pagination::Page(p) => p.max_pages,
            Pagination::Offset(p) => p.max_pages,
            Pagination::Cursor(p) => p.max_pages,
            Pagination::Link(p) => p.max_pages,
        }
    }
}

/// `rate_limit`: a number of requests per second, or a duration between requests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RateLimit {
    PerSecond(f64),
    Interval(HumanDuration),
}

impl RateLimit {
    /// Least time between the starts of two requests.
    pub fn min_interval(&self) -> Duration {
        match self {
            RateLimit::PerSecond(n) if *n > 0.0 && n.is_finite() => {
                Duration::from_secs_f64(1.0 / n)
            }
            RateLimit::PerSecond(_) => Duration::ZERO,
            RateLimit::Interval(d) => d.0,
        }
    }
}

impl Serialize for RateLimit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            RateLimit::PerSecond(n) => s.serialize_f64(*n),
            RateLimit::Interval(d) => d.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for RateLimit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = RateLimit;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "requests per second (`5`, `0.5`) or a duration between requests (`\"200ms\"`)",
                )
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<RateLimit, E> {
                Ok(RateLimit::PerSecond(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RateLimit, E> {
                Ok(RateLimit::PerSecond(v as f64))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RateLimit, E> {
                Ok(RateLimit::PerSecond(v as f64))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RateLimit, E> {
                v.parse::<HumanDuration>()
                    .map(RateLimit::Interval)
                    .map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl RestConfig {
    /// The running source: substitutes `${NAME}`s (an unset variable is a config error naming
    /// the key); no IO.
    pub fn build(&self, name: &str) -> crate::Result<RestSource> {
        RestSource::try_new(name, self.clone())
    }

    /// Checks the fields without IO (environment variables are read by [`RestConfig::build`]).
    pub fn validate(&self, name: &str) -> Result<(), String> {
        let key = |k: &str| format!("sources.{name}.{k}");
        let url = self.url.trim();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!(
                "{}: expected an http:// or https:// URL, got `{}`",
                key("url"),
                self.url
            ));
        }
        if !url.contains("${") {
            url::Url::parse(url)
                .map_err(|e| format!("{}: `{}` is not a valid URL: {e}", key("url"), self.url))?;
        }
        if self.every.0.is_zero() {
            return Err(format!(
                "{}: expected a positive duration like \"1m\"",
                key("every")
            ));
        }
        if self.timeout.0.is_zero() {
            return Err(format!(
                "{}: expected a positive duration like \"30s\"",
                key("timeout")
            ));
        }
        JsonPath::parse(&self.records).map_err(|e| format!("{}: {e}", key("records")))?;
        if let Some(k) = &self.key {
            JsonPath::parse_field(k).map_err(|e| format!("{}: {e}", key("key")))?;
        }
        for (h, v) in &self.headers {
            if h.is_empty() || !h.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
                return Err(format!(
                    "{}: `{h}` is not a valid header name",
                    key("headers")
                ));
            }
            if v.contains(['\r', '\n']) {
                return Err(format!(
                    "{}: the value of `{h}` contains a line break",
                    key("headers")
                ));
            }
        }
        match self.rate_limit {
            Some(RateLimit::PerSecond(n)) if !(n > 0.0 && n.is_finite()) => {
                return Err(format!(
                    "{}: expected more than 0 requests per second, got {n}",
                    key("rate_limit")
                ));
            }
            Some(RateLimit::Interval(d)) if d.0.is_zero() => {
                return Err(format!(
                    "{}: expected a positive duration like \"200ms\"",
                    key("rate_limit")
                ));
            }
            _ => {}
        }
        if self.max_body_size.0 == 0 {
            return Err(format!(
                "{}: expected more than 0 bytes",
                key("max_body_size")
            ));
        }
        if let Some(p) = &self.pagination {
            let pkey = |k: &str| key(&format!("pagination.{k}"));
            if p.max_pages() == Some(0) {
                return Err(format!("{}: expected at least 1", pkey("max_pages")));
            }
            let param = |field: &str, v: &str| {
                if v.trim().is_empty() {
                    Err(format!("{}: expected a query parameter name", pkey(field)))
                } else {
                    Ok(())
                }
            };
            match p {
                Pagination::Page(pp) => {
                    param("param", &pp.param)?;
                    if let Some(sp) = &pp.size_param {
                        param("size_param", sp)?;
                        if pp.size.is_none() {
                            return Err(format!(
                                "{}: `size_param` is set, so `size` (the records per page to ask for) is needed too",
                                pkey("size")
                            ));
                        }
                    }
                    if pp.size == Some(0) {
                        return Err(format!("{}: expected at least 1", pkey("size")));
                    }
                }
                Pagination::Offset(op) => {
                    param("param", &op.param)?;
                    param("limit_param", &op.limit_param)?;
                    if op.limit == 0 {
                        return Err(format!("{}: expected at least 1", pkey("limit")));
                    }
                }
                Pagination::Cursor(cp) => {
                    param("param", &cp.param)?;
                    JsonPath::parse(&cp.next).map_err(|e| format!("{}: {e}", pkey("next")))?;
                }
                Pagination::Link(_) => {}
            }
        }
        Ok(())
    }
}
