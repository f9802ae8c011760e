//! One GET, retried: the HTTP half of the `rest` source.
//!
//! [`Fetcher::get`] sends a request and returns the body of a 2xx response, or gives up after
//! `retries` retries. Connection errors, timeouts, 5xx, 408 and 429 are retried after an
//! exponential backoff ([`Backoff`]) or the response's `Retry-After`, whichever is longer;
//! other statuses (401, 404, ...) are not, since asking again cannot change the answer. Every
//! failed attempt is reported to the source's health with the URL and the status. Requests
//! are spaced by the rate limit (retries count), and a stop of weir interrupts a request or a
//! wait within 50 ms.
//!
//! The client is reqwest on a current-thread tokio runtime owned by the source's thread, with
//! rustls and the system's root certificates, so `https` APIs work with no other setup.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, LINK, RETRY_AFTER};
use url::Url;

use crate::error::{ConnectorError, Result};
use crate::source::{Backoff, SourceContext};

/// Longest wait between two attempts, whatever `Retry-After` asks.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(600);
/// Longest backoff between two attempts without `Retry-After`.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How much of an error response's body goes into the message.
const EXCERPT: usize = 200;

/// A successful response.
#[derive(Debug)]
pub struct Response {
    pub body: Vec<u8>,
    /// The target of the `Link` header's `rel="next"`, resolved against the request URL.
    pub next_link: Option<Url>,
}

/// Why [`Fetcher::get`] returned without a response.
#[derive(Debug)]
pub enum FetchError {
    /// weir is stopping.
    Stopped,
    /// The request failed and will not be retried in this poll; the message (already in the
    /// source's health) names the URL and the cause.
    GaveUp(String),
}

/// Masks secrets in text shown to users (status, logs, dead letters): the values of `${NAME}`
/// substitutions the source made, and in URLs the password of `user:password@` and the value
/// of every query parameter whose name says it is a secret (`api_key`, `token`, `sig`, ...;
/// weir.toml's own `${NAME}`s are substituted before the source sees them).
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Vec<(String, String)>,
}

impl Redactor {
    /// Remembers that `value` came from the environment variable `var`.
    pub fn add(&mut self, var: &str, value: &str) {
        // Very short values would mask unrelated text (`1`, `a`) and protect little.
        if value.len() >= 4 && !self.secrets.iter().any(|(v, _)| v == value) {
            self.secrets.push((value.to_owned(), format!("${{{var}}}")));
            // Longest first, so a secret containing another is masked whole.
            self.secrets
                .sort_by_key(|(v, _)| std::cmp::Reverse(v.len()));
        }
    }

    /// `url` as shown to users.
    pub fn url(&self, url: &Url) -> String {
        let mut u = url.clone();
        if u.password().is_some() {
            // Only fails for URLs that cannot have a password, which this one has.
            let _ = u.set_password(Some(MASK));
        }
        if u.query_pairs().any(|(k, _)| is_secret_param(&k)) {
            let pairs: Vec<(String, String)> = u
                .query_pairs()
                .map(|(k, v)| {
                    let v = if is_secret_param(&k) {
                        MASK.to_owned()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            u.query_pairs_mut().clear().extend_pairs(pairs);
        }
        self.apply(u.as_str())
    }

    pub fn apply(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for (v, name) in &self.secrets {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), name);
            }
        }
        out
    }
}

/// What a masked secret reads as.
pub const MASK: &str = "********";

/// Whether a query parameter's value is a secret, by its name.
pub fn is_secret_param(name: &str) -> bool {
    let n = name.to_ascii_lowercase().replace('-', "_");
    [
        "password",
        "passwd",
        "secret",
        "token",
        "auth",
        "credential",
        "private",
        "signature",
    ]
    .iter()
    .any(|w| n.contains(w))
        || n == "key"
        || n == "sig"
        || n.ends_with("_key")
        || n.ends_with("apikey")
}

