//! `/v1/dlq`: the dead letters with what replays made of them, filtered by source, reason or
//! id, with counts; and `POST /v1/dlq/replay`, which sends matching dead letters through their
//! source's acceptance checks again, each at most once (the ledger and its crash rules are in
//! `weir_connectors::dlq::replay`). `weir dlq` calls these on a running weir, and [`list`] and
//! [`replay`] directly on a stopped one, so both print the same answers.
//!
//! (`/v1/dead-letters`, the dashboard's newest-first view, is in `tables.rs`.)

use std::collections::VecDeque;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use weir_connectors::dlq::replay::{Dlq, DlqError, Entry, Filter, Outcome};
use weir_core::ErrorKind;
use weir_orchestrator::Weir;

use crate::openapi::{api_object, api_query};
use crate::{ApiError, parse_limit, query_error};

api_object! {
    /// What the replay of a dead letter did.
    pub struct DlqOutcome {
        /// accepted (the source took it) or rejected (refused again: see dead_letter).
        pub outcome: String,
        /// Where an accepted record landed.
        pub topic: Option<String>,
        pub partition: Option<u32>,
        pub offset: Option<u64>,
        /// The new dead letter of a record refused again, and its reason.
        pub dead_letter: Option<u64>,
        pub reason: Option<String>,
        /// When, ms since the epoch.
        pub at: i64,
    }
}

api_object! {
    /// A dead letter: a record a source refused, with its payload.
    pub struct DlqEntry {
        /// Offset in the dead-letter topic.
        pub id: u64,
        /// When it was refused, ms since the epoch.
        pub ts: i64,
        pub source: String,
        /// not_utf8, line_too_large, ...
        pub reason: String,
        pub detail: String,
        /// The record's position in its source (file and line, LSN, broker offset), if known.
        pub offset: Option<String>,
        /// Size of the payload in bytes.
        pub size: u64,
        /// The payload as text, or as lowercase hex when it is not UTF-8; in lists only its
        /// start (see raw_truncated), in full when asked for by id.
        pub raw: String,
        /// utf8 or hex.
        pub raw_encoding: String,
        pub raw_truncated: bool,
        /// The dead letter whose replay produced this one.
        pub replay_of: Option<u64>,
        /// Set once replayed.
        pub replayed: Option<DlqOutcome>,
    }
}

api_object! {
    /// Matching dead letters of one source and reason.
    pub struct DlqCount {
        pub source: String,
        pub reason: String,
        pub entries: u64,
        /// Of those, never replayed.
        pub not_replayed: u64,
    }
}

api_object! {
    /// Dead letters, oldest first (the newest `limit` of those matching).
    pub struct DlqList {
        /// All dead letters kept in the topic.
        pub total: u64,
        /// Those matching the filter.
        pub matched: u64,
        pub counts: Vec<DlqCount>,
        pub entries: Vec<DlqEntry>,
    }
}

api_query! {
    pub struct DlqQuery {
        /// Only dead letters of this source.
        source: string,
        /// Only dead letters with this reason.
        reason: string,
        /// Only this dead letter, with its whole payload (404 when there is none).
        id: integer,
        /// Most entries to return: 1..=10000 (default 100).
        limit: integer,
    }
}

api_object! {
    /// Body of `POST /v1/dlq/replay`; fields left out match everything.
    pub struct ReplayRequest {
        pub source: Option<String>,
        pub reason: Option<String>,
        /// Only these dead letters.
        pub ids: Option<Vec<u64>>,
        /// Report what would happen; write nothing.
        pub dry_run: Option<bool>,
    }
}

api_object! {
    /// The replay of one dead letter.
    pub struct ReplayItem {
        pub id: u64,
        pub source: String,
        /// Why it had been refused.
        pub reason: String,
        /// accepted, rejected, would_accept, would_reject (dry run) or skipped.
        pub action: String,
        /// Where an accepted record landed.
        pub topic: Option<String>,
        pub partition: Option<u32>,
        pub offset: Option<u64>,
        /// The new dead letter of a record refused again.
        pub dead_letter: Option<u64>,
        /// Why it was refused again.
        pub new_reason: Option<String>,
        /// The refusal's detail, or why it was skipped.
        pub detail: Option<String>,
    }
}

api_object! {
    /// What a replay did.
    pub struct ReplayReport {
        pub dry_run: bool,
        /// Dead letters matching the request.
        pub matched: u64,
        /// Of those, replayed before and left alone.
        pub already_replayed: u64,
        /// Taken by their source (would be, in a dry run).
        pub accepted: u64,
        /// Refused again, as new dead letters (would be, in a dry run).
        pub rejected: u64,
        /// Not replayable (the item says why).
        pub skipped: u64,
        pub items: Vec<ReplayItem>,
    }
}

/// Bytes of payload text a list shows per entry.
const PREVIEW: usize = 200;

fn dlq_of(weir: &Weir) -> Dlq<'_> {
    Dlq::new(
        weir.log(),
        &weir.project().config.sources,
        &weir.project().data_dir().join("dlq"),
    )
}

