//! The running `rest` source: the poll schedule, the pages of one poll, records out of each
//! body, and the poll state that survives a restart.
//!
//! A poll starts every `every` (measured from the start of the previous one, on the wall
//! clock, so a restart keeps the rhythm). It walks the pages from the first, appends each
//! page's records, and after each append replaces `<state_dir>/poll.json` with the poll's start
//! time and the next page to ask for. A poll that weir left in the middle (stop or crash)
//! continues from that page if it started less than `every` ago; otherwise the next poll
//! starts over, since an old cursor or page number may no longer mean the same records.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use super::fetch::{FetchError, Fetcher, Redactor, excerpt_text};
use super::path::{JsonPath, kind};
use super::{DEFAULT_MAX_PAGES, Pagination, RestConfig};
use crate::dlq::RejectReason;
use crate::error::{ConnectorError, Result};
use crate::source::{Appender, OutRecord, PullSource, SourceContext};

/// A running `rest` source (see the module docs of [`crate::rest`]).
pub struct RestSource {
    name: String,
    cfg: RestConfig,
    url: Url,
    headers: HeaderMap,
    redact: Redactor,
    records: JsonPath,
    key: Option<JsonPath>,
    next_cursor: Option<JsonPath>,
}

/// What `<state_dir>/poll.json` holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PollState {
    /// When the last poll started, in ms since the epoch.
    pub started_ms: Option<i64>,
    /// The next request of a poll that has not finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<Resume>,
}

/// Where an unfinished poll continues.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resume {
    /// Pages of this poll already appended.
    pub pages: u64,
    pub next: Position,
}

/// A request of a poll, by pagination kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Position {
    /// The configured URL as it is (the first request of cursor, link and unpaginated polls).
    First,
    Page {
        page: u64,
    },
    Offset {
        offset: u64,
    },
    Cursor {
        cursor: String,
    },
    /// A `Link: rel="next"` target.
    Link {
        url: String,
    },
}

/// How one poll ended.
enum PollEnd {
    Done,
    Failed,
    Stopped,
}