/// Sends the GETs of one `rest` source.
pub struct Fetcher {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
    headers: HeaderMap,
    timeout: Duration,
    retries: u32,
    min_interval: Duration,
    last_request: Option<Instant>,
    backoff: Backoff,
    max_body: u64,
    redact: Redactor,
}

/// One failed attempt.
struct Attempt {
    message: String,
    retry: bool,
    retry_after: Option<Duration>,
}

impl Fetcher {
    /// Builds the client (no request is sent). `source` names the source in errors.
    pub fn try_new(
        source: &str,
        headers: HeaderMap,
        timeout: Duration,
        retries: u32,
        min_interval: Duration,
        max_body: u64,
        redact: Redactor,
    ) -> Result<Self> {
        let failed = |reason: String| ConnectorError::Remote {
            connector: source.to_owned(),
            operation: "start the HTTP client".into(),
            reason,
            retry: false,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| failed(e.to_string()))?;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("weir/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| failed(error_chain(&e)))?;
        Ok(Self {
            rt,
            client,
            headers,
            timeout,
            retries,
            min_interval,
            last_request: None,
            backoff: Backoff::new(MAX_BACKOFF),
            max_body,
            redact,
        })
    }

    /// `url` as shown to users (secrets masked).
    pub fn display(&self, url: &Url) -> String {
        self.redact.url(url)
    }

    /// GETs `url`, retrying what can be retried. Each failed attempt is reported with
    /// `ctx.health.failed`; success is not reported here (the caller does once the body made
    /// sense).
    pub fn get(&mut self, ctx: &SourceContext, url: &Url) -> Result<Response, FetchError> {
        let shown = self.display(url);
        let mut retried = 0;
        loop {
            if let Some(last) = self.last_request {
                let next = last + self.min_interval;
                let now = Instant::now();
                if next > now && !ctx.sleep(next - now) {
                    return Err(FetchError::Stopped);
                }
            }
            self.last_request = Some(Instant::now());
            let attempt = self.rt.block_on(async {
                tokio::select! {
                    r = self.once(url, &shown) => Some(r),
                    () = stopped(&ctx.stop) => None,
                }
            });
            let failure = match attempt {
                None => return Err(FetchError::Stopped),
                Some(Ok(r)) => {
                    self.backoff.reset();
                    return Ok(r);
                }
                Some(Err(a)) => a,
            };
            let message = self.redact.apply(&failure.message);
            ctx.health.failed(&message);
            if !failure.retry || retried >= self.retries {
                self.backoff.reset();
                let why = if failure.retry {
                    format!("{message} (gave up after {} attempts)", retried + 1)
                } else {
                    message
                };
                tracing::warn!(source = %ctx.name, error = %why, "rest request failed");
                return Err(FetchError::GaveUp(why));
            }
            let backoff = self.backoff.next_delay();
            let delay = failure
                .retry_after
                .map_or(backoff, |ra| ra.max(backoff))
                .min(MAX_RETRY_WAIT);
            tracing::info!(source = %ctx.name, error = %message, retry_in_ms = delay.as_millis() as u64,
                attempt = retried + 1, "rest request failed; retrying");
            if !ctx.sleep(delay) {
                return Err(FetchError::Stopped);
            }
            retried += 1;
        }
    }

    async fn once(&self, url: &Url, shown: &str) -> Result<Response, Attempt> {
        let sent = self
            .client
            .get(url.clone())
            .headers(self.headers.clone())
            .send()
            .await;
        let mut resp = match sent {
            Ok(r) => r,
            Err(e) => return Err(self.transport_failure(shown, &e)),
        };
        let status = resp.status();
        if !status.is_success() {
            let retry_after = resp
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            let mut excerpt = Vec::new();
            while excerpt.len() < EXCERPT {
                match resp.chunk().await {
                    Ok(Some(c)) => excerpt.extend_from_slice(&c),
                    _ => break,
                }
            }
            let code = status.as_u16();
            let body = excerpt_text(&excerpt);
            let reason = status.canonical_reason().unwrap_or("");
            return Err(Attempt {
                message: if body.is_empty() {
                    format!("GET {shown}: HTTP {code} {reason}")
                } else {
                    format!("GET {shown}: HTTP {code} {reason}: {body}")
                },
                retry: status.is_server_error() || code == 408 || code == 429,
                retry_after,
            });
        }
        let next_link = resp
            .headers()
            .get_all(LINK)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(link_next)
            .and_then(|target| url.join(&target).ok());
        if let Some(len) = resp.content_length()
            && len > self.max_body
        {
            return Err(Attempt {
                message: format!(
                    "GET {shown}: the body ({len} bytes) is over max_body_size ({} bytes)",
                    self.max_body
                ),
                retry: false,
                retry_after: None,
            });
        }
        let mut body = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(c)) => {
                    if (body.len() + c.len()) as u64 > self.max_body {
                        return Err(Attempt {
                            message: format!(
                                "GET {shown}: the body is over max_body_size ({} bytes)",
                                self.max_body
                            ),
                            retry: false,
                            retry_after: None,
                        });
                    }
                    body.extend_from_slice(&c);
                }
                Ok(None) => break,
                Err(e) => return Err(self.transport_failure(shown, &e)),
            }
        }
        Ok(Response { body, next_link })
    }

    fn transport_failure(&self, shown: &str, e: &reqwest::Error) -> Attempt {
        let message = if e.is_timeout() {
            format!(
                "GET {shown}: no complete response within {} ms (timeout)",
                self.timeout.as_millis()
            )
        } else if e.is_connect() {
            format!("GET {shown}: cannot connect: {}", error_chain(e))
        } else {
            format!("GET {shown}: {}", error_chain(e))
        };
        Attempt {
            message,
            // A builder error (a URL reqwest refuses) cannot get better; anything on the wire
            // (reset connection, truncated body, TLS handshake) might.
            retry: !e.is_builder(),
            retry_after: None,
        }
    }
}