fn outcome(o: Outcome) -> DlqOutcome {
    match o {
        Outcome::Accepted {
            topic,
            partition,
            offset,
            at_ms,
        } => DlqOutcome {
            outcome: "accepted".into(),
            topic: Some(topic),
            partition: Some(partition),
            offset: Some(offset),
            dead_letter: None,
            reason: None,
            at: at_ms,
        },
        Outcome::Rejected {
            dead_letter,
            reason,
            at_ms,
        } => DlqOutcome {
            outcome: "rejected".into(),
            topic: None,
            partition: None,
            offset: None,
            dead_letter: Some(dead_letter),
            reason: Some(reason),
            at: at_ms,
        },
    }
}

fn entry(e: Entry, full: bool) -> DlqEntry {
    let size = e.letter.raw_len() as u64;
    let mut raw = e.letter.raw;
    let mut raw_truncated = false;
    if !full && raw.len() > PREVIEW {
        let mut cut = PREVIEW;
        while !raw.is_char_boundary(cut) {
            cut -= 1;
        }
        raw.truncate(cut);
        raw_truncated = true;
    }
    DlqEntry {
        id: e.id,
        ts: e.ts_ms,
        source: e.letter.source,
        reason: e.letter.reason,
        detail: e.letter.detail,
        offset: e.letter.offset,
        size,
        raw,
        raw_encoding: e.letter.raw_encoding,
        raw_truncated,
        replay_of: e.letter.replay_of,
        replayed: e.replayed.map(outcome),
    }
}

/// The newest `limit` dead letters matching `filter`, oldest first, with counts. Entries
/// asked for by id carry their whole payload.
pub fn list(weir: &Weir, filter: &Filter, limit: usize) -> Result<DlqList, DlqError> {
    let full = !filter.ids.is_empty();
    let mut kept = VecDeque::new();
    let mut matched = 0u64;
    let summary = dlq_of(weir).scan(filter, |e| {
        matched += 1;
        if kept.len() == limit {
            kept.pop_front();
        }
        kept.push_back(e);
    })?;
    Ok(DlqList {
        total: summary.total,
        matched,
        counts: summary
            .counts
            .into_iter()
            .map(|((source, reason), (entries, not_replayed))| DlqCount {
                source,
                reason,
                entries,
                not_replayed,
            })
            .collect(),
        entries: kept.into_iter().map(|e| entry(e, full)).collect(),
    })
}

/// Replays the dead letters `req` matches (see `weir_connectors::dlq::replay`).
pub fn replay(weir: &Weir, req: &ReplayRequest) -> Result<ReplayReport, DlqError> {
    let filter = Filter {
        source: req.source.clone(),
        reason: req.reason.clone(),
        ids: req.ids.clone().unwrap_or_default(),
    };
    let r = dlq_of(weir).replay(&filter, req.dry_run.unwrap_or(false))?;
    Ok(ReplayReport {
        dry_run: r.dry_run,
        matched: r.matched,
        already_replayed: r.already_replayed,
        accepted: r.accepted,
        rejected: r.rejected,
        skipped: r.skipped,
        items: r
            .items
            .into_iter()
            .map(|i| ReplayItem {
                id: i.id,
                source: i.source,
                reason: i.reason,
                action: i.action,
                topic: i.topic,
                partition: i.partition,
                offset: i.offset,
                dead_letter: i.dead_letter,
                new_reason: i.new_reason,
                detail: i.detail,
            })
            .collect(),
    })
}

fn api_error(e: DlqError) -> ApiError {
    if e.is_not_found() {
        ApiError::new(StatusCode::NOT_FOUND, ErrorKind::User, e.to_string())
    } else {
        ApiError::from_kind(e.kind(), e.to_string())
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, DlqError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorKind::Internal,
                format!("dead-letter task stopped: {e}"),
            )
        })?
        .map_err(api_error)
}

fn bad_param(name: &str, value: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        ErrorKind::User,
        format!(
            "query parameter `{name}` must be a dead letter id (an integer from 0), got `{value}`"
        ),
    )
}

/// `GET /v1/dlq`.
pub async fn get_list(
    State(weir): State<Arc<Weir>>,
    q: Result<Query<DlqQuery>, QueryRejection>,
) -> Result<axum::Json<DlqList>, ApiError> {
    let Query(q) = q.map_err(query_error)?;
    let limit = parse_limit(q.limit.as_deref(), 100, 10_000)?;
    let ids = match q.id.as_deref() {
        None => Vec::new(),
        Some(v) => vec![v.trim().parse::<u64>().map_err(|_| bad_param("id", v))?],
    };
    let filter = Filter {
        source: q.source.filter(|s| !s.is_empty()),
        reason: q.reason.filter(|s| !s.is_empty()),
        ids,
    };
    let list = blocking(move || {
        let l = list(&weir, &filter, limit)?;
        if !filter.ids.is_empty() && l.entries.is_empty() {
            return Err(DlqError::NothingMatched {
                filter: filter.describe(),
            });
        }
        Ok(l)
    })
    .await?;
    Ok(axum::Json(list))
}

/// `POST /v1/dlq/replay`.
pub async fn post_replay(
    State(weir): State<Arc<Weir>>,
    body: Bytes,
) -> Result<axum::Json<ReplayReport>, ApiError> {
    let req: ReplayRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ReplayRequest {
            source: None,
            reason: None,
            ids: None,
            dry_run: None,
        }
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorKind::User,
                format!(
                    "expected a JSON body {{\"source\", \"reason\", \"ids\": [..], \"dry_run\"}} (all optional): {e}"
                ),
            )
        })?
    };
    let report = blocking(move || replay(&weir, &req)).await?;
    Ok(axum::Json(report))
}