impl RestSource {
    /// Substitutes `${NAME}`s and checks what depends on them; no IO.
    pub fn try_new(name: &str, cfg: RestConfig) -> Result<Self> {
        let config_err = |key: &str, reason: String| ConnectorError::Config {
            source_name: name.to_owned(),
            reason: format!("sources.{name}.{key}: {reason}"),
        };
        cfg.validate(name)
            .map_err(|reason| ConnectorError::Config {
                source_name: name.to_owned(),
                reason,
            })?;
        let mut redact = Redactor::default();
        let mut expand = |key: &str, text: &str| -> Result<String> {
            let out = crate::source::expand_env(text).map_err(|e| config_err(key, e))?;
            for var in env_names(text) {
                if let Ok(v) = std::env::var(var) {
                    redact.add(var, &v);
                }
            }
            Ok(out)
        };
        let url_text = expand("url", cfg.url.trim())?;
        let mut headers = HeaderMap::new();
        for (h, v) in &cfg.headers {
            let value = expand(&format!("headers.{h}"), v)?;
            let hn = HeaderName::from_bytes(h.as_bytes())
                .map_err(|e| config_err("headers", format!("`{h}`: {e}")))?;
            let mut hv = HeaderValue::from_str(&value).map_err(|_| {
                config_err(
                    &format!("headers.{h}"),
                    "the value (after `${NAME}` substitution) holds characters a header cannot carry".into(),
                )
            })?;
            hv.set_sensitive(true);
            headers.append(hn, hv);
        }
        let url = Url::parse(&url_text).map_err(|e| {
            config_err(
                "url",
                format!("`{}` is not a valid URL: {e}", redact.apply(&url_text)),
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(config_err(
                "url",
                format!("expected http or https, got `{}`", url.scheme()),
            ));
        }
        // validate() parsed these already; the errors cannot happen here but are kept typed.
        let records = JsonPath::parse(&cfg.records).map_err(|e| config_err("records", e))?;
        let key = match &cfg.key {
            Some(k) => Some(JsonPath::parse_field(k).map_err(|e| config_err("key", e))?),
            None => None,
        };
        let next_cursor = match &cfg.pagination {
            Some(Pagination::Cursor(c)) => {
                Some(JsonPath::parse(&c.next).map_err(|e| config_err("pagination.next", e))?)
            }
            _ => None,
        };
        Ok(Self {
            name: name.to_owned(),
            cfg,
            url,
            headers,
            redact,
            records,
            key,
            next_cursor,
        })
    }

    /// The first request of a poll.
    pub fn first_position(&self) -> Position {
        match &self.cfg.pagination {
            Some(Pagination::Page(p)) => Position::Page { page: p.start },
            Some(Pagination::Offset(p)) => Position::Offset { offset: p.start },
            _ => Position::First,
        }
    }

    fn position_fits(&self, p: &Position) -> bool {
        matches!(
            (&self.cfg.pagination, p),
            (_, Position::First)
                | (Some(Pagination::Page(_)), Position::Page { .. })
                | (Some(Pagination::Offset(_)), Position::Offset { .. })
                | (Some(Pagination::Cursor(_)), Position::Cursor { .. })
                | (Some(Pagination::Link(_)), Position::Link { .. })
        )
    }

    /// The URL of the request at `p`.
    pub fn request_url(&self, p: &Position) -> Result<Url> {
        let pairs: Vec<(String, String)> = match (&self.cfg.pagination, p) {
            (_, Position::First) => Vec::new(),
            (Some(Pagination::Page(pp)), Position::Page { page }) => {
                let mut v = vec![(pp.param.clone(), page.to_string())];
                if let (Some(sp), Some(size)) = (&pp.size_param, pp.size) {
                    v.push((sp.clone(), size.to_string()));
                }
                v
            }
            (Some(Pagination::Offset(op)), Position::Offset { offset }) => vec![
                (op.param.clone(), offset.to_string()),
                (op.limit_param.clone(), op.limit.to_string()),
            ],
            (Some(Pagination::Cursor(cp)), Position::Cursor { cursor }) => {
                vec![(cp.param.clone(), cursor.clone())]
            }
            (_, Position::Link { url }) => {
                return Url::parse(url).map_err(|e| ConnectorError::Remote {
                    connector: self.name.clone(),
                    operation: "follow the Link header".into(),
                    reason: format!("`{url}` is not a URL: {e}"),
                    retry: false,
                });
            }
            (_, other) => {
                return Err(ConnectorError::Config {
                    source_name: self.name.clone(),
                    reason: format!("position {other:?} does not match the pagination"),
                });
            }
        };
        Ok(with_query(&self.url, &pairs))
    }

    fn state_path(dir: &Path) -> PathBuf {
        dir.join("poll.json")
    }

    /// Reads the poll state (a missing file is a source that never polled).
    pub fn load_state(&self, dir: &Path) -> Result<PollState> {
        let path = Self::state_path(dir);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| ConnectorError::Config {
                source_name: self.name.clone(),
                reason: format!(
                    "poll state `{}` is unreadable ({e}); delete it to poll from the start",
                    path.display()
                ),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(PollState::default()),
            Err(error) => Err(ConnectorError::Io {
                source_name: self.name.clone(),
                path: path.display().to_string(),
                error,
            }),
        }
    }

    /// Replaces the poll state atomically (temporary file, fsync, rename).
    fn save_state(&self, dir: &Path, state: &PollState) -> Result<()> {
        let path = Self::state_path(dir);
        let tmp = dir.join("poll.json.tmp");
        let io = |p: &Path, error| ConnectorError::Io {
            source_name: self.name.clone(),
            path: p.display().to_string(),
            error,
        };
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        // Serializing this struct of numbers and strings cannot fail.
        let bytes = serde_json::to_vec(state).unwrap_or_default();
        let mut f = std::fs::File::create(&tmp).map_err(|e| io(&tmp, e))?;
        f.write_all(&bytes).map_err(|e| io(&tmp, e))?;
        f.sync_all().map_err(|e| io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io(&path, e))?;
        Ok(())
    }

    fn max_pages(&self) -> (u64, bool) {
        match self.cfg.pagination.as_ref().map(Pagination::max_pages) {
            None => (1, true),
            Some(Some(n)) => (n, true),
            Some(None) => (DEFAULT_MAX_PAGES, false),
        }
    }

    /// One poll, from `resume` or from the first page.
    fn poll(
        &self,
        ctx: &SourceContext,
        fetcher: &mut Fetcher,
        appender: &Appender,
        state: &mut PollState,
    ) -> Result<PollEnd> {
        let began = Instant::now();
        let (mut pages, mut pos) = match state.resume.take() {
            Some(r) => (r.pages, r.next),
            None => {
                state.started_ms = Some(weir_core::now_ms());
                (0, self.first_position())
            }
        };
        state.resume = Some(Resume {
            pages,
            next: pos.clone(),
        });
        self.save_state(&ctx.state_dir, state)?;
        let (max_pages, explicit_max) = self.max_pages();
        let (mut appended, mut rejected) = (0u64, 0u64);
        let end = loop {
            if ctx.stopping() {
                break PollEnd::Stopped;
            }
            let url = self.request_url(&pos)?;
            let shown = fetcher.display(&url);
            let resp = match fetcher.get(ctx, &url) {
                Ok(r) => r,
                Err(FetchError::Stopped) => break PollEnd::Stopped,
                Err(FetchError::GaveUp(_)) => break PollEnd::Failed,
            };
            let body: Value = match serde_json::from_slice(&resp.body) {
                Ok(v) => v,
                Err(e) => {
                    ctx.health.failed(&format!(
                        "GET {shown}: the response is not JSON ({e}); it starts with `{}`",
                        excerpt_text(&resp.body)
                    ));
                    break PollEnd::Failed;
                }
            };
            let items: &[Value] = match self.records.get(&body) {
                Some(Value::Array(a)) => a,
                Some(o @ Value::Object(_)) => std::slice::from_ref(o),
                Some(other) => {
                    ctx.health.failed(&format!(
                        "GET {shown}: `records = \"{}\"` is {} in the response; expected an array of records (or one object)",
                        self.records,
                        kind(other)
                    ));
                    break PollEnd::Failed;
                }
                None => {
                    ctx.health.failed(&format!(
                        "GET {shown}: nothing at `records = \"{}\"` in the response ({})",
                        self.records,
                        self.records.explain_miss(&body)
                    ));
                    break PollEnd::Failed;
                }
            };
            let (out, bad) = self.to_records(items, &shown, appender)?;
            appender.append(&out)?;
            appended += out.len() as u64;
            rejected += bad;
            ctx.health.ok();
            pages += 1;

            let next = self.next_position(ctx, &pos, &body, resp.next_link, items.len() as u64);
            let next = match next {
                Some(_) if pages >= max_pages => {
                    if !explicit_max {
                        let msg = format!(
                            "GET {shown}: stopped after {max_pages} pages in one poll; set `pagination.max_pages` if the API has more"
                        );
                        ctx.health.failed(&msg);
                        tracing::warn!(source = %self.name, "{msg}");
                    }
                    None
                }
                n => n,
            };
            state.resume = next.clone().map(|next| Resume { pages, next });
            self.save_state(&ctx.state_dir, state)?;
            match next {
                Some(n) => pos = n,
                None => break PollEnd::Done,
            }
        };
        if matches!(end, PollEnd::Failed) {
            // The poll is over; the next one starts from the first page.
            state.resume = None;
            self.save_state(&ctx.state_dir, state)?;
        }
        tracing::info!(
            source = %self.name, pages, records = appended, dead_letters = rejected,
            ms = began.elapsed().as_millis() as u64,
            outcome = match end { PollEnd::Done => "done", PollEnd::Failed => "failed", PollEnd::Stopped => "stopped" },
            "rest poll"
        );
        Ok(end)
    }

    /// The records of one page, and how many elements went to the dead-letter topic.
    fn to_records(
        &self,
        items: &[Value],
        shown: &str,
        appender: &Appender,
    ) -> Result<(Vec<OutRecord>, u64)> {
        let now = weir_core::now_ms();
        let mut out = Vec::with_capacity(items.len());
        let mut bad = 0;
        for (i, item) in items.iter().enumerate() {
            // Serializing a parsed JSON value cannot fail.
            let text = serde_json::to_vec(item).unwrap_or_default();
            if !item.is_object() {
                appender.dead_letter(
                    RejectReason::NotAnObject,
                    format!(
                        "element {i} at `{}` of GET {shown} is {}, not a JSON object",
                        self.records,
                        kind(item)
                    ),
                    &text,
                )?;
                bad += 1;
                continue;
            }
            let key = self.key.as_ref().and_then(|k| match k.get(item)? {
                Value::String(s) => Some(s.as_bytes().to_vec()),
                v @ (Value::Number(_) | Value::Bool(_)) => Some(v.to_string().into_bytes()),
                _ => None,
            });
            out.push(OutRecord {
                key,
                value: text,
                timestamp_ms: now,
            });
        }
        Ok((out, bad))
    }

    /// The request after `pos`, or `None` when the poll is complete.
    fn next_position(
        &self,
        ctx: &SourceContext,
        pos: &Position,
        body: &Value,
        next_link: Option<Url>,
        n: u64,
    ) -> Option<Position> {
        if n == 0 {
            return None;
        }
        match (&self.cfg.pagination, pos) {
            (None, _) => None,
            (Some(Pagination::Page(p)), Position::Page { page }) => {
                if p.size.is_some_and(|s| n < s) {
                    None
                } else {
                    Some(Position::Page { page: page + 1 })
                }
            }
            (Some(Pagination::Offset(p)), Position::Offset { offset }) => {
                (n >= p.limit).then(|| Position::Offset { offset: offset + n })
            }
            (Some(Pagination::Cursor(p)), _) => {
                let next = self.next_cursor.as_ref().and_then(|c| c.get(body));
                let cursor = match next {
                    Some(Value::String(s)) if !s.is_empty() => s.clone(),
                    Some(v @ Value::Number(_)) => v.to_string(),
                    _ => return None,
                };
                if matches!(pos, Position::Cursor { cursor: c } if *c == cursor) {
                    ctx.health.failed(&format!(
                        "`{}` returned the cursor it was sent (`{cursor}`); stopping this poll",
                        p.next
                    ));
                    return None;
                }
                Some(Position::Cursor { cursor })
            }
            (Some(Pagination::Link(_)), _) => {
                let next = next_link?;
                let here = self.request_url(pos).ok();
                if here.as_ref() == Some(&next) {
                    ctx.health.failed(&format!(
                        "the Link header of {} points to itself; stopping this poll",
                        self.redact.url(&next)
                    ));
                    return None;
                }
                Some(Position::Link {
                    url: next.to_string(),
                })
            }
            _ => None,
        }
    }

    fn fetcher(&self) -> Result<Fetcher> {
        Fetcher::try_new(
            &self.name,
            self.headers.clone(),
            self.cfg.timeout.0,
            self.cfg.retries,
            self.cfg
                .rate_limit
                .map_or(Duration::ZERO, |r| r.min_interval()),
            self.cfg.max_body_size.0,
            self.redact.clone(),
        )
    }
}

impl PullSource for RestSource {
    fn run(&mut self, ctx: &SourceContext) -> Result<()> {
        let mut state = self.load_state(&ctx.state_dir)?;
        let mut fetcher = self.fetcher()?;
        let appender = ctx.appender();
        let every_ms = self.cfg.every.as_millis_i64();
        loop {
            let now = weir_core::now_ms();
            let since_start = state.started_ms.map(|s| now - s);
            // A poll left unfinished continues only while it is the current one.
            if let Some(r) = &state.resume
                && !(self.position_fits(&r.next) && since_start.is_some_and(|d| d < every_ms))
            {
                state.resume = None;
            }
            if state.resume.is_none()
                && let Some(d) = since_start
            {
                let wait = (every_ms - d).clamp(0, every_ms);
                if wait > 0 && !ctx.sleep(Duration::from_millis(wait as u64)) {
                    return Ok(());
                }
            }
            if ctx.stopping() {
                return Ok(());
            }
            if let PollEnd::Stopped = self.poll(ctx, &mut fetcher, &appender, &mut state)? {
                return Ok(());
            }
        }
    }
}

/// `base` with the query parameters in `pairs` set (replacing any of the same name).
pub fn with_query(base: &Url, pairs: &[(String, String)]) -> Url {
    if pairs.is_empty() {
        return base.clone();
    }
    let mut url = base.clone();
    let kept: Vec<(String, String)> = base
        .query_pairs()
        .filter(|(k, _)| !pairs.iter().any(|(p, _)| p == k.as_ref()))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    url.query_pairs_mut()
        .clear()
        .extend_pairs(kept)
        .extend_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    url
}

/// The `NAME`s of the `${NAME}`s (and `${NAME:-default}`s) in `text`.
fn env_names(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        let after = &rest[i + 2..];
        let Some(j) = after.find('}') else { break };
        let inner = &after[..j];
        out.push(inner.split_once(":-").map_or(inner, |(name, _)| name));
        rest = &after[j + 1..];
    }
    out
}