async fn stopped(stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An error and its causes, without the URL (which may carry secrets and is named by the
/// caller anyway).
fn error_chain(e: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = cur {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        cur = s.source();
    }
    if parts.is_empty() {
        // reqwest's own text starts with the URL; strip it by construction.
        let without = e.to_string();
        return without
            .split(" for url (")
            .next()
            .unwrap_or(&without)
            .to_owned();
    }
    parts.join(": ")
}

/// The start of a body, as one line of text.
pub fn excerpt_text(body: &[u8]) -> String {
    let cut = &body[..body.len().min(EXCERPT)];
    let mut s: String = String::from_utf8_lossy(cut)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if body.len() > EXCERPT {
        s.push('…');
    }
    s
}

/// `Retry-After`: delay-seconds or an HTTP date (RFC 9110 §10.2.3).
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let ms = at.timestamp_millis() - weir_core::now_ms();
    Some(Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
}

/// The target of the first `rel="next"` link in a `Link` header value (RFC 8288), as written
/// (maybe relative).
pub fn link_next(header: &str) -> Option<String> {
    let mut rest = header;
    loop {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
        let after = rest.strip_prefix('<')?;
        let close = after.find('>')?;
        let target = &after[..close];
        rest = &after[close + 1..];
        // Parameters up to the next `,` that is not inside quotes.
        let mut end = rest.len();
        let mut quoted = false;
        for (i, c) in rest.char_indices() {
            match c {
                '"' => quoted = !quoted,
                ',' if !quoted => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        let params = &rest[..end];
        rest = &rest[end..];
        let is_next = params.split(';').any(|p| {
            let Some((k, v)) = p.split_once('=') else {
                return false;
            };
            k.trim().eq_ignore_ascii_case("rel")
                && v.trim()
                    .trim_matches('"')
                    .split_whitespace()
                    .any(|r| r.eq_ignore_ascii_case("next"))
        });
        if is_next {
            return Some(target.trim().to_owned());
        }
        if rest.is_empty() {
            return None;
        }
    }
}
